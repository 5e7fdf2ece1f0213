import { describe, expect, it } from 'vitest';
import { awaitBarrier, BarrierTimeoutError } from '../../src/agent/barrier.ts';
import { layout } from '../../src/core/layout.ts';
import { countingStore } from '../../src/store/counting.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { putJson } from '../../src/store/store.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';
import { memoryStore, patterns, S3_LATENCY, simulateBarrier, VirtualClock } from '../helpers/barrier-sim.ts';
import { tempDir } from '../helpers/temp.ts';

const runId = 'barrier-test';

function node(i: number) {
  return { instanceId: `i-${i.toString().padStart(3, '0')}`, address: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}` };
}

describe('barrier', () => {
  it('gives every node the same members in address order, the same T, and distinct ranks', async () => {
    const store = createFolderStore({ root: tempDir('barrier') });
    const n = 12;
    const outcomes = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        await new Promise((r) => setTimeout(r, Math.random() * 200));
        return awaitBarrier({ store, runId, repeat: 1, self: node(i), expected: n, timeoutMs: 10_000, startDelayMs: 300 });
      }),
    );
    const first = outcomes[0]!.start;
    for (const o of outcomes) {
      expect(o.start.members.map((m) => m.instanceId)).toEqual(first.members.map((m) => m.instanceId));
      expect(o.start.startAt).toBe(first.startAt);
    }
    expect(outcomes.map((o) => o.rank).sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
    // 10.0.0.2 sorts before 10.0.0.10: numerically, not as text.
    expect(first.members.map((m) => m.address)).toEqual([...Array(n).keys()].map((i) => node(i).address));
    expect(first.startAt).toBe(Math.max(...first.members.map((m) => m.readyAt)) + 300);
  });

  it('paces the polls by the store\'s read rate: a slow store gets a later T', async () => {
    const slow = { ...createFolderStore({ root: tempDir('barrier') }), readsPerSecond: 10 };
    const outcomes = await Promise.all(
      [0, 1, 2].map((i) => awaitBarrier({ store: slow, runId, repeat: 1, self: node(i), expected: 3, timeoutMs: 10_000, startDelayMs: 300 })),
    );
    const start = outcomes[0]!.start;
    // 2 waiting nodes at 10 GETs/s look every 200 ms, 100 ms less often than a third of the delay: T moves 100 ms later.
    expect(start.startAt - Math.max(...start.members.map((m) => m.readyAt))).toBeCloseTo(400, 6);
  });

  it('times out naming the instance that booted but never got ready', async () => {
    const store = createFolderStore({ root: tempDir('barrier') });
    await putJson(store, layout.instance(runId, 'i-late'), { instanceId: 'i-late' });
    await putJson(store, layout.instance(runId, node(0).instanceId), { instanceId: node(0).instanceId });
    const error = await awaitBarrier({ store, runId, repeat: 1, self: node(0), expected: 3, timeoutMs: 300, startDelayMs: 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BarrierTimeoutError);
    const timeout = error as BarrierTimeoutError;
    expect(timeout.missing).toEqual(['i-late']);
    expect(timeout.message).toContain('missing i-late');
    expect(timeout.message).toContain('1 of 3');
    expect(timeout.message).toContain('1 never booted');
  });

  it('closes on a quorum with the same members for everyone', async () => {
    const store = createFolderStore({ root: tempDir('barrier') });
    const outcomes = await Promise.all(
      [0, 1, 2].map((i) =>
        awaitBarrier({ store, runId, repeat: 1, self: node(i), expected: 4, minMembers: 3, timeoutMs: 300, startDelayMs: 100, tuning: { quorumGraceMs: 100 } }),
      ),
    );
    for (const o of outcomes) {
      expect(o.start.quorum).toBe(true);
      expect(o.start.members).toHaveLength(3);
      expect(o.start.startAt).toBe(outcomes[0]!.start.startAt);
    }
    expect(outcomes.map((o) => o.rank).sort()).toEqual([0, 1, 2]);
  });

  it('never closes on fewer than minMembers, even when one node came long before the rest', async () => {
    // Node 0 has waited 10 s (left out of the repeat before, say): by its own deadline only it was
    // ready, so the quorum's deadline is when the second member came, not node 0's.
    const store = createFolderStore({ root: tempDir('barrier') });
    await putJson(store, layout.ready(runId, 1, node(0).instanceId), { ...node(0), readyAt: Date.now() - 10_000 });
    const late = await awaitBarrier({ store, runId, repeat: 1, self: node(1), expected: 3, minMembers: 2, timeoutMs: 300, startDelayMs: 100, tuning: { quorumGraceMs: 100 } });
    expect(late.start.quorum).toBe(true);
    expect(late.start.members.map((m) => m.instanceId)).toEqual([node(0).instanceId, node(1).instanceId]);
    expect(late.rank).toBe(1);
  });

  it('polls mostly with GETs: LIST requests are the minority', async () => {
    const store = countingStore(createFolderStore({ root: tempDir('barrier') }));
    const n = 20;
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i * 40));
        return awaitBarrier({
          store,
          runId,
          repeat: 1,
          self: node(i),
          expected: n,
          timeoutMs: 10_000,
          startDelayMs: 300,
        });
      }),
    );
    expect(store.counts.list).toBeLessThan(store.counts.get);
  });
});

describe('barrier: one watcher LISTs, the others wait on one small object', () => {
  for (const pattern of ['uniform30', 'waves', 'straggler', 'flood', 'burst']) {
    it(`every node learns the same members and T in time when arrivals are ${patterns[pattern]!.describe}`, async () => {
      const result = await simulateBarrier({ n: 200, pattern, seed: 3 });
      expect(result.agree).toBe(true);
      expect(result.late).toBe(0);
      expect(result.counts.list).toBeLessThan(result.counts.get / 10);
    });
  }

  it('keeps requests per node small and LISTs rare with 1,000 nodes arriving over 30 s', async () => {
    const result = await simulateBarrier({ n: 1000, pattern: 'uniform30', seed: 1 });
    expect(result.requestsPerNode).toBeLessThan(12);
    expect(result.listShare).toBeLessThan(0.05);
    expect(result.watchers).toBeLessThanOrEqual(3);
  });

  it('with 1,000 nodes on S3: the watcher LISTs in ranges of one page at once, and the waiting nodes share copies of the progress record', async () => {
    const clock = new VirtualClock();
    const store = memoryStore(clock, S3_LATENCY, seededRandom(9));
    const n = 1000;
    const random = seededRandom(10);
    const tuning = { pollEveryMs: 100 };
    const outcomes = await clock.run(
      Promise.all(
        Array.from({ length: n }, async (_, i) => {
          await clock.sleep(random() * 2_000);
          return awaitBarrier({ store, runId, repeat: 1, self: node(i), expected: n, timeoutMs: 120_000, startDelayMs: 1000, tuning, clock, measureClockOffset: false });
        }),
      ),
    );
    // 999 waiting nodes looking every 100 ms at 4,000 GET/s per prefix: 3 copies.
    const copies = (await clock.run(store.list(`runs/${runId}/repeats/1/barrier-`))).map((o) => o.key);
    expect(copies).toEqual([1, 2].map((c) => `runs/${runId}/repeats/1/barrier-${c}/progress.json`));
    const first = outcomes[0]!.start;
    expect(first.members).toHaveLength(n);
    expect(new Set(first.members.map((m) => m.instanceId)).size).toBe(n);
    for (const o of outcomes) {
      expect(o.start.startAt).toBe(first.startAt);
      expect(o.knownAt).toBeLessThan(o.start.startAt);
    }
  });

  it('replaces a watcher that dies, and the others still close the barrier', async () => {
    const clock = new VirtualClock();
    const store = memoryStore(clock, S3_LATENCY, seededRandom(5));
    const n = 12;
    const stop = new AbortController();
    const tuning = { staleMs: 3000 };
    const first = awaitBarrier({ store, runId, repeat: 1, self: node(0), expected: n, timeoutMs: 120_000, startDelayMs: 1000, tuning, clock, signal: stop.signal, measureClockOffset: false });
    const failed = first.then(
      () => 'finished',
      () => 'aborted',
    );
    const others = Promise.all(
      Array.from({ length: n - 1 }, async (_, i) => {
        await clock.sleep(2000 + i * 500);
        if (i === 0) stop.abort();
        return awaitBarrier({ store, runId, repeat: 1, self: node(i + 1), expected: n, timeoutMs: 120_000, startDelayMs: 1000, tuning, clock, measureClockOffset: false });
      }),
    );
    const outcomes = await clock.run(others);
    expect(await failed).toBe('aborted');
    expect(new Set(outcomes.map((o) => o.start.startAt)).size).toBe(1);
    expect(outcomes[0]!.start.members).toHaveLength(n);
    expect(outcomes.some((o) => o.watched)).toBe(true);
    for (const o of outcomes) expect(o.knownAt).toBeLessThan(o.start.startAt);
  });
});
