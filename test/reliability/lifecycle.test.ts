/**
 * No instance left behind: the expiry every agent enforces on itself, `keep: true`, `lockstep
 * down`, Ctrl-C during `lockstep run`, and `lockstep gc` (local, and AWS through a mocked SDK).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DescribeInstancesCommand, DescribeRegionsCommand, TerminateInstancesCommand, type Instance } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent } from '../../src/agent/agent.ts';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import type { InstanceRecord } from '../../src/core/manifest.ts';
import { downRun } from '../../src/controller/down.ts';
import { collectGarbage } from '../../src/controller/gc.ts';
import { AwsClients } from '../../src/provider/aws/clients.ts';
import { TAG } from '../../src/core/tags.ts';
import { localRunsDir, writeRunState } from '../../src/provider/local/state.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson, type Store } from '../../src/store/store.ts';
import { lockstep } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp.ts';
import { mockAws, useFakeCredentials } from '../provider/aws/helpers.ts';
import { alive, expectNothingLeftRunning, localState, project, startRun, waitFor, type Project } from './harness.ts';

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

const base = (name: string, extra: string[]) => [`name: ${name}`, 'instances: 2', 'startDelay: 300ms', ...extra];

describe('expiry', () => {
  it('an instance past timeouts.instance kills its hanging command (even one that ignores SIGTERM), uploads its logs and ends itself', async () => {
    const p = (current = project(
      base('expires', ['repeats: 2', 'run: sh hang.sh', 'timeouts:', '  run: 5m', '  instance: 4s']),
      { 'hang.sh': "trap '' TERM\necho \"started $LOCKSTEP_RANK\"\nsleep 600\n" },
    ));
    const begun = Date.now();
    const outcome = await startRun(p).outcome;
    // Instance lifetime 4 s + at most 5 s between SIGTERM and SIGKILL + uploads; nowhere near `run: 5m`.
    expect(Date.now() - begun).toBeLessThan(30_000);
    expect(outcome.status.state).toBe('failed');
    const [first, second] = outcome.status.repeats;
    expect(first!.results.map((r) => r.outcome)).toEqual(['aborted', 'aborted']);
    expect(second!.results).toEqual([]);
    await withStore(p, async (store) => {
      for (const r of first!.results) {
        expect(text(await store.get(layout.node(outcome.runId, 1, r.rank) + nodeFiles.stdout))).toBe(`started ${r.rank}\n`);
        expect((await getJson<InstanceRecord>(store, layout.instance(outcome.runId, r.instanceId)))?.state).toBe('expired');
        expect(text(await store.get(layout.agentLog(outcome.runId, r.instanceId)))).toContain('the instance expired at');
      }
    });
  });

  it('gives up on work that hangs past the expiry (a store that never answers) and still ends', async () => {
    const dir = tempDir('rel-expiry');
    const never = new Promise<never>(() => {});
    const hanging: Store = {
      locator: 'hanging:',
      readsPerSecond: 4000,
      put: () => never,
      putIfAbsent: () => never,
      putFile: () => never,
      get: () => never,
      getFile: () => never,
      list: () => never,
      delete: () => never,
      dispose: async () => {},
    };
    const begun = Date.now();
    const end = await runAgent({
      identity: { instanceId: 'local-hang', address: '127.9.9.9', runId: 'r', store: 'hanging:', expiresAt: new Date(Date.now() + 300), workDir: dir, endInstance: 'exit' },
      store: hanging,
      expiryGraceMs: 300,
      log: () => {},
    });
    expect(end).toBe('expired');
    // Expiry 0.3 s + grace 0.3 s + at most 3 s trying to record it.
    expect(Date.now() - begun).toBeLessThan(5_000);
  });

  it('an instance lifetime longer than setTimeout can count (24.8 days) does not expire at once', async () => {
    const p = (current = project(base('long-lived', ['run: echo ok', 'timeouts:', '  instance: 30d'])));
    const outcome = await startRun(p).outcome;
    expect({ ok: outcome.ok, state: outcome.status.state }).toEqual({ ok: true, state: 'done' });
  });
});

describe('keep, and lockstep down', () => {
  it('keep: true leaves the instances up after the last repeat; `lockstep down` stops them', async () => {
    const p = (current = project(base('kept', ['keep: true', 'run: echo "kept $LOCKSTEP_RANK"'])));
    const outcome = await startRun(p).outcome;
    expect({ ok: outcome.ok, state: outcome.status.state }).toEqual({ ok: true, state: 'done' });
    expect(outcome.leftRunning).toHaveLength(2);
    const state = (await localState(p.home, outcome.runId))!;
    expect(state.instances.every((i) => alive(i.pid))).toBe(true);
    await withStore(p, async (store) => expect((await getJson<{ terminateWhenDone: boolean }>(store, layout.manifest(outcome.runId)))?.terminateWhenDone).toBe(false));

    const env = { LOCKSTEP_HOME: p.home };
    const down = lockstep(['down', outcome.runId, '--store', p.store, '--json'], { cwd: p.dir, env });
    expect(down.stderr).toBe('');
    expect(down.status).toBe(0);
    const report = JSON.parse(down.stdout);
    expect(report).toMatchObject({ runId: outcome.runId, provider: 'local', alreadyEnded: [] });
    expect([...report.ended].sort()).toEqual([...outcome.leftRunning!].sort());
    // They noticed the abort record and stopped by themselves.
    expect([...report.stoppedByThemselves].sort()).toEqual([...outcome.leftRunning!].sort());
    expect(state.instances.some((i) => alive(i.pid))).toBe(false);
    await withStore(p, async (store) => expect(await getJson(store, layout.abort(outcome.runId))).toMatchObject({ runId: outcome.runId, reason: 'lockstep down' }));
    expect(readdirSync(localRunsDir(p.home))).toEqual([]);
    expect(lockstep(['down', 'no-such-run', '--store', p.store], { cwd: p.dir, env })).toMatchObject({ status: 2 });
  });

  it('`down` on a running run: the agents end the command, upload its logs as aborted, and the instances end', async () => {
    const p = (current = project(base('downed', ['repeats: 3', 'run: echo "begun $LOCKSTEP_RANK"; sleep 60'])));
    const started = startRun(p);
    const runId = await started.runId;
    await waitFor('the start record', () => withStore(p, async (store) => (await store.get(layout.start(runId, 1))) !== undefined));
    const { instances } = (await localState(p.home, runId))!;
    const begun = (workDir: string) => readFileSync(join(workDir, 'repeats', '1', nodeFiles.stdout), 'utf8').startsWith('begun');
    await waitFor('both commands to run', () => instances.every((i) => existsSync(join(i.workDir, 'repeats', '1', nodeFiles.stdout)) && begun(i.workDir)));
    const down = await downRun({ runId, store: p.store, home: p.home, graceMs: 20_000 });
    expect(down.ended).toHaveLength(2);
    expect(down.stoppedByThemselves).toHaveLength(2);
    const outcome = await started.outcome;
    expect(outcome.status.state).toBe('failed');
    expect(outcome.status.repeats[0]!.results.map((r) => r.outcome)).toEqual(['aborted', 'aborted']);
    await withStore(p, async (store) => {
      expect(text(await store.get(layout.node(runId, 1, 1) + nodeFiles.stdout))).toBe('begun 1\n');
      for (const r of outcome.status.repeats[0]!.results) expect((await getJson<InstanceRecord>(store, layout.instance(runId, r.instanceId)))?.state).toBe('aborted');
    });
  });
});

describe('Ctrl-C during lockstep run', () => {
  async function interruptedRun(p: Project, args: string[]) {
    const env = { ...process.env, LOCKSTEP_HOME: p.home } as Record<string, string>;
    const child = spawn(process.execPath, [BIN, 'run', 'spec.yaml', '--store', p.store, ...args], { cwd: p.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const runId = await waitFor('the run to launch', () => {
      const names = existsSync(localRunsDir(p.home)) ? readdirSync(localRunsDir(p.home)) : [];
      return names[0]?.replace(/\.json$/, '');
    });
    const pids = (await localState(p.home, runId))!.instances.map((i) => i.pid);
    await waitFor('repeat 1 to start', () => existsSync(join(p.store, layout.start(runId, 1))));
    child.kill('SIGINT');
    const code = await exited;
    return { runId, code, stdout, stderr, pids };
  }

  it('with no terminal, ends the run\'s instances (through the abort record: the logs are uploaded) and exits 130', async () => {
    const p = (current = project(base('interrupted', ['repeats: 2', 'run: echo "begun $LOCKSTEP_RANK"; sleep 60'])));
    const { runId, code, stdout, stderr, pids } = await interruptedRun(p, []);
    expect(code).toBe(130);
    expect(stderr).toContain(`Interrupted: ending the 2 instance(s) of ${runId}`);
    expect(pids.some(alive)).toBe(false);
    // The summary, read after the instances ended, and `lockstep status` say the same: repeat 1 stopped, repeat 2 never ran.
    expect(stdout).toMatch(/^1\s+aborted\s/m);
    expect(stdout).toMatch(/^2\s+not run\s/m);
    expect(stdout).toMatch(/^Aborted \(lockstep run was interrupted\) at \S+: repeat 1 stopped; repeat 2 not run$/m);
    expect(stdout).toMatch(/^Ended: 2 instance\(s\) ended \(local-[0-9a-f]+, local-[0-9a-f]+\)/m);
    const status = lockstep(['status', runId, '--store', p.store, '--json'], { cwd: p.dir, env: { LOCKSTEP_HOME: p.home } });
    expect(JSON.parse(status.stdout).repeats.map((r: { state: string }) => r.state)).toEqual(['aborted', 'not run']);
    const shown = lockstep(['status', runId, '--store', p.store], { cwd: p.dir, env: { LOCKSTEP_HOME: p.home } }).stdout;
    expect(shown).toMatch(/^State: aborted;/m);
    await withStore(p, async (store) => {
      expect(await getJson(store, layout.abort(runId))).toMatchObject({ reason: 'lockstep run was interrupted' });
      expect(text(await store.get(layout.node(runId, 1, 0) + nodeFiles.stdout))).toBe('begun 0\n');
    });
  });

  it('--yes ends them without asking; --json reports what was left running (nothing)', async () => {
    const p = (current = project(base('interrupted-json', ['run: sleep 60'])));
    const { code, stdout, pids } = await interruptedRun(p, ['--yes', '--json']);
    expect(code).toBe(130);
    expect(JSON.parse(stdout)).toMatchObject({ ok: false, leftRunning: [] });
    expect(pids.some(alive)).toBe(false);
  });

  it('in a terminal, asks; `n` leaves the instances running and they finish the run by themselves', async () => {
    const p = (current = project(base('asked', ['repeats: 2', 'run: sleep 2; echo "done $LOCKSTEP_RANK"'])));
    // `script` gives the controller a terminal; Ctrl-C is typed into it, as a user would.
    const env = { ...process.env, LOCKSTEP_HOME: p.home, COLUMNS: '200' } as Record<string, string>;
    const child = spawn('script', ['-qfec', `${process.execPath} ${BIN} run spec.yaml --store ${p.store}`, '/dev/null'], { cwd: p.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const runId = await waitFor('the run to launch', () => {
      const names = existsSync(localRunsDir(p.home)) ? readdirSync(localRunsDir(p.home)) : [];
      return names[0]?.replace(/\.json$/, '');
    });
    await waitFor('repeat 1 to start', () => existsSync(join(p.store, layout.start(runId, 1))));
    child.stdin.write('\x03');
    await waitFor('the question', () => output.includes(`Interrupted. End the 2 instance(s) of ${runId}? [Y/n]`));
    child.stdin.write('n\r');
    expect(await exited).toBe(130);
    expect(output).toMatch(/Left running: local-[0-9a-f]+, local-[0-9a-f]+; end them with `lockstep down /);
    const status = await waitFor(
      'the agents to finish',
      () => {
        const shown = JSON.parse(lockstep(['status', runId, '--store', p.store, '--json'], { cwd: p.dir, env: { LOCKSTEP_HOME: p.home } }).stdout);
        return shown.state === 'done' ? shown : undefined;
      },
      30_000,
    );
    expect(status.repeats.map((r: { succeeded: number }) => r.succeeded)).toEqual([2, 2]);
  });

  it('when told not to end them, the instances go on by themselves and finish the run', async () => {
    const p = (current = project(base('left-running', ['repeats: 2', 'run: sleep 1; echo "done $LOCKSTEP_RANK"'])));
    const interrupt = new AbortController();
    const asked: Array<{ runId: string; instances: number }> = [];
    const started = startRun(p, {
      signal: interrupt.signal,
      confirmEnd: async (run) => {
        asked.push(run);
        return false;
      },
    });
    const runId = await started.runId;
    await waitFor('repeat 1 to start', () => existsSync(join(p.store, layout.start(runId, 1))));
    interrupt.abort();
    const outcome = await started.outcome;
    expect(asked).toEqual([{ runId, instances: 2 }]);
    expect(outcome.leftRunning).toHaveLength(2);
    const env = { LOCKSTEP_HOME: p.home };
    await waitFor('the agents to finish', () => JSON.parse(lockstep(['status', runId, '--store', p.store, '--json'], { cwd: p.dir, env }).stdout).state === 'done', 30_000);
    await expectNothingLeftRunning(p.dir);
  });
});

describe('lockstep gc', () => {
  /** A process that looks like a local agent (its command line names agent.mjs) and does nothing. */
  function fakeAgent(home: string, runId: string, id: string, env: Record<string, string> = {}) {
    const workDir = join(home, 'local', 'work', runId, id);
    mkdirSync(workDir, { recursive: true });
    writeFileSync(join(workDir, 'agent.mjs'), 'setInterval(() => {}, 1000);\n');
    const child = spawn(process.execPath, [join(workDir, 'agent.mjs')], {
      detached: true,
      stdio: 'ignore',
      env: { PATH: process.env.PATH ?? '', LOCKSTEP_WORKDIR: workDir, LOCKSTEP_RUN_ID: runId, LOCKSTEP_INSTANCE_ID: id, ...env },
    });
    child.unref();
    return { id, pid: child.pid!, address: '127.77.0.1', workDir };
  }

  it('ends expired local instances and leftovers of dead agents, forgets runs with no agent, and leaves live runs alone', async () => {
    const dir = tempDir('rel-gc');
    current = { dir, home: join(dir, 'home'), spec: '', store: join(dir, 'store') };
    const home = current.home;
    const hour = 3_600_000;
    const expired = fakeAgent(home, 'run-expired', 'local-exp');
    const live = fakeAgent(home, 'run-live', 'local-live');
    // A command whose agent died: no state names it.
    const leftover = fakeAgent(home, 'run-dead', 'local-dead');
    await writeRunState(home, { runId: 'run-expired', createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() - hour).toISOString(), instances: [expired] });
    await writeRunState(home, { runId: 'run-live', createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() + hour).toISOString(), instances: [live] });
    await writeRunState(home, { runId: 'run-gone', createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() + hour).toISOString(), instances: [{ id: 'local-gone', pid: 999_999_999, address: '127.77.0.2', workDir: dir }] });
    await waitFor('the fake agents to start', () => [expired, live, leftover].every((a) => alive(a.pid)));

    const dry = await collectGarbage({ home, dryRun: true, leftoverMinAgeMs: 0 });
    expect(dry.local.ended).toEqual([{ runId: 'run-expired', instanceId: 'local-exp', reason: 'expired' }]);
    expect([expired, live, leftover].every((a) => alive(a.pid))).toBe(true);

    const report = await collectGarbage({ home, leftoverMinAgeMs: 0 });
    expect(report.local.ended).toEqual([{ runId: 'run-expired', instanceId: 'local-exp', reason: 'expired' }]);
    expect(report.local.forgotten).toEqual(['run-gone']);
    expect(report.local.leftovers.map((l) => [l.pid, l.instanceId])).toEqual([[leftover.pid, 'local-dead']]);
    await waitFor('gc to end them', () => !alive(expired.pid) && !alive(leftover.pid));
    expect(alive(live.pid)).toBe(true);
    expect(readdirSync(localRunsDir(home)).sort()).toEqual(['run-live.json']);
    // The working folders of the runs with no live agent left go (the dry run listed them first).
    expect(dry.local.folders.map((f) => f.runId).sort()).toEqual(['run-dead', 'run-expired']);
    expect(report.local.folders.map((f) => f.runId).sort()).toEqual(['run-dead', 'run-expired']);
    expect(report.local.freedBytes).toBeGreaterThan(0);
    expect(readdirSync(join(home, 'local', 'work'))).toEqual(['run-live']);
    // The CLI prints the same, and a second pass finds nothing more to do.
    const again = lockstep(['gc', '--json'], { cwd: dir, env: { LOCKSTEP_HOME: home } });
    expect(JSON.parse(again.stdout).local).toEqual({ ended: [], forgotten: [], leftovers: [], networks: [], kept: [], folders: [], freedBytes: 0 });
    process.kill(live.pid, 'SIGKILL');
  });

  it('leaves the instances a run keeps (keep: true) to their expiry or `lockstep down`', async () => {
    const p = (current = project(base('kept-then-gc', ['keep: true', 'run: echo ok'])));
    const outcome = await startRun(p).outcome;
    expect(outcome.leftRunning).toHaveLength(2);
    const report = await collectGarbage({ home: p.home, leftoverMinAgeMs: 0 });
    expect(report.local.ended).toEqual([]);
    expect(report.local.kept).toEqual([{ runId: outcome.runId, instances: 2, expiresAt: expect.any(String) }]);
    expect(report.local.folders).toEqual([]);
    const state = await localState(p.home, outcome.runId);
    expect(state!.instances.every((i) => alive(i.pid))).toBe(true);
    const down = await downRun({ runId: outcome.runId, store: p.store, home: p.home, graceMs: 10_000 });
    expect(down.ended).toHaveLength(2);
    await waitFor('the kept agents to end', () => state!.instances.every((i) => !alive(i.pid)));
    expect(readdirSync(localRunsDir(p.home))).toEqual([]);
    // Now that it is over, its working folder goes.
    expect((await collectGarbage({ home: p.home, leftoverMinAgeMs: 0 })).local.folders.map((f) => f.runId)).toEqual([outcome.runId]);
  });

  it('with --aws: terminates every lockstep EC2 instance past its expiry, in every region, and only those', async () => {
    const restoreEnv = useFakeCredentials();
    const aws = mockAws();
    const clients = new AwsClients();
    try {
      const now = new Date('2030-06-01T12:00:00Z');
      const ec2 = (id: string, state: string, expiresAt?: string): Instance => ({
        InstanceId: id,
        State: { Name: state as 'running' },
        PrivateIpAddress: '10.0.0.1',
        Tags: [{ Key: TAG.runId, Value: `run-of-${id}` }, ...(expiresAt ? [{ Key: TAG.expiresAt, Value: expiresAt }] : [])],
      });
      const byRegion: Record<string, Instance[]> = {
        'us-east-1': [ec2('i-expired1', 'running', '2030-06-01T11:00:00.000Z'), ec2('i-fresh', 'running', '2030-06-01T13:00:00.000Z'), ec2('i-gone', 'terminated', '2030-06-01T10:00:00.000Z')],
        'eu-west-1': [ec2('i-expired2', 'pending', '2030-06-01T11:59:00.000Z'), ec2('i-untagged', 'running')],
        'ap-south-1': [],
      };
      aws.ec2.on(DescribeRegionsCommand).resolves({ Regions: Object.keys(byRegion).map((RegionName) => ({ RegionName })) });
      aws.ec2.on(DescribeInstancesCommand).callsFake(async function (this: unknown, _input: unknown, getClient: () => { config: { region: () => Promise<string> } }) {
        const region = await getClient().config.region();
        return { Reservations: [{ Instances: byRegion[region] ?? [] }] };
      });
      aws.ec2.on(TerminateInstancesCommand).resolves({});

      const dry = await collectGarbage({ home: join(tempDir('rel-gc-aws'), 'home'), now, dryRun: true, aws: { clients } });
      expect(dry.aws!.ended.map((i) => i.id).sort()).toEqual(['i-expired1', 'i-expired2']);
      expect(aws.ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);

      const report = await collectGarbage({ home: join(tempDir('rel-gc-aws'), 'home'), now, aws: { clients } });
      expect(report.aws).toMatchObject({ regions: ['ap-south-1', 'eu-west-1', 'us-east-1'], running: 1, withoutExpiry: [{ id: 'i-untagged', region: 'eu-west-1' }] });
      const terminated = await Promise.all(
        aws.ec2.commandCalls(TerminateInstancesCommand).map(async (call) => [await (call.thisValue as { config: { region: () => Promise<string> } }).config.region(), call.args[0].input.InstanceIds]),
      );
      expect(terminated.sort()).toEqual([
        ['eu-west-1', ['i-expired2']],
        ['us-east-1', ['i-expired1']],
      ]);
    } finally {
      clients.destroy();
      aws.restore();
      restoreEnv();
    }
  });
});
