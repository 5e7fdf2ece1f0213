import { matrixPoints, type MatrixPoint } from '../results/matrix.ts';
import { layout } from '../core/layout.ts';
import { readSweepRecord, writeSweepRecord, type SweepRecord } from '../results/sweep-layout.ts';
import type { Store } from '../store/store.ts';
import { loadSpec, type LoadedSpec, type LoadOptions } from '../spec/load.ts';
import { checkRun } from './preflight.ts';
import { newRunId } from './run-id.ts';
import { rememberRun } from './run-index.ts';
import { runExperiment, type RunOptions, type RunOutcome } from './run.ts';
import { RunNotFoundError, runStatus, type RunStatus } from './status.ts';

/** A spec with a `matrix` is a sweep: one run per combination of its values. */
export function isSweep(loaded: LoadedSpec): boolean {
  return Object.keys(loaded.spec.matrix ?? {}).length > 0;
}

export interface SweepPlan {
  /** The spec as given, with its matrix. */
  readonly loaded: LoadedSpec;
  /** Every point, its spec loaded and checked. */
  readonly points: ReadonlyArray<{ readonly point: MatrixPoint; readonly loaded: LoadedSpec }>;
}

/**
 * Loads the spec of every point of the matrix, so that a bad point is refused (pointing at its
 * matrix line) before anything is written or launched. What `run` and `run --dry-run` both check.
 */
export function planSweep(loaded: LoadedSpec, options: Pick<LoadOptions, 'overrides' | 'cwd'> = {}): SweepPlan {
  const points = matrixPoints(loaded.spec.matrix).map((point) => ({
    point,
    loaded: loadSpec(loaded.file, { ...options, matrixPoint: point.values }),
  }));
  return { loaded, points };
}

/** What running the sweep checks first (see `checkRun`): the largest point must fit before the first one starts. */
export function checkSweep(plan: SweepPlan, options: Parameters<typeof checkRun>[1] = {}): ReturnType<typeof checkRun> {
  return checkRun(plan.loaded, { ...options, instances: Math.max(...plan.points.map((p) => p.loaded.spec.instances)) });
}

export type SweepEvent =
  | { readonly type: 'sweep'; readonly sweepId: string; readonly store: string; readonly points: number }
  | { readonly type: 'point'; readonly point: MatrixPoint; readonly total: number; readonly loaded: LoadedSpec };

export interface SweepOptions extends Omit<RunOptions, 'loaded' | 'onManifest'> {
  readonly plan: SweepPlan;
  readonly onSweepEvent?: (event: SweepEvent) => void;
  /** Runs one point (default `runExperiment`): the CLI wraps it in its progress display. */
  readonly runPoint?: (options: RunOptions) => Promise<RunOutcome>;
}

export interface SweepRun {
  readonly point: number;
  readonly values: MatrixPoint['values'];
  /** Absent for a point the sweep never reached. */
  readonly runId?: string;
  readonly ok: boolean;
  readonly outcome?: RunOutcome;
}

export interface SweepOutcome {
  readonly sweepId: string;
  readonly store: string;
  /** One entry per point, in order; the points after an interruption have no run. */
  readonly runs: readonly SweepRun[];
  readonly ok: boolean;
  /** `signal` stopped the sweep: the points after the one it stopped were not run. */
  readonly interrupted: boolean;
}

/**
 * Runs a sweep: one run per point, one after the other, each recorded in `sweeps/<sweepId>.json`
 * (before its instances are launched) so that `lockstep results <sweepId>` finds them all.
 */
export async function runSweep(options: SweepOptions): Promise<SweepOutcome> {
  const { plan } = options;
  const emit = options.onSweepEvent ?? (() => {});
  const { locator, store } = await checkSweep(plan, { store: options.store, cwd: options.cwd, provider: !options.provider });
  const runs: SweepRun[] = plan.points.map(({ point }) => ({ point: point.index, values: point.values, ok: false }));
  let interrupted = false;
  let sweepId = '';
  try {
    sweepId = newRunId(`${plan.loaded.spec.name}-sweep`);
    let record: SweepRecord = {
      formatVersion: 1,
      sweepId,
      name: plan.loaded.spec.name,
      createdAt: new Date().toISOString(),
      matrix: plan.loaded.spec.matrix ?? {},
      points: plan.points.map(({ point }) => ({ index: point.index, values: point.values, overrides: point.overrides })),
    };
    await writeSweepRecord(store, record);
    await rememberRun({ id: sweepId, kind: 'sweep', name: record.name, createdAt: record.createdAt, store: store.locator }, options.home);
    emit({ type: 'sweep', sweepId, store: locator, points: plan.points.length });
    const runPoint = options.runPoint ?? runExperiment;
    for (const { point, loaded } of plan.points) {
      if (options.signal?.aborted) break;
      emit({ type: 'point', point, total: plan.points.length, loaded });
      const outcome = await runPoint({
        ...options,
        loaded,
        store: locator,
        onManifest: async (manifest) => {
          record = { ...record, points: record.points.map((p) => (p.index === point.index ? { ...p, runId: manifest.runId } : p)) };
          await writeSweepRecord(store, record);
        },
      });
      runs[point.index] = { point: point.index, values: point.values, runId: outcome.runId, ok: outcome.ok, outcome };
    }
    interrupted = options.signal?.aborted ?? false;
  } finally {
    await store.dispose();
  }
  return { sweepId, store: locator, runs, ok: !interrupted && runs.every((r) => r.ok), interrupted };
}

export interface SweepStatus {
  readonly record: SweepRecord;
  readonly points: ReadonlyArray<{
    readonly index: number;
    readonly values: MatrixPoint['values'];
    readonly runId?: string;
    /** The run's state, or `not started` for a point the sweep has not reached (or never will). */
    readonly state: RunStatus['state'] | 'not started';
  }>;
}

/** A sweep's points and the state of each point's run. */
export async function sweepStatus(store: Store, sweepId: string): Promise<SweepStatus> {
  const record = await readSweepRecord(store, sweepId);
  if (!record) throw new RunNotFoundError(sweepId, store.locator);
  const points = await Promise.all(
    record.points.map(async (p) => ({
      index: p.index,
      values: p.values,
      ...(p.runId ? { runId: p.runId } : {}),
      state: p.runId && (await store.get(layout.manifest(p.runId))) ? (await runStatus(store, p.runId)).state : ('not started' as const),
    })),
  );
  return { record, points };
}
