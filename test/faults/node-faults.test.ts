import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FaultTimeline } from '../../src/core/faults.ts';
import type { RunManifest } from '../../src/core/manifest.ts';
import { runCommand, type ExecResult } from '../../src/agent/exec.ts';
import { combinedResult, followCommand, nodeFaults } from '../../src/agent/faults/node-faults.ts';
import type { PrivilegedRunner } from '../../src/agent/privileged.ts';
import { tempDir } from '../helpers/temp.ts';

/**
 * One node's faults as the repeat uses them, with a recording `nft` (nft.test.ts runs the real one):
 * the tools checked first, each table's undo in the instance's journal from before T until healed.
 */
const timeline: FaultTimeline = {
  seeds: [],
  events: [
    { id: '0#1', entry: 0, occurrence: 1, action: 'partition', atMs: 100, durationMs: 200, repeats: [1], targets: [0, 1], partition: { kind: 'sides', sides: [[0], [1]] } },
    { id: '1#1', entry: 1, occurrence: 1, action: 'partition', atMs: 5000, durationMs: 200, repeats: [1], targets: [0, 1], partition: { kind: 'sides', sides: [[0], [1]] } },
  ],
};
const manifest = { runId: 'r-node-faults', faults: timeline } as RunManifest;

function recordingNft(options: { missing?: boolean } = {}) {
  const calls: string[] = [];
  const run: PrivilegedRunner = async (tool, args, input) => {
    calls.push([tool, ...args, input?.trim()].filter(Boolean).join(' '));
    return options.missing ? { code: 127, stdout: '', stderr: `The \`${tool}\` command is not installed: install nftables on the instance` } : { code: 0, stdout: '', stderr: '' };
  };
  return { calls, run };
}

const journalOf = (dir: string) => (existsSync(join(dir, 'privileged-undo.json')) ? Object.keys(JSON.parse(readFileSync(join(dir, 'privileged-undo.json'), 'utf8')) as object) : []);

describe('a node\'s faults in a repeat', () => {
  it('journals how to undo each partition before T, forgets it once healed or never opened', async () => {
    const dir = tempDir('node-faults');
    const { calls, run } = recordingNft();
    const startAt = Date.now() + 100;
    const faults = (await nodeFaults({ manifest, repeat: 1, startAt, rank: 0, addresses: ['198.18.0.1', '198.18.0.2'], instanceId: 'i-0', choice: { address: '198.18.0.1', allowDefaultRoute: false }, privileged: run, journal: dir }))!;
    expect(journalOf(dir)).toEqual(['fault 0#1', 'fault 1#1']);
    expect(calls).toEqual(['nft --version']);
    // The command ends after the first window and before the second.
    const ended = runCommand({ command: 'sleep 0.6', cwd: dir, env: {}, stdoutPath: join(dir, 'out'), stderrPath: join(dir, 'err'), timeoutMs: 10_000 });
    const outcome = await followCommand(faults, { pid: undefined, ended }, { prepareRun: () => { throw new Error('no restart here'); } });
    await faults.dispose();
    expect(outcome.faults!.map((f) => [f.id, f.healedBy ?? f.skipped])).toEqual([['0#1', 'window'], ['1#1', 'the command had ended']]);
    expect(calls.slice(1, 3)).toEqual([
      expect.stringMatching(/^nft -f - table inet lockstep_[0-9a-f]{6}_[0-9a-f]{6}_0_1 \{/),
      expect.stringMatching(/^nft -f - delete table inet lockstep_[0-9a-f]{6}_[0-9a-f]{6}_0_1$/),
    ]);
    expect(journalOf(dir)).toEqual([]);
    expect(outcome.killed).toBe(false);
  });

  it('refuses to arm faults whose tool is missing, saying which', async () => {
    const { run } = recordingNft({ missing: true });
    await expect(nodeFaults({ manifest, repeat: 1, startAt: Date.now(), rank: 1, addresses: ['198.18.0.1', '198.18.0.2'], instanceId: 'i-1', choice: { address: '198.18.0.2', allowDefaultRoute: false }, privileged: run })).rejects.toThrow(
      "This node's faults need `nft`: The `nft` command is not installed: install nftables on the instance",
    );
    expect(await nodeFaults({ manifest, repeat: 2, startAt: Date.now(), rank: 1, addresses: [], instanceId: 'i-1', choice: { address: '198.18.0.2', allowDefaultRoute: false }, privileged: run })).toBeUndefined();
  });

  it('sums a restarted command\'s runs into one result: first start to last end, CPU added, the last exit', () => {
    const run = (startedAt: number, endedAt: number, exitCode: number | null, cpu: number, peak: number): ExecResult => ({
      command: 'x', exitCode, signal: exitCode === null ? 'SIGKILL' : null, timedOut: false, aborted: false, startedAt, endedAt, durationMs: endedAt - startedAt,
      cpuUserMs: cpu, cpuSystemMs: cpu / 2, peakMemoryBytes: peak, stdoutPath: 'o', stderrPath: 'e',
    });
    expect(combinedResult([run(1000, 2000, null, 10, 500), run(2500, 4000, 0, 20, 300)])).toMatchObject({
      startedAt: 1000, endedAt: 4000, durationMs: 3000, exitCode: 0, signal: null, cpuUserMs: 30, cpuSystemMs: 15, peakMemoryBytes: 500,
    });
  });
});
