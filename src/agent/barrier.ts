import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../core/layout.ts';
import type { FailureRecord, ReadyRecord, StartRecord } from '../core/manifest.ts';
import { getJson, putJson, type Store } from '../store/store.ts';
import { preciseNow } from '../util/clock.ts';
import { jittered } from '../util/retry.ts';
import { rankOrder } from './hosts.ts';

/** How a node polls while it waits. Most polls are GETs of one small object (the start record). */
export interface BarrierTuning {
  /** First poll interval; it grows by `growth` up to `maxPollMs`. */
  readonly minPollMs: number;
  readonly maxPollMs: number;
  readonly growth: number;
  /** A LIST of the ready records at most this often, to catch a completing node that died. */
  readonly listEveryMs: number;
  /** How many ready records one node GETs at once when it builds the start record. */
  readonly fetchConcurrency: number;
  /** After the quorum deadline, how long to wait for ready records still in flight. */
  readonly quorumGraceMs: number;
}

export function defaultTuning(startDelayMs: number): BarrierTuning {
  // Every node must learn T before T: poll at least three times within the start delay.
  const maxPollMs = Math.max(20, Math.min(1000, startDelayMs / 3));
  return { minPollMs: 20, maxPollMs, growth: 1.5, listEveryMs: 10 * maxPollMs, fetchConcurrency: 32, quorumGraceMs: 2000 };
}

export interface BarrierRequest {
  readonly store: Store;
  readonly runId: string;
  readonly repeat: number;
  readonly self: Omit<ReadyRecord, 'readyAt'>;
  readonly expected: number;
  /** Close on this many members at the quorum deadline (default: `expected`, i.e. no quorum). */
  readonly minMembers?: number;
  readonly timeoutMs: number;
  readonly startDelayMs: number;
  readonly tuning?: Partial<BarrierTuning>;
  readonly signal?: AbortSignal;
  /** Counts store requests by kind, for benchmarks. */
  readonly onRequest?: (kind: 'put' | 'get' | 'list') => void;
}

export interface BarrierOutcome {
  readonly start: StartRecord;
  readonly ready: ReadyRecord;
  /** When this node knew the members and T (epoch ms). */
  readonly knownAt: number;
  /** This node's rank, or -1 when the barrier closed (on a quorum) without it. */
  readonly rank: number;
}

export class BarrierTimeoutError extends Error {
  override readonly name = 'BarrierTimeoutError';
  constructor(
    readonly repeat: number,
    readonly present: readonly string[],
    readonly missing: readonly string[],
    readonly expected: number,
    readonly timeoutMs: number,
  ) {
    const absent = expected - present.length;
    const named = missing.length > 0 ? `: missing ${missing.join(', ')}` : '';
    const unnamed = absent > missing.length ? ` (${absent - missing.length} never booted)` : '';
    super(
      `Barrier of repeat ${repeat} timed out after ${Math.round(timeoutMs / 1000)} s with ${present.length} of ${expected} instances${named}${unnamed}`,
    );
  }
}

/**
 * Registers this node as ready and waits until the run's members and start time T are known.
 *
 * Members: every ready record (or, with a quorum, those ready by the quorum deadline), in address
 * order. T = latest readyAt + start delay. Every node that sees the complete set computes the same
 * start record, so whoever sees it first writes it and a second writer is harmless; the others
 * mostly GET that one object, and LIST only now and then.
 */
export async function awaitBarrier(request: BarrierRequest): Promise<BarrierOutcome> {
  const { store, runId, repeat, expected } = request;
  const tuning = { ...defaultTuning(request.startDelayMs), ...request.tuning };
  const minMembers = request.minMembers ?? expected;
  const count = request.onRequest ?? (() => {});
  const startKey = layout.start(runId, repeat);
  const readyPrefix = layout.readyPrefix(runId, repeat);

  const ready: ReadyRecord = { ...request.self, readyAt: preciseNow() };
  count('put');
  await putJson(store, layout.ready(runId, repeat, ready.instanceId), ready);
  const giveUpAt = ready.readyAt + request.timeoutMs;

  const finish = (start: StartRecord): BarrierOutcome => ({
    start,
    ready,
    knownAt: preciseNow(),
    rank: start.members.findIndex((m) => m.instanceId === ready.instanceId),
  });

  let pollMs = tuning.minPollMs;
  let lastListAt = -Infinity;
  for (;;) {
    request.signal?.throwIfAborted();
    const now = preciseNow();
    if (now - lastListAt >= tuning.listEveryMs || now >= giveUpAt) {
      lastListAt = now;
      count('list');
      const listed = await store.list(readyPrefix);
      if (listed.length >= expected) {
        const records = await fetchReady(store, listed.map((o) => o.key), tuning.fetchConcurrency, count);
        const start = startRecord(records.slice(0, expected), request.startDelayMs, ready.instanceId, false);
        // The start record may already be there; writing the same members and T again is harmless.
        count('put');
        await putJson(store, startKey, start);
        return finish(start);
      }
      if (now >= giveUpAt) {
        const existing = await getJson<StartRecord>(store, startKey);
        if (existing) return finish(existing);
        if (listed.length >= minMembers && minMembers < expected) {
          return finish(await closeOnQuorum(request, tuning, listed.map((o) => o.key), count));
        }
        throw await timeoutError(store, runId, repeat, expected, listed.map((o) => o.key), request.timeoutMs);
      }
    } else {
      count('get');
      const start = await getJson<StartRecord>(store, startKey);
      if (start) return finish(start);
    }
    const wait = Math.min(jittered(pollMs), Math.max(0, giveUpAt - preciseNow()));
    await delay(wait, undefined, { signal: request.signal });
    pollMs = Math.min(tuning.maxPollMs, pollMs * tuning.growth);
  }
}

/** The start record every node computes from the same ready records. */
export function startRecord(records: readonly ReadyRecord[], startDelayMs: number, writtenBy: string, quorum: boolean): StartRecord {
  const members = rankOrder(records);
  const latest = Math.max(...members.map((m) => m.readyAt));
  return { members, startAt: latest + startDelayMs, writtenBy, quorum };
}

/**
 * Closes the barrier without the missing instances. The member set must be the same for every node,
 * so it is defined by time, not by what one node happened to list: the records ready by the quorum
 * deadline (earliest readyAt + timeout), read after a grace period for writes still in flight.
 */
async function closeOnQuorum(
  request: BarrierRequest,
  tuning: BarrierTuning,
  keys: readonly string[],
  count: (kind: 'put' | 'get' | 'list') => void,
): Promise<StartRecord> {
  const { store, runId, repeat } = request;
  await delay(tuning.quorumGraceMs, undefined, { signal: request.signal });
  count('get');
  const existing = await getJson<StartRecord>(store, layout.start(runId, repeat));
  if (existing) return existing;
  count('list');
  const all = await store.list(layout.readyPrefix(runId, repeat));
  const records = await fetchReady(store, all.map((o) => o.key).concat(keys.filter((k) => !all.some((o) => o.key === k))), tuning.fetchConcurrency, count);
  const deadline = Math.min(...records.map((r) => r.readyAt)) + request.timeoutMs;
  const members = records.filter((r) => r.readyAt <= deadline);
  const start = startRecord(members, request.startDelayMs, request.self.instanceId, true);
  const final = { ...start, startAt: Math.max(start.startAt, preciseNow() + request.startDelayMs) };
  count('put');
  await putJson(store, layout.start(runId, repeat), final);
  // Two nodes may close at the same moment with different T; everyone adopts what is stored last.
  await delay(tuning.maxPollMs, undefined, { signal: request.signal });
  count('get');
  return (await getJson<StartRecord>(store, layout.start(runId, repeat))) ?? final;
}

async function fetchReady(
  store: Store,
  keys: readonly string[],
  concurrency: number,
  count: (kind: 'put' | 'get' | 'list') => void,
): Promise<ReadyRecord[]> {
  const records: ReadyRecord[] = [];
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      count('get');
      const record = await getJson<ReadyRecord>(store, key);
      if (record) records.push(record);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
  return records;
}

async function timeoutError(
  store: Store,
  runId: string,
  repeat: number,
  expected: number,
  readyKeys: readonly string[],
  timeoutMs: number,
): Promise<BarrierTimeoutError> {
  const present = readyKeys.map(idFromKey);
  const booted = (await store.list(layout.instancesPrefix(runId))).map((o) => idFromKey(o.key));
  const failed = (await store.list(`${layout.repeat(runId, repeat)}failures/`)).map((o) => idFromKey(o.key));
  const missing = [...new Set([...booted, ...failed])].filter((id) => !present.includes(id));
  return new BarrierTimeoutError(repeat, present, missing, expected, timeoutMs);
}

function idFromKey(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1).replace(/\.json$/, '');
}

export type { FailureRecord };
