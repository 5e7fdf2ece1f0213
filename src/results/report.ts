import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RunManifest } from '../core/manifest.ts';
import type { ParamValue } from '../spec/schema.ts';
import { faultReportOf, type FaultReport } from './faults.ts';
import { computeFigures, type RunFigures } from './figures.ts';
import { loadLocalRun, type LocalRun } from './local-run.ts';
import { pointLabel } from './matrix.ts';
import { analysisOfManifest, extractMetrics, type ExtractOptions, type ExtremeReport, type MetricReport } from './metrics.ts';
import type { Matrix, MatrixValue } from '../spec/matrix.ts';
import type { Analysis, AnalysisSpec } from '../spec/metrics.ts';
import type { SweepRecord } from './sweep-layout.ts';
import { sweepAxes, type SweepAxes } from './sweep-axes.ts';

/** Everything `lockstep results` knows about one run: the JSON output is this object. */
export interface RunReport {
  readonly kind: 'run';
  readonly runId: string;
  readonly name: string;
  readonly createdAt: string;
  readonly instances: number;
  /** Repeats the run asked for (figures hold every repeat found). */
  readonly repeatsPlanned: number;
  readonly params: Readonly<Record<string, ParamValue>>;
  /** Local folder the run was analysed from. */
  readonly dir: string;
  readonly figures: RunFigures;
  readonly metrics: readonly MetricReport[];
  /** `analysis.worst` / `analysis.best`: the worst (best) node per repeat and over repeats. */
  readonly extremes: readonly ExtremeReport[];
  /** The spec's `analysis` the metrics were read with (null: none). */
  readonly analysis: AnalysisSpec | null;
  /** Where the run came from when `lockstep import` brought it in. */
  readonly imported: RunManifest['imported'] | null;
  /** The fault timeline as it happened, and metrics split by it (a spec with `faults`). */
  readonly faults?: FaultReport;
}

/** A sweep: one run report per point, with the point's matrix values. */
export interface SweepReport {
  readonly kind: 'sweep';
  readonly sweepId: string;
  readonly name: string;
  readonly createdAt: string;
  readonly matrix: Matrix;
  /** Matrix keys, in the matrix's order. */
  readonly keys: readonly string[];
  /** What the charts put along x and what makes one line each (`analysis.sweep`, or chosen from the keys). */
  readonly axes: SweepAxes | null;
  readonly points: readonly SweepPointReport[];
}

export interface SweepPointReport {
  readonly index: number;
  readonly values: Readonly<Record<string, MatrixValue>>;
  readonly label: string;
  readonly runId: string | null;
  /** Null when the point has no run yet (or its run has no manifest yet). */
  readonly run: RunReport | null;
}

export type Report = RunReport | SweepReport;

export interface AnalyseOptions extends ExtractOptions {
  /** Metrics (and `analysis`) to use instead of those the run's spec declared. */
  readonly analysis?: Analysis;
}

/** Analyses a downloaded run folder: framework figures and user metrics. */
export async function analyseRun(dir: string, options: AnalyseOptions = {}): Promise<RunReport> {
  const run = await loadLocalRun(dir);
  return reportOf(run, options);
}

export async function reportOf(run: LocalRun, options: AnalyseOptions = {}): Promise<RunReport> {
  const { manifest } = run;
  const analysis = options.analysis ?? analysisOfManifest(manifest);
  const { metrics, extremes } = await extractMetrics(run, analysis, options);
  return {
    kind: 'run',
    runId: manifest.runId,
    name: manifest.name,
    createdAt: manifest.createdAt,
    instances: manifest.instances,
    repeatsPlanned: manifest.repeats,
    params: manifest.params,
    dir: run.dir,
    figures: computeFigures(run),
    metrics,
    extremes,
    analysis: analysis.analysis ?? null,
    imported: manifest.imported ?? null,
    ...(manifest.faults ? { faults: await faultReportOf(run, analysis.metrics) } : {}),
  };
}

/** Analyses every point of a sweep whose run is downloaded (`dirOf(runId)`). */
export async function analyseSweep(
  record: SweepRecord,
  dirOf: (runId: string) => string,
  options: AnalyseOptions = {},
): Promise<SweepReport> {
  const points: SweepPointReport[] = [];
  for (const point of record.points) {
    const dir = point.runId ? dirOf(point.runId) : undefined;
    const run = dir && existsSync(join(dir, 'manifest.json')) ? await analyseRun(dir, options) : null;
    points.push({ index: point.index, values: point.values, label: pointLabel(point.values), runId: point.runId ?? null, run });
  }
  const keys = Object.keys(record.matrix);
  const requested = options.analysis ? options.analysis.analysis?.sweep : points.find((p) => p.run?.analysis?.sweep)?.run?.analysis?.sweep;
  return {
    kind: 'sweep',
    sweepId: record.sweepId,
    name: record.name,
    createdAt: record.createdAt,
    matrix: record.matrix,
    keys,
    axes: sweepAxes(keys, points, requested, record.sweepId),
    points,
  };
}
