import { REPEAT_FIGURES } from './figures.ts';
import { METRIC_STATS } from './metrics.ts';
import type { Report, RunReport } from './report.ts';
import type { RepeatSummary } from './stats.ts';
import type { MatrixValue } from '../spec/matrix.ts';
import { succeeded } from '../core/manifest.ts';

/**
 * Every number of a report as one flat ("tidy") row: what `--csv` prints. Kinds:
 * - `figure`: a framework figure of a repeat (`aggregate: value`) or over repeats (`repeat: all`,
 *   aggregate `mean`, `sd`, `ci95_low`, `ci95_high`, `n`);
 * - `metric`: a user metric statistic (`stat`: min, median, mean, p95, max, samples, nodes) of a
 *   repeat, or of each statistic over repeats;
 * - `node`: one node's own figure in one repeat (`rank` set);
 * - `node-metric`: one node's metric value (`stat: value`) and sample count (`stat: count`);
 * - `worst`, `best`: the worst (best) node by the metric `stat`, per repeat and over repeats
 *   (`repeat: all`), with its value of each metric (`name`).
 */
export interface ResultRow {
  /** Sweep point index and its matrix values (sweeps only). */
  readonly point?: number;
  readonly values?: Readonly<Record<string, MatrixValue>>;
  readonly run: string;
  readonly kind: 'figure' | 'metric' | 'node' | 'node-metric' | 'worst' | 'best';
  readonly repeat: number | 'all';
  readonly rank: number | null;
  readonly name: string;
  readonly stat: string;
  readonly aggregate: 'value' | 'mean' | 'sd' | 'ci95_low' | 'ci95_high' | 'n';
  readonly value: number | null;
  readonly unit: string;
}

const NODE_FIELDS = [
  ['failed', 'count'],
  ['exitCode', 'count'],
  ['barrierWaitMs', 'ms'],
  ['startOffsetMs', 'ms'],
  ['startLateMs', 'ms'],
  ['durationMs', 'ms'],
  ['cpuUserMs', 'ms'],
  ['cpuSystemMs', 'ms'],
  ['peakMemoryBytes', 'bytes'],
  ['txBytes', 'bytes'],
  ['rxBytes', 'bytes'],
] as const;

export function reportRows(report: Report): ResultRow[] {
  if (report.kind === 'run') return runRows(report);
  return report.points.flatMap((point) =>
    point.run ? runRows(point.run).map((row) => ({ point: point.index, values: point.values, ...row })) : [],
  );
}

export function runRows(report: RunReport): ResultRow[] {
  const run = report.runId;
  const rows: ResultRow[] = [];
  const summaryRows = (base: Omit<ResultRow, 'aggregate' | 'value' | 'repeat'>, summary: RepeatSummary) => {
    rows.push(
      { ...base, repeat: 'all', aggregate: 'mean', value: summary.mean },
      { ...base, repeat: 'all', aggregate: 'sd', value: summary.sd },
      { ...base, repeat: 'all', aggregate: 'ci95_low', value: summary.ci95?.[0] ?? null },
      { ...base, repeat: 'all', aggregate: 'ci95_high', value: summary.ci95?.[1] ?? null },
      { ...base, repeat: 'all', aggregate: 'n', value: summary.n, unit: 'count' },
    );
  };

  for (const figure of REPEAT_FIGURES) {
    const base = { run, kind: 'figure', rank: null, name: figure.key, stat: '', unit: figure.unit } as const;
    for (const repeat of report.figures.repeats) rows.push({ ...base, repeat: repeat.repeat, aggregate: 'value', value: repeat.values[figure.key] });
    summaryRows(base, report.figures.overRepeats[figure.key]);
  }
  for (const metric of report.metrics) {
    const unit = metric.unit ?? '';
    for (const repeat of metric.repeats) {
      const base = { run, kind: 'metric', repeat: repeat.repeat, rank: null, name: metric.name, aggregate: 'value' } as const;
      for (const stat of METRIC_STATS) rows.push({ ...base, stat, value: repeat.stats?.[stat] ?? null, unit });
      rows.push({ ...base, stat: 'samples', value: repeat.samples, unit: 'count' }, { ...base, stat: 'nodes', value: repeat.nodes, unit: 'count' });
    }
    for (const stat of METRIC_STATS) {
      summaryRows({ run, kind: 'metric', rank: null, name: metric.name, stat, unit }, metric.overRepeats[stat]);
    }
  }
  for (const repeat of report.figures.repeats) {
    for (const node of repeat.perNode) {
      for (const [field, unit] of NODE_FIELDS) {
        const value = field === 'failed' ? (succeeded(node.outcome) ? 0 : 1) : node[field];
        rows.push({ run, kind: 'node', repeat: repeat.repeat, rank: node.rank, name: field, stat: '', aggregate: 'value', value, unit });
      }
    }
  }
  for (const metric of report.metrics) {
    for (const repeat of metric.repeats) {
      for (const { rank, count, value } of repeat.byRank) {
        const base = { run, kind: 'node-metric', repeat: repeat.repeat, rank, name: metric.name, aggregate: 'value' } as const;
        rows.push({ ...base, stat: 'value', value, unit: metric.unit ?? '' }, { ...base, stat: 'count', value: count, unit: 'count' });
      }
    }
  }
  const unitOf = (name: string) => report.metrics.find((m) => m.name === name)?.unit ?? '';
  for (const extreme of report.extremes) {
    const nodes = [...extreme.repeats.map((node) => ({ node, repeat: node.repeat as number | 'all' })), ...(extreme.overall ? [{ node: extreme.overall, repeat: 'all' as const }] : [])];
    for (const { node, repeat } of nodes) {
      for (const [name, value] of Object.entries(node.metrics)) {
        rows.push({ run, kind: extreme.kind, repeat, rank: node.rank, name, stat: extreme.metric, aggregate: 'value', value, unit: unitOf(name) });
      }
    }
  }
  return rows;
}

/** One node's value of one metric or framework figure: a row of `--csv --per-node`. */
export interface NodeRow {
  readonly point?: number;
  readonly values?: Readonly<Record<string, MatrixValue>>;
  readonly run: string;
  readonly repeat: number;
  readonly rank: number;
  readonly metric: string;
  readonly value: number;
}

/**
 * Every node's value of every metric (derived ones too) and of the framework's per-node figures,
 * one row each ("tidy", for pandas or R). A node without a value has no row.
 */
export function perNodeRows(report: Report): NodeRow[] {
  if (report.kind === 'sweep') {
    return report.points.flatMap((point) => (point.run ? perNodeRows(point.run).map((row) => ({ point: point.index, values: point.values, ...row })) : []));
  }
  const rows: NodeRow[] = [];
  for (const [r, repeat] of report.figures.repeats.entries()) {
    const ranks = new Set([...repeat.perNode.map((n) => n.rank), ...report.metrics.flatMap((m) => m.repeats[r]?.byRank.map((n) => n.rank) ?? [])]);
    for (const rank of [...ranks].sort((a, b) => a - b)) {
      const base = { run: report.runId, repeat: repeat.repeat, rank };
      const node = repeat.perNode.find((n) => n.rank === rank);
      if (node && node.outcome !== 'missing') {
        for (const [field] of NODE_FIELDS) {
          const value = field === 'failed' ? (succeeded(node.outcome) ? 0 : 1) : node[field];
          if (value !== null) rows.push({ ...base, metric: field, value });
        }
      }
      for (const metric of report.metrics) {
        const found = metric.repeats[r]?.byRank.find((n) => n.rank === rank);
        if (found) rows.push({ ...base, metric: metric.name, value: found.value });
      }
    }
  }
  return rows;
}

/** `run,repeat,rank,metric,value` (a sweep prepends `point` and a column per matrix key). */
export function perNodeCsv(rows: readonly NodeRow[], matrixKeys: readonly string[] = []): string {
  const sweep = rows.some((row) => row.point !== undefined) || matrixKeys.length > 0;
  const header = [...(sweep ? ['point', ...matrixKeys] : []), 'run', 'repeat', 'rank', 'metric', 'value'];
  const lines = [header.map(csvField).join(',')];
  for (const row of rows) {
    const fields: unknown[] = sweep ? [row.point, ...matrixKeys.map((key) => row.values?.[key])] : [];
    fields.push(row.run, row.repeat, row.rank, row.metric, row.value);
    lines.push(fields.map(csvField).join(','));
  }
  return lines.join('\n') + '\n';
}

const COLUMNS = ['run', 'kind', 'repeat', 'rank', 'name', 'stat', 'aggregate', 'value', 'unit'] as const;

/** The rows as CSV (RFC 4180), numbers unrounded; a sweep adds `point` and a column per matrix key first. */
export function rowsToCsv(rows: readonly ResultRow[], matrixKeys: readonly string[] = []): string {
  const sweep = rows.some((row) => row.point !== undefined) || matrixKeys.length > 0;
  const header = [...(sweep ? ['point', ...matrixKeys] : []), ...COLUMNS];
  const lines = [header.map(csvField).join(',')];
  for (const row of rows) {
    const fields: unknown[] = sweep ? [row.point, ...matrixKeys.map((key) => row.values?.[key])] : [];
    fields.push(row.run, row.kind, row.repeat, row.rank, row.name, row.stat, row.aggregate, row.value, row.unit);
    lines.push(fields.map(csvField).join(','));
  }
  return lines.join('\n') + '\n';
}

function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
