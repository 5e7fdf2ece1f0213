/**
 * The barrier's scheduling maths, apart from its store protocol (`barrier.ts`): when a waiting node
 * looks next, when the watcher LISTs, how long the set cannot plausibly be complete, and the start
 * time T every node computes from the same ready records. Pure functions of numbers and records;
 * see docs/barrier.md.
 */
import type { BarrierProgress, ReadyRecord, StartRecord } from '../core/manifest.ts';

export type { BarrierProgress };
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
  /**
   * Near completion a waiting node sleeps this fraction of the way to the watcher's likely completion
   * time (`likelyAt`) before it looks, never past what still lets it learn T in time: few looks while
   * the last arrivals are still expected, every poll period once they may be in.
   */
  readonly approachFraction: number;
  /** The recent arrival rate behind `likelyAt` is taken over at least this many of the latest arrivals. */
  readonly rateWindow: number;
  /** Near completion a waiting node looks about this often (the watcher LISTs more often). */
  readonly pollEveryMs: number;
  /** All waiting nodes together GET the progress record at most this often per second. Default: the store's `readsPerSecond`. */
  readonly maxPollsPerSecond: number;
  /** How many ready records the watcher GETs at once. */
  readonly fetchConcurrency: number;
  /** After the quorum deadline, how long to wait for ready records still in flight. */
  readonly quorumGraceMs: number;
  /**
   * Copies of the progress record, each under a prefix of its own, that the waiting nodes share out
   * (`progressCopiesFor`): where the store's read rate holds per prefix (S3), k copies serve k times
   * the GETs, so that many nodes can each still look every `pollEveryMs`.
   */
  readonly progressCopies: number;
}

export function defaultTuning(startDelayMs: number): BarrierTuning {
  // Every node must learn T before T: near completion the watcher LISTs, and the others look,
  // several times within the start delay.
  const minCycleMs = Math.max(20, Math.min(100, startDelayMs / 6));
  return {
    minCycleMs,
    listDuty: 1,
    listPageMs: 100,
    heartbeatMs: 2000,
    staleMs: 8000,
    maxSleepMs: 15_000,
    spanFraction: 3,
    burstFactor: 1,
    confidence: 1.5,
    lullFraction: 0.5,
    putWindowMs: 300,
    approachFraction: 0.7,
    rateWindow: 50,
    pollEveryMs: Math.min(250, startDelayMs / 3),
    maxPollsPerSecond: 4000,
    fetchConcurrency: 48,
    quorumGraceMs: 2000,
    progressCopies: 1,
  };
}

/** The most copies of the progress record: each is one more PUT per write of the watcher. */
const MAX_PROGRESS_COPIES = 32;

/**
 * How many copies of the progress record let every waiting node look every `pollEveryMs` within
 * `maxPollsPerSecond` per copy: 1 where the store's rate is one server's in all.
 */
export function progressCopiesFor(expected: number, tuning: Pick<BarrierTuning, 'pollEveryMs' | 'maxPollsPerSecond'>, readRatePerPrefix: boolean): number {
  if (!readRatePerPrefix) return 1;
  const wanted = Math.ceil((Math.max(0, expected - 1) * 1000) / tuning.pollEveryMs / tuning.maxPollsPerSecond);
  return Math.min(MAX_PROGRESS_COPIES, Math.max(1, wanted));
}

/** How often each waiting node may look near the end: every `pollEveryMs`, unless the store's rate says less often. */
export function pollPeriodMs(expected: number, tuning: Pick<BarrierTuning, 'pollEveryMs' | 'maxPollsPerSecond' | 'progressCopies'>): number {
  return Math.max(tuning.pollEveryMs, ((Math.max(0, expected - 1) / (tuning.maxPollsPerSecond * tuning.progressCopies)) * 1000));
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
export function spreadOf(id: string): number {
  let hash = 2166136261;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16777619);
  hash = Math.imul(hash ^ (hash >>> 15), 2246822507);
  return ((hash ^ (hash >>> 13)) >>> 0) / 4294967296;
}

/** A progress record older than this means its watcher is gone. */
export function staleAfter(progress: BarrierProgress, tuning: BarrierTuning): number {
  return Math.max(tuning.staleMs, 3 * progress.cycleMs + 2 * progress.writeLagMs);
}

/**
 * When a waiting node looks next. Far from completion: at the quiet horizon the watcher published.
 * Near it: once per poll period (`pollPeriodMs`: all nodes together stay within `maxPollsPerSecond`),
 * or per watcher cycle when that is longer.
 */
export function nextPollAt(progress: BarrierProgress, context: PollContext): number {
  const now = context.now;
  const { cycleMs, quietUntil } = progress;
  const periodMs = pollPeriodMs(context.expected, context.tuning);
  // Far from completion, or a record of the watcher's long cycles (it LISTs more often near the
  // horizon): look after the horizon, the nodes spread over one poll period.
  if (quietUntil - now > 2 * cycleMs || (quietUntil > now && cycleMs > periodMs)) {
    return Math.min(quietUntil + context.slot * periodMs, now + context.tuning.maxSleepMs);
  }
  // Near it: not before the horizon, nor before part of the way to when the set likely completes
  // (`approachUntil`); then at this node's point of a grid of poll periods all nodes share, spread
  // over the period by their slots: every node looks once a period, the load stays even, and once
  // the watcher writes the start record every node reads it within one period. Never more often
  // than the watcher writes (a slow store makes its cycle long).
  const gridMs = Math.max(periodMs, cycleMs);
  const phase = context.slot * gridMs;
  const from = Math.max(now + 1, quietUntil);
  const next = Math.ceil((from - phase) / gridMs) * gridMs + phase;
  // Approaching: the last point of the grid before the target (never after it: see approachUntil).
  const approach = Math.floor((approachUntil(progress, context) - phase) / gridMs) * gridMs + phase;
  return Math.max(next, approach);
}

/**
 * Near completion, how long a waiting node may sleep before it looks: `approachFraction` of the way
 * to the watcher's `likelyAt`, but never past the moment that still lets it learn T in time whatever
 * arrives meanwhile. The set was incomplete at the LIST behind `progress`, so a record missing from it
 * is stamped after `listedAt - putWindowMs`, and T comes at least the start delay after that; a look
 * a poll period before T is in time. Not a horizon: T does not depend on it.
 */
export function approachUntil(progress: BarrierProgress, context: PollContext): number {
  const { likelyAt, listedAt } = progress;
  if (likelyAt === undefined || likelyAt <= context.now) return -Infinity;
  const { tuning } = context;
  const safe = listedAt - tuning.putWindowMs + effectiveStartDelayMs(context.startDelayMs, context.expected, tuning) - pollPeriodMs(context.expected, tuning);
  return Math.min(context.now + tuning.approachFraction * (likelyAt - context.now), safe);
}

/** What a waiting node needs to choose its next look (`nextPollAt`). */
export interface PollContext {
  /** Epoch ms now. */
  readonly now: number;
  readonly tuning: Pick<
    BarrierTuning,
    'maxSleepMs' | 'pollEveryMs' | 'maxPollsPerSecond' | 'progressCopies' | 'approachFraction' | 'putWindowMs' | 'listPageMs' | 'listDuty'
  >;
  /** This node's place in [0, 1) (`spreadOf` its id). */
  readonly slot: number;
  readonly expected: number;
  /** The start delay asked for (`effectiveStartDelayMs` makes it longer for many nodes). */
  readonly startDelayMs: number;
}

/**
 * When the set likely completes, judged from the arrivals the watcher knows (sorted readyAts, the
 * latest ones too): the missing ones at the rate of the latest `rateWindow` arrivals (or of as many
 * as are missing, when more). A guess for pacing the waiting nodes' looks, not a bound.
 */
export function likelyCompletion(sorted: readonly number[], expected: number, tuning: Pick<BarrierTuning, 'rateWindow'>): number | undefined {
  const k = sorted.length;
  const missing = expected - k;
  if (k < 2 || missing < 1) return undefined;
  const from = Math.max(0, k - Math.max(tuning.rateWindow, missing));
  const gapMs = (sorted[k - 1]! - sorted[from]!) / (k - 1 - from);
  return sorted[k - 1]! + missing * gapMs;
}

/** The watcher's next cycle, from what its last LIST showed. */
export interface WatcherCycle {
  /** Until then the set is very unlikely to be complete. */
  readonly quietUntil: number;
  /** When it likely completes (`likelyCompletion`). */
  readonly likelyAt?: number;
  readonly cycleMs: number;
  readonly nextListAt: number;
}

/**
 * After a LIST that began at `listedAt` and took `listMs`: how long the set stays quiet and when to
 * LIST again. Only records stamped before `listedAt - putWindowMs` are surely all in the LIST: they
 * are a prefix of the final arrivals, which is what makes the horizon safe (see `startTime`).
 */
export function watcherCycle(
  readyAts: readonly number[],
  timing: { readonly now: number; readonly listedAt: number; readonly listMs: number },
  expected: number,
  startDelayMs: number,
  tuning: BarrierTuning,
): WatcherCycle {
  const { now, listedAt, listMs } = timing;
  const nearCycle = Math.max(tuning.minCycleMs, listMs / tuning.listDuty);
  const proven = listedAt - tuning.putWindowMs;
  const sorted = [...readyAts].sort((a, b) => a - b);
  const prefix = sorted.filter((at) => at <= proven);
  const quietUntil = Math.max(
    arrivalHorizon(prefix, prefix.length, expected, tuning),
    lullHorizon(prefix[prefix.length - 1], proven, effectiveStartDelayMs(startDelayMs, expected, tuning), tuning),
  );
  const quietMs = Math.max(0, quietUntil - now);
  const near = quietMs < 2 * nearCycle;
  const cycleMs = near ? nearCycle : Math.min(Math.max(nearCycle, quietMs / 2), Math.max(nearCycle, tuning.heartbeatMs));
  const likelyAt = likelyCompletion(sorted, expected, tuning);
  return { quietUntil, cycleMs, nextListAt: Math.max(now + 1, listedAt + cycleMs), ...(likelyAt !== undefined && { likelyAt }) };
}

/**
 * The watcher's next LIST: at its cycle, or earlier so that its record is fresh when the nodes asleep
 * to a horizon it published (`wakes`) look: a record written up to a long cycle before the horizon
 * would send them to an earlier next horizon than what the watcher knows by then. `leadMs`: from the
 * start of a LIST to its record being stored.
 */
export function freshListAt(nextListAt: number, wakes: readonly number[], leadMs: number, now: number): number {
  let at = nextListAt;
  for (const wake of wakes) if (wake - leadMs > now) at = Math.min(at, wake - leadMs);
  return at;
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
  // Overlapping windows are not independent: k arrivals hold about k / run runs that share none.
  const windows = Math.max(1, k / run);
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
 * pages (above 1,000 nodes): by 1.0 s + 0.4 s at 5,000 nodes reading one record at 4,000 GET/s.
 */
export function effectiveStartDelayMs(
  startDelayMs: number,
  expected: number,
  tuning: Pick<BarrierTuning, 'pollEveryMs' | 'maxPollsPerSecond' | 'progressCopies' | 'listPageMs' | 'listDuty'>,
): number {
  const extraPages = Math.max(0, Math.ceil(expected / 1000) - 1);
  return startDelayMs + (pollPeriodMs(expected, tuning) - tuning.pollEveryMs) + (extraPages * tuning.listPageMs) / tuning.listDuty;
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
    | 'spanFraction'
    | 'burstFactor'
    | 'confidence'
    | 'maxSleepMs'
    | 'lullFraction'
    | 'pollEveryMs'
    | 'maxPollsPerSecond'
    | 'progressCopies'
    | 'listPageMs'
    | 'listDuty'
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
