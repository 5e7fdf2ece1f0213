/**
 * Faults 1–4 of issue 5, each end to end on the local provider: an instance that dies before the
 * barrier, a command that hangs, an agent restarted mid-run, a controller killed mid-run.
 * (Fault 5, a misbehaving store, is in store-faults.test.ts.)
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import type { FailureRecord, InstanceRecord, NodeResult, ReadyRecord, StartRecord } from '../../src/core/manifest.ts';
import { localRunsDir } from '../../src/provider/local/state.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson, type Store } from '../../src/store/store.ts';
import { lockstep } from '../helpers/cli.ts';
import { alive, expectNothingLeftRunning, killHard, localState, project, restartAgent, startRun, waitFor, type Project } from './harness.ts';

const BIN = fileURLToPath(new URL('../../bin/lockstep.mjs', import.meta.url));
const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));

let current: Project | undefined;
afterEach(async () => {
  if (current) await expectNothingLeftRunning(current.dir);
  current = undefined;
});

async function withStore<T>(p: Project, use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(p.store);
  try {
    return await use(store);
  } finally {
    await store.dispose();
  }
}

const numeric = (address: string) => address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);

describe('fault 1: an instance dies before the barrier', () => {
  const spec = (extra: string[] = []) => [
    'name: dies-early',
    'instances: 4',
    'repeats: 2',
    'setup: sleep 1',
    'run: echo "rank $LOCKSTEP_RANK of $LOCKSTEP_N, repeat $LOCKSTEP_REPEAT"',
    'startDelay: 300ms',
    'timeouts:',
    '  barrier: 3s',
    '  run: 20s',
    '  instance: 2m',
    ...extra,
  ];

  /** Starts the run and SIGKILLs one instance (agent and setup) once it has booted, during setup. */
  async function runWithVictim(p: Project) {
    const started = startRun(p);
    const runId = await started.runId;
    const state = await waitFor('the local state', () => localState(p.home, runId));
    const victim = state.instances[1]!;
    await waitFor('the victim to boot', () => existsSync(join(p.store, layout.instance(runId, victim.id))));
    await killHard(victim.pid);
    return { runId, victim: victim.id, outcome: await started.outcome, survivors: state.instances.filter((i) => i.id !== victim.id).map((i) => i.id) };
  }

  it('times out naming the missing instance, records the repeats as failed, and the others upload their logs and end', async () => {
    const p = (current = project(spec()));
    const { runId, victim, outcome, survivors } = await runWithVictim(p);
    expect(outcome.ok).toBe(false);
    expect(outcome.status.state).toBe('failed');
    expect(outcome.lostInstances).toEqual([victim]);
    for (const repeat of outcome.status.repeats) {
      expect(repeat.state).toBe('failed');
      expect(repeat.members).toBeNull();
      expect(repeat.results).toEqual([]);
      expect(repeat.failures.map((f) => f.instanceId).sort()).toEqual([...survivors].sort());
      for (const failure of repeat.failures) {
        expect(failure.stage).toBe('barrier');
        expect(failure.missing).toEqual([victim]);
        expect(failure.error).toMatch(new RegExp(`^Barrier of repeat ${repeat.repeat} timed out after 3 s with 3 of 4 instances: missing ${victim}$`));
      }
    }
    await withStore(p, async (store) => {
      for (const id of survivors) {
        expect((await getJson<InstanceRecord>(store, layout.instance(runId, id)))?.state).toBe('failed');
        expect(text(await store.get(layout.agentLog(runId, id)))).toMatch(/repeat 2: Barrier of repeat 2 timed out/);
        expect(text(await store.get(`${layout.run(runId)}agents/${id}.setup.stdout.log`))).toBe('');
      }
      expect(['booting', 'setup']).toContain((await getJson<InstanceRecord>(store, layout.instance(runId, victim)))?.state);
    });
    // Every instance ended and the provider forgot the run.
    expect(readdirSync(localRunsDir(p.home))).toEqual([]);
  });

  it('goes on without it when the spec allows a quorum (minInstances)', async () => {
    const p = (current = project(spec(['minInstances: 3'])));
    const { runId, victim, outcome } = await runWithVictim(p);
    expect(outcome.status.state).toBe('done');
    expect(outcome.lostInstances).toEqual([victim]);
    await withStore(p, async (store) => {
      for (const repeat of outcome.status.repeats) {
        expect(repeat.members).toBe(3);
        expect(repeat.results.map((r) => r.outcome)).toEqual(['success', 'success', 'success']);
        expect(repeat.results.map((r) => r.instanceId)).not.toContain(victim);
        const start = await getJson<StartRecord>(store, layout.start(runId, repeat.repeat));
        expect(start?.quorum).toBe(true);
        expect(text(await store.get(layout.node(runId, repeat.repeat, 2) + nodeFiles.stdout))).toBe(`rank 2 of 3, repeat ${repeat.repeat}\n`);
      }
    });
  });
});

describe('fault 2: a command hangs', () => {
  it('is killed with its process group at the run timeout; its logs and a timeout outcome are uploaded; the others and the next repeat go on', async () => {
    const hang = [
      'echo "start rank $LOCKSTEP_RANK repeat $LOCKSTEP_REPEAT"',
      'if [ "$LOCKSTEP_RANK" = 1 ] && [ "$LOCKSTEP_REPEAT" = 1 ]; then',
      "  trap '' TERM",
      '  echo "hanging"; echo "hanging on stderr" >&2',
      '  sleep 600 &',
      '  sleep 600',
      'fi',
      'echo "end rank $LOCKSTEP_RANK"',
    ].join('\n');
    const p = (current = project(
      ['name: hangs', 'instances: 3', 'repeats: 2', 'run: sh hang.sh', 'startDelay: 300ms', 'timeouts:', '  run: 2s', '  instance: 2m'],
      { 'hang.sh': hang },
    ));
    const started = startRun(p);
    const outcome = await started.outcome;
    const [first, second] = outcome.status.repeats;
    expect(first!.results.map((r) => [r.rank, r.outcome])).toEqual([
      [0, 'success'],
      [1, 'timeout'],
      [2, 'success'],
    ]);
    const hung = first!.results[1]!;
    expect(hung).toMatchObject({ timedOut: true, exitCode: null });
    expect(['SIGTERM', 'SIGKILL']).toContain(hung.signal);
    expect(hung.durationMs).toBeGreaterThanOrEqual(2000);
    expect(hung.durationMs).toBeLessThan(10_000);
    expect(second!.results.map((r) => r.outcome)).toEqual(['success', 'success', 'success']);
    await withStore(p, async (store) => {
      const prefix = layout.node(outcome.runId, 1, 1);
      expect(text(await store.get(prefix + nodeFiles.stdout))).toBe('start rank 1 repeat 1\nhanging\n');
      expect(text(await store.get(prefix + nodeFiles.stderr))).toBe('hanging on stderr\n');
      expect(text(await store.get(layout.node(outcome.runId, 1, 0) + nodeFiles.stdout))).toBe('start rank 0 repeat 1\nend rank 0\n');
    });
    expect(outcome.status.state).toBe('failed');
  });
});

describe('fault 3: an agent is restarted mid-run', () => {
  it('at the barrier: it keeps its ready record (counted once, same readyAt) and the run completes', async () => {
    const script = 'if [ "$LOCKSTEP_RANK" = 0 ] && [ "$LOCKSTEP_REPEAT" = 1 ]; then sleep 4; fi\necho "rank $LOCKSTEP_RANK repeat $LOCKSTEP_REPEAT $LOCKSTEP_INSTANCE_ID"\n';
    const p = (current = project(
      ['name: restarts', 'instances: 4', 'repeats: 3', 'run: sh r.sh', 'startDelay: 300ms', 'timeouts:', '  barrier: 30s', '  instance: 2m'],
      { 'r.sh': script },
    ));
    const started = startRun(p);
    const runId = await started.runId;
    const state = await waitFor('the local state', () => localState(p.home, runId));
    // The last address is the last rank: not the slow rank 0, so it waits at the barrier of repeat 2.
    const victim = [...state.instances].sort((a, b) => numeric(a.address) - numeric(b.address))[3]!;
    const readyKey = layout.ready(runId, 2, victim.id);
    const before = await waitFor('the victim at the barrier of repeat 2', () => withStore(p, (store) => getJson<ReadyRecord>(store, readyKey)));
    expect(await withStore(p, (store) => store.get(layout.start(runId, 2)))).toBeUndefined();
    const newPid = await restartAgent(p.home, runId, victim.id);
    const outcome = await started.outcome;

    expect({ ok: outcome.ok, state: outcome.status.state, lost: outcome.lostInstances }).toEqual({ ok: true, state: 'done', lost: [] });
    await withStore(p, async (store) => {
      for (const repeat of [1, 2, 3]) {
        expect((await store.list(layout.readyPrefix(runId, repeat))).length).toBe(4);
        const results = outcome.status.repeats[repeat - 1]!.results;
        expect(results.map((r) => r.outcome)).toEqual(['success', 'success', 'success', 'success']);
        expect(results[3]!.instanceId).toBe(victim.id);
      }
      expect(await getJson<ReadyRecord>(store, readyKey)).toEqual(before);
      const start = (await getJson<StartRecord>(store, layout.start(runId, 2)))!;
      expect(start.members.find((m) => m.instanceId === victim.id)).toEqual(before);
      const log = text(await store.get(layout.agentLog(runId, victim.id)))!;
      expect(log).toContain('restarted (life 2)');
      expect(log).toContain('repeat 1: already recorded (success), skipping it');
      expect(log).toContain('artifact and setup are done already');
    });
    expect(alive(newPid)).toBe(false);
  });

  it('during the command: the repeat is recorded as an error with the logs written so far, leftovers are ended, the next repeat runs', async () => {
    const script = 'echo "begin rank $LOCKSTEP_RANK repeat $LOCKSTEP_REPEAT"\nif [ "$LOCKSTEP_REPEAT" = 1 ]; then sleep 3; fi\necho "end rank $LOCKSTEP_RANK"\n';
    const p = (current = project(
      ['name: restarts-mid-command', 'instances: 3', 'repeats: 2', 'run: sh r.sh', 'startDelay: 300ms', 'timeouts:', '  barrier: 30s', '  instance: 2m'],
      { 'r.sh': script },
    ));
    const started = startRun(p);
    const runId = await started.runId;
    const state = await waitFor('the local state', () => localState(p.home, runId));
    const victim = [...state.instances].sort((a, b) => numeric(a.address) - numeric(b.address))[2]!;
    const localLog = join(victim.workDir, 'repeats', '1', nodeFiles.stdout);
    await waitFor('the victim running its command', () => existsSync(localLog) && readFileSync(localLog, 'utf8').includes('begin'));
    await restartAgent(p.home, runId, victim.id);
    const outcome = await started.outcome;

    const [first, second] = outcome.status.repeats;
    expect(first!.results.map((r) => r.outcome)).toEqual(['success', 'success', 'error']);
    expect(first!.results[2]).toMatchObject({ instanceId: victim.id, exitCode: null, error: expect.stringContaining('the agent was restarted') });
    expect(second!.results.map((r) => r.outcome)).toEqual(['success', 'success', 'success']);
    expect(outcome.status.state).toBe('failed');
    await withStore(p, async (store) => {
      expect(text(await store.get(layout.node(runId, 1, 2) + nodeFiles.stdout))).toBe('begin rank 2 repeat 1\n');
      expect(text(await store.get(layout.node(runId, 2, 2) + nodeFiles.stdout))).toBe('begin rank 2 repeat 2\nend rank 2\n');
      expect(text(await store.get(layout.agentLog(runId, victim.id)))).toMatch(/restarted \(life 2\): picking up where the last agent stopped; ended \d+ process\(es\) it left running/);
    });
  });
});

describe('fault 4: the controller is killed mid-run', () => {
  it('the agents finish every repeat and upload; a later `lockstep status` shows the whole run; `lockstep gc` forgets it', async () => {
    const p = (current = project([
      'name: headless',
      'instances: 3',
      'repeats: 3',
      'run: sleep 1; echo "rank $LOCKSTEP_RANK repeat $LOCKSTEP_REPEAT"',
      'startDelay: 300ms',
      'timeouts:',
      '  instance: 2m',
    ]));
    const env = { ...process.env, LOCKSTEP_HOME: p.home } as Record<string, string>;
    const controller = spawn(process.execPath, [BIN, 'run', 'spec.yaml', '--json', '--store', p.store], { cwd: p.dir, env, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => controller.once('exit', (_, signal) => resolve(signal)));
    const runId = await waitFor('the run to launch', () => {
      const names = existsSync(localRunsDir(p.home)) ? readdirSync(localRunsDir(p.home)) : [];
      return names[0]?.replace(/\.json$/, '');
    });
    await waitFor('repeat 1 to start', () => existsSync(join(p.store, layout.start(runId, 1))));
    controller.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const status = await waitFor(
      'the agents to finish',
      () => {
        const shown = lockstep(['status', runId, '--store', p.store, '--json'], { cwd: p.dir, env });
        const parsed = JSON.parse(shown.stdout) as { state: string; repeats: Array<{ members: number; succeeded: number }> };
        return parsed.state === 'done' ? parsed : undefined;
      },
      60_000,
    );
    expect(status.repeats.map((r) => [r.members, r.succeeded])).toEqual([
      [3, 3],
      [3, 3],
      [3, 3],
    ]);
    await withStore(p, async (store) => {
      for (let repeat = 1; repeat <= 3; repeat++) {
        for (let rank = 0; rank < 3; rank++) {
          expect(text(await store.get(layout.node(runId, repeat, rank) + nodeFiles.stdout))).toBe(`rank ${rank} repeat ${repeat}\n`);
          expect((await getJson<NodeResult>(store, layout.node(runId, repeat, rank) + nodeFiles.result))?.outcome).toBe('success');
        }
      }
      const failures = await store.list(`${layout.run(runId)}repeats/1/failures/`);
      expect(failures).toEqual([]);
      expect(await getJson<FailureRecord>(store, layout.abort(runId))).toBeUndefined();
    });
    // The agents ended by themselves after the last repeat…
    await expectNothingLeftRunning(p.dir);
    // …and only the provider's record of them is left, which gc forgets.
    expect(readdirSync(localRunsDir(p.home))).toEqual([`${runId}.json`]);
    const gc = lockstep(['gc', '--json'], { cwd: p.dir, env });
    expect(gc.status).toBe(0);
    expect(JSON.parse(gc.stdout).local).toMatchObject({ ended: [], forgotten: [runId] });
    expect(readdirSync(localRunsDir(p.home))).toEqual([]);
  });
});
