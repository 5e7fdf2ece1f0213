import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../core/layout.ts';
import type { FailureRecord, ReadyRecord, StartRecord } from '../core/manifest.ts';
import { getJson, putJson, StoreError, type Store } from '../store/store.ts';
import { clockOffsetMs, expectWakers, preciseNow } from '../util/clock.ts';
import { eachLimited } from '../util/pool.ts';
import {
  defaultTuning,
  freshListAt,
  nextPollAt,
  progressCopiesFor,
  sharingThisMachine,
  spreadOf,
  staleAfter,
  startRecord,
  watcherCycle,
  type BarrierProgress,
  type BarrierTuning,
} from './barrier-schedule.ts';

export type { BarrierProgress, BarrierTuning } from './barrier-schedule.ts';

/** Time as the barrier sees it; tests and simulations pass a virtual one. */
export interface BarrierClock {
  /** Epoch milliseconds. */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const realClock: BarrierClock = {
  now: preciseNow,
  sleep: (ms, signal) => delay(Math.max(0, ms), undefined, { signal }),
};

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
  /** Default: the wall clock. */
  readonly clock?: BarrierClock;
  /** Look up the clock offset (`chronyc tracking`) for the ready record when `self` has none. Default true. */
  readonly measureClockOffset?: boolean;
}

export interface BarrierOutcome {
  readonly start: StartRecord;
  readonly ready: ReadyRecord;
  /** When this node knew the members and T (epoch ms). */
  readonly knownAt: number;
  /** This node's rank, or -1 when the barrier closed (on a quorum) without it. */
  readonly rank: number;
  /** Whether this node watched (LISTed) at some point. */
  readonly watched: boolean;
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

interface Context {
  readonly request: BarrierRequest;
  readonly store: Store;
  readonly tuning: BarrierTuning;
  readonly clock: BarrierClock;
  readonly me: string;
  readonly expected: number;
  readonly startKey: string;
  /** The progress record first, then its copies: the watcher writes them all. */
  readonly progressKeys: readonly string[];
  /** The copy this node reads while it waits. */
  readonly readKey: string;
  readonly readyPrefix: string;
  readonly giveUpAt: number;
  /** Jitter source: fixed per node, so its choices spread the same way every cycle. */
  readonly slot: number;
}

/**
 * Registers this node as ready and waits until the run's members and start time T are known.
 *
 * Members: every ready record (or, with a quorum, those ready by the quorum deadline), in address
 * order. T = latest readyAt + start delay, or later when the arrivals surprised (see `startTime`).
 * Any node that LISTs the complete set computes the same start record from the ready records alone,
 * so a second writer is harmless and no conditional write is needed. One node at a time LISTs (the
 * watcher: the first to arrive, or whoever finds its progress record gone stale); the others GET the
 * progress record, sleeping while the missing nodes cannot plausibly all arrive.
 */
export async function awaitBarrier(request: BarrierRequest): Promise<BarrierOutcome> {
  const { store, runId, repeat, expected } = request;
  // Every node uses the same store, so every node computes T with the same rate.
  const paced = { ...defaultTuning(request.startDelayMs), maxPollsPerSecond: store.readsPerSecond, ...request.tuning };
  const tuning = { ...paced, progressCopies: request.tuning?.progressCopies ?? progressCopiesFor(expected, paced, store.readRatePerPrefix ?? false) };
  const clock = request.clock ?? realClock;

  let offset = request.self.clockOffsetMs;
  if (offset === undefined && request.measureClockOffset !== false) offset = await clockOffsetMs();
  const ready: ReadyRecord = { ...request.self, readyAt: clock.now(), ...(offset !== undefined && { clockOffsetMs: offset }) };
  await putJson(store, layout.ready(runId, repeat, ready.instanceId), ready);
  const putMs = clock.now() - ready.readyAt;

  const slot = spreadOf(ready.instanceId);
  const progressKeys = [layout.barrier(runId, repeat)];
  for (let copy = 1; copy < tuning.progressCopies; copy++) progressKeys.push(layout.barrierCopy(runId, repeat, copy));
  const context: Context = {
    request,
    store,
    tuning,
    clock,
    me: ready.instanceId,
    expected,
    startKey: layout.start(runId, repeat),
    progressKeys,
    readKey: progressKeys[Math.floor(slot * progressKeys.length)]!,
    readyPrefix: layout.readyPrefix(runId, repeat),
    giveUpAt: ready.readyAt + request.timeoutMs,
    slot,
  };
  let watched = false;
  const finish = (start: StartRecord): BarrierOutcome => {
    expectWakers(sharingThisMachine(start.members, ready.address));
    return {
      start,
      ready,
      knownAt: clock.now(),
      rank: start.members.findIndex((m) => m.instanceId === ready.instanceId),
      watched,
    };
  };

  for (;;) {
    request.signal?.throwIfAborted();
    if (clock.now() >= context.giveUpAt) return finish(await giveUp(context));
    let progress = await readProgress(context, context.readKey);
    // Copies are written from the watcher's first LIST on: before that, only the claim exists.
    if (progress === undefined && context.readKey !== context.progressKeys[0]) progress = await readProgress(context);
    if (progress === 'unreadable') {
      await clock.sleep(tuning.minCycleMs, request.signal);
      continue;
    }
    if (progress?.start) return finish(progress.start);
    if (!progress) {
      // Nobody watches yet: claim the role, and see whose claim stood (many may arrive at once).
      progress = await claim(context, putMs);
      if (progress.start) return finish(progress.start);
    }
    if (progress.watcher === context.me || clock.now() - progress.updatedAt > staleAfter(progress, tuning)) {
      watched = true;
      const start = await watch(context);
      if (start) return finish(start);
      continue;
    }
    const next = nextPollAt(progress, { now: clock.now(), tuning, slot: context.slot, expected, startDelayMs: request.startDelayMs });
    await clock.sleep(Math.min(next, context.giveUpAt) - clock.now(), request.signal);
  }
}

/** Writes a progress record naming this node the watcher, then reads back which claim stood. */
async function claim(context: Context, putMs: number): Promise<BarrierProgress> {
  const { store, clock, tuning, me, expected } = context;
  const now = clock.now();
  const mine: BarrierProgress = {
    expected,
    count: 0,
    watcher: me,
    updatedAt: now,
    listedAt: now,
    writeLagMs: 0,
    cycleMs: tuning.minCycleMs,
    nextListAt: now + tuning.minCycleMs,
    quietUntil: now,
  };
  await store.put(context.progressKeys[0]!, JSON.stringify(mine));
  await clock.sleep(Math.min(tuning.minCycleMs, 2 * putMs + 5), context.request.signal);
  const stood = await readProgress(context);
  return stood === 'unreadable' || stood === undefined ? mine : stood;
}

/**
 * The progress record; 'unreadable' when the store served it garbled (some S3-compatible servers,
 * s3rver among them, serve an object that is being rewritten half old, half new): look again later.
 */
async function readProgress(context: Context, key = context.progressKeys[0]!): Promise<BarrierProgress | undefined | 'unreadable'> {
  try {
    return await getJson<BarrierProgress>(context.store, key);
  } catch (error) {
    if (error instanceof StoreError && error.cause instanceof SyntaxError) return 'unreadable';
    throw error;
  }
}

/** The progress record and its copies. Every waiting node reads one, the last with all members in it: no indentation. */
async function putProgress(context: Context, progress: BarrierProgress): Promise<void> {
  const body = JSON.stringify(progress);
  await Promise.all(context.progressKeys.map((key) => context.store.put(key, body)));
}

/** A LIST page holds this many keys. */
const LIST_PAGE = 1000;
/** Known keys per range of `listReady`: a range's page has room for this many new ones besides. */
const RANGE_KEYS = 900;

/**
 * The keys under `prefix`, in order. LISTed in ranges split at keys an earlier LIST found (`known`,
 * sorted), all at once, one page each where a range has not grown past a page: a LIST of 10,000
 * keys takes one page's time instead of ten pages one after another, for as many requests.
 */
async function listReady(store: Store, prefix: string, known: readonly string[]): Promise<string[]> {
  const bounds: Array<string | undefined> = [undefined];
  for (let i = RANGE_KEYS; i < known.length; i += RANGE_KEYS) bounds.push(known[i - 1]);
  const ranges = await Promise.all(
    bounds.map(async (after, index) => {
      const until = bounds[index + 1];
      const keys: string[] = [];
      for (let from = after; ; ) {
        const page = (await store.list(prefix, { startAfter: from, maxKeys: LIST_PAGE })).map((o) => o.key);
        keys.push(...page.filter((key) => (from === undefined || key > from) && (until === undefined || key <= until)));
        if (page.length < LIST_PAGE || (until !== undefined && page[page.length - 1]! >= until)) return keys;
        from = page[page.length - 1];
      }
    }),
  );
  return ranges.flat();
}

/**
 * The watcher's loop: LIST, fetch the records it has not seen, publish progress, until the set is
 * complete (returns the start record) or another live watcher is found (returns undefined).
 */
async function watch(context: Context): Promise<StartRecord | undefined> {
  const { store, tuning, clock, me, expected, request } = context;
  const records = new Map<string, ReadyRecord>();
  let lastWrite: { at: number; count: number } | undefined;
  let lastPutMs = 0;
  let writes = 0;
  let lastRivalCheck = -Infinity;
  // Horizons this watcher published that are still ahead: nodes will wake there.
  let wakes: number[] = [];
  // The progress record goes out while the next LIST runs (a cycle is then one LIST, not a LIST and
  // a PUT); it is awaited before the next write, so that the records land in order.
  let writing: Promise<unknown> = Promise.resolve();
  let writeFailure: { error: unknown } | undefined;
  const written = async () => {
    await writing;
    if (writeFailure) throw writeFailure.error;
  };
  for (;;) {
    request.signal?.throwIfAborted();
    if (clock.now() >= context.giveUpAt) {
      await written();
      return await giveUp(context);
    }
    const listedAt = clock.now();
    const keys = await listReady(store, context.readyPrefix, [...records.keys()].sort());
    const listMs = clock.now() - listedAt;
    const unseen = keys.filter((k) => !records.has(k));
    for (const [key, record] of await fetchReady(store, unseen, tuning.fetchConcurrency)) records.set(key, record);

    if (keys.length >= expected) {
      const members = keys.slice(0, expected).map((k) => records.get(k));
      if (members.every((m): m is ReadyRecord => m !== undefined)) {
        // A quorum close can happen only after the earliest member's deadline (+ the grace).
        const quorumDeadline = Math.min(...members.map((m) => m.readyAt)) + request.timeoutMs;
        const noQuorumYet = (request.minMembers ?? expected) >= expected || clock.now() < quorumDeadline;
        await written();
        return await settle(context, startRecord(members, request.startDelayMs, me, false, { expected, tuning }), noQuorumYet);
      }
    }

    const now = clock.now();
    const readyAts = [...records.values()].map((r) => r.readyAt);
    const cycle = watcherCycle(readyAts, { now, listedAt, listMs }, expected, request.startDelayMs, tuning);
    const { quietUntil, likelyAt, cycleMs } = cycle;
    wakes = wakes.filter((wake) => wake > now);
    const nextListAt = freshListAt(cycle.nextListAt, wakes, clock.now() - listedAt + lastPutMs + 5, now);
    // Written when something changed (or as a heartbeat): readers who find an older record count
    // the watcher's cycles on from its nextListAt.
    const due = !lastWrite || lastWrite.count !== keys.length || now - lastWrite.at >= 0.75 * tuning.heartbeatMs;
    if (due) {
      // Another watcher may have started meanwhile (two first arrivals, or a takeover of one that
      // was only slow): the one with the smaller id goes on.
      if (writes === 0 || now - lastRivalCheck >= tuning.heartbeatMs) {
        lastRivalCheck = now;
        await written();
        const read = await readProgress(context);
        const other = read === 'unreadable' ? undefined : read;
        if (other?.start) return other.start;
        if (
          other &&
          other.watcher !== me &&
          other.watcher < me &&
          clock.now() - other.updatedAt < staleAfter(other, tuning) / 2 &&
          (!lastWrite || other.updatedAt > lastWrite.at)
        ) {
          return undefined;
        }
      }
      const writeLagMs = clock.now() - listedAt + lastPutMs;
      const progress: BarrierProgress = {
        expected,
        count: keys.length,
        watcher: me,
        updatedAt: clock.now(),
        listedAt,
        writeLagMs,
        cycleMs,
        nextListAt,
        quietUntil,
        ...(likelyAt !== undefined && { likelyAt }),
      };
      await written();
      const putStart = clock.now();
      writing = putProgress(context, progress).then(
        () => (lastPutMs = clock.now() - putStart),
        (error: unknown) => (writeFailure = { error }),
      );
      lastWrite = { at: progress.updatedAt, count: keys.length };
      if (quietUntil - now > 10 * tuning.minCycleMs) wakes.push(quietUntil);
      writes++;
    }
    await clock.sleep(Math.min(nextListAt, context.giveUpAt) - clock.now(), request.signal);
  }
}

/** At the barrier timeout: the complete set after all, a quorum, or a timeout error naming who is missing. */
async function giveUp(context: Context): Promise<StartRecord> {
  const { store, request, tuning, expected } = context;
  const listed = (await store.list(context.readyPrefix)).map((o) => o.key).sort();
  if (listed.length >= expected) {
    const records = await fetchReady(store, listed.slice(0, expected), tuning.fetchConcurrency);
    return await settle(context, startRecord([...records.values()], request.startDelayMs, context.me, false, { expected, tuning }));
  }
  const existing = await getJson<StartRecord>(store, context.startKey);
  if (existing) return existing;
  const minMembers = request.minMembers ?? expected;
  if (listed.length >= minMembers && minMembers < expected) return await closeOnQuorum(context, listed);
  throw await timeoutError(store, request.runId, request.repeat, expected, listed, request.timeoutMs);
}

/**
 * Closes the barrier without the missing instances. The member set must be the same for every node,
 * so it is defined by time, not by what one node happened to list: the records ready by the quorum
 * deadline (earliest readyAt + timeout), read after a grace period for writes still in flight.
 */
async function closeOnQuorum(context: Context, keys: readonly string[]): Promise<StartRecord> {
  const { store, request, tuning, clock } = context;
  await clock.sleep(tuning.quorumGraceMs, request.signal);
  const existing = await getJson<StartRecord>(store, context.startKey);
  if (existing) return existing;
  const all = (await store.list(context.readyPrefix)).map((o) => o.key);
  const records = [...(await fetchReady(store, [...new Set([...all, ...keys])], tuning.fetchConcurrency)).values()];
  // The quorum deadline, and never before the quorum itself was ready: a node that came far earlier
  // than the rest (left out of the repeat before) must not close on fewer than minMembers.
  const readyTimes = records.map((r) => r.readyAt).sort((a, b) => a - b);
  const quorumAt = readyTimes[Math.min(readyTimes.length, request.minMembers ?? context.expected) - 1]!;
  const deadline = Math.max(readyTimes[0]! + request.timeoutMs, quorumAt);
  const members = records.filter((r) => r.readyAt <= deadline);
  const start = startRecord(members, request.startDelayMs, context.me, true, { expected: context.expected, tuning });
  const proposed = { ...start, startAt: Math.max(start.startAt, clock.now() + request.startDelayMs) };
  const settled = await settle(context, proposed);
  // Where the store ignores conditional writes, two nodes closing at the same moment may both
  // write: everyone adopts what is stored last.
  await clock.sleep(Math.max(tuning.minCycleMs, 250), request.signal);
  const final = (await getJson<StartRecord>(store, context.startKey)) ?? settled;
  if (final.startAt !== settled.startAt) await putProgress(context, closed(context, final));
  return final;
}

/**
 * Makes `proposed` the repeat's start record, unless there is one already: a start record, once
 * written, is final, and a node that arrives later adopts it (and finds itself left out). The write
 * is conditional where the store honours that (S3, the folder store); where it does not (s3rver),
 * reading first leaves only a narrow race. Then the progress record carries it to the waiting nodes.
 *
 * `settled: true` says no other start record can exist but this same one: the complete set before
 * any quorum deadline, which every writer computes alike. Then nothing is read first, and the start
 * and progress records go out together (the waiting nodes learn T one write sooner).
 */
async function settle(context: Context, proposed: StartRecord, settled = false): Promise<StartRecord> {
  const { store, startKey } = context;
  const body = JSON.stringify(proposed, null, 2) + '\n';
  if (settled) {
    await Promise.all([store.putIfAbsent(startKey, body), putProgress(context, closed(context, proposed))]);
    return proposed;
  }
  let final = await getJson<StartRecord>(store, startKey);
  if (!final) {
    const written = await store.putIfAbsent(startKey, body);
    final = written ? proposed : ((await getJson<StartRecord>(store, startKey)) ?? proposed);
  }
  await putProgress(context, closed(context, final));
  return final;
}

/** The progress record of a closed barrier: it carries the start record. */
function closed(context: Context, start: StartRecord): BarrierProgress {
  const now = context.clock.now();
  return { expected: context.expected, count: start.members.length, watcher: context.me, updatedAt: now, listedAt: now, writeLagMs: 0, cycleMs: 0, nextListAt: now, quietUntil: now, start };
}

async function fetchReady(
  store: Store,
  keys: readonly string[],
  concurrency: number,
): Promise<Map<string, ReadyRecord>> {
  const records = new Map<string, ReadyRecord>();
  await eachLimited(keys, concurrency, async (key) => {
    const record = await getJson<ReadyRecord>(store, key);
    if (record) records.set(key, record);
  });
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
