import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_NODE_OPTIONS } from '../../../src/core/agent-node.ts';
import { createLocalProvider } from '../../../src/provider/local/local.ts';
import { localWorkDir } from '../../../src/provider/local/state.ts';
import { openStore } from '../../../src/store/open.ts';

// A stand-in agent that records the Node.js options it was started with, and what a command it
// starts inherits, then exits.
const RECORDER = `
import { execFileSync } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
writeFileSync('command.mjs', 'console.log(JSON.stringify(process.execArgv))');
const child = execFileSync(process.execPath, ['command.mjs'], { encoding: 'utf8' });
writeFileSync('options.json.partial', JSON.stringify({ agent: process.execArgv, command: JSON.parse(child), nodeOptions: process.env.NODE_OPTIONS ?? '' }));
renameSync('options.json.partial', 'options.json');
`;

describe('the agent process of a local instance', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('starts with the agent Node.js options, which a command it starts does not inherit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lockstep-agent-options-'));
    dirs.push(dir);
    const home = join(dir, 'home');
    const storeDir = join(dir, 'store');
    const store = await openStore(storeDir);
    await store.put('agents/test/agent.mjs', RECORDER);
    await store.dispose();
    const provider = createLocalProvider({ home });
    const runId = 'r-20260101-opts';
    const [instance] = await provider.launch({
      runId,
      specName: 'agent-options',
      count: 1,
      minCount: 1,
      boot: { runId, store: storeDir, agentKey: 'agents/test/agent.mjs', expiresAt: new Date(Date.now() + 60_000) },
      provider: { kind: 'local', isolation: 'loopback' },
    });
    try {
      const recorded = join(localWorkDir(home), runId, instance!.id, 'options.json');
      while (!existsSync(recorded)) await delay(20);
      expect(JSON.parse(readFileSync(recorded, 'utf8'))).toEqual({ agent: [...AGENT_NODE_OPTIONS], command: [], nodeOptions: '' });
    } finally {
      await provider.terminate([instance!.id]);
    }
  });
});
