import { describe, expect, it } from 'vitest';
import { awaitBarrier, BarrierTimeoutError } from '../../src/agent/barrier.ts';
import { layout } from '../../src/core/layout.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { putJson } from '../../src/store/store.ts';
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
      expect(o.knownAt).toBeLessThan(o.start.startAt);
    }
    expect(outcomes.map((o) => o.rank).sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
    // 10.0.0.2 sorts before 10.0.0.10: numerically, not as text.
    expect(first.members.map((m) => m.address)).toEqual([...Array(n).keys()].map((i) => node(i).address));
    expect(first.startAt).toBe(Math.max(...first.members.map((m) => m.readyAt)) + 300);
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

  it('polls mostly with GETs: LIST requests are the minority', async () => {
    const store = createFolderStore({ root: tempDir('barrier') });
    const counts = { put: 0, get: 0, list: 0 };
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
          onRequest: (kind) => counts[kind]++,
        });
      }),
    );
    expect(counts.list).toBeLessThan(counts.get);
  });
});
