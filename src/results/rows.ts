import { REPEAT_FIGURES } from './figures.ts';
import { METRIC_STATS } from './metrics.ts';
import type { Report, RunReport } from './report.ts';
import type { RepeatSummary } from './stats.ts';
import type { MatrixValue } from '../spec/matrix.ts';

/**
 * Every number of a report as one flat ("tidy") row: what `--csv` prints. Kinds:
 * - `figure`: a framework figure of a repeat (`aggregate: value`) or over repeats (`repeat: all`,
 *   aggregate `mean`, `sd`, `ci95_low`, `ci95_high`, `n`);
 * - `metric`: a user metric statistic (`stat`: min, median, mean, p95, max, samples, nodes) of a
 *   repeat, or of each statistic over repeats;
 * - `node`: one node's own figure in one repeat (`rank` set);
 * - `node-metric`: one node's metric value (`stat: value`) and sample count (`stat: count`).
 */
export interface ResultRow {
  /** Sweep point index and its matrix values (sweeps only). */
  readonly point?: number;
  readonly values?: Readonly<Record<string, MatrixValue>>;
  readonly run: string;
  readonly kind: 'figure' | 'metric' | 'node' | 'node-metric';
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
        const value = field === 'failed' ? (node.outcome === 'success' ? 0 : 1) : node[field];
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
  return rows;
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
