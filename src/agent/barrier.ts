import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../core/layout.ts';
import type { FailureRecord, ReadyRecord, StartRecord } from '../core/manifest.ts';
import { getJson, putJson, StoreError, type Store } from '../store/store.ts';
import { clockOffsetMs, expectWakers, preciseNow } from '../util/clock.ts';
import { rankOrder } from './hosts.ts';

/**
 * How the barrier paces its store requests. See docs/barrier.md: one node at a time (the watcher)
 * LISTs the ready records and publishes a small progress record; every other node only GETs that
 * record, sleeping long while the set is far from complete and waking once per watcher cycle near
 * the end.
 */
export interface BarrierTuning {
  /** Shortest time between two LISTs of the watcher (near completion). */
  readonly minCycleMs: number;
  /** The watcher LISTs at most this fraction of the time: its cycle is at least `listMs / listDuty`. */
  readonly listDuty: number;
  /** What a LIST page of 1,000 keys takes on the store, for the start delay above 1,000 nodes. */
  readonly listPageMs: number;
  /** The watcher rewrites the progress record at least this often, as a sign of life. */
  readonly heartbeatMs: number;
  /** A progress record this old means the watcher is gone: the node that notices takes over. */
  readonly staleMs: number;
  /** A waiting node never sleeps longer than this between two polls. */
  readonly maxSleepMs: number;
  /** A sleeper extrapolates at most this fraction of the time arrivals have been watched so far. */
  readonly spanFraction: number;
  /** The remaining nodes are assumed to arrive at most this much faster than the fastest run so far. */
  readonly burstFactor: number;
  /** How many standard deviations of a Poisson run of arrivals the guess allows for. */
  readonly confidence: number;
  /**
   * A node that arrives g ms after the one before it gets T no earlier than its readyAt + the start
   * delay + lullFraction × (g - the start delay): the others may sleep through part of a lull (a
   * straggler) and still learn T in time.
   */
  readonly lullFraction: number;
  /** A ready record stamped this long before a LIST may still be missing from it (its PUT in flight). */
  readonly putWindowMs: number;
  /** Near completion a waiting node looks about this often (the watcher LISTs more often). */
  readonly pollEveryMs: number;
  /** All waiting nodes together GET the progress record at most this often per second. Default: the store's `readsPerSecond`. */
  readonly maxPollsPerSecond: number;
  /** How many ready records the watcher GETs at once. */
  readonly fetchConcurrency: number;
  /** After the quorum deadline, how long to wait for ready records still in flight. */
  readonly quorumGraceMs: number;
}

export function defaultTuning(startDelayMs: number): BarrierTuning {
  // Every node must learn T before T: near completion the watcher LISTs, and the others look,
  // several times within the start delay.
  const minCycleMs = Math.max(20, Math.min(250, startDelayMs / 6));
  return {
    minCycleMs,
    listDuty: 0.5,
    listPageMs: 100,
    heartbeatMs: 2000,
    staleMs: 8000,
    maxSleepMs: 15_000,
    spanFraction: 2,
    burstFactor: 1,
    confidence: 2,
    lullFraction: 0.5,
    putWindowMs: 300,
    pollEveryMs: startDelayMs / 3,
    maxPollsPerSecond: 4000,
    fetchConcurrency: 48,
    quorumGraceMs: 2000,
  };
}

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

export type RequestKind = 'put' | 'get' | 'list';

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
  /** Counts store requests by kind (a LIST of several pages counts once), for benchmarks. */
  readonly onRequest?: (kind: RequestKind) => void;
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

/**
 * `repeats/<r>/barrier.json`: what the watcher last saw. Waiting nodes read only this object; once
 * the set is complete it carries the start record too.
 */
export interface BarrierProgress {
  readonly expected: number;
  /** Ready records in the watcher's last LIST. */
  readonly count: number;
  readonly watcher: string;
  /** When this record was written (epoch ms, the watcher's clock). */
  readonly updatedAt: number;
  /** When the LIST behind it began. */
  readonly listedAt: number;
  /** From the start of a LIST to its progress record being stored, lately. */
  readonly writeLagMs: number;
  /** The watcher's LIST interval now. */
  readonly cycleMs: number;
  readonly nextListAt: number;
  /** Until then the set is very unlikely to be complete: waiting nodes may sleep. */
  readonly quietUntil: number;
  readonly start?: StartRecord;
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

export function progressKey(runId: string, repeat: number): string {
  return `${layout.repeat(runId, repeat)}barrier.json`;
}

interface Context {
  readonly request: BarrierRequest;
  readonly store: Store;
  readonly tuning: BarrierTuning;
  readonly clock: BarrierClock;
  readonly count: (kind: RequestKind) => void;
  readonly me: string;
  readonly expected: number;
  readonly startKey: string;
  readonly progressKey: string;
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
  const tuning = { ...defaultTuning(request.startDelayMs), maxPollsPerSecond: store.readsPerSecond, ...request.tuning };
  const clock = request.clock ?? realClock;
  const count = request.onRequest ?? (() => {});

  let offset = request.self.clockOffsetMs;
  if (offset === undefined && request.measureClockOffset !== false) offset = await clockOffsetMs();
  const ready: ReadyRecord = { ...request.self, readyAt: clock.now(), ...(offset !== undefined && { clockOffsetMs: offset }) };
  count('put');
  await putJson(store, layout.ready(runId, repeat, ready.instanceId), ready);
  const putMs = clock.now() - ready.readyAt;

  const context: Context = {
    request,
    store,
    tuning,
    clock,
    count,
    me: ready.instanceId,
    expected,
    startKey: layout.start(runId, repeat),
    progressKey: progressKey(runId, repeat),
    readyPrefix: layout.readyPrefix(runId, repeat),
    giveUpAt: ready.readyAt + request.timeoutMs,
    slot: spreadOf(ready.instanceId),
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
    count('get');
    let progress = await readProgress(context);
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
    await clock.sleep(Math.min(nextPollAt(progress, context), context.giveUpAt) - clock.now(), request.signal);
  }
}

/** Writes a progress record naming this node the watcher, then reads back which claim stood. */
async function claim(context: Context, putMs: number): Promise<BarrierProgress> {
  const { store, clock, count, tuning, me, expected } = context;
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
  count('put');
  await putProgress(store, context.progressKey, mine);
  await clock.sleep(Math.min(tuning.minCycleMs, 2 * putMs + 5), context.request.signal);
  count('get');
  const stood = await readProgress(context);
  return stood === 'unreadable' || stood === undefined ? mine : stood;
}

/**
 * How many members wake at T on this machine: those whose addresses exist on one machine only, as
 * this node's does (the local provider's 127.x.y.z and 198.18.x.y); 1 on a fleet.
 */
export function sharingThisMachine(members: readonly { readonly address: string }[], address: string): number {
  const range = machineLocalRange(address);
  if (!range) return 1;
  return Math.max(1, members.filter((m) => machineLocalRange(m.address) === range).length);
}

function machineLocalRange(address: string): string | undefined {
  const [a, b] = address.split('.').map(Number);
  if (a === 127) return 'loopback';
  if (a === 198 && (b === 18 || b === 19)) return 'benchmark';
  return undefined;
}

/** A number in [0, 1) fixed by the instance id: where in a cycle (and which cycle) this node looks. */
function spreadOf(id: string): number {
  let hash = 2166136261;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16777619);
  hash = Math.imul(hash ^ (hash >>> 15), 2246822507);
  return ((hash ^ (hash >>> 13)) >>> 0) / 4294967296;
}

/**
 * The progress record; 'unreadable' when the store served it garbled (some S3-compatible servers,
 * s3rver among them, serve an object that is being rewritten half old, half new): look again later.
 */
async function readProgress(context: Context): Promise<BarrierProgress | undefined | 'unreadable'> {
  try {
    return await getJson<BarrierProgress>(context.store, context.progressKey);
  } catch (error) {
    if (error instanceof StoreError && error.cause instanceof SyntaxError) return 'unreadable';
    throw error;
  }
}

/** Every waiting node reads the progress record, the last one with all members in it: no indentation. */
async function putProgress(store: Store, key: string, progress: BarrierProgress): Promise<void> {
  await store.put(key, JSON.stringify(progress));
}

/** A progress record older than this means its watcher is gone. */
function staleAfter(progress: BarrierProgress, tuning: BarrierTuning): number {
  return Math.max(tuning.staleMs, 3 * progress.cycleMs + 2 * progress.writeLagMs);
}

/**
 * When a waiting node looks next. Far from completion: at the quiet horizon the watcher published.
 * Near it: just after the watcher's next progress record is due, every few cycles when many nodes
 * wait (so that they stay within `maxPollsPerSecond` together).
 */
export function nextPollAt(progress: BarrierProgress, context: Pick<Context, 'clock' | 'tuning' | 'slot' | 'expected'>): number {
  const now = context.clock.now();
  const { cycleMs, nextListAt, writeLagMs, quietUntil } = progress;
  if (quietUntil - now > 2 * cycleMs) return Math.min(quietUntil, now + context.tuning.maxSleepMs);
  // The first progress record worth reading is the first one written after the quiet horizon.
  const lag = writeLagMs * 1.2 + 5;
  const waiting = Math.max(1, context.expected - 1);
  const stride = Math.max(
    1,
    Math.floor(context.tuning.pollEveryMs / cycleMs + 1e-9),
    Math.ceil(waiting / context.tuning.maxPollsPerSecond / (cycleMs / 1000)),
  );
  // Spread over the stride (which cycle) and a little within the cycle (not all at the same ms).
  // The polls come just after the watcher's write, so they keep out of the way of its next LIST.
  const offset = Math.floor(context.slot * stride);
  const spread = Math.min(cycleMs / 4, 40) * context.slot;
  const from = Math.max(now + 1, quietUntil);
  let cycle = Math.max(0, Math.ceil((from - lag - spread - nextListAt) / cycleMs));
  cycle += (((offset - cycle) % stride) + stride) % stride;
  return Math.max(now + 1, nextListAt + cycle * cycleMs + lag + spread);
}

/**
 * The watcher's loop: LIST, fetch the records it has not seen, publish progress, until the set is
 * complete (returns the start record) or another live watcher is found (returns undefined).
 */
async function watch(context: Context): Promise<StartRecord | undefined> {
  const { store, tuning, clock, count, me, expected, request } = context;
  const records = new Map<string, ReadyRecord>();
  let lastWrite: { at: number; count: number } | undefined;
  let lastPutMs = 0;
  let writes = 0;
  let lastRivalCheck = -Infinity;
  for (;;) {
    request.signal?.throwIfAborted();
    if (clock.now() >= context.giveUpAt) return await giveUp(context);
    const listedAt = clock.now();
    count('list');
    const keys = (await store.list(context.readyPrefix)).map((o) => o.key).sort();
    const listMs = clock.now() - listedAt;
    const unseen = keys.filter((k) => !records.has(k));
    for (const [key, record] of await fetchReady(store, unseen, tuning.fetchConcurrency, count)) records.set(key, record);

    if (keys.length >= expected) {
      const members = keys.slice(0, expected).map((k) => records.get(k));
      if (members.every((m): m is ReadyRecord => m !== undefined)) {
        const start = startRecord(members, request.startDelayMs, me, false, { expected, tuning });
        const now = clock.now();
        const progress: BarrierProgress = { expected, count: keys.length, watcher: me, updatedAt: now, listedAt, writeLagMs: 0, cycleMs: 0, nextListAt: now, quietUntil: now, start };
        count('put');
        count('put');
        await Promise.all([putJson(store, context.startKey, start), putProgress(store, context.progressKey, progress)]);
        return start;
      }
    }

    const now = clock.now();
    const nearCycle = Math.max(tuning.minCycleMs, listMs / tuning.listDuty);
    // Only records stamped before `proven` are surely all in the LIST: they are a prefix of the
    // final arrivals, which is what makes the horizon safe (see `startTime`).
    const proven = listedAt - tuning.putWindowMs;
    const prefix = [...records.values()].map((r) => r.readyAt).filter((at) => at <= proven).sort((a, b) => a - b);
    const quietUntil = Math.max(
      arrivalHorizon(prefix, prefix.length, expected, tuning),
      lullHorizon(prefix[prefix.length - 1], proven, effectiveStartDelayMs(request.startDelayMs, expected, tuning), tuning),
    );
    const quietMs = Math.max(0, quietUntil - now);
    const near = quietMs < 2 * nearCycle;
    const cycleMs = near ? nearCycle : Math.min(Math.max(nearCycle, quietMs / 2), Math.max(nearCycle, tuning.heartbeatMs));
    const nextListAt = Math.max(now + 1, listedAt + cycleMs);
    // Written when something changed (or as a heartbeat): readers who find an older record count
    // the watcher's cycles on from its nextListAt.
    const due = !lastWrite || lastWrite.count !== keys.length || now - lastWrite.at >= 0.75 * tuning.heartbeatMs;
    if (due) {
      // Another watcher may have started meanwhile (two first arrivals, or a takeover of one that
      // was only slow): the one with the smaller id goes on.
      if (writes === 0 || now - lastRivalCheck >= tuning.heartbeatMs) {
        lastRivalCheck = now;
        count('get');
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
      };
      const putStart = clock.now();
      count('put');
      await putProgress(store, context.progressKey, progress);
      lastPutMs = clock.now() - putStart;
      lastWrite = { at: progress.updatedAt, count: keys.length };
      writes++;
    }
    await clock.sleep(Math.min(nextListAt, context.giveUpAt) - clock.now(), request.signal);
  }
}

/**
 * When the set cannot plausibly be complete, judged from the first k arrivals (sorted readyAts) of
 * `expected`: the remaining m come no faster than `burstFactor` times the fastest m consecutive
 * arrivals so far (scaled when fewer than m have arrived), and no guess reaches further ahead than
 * `spanFraction` of the time the k arrivals took, nor `maxSleepMs`. With one node missing, it can
 * come any moment. Depends on the arrivals only, so `startTime` can keep T after every horizon a
 * node may have slept to, whoever computes it.
 */
export function arrivalHorizon(
  sorted: readonly number[],
  k: number,
  expected: number,
  tuning: Pick<BarrierTuning, 'spanFraction' | 'burstFactor' | 'confidence' | 'maxSleepMs'>,
): number {
  if (k < 1) return -Infinity;
  const last = sorted[k - 1]!;
  const missing = expected - k;
  if (missing <= 1 || k < 2) return last;
  const run = Math.min(missing, k);
  let fastest = Infinity;
  for (let i = 0; i + run - 1 < k; i++) fastest = Math.min(fastest, sorted[i + run - 1]! - sorted[i]!);
  // `run` arrivals span run - 1 gaps; the remaining ones need `missing` gaps at most, the first of
  // which may be almost over: count missing - 1.
  // Fewer arrivals tell less: allow for `confidence` standard deviations of a Poisson run.
  const windows = k - run + 1;
  const spread = Math.max(0, 1 - tuning.confidence * Math.sqrt((1 / (run - 1) + 1 / Math.max(1, missing - 1)) / windows));
  const byRate = ((fastest / (run - 1)) * (missing - 1) * spread) / tuning.burstFactor;
  const bySpan = tuning.spanFraction * (last - sorted[0]!);
  return last + Math.min(byRate, bySpan, tuning.maxSleepMs);
}

/**
 * When the set cannot be complete without a T that lets nodes asleep until then learn it in time,
 * knowing that nothing arrived between `last` and `proven`: any later arrival comes after a lull of
 * at least (proven - last) and moves T by lullFraction of the lull beyond the start delay.
 */
export function lullHorizon(last: number | undefined, proven: number, startDelayMs: number, tuning: Pick<BarrierTuning, 'lullFraction'>): number {
  if (last === undefined) return -Infinity;
  return proven + tuning.lullFraction * Math.max(0, proven - last - startDelayMs);
}

/**
 * The start record every node computes from the same ready records: members in address order and
 * the start time T (see `startTime`).
 */
export function startRecord(
  records: readonly ReadyRecord[],
  startDelayMs: number,
  writtenBy: string,
  quorum: boolean,
  plan: { readonly expected?: number; readonly tuning?: Partial<BarrierTuning> } = {},
): StartRecord {
  const members = rankOrder(records);
  const tuning = { ...defaultTuning(startDelayMs), ...plan.tuning };
  const startAt = startTime(
    members.map((m) => m.readyAt),
    plan.expected ?? members.length,
    startDelayMs,
    tuning,
  );
  return { members, startAt, writtenBy, quorum };
}

/**
 * The start delay, longer for many nodes: when they must look less often than every `pollEveryMs`
 * to stay within `maxPollsPerSecond` together, and when a LIST of the ready records takes several
 * pages (above 1,000 nodes): by 0.9 s + 0.8 s at 5,000 nodes with the defaults.
 */
export function effectiveStartDelayMs(
  startDelayMs: number,
  expected: number,
  tuning: Pick<BarrierTuning, 'pollEveryMs' | 'maxPollsPerSecond' | 'listPageMs' | 'listDuty'>,
): number {
  const lookEveryMs = (Math.max(0, expected - 1) / tuning.maxPollsPerSecond) * 1000;
  const extraPages = Math.max(0, Math.ceil(expected / 1000) - 1);
  return startDelayMs + Math.max(0, lookEveryMs - tuning.pollEveryMs) + (extraPages * tuning.listPageMs) / tuning.listDuty;
}

/**
 * T from the ready times alone, so that every node that computes it gets the same: the latest readyAt
 * + the start delay, but never earlier than the start delay after a horizon a waiting node may have
 * slept to (`arrivalHorizon` of every prefix of the arrivals, and the lull rule: a node that arrives
 * g ms after the one before it adds lullFraction × (g - start delay)). When the nodes arrive as
 * expected this is just the latest readyAt + the start delay; when they surprise, T moves later
 * rather than some node learning it too late.
 */
export function startTime(
  readyAts: readonly number[],
  expected: number,
  requestedDelayMs: number,
  tuning: Pick<
    BarrierTuning,
    'spanFraction' | 'burstFactor' | 'confidence' | 'maxSleepMs' | 'lullFraction' | 'pollEveryMs' | 'maxPollsPerSecond' | 'listPageMs' | 'listDuty'
  >,
): number {
  const startDelayMs = effectiveStartDelayMs(requestedDelayMs, expected, tuning);
  const sorted = [...readyAts].sort((a, b) => a - b);
  let at = -Infinity;
  for (let i = 0; i < sorted.length; i++) {
    const gap = i === 0 ? 0 : sorted[i]! - sorted[i - 1]!;
    at = Math.max(at, sorted[i]! + startDelayMs + tuning.lullFraction * Math.max(0, gap - startDelayMs));
    if (i >= 1 && i < sorted.length - 1) at = Math.max(at, arrivalHorizon(sorted, i + 1, expected, tuning) + startDelayMs);
  }
  return at;
}

/** At the barrier timeout: the complete set after all, a quorum, or a timeout error naming who is missing. */
async function giveUp(context: Context): Promise<StartRecord> {
  const { store, request, tuning, count, expected } = context;
  count('list');
  const listed = (await store.list(context.readyPrefix)).map((o) => o.key).sort();
  if (listed.length >= expected) {
    const records = await fetchReady(store, listed.slice(0, expected), tuning.fetchConcurrency, count);
    const start = startRecord([...records.values()], request.startDelayMs, context.me, false, { expected, tuning });
    count('put');
    await putJson(store, context.startKey, start);
    return start;
  }
  count('get');
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
  const { store, request, tuning, clock, count } = context;
  await clock.sleep(tuning.quorumGraceMs, request.signal);
  count('get');
  const existing = await getJson<StartRecord>(store, context.startKey);
  if (existing) return existing;
  count('list');
  const all = (await store.list(context.readyPrefix)).map((o) => o.key);
  const records = [...(await fetchReady(store, [...new Set([...all, ...keys])], tuning.fetchConcurrency, count)).values()];
  const deadline = Math.min(...records.map((r) => r.readyAt)) + request.timeoutMs;
  const members = records.filter((r) => r.readyAt <= deadline);
  const start = startRecord(members, request.startDelayMs, context.me, true, { expected: context.expected, tuning });
  const final = { ...start, startAt: Math.max(start.startAt, clock.now() + request.startDelayMs) };
  count('put');
  await putJson(store, context.startKey, final);
  // Two nodes may close at the same moment with different T; everyone adopts what is stored last.
  await clock.sleep(Math.max(tuning.minCycleMs, 250), request.signal);
  count('get');
  return (await getJson<StartRecord>(store, context.startKey)) ?? final;
}

async function fetchReady(
  store: Store,
  keys: readonly string[],
  concurrency: number,
  count: (kind: RequestKind) => void,
): Promise<Map<string, ReadyRecord>> {
  const records = new Map<string, ReadyRecord>();
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      count('get');
      const record = await getJson<ReadyRecord>(store, key);
      if (record) records.set(key, record);
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
