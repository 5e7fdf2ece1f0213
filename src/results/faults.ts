import { existsSync } from 'node:fs';
import type { FaultAction, FaultEvent, FaultTimeline } from '../core/faults.ts';
import { DEFAULT_METRIC_FILE, type MetricSpec } from '../spec/metrics.ts';
import { formatDuration } from '../util/duration.ts';
import { formatValue } from './format.ts';
import { scanLines, type LineMatcher } from './line-scan.ts';
import type { LocalRepeat, LocalRun } from './local-run.ts';
import { nodeFilePath } from './metrics.ts';
import { requiredLiteral } from './regex-literal.ts';
import { distribution, type Distribution } from './stats.ts';
import type { Table } from './tables.ts';

/**
 * Faults in the results: the run's fault timeline as it happened (per repeat, each window as
 * planned and as the nodes applied and healed it), and the metrics whose samples carry a time
 * split into samples taken during a fault window and outside one.
 */

export interface FaultReport {
  /** The seeds of the random choices (drawn ones included): what repeats the timeline. */
  readonly seeds: FaultTimeline['seeds'];
  readonly repeats: readonly RepeatFaults[];
  /** Metrics with timed samples, split by the fault windows. */
  readonly split: readonly SplitMetric[];
}

export interface RepeatFaults {
  readonly repeat: number;
  /** The repeat's start time T (epoch ms), when known. */
  readonly startAt: number | null;
  /** The earliest ready time of its nodes (epoch ms): where the report's timeline begins. */
  readonly firstReadyAt: number | null;
  readonly windows: readonly FaultWindow[];
}

export interface FaultWindow {
  readonly id: string;
  readonly action: FaultAction;
  /** The ranks it acted on, and for a partition who was cut from whom, in words. */
  readonly targets: readonly number[];
  readonly what: string;
  /** Planned: from and to, ms after T (`to` null: a kill, which lasts to the end). */
  readonly fromMs: number;
  readonly toMs: number | null;
  /** As the nodes did it: first applied and last healed, ms after T; null when none did. */
  readonly appliedFromMs: number | null;
  readonly healedToMs: number | null;
  /** Nodes that applied it, healed it, skipped it (and why). */
  readonly applied: number;
  readonly healed: number;
  readonly skipped: readonly string[];
  readonly errors: readonly string[];
}

export interface SplitMetric {
  readonly name: string;
  readonly unit: string | null;
  readonly during: Distribution | null;
  readonly outside: Distribution | null;
  /** Samples without a readable time (left out of both). */
  readonly untimed: number;
  /** For the report's charts: per repeat (the first few), samples as [seconds after T, value], thinned to at most a few thousand. */
  readonly overTime: ReadonlyArray<{ readonly repeat: number; readonly points: ReadonlyArray<readonly [number, number]> }>;
}

/** Repeats whose samples are charted over time, and points per chart. */
export const CHARTED_REPEATS = 3;
const MAX_POINTS = 3000;

/** The fault report of a downloaded run, or undefined when its spec had no faults. */
export async function faultReportOf(run: LocalRun, metrics: readonly MetricSpec[]): Promise<FaultReport | undefined> {
  const timeline = run.manifest.faults;
  if (!timeline) return undefined;
  const repeats = run.repeats.map((repeat) => repeatFaults(repeat, timeline));
  const split: SplitMetric[] = [];
  for (const metric of metrics.filter(carriesTime)) {
    const found = await splitMetric(run, metric, repeats);
    // JSON lines may or may not have a time: a metric none of whose samples has one is not split.
    if (found.during || found.outside) split.push(found);
  }
  return { seeds: timeline.seeds, repeats, split };
}

function repeatFaults(repeat: LocalRepeat, timeline: FaultTimeline): RepeatFaults {
  const startAt = repeat.start?.startAt ?? null;
  const windows = timeline.events
    .filter((event) => event.repeats.includes(repeat.repeat))
    .map((event): FaultWindow => {
      const records = repeat.nodes.flatMap((node) => (node.result?.faults ?? []).filter((f) => f.id === event.id).map((record) => ({ rank: node.rank, record })));
      const since = (at: number | undefined) => (at === undefined || startAt === null ? undefined : at - startAt);
      const applied = records.map((r) => since(r.record.appliedAt)).filter((x): x is number => x !== undefined);
      const healed = records.map((r) => since(r.record.healedAt)).filter((x): x is number => x !== undefined);
      return {
        id: event.id,
        action: event.action,
        targets: event.targets,
        what: describe(event),
        fromMs: event.atMs,
        toMs: event.durationMs === undefined ? null : event.atMs + event.durationMs,
        appliedFromMs: applied.length > 0 ? Math.min(...applied) : null,
        healedToMs: healed.length > 0 ? Math.max(...healed) : null,
        applied: applied.length,
        healed: healed.length,
        skipped: records.filter((r) => r.record.skipped).map((r) => `rank ${r.rank}: ${r.record.skipped}`),
        errors: records.flatMap((r) => [r.record.error, r.record.healError].filter(Boolean).map((e) => `rank ${r.rank}: ${e}`)),
      };
    });
  const ready = repeat.nodes.map((n) => n.result?.readyAt).filter((x): x is number => typeof x === 'number');
  return { repeat: repeat.repeat, startAt, firstReadyAt: ready.length > 0 ? Math.min(...ready) : null, windows };
}

/** A fault in words: whom it touches and how. */
export function describe(event: FaultEvent): string {
  const ranks = (list: readonly number[]) => `${list.length === 1 ? 'rank' : 'ranks'} ${compactRanks(list)}`;
  switch (event.action) {
    case 'partition': {
      const layout = event.partition!;
      const shape = layout.shape ? `${layout.shape}: ` : '';
      if (layout.kind === 'ring') return `${shape}ring ${layout.order.join('-')}, each reaches ${layout.reach} on either side`;
      return `${shape}${layout.sides.map(compactRanks).join(' | ')}`;
    }
    case 'network': {
      const i = event.impairment ?? {};
      const parts = [
        i.delayMs !== undefined ? `delay ${formatDuration(i.delayMs)}` : '',
        i.jitterMs !== undefined ? `jitter ${formatDuration(i.jitterMs)}` : '',
        i.lossPercent !== undefined ? `loss ${i.lossPercent}%` : '',
        i.rateBitsPerSecond !== undefined ? `rate ${formatRate(i.rateBitsPerSecond)}` : '',
      ].filter(Boolean);
      return `${ranks(event.targets)}: ${parts.join(', ')}`;
    }
    case 'restart':
      return `${ranks(event.targets)}, down ${formatDuration(event.durationMs ?? 0)}`;
    default:
      return ranks(event.targets);
  }
}

/** `0-3,5,7-8` */
export function compactRanks(list: readonly number[]): string {
  const sorted = [...list].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : `${sorted[i]}`);
    i = j;
  }
  return parts.join(',');
}

function formatRate(bits: number): string {
  for (const [unit, size] of [['gbit', 1e9], ['mbit', 1e6], ['kbit', 1e3]] as const) if (bits >= size) return `${+(bits / size).toFixed(3)}${unit}`;
  return `${bits}bit`;
}

/**
 * The windows of a repeat as epoch-ms intervals, as the nodes applied and healed them (as planned
 * where no node recorded it). A kill lasts to the end of the repeat; a restart until the command
 * started again.
 */
export function faultIntervals(repeat: RepeatFaults): Array<{ from: number; to: number; window: FaultWindow }> {
  if (repeat.startAt === null) return [];
  const t = repeat.startAt;
  // A window no node applied (all skipped it) was no fault; one no node recorded counts as planned.
  return repeat.windows
    .filter((w) => w.applied > 0 || (w.skipped.length === 0 && w.errors.length === 0))
    .map((w) => ({
      window: w,
      from: t + (w.appliedFromMs ?? w.fromMs),
      to: w.toMs === null ? Number.POSITIVE_INFINITY : t + (w.healedToMs ?? w.toMs),
    }));
}

// ---- Metrics split by the windows -------------------------------------------------------------

/** Whether a metric's samples can carry a time: JSON lines (a `time` field), or a regex with `(?<time>…)`. */
export function carriesTime(metric: MetricSpec): boolean {
  return metric.json === true || (metric.regex !== undefined && metric.regex.includes('(?<time>'));
}

/**
 * A sample's time as epoch ms: a number (ms; below 1e11, seconds) or a numeric string the same
 * way, or an ISO 8601 date-time.
 */
export function sampleTime(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? (raw < 1e11 ? raw * 1000 : raw) : undefined;
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  const number = Number(raw);
  if (Number.isFinite(number)) return sampleTime(number);
  const parsed = Date.parse(raw);
  return Number.isNaN(parsed) ? undefined : parsed;
}

/** One timed sample of a metric. */
export interface TimedSample {
  readonly time: number | undefined;
  readonly value: number;
}

/** The samples of `metric` in one file, with their times. */
export async function timedSamples(path: string, metric: MetricSpec): Promise<TimedSample[]> {
  const found: TimedSample[] = [];
  let matcher: LineMatcher;
  if (metric.json) {
    const name = metric.name;
    matcher = {
      needle: Buffer.from(JSON.stringify(name)),
      onLine(line) {
        const start = line.indexOf('{');
        if (start < 0) return;
        let record: { metric?: unknown; value?: unknown; time?: unknown };
        try {
          record = JSON.parse(line.slice(start)) as typeof record;
        } catch {
          return;
        }
        if (record?.metric !== name) return;
        const value = typeof record.value === 'number' ? record.value : typeof record.value === 'string' && record.value.trim() !== '' ? Number(record.value) : Number.NaN;
        if (Number.isFinite(value)) found.push({ time: sampleTime(record.time), value });
      },
    };
  } else {
    const regex = new RegExp(metric.regex!);
    const literal = requiredLiteral(metric.regex!);
    matcher = {
      ...(literal ? { needle: Buffer.from(literal) } : {}),
      onLine(line) {
        const groups = regex.exec(line)?.groups;
        if (groups?.value === undefined || groups.value.trim() === '') return;
        const value = Number(groups.value);
        if (Number.isFinite(value)) found.push({ time: sampleTime(groups.time), value });
      },
    };
  }
  await scanLines(path, [matcher]);
  return found;
}

async function splitMetric(run: LocalRun, metric: MetricSpec, repeats: readonly RepeatFaults[]): Promise<SplitMetric> {
  const during: number[] = [];
  const outside: number[] = [];
  const overTime: Array<{ repeat: number; points: Array<[number, number]> }> = [];
  let untimed = 0;
  for (const repeat of run.repeats) {
    const faults = repeats.find((r) => r.repeat === repeat.repeat)!;
    const intervals = faultIntervals(faults);
    const points: Array<[number, number]> = [];
    for (const node of repeat.nodes) {
      const path = nodeFilePath(node.dir, metric.file ?? DEFAULT_METRIC_FILE);
      if (!existsSync(path)) continue;
      for (const sample of await timedSamples(path, metric)) {
        if (sample.time === undefined) {
          untimed++;
          continue;
        }
        (intervals.some((i) => sample.time! >= i.from && sample.time! <= i.to) ? during : outside).push(sample.value);
        if (faults.startAt !== null) points.push([(sample.time - faults.startAt) / 1000, sample.value]);
      }
    }
    if (points.length > 0 && overTime.length < CHARTED_REPEATS) {
      const step = Math.ceil(points.length / MAX_POINTS);
      overTime.push({ repeat: repeat.repeat, points: points.sort((a, b) => a[0] - b[0]).filter((_, i) => i % step === 0) });
    }
  }
  return { name: metric.name, unit: metric.unit ?? null, during: distribution(during) ?? null, outside: distribution(outside) ?? null, untimed, overTime };
}

// ---- Tables -------------------------------------------------------------------------------------

/** The planned timeline, before a run (`lockstep run --dry-run`): each window, its targets and repeats. */
export function plannedFaultsTable(timeline: FaultTimeline): Table {
  const drawn = timeline.seeds.filter((s) => s.drawn);
  return {
    title: 'Faults planned (times after the start T of each repeat)',
    columns: ['fault', 'action', 'on', 'window', 'repeats'],
    rows: timeline.events.map((event) =>
      [
        `faults.${event.id.replace('#', ' #')}`,
        event.action,
        describe(event),
        `T+${formatDuration(event.atMs)} → ${event.durationMs === undefined ? 'end' : `T+${formatDuration(event.atMs + event.durationMs)}`}`,
        compactRanks(event.repeats),
      ].map((text) => ({ text })),
    ),
    notes: drawn.map((s) => `faults.${s.entry}: no seed in the spec: the run draws its own (this plan shows one draw); set \`targets.random.seed\` to fix the choice`),
  };
}

const offset = (ms: number | null) => (ms === null ? '…' : `T+${formatDuration(ms)}`);

/** The timeline table (every repeat) and the during/outside table of the split metrics. */
export function faultTables(report: FaultReport | undefined): Table[] {
  if (!report) return [];
  const tables: Table[] = [];
  const drawn = report.seeds.filter((s) => s.drawn);
  tables.push({
    title: 'Faults (times after the start T of each repeat)',
    columns: ['repeat', 'fault', 'action', 'on', 'planned', 'applied → healed', 'nodes'],
    rows: report.repeats.flatMap((repeat) =>
      repeat.windows.map((w) =>
        [
          String(repeat.repeat),
          `faults.${w.id.replace('#', ' #')}`,
          w.action,
          w.what,
          `${offset(w.fromMs)} → ${w.toMs === null ? 'end' : offset(w.toMs)}`,
          w.applied === 0 ? 'not applied' : `${offset(w.appliedFromMs)} → ${w.action === 'kill' ? 'end' : offset(w.healedToMs)}`,
          `${w.applied} applied${w.action === 'kill' ? '' : `, ${w.healed} healed`}${w.skipped.length ? `, ${w.skipped.length} skipped` : ''}${w.errors.length ? `, ${w.errors.length} failed` : ''}`,
        ].map((text) => ({ text })),
      ),
    ),
    notes: [
      ...drawn.map((s) => `faults.${s.entry}: seed ${s.seed} was drawn for this run; repeat its choices with \`--set faults.${s.entry}.targets.random.seed=${s.seed}\``),
      ...report.repeats.flatMap((r) => r.windows.flatMap((w) => [...w.errors, ...w.skipped].map((e) => `repeat ${r.repeat}, faults.${w.id.replace('#', ' #')}: ${e}`))).slice(0, 20),
    ],
  });
  if (report.split.length > 0) {
    const cell = (d: Distribution | null, unit: string | null) => ({ text: d ? `${formatValue(d.median, unit)} (n=${d.count}, p95 ${formatValue(d.p95, unit)})` : '–' });
    tables.push({
      title: 'Metrics during and outside fault windows (median, samples, p95)',
      columns: ['metric', 'during faults', 'outside faults'],
      rows: report.split.map((m) => [{ text: m.name }, cell(m.during, m.unit), cell(m.outside, m.unit)]),
      notes: report.split.filter((m) => m.untimed > 0).map((m) => `${m.name}: ${m.untimed} sample(s) without a readable time were left out (a \`time\` field in epoch ms or s, or ISO 8601)`),
    });
  }
  return tables;
}
