import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matrixPoints } from '../../src/results/matrix.ts';
import type { SweepReport } from '../../src/results/report.ts';
import { collectResults, formatReport } from '../../src/results/results.ts';
import { readSweepRecord, recordSweepRun, sweepLayout, writeSweepRecord } from '../../src/results/sweep-layout.ts';
import { sweepCharts } from '../../src/results/charts.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import type { Store } from '../../src/store/store.ts';
import { parseCsv, reference, tempDir, writeFakeRun, type FakeRun } from './fixture.ts';

let dir: { path: string; remove: () => Promise<void> };
let store: Store;
const runs = new Map<number, FakeRun>();
const matrix = { instances: [3, 5], 'params.protocol': ['normal', 'adversarial'] };
const sweepId = 's-20250101-000000-dkg';

beforeAll(async () => {
  dir = await tempDir();
  store = createFolderStore({ root: join(dir.path, 'store') });
  const points = matrixPoints(matrix);
  // What the controller does: write the record first, then record each point's run as it starts.
  await writeSweepRecord(store, { formatVersion: 1, sweepId, name: 'dkg', createdAt: '2025-01-01T00:00:00.000Z', matrix, points });
  // Point 3 has a run id, but its run has not written anything yet.
  await recordSweepRun(store, sweepId, 3, 'r-point-3-starting');
  for (const point of points.slice(0, 3)) {
    const runId = `r-point-${point.index}`;
    const scale = point.values['params.protocol'] === 'adversarial' ? 3 : 1;
    runs.set(
      point.index,
      await writeFakeRun(store, {
        runId,
        instances: point.values.instances as number,
        repeats: 2,
        seed: 100 + point.index,
        latencyScale: scale,
        params: { protocol: point.values['params.protocol'] as string },
      }),
    );
    await recordSweepRun(store, sweepId, point.index, runId);
  }
});
afterAll(() => dir.remove());

describe('sweeps', () => {
  it('records which run belongs to which point under sweeps/<sweepId>.json', async () => {
    expect(sweepLayout.sweep(sweepId)).toBe(`sweeps/${sweepId}.json`);
    const record = (await readSweepRecord(store, sweepId))!;
    expect(record.points.map((p) => p.runId ?? null)).toEqual(['r-point-0', 'r-point-1', 'r-point-2', 'r-point-3-starting']);
  });

  it('downloads every run of the sweep and compares the points', async () => {
    const { report, download } = await collectResults({ id: sweepId, store, outDir: join(dir.path, 'out') });
    expect(report.kind).toBe('sweep');
    const sweep = report as SweepReport;
    expect(download!.runs.map((r) => r.runId)).toEqual(['r-point-0', 'r-point-1', 'r-point-2']);
    expect(sweep.keys).toEqual(['instances', 'params.protocol']);
    expect(sweep.points.map((p) => p.label)).toEqual([
      'instances=3 protocol=normal',
      'instances=3 protocol=adversarial',
      'instances=5 protocol=normal',
      'instances=5 protocol=adversarial',
    ]);
    expect(sweep.points[3]!.run).toBeNull();
    for (const [index, fake] of runs) {
      const metric = sweep.points[index]!.run!.metrics.find((m) => m.name === 'commit_ms')!;
      const perRepeatMeans = fake.repeats.map((r) => reference.mean(r.nodes.flatMap((n) => n.samples.commit_ms!)));
      expect(metric.overRepeats.mean.mean).toBeCloseTo(reference.mean(perRepeatMeans), 9);
      expect(sweep.points[index]!.run!.instances).toBe(fake.manifest.instances);
    }

    const table = formatReport(sweep, 'table');
    expect(table).toContain(`sweep ${sweepId} · 4 points`);
    expect(table).toMatch(/^5\s+adversarial\s+not run/m);
    expect(table).toMatch(/^3\s+adversarial\s+r-point-1\s+2\s/m);

    const rows = parseCsv(formatReport(sweep, 'csv'));
    expect(Object.keys(rows[0]!).slice(0, 3)).toEqual(['point', 'instances', 'params.protocol']);
    const mean = rows.find((r) => r.point === '1' && r.kind === 'metric' && r.name === 'commit_ms' && r.stat === 'mean' && r.aggregate === 'mean')!;
    expect(mean['params.protocol']).toBe('adversarial');
    expect(Number(mean.value)).toBe(sweep.points[1]!.run!.metrics[0]!.overRepeats.mean.mean);
  });

  it('charts each metric against the swept parameter, one series per other value: the mean with CI error bars, and the largest dashed', async () => {
    const { report } = await collectResults({ id: sweepId, outDir: join(dir.path, 'out'), download: false });
    const sweep = report as SweepReport;
    expect(sweep.axes).toEqual({ x: 'instances', lines: ['params.protocol'] });
    const charts = sweepCharts(sweep);
    expect(charts.map((c) => c.title)).toEqual([
      'duration (median over nodes) against instances',
      'start skew against instances',
      'commit_ms (mean over nodes) against instances',
      'throughput_ops (mean over nodes) against instances',
      'retransmits (mean over nodes) against instances',
      'bytes_out (mean over nodes) against instances',
    ]);
    type Series = { name: string; type: string; data: unknown[]; lineStyle?: { type?: string } };
    const commit = charts[2]!.option as { xAxis: { data: string[] }; series: Series[] };
    expect(commit.xAxis.data).toEqual(['3', '5']);
    const lines = commit.series.filter((s) => s.type === 'line' && s.lineStyle?.type !== 'dashed');
    expect(lines.map((s) => s.name)).toEqual(['protocol=adversarial · mean', 'protocol=normal · mean']);
    const metric = (i: number) => sweep.points[i]!.run!.metrics[0]!;
    expect(lines[1]!.data).toEqual([metric(0).overRepeats.mean.mean, metric(2).overRepeats.mean.mean]);
    expect(lines[0]!.data).toEqual([metric(1).overRepeats.mean.mean, null]);
    const largest = commit.series.filter((s) => s.lineStyle?.type === 'dashed');
    expect(largest.map((s) => s.name)).toEqual(['protocol=adversarial · largest', 'protocol=normal · largest']);
    expect(largest[1]!.data).toEqual([Math.max(...metric(0).repeats.map((r) => r.stats!.max)), Math.max(...metric(2).repeats.map((r) => r.stats!.max))]);
    const bars = commit.series.filter((s) => s.type === 'custom');
    expect(bars[0]!.data.length).toBe(metric(1).overRepeats.mean.ci95 ? 1 : 0);
  });
});
