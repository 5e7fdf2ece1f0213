import { faultCharts, shadeTimeline } from './fault-charts.ts';
import { formatBytes, formatMs, formatValue } from './format.ts';
import { missingFigureNotes, type RepeatFigures } from './figures.ts';
import type { MetricReport } from './metrics.ts';
import type { Report, RunReport, SweepPointReport, SweepReport } from './report.ts';
import type { MatrixValue } from '../spec/matrix.ts';
import { pointValue } from './sweep-axes.ts';
import type { RepeatSummary } from './stats.ts';

/** A chart of the HTML report: an ECharts option, rendered on the server to SVG. */
export interface ChartSpec {
  readonly id: string;
  readonly title: string;
  readonly width: number;
  readonly height: number;
  /** ECharts option (animation off: it is rendered once, to a string). */
  readonly option: Record<string, unknown>;
}

/** Timelines drawn for at most this many repeats (the first ones). */
export const MAX_TIMELINES = 10;

const WIDTH = 900;
const BASE = { animation: false, textStyle: { fontFamily: 'system-ui, sans-serif' } };
const GRID = { left: 80, right: 40, top: 60, bottom: 50, containLabel: true };
const LEGEND = { top: 10, itemGap: 28 };

export function reportCharts(report: Report): ChartSpec[] {
  return report.kind === 'run' ? runCharts(report) : sweepCharts(report);
}

export function runCharts(report: RunReport): ChartSpec[] {
  // Logs without records (an import) have nothing but metrics to chart.
  if (!report.figures.recorded) return report.metrics.map((metric) => metricChart(metric, report.runId));
  const charts = [durationChart(report)];
  for (const repeat of report.figures.repeats.filter((r) => r.perNode.some((n) => n.timeline)).slice(0, MAX_TIMELINES)) {
    const end = Math.max(0, ...repeat.perNode.map((n) => n.timeline?.endMs ?? 0));
    charts.push(shadeTimeline(timelineChart(repeat, report.runId), report.faults?.repeats.find((r) => r.repeat === repeat.repeat), end));
  }
  charts.push(bytesChart(report));
  for (const metric of report.metrics) charts.push(metricChart(metric, report.runId));
  charts.push(...faultCharts(report.faults, report.runId));
  return charts;
}

/** Duration per repeat: median and max over nodes. */
export function durationChart(report: RunReport): ChartSpec {
  const repeats = report.figures.repeats;
  return {
    id: `duration-${report.runId}`,
    title: 'Duration per repeat (over nodes)',
    width: WIDTH,
    height: 360,
    option: {
      ...BASE,
      legend: LEGEND,
      grid: GRID,
      xAxis: { type: 'category', name: 'repeat', nameLocation: 'middle', nameGap: 30, data: repeats.map((r) => String(r.repeat)) },
      yAxis: { type: 'value', name: 'duration', axisLabel: { formatter: (v: number) => formatMs(v) } },
      series: [
        { name: 'median', type: 'bar', data: repeats.map((r) => r.values.durationMedianMs) },
        { name: 'max', type: 'bar', data: repeats.map((r) => r.values.durationMaxMs) },
      ],
    },
  };
}

/** One repeat, one bar per node: ready → barrier passed (barrier wait) → started at T → ended (run). */
export function timelineChart(repeat: RepeatFigures, runId: string): ChartSpec {
  const nodes = repeat.perNode.filter((n) => n.timeline);
  const t = (pick: (x: NonNullable<(typeof nodes)[number]['timeline']>) => number) => nodes.map((n) => pick(n.timeline!));
  const stack = (name: string, data: number[], color: string | undefined) => ({
    name,
    type: 'bar',
    stack: 'node',
    barMaxWidth: 18,
    data,
    ...(color ? { itemStyle: { color } } : { itemStyle: { color: 'transparent' }, emphasis: { disabled: true } }),
  });
  return {
    id: `timeline-${runId}-${repeat.repeat}`,
    title: `Timeline of repeat ${repeat.repeat} (ms since the first node was ready)`,
    width: WIDTH,
    height: Math.min(2000, 120 + nodes.length * 22),
    option: {
      ...BASE,
      legend: { ...LEGEND, data: ['barrier wait', 'until start', 'run'] },
      grid: GRID,
      xAxis: { type: 'value', name: 'time since the first ready record', nameLocation: 'middle', nameGap: 30, axisLabel: { formatter: (v: number) => formatMs(v) } },
      yAxis: { type: 'category', name: 'rank', nameLocation: 'start', inverse: true, data: nodes.map((n) => String(n.rank)) },
      series: [
        stack('ready', t((x) => x.readyMs), undefined),
        stack('barrier wait', t((x) => x.barrierMs - x.readyMs), '#f2a541'),
        stack('until start', t((x) => x.startMs - x.barrierMs), '#c9c9c9'),
        stack('run', t((x) => x.endMs - x.startMs), '#3a7ca5'),
      ],
    },
  };
}

/** Bytes sent and received per rank during the command, mean over repeats. */
export function bytesChart(report: RunReport): ChartSpec {
  const byRank = new Map<number, { tx: number[]; rx: number[] }>();
  for (const repeat of report.figures.repeats) {
    for (const node of repeat.perNode) {
      const entry = byRank.get(node.rank) ?? { tx: [], rx: [] };
      if (node.txBytes !== null) entry.tx.push(node.txBytes);
      if (node.rxBytes !== null) entry.rx.push(node.rxBytes);
      byRank.set(node.rank, entry);
    }
  }
  const ranks = [...byRank.keys()].sort((a, b) => a - b);
  const avg = (list: number[]) => (list.length ? list.reduce((a, b) => a + b, 0) / list.length : null);
  const series = [
    { name: 'sent', type: 'bar', data: ranks.map((r) => avg(byRank.get(r)!.tx)) },
    { name: 'received', type: 'bar', data: ranks.map((r) => avg(byRank.get(r)!.rx)) },
  ];
  return {
    id: `bytes-${report.runId}`,
    title: 'Bytes per node (mean over repeats)',
    width: WIDTH,
    height: 360,
    option: {
      ...BASE,
      legend: LEGEND,
      grid: GRID,
      xAxis: { type: 'category', name: 'rank', nameLocation: 'middle', nameGap: 30, data: ranks.map(String) },
      yAxis: { type: 'value', name: 'bytes', ...bytesAxis(Math.max(0, ...series.flatMap((x) => x.data).filter((v): v is number => v !== null))), axisLabel: { formatter: (v: number) => formatBytes(v) } },
      series,
      ...(series.every((x) => x.data.every((v) => v === null)) ? noData(missingFigureNotes(report.figures).network ?? 'No node recorded network counters') : {}),
    },
  };
}

/** A note drawn in the middle of an empty chart. */
function noData(text: string): Record<string, unknown> {
  return { graphic: { type: 'text', left: 'center', top: 'middle', style: { text, fontSize: 14, fill: '#5c6670' } } };
}

/** A user metric per repeat: min, median, mean, p95, max over nodes. */
export function metricChart(metric: MetricReport, runId: string): ChartSpec {
  const stats = ['min', 'median', 'mean', 'p95', 'max'] as const;
  return {
    id: `metric-${runId}-${metric.name}`,
    title: `${metric.name}${metric.unit ? ` (${metric.unit})` : ''} per repeat`,
    width: WIDTH,
    height: 360,
    option: {
      ...BASE,
      legend: LEGEND,
      grid: GRID,
      xAxis: { type: 'category', name: 'repeat', nameLocation: 'middle', nameGap: 30, data: metric.repeats.map((r) => String(r.repeat)) },
      yAxis: { type: 'value', name: metric.unit ?? '', scale: true, axisLabel: { formatter: (v: number) => formatValue(v, null) } },
      series: stats.map((stat) => ({
        name: stat,
        type: 'line',
        symbolSize: 7,
        data: metric.repeats.map((r) => r.stats?.[stat] ?? null),
      })),
    },
  };
}

/** What a sweep chart shows of one run: a per-repeat summary over repeats, and the extreme over repeats. */
interface Measure {
  readonly id: string;
  readonly title: string;
  /** What the two lines are, under the title. */
  readonly subtitle: string;
  readonly unit: string | null;
  readonly mean: (run: RunReport) => RepeatSummary | undefined;
  readonly extreme: (run: RunReport) => number | null;
  readonly extremeName: string;
}

/** ECharts' palette: a series' mean and extreme lines share its colour. */
const PALETTE = ['#5470c6', '#91cc75', '#fac858', '#ee6666', '#73c0de', '#3ba272', '#fc8452', '#9a60b4', '#ea7ccc'];

/**
 * A sweep's charts: each measure against one param (`axes.x`, e.g. N), one line per value of the
 * others (`axes.lines`, e.g. protocol): the mean over repeats with its 95% CI as error bars, and
 * the extreme over repeats dashed. For a metric named in `analysis.worst` (`best`) a repeat counts
 * by its worst (best) node, as the seed's figures do; otherwise by the mean over its nodes.
 */
export function sweepCharts(report: SweepReport): ChartSpec[] {
  const axes = report.axes;
  if (!axes) return [];
  const runs = report.points.flatMap((p) => (p.run ? [p.run] : []));
  const label = (key: string) => key.replace(/^params\./, '');
  const xValues = sortedValues(report.points.map((p) => pointValue(p, axes.x)));
  const lineOf = (point: SweepPointReport) => axes.lines.map((k) => `${label(k)}=${String(pointValue(point, k))}`).join(' ');
  const lineKeys = [...new Set(report.points.filter((p) => p.run).map(lineOf))].sort();

  const measures: Measure[] = [];
  if (runs.some((run) => run.figures.recorded)) {
    for (const [id, title] of [
      ['durationMedianMs', 'duration (median over nodes)'],
      ['startSkewMs', 'start skew'],
    ] as const) {
      measures.push({
        id,
        title,
        subtitle: 'mean over repeats (95% CI); dashed: the largest repeat',
        unit: 'ms',
        mean: (run) => run.figures.overRepeats[id],
        extreme: (run) => maxOrNull(run.figures.repeats.map((r) => r.values[id])),
        extremeName: 'largest',
      });
    }
  }
  const analysis = runs.find((run) => run.analysis)?.analysis;
  const metricNames = [...new Set(runs.flatMap((run) => run.metrics.map((m) => m.name)))];
  const ordered = [...(analysis?.worst ?? []), ...(analysis?.best ?? []), ...metricNames].filter((n, i, all) => all.indexOf(n) === i && metricNames.includes(n));
  for (const name of ordered) {
    const metricOf = (run: RunReport) => run.metrics.find((m) => m.name === name);
    const unit = runs.map(metricOf).find((m) => m)?.unit ?? null;
    const kind = analysis?.worst?.includes(name) ? 'worst' : analysis?.best?.includes(name) ? 'best' : undefined;
    const stat = kind === 'best' ? 'min' : kind === 'worst' ? 'max' : 'mean';
    measures.push({
      id: `metric-${name}`,
      title: kind ? `${name} of the ${kind} node` : `${name} (mean over nodes)`,
      subtitle: kind
        ? `per repeat the ${kind} node: mean over repeats (95% CI); dashed: the ${kind} repeat`
        : 'mean over nodes, mean over repeats (95% CI); dashed: the largest value of any node',
      unit,
      mean: (run) => metricOf(run)?.overRepeats[stat],
      extreme: (run) => {
        const values = (metricOf(run)?.repeats ?? []).map((r) => r.stats?.[kind === 'best' ? 'min' : 'max'] ?? null);
        return kind === 'best' ? minOrNull(values) : maxOrNull(values);
      },
      extremeName: kind ?? 'largest',
    });
  }

  return measures.map((measure) => {
    const series = lineKeys.flatMap((lineKey, s) => {
      const runsAlong = xValues.map((x) => report.points.find((p) => p.run && pointValue(p, axes.x) === x && lineOf(p) === lineKey)?.run ?? undefined);
      const summaries = runsAlong.map((run) => (run ? measure.mean(run) : undefined));
      const name = lineKey || measure.title;
      const color = PALETTE[s % PALETTE.length]!;
      return [
        { name: `${name} · mean`, type: 'line', symbolSize: 8, itemStyle: { color }, lineStyle: { color }, data: summaries.map((m) => m?.mean ?? null) },
        {
          name: `${name} · mean`,
          type: 'custom',
          renderItem: errorBar,
          itemStyle: { color, borderWidth: 1.5 },
          encode: { x: 0, y: [1, 2] },
          data: summaries.flatMap((m, i) => (m?.ci95 ? [[i, m.ci95[0], m.ci95[1]]] : [])),
          z: 10 + s,
        },
        {
          name: `${name} · ${measure.extremeName}`,
          type: 'line',
          symbol: 'triangle',
          symbolSize: 10,
          z: 20 + s,
          itemStyle: { color },
          lineStyle: { color, type: 'dashed' },
          data: runsAlong.map((run) => (run ? measure.extreme(run) : null)),
        },
      ];
    });
    const axisFormat = (v: number) => formatValue(v, measure.unit === 'ms' ? 'ms' : measure.unit === 'bytes' ? 'bytes' : null);
    return {
      id: `sweep-${report.sweepId}-${measure.id}`,
      title: `${measure.title} against ${label(axes.x)}`,
      width: WIDTH,
      height: 420,
      option: {
        ...BASE,
        title: { text: measure.subtitle, left: 'center', bottom: 0, textStyle: { fontSize: 12, fontWeight: 'normal', color: '#5c6670' } },
        legend: { ...LEGEND, data: series.filter((x) => x.type === 'line').map((x) => x.name) },
        grid: { ...GRID, top: 40 + 22 * Math.ceil(lineKeys.length * 2 / 3), bottom: 70 },
        xAxis: { type: 'category', name: label(axes.x), nameLocation: 'middle', nameGap: 30, data: xValues.map(String) },
        // Durations carry their unit in each label.
        yAxis: { type: 'value', name: measure.unit === 'ms' ? '' : (measure.unit ?? ''), scale: true, axisLabel: { formatter: axisFormat } },
        series,
      },
    };
  });
}

function sortedValues(values: ReadonlyArray<MatrixValue | undefined>): MatrixValue[] {
  const present = [...new Set(values.filter((v): v is MatrixValue => v !== undefined))];
  return present.sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b))));
}

function maxOrNull(values: ReadonlyArray<number | null>): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length > 0 ? Math.max(...present) : null;
}

function minOrNull(values: ReadonlyArray<number | null>): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length > 0 ? Math.min(...present) : null;
}

/** Ticks at a round number of B, KiB, MiB or GiB (at most about six up to `max`), ending on a tick. */
export function bytesAxis(max: number): { interval?: number; max?: number } {
  if (!(max > 0)) return {};
  let unit = 1;
  while (max / unit >= 1024) unit *= 1024;
  const step = ([1, 2, 5, 10, 20, 50, 100, 200, 500].find((s) => max / (s * unit) <= 6) ?? 1024) * unit;
  return { interval: step, max: Math.ceil(max / step) * step };
}

/** ECharts custom series item: a vertical bar from value(1) to value(2) at category value(0), with caps. */
function errorBar(params: unknown, api: {
  value: (dim: number) => number;
  coord: (point: number[]) => number[];
  size: (value: number[]) => number[];
  visual: (name: string) => string;
}): unknown {
  const x = api.value(0);
  const low = api.coord([x, api.value(1)]);
  const high = api.coord([x, api.value(2)]);
  const half = Math.min(8, api.size([1, 0])[0]! * 0.1);
  const style = { stroke: api.visual('color'), lineWidth: 1.5, fill: 'none' };
  return {
    type: 'group',
    children: [
      { type: 'line', shape: { x1: low[0], y1: low[1], x2: high[0], y2: high[1] }, style },
      { type: 'line', shape: { x1: low[0]! - half, y1: low[1], x2: low[0]! + half, y2: low[1] }, style },
      { type: 'line', shape: { x1: high[0]! - half, y1: high[1], x2: high[0]! + half, y2: high[1] }, style },
    ],
  };
}

/** Renders a chart to an SVG string with ECharts' server-side renderer (loaded only when a report is made). */
export async function renderChartSvg(chart: ChartSpec): Promise<string> {
  const echarts = await import('echarts');
  const instance = echarts.init(null, null, { renderer: 'svg', ssr: true, width: chart.width, height: chart.height });
  try {
    instance.setOption(chart.option);
    return instance.renderToSVGString();
  } finally {
    instance.dispose();
  }
}
