import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadRuns } from '../../src/results/download.ts';
import { loadLocalRun, type LocalRun } from '../../src/results/local-run.ts';
import { jsonLineValue, valueRegex } from '../../src/results/extract.ts';
import {
  extractMetrics,
  METRIC_STATS,
  MetricSpecError,
  analysisOfManifest,
  parseAnalysis,
  type MetricReport,
} from '../../src/results/metrics.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { expectCi, METRICS, reference, tempDir, writeFakeRun, type FakeRun } from './fixture.ts';

let dir: { path: string; remove: () => Promise<void> };
let fake: FakeRun;
let local: LocalRun;
let metrics: readonly MetricReport[];

beforeAll(async () => {
  dir = await tempDir();
  const store = createFolderStore({ root: join(dir.path, 'store') });
  fake = await writeFakeRun(store, { instances: 4, repeats: 3, linesPerNode: 200, failedNodes: [[1, 2]], missingNodes: [[2, 0]] });
  const { runs } = await downloadRuns({ store, runIds: [fake.runId], outDir: join(dir.path, 'out') });
  local = await loadLocalRun(runs[0]!.dir);
  ({ metrics } = await extractMetrics(local, analysisOfManifest(local.manifest), { chunkSize: 4096 }));
});
afterAll(() => dir.remove());

/** What the test expects for one repeat, from the samples the fixture wrote (not from lockstep). */
function expectedRepeat(repeat: number, name: string, perNode: (xs: number[]) => number[]) {
  const nodes = fake.repeats[repeat - 1]!.nodes.filter((n) => n.samples[name]?.length);
  const values = nodes.flatMap((n) => perNode(n.samples[name]!));
  return {
    nodes: nodes.length,
    samples: values.length,
    min: Math.min(...values),
    median: reference.quantile(values, 0.5),
    mean: reference.mean(values),
    p95: reference.quantile(values, 0.95),
    max: Math.max(...values),
  };
}

describe('user metrics', () => {
  it('reads the metric declarations the run recorded in its manifest', () => {
    expect(analysisOfManifest(local.manifest).metrics.map((m) => [m.name, m.file, m.perNode])).toEqual([
      ['commit_ms', undefined, undefined],
      ['throughput_ops', undefined, undefined],
      ['retransmits', 'stderr.log', 'last'],
      ['bytes_out', 'stats/summary.txt', 'max'],
    ]);
  });

  const cases: Array<[string, (xs: number[]) => number[]]> = [
    ['commit_ms', (xs) => xs], // regex over stdout.log, every sample
    ['throughput_ops', (xs) => xs], // JSON lines among other JSON lines and log text
    ['retransmits', (xs) => [xs.at(-1)!]], // regex over stderr.log, last value per node
    ['bytes_out', (xs) => [Math.max(...xs)]], // regex over a collected file, max per node
  ];
  it.each(cases)('%s: extracted and aggregated per repeat over nodes', (name, perNode) => {
    const metric = metrics.find((m) => m.name === name)!;
    expect(metric.repeats.map((r) => r.repeat)).toEqual([1, 2, 3]);
    for (const repeat of metric.repeats) {
      const want = expectedRepeat(repeat.repeat, name, perNode);
      expect(repeat.nodes).toBe(want.nodes);
      expect(repeat.samples).toBe(want.samples);
      for (const stat of METRIC_STATS) expect(repeat.stats![stat]).toBeCloseTo(want[stat], 9);
    }
    // The node that went missing in repeat 2 has no samples; the failed node of repeat 1 has its own.
    expect(metric.repeats[1]!.byRank.map((r) => r.rank)).toEqual([1, 2, 3]);
    expect(metric.repeats[0]!.byRank.map((r) => r.rank)).toEqual([0, 1, 2, 3]);
  });

  it.each(cases)('%s: each statistic summarised over repeats', (name, perNode) => {
    const metric = metrics.find((m) => m.name === name)!;
    for (const stat of METRIC_STATS) {
      const perRepeat = [1, 2, 3].map((r) => expectedRepeat(r, name, perNode)[stat]);
      const s = metric.overRepeats[stat];
      expect(s.n).toBe(3);
      expect(s.mean).toBeCloseTo(reference.mean(perRepeat), 9);
      expect(s.sd).toBeCloseTo(reference.sd(perRepeat), 9);
      const half = (reference.t975[2]! * reference.sd(perRepeat)) / Math.sqrt(3);
      // No sample is negative: an interval reaching below zero is left out, and says so.
      if (reference.mean(perRepeat) - half < 0) expect(s).toMatchObject({ ci95: null, ci95Omitted: 'below-zero' });
      else expectCi(s.ci95!, reference.mean(perRepeat), half);
    }
  });

  it('carries the declared unit and source', () => {
    expect(metrics.map((m) => [m.name, m.unit, m.source])).toEqual([
      ['commit_ms', 'ms', 'regex'],
      ['throughput_ops', 'ops/s', 'json'],
      ['retransmits', null, 'regex'],
      ['bytes_out', 'B', 'regex'],
    ]);
  });

  it('reduces per node as declared', async () => {
    const nodeDir = join(dir.path, 'handmade', 'repeat-1', 'rank-0');
    await mkdir(nodeDir, { recursive: true });
    await writeFile(join(nodeDir, 'stdout.log'), 'v=4\nnoise v=x\nv=1\nv=10\nv=-2.5\nv=\n');
    const run: LocalRun = {
      ...local,
      repeats: [{ repeat: 1, dir: join(dir.path, 'handmade', 'repeat-1'), nodes: [{ rank: 0, dir: nodeDir }], failures: [] }],
    };
    const specs = (['all', 'first', 'last', 'min', 'max', 'mean', 'sum'] as const).map((perNode) => ({
      name: `v_${perNode}`,
      regex: 'v=(?<value>\\S+)',
      perNode,
    }));
    const { metrics: got } = await extractMetrics(run, specs);
    const value = (name: string) => got.find((m) => m.name === name)!.repeats[0]!.byRank[0]!.value;
    expect(got[0]!.repeats[0]!.samples).toBe(4);
    expect(value('v_first')).toBe(4);
    expect(value('v_last')).toBe(-2.5);
    expect(value('v_min')).toBe(-2.5);
    expect(value('v_max')).toBe(10);
    expect(value('v_mean')).toBeCloseTo(12.5 / 4, 12);
    expect(value('v_sum')).toBe(12.5);
    expect(got[0]!.repeats[0]!.stats!.median).toBe(2.5);
  });

  it('reads JSON lines exactly: the named metric, a numeric value, prefixed lines allowed', () => {
    expect(jsonLineValue('{"metric": "latency_ms", "value": 12.5}', 'latency_ms')).toBe(12.5);
    expect(jsonLineValue('12:00:01 INFO {"metric":"latency_ms","value":"7"}', 'latency_ms')).toBe(7);
    expect(jsonLineValue('{"metric":"latency_ms_p99","value":3}', 'latency_ms')).toBeUndefined();
    expect(jsonLineValue('{"metric":"latency_ms","value":null}', 'latency_ms')).toBeUndefined();
    expect(jsonLineValue('latency_ms went up', 'latency_ms')).toBeUndefined();
    expect(jsonLineValue('{"metric":"latency_ms", broken', 'latency_ms')).toBeUndefined();
  });

  it('refuses declarations it cannot use, naming the fix', () => {
    expect(() => parseAnalysis([{ name: 'a', regex: 'took (\\d+) ms' }])).toThrow(/named capture `\(\?<value>…\)`/);
    expect(() => parseAnalysis([{ name: 'a', regex: 'x(?<value>\\d+', unit: 'ms' }])).toThrow(/valid regular expression/);
    expect(() => parseAnalysis([{ name: 'a', regex: 'x(?<value>\\d+)', json: true }])).toThrow(/exactly one of `regex`, `json: true`, `after` or `expr`; this one has `regex` and `json`/);
    expect(() => parseAnalysis([{ name: 'a' }])).toThrow(MetricSpecError);
    expect(() => parseAnalysis([{ name: 'a', json: true }, { name: 'a', json: true }])).toThrow(/unique/);
    expect(() => parseAnalysis([{ name: 'a', json: true, file: '../etc/passwd' }])).toThrow(/without `\.\.`/);
    expect(parseAnalysis(METRICS).metrics.length).toBe(4);
  });
});

describe('valueRegex', () => {
  it.each([
    ['committed in (?<value>\\d+(?:\\.\\d+)?) ms', ['x committed in 12.5 ms', 'committed in ms']],
    ['(?<round>\\d+) (a|b) [(] (?<value>\\d+)', ['7 a ( 42', '7 b ( 3', 'nope']],
    ['\\((?<value>\\d+)\\) (?<unit>\\w+)', ['(12) bytes', '(x) y']],
    ['(?<=rtt=)(?<value>\\d+)', ['rtt=33', 'rt=3']],
    ['(?<w>\\w)\\k<w>=(?<value>\\d+)', ['aa=5', 'ab=5']],
    ['[\\](]+(?<value>\\d+)', ['](7', '8']],
  ])('%s captures exactly what the named regex captures', (source, lines) => {
    const { regex, group } = valueRegex(source);
    const named = new RegExp(source);
    for (const line of lines) {
      const want = named.exec(line)?.groups?.value;
      const match = regex.exec(line);
      expect(match === null ? undefined : group === 'value' ? match.groups?.value : match[group]).toBe(want);
    }
  });

  it('drops the named groups when nothing refers to them by name', () => {
    expect(valueRegex('a (?<b>x) (?<value>\\d+)')).toEqual({ regex: /a (x) (\d+)/, group: 2 });
    expect(valueRegex('(?<w>\\w)\\k<w>(?<value>\\d+)').group).toBe('value');
  });
});

describe('scanning in worker threads', () => {
  it('gives the same metrics as scanning in-process', async () => {
    const { Worker } = await import('node:worker_threads');
    const started = { count: 0 };
    const original = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: InstanceType<typeof Worker>, ...args: Parameters<typeof original>) {
      started.count++;
      return original.apply(this, args);
    };
    try {
      const specs = analysisOfManifest(local.manifest);
      const inWorkers = await extractMetrics(local, specs, { workers: 2 });
      expect(started.count).toBeGreaterThan(0); // the requests went to workers
      const here = await extractMetrics(local, specs, { workers: 0 });
      expect(inWorkers).toEqual(here);
      expect(inWorkers.metrics).toEqual(metrics);
    } finally {
      Worker.prototype.postMessage = original;
    }
  });
});

describe('captures that are not numbers', () => {
  it('are skipped, while a real zero counts', async () => {
    const nodeDir = join(dir.path, 'captures', 'repeat-1', 'rank-0');
    await mkdir(nodeDir, { recursive: true });
    await writeFile(join(nodeDir, 'stdout.log'), 'v=;\nv= ;\nv=0;\nv=abc;\nv=1e3;\nv=-0.5;\n');
    const run: LocalRun = {
      ...local,
      repeats: [{ repeat: 1, dir: join(dir.path, 'captures', 'repeat-1'), nodes: [{ rank: 0, dir: nodeDir }], failures: [] }],
    };
    const {
      metrics: [metric],
    } = await extractMetrics(run, [{ name: 'v', regex: 'v=(?<value>[^;]*);' }]);
    expect(metric!.repeats[0]!.samples).toBe(3);
    expect(metric!.repeats[0]!.stats).toMatchObject({ min: -0.5, max: 1000 });
    expect(metric!.repeats[0]!.byRank[0]!.value).toBeCloseTo((0 + 1000 - 0.5) / 3, 12);
  });
});
