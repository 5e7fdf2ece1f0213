import { succeeded, type NodeResult, type Outcome } from '../core/manifest.ts';
import { repeatState, type RepeatState } from '../core/repeat-state.ts';
import type { LocalRepeat, LocalRun } from './local-run.ts';
import { quantileSorted, summarizeRepeats, type RepeatSummary } from './stats.ts';

export type Unit = 'ms' | 'bytes' | 'count';

/** One node in one repeat, as it recorded itself (`result.json`); times relative to the repeat. */
export interface NodeFigures {
  readonly repeat: number;
  readonly rank: number;
  readonly instanceId: string | null;
  readonly address: string | null;
  /** `missing`: the rank was expected but uploaded no result. */
  readonly outcome: Outcome | 'missing';
  readonly exitCode: number | null;
  readonly barrierWaitMs: number | null;
  readonly durationMs: number | null;
  /** startedAt − the earliest startedAt of the repeat. */
  readonly startOffsetMs: number | null;
  /** startedAt − scheduledStartAt (T): how late this node started. */
  readonly startLateMs: number | null;
  readonly cpuUserMs: number | null;
  readonly cpuSystemMs: number | null;
  /** cpuUserMs + cpuSystemMs. */
  readonly cpuMs: number | null;
  readonly peakMemoryBytes: number | null;
  readonly txBytes: number | null;
  readonly rxBytes: number | null;
  /** readyAt, barrierAt, startedAt, endedAt in ms since the repeat's earliest readyAt (for timelines). */
  readonly timeline: { readonly readyMs: number; readonly barrierMs: number; readonly startMs: number; readonly endMs: number } | null;
}

/** The framework figures of one repeat. `null` where no node recorded the figure. */
export interface RepeatFigures {
  readonly repeat: number;
  /** As `lockstep status` says it: a repeat that never started is `not run` (no figures), not failed. */
  readonly state: RepeatState;
  /** N: instances the repeat was for (members of its start record, else the run's `instances`). */
  readonly expected: number;
  /** Ranks that uploaded a result. */
  readonly nodes: number;
  readonly succeeded: number;
  /** Ranks whose outcome was not `success`, or that uploaded no result (in an aborted repeat: only those that failed before the abort). */
  readonly failed: number;
  readonly failedRanks: readonly number[];
  /** Instances that wrote a failure record (could not take part). */
  readonly instanceFailures: ReadonlyArray<{ readonly instanceId: string; readonly stage: string; readonly error: string }>;
  /** True when the barrier closed on a quorum. */
  readonly quorum: boolean;
  readonly values: Readonly<Record<RepeatFigureKey, number | null>>;
  readonly perNode: readonly NodeFigures[];
}

/** Every scalar figure of a repeat, with its label and unit: the table, CSV, JSON and charts use this list. */
export const REPEAT_FIGURES = [
  { key: 'n', label: 'N', unit: 'count' },
  { key: 'succeeded', label: 'ok', unit: 'count' },
  { key: 'failed', label: 'failed', unit: 'count' },
  { key: 'barrierWaitMedianMs', label: 'barrier wait (median)', unit: 'ms' },
  { key: 'barrierWaitMaxMs', label: 'barrier wait (max)', unit: 'ms' },
  { key: 'startSkewMs', label: 'start skew', unit: 'ms' },
  { key: 'durationMedianMs', label: 'duration (median)', unit: 'ms' },
  { key: 'durationMaxMs', label: 'duration (max)', unit: 'ms' },
  { key: 'cpuTotalMs', label: 'CPU time (sum)', unit: 'ms' },
  { key: 'cpuMaxMs', label: 'CPU time (max)', unit: 'ms' },
  { key: 'peakMemoryMaxBytes', label: 'peak memory (max)', unit: 'bytes' },
  { key: 'txTotalBytes', label: 'bytes sent (sum)', unit: 'bytes' },
  { key: 'rxTotalBytes', label: 'bytes received (sum)', unit: 'bytes' },
  { key: 'txMaxBytes', label: 'bytes sent (max node)', unit: 'bytes' },
  { key: 'rxMaxBytes', label: 'bytes received (max node)', unit: 'bytes' },
] as const satisfies ReadonlyArray<{ key: string; label: string; unit: Unit }>;

export type RepeatFigureKey = (typeof REPEAT_FIGURES)[number]['key'];

export interface RunFigures {
  /**
   * False when nodes left logs but none a `result.json` (a run imported from logs alone, such as the
   * seed's): there are no timings or outcomes, and the figures other than N are null.
   */
  readonly recorded: boolean;
  readonly repeats: readonly RepeatFigures[];
  /** Each repeat figure over the repeats that have it: mean, sd, 95% CI. */
  readonly overRepeats: Readonly<Record<RepeatFigureKey, RepeatSummary>>;
  /** Ranks that failed (or went missing) in at least one repeat, with the repeats. */
  readonly failuresByRank: ReadonlyArray<{ readonly rank: number; readonly repeats: readonly number[] }>;
  /** `lockstep down` or an interrupted `lockstep run` stopped the run. */
  readonly aborted?: { readonly at: string; readonly reason: string };
}

export function computeFigures(run: LocalRun): RunFigures {
  const nodes = run.repeats.flatMap((repeat) => repeat.nodes);
  const recorded = nodes.length === 0 || nodes.some((node) => node.result);
  const repeats = run.repeats.map((repeat) => (recorded ? repeatFigures(repeat, run.manifest.instances, run.aborted !== undefined) : unrecordedFigures(repeat)));
  const overRepeats = Object.fromEntries(
    // Every framework figure is a duration, a size or a count: none can be negative.
    REPEAT_FIGURES.map(({ key }) => [key, summarizeRepeats(repeats.filter((r) => r.nodes > 0).map((r) => r.values[key]), { nonNegative: true })]),
  ) as Record<RepeatFigureKey, RepeatSummary>;
  const byRank = new Map<number, number[]>();
  for (const repeat of repeats) {
    for (const rank of repeat.failedRanks) byRank.set(rank, [...(byRank.get(rank) ?? []), repeat.repeat]);
  }
  const failuresByRank = [...byRank].sort(([a], [b]) => a - b).map(([rank, list]) => ({ rank, repeats: list }));
  return { recorded, repeats, overRepeats, failuresByRank, ...(run.aborted ? { aborted: { at: run.aborted.at, reason: run.aborted.reason } } : {}) };
}

/** A repeat of logs without records: N (its nodes) and nothing else. */
function unrecordedFigures(repeat: LocalRepeat): RepeatFigures {
  const values = Object.fromEntries(REPEAT_FIGURES.map(({ key }) => [key, null])) as Record<RepeatFigureKey, number | null>;
  values.n = repeat.nodes.length;
  const state = repeat.nodes.length > 0 ? 'done' : 'not run';
  return { repeat: repeat.repeat, state, expected: repeat.nodes.length, nodes: repeat.nodes.length, succeeded: 0, failed: 0, failedRanks: [], instanceFailures: [], quorum: false, values, perNode: [] };
}

/** The figures of one repeat; `runAborted`: the run has an abort record. */
export function repeatFigures(repeat: LocalRepeat, instances: number, runAborted = false): RepeatFigures {
  const expected = repeat.start?.members.length ?? instances;
  const results = repeat.nodes.filter((n) => n.result).map((n) => n.result!);
  const instanceFailures = repeat.failures.map((f) => ({ instanceId: f.instanceId, stage: f.stage, error: f.error }));
  // Downloaded results describe a run that is over (or as far as it got).
  const state = repeatState({
    members: repeat.start?.members.length ?? null,
    outcomes: results.map((r) => r.outcome),
    failures: repeat.failures,
    readyIds: repeat.readyIds ?? [],
    instances,
    aborted: runAborted,
    runOver: true,
  });
  if (state === 'not run') {
    const values = Object.fromEntries(REPEAT_FIGURES.map(({ key }) => [key, null])) as Record<RepeatFigureKey, number | null>;
    return { repeat: repeat.repeat, state, expected, nodes: 0, succeeded: 0, failed: 0, failedRanks: [], instanceFailures, quorum: false, values, perNode: [] };
  }
  const earliestStart = minOf(results.map((r) => r.startedAt));
  const earliestReady = minOf(results.map((r) => r.readyAt));

  const perNode: NodeFigures[] = repeat.nodes.map((node) =>
    node.result ? nodeFigures(repeat.repeat, node.result, earliestStart, earliestReady) : missingNode(repeat.repeat, node.rank),
  );
  const present = new Set(perNode.filter((n) => n.outcome !== 'missing').map((n) => n.rank));
  for (let rank = 0; rank < expected; rank++) {
    if (!present.has(rank) && !perNode.some((n) => n.rank === rank)) perNode.push(missingNode(repeat.repeat, rank));
  }
  perNode.sort((a, b) => a.rank - b.rank);

  // In a repeat the abort stopped, the nodes it stopped (or that never uploaded) did not fail.
  const failedRanks = perNode.filter((n) => !succeeded(n.outcome) && (state !== 'aborted' || (n.outcome !== 'aborted' && n.outcome !== 'missing'))).map((n) => n.rank);
  const starts = results.map((r) => r.startedAt).filter(isNumber);
  const values: Record<RepeatFigureKey, number | null> = {
    n: expected,
    succeeded: perNode.filter((n) => succeeded(n.outcome)).length,
    failed: failedRanks.length,
    barrierWaitMedianMs: median(perNode.map((n) => n.barrierWaitMs)),
    barrierWaitMaxMs: maxOf(perNode.map((n) => n.barrierWaitMs)),
    startSkewMs: starts.length > 0 ? Math.max(...starts) - Math.min(...starts) : null,
    durationMedianMs: median(perNode.map((n) => n.durationMs)),
    durationMaxMs: maxOf(perNode.map((n) => n.durationMs)),
    cpuTotalMs: sumOf(perNode.map((n) => n.cpuMs)),
    cpuMaxMs: maxOf(perNode.map((n) => n.cpuMs)),
    peakMemoryMaxBytes: maxOf(perNode.map((n) => n.peakMemoryBytes)),
    txTotalBytes: sumOf(perNode.map((n) => n.txBytes)),
    rxTotalBytes: sumOf(perNode.map((n) => n.rxBytes)),
    txMaxBytes: maxOf(perNode.map((n) => n.txBytes)),
    rxMaxBytes: maxOf(perNode.map((n) => n.rxBytes)),
  };
  return {
    repeat: repeat.repeat,
    state,
    expected,
    nodes: results.length,
    succeeded: values.succeeded!,
    failed: failedRanks.length,
    failedRanks,
    instanceFailures,
    quorum: repeat.start?.quorum ?? false,
    values,
    perNode,
  };
}

function nodeFigures(repeat: number, r: NodeResult, earliestStart: number | null, earliestReady: number | null): NodeFigures {
  const cpuMs = isNumber(r.cpuUserMs) && isNumber(r.cpuSystemMs) ? r.cpuUserMs + r.cpuSystemMs : null;
  const times = [r.readyAt, r.barrierAt, r.startedAt, r.endedAt];
  return {
    repeat,
    rank: r.rank,
    instanceId: r.instanceId ?? null,
    address: r.address ?? null,
    outcome: r.outcome,
    exitCode: r.exitCode ?? null,
    barrierWaitMs: numberOrNull(r.barrierWaitMs),
    durationMs: numberOrNull(r.durationMs),
    startOffsetMs: isNumber(r.startedAt) && earliestStart !== null ? r.startedAt - earliestStart : null,
    startLateMs: isNumber(r.startedAt) && isNumber(r.scheduledStartAt) ? r.startedAt - r.scheduledStartAt : null,
    cpuUserMs: numberOrNull(r.cpuUserMs),
    cpuSystemMs: numberOrNull(r.cpuSystemMs),
    cpuMs,
    peakMemoryBytes: numberOrNull(r.peakMemoryBytes),
    txBytes: numberOrNull(r.network?.txBytes),
    rxBytes: numberOrNull(r.network?.rxBytes),
    timeline:
      times.every(isNumber) && earliestReady !== null
        ? {
            readyMs: r.readyAt - earliestReady,
            barrierMs: r.barrierAt - earliestReady,
            startMs: r.startedAt - earliestReady,
            endMs: r.endedAt - earliestReady,
          }
        : null,
  };
}

function missingNode(repeat: number, rank: number): NodeFigures {
  return {
    repeat,
    rank,
    instanceId: null,
    address: null,
    outcome: 'missing',
    exitCode: null,
    barrierWaitMs: null,
    durationMs: null,
    startOffsetMs: null,
    startLateMs: null,
    cpuUserMs: null,
    cpuSystemMs: null,
    cpuMs: null,
    peakMemoryBytes: null,
    txBytes: null,
    rxBytes: null,
    timeline: null,
  };
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function numberOrNull(value: unknown): number | null {
  return isNumber(value) ? value : null;
}

function present(values: ReadonlyArray<number | null | undefined>): number[] {
  return values.filter(isNumber);
}

function minOf(values: ReadonlyArray<number | null | undefined>): number | null {
  const list = present(values);
  return list.length > 0 ? Math.min(...list) : null;
}

function maxOf(values: ReadonlyArray<number | null | undefined>): number | null {
  const list = present(values);
  return list.length > 0 ? Math.max(...list) : null;
}

function sumOf(values: ReadonlyArray<number | null | undefined>): number | null {
  const list = present(values);
  return list.length > 0 ? list.reduce((a, b) => a + b, 0) : null;
}

function median(values: ReadonlyArray<number | null | undefined>): number | null {
  const list = present(values);
  return list.length > 0 ? quantileSorted(Float64Array.from(list).sort(), 0.5) : null;
}

/**
 * Why figures are missing, in words for the table and the report (null when they are there):
 * per-node network counters need an interface of the node's own; peak memory is sampled.
 */
export function missingFigureNotes(figures: RunFigures): { network: string | null; memory: string | null } {
  const nodes = figures.repeats.flatMap((r) => r.perNode).filter((n) => n.outcome !== 'missing');
  if (nodes.length === 0) return { network: null, memory: null };
  const network = nodes.every((n) => n.txBytes === null)
    ? nodes.every((n) => n.address?.startsWith('127.'))
      ? 'bytes sent and received: not measured: these nodes shared one machine’s loopback interface (`isolation: loopback`), and the counters are per interface; `isolation: netns` or EC2 gives each node its own'
      : 'bytes sent and received: no node recorded network counters (the agent reads them, on Linux, from the interface that holds the node’s address)'
    : null;
  const memory = nodes.every((n) => n.peakMemoryBytes === null)
    ? 'peak memory: not measured: every command ended before its memory was first sampled (about 20 ms after its start; Linux only)'
    : null;
  return { network, memory };
}
