import { faultTables } from './faults.ts';
import { missingFigureNotes, REPEAT_FIGURES } from './figures.ts';
import { formatValue } from './format.ts';
import { METRIC_STATS } from './metrics.ts';
import type { ExtremeNode } from './metrics.ts';
import type { Report, RunReport, SweepReport } from './report.ts';
import { studentT975, type CiOmitted, type RepeatSummary } from './stats.ts';

/** Which number of the flat rows (CSV) a table cell shows: see `rows.ts`. */
export interface CellRef {
  readonly run: string;
  readonly kind: 'figure' | 'metric' | 'worst' | 'best';
  readonly repeat: number | 'all';
  /** For a `worst` or `best` node. */
  readonly rank?: number;
  readonly name: string;
  readonly stat: string;
  readonly aggregate: 'value' | 'mean' | 'sd' | 'ci95_low' | 'ci95_high' | 'n';
}

export interface Cell {
  /** The whole cell as printed in the terminal. */
  readonly text: string;
  /** A trailing part of `text` (a confidence interval) that the HTML report shows on a second line. */
  readonly detail?: string;
  /** The numbers shown, each formatted into `text`. */
  readonly refs?: readonly CellRef[];
}

export interface Table {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: ReadonlyArray<readonly Cell[]>;
  /** Lines printed under the table (failures, hints). */
  readonly notes: readonly string[];
}

/** Per-repeat columns shown in the terminal; more repeats show only the over-repeat columns (all are in --csv). */
export const MAX_REPEAT_COLUMNS = 8;

export interface TableOptions {
  /** Leave out the notes on failed ranks and instances: `lockstep run` has listed them just above. */
  readonly failuresListedAbove?: boolean;
}

export function reportTables(report: Report, options: TableOptions = {}): Table[] {
  return report.kind === 'run' ? [...runTables(report, options), ...extremeTables(report), ...faultTables(report.faults)] : [sweepTable(report)];
}

/** One table: a row per figure and metric statistic, a column per repeat, then mean, sd, 95% CI over repeats. */
export function runTables(report: RunReport, options: TableOptions = {}): Table[] {
  const { figures, runId } = report;
  const repeats = figures.repeats;
  const shownRepeats = repeats.length <= MAX_REPEAT_COLUMNS ? repeats.map((r) => r.repeat) : [];
  const overRepeats = repeats.length > 1;
  const columns = [
    'figure',
    ...shownRepeats.map((r) => (repeats.length === 1 ? 'value' : `r${r}`)),
    ...(overRepeats ? ['mean', 'sd', '95% CI'] : []),
  ];

  const rows: Cell[][] = [];
  const omitted: Array<{ readonly label: string; readonly summary: RepeatSummary }> = [];
  // Logs without records (an import): N is all there is of the framework's figures.
  for (const figure of figures.recorded ? REPEAT_FIGURES : REPEAT_FIGURES.filter((f) => f.key === 'n')) {
    if (overRepeats) omitted.push({ label: figure.label, summary: figures.overRepeats[figure.key] });
    const ref = (repeat: number | 'all', aggregate: CellRef['aggregate']): CellRef => ({
      run: runId,
      kind: 'figure',
      repeat,
      name: figure.key,
      stat: '',
      aggregate,
    });
    rows.push([
      { text: figure.label },
      ...shownRepeats.map((r) => {
        const value = repeats.find((x) => x.repeat === r)?.values[figure.key] ?? null;
        return { text: formatValue(value, figure.unit), refs: [ref(r, 'value')] };
      }),
      ...(overRepeats ? summaryCells(figures.overRepeats[figure.key], figure.unit, (a) => ref('all', a)) : []),
    ]);
  }
  const notes: string[] = [];
  for (const metric of report.metrics) {
    if (metric.nothingFound !== null) {
      rows.push([{ text: metric.name }, { text: 'found nothing' }, ...columns.slice(2).map(() => ({ text: '' }))]);
      notes.push(`${metric.name} found nothing: ${metric.nothingFound}`);
      continue;
    }
    for (const stat of [...METRIC_STATS, 'samples'] as const) {
      const unit = stat === 'samples' ? 'count' : metric.unit;
      if (overRepeats && stat !== 'samples') omitted.push({ label: `${metric.name} ${stat}`, summary: metric.overRepeats[stat] });
      const ref = (repeat: number | 'all', aggregate: CellRef['aggregate']): CellRef => ({
        run: runId,
        kind: 'metric',
        repeat,
        name: metric.name,
        stat,
        aggregate,
      });
      rows.push([
        { text: `${metric.name} ${stat}` },
        ...shownRepeats.map((r) => {
          const repeat = metric.repeats.find((x) => x.repeat === r);
          const value = stat === 'samples' ? (repeat?.samples ?? null) : (repeat?.stats?.[stat] ?? null);
          return { text: formatValue(value, unit), refs: [ref(r, 'value')] };
        }),
        ...(overRepeats && stat !== 'samples' ? summaryCells(metric.overRepeats[stat], unit, (a) => ref('all', a)) : []),
        ...(overRepeats && stat === 'samples' ? [{ text: '' }, { text: '' }, { text: '' }] : []),
      ]);
    }
  }

  notes.push(...intervalNotes(omitted));
  if (figures.recorded) {
    const missing = missingFigureNotes(figures);
    for (const note of [missing.memory, missing.network]) if (note) notes.push(note);
  }
  if (!figures.recorded) {
    notes.push('No timings or outcomes: these logs came without the records lockstep writes (an import); the metrics are read from the logs');
  }
  if (shownRepeats.length === 0) notes.push(`${repeats.length} repeats: per-repeat values are in --csv, --json and the HTML report`);
  if (!options.failuresListedAbove) {
    for (const { rank, repeats: failed } of figures.failuresByRank) {
      notes.push(`rank ${rank} failed in repeat${failed.length > 1 ? 's' : ''} ${failed.join(', ')}`);
    }
  }
  const setupFailed = new Set<string>();
  for (const repeat of repeats) {
    for (const f of options.failuresListedAbove ? [] : repeat.instanceFailures) {
      // A failed setup is recorded in every repeat; said once.
      if (f.stage === 'setup') {
        if (!setupFailed.has(f.instanceId)) notes.push(`instance ${f.instanceId}: ${f.error}`);
        setupFailed.add(f.instanceId);
      } else notes.push(`repeat ${repeat.repeat}: instance ${f.instanceId} failed at ${f.stage}: ${f.error}`);
    }
    if (repeat.quorum) notes.push(`repeat ${repeat.repeat}: barrier closed on a quorum`);
    if (repeat.state === 'aborted') {
      const stopped = repeat.perNode.filter((n) => n.outcome === 'aborted' || n.outcome === 'missing').length;
      notes.push(`repeat ${repeat.repeat}: aborted${figures.aborted ? ` (${figures.aborted.reason})` : ''}: ${stopped} node(s) stopped before they finished`);
    }
  }
  const notRun = repeats.filter((r) => r.state === 'not run').map((r) => r.repeat);
  if (notRun.length > 0) {
    const why = figures.aborted ? `the run was aborted first (${figures.aborted.reason})` : setupFailed.size > 0 ? 'setup failed' : 'the run ended first';
    notes.push(`repeat${notRun.length > 1 ? 's' : ''} ${notRun.join(', ')}: not run: ${why}`);
  }
  const title = `${report.name} · run ${runId} · N=${report.instances} · ${repeats.length} repeat${repeats.length === 1 ? '' : 's'}`;
  return [{ title, columns, rows, notes }];
}

function summaryCells(summary: RepeatSummary, unit: string | null, ref: (a: CellRef['aggregate']) => CellRef): Cell[] {
  return [
    { text: formatValue(summary.mean, unit), refs: [ref('mean')] },
    { text: formatValue(summary.sd, unit), refs: [ref('sd')] },
    summary.ci95
      ? { text: `${formatValue(summary.ci95[0], unit)} … ${formatValue(summary.ci95[1], unit)}`, refs: [ref('ci95_low'), ref('ci95_high')] }
      : { text: '–' },
  ];
}

/**
 * `analysis.worst` / `best`: per repeat the node with the largest (smallest) value and its other
 * metrics, then the one over repeats (the seed's `adjusted,multicast,computation` line).
 */
export function extremeTables(report: RunReport): Table[] {
  return report.extremes.map((extreme) => {
    const names = [extreme.metric, ...report.metrics.map((m) => m.name).filter((n) => n !== extreme.metric)];
    const unitOf = (name: string) => report.metrics.find((m) => m.name === name)?.unit ?? null;
    const rowOf = (label: string, node: ExtremeNode, repeat: number | 'all'): Cell[] => [
      { text: label },
      { text: String(node.rank) },
      ...names.map((name) => ({
        text: formatValue(node.metrics[name] ?? null, unitOf(name)),
        refs: [{ run: report.runId, kind: extreme.kind, repeat, rank: node.rank, name, stat: extreme.metric, aggregate: 'value' } as CellRef],
      })),
    ];
    const rows = extreme.repeats.map((node) => rowOf(`r${node.repeat}`, node, node.repeat));
    const notes: string[] = [];
    const overall = extreme.overall;
    if (overall) {
      rows.push(rowOf(`${extreme.kind} (r${overall.repeat})`, overall, 'all'));
      const shown = names.filter((name) => overall.metrics[name] !== null);
      notes.push(
        `${extreme.kind} over ${extreme.repeats.length} repeat${extreme.repeats.length === 1 ? '' : 's'}: repeat ${overall.repeat}, rank ${overall.rank}: ${shown.join(',')} = ${shown.map((name) => String(overall.metrics[name])).join(',')}`,
      );
    } else notes.push(`no node had a value of ${extreme.metric}`);
    const how = extreme.kind === 'worst' ? 'largest' : 'smallest';
    return { title: `${extreme.kind} ${extreme.metric} (the node with the ${how} value, per repeat)`, columns: ['repeat', 'rank', ...names], rows, notes };
  });
}

/**
 * Why some 95% intervals are not shown, once per reason, naming the rows: an interval is shown only
 * where it means something (see `summarizeRepeats`).
 */
export function intervalNotes(entries: ReadonlyArray<{ readonly label: string; readonly summary: RepeatSummary }>): string[] {
  const byReason = new Map<CiOmitted, Array<{ label: string; summary: RepeatSummary }>>();
  for (const entry of entries) {
    const reason = entry.summary.ci95Omitted;
    if (reason) byReason.set(reason, [...(byReason.get(reason) ?? []), entry]);
  }
  const notes: string[] = [];
  for (const [reason, list] of byReason) {
    const labels = list.map((e) => e.label).join(', ');
    if (reason === 'below-zero') {
      const n = Math.min(...list.map((e) => e.summary.n));
      notes.push(
        `95% CI not shown for ${labels}: with ${n} repeats the interval (mean ± ${studentT975(n - 1).toFixed(2)} · sd / √${n}) would reach below zero, which these cannot; more repeats narrow it`,
      );
    } else if (reason === 'no-spread') {
      notes.push(`95% CI not shown for ${labels}: the same in every repeat`);
    } else {
      notes.push(`95% CI not shown for ${labels}: only one repeat has a value`);
    }
  }
  return notes;
}

/** A row per point: its matrix values, then each headline figure and metric mean as mean [95% CI] over repeats. */
export function sweepTable(report: SweepReport): Table {
  const metricNames = [...new Set(report.points.flatMap((p) => p.run?.metrics.map((m) => m.name) ?? []))];
  const extremes = [...new Map(report.points.flatMap((p) => p.run?.extremes ?? []).map((e) => [`${e.kind} ${e.metric}`, e])).values()];
  const recorded = report.points.some((p) => p.run?.figures.recorded);
  const figures = recorded ? REPEAT_FIGURES.filter((f) => ['failed', 'startSkewMs', 'durationMedianMs', 'durationMaxMs'].includes(f.key)) : [];
  const columns = [
    ...report.keys,
    'run',
    'repeats',
    ...figures.map((f) => f.label),
    ...metricNames.map((m) => `${m} (mean)`),
    ...extremes.map((e) => `${e.metric} (${e.kind})`),
  ];
  const omitted: Array<{ readonly label: string; readonly summary: RepeatSummary }> = [];
  const rows: Cell[][] = report.points.map((point) => {
    const run = point.run;
    const keyCells = report.keys.map((key) => ({ text: String(point.values[key]) }));
    if (!run) return [...keyCells, { text: 'not run' }, ...columns.slice(keyCells.length + 1).map(() => ({ text: '' }))];
    const cell = (summary: RepeatSummary, unit: string | null, base: Omit<CellRef, 'aggregate'>): Cell => {
      omitted.push({ label: `${point.label}: ${base.name}`, summary });
      const refs: CellRef[] = [{ ...base, aggregate: 'mean' }];
      const text = formatValue(summary.mean, unit);
      if (!summary.ci95) return { text, refs };
      refs.push({ ...base, aggregate: 'ci95_low' }, { ...base, aggregate: 'ci95_high' });
      const detail = `[${formatValue(summary.ci95[0], unit)}, ${formatValue(summary.ci95[1], unit)}]`;
      return { text: `${text} ${detail}`, detail, refs };
    };
    return [
      ...keyCells,
      { text: run.runId },
      { text: String(run.figures.repeats.length) },
      ...figures.map((f) =>
        cell(run.figures.overRepeats[f.key], f.unit, { run: run.runId, kind: 'figure', repeat: 'all', name: f.key, stat: '' }),
      ),
      ...metricNames.map((name) => {
        const metric = run.metrics.find((m) => m.name === name);
        if (!metric) return { text: '–' };
        return cell(metric.overRepeats.mean, metric.unit, { run: run.runId, kind: 'metric', repeat: 'all', name, stat: 'mean' });
      }),
      ...extremes.map(({ kind, metric }) => {
        const overall = run.extremes.find((e) => e.kind === kind && e.metric === metric)?.overall;
        if (!overall) return { text: '–' };
        const unit = run.metrics.find((m) => m.name === metric)?.unit ?? null;
        const ref: CellRef = { run: run.runId, kind, repeat: 'all', rank: overall.rank, name: metric, stat: metric, aggregate: 'value' };
        return { text: formatValue(overall.value, unit), refs: [ref] };
      }),
    ];
  });
  return { title: `${report.name} · sweep ${report.sweepId} · ${report.points.length} points`, columns, rows, notes: intervalNotes(omitted.filter((o) => o.summary.ci95Omitted === 'below-zero')) };
}

/** Plain text: a title line, aligned columns (text left, numbers right), notes. */
export function renderTable(table: Table): string {
  const widths = table.columns.map((column, i) => Math.max(column.length, ...table.rows.map((row) => row[i]?.text.length ?? 0)));
  const numeric = table.columns.map((_, i) => i > 0 && table.rows.some((row) => row[i]?.refs));
  const line = (cells: readonly string[]) =>
    cells
      .map((text, i) => (numeric[i] ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [table.title, '', line(table.columns), line(widths.map((w) => '─'.repeat(w)))];
  for (const row of table.rows) out.push(line(row.map((c) => c.text)));
  if (table.notes.length > 0) out.push('', ...table.notes.flatMap((note) => wrap(note, NOTE_WIDTH)));
  return out.join('\n') + '\n';
}

const NOTE_WIDTH = 110;

/** Breaks a long note at spaces into lines of at most `width`, continued lines indented. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = `  ${word}`;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

export function renderTables(tables: readonly Table[]): string {
  return tables.map(renderTable).join('\n');
}
