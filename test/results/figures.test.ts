import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeResult } from '../../src/core/manifest.ts';
import { downloadRuns } from '../../src/results/download.ts';
import { computeFigures, type RunFigures } from '../../src/results/figures.ts';
import { loadLocalRun } from '../../src/results/local-run.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { expectCi, reference, tempDir, writeFakeRun, type FakeRun } from './fixture.ts';

let dir: { path: string; remove: () => Promise<void> };
let run: FakeRun;
let figures: RunFigures;

beforeAll(async () => {
  dir = await tempDir();
  const store = createFolderStore({ root: join(dir.path, 'store') });
  run = await writeFakeRun(store, {
    instances: 5,
    repeats: 3,
    failedNodes: [[2, 1]],
    missingNodes: [[3, 3]],
  });
  const { runs } = await downloadRuns({ store, runIds: [run.runId], outDir: join(dir.path, 'out') });
  figures = computeFigures(await loadLocalRun(runs[0]!.dir));
});
afterAll(() => dir.remove());

const resultsOf = (repeat: number): NodeResult[] =>
  run.repeats[repeat - 1]!.nodes.flatMap((n) => (n.result ? [n.result] : []));

describe('framework figures', () => {
  it('match what the nodes recorded, repeat by repeat', () => {
    expect(figures.repeats.map((r) => r.repeat)).toEqual([1, 2, 3]);
    for (const repeat of figures.repeats) {
      const results = resultsOf(repeat.repeat);
      const starts = results.map((r) => r.startedAt);
      const durations = results.map((r) => r.durationMs);
      const waits = results.map((r) => r.barrierWaitMs);
      const cpu = results.map((r) => r.cpuUserMs! + r.cpuSystemMs!);
      const v = repeat.values;
      expect(v.n).toBe(5);
      expect(repeat.nodes).toBe(results.length);
      expect(v.startSkewMs).toBeCloseTo(Math.max(...starts) - Math.min(...starts), 9);
      expect(v.durationMedianMs).toBeCloseTo(reference.quantile(durations, 0.5), 9);
      expect(v.durationMaxMs).toBe(Math.max(...durations));
      expect(v.barrierWaitMedianMs).toBeCloseTo(reference.quantile(waits, 0.5), 9);
      expect(v.barrierWaitMaxMs).toBe(Math.max(...waits));
      expect(v.cpuTotalMs).toBeCloseTo(cpu.reduce((a, b) => a + b, 0), 6);
      expect(v.cpuMaxMs).toBeCloseTo(Math.max(...cpu), 9);
      expect(v.peakMemoryMaxBytes).toBe(Math.max(...results.map((r) => r.peakMemoryBytes!)));
      expect(v.txTotalBytes).toBe(results.reduce((a, r) => a + r.network!.txBytes, 0));
      expect(v.rxTotalBytes).toBe(results.reduce((a, r) => a + r.network!.rxBytes, 0));
      expect(v.txMaxBytes).toBe(Math.max(...results.map((r) => r.network!.txBytes)));
      expect(v.rxMaxBytes).toBe(Math.max(...results.map((r) => r.network!.rxBytes)));
      expect(v.startSkewMs!).toBeLessThan(1); // the fixture starts every node within 0.9 ms of T
    }
  });

  it('keep per-node values and a timeline relative to the first ready node', () => {
    const repeat = figures.repeats[0]!;
    const results = resultsOf(1);
    const firstReady = Math.min(...results.map((r) => r.readyAt));
    const firstStart = Math.min(...results.map((r) => r.startedAt));
    for (const node of repeat.perNode) {
      const r = results.find((x) => x.rank === node.rank)!;
      expect(node.durationMs).toBe(r.durationMs);
      expect(node.txBytes).toBe(r.network!.txBytes);
      expect(node.startOffsetMs).toBeCloseTo(r.startedAt - firstStart, 9);
      expect(node.startLateMs).toBeCloseTo(r.startedAt - r.scheduledStartAt, 9);
      expect(node.timeline!.readyMs).toBeCloseTo(r.readyAt - firstReady, 9);
      expect(node.timeline!.endMs - node.timeline!.startMs).toBeCloseTo(r.durationMs, 3); // epoch ms carry ~0.2 µs of precision
    }
  });

  it('count failures by rank: a failed command and a node that never uploaded', () => {
    expect(figures.repeats[0]!.values.failed).toBe(0);
    expect(figures.repeats[1]!.failedRanks).toEqual([1]);
    expect(figures.repeats[1]!.values.succeeded).toBe(4);
    expect(figures.repeats[2]!.failedRanks).toEqual([3]);
    expect(figures.repeats[2]!.perNode.find((n) => n.rank === 3)!.outcome).toBe('missing');
    expect(figures.repeats[2]!.instanceFailures).toEqual([{ instanceId: 'i-0003', stage: 'run', error: 'instance stopped answering' }]);
    expect(figures.failuresByRank).toEqual([
      { rank: 1, repeats: [2] },
      { rank: 3, repeats: [3] },
    ]);
  });

  it('summarise each figure over repeats with mean, sd and a t-based 95% CI', () => {
    const medians = [1, 2, 3].map((r) => reference.quantile(resultsOf(r).map((x) => x.durationMs), 0.5));
    const s = figures.overRepeats.durationMedianMs;
    expect(s.n).toBe(3);
    expect(s.mean).toBeCloseTo(reference.mean(medians), 9);
    expect(s.sd).toBeCloseTo(reference.sd(medians), 9);
    const half = (reference.t975[2]! * reference.sd(medians)) / Math.sqrt(3);
    expectCi(s.ci95!, reference.mean(medians), half);
    expect(figures.overRepeats.failed.mean).toBeCloseTo(2 / 3, 12);
  });
});
