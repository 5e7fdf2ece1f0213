import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { nodeFiles } from '../core/layout.ts';
import type { RunManifest } from '../core/manifest.ts';
import type { NodeSamples } from './extract.ts';
import type { LocalRun } from './local-run.ts';
import { scanFiles, type ScanPoolOptions } from './scan-pool.ts';
import { metricsField, type MetricSpec, type MetricSpecInput, type PerNode } from '../spec/metrics.ts';
import { distribution, summarizeRepeats, type Distribution, type RepeatSummary } from './stats.ts';

export const METRIC_STATS = ['min', 'median', 'mean', 'p95', 'max'] as const;
export type MetricStat = (typeof METRIC_STATS)[number];

/** One metric over a run: per repeat over nodes, and over repeats. */
export interface MetricReport {
  readonly name: string;
  readonly unit: string | null;
  readonly source: 'regex' | 'json';
  readonly file: string;
  readonly perNode: PerNode;
  readonly repeats: readonly MetricRepeat[];
  /** Each per-repeat statistic over the repeats that had samples: mean, sd, 95% CI. */
  readonly overRepeats: Readonly<Record<MetricStat, RepeatSummary>>;
}

export interface MetricRepeat {
  readonly repeat: number;
  /** Nodes with at least one sample. */
  readonly nodes: number;
  /** Samples aggregated: every sample (`perNode: all`) or one per node. */
  readonly samples: number;
  /** Over the samples; null when no node had one. */
  readonly stats: Distribution | null;
  /** Per node: how many samples it had and its value (its own reduction; `all`: the node's mean). */
  readonly byRank: ReadonlyArray<{ readonly rank: number; readonly count: number; readonly value: number }>;
}

export class MetricSpecError extends Error {
  override readonly name = 'MetricSpecError';
  readonly exitCode = 2;
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(`Metrics of ${source}: ${problem}; fix \`metrics\` in the spec (see docs/results.md)`);
  }
}

/** Validates metric declarations (as written in a spec) and fills their defaults. */
export function parseMetrics(input: unknown, source = 'the spec'): MetricSpec[] {
  const parsed = metricsField.safeParse(input ?? []);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new MetricSpecError(source, `${['metrics', ...issue.path].join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

/** The metrics a run declared: the `metrics` of the spec text it recorded in its manifest. */
export function metricsOfManifest(manifest: RunManifest): MetricSpec[] {
  let document: unknown;
  try {
    document = parseYaml(manifest.specSource ?? '');
  } catch {
    return [];
  }
  const metrics = document && typeof document === 'object' ? (document as { metrics?: unknown }).metrics : undefined;
  return parseMetrics(metrics, `run ${manifest.runId}`);
}

export type ExtractOptions = ScanPoolOptions;

/**
 * Extracts the metrics from every node's files of every repeat, streaming each file once for all
 * the metrics that read it (in worker threads when there is much to read), and aggregates them.
 */
export async function extractMetrics(
  run: LocalRun,
  specs: readonly (MetricSpec | MetricSpecInput)[],
  options: ExtractOptions = {},
): Promise<MetricReport[]> {
  const metrics = parseMetrics(specs);
  if (metrics.length === 0) return [];
  const collectors = metrics.map((spec) => run.repeats.map(() => new Map<number, NodeSamples>()));

  interface FileJob {
    readonly path: string;
    readonly rank: number;
    readonly repeatIndex: number;
    readonly metricIndexes: number[];
  }
  const jobs: FileJob[] = [];
  run.repeats.forEach((repeat, repeatIndex) => {
    for (const node of repeat.nodes) {
      const byFile = new Map<string, number[]>();
      metrics.forEach((metric, m) => byFile.set(metric.file, [...(byFile.get(metric.file) ?? []), m]));
      for (const [file, metricIndexes] of byFile) {
        const path = nodeFilePath(node.dir, file);
        if (existsSync(path)) jobs.push({ path, rank: node.rank, repeatIndex, metricIndexes });
      }
    }
  });

  const scanned = await scanFiles(
    jobs.map((job) => ({ path: job.path, metrics: job.metricIndexes.map((m) => metrics[m]!) })),
    options,
  );
  jobs.forEach((job, j) => {
    job.metricIndexes.forEach((m, i) => collectors[m]![job.repeatIndex]!.set(job.rank, scanned[j]![i]!));
  });

  return metrics.map((metric, m) => {
    const repeats = run.repeats.map((repeat, r) => aggregateRepeat(repeat.repeat, collectors[m]![r]!, metric.perNode));
    // A metric none of whose samples was ever negative is taken for one that cannot be.
    const nonNegative = repeats.every((rep) => rep.stats === null || rep.stats.min >= 0);
    const overRepeats = Object.fromEntries(
      METRIC_STATS.map((stat) => [stat, summarizeRepeats(repeats.map((rep) => rep.stats?.[stat] ?? null), { nonNegative })]),
    ) as Record<MetricStat, RepeatSummary>;
    return {
      name: metric.name,
      unit: metric.unit ?? null,
      source: metric.json ? 'json' : 'regex',
      file: metric.file,
      perNode: metric.perNode,
      repeats,
      overRepeats,
    };
  });
}

/** `stdout.log` and `stderr.log` are the node's own logs; any other path is a collected file. */
export function nodeFilePath(nodeDir: string, file: string): string {
  if (file === nodeFiles.stdout || file === nodeFiles.stderr || file.startsWith(nodeFiles.filesPrefix)) {
    return join(nodeDir, ...file.split('/'));
  }
  return join(nodeDir, ...nodeFiles.filesPrefix.slice(0, -1).split('/'), ...file.split('/'));
}

function aggregateRepeat(repeat: number, nodes: Map<number, NodeSamples>, perNode: PerNode): MetricRepeat {
  const withSamples = [...nodes].filter(([, s]) => s.count > 0).sort(([a], [b]) => a - b);
  let pooled: Float64Array;
  if (perNode === 'all') {
    pooled = new Float64Array(withSamples.reduce((total, [, s]) => total + s.count, 0));
    let offset = 0;
    for (const [, s] of withSamples) {
      pooled.set(s.samples(), offset);
      offset += s.count;
    }
  } else {
    pooled = Float64Array.from(withSamples.map(([, s]) => s.value()));
  }
  return {
    repeat,
    nodes: withSamples.length,
    samples: pooled.length,
    stats: distribution(pooled) ?? null,
    byRank: withSamples.map(([rank, s]) => ({ rank, count: s.count, value: s.value() })),
  };
}
