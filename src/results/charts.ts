import { formatBytes, formatMs, formatValue } from './format.ts';
import type { RepeatFigures } from './figures.ts';
import type { MetricReport } from './metrics.ts';
import type { Report, RunReport, SweepReport } from './report.ts';
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
  const charts = [durationChart(report)];
  for (const repeat of report.figures.repeats.filter((r) => r.perNode.some((n) => n.timeline)).slice(0, MAX_TIMELINES)) {
    charts.push(timelineChart(repeat, report.runId));
  }
  charts.push(bytesChart(report));
  for (const metric of report.metrics) charts.push(metricChart(metric, report.runId));
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
      ...(series.every((x) => x.data.every((v) => v === null)) ? noData('No node recorded network counters (the agent reads them on Linux)') : {}),
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

interface Measure {
  readonly id: string;
  readonly title: string;
  readonly unit: string | null;
  readonly summary: (run: RunReport) => RepeatSummary | undefined;
}

/** Each measure against the swept parameter: mean over repeats with its 95% CI as error bars. */
export function sweepCharts(report: SweepReport): ChartSpec[] {
  const swept = report.keys.find((key) => report.matrix[key]!.length > 1) ?? report.keys[0];
  if (swept === undefined) return [];
  const others = report.keys.filter((key) => key !== swept);
  const xValues = report.matrix[swept]!.map(String);
  const seriesKeys = [...new Set(report.points.map((p) => others.map((k) => `${k.replace(/^params\./, '')}=${String(p.values[k])}`).join(' ')))];

  const measures: Measure[] = [
    { id: 'durationMedianMs', title: 'duration (median over nodes)', unit: 'ms', summary: (run) => run.figures.overRepeats.durationMedianMs },
    { id: 'startSkewMs', title: 'start skew', unit: 'ms', summary: (run) => run.figures.overRepeats.startSkewMs },
  ];
  const metricNames = [...new Set(report.points.flatMap((p) => p.run?.metrics.map((m) => m.name) ?? []))];
  for (const name of metricNames) {
    const unit = report.points.flatMap((p) => p.run?.metrics ?? []).find((m) => m.name === name)?.unit ?? null;
    measures.push({
      id: `metric-${name}`,
      title: `${name} (mean over nodes)`,
      unit,
      summary: (run) => run.metrics.find((m) => m.name === name)?.overRepeats.mean,
    });
  }

  return measures.map((measure) => {
    const series = seriesKeys.flatMap((seriesKey, s) => {
      const summaries = xValues.map((x) => {
        const point = report.points.find(
          (p) => String(p.values[swept]) === x && others.map((k) => `${k.replace(/^params\./, '')}=${String(p.values[k])}`).join(' ') === seriesKey,
        );
        return point?.run ? measure.summary(point.run) : undefined;
      });
      const name = seriesKey || measure.title;
      return [
        { name, type: 'line', symbolSize: 8, data: summaries.map((m) => m?.mean ?? null) },
        {
          name,
          type: 'custom',
          renderItem: errorBar,
          itemStyle: { borderWidth: 1.5 },
          encode: { x: 0, y: [1, 2] },
          data: summaries.flatMap((m, i) => (m?.ci95 ? [[i, m.ci95[0], m.ci95[1]]] : [])),
          z: 10 + s,
        },
      ];
    });
    return {
      id: `sweep-${report.sweepId}-${measure.id}`,
      title: `${measure.title} against ${swept}`,
      width: WIDTH,
      height: 380,
      option: {
        ...BASE,
        legend: { ...LEGEND, data: seriesKeys.map((k) => k || measure.title) },
        grid: GRID,
        xAxis: { type: 'category', name: swept, nameLocation: 'middle', nameGap: 30, data: xValues },
        yAxis: {
          type: 'value',
          name: measure.unit ?? '',
          scale: true,
          axisLabel: { formatter: (v: number) => formatValue(v, measure.unit === 'ms' ? 'ms' : null) },
        },
        series,
      },
    };
  });
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
