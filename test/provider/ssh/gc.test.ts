import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectGarbage, type GcReport } from '../../../src/controller/gc.ts';
import { runLockstep } from '../../helpers/cli.ts';
import { tempDir } from '../../helpers/temp.ts';
import { waitFor } from '../../reliability/harness.ts';
import { missingSshSupport, startTestHosts, type TestHost, type TestHosts } from './hosts.ts';
import { PROBE } from './probe.ts';

const missing = missingSshSupport();
const BIN = fileURLToPath(new URL('../../../bin/lockstep.mjs', import.meta.url));

describe.skipIf(missing)('lockstep gc --ssh', () => {
  let lab: TestHosts;
  beforeAll(async () => {
    lab = await startTestHosts(2);
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const qdiscs = (host: TestHost) => execFileSync('ip', ['netns', 'exec', host.namespace, 'tc', 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
  const nftTables = (host: TestHost) => execFileSync('ip', ['netns', 'exec', host.namespace, 'nft', 'list', 'tables'], { encoding: 'utf8' });

  it('after a killed controller: removes what a dead agent left (its command, its tc and partition rules, its folder) and ends agents past their expiry', async () => {
    const dir = tempDir('ssh-gc');
    mkdirSync(join(dir, 'app'));
    writeFileSync(join(dir, 'app', 'probe.mjs'), PROBE);
    writeFileSync(join(dir, 'hosts.yaml'), lab.inventory());
    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'name: ssh-gc',
        'instances: 2',
        'artifact: app',
        'run: node probe.mjs',
        'params: { sleep: 300 }',
        'network: { rate: 100mbit }',
        'startDelay: 500ms',
        'timeouts: { barrier: 60s, run: 10m, instance: 1h }',
        `provider: { kind: ssh, inventory: hosts.yaml, knownHosts: ${lab.knownHosts} }`,
        'store: store',
        // Cut apart from T for longer than the test: the dead agent's rules stay until gc.
        'faults: [{ action: partition, at: 0s, duration: 9m, sides: ["0", "1"] }]',
      ].join('\n') + '\n',
    );
    const home = join(dir, 'home');
    const controller = spawn(process.execPath, [BIN, 'run', 'spec.yaml', '--yes'], { cwd: dir, env: { ...process.env, LOCKSTEP_HOME: home }, stdio: 'ignore' });
    const instanceFile = (host: TestHost) => {
      const runs = join(host.workDir, 'runs');
      const run = existsSync(runs) ? readdirSync(runs)[0] : undefined;
      return run ? join(runs, run, host.name, 'instance.json') : undefined;
    };
    const cmdline = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    };
    const commandRuns = (host: TestHost) => lab.processesOn(host).some((pid) => cmdline(pid).startsWith('node\0probe.mjs'));
    await waitFor('both commands to run, cut apart', () => lab.hosts.every((h) => instanceFile(h) && commandRuns(h) && nftTables(h).includes('table inet')), 60_000);
    expect(lab.hosts.map((h) => qdiscs(h))).toEqual([expect.stringContaining('tbf'), expect.stringContaining('tbf')]);
    controller.kill('SIGKILL');
    const deadAgent = JSON.parse(readFileSync(instanceFile(lab.hosts[0]!)!, 'utf8')) as { pid: number; runId: string };
    process.kill(deadAgent.pid, 'SIGKILL');
    await waitFor('the agent on h0 to die', () => !existsSync(`/proc/${deadAgent.pid}`) || cmdline(deadAgent.pid) === '', 10_000);
    expect(lab.processesOn(lab.hosts[0]!).length).toBeGreaterThan(0);

    // A dry run from the command line says what it would do and does nothing.
    const dry = await runLockstep(['gc', '--ssh', 'hosts.yaml', '--known-hosts', lab.knownHosts, '--dry-run', '--json'], { cwd: dir, env: { LOCKSTEP_HOME: home } });
    expect(dry.status, dry.stderr).toBe(0);
    const planned = (JSON.parse(dry.stdout) as GcReport).ssh!;
    expect(planned).toMatchObject({ hosts: 2, running: 1, ended: [], unreachable: [] });
    expect(planned.removed).toEqual([expect.objectContaining({ host: 'h0', runId: deadAgent.runId, instanceId: 'h0' })]);
    expect(qdiscs(lab.hosts[0]!)).toContain('tbf');
    expect(nftTables(lab.hosts[0]!)).toContain('table inet');

    // A day later, h1's agent is past its expiry too.
    const report = (await collectGarbage({ home, ssh: { inventory: join(dir, 'hosts.yaml'), knownHosts: lab.knownHosts }, now: new Date(Date.now() + 86_400_000) })).ssh!;
    expect(report.removed).toEqual([{ host: 'h0', runId: deadAgent.runId, instanceId: 'h0', processes: expect.any(Number), undone: 2 }]);
    expect(report.removed[0]!.processes).toBeGreaterThan(0);
    expect(report.ended).toEqual([{ host: 'h1', runId: deadAgent.runId, instanceId: 'h1', reason: 'expired' }]);
    for (const host of lab.hosts) {
      expect(lab.processesOn(host), `processes on ${host.name}`).toEqual([]);
      expect(qdiscs(host)).not.toContain('tbf');
      expect(nftTables(host), `nft tables on ${host.name}`).toBe('');
      expect(readdirSync(join(host.workDir, 'runs'))).toEqual([]);
    }
    expect(readdirSync(join(home, 'ssh', 'runs'))).toEqual([]);
  });
});

