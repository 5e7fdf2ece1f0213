import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FaultRecord } from '../../src/core/faults.ts';
import type { NodeResult } from '../../src/core/manifest.ts';
import { leftovers, missingSupport, removeStartedNetworks, runInNamespaces, withEnv, type NetnsRun } from '../network/netns-run.ts';
import { missingFaultSupport } from './namespaces.ts';

/**
 * Every kind of fault on the local `netns` mode, with real processes and real packets: the example's
 * heartbeat app (UDP pings every 50 ms, one JSON line per answer with its arrival time).
 */
const missing = missingSupport() ?? missingFaultSupport();
if (missing) console.warn(`SKIPPED fault runs in network namespaces: ${missing}`);
const noTbf = missing ?? missingSupport('tbf');
if (noTbf && !missing) console.warn(`SKIPPED the network fault with tc: ${noTbf}`);

const HEARTBEAT = resolve('examples/faults/app');
const run = (seconds: number) => `node heartbeat.mjs --hosts {{hostsFile}} --rank {{rank}} --duration ${seconds} --interval 50 --state {{outputDir}}`;

/**
 * The agent stamps with its monotonic clock from its start (`preciseNow`), the app with the wall
 * clock (`Date.now`): two processes' clocks can differ by tens of ms while the system clock is
 * slewed. Comparisons between them leave this much at each edge of a window.
 */
const SKEW = 50;

afterAll(removeStartedNetworks);

/**
 * When the pings `rank` sent to `peer` and got answered were sent (epoch ms: the answer's arrival
 * time less its round trip). Send times, not arrival times, are what the cut decides: on a busy
 * machine an answer that arrived before the cut may be read, and stamped, a while later.
 */
function answeredPings(run: NetnsRun, rank: number, peer: number): number[] {
  return run.lines.get(rank)!.filter((l) => l.metric === 'rtt_ms' && l.peer === peer).map((l) => Number(l.time) - Number(l.value));
}
const lost = (run: NetnsRun, rank: number, peer: number) => Number(run.lines.get(rank)!.find((l) => l.metric === 'lost' && l.peer === peer)!.value);
const rttsOf = (run: NetnsRun, rank: number) => run.lines.get(rank)!.filter((l) => l.metric === 'rtt_ms').map((l) => ({ sent: Number(l.time) - Number(l.value), time: Number(l.time), rtt: Number(l.value) }));
const record = (result: NodeResult | undefined, id: string): FaultRecord => result!.faults!.find((f) => f.id === id)!;
/** The longest time between two of `times` within (from, to), the window's edges counted. */
const longestGap = (times: number[], from: number, to: number) => {
  const inside = [from, ...times.filter((t) => t > from && t < to).sort((a, b) => a - b), to];
  return Math.max(...inside.slice(1).map((t, i) => t - inside[i]!));
};

/**
 * The pair's link is cut for the fault's window: both nodes' rules hold from the later apply (done
 * when `nft` returns) to the earlier heal (which may take effect any time after it was due), and no
 * ping `a` sent to `b` then is answered; pings before and after are.
 */
function expectCut(result: NetnsRun, id: string, a: number, b: number): void {
  const ra = record(result.results.find((r) => r.rank === a), id);
  const rb = record(result.results.find((r) => r.rank === b), id);
  expect(ra).toMatchObject({ healedBy: 'window' });
  const cutFrom = Math.max(ra.appliedAt!, rb.appliedAt!);
  const cutTo = Math.min(ra.healDueAt!, rb.healDueAt!);
  const sent = answeredPings(result, a, b);
  expect(sent.filter((t) => t > cutFrom + SKEW && t < cutTo - SKEW), `${id}: ${a} → ${b}: cut ${cutFrom}–${cutTo}`).toEqual([]);
  expect(sent.some((t) => t < cutFrom), `${id}: ${a} → ${b} before`).toBe(true);
  expect(sent.some((t) => t > cutTo), `${id}: ${a} → ${b} after`).toBe(true);
}

/** A pair that keeps its link never notices: pings sent in the window are answered, with no gap longer than a busy machine's hiccup (pings go every 50 ms). */
function expectUnnoticed(result: NetnsRun, id: string, a: number, b: number, window: FaultRecord): void {
  expect(longestGap(answeredPings(result, a, b), window.appliedAt!, window.healedAt!), `${id}: ${a} → ${b}`).toBeLessThan(500);
}

describe.skipIf(missing)('faults in network namespaces', () => {
  it('partition (a bridge, then a ring): cross-side pairs lose their answers for the window and get them back, same-side pairs never notice; a network fault slows one node for its window', async () => {
    const result = await runInNamespaces({
      instances: 5,
      app: HEARTBEAT,
      run: run(9),
      spec: [
        'faults:',
        // Late enough after T for every heartbeat to be up (node starts slowly on a busy machine).
        '  - { action: partition, at: 2s, duration: 1500ms, shape: bridge }',
        '  - { action: network, at: 4s, duration: 1500ms, targets: "0", delay: 100ms }',
        '  - { action: partition, at: 6s, duration: 1500ms, shape: ring }',
      ],
    });
    expect(result.outcome.ok).toBe(true);
    expect(leftovers(result.outcome.runId)).toEqual([]);
    const byRank = (rank: number) => result.results.find((r) => r.rank === rank);

    // The bridge of 5: ranks 0-1 | 3-4; rank 2 between them reaches both, and has no part in it (only in the ring).
    expect(byRank(2)!.faults!.map((f) => f.id)).toEqual(['2#1']);
    // 9 s of pings every 50 ms: 180 per peer; the cut lasts 1.5 s, 30 pings.
    const cut = (id: string, a: number, b: number) => expectCut(result, id, a, b);
    const unnoticed = (id: string, a: number, b: number, window: FaultRecord) => expectUnnoticed(result, id, a, b, window);

    for (const [a, b] of [[0, 3], [0, 4], [1, 3], [1, 4], [3, 0], [4, 1]] as const) {
      cut('0#1', a, b);
      // Both cuts of the pair together (the ring cuts 0 and 3, and 1 and 4, again).
      expect(lost(result, a, b), `${a} → ${b} lost`).toBeGreaterThanOrEqual(20);
    }
    // Pairs on one side, and the bridge with everyone.
    for (const [a, b] of [[0, 1], [1, 0], [3, 4], [4, 3], [2, 0], [2, 4], [0, 2], [4, 2]] as const) unnoticed('0#1', a, b, record(byRank(a === 2 ? b : a), '0#1'));

    // The ring 0-1-2-3-4-0 of 5: each node reaches its two neighbours (with itself, a majority) and
    // none of the two across from it.
    for (let a = 0; a < 5; a++) {
      for (const step of [1, 4]) unnoticed('2#1', a, (a + step) % 5, record(byRank(a), '2#1'));
      for (const step of [2, 3]) cut('2#1', a, (a + step) % 5);
    }

    // Rank 0 sends 100 ms later in its window: every round trip of it then takes ≥ 100 ms, and after it less again.
    const slow = record(byRank(0), '1#1');
    expect(slow).toMatchObject({ healedBy: 'window' });
    expect(slow.detail).toContain('"delayMs":100');
    const rtts = rttsOf(result, 0);
    const inside = rtts.filter((s) => s.sent > slow.appliedAt! + SKEW && s.sent < slow.healedAt! - SKEW);
    // At least one round to every peer inside it (a busy machine may apply the fault late and shorten the window).
    expect(inside.length).toBeGreaterThanOrEqual(4);
    expect(Math.min(...inside.map((s) => s.rtt))).toBeGreaterThanOrEqual(100);
    const after = rtts.filter((s) => s.sent > slow.healedAt! + 300).map((s) => s.rtt).sort((x, y) => x - y);
    expect(after[Math.floor(after.length / 2)]).toBeLessThan(50);
  });

  it('partition shapes isolate, halves and majority-minority: exactly the pairs across the sides lose their answers for the window', async () => {
    const result = await runInNamespaces({
      instances: 5,
      app: HEARTBEAT,
      run: run(9),
      spec: [
        'faults:',
        '  - { action: partition, at: 2s, duration: 1500ms, shape: isolate, targets: [4] }',
        '  - { action: partition, at: 4s, duration: 1500ms, shape: halves }',
        '  - { action: partition, at: 6s, duration: 1500ms, shape: majority-minority }',
      ],
    });
    expect(result.outcome.ok).toBe(true);
    expect(leftovers(result.outcome.runId)).toEqual([]);
    // N = 5, h = 2: isolate 0-3 | 4; halves 0-1 | 2-4; majority-minority 0-2 | 3-4.
    const shapes: Array<[id: string, sides: number[][]]> = [
      ['0#1', [[0, 1, 2, 3], [4]]],
      ['1#1', [[0, 1], [2, 3, 4]]],
      ['2#1', [[0, 1, 2], [3, 4]]],
    ];
    for (const [id, sides] of shapes) {
      const sideOf = (rank: number) => sides.findIndex((side) => side.includes(rank));
      for (let a = 0; a < 5; a++) {
        for (let b = 0; b < 5; b++) {
          if (a === b) continue;
          if (sideOf(a) !== sideOf(b)) expectCut(result, id, a, b);
          else expectUnnoticed(result, id, a, b, record(result.results.find((r) => r.rank === a), id));
        }
      }
    }
  });

  it('kill, restart and pause: a restarted node has two runs, a paused one makes no progress in its window, a killed one ends as planned', async () => {
    const result = await runInNamespaces({
      instances: 3,
      app: HEARTBEAT,
      run: run(4),
      spec: [
        'faults:',
        '  - { action: restart, at: 1s, downtime: 500ms, targets: "1" }',
        '  - { action: pause, at: 1500ms, duration: 1s, targets: "2" }',
        '  - { action: kill, at: 3s, targets: "0" }',
      ],
    });
    expect(leftovers(result.outcome.runId)).toEqual([]);
    const [zero, one, two] = [0, 1, 2].map((rank) => result.results.find((r) => r.rank === rank)!) as [NodeResult, NodeResult, NodeResult];

    expect(one.runs).toHaveLength(2);
    expect(one.runs![0]).toMatchObject({ signal: 'SIGKILL', endedBy: '0#1' });
    expect(one.runs![1]).toMatchObject({ exitCode: 0 });
    expect(one.runs![1]!.startedAt).toBeGreaterThanOrEqual(record(one, '0#1').healDueAt! - 1);
    expect(one.outcome).toBe('success');
    expect(result.lines.get(1)!.filter((l) => l.event === 'start')).toHaveLength(2);

    const pause = record(two, '1#1');
    expect(pause).toMatchObject({ healedBy: 'window' });
    const own = rttsOf(result, 2).map((s) => s.time);
    expect(own.filter((t) => t > pause.appliedAt! + SKEW && t < pause.healDueAt! - SKEW)).toEqual([]);
    expect(own.some((t) => t > pause.healedAt!)).toBe(true);

    expect(zero.outcome).toBe('killed');
    expect(zero.runs).toEqual([expect.objectContaining({ signal: 'SIGKILL', endedBy: '2#1' })]);
    // A planned kill is no failure: the run is ok.
    expect(result.outcome.ok).toBe(true);
  });

  it.skipIf(noTbf)('network with tc, as on EC2: the fault replaces the node\'s qdisc for its window and removes it after', async () => {
    const result = await withEnv({ LOCKSTEP_NETEM: 'tc' }, () =>
      runInNamespaces({ instances: 2, app: HEARTBEAT, run: run(3), spec: ['faults:', '  - { action: network, at: 1s, duration: 1s, targets: "0", rate: 1mbit }'] }),
    );
    expect(result.outcome.ok).toBe(true);
    expect(leftovers(result.outcome.runId)).toEqual([]);
    const window = record(result.results.find((r) => r.rank === 0), '0#1');
    expect(window).toMatchObject({ healedBy: 'window' });
    expect(window.error).toBeUndefined();
    expect(window.detail).toMatch(/^tc qdisc replace dev ls-[0-9a-f]{6}-n0 root handle 1: tbf rate 1000000bit burst 12000 latency 100ms$/);
    expect(result.results.find((r) => r.rank === 1)!.faults).toBeUndefined();
  });
});
