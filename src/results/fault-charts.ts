import type { ChartSpec } from './charts.ts';
import { faultIntervals, type FaultReport, type RepeatFaults, type SplitMetric } from './faults.ts';
import { formatValue } from './format.ts';

/**
 * Fault windows in the report's charts: shaded bands on every chart over time (each repeat's
 * timeline, and each timed metric over time), labelled with the fault.
 */

const BAND = 'rgba(214, 69, 65, 0.22)';
const LABEL = '#a1302b';

/** Marked areas for the windows of a repeat, in the chart's x units (`toX` of an epoch-ms time). */
export function faultBands(repeat: RepeatFaults, toX: (epochMs: number) => number, xMax?: number): Record<string, unknown> {
  const bands = faultIntervals(repeat).map(({ from, to, window }) => [
    { name: `${window.action} ${window.id.replace('#', ' #')}`, xAxis: toX(from) },
    { xAxis: Number.isFinite(to) ? toX(to) : (xMax ?? toX(from)) },
  ]);
  return {
    name: 'fault windows',
    type: 'line',
    data: [],
    silent: true,
    // Over the bars and points (they show through): a band behind a timeline's bars would be hidden.
    markArea: { silent: true, z: 10, itemStyle: { color: BAND }, label: { show: true, position: 'top', color: LABEL, fontSize: 10 }, data: bands },
  };
}

/**
 * A repeat's timeline chart (x: ms since its first ready node, to `xMax`) with the repeat's fault
 * windows shaded; the chart as it was when the repeat had none.
 */
export function shadeTimeline(chart: ChartSpec, repeat: RepeatFaults | undefined, xMax: number): ChartSpec {
  if (!repeat || repeat.firstReadyAt === null || faultIntervals(repeat).length === 0) return chart;
  const base = repeat.firstReadyAt;
  const series = (chart.option as { series: unknown[] }).series;
  return { ...chart, title: `${chart.title}; fault windows shaded`, option: { ...chart.option, series: [...series, faultBands(repeat, (at) => at - base, xMax)] } };
}

/** A timed metric over time in one repeat: every sample (thinned), fault windows shaded. */
export function metricOverTimeChart(metric: SplitMetric, series: SplitMetric['overTime'][number], repeat: RepeatFaults, runId: string): ChartSpec {
  const t = repeat.startAt ?? 0;
  const xMax = Math.max(0, ...series.points.map((p) => p[0]));
  return {
    id: `metric-time-${runId}-${metric.name}-${series.repeat}`,
    title: `${metric.name}${metric.unit ? ` (${metric.unit})` : ''} over time, repeat ${series.repeat}, fault windows shaded`,
    width: 900,
    height: 340,
    option: {
      animation: false,
      textStyle: { fontFamily: 'system-ui, sans-serif' },
      grid: { left: 80, right: 40, top: 50, bottom: 50, containLabel: true },
      xAxis: { type: 'value', name: 'seconds after T', nameLocation: 'middle', nameGap: 30, min: Math.min(0, ...series.points.map((p) => p[0])) },
      yAxis: { type: 'value', name: metric.unit ?? '', axisLabel: { formatter: (v: number) => formatValue(v, null) } },
      series: [
        { name: metric.name, type: 'scatter', symbolSize: 3, itemStyle: { color: '#3a7ca5' }, data: series.points.map((p) => [...p]) },
        faultBands(repeat, (at) => (at - t) / 1000, xMax),
      ],
    },
  };
}

/** Every metric-over-time chart of a run's fault report. */
export function faultCharts(report: FaultReport | undefined, runId: string): ChartSpec[] {
  if (!report) return [];
  return report.split.flatMap((metric) =>
    metric.overTime.flatMap((series) => {
      const repeat = report.repeats.find((r) => r.repeat === series.repeat);
      return repeat ? [metricOverTimeChart(metric, series, repeat, runId)] : [];
    }),
  );
}
