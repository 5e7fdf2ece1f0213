import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { tcCommands } from '../../src/agent/netem.ts';
import { checkNetnsSupport, createRunNetwork, findIp, listLockstepNetworks, networkTag, removeRunNetwork } from '../../src/provider/local/netns.ts';
import { resolveGroups } from '../../src/spec/groups.ts';
import { planFor } from '../../src/spec/network-plan.ts';
import type { GroupSpec } from '../../src/spec/schema.ts';
import { startS3Server } from '../helpers/s3-server.ts';
import { tempDir } from '../helpers/temp.ts';
import { leftovers, metricByPeer, missingSupport, PING_MESH, PROBE, removeStartedNetworks, runInNamespaces, withEnv, type NetnsRun } from './netns-run.ts';

// Namespaces need Linux, root and iproute2 (and the kernel's VXLAN): with them, the run's WAN relay
// emulates delay, jitter, loss and rate in user space. The tc path (`LOCKSTEP_NETEM=tc`, as on
// EC2) needs the kernel's tbf and htb for its bandwidth tests; netem, which this machine may lack,
// only for the check that tc accepts the agent's commands. Each group of tests is skipped, with the
// reason printed, only when the machine lacks what it needs.
const noNetns = missingSupport();
const noNetem = noNetns ?? missingSupport('netem');
const noShaping = noNetns ?? missingSupport('tbf') ?? missingSupport('htb');
for (const [what, reason] of [
  ['network namespace tests', noNetns],
  ['tc bandwidth (tbf/htb) tests', noShaping],
] as const) {
  if (reason) console.warn(`SKIPPED ${what}: ${reason}`);
}

const PING = 'node ping-mesh.mjs --hosts {{hostsFile}} --rank {{rank}} --rounds 10 --size 64';

afterAll(removeStartedNetworks);

/**
 * Round trips rank → peer as ping-mesh reports them: min, median, mean and max of its rounds. The
 * checks are on the minimum: an emulated delay holds up every round, while on a busy machine a round
 * now and then waits for a CPU, which says nothing about the network. A pair not delayed is checked
 * against the smallest delay a wrong rule would add, never against a time the machine must meet.
 */
function roundTrips(run: NetnsRun): Array<{ from: number; to: number; mean: number; min: number; median: number; max: number }> {
  const trips = [];
  for (const [from, lines] of run.lines) {
    const mean = metricByPeer(lines, 'rtt_ms');
    const min = metricByPeer(lines, 'rtt_min_ms');
    const median = metricByPeer(lines, 'rtt_median_ms');
    const max = metricByPeer(lines, 'rtt_max_ms');
    for (const [to, value] of mean) trips.push({ from, to, mean: value, min: min.get(to)!, median: median.get(to)!, max: max.get(to)! });
  }
  return trips;
}

function expectCleanRun(run: NetnsRun, instances: number): void {
  expect(leftovers(run.outcome.runId)).toEqual([]);
  expect(run.outcome.status.repeats[0]!.results.map((r) => r.outcome)).toEqual(Array(instances).fill('success'));
  const { status, lostInstances } = run.outcome;
  expect({ state: status.state, lost: lostInstances, failures: status.repeats[0]!.failures }).toEqual({ state: 'done', lost: [], failures: [] });
  expect(run.results.map((r) => r.address)).toEqual(Array.from({ length: instances }, (_, i) => `198.18.0.${i + 1}`));
}

describe.skipIf(noNetns)('local instances in network namespaces', () => {
  it('N=4 without delay: each its own 198.18 address, every pair reaches the other, nothing left after', async () => {
    const run = await runInNamespaces({ instances: 4, app: PING_MESH, run: PING });
    expectCleanRun(run, 4);
    const trips = roundTrips(run);
    expect(trips).toHaveLength(12);
    for (const trip of trips) expect(Number.isFinite(trip.median), `rank ${trip.from} → ${trip.to}`).toBe(true);
    // No `network`: the agents ran no tc and recorded none.
    expect(run.results.every((r) => r.netem === undefined)).toBe(true);
    console.log(`netns, no delay: round trips ${summary(trips)}`);
  });

  it('records a failure to apply the emulation (tc) as the error of every node, runs no command, and removes everything', async () => {
    const fakeTc = join(tempDir('tc'), 'tc');
    writeFileSync(fakeTc, '#!/bin/sh\necho "Error: Specified qdisc kind is unknown." >&2\nexit 2\n');
    chmodSync(fakeTc, 0o755);
    const run = await withEnv({ LOCKSTEP_NETEM: 'tc', LOCKSTEP_TC: fakeTc }, () =>
      runInNamespaces({ instances: 2, app: PING_MESH, run: PING, spec: ['network:', '  delay: 50ms'] }),
    );
    expect(run.outcome.ok).toBe(false);
    expect(run.results).toHaveLength(2);
    for (const result of run.results) {
      expect(result.outcome).toBe('error');
      expect(result.error).toContain('network emulation could not be applied: This kernel has no `netem` queueing discipline');
      expect(result.netem).toMatchObject({ mechanism: 'tc', applied: false, interface: `ls-${networkTag(run.outcome.runId)}-n${result.rank}` });
      expect(result.netem!.commands).toEqual([`tc qdisc replace dev ${result.netem!.interface} root handle 1: netem limit 5000 delay 50000us`]);
    }
    expect([...run.lines.values()].flat()).toEqual([]);
    expect(leftovers(run.outcome.runId)).toEqual([]);
  });

  it('refuses an S3 store, which the namespaces cannot reach, before making anything', async () => {
    const server = await startS3Server();
    const saved = Object.fromEntries(Object.keys(server.env).map((key) => [key, process.env[key]]));
    Object.assign(process.env, server.env);
    try {
      const before = (await listLockstepNetworks()).map((n) => n.tag);
      await expect(runInNamespaces({ instances: 2, app: PING_MESH, run: PING, store: server.locator('netns/') })).rejects.toThrow(
        '`isolation: netns` needs a folder store',
      );
      expect((await listLockstepNetworks()).map((n) => n.tag).filter((tag) => !before.includes(tag))).toEqual([]);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      await server.stop();
    }
  });

  it('has tc accept every command the agent makes (on a veth pair of its own namespace)', () => {
    const ip = findIp()!;
    const scratch = `ls-${randomBytes(3).toString('hex')}-0`;
    const inScratch = (...args: string[]) => spawnSync(ip, ['netns', 'exec', scratch, ...args], { encoding: 'utf8' });
    execFileSync(ip, ['netns', 'add', scratch]);
    try {
      execFileSync(ip, ['-n', scratch, 'link', 'add', 'ls-probe-a', 'type', 'veth', 'peer', 'name', 'ls-probe-b']);
      execFileSync(ip, ['-n', scratch, 'link', 'set', 'ls-probe-a', 'up']);
      const groups = resolveGroups([{ name: 'eu', ranks: '0-1', params: {} }, { name: 'us', ranks: '2-', params: {} }] as GroupSpec[], 4);
      const addresses = ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4'];
      const plans = [
        { default: { delayMs: 50, jitterMs: 5, lossPercent: 0.5, rateBitsPerSecond: 1e8 }, rules: [] },
        planFor({ jitterMs: 2, lossPercent: 1, rateBitsPerSecond: 5e7, overrides: [], latency: { eu: { us: 40, eu: 0.5 } } }, groups, addresses, 0),
      ];
      for (const plan of plans) {
        for (const args of tcCommands('ls-probe-a', plan)) {
          const result = inScratch('tc', ...args);
          if (result.status === 0) continue;
          // Without netem in the kernel, tc has parsed the arguments before the kernel says so.
          expect({ command: args.join(' '), stderr: result.stderr }).toMatchObject({ stderr: expect.stringContaining('qdisc kind is unknown') });
          expect(args).toContain('netem');
          expect(noNetem).toBeTruthy();
          if (args.includes('root')) break;
        }
        if (plan.rules.length > 0) {
          // Rank 0's matrix row: 198.18.0.2 (eu) to class 1:11, 198.18.0.3 and .4 (us) to 1:12.
          const filters = inScratch('tc', 'filter', 'show', 'dev', 'ls-probe-a').stdout;
          expect(filters.match(/flowid 1:11/g)).toHaveLength(1);
          expect(filters.match(/flowid 1:12/g)).toHaveLength(2);
        }
        inScratch('tc', 'qdisc', 'del', 'dev', 'ls-probe-a', 'root');
      }
    } finally {
      execFileSync(ip, ['netns', 'delete', scratch]);
    }
  });

  it('lists a run network by its run id and expiry, and removes it with the processes inside', async () => {
    const ip = findIp()!;
    const runId = `gc-test-${Date.now()}`;
    const expiresAt = new Date(Date.now() + 60_000);
    const network = await createRunNetwork({ runId, count: 2, expiresAt, ip });
    try {
      expect(network.instances.map((i) => i.address)).toEqual(['198.18.0.1', '198.18.0.2']);
      const sleeper = spawn(ip, ['netns', 'exec', network.instances[1]!.namespace, 'sleep', '60'], { stdio: 'ignore' });
      const exited = new Promise<boolean>((resolve) => sleeper.once('exit', () => resolve(true)));
      let listed = (await listLockstepNetworks()).find((n) => n.tag === network.tag);
      // Until the sleeper is inside its namespace.
      while (listed?.processes === 0) {
        await delay(20);
        listed = (await listLockstepNetworks()).find((n) => n.tag === network.tag);
      }
      expect(listed).toEqual({
        tag: network.tag,
        runId,
        expiresAt: expiresAt.toISOString(),
        namespaces: [`ls-${network.tag}-0`, `ls-${network.tag}-1`, `ls-${network.tag}-hub`],
        processes: 1,
      });
      expect(await removeRunNetwork(runId)).toEqual(listed!.namespaces);
      expect(await Promise.race([exited, delay(3000, false)])).toBe(true);
      expect((await listLockstepNetworks()).find((n) => n.tag === network.tag)).toBeUndefined();
      expect(leftovers(runId)).toEqual([]);
      expect(await removeRunNetwork(runId)).toEqual([]);
    } finally {
      await removeRunNetwork(runId).catch(() => {});
    }
  });
});

describe.skipIf(noShaping)('bandwidth in network namespaces with tc (tbf, htb; LOCKSTEP_NETEM=tc, as on EC2)', () => {
  it('limits a node to `rate` while its command runs (tbf), and removes the limit after', async () => {
    const run = await withEnv({ LOCKSTEP_NETEM: 'tc' }, () =>
      runInNamespaces({ instances: 2, app: PROBE, run: 'node probe.mjs --hosts {{hostsFile}} --rank {{rank}} --bytes 1000000', spec: ['network:', '  rate: 8mbit'] }),
    );
    expectCleanRun(run, 2);
    const [first] = run.lines.get(0)!;
    expect(first!.qdisc).toMatch(/qdisc tbf 1: root .*rate 8Mbit/);
    const transfer = run.lines.get(0)!.find((l) => l.metric === 'transfer_ms')!;
    expect(transfer.bytes).toBe(1_000_000);
    // 8 Mbit/s moves 1 MB in 1 s.
    expect(transfer.value as number).toBeGreaterThan(800);
    for (const result of run.results) expect(result.netem).toMatchObject({ mechanism: 'tc', applied: true, removed: true, plan: { default: { rateBitsPerSecond: 8_000_000 }, rules: [] } });
    console.log(`netns, tc, rate 8mbit: 1 MB in ${(transfer.value as number).toFixed(0)} ms`);
  });

  it('sends traffic to a group of the latency matrix through its own htb class, chosen by destination address', async () => {
    const run = await withEnv({ LOCKSTEP_NETEM: 'tc' }, () =>
      runInNamespaces({
        instances: 3,
        app: PROBE,
        run: 'node probe.mjs --hosts {{hostsFile}} --rank {{rank}} --to 2 --bytes 500000',
        spec: ['groups:', '  - name: a', '    ranks: "0"', '  - name: b', '    ranks: "1-"', 'network:', '  rate: 8mbit', '  latency:', '    a: { b: 0ms }'],
      }),
    );
    expectCleanRun(run, 3);
    const [first] = run.lines.get(0)!;
    expect(first!.qdisc).toMatch(/qdisc htb 1: root/);
    // 198.18.0.2 and 198.18.0.3 as u32 matches (hex), both to class 1:11.
    expect((first!.filter as string).match(/flowid 1:11/g)).toHaveLength(2);
    expect(first!.filter).toContain('match c6120002/ffffffff at 16');
    expect(first!.filter).toContain('match c6120003/ffffffff at 16');
    const classes = run.lines.get(0)!.find((l) => l.classes)!.classes as string;
    const sent = (id: string) => Number(new RegExp(`class htb 1:${id} [\\s\\S]*?Sent (\\d+) bytes`).exec(classes)?.[1]);
    expect(sent('11')).toBeGreaterThan(500_000);
    expect(sent('10')).toBeLessThan(100_000);
    expect(run.results[0]!.netem!.plan.rules).toEqual([{ group: 'b', to: ['198.18.0.2', '198.18.0.3'], impairment: { rateBitsPerSecond: 8_000_000, delayMs: 0 } }]);
    // Ranks 1 and 2 have no row in the matrix: tbf alone.
    expect(run.lines.get(1)![0]!.qdisc).toMatch(/qdisc tbf 1: root/);
  });
});

describe.skipIf(noNetns)('delay, loss and rate in network namespaces (the WAN relay)', () => {
  it('N=4 with `delay: 50ms` on all: every round trip between two nodes is ≥ 100 ms, never delayed twice (≥ 150 ms), nothing left after', async () => {
    const run = await runInNamespaces({ instances: 4, app: PING_MESH, run: PING, spec: ['network:', '  delay: 50ms'] });
    expectCleanRun(run, 4);
    const trips = roundTrips(run);
    expect(trips).toHaveLength(12);
    for (const trip of trips) {
      expect(trip.min, `rank ${trip.from} → ${trip.to}`).toBeGreaterThanOrEqual(100);
      expect(trip.min, `rank ${trip.from} → ${trip.to}`).toBeLessThan(150);
    }
    for (const result of run.results) expect(result.netem).toMatchObject({ mechanism: 'relay', applied: true, removed: true, plan: { default: { delayMs: 50 }, rules: [] } });
    console.log(`netns, relay, delay 50ms: round trips ${summary(trips)}`);
  });

  it('delays one group only: round trips between two undelayed nodes carry none of its 50 ms', async () => {
    const run = await runInNamespaces({
      instances: 4,
      app: PING_MESH,
      run: PING,
      spec: ['groups:', '  - name: slow', '    ranks: "2-"', 'network:', '  overrides:', '    - group: slow', '      delay: 50ms'],
    });
    expectCleanRun(run, 4);
    const slow = (rank: number) => rank >= 2;
    const trips = roundTrips(run);
    expect(trips).toHaveLength(12);
    for (const trip of trips) {
      const label = `rank ${trip.from} → ${trip.to}`;
      const delayed = Number(slow(trip.from)) + Number(slow(trip.to));
      expect(trip.min, label).toBeGreaterThanOrEqual(50 * delayed);
      expect(trip.min, label).toBeLessThan(50 * delayed + 50);
    }
    expect(run.results.filter((r) => r.netem?.commands.length === 0).map((r) => r.rank)).toEqual([0, 1]);
    for (const result of run.results) expect(result.netem).toMatchObject({ mechanism: 'relay', applied: true, removed: true });
    const undelayed = trips.filter((t) => !slow(t.from) && !slow(t.to));
    const oneSlow = trips.filter((t) => slow(t.from) !== slow(t.to));
    const bothSlow = trips.filter((t) => slow(t.from) && slow(t.to));
    console.log(`netns, relay, group slow delayed 50ms: undelayed pairs ${summary(undelayed)}; one delayed ${summary(oneSlow)}; both delayed ${summary(bothSlow)}`);
  });

  it('applies a latency matrix per destination group, loss, and a rate', async () => {
    const run = await runInNamespaces({
      instances: 3,
      app: PING_MESH,
      run: PING,
      spec: ['groups:', '  - name: a', '    ranks: "0"', '  - name: b', '    ranks: "1-"', 'network:', '  latency:', '    a: { b: 40ms }', '    b: { a: 20ms }', '  overrides:', '    - ranks: "2"', '      loss: 1%'],
    });
    expectCleanRun(run, 3);
    for (const trip of roundTrips(run)) {
      const label = `rank ${trip.from} → ${trip.to}`;
      if (trip.from === 0 || trip.to === 0) {
        // 40 ms out of a, 20 ms out of b.
        expect(trip.min, label).toBeGreaterThanOrEqual(60);
        expect(trip.min, label).toBeLessThan(80);
      } else expect(trip.min, `${label}: not delayed as b → a (20 ms each way)`).toBeLessThan(40);
    }
    expect(run.results[0]!.netem!.plan.rules).toEqual([{ group: 'b', to: ['198.18.0.2', '198.18.0.3'], impairment: { delayMs: 40 } }]);
    expect(run.results[2]!.netem!.plan.default).toEqual({ lossPercent: 1 });

    const rated = await runInNamespaces({ instances: 2, app: PROBE, run: 'node probe.mjs --hosts {{hostsFile}} --rank {{rank}} --bytes 1000000', spec: ['network:', '  rate: 8mbit'] });
    expectCleanRun(rated, 2);
    const transfer = rated.lines.get(0)!.find((l) => l.metric === 'transfer_ms')!;
    expect(transfer.bytes).toBe(1_000_000);
    // 8 Mbit/s moves 1 MB (and its headers) in a little over 1 s; how much over is the machine's.
    expect(transfer.value as number).toBeGreaterThan(900);
    expect(rated.results[0]!.netem).toMatchObject({ mechanism: 'relay', applied: true, removed: true });
    console.log(`netns, relay, rate 8mbit: 1 MB in ${(transfer.value as number).toFixed(0)} ms`);
  });
});

describe('when namespaces are not available', () => {
  it('says what is missing and names loopback mode', () => {
    const cases = [
      [{ platform: 'darwin' as const }, 'needs Linux network namespaces'],
      [{ platform: 'linux' as const, uid: 1000 }, 'needs root'],
      [{ platform: 'linux' as const, uid: 0, ip: null }, 'install iproute2'],
    ] as const;
    for (const [check, problem] of cases) {
      expect(() => checkNetnsSupport(check)).toThrow(problem);
      expect(() => checkNetnsSupport(check)).toThrow('isolation: loopback');
    }
    expect(() => checkNetnsSupport({ platform: 'linux', uid: 0, ip: '/usr/sbin/ip', store: 's3://bucket/prefix' })).toThrow('needs a folder store');
  });
});

function summary(trips: ReadonlyArray<{ mean: number; min: number; median: number; max: number }>): string {
  const min = Math.min(...trips.map((t) => t.min));
  const max = Math.max(...trips.map((t) => t.max));
  const medians = trips.map((t) => t.median).sort((a, b) => a - b);
  const mean = trips.reduce((sum, t) => sum + t.mean, 0) / trips.length;
  return `min ${min.toFixed(2)}, median of medians ${medians[Math.floor(medians.length / 2)]!.toFixed(2)}, mean ${mean.toFixed(2)}, max ${max.toFixed(2)} ms over ${trips.length} ordered pairs`;
}
