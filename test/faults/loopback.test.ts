import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { faultNamePrefix, type FaultRecord } from '../../src/core/faults.ts';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import type { NodeResult, RunManifest } from '../../src/core/manifest.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson } from '../../src/store/store.ts';
import { cgroup2Mount, cgroupProblem } from '../../src/util/cgroup.ts';
import { findSystemBinary } from '../../src/util/system-binary.ts';
import { localRunsDir } from '../../src/provider/local/state.ts';
import { expectNothingLeftRunning, localState, project, restartAgent, startRun, waitFor, type Project } from '../reliability/harness.ts';

/**
 * Faults on the loopback (the default local mode), as root: partitions by the cgroup of each node's
 * command, healed on every path (Ctrl-C, an agent that restarts); a seeded random schedule that
 * two runs repeat exactly.
 */
const BIN = fileURLToPath(new URL('../../bin/lockstep.mjs', import.meta.url));
const HEARTBEAT = resolve('examples/faults/app/heartbeat.mjs');
const noPartitions = process.getuid?.() !== 0 ? 'needs root' : !findSystemBinary('nft') ? 'needs nftables (`nft`)' : cgroupProblem();
if (noPartitions) console.warn(`SKIPPED loopback partition tests: ${noPartitions}`);

/**
 * The agent stamps with its monotonic clock from its start (`preciseNow`), the app with the wall
 * clock (`Date.now`): two processes' clocks can differ by tens of ms while the system clock is
 * slewed. Comparisons between them leave this much at each edge of a window.
 */
const SKEW = 50;

let current: Project | undefined;
afterEach(async () => {
  if (current) await expectNothingLeftRunning(current.dir);
  current = undefined;
});

function heartbeatProject(name: string, instances: number, seconds: number, faults: string[]): Project {
  const p = project([
    `name: ${name}`,
    `instances: ${instances}`,
    `run: node heartbeat.mjs --hosts {{hostsFile}} --rank {{rank}} --duration ${seconds} --interval 50 --state {{outputDir}}`,
    'startDelay: 500ms',
    'timeouts: { barrier: 60s, run: 60s, instance: 5m }',
    'faults:',
    ...faults.map((f) => `  - ${f}`),
  ]);
  cpSync(HEARTBEAT, join(p.dir, 'app', 'heartbeat.mjs'));
  return p;
}

/** The run's partition tables in this machine's own ruleset (of one instance, or all). */
function tablesOf(runId: string, instanceId?: string): string[] {
  return execFileSync(findSystemBinary('nft')!, ['list', 'tables', 'inet'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(' ')[2] ?? '')
    .filter((name) => name.startsWith(faultNamePrefix(runId, instanceId)));
}

/** The run's tables and its command cgroups. */
function leftFaults(runId: string, instanceId?: string): string[] {
  const mount = cgroup2Mount();
  const groups = mount ? readdirSync(mount).filter((name) => name.startsWith(faultNamePrefix(runId, instanceId))) : [];
  return [...tablesOf(runId, instanceId), ...groups];
}

/** How many of the run's command cgroups hold a running heartbeat. */
function commandsInGroups(runId: string): number {
  const mount = cgroup2Mount()!;
  return readdirSync(mount)
    .filter((name) => name.startsWith(faultNamePrefix(runId)))
    .filter((name) =>
      readFileSync(join(mount, name, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .some((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('heartbeat.mjs');
          } catch {
            return false;
          }
        }),
    ).length;
}

async function nodeResult(p: Project, runId: string, rank: number): Promise<{ result?: NodeResult; lines: Array<Record<string, unknown>> }> {
  const store = await openStore(p.store);
  try {
    const prefix = layout.node(runId, 1, rank);
    const stdout = Buffer.from((await store.get(prefix + nodeFiles.stdout)) ?? new Uint8Array()).toString('utf8');
    return { result: await getJson<NodeResult>(store, prefix + nodeFiles.result), lines: stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>) };
  } finally {
    await store.dispose();
  }
}

describe.skipIf(noPartitions)('partitions on the loopback', () => {
  it('cut the sides by cgroup, and Ctrl-C during the partition leaves no rule, cgroup or process behind', async () => {
    const p = (current = heartbeatProject('cut-loopback', 4, 30, ['{ action: partition, at: 500ms, duration: 25s, sides: ["0-1", "2-3"] }']));
    const child = spawn(process.execPath, [BIN, 'run', 'spec.yaml', '--store', p.store, '--yes'], { cwd: p.dir, env: { ...process.env, LOCKSTEP_HOME: p.home }, stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    const runId = await waitFor('the run to launch', () => (existsSync(localRunsDir(p.home)) ? readdirSync(localRunsDir(p.home))[0]?.replace(/\.json$/, '') : undefined));
    await waitFor('every node to cut its side', () => tablesOf(runId).length === 4);
    await waitFor('every node\'s heartbeat to run in its cgroup', () => commandsInGroups(runId) === 4);
    // Long enough for pings across the cut to be missed, and for those on each side to be answered.
    await new Promise((done) => setTimeout(done, 1500));
    const interruptedAt = Date.now();
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(leftFaults(runId)).toEqual([]);
    const pids = (await localState(p.home, runId))?.instances.map((i) => i.pid) ?? [];
    expect(pids).toEqual([]);

    const { result, lines } = await nodeResult(p, runId, 0);
    const cut = result!.faults!.find((f) => f.id === '0#1') as FaultRecord;
    expect(cut, JSON.stringify(cut)).toMatchObject({ healedBy: 'abort' });
    expect(cut.detail).toMatch(/drops what the command sends to 127\.\S+, 127\./);
    // When each answered ping was sent (its answer's arrival less its round trip): on a busy machine an
    // answer may be read, and stamped, a while after it arrived; the cut decides by the sending.
    const from = (peer: number) => lines.filter((l) => l.metric === 'rtt_ms' && l.peer === peer).map((l) => Number(l.time) - Number(l.value));
    // The rules held from their apply at least until the interrupt (the heal comes after it).
    expect(from(2).filter((t) => t > cut.appliedAt! + SKEW && t < interruptedAt - SKEW), JSON.stringify(cut)).toEqual([]);
    expect(from(3).filter((t) => t > cut.appliedAt! + SKEW && t < interruptedAt - SKEW)).toEqual([]);
    expect(from(1).filter((t) => t > cut.appliedAt! + 200 && t < interruptedAt).length).toBeGreaterThan(5);
  });

  it('are healed by an agent that restarts during the window', async () => {
    const p = (current = heartbeatProject('heal-restart', 2, 4, ['{ action: partition, at: 300ms, duration: 30s, sides: ["0", "1"] }']));
    const run = startRun(p);
    const runId = await run.runId;
    await waitFor('both nodes to cut each other', () => tablesOf(runId).length === 2);
    const [instance, other] = (await localState(p.home, runId))!.instances;
    expect(leftFaults(runId, instance!.id)).toHaveLength(2);
    await restartAgent(p.home, runId, instance!.id);
    await waitFor('the restarted agent to heal its table and cgroup', () => leftFaults(runId, instance!.id).length === 0);
    // The other node's window is still open.
    expect(tablesOf(runId, other!.id)).toHaveLength(1);
    await run.outcome;
    expect(leftFaults(runId)).toEqual([]);
  });
});

describe('a seeded random schedule', () => {
  it('is the same in two runs: the same timeline, applied to the same nodes', async () => {
    const faults = [
      '{ action: restart, at: 300ms, every: 700ms, count: 2, downtime: 200ms, targets: { random: { count: 1, seed: 11 } } }',
      '{ action: pause, at: 500ms, duration: 300ms, targets: { random: { fraction: 0.5, seed: 4 } } }',
    ];
    const runs: Array<{ timeline: RunManifest['faults']; applied: string[] }> = [];
    for (const name of ['seeded-a', 'seeded-b']) {
      const p = (current = heartbeatProject(name, 4, 2, faults));
      const outcome = await startRun(p).outcome;
      expect(outcome.ok).toBe(true);
      const store = await openStore(p.store);
      const manifest = (await getJson<RunManifest>(store, layout.manifest(outcome.runId)))!;
      await store.dispose();
      const applied: string[] = [];
      for (let rank = 0; rank < 4; rank++) {
        for (const f of (await nodeResult(p, outcome.runId, rank)).result!.faults ?? []) if (f.appliedAt) applied.push(`${f.id} rank ${rank}`);
      }
      runs.push({ timeline: manifest.faults, applied: applied.sort() });
      await expectNothingLeftRunning(p.dir);
    }
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[0]!.applied).toHaveLength(2 + 2);
  });
});
