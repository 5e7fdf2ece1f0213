import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPEAT_FIGURES } from '../../src/results/figures.ts';
import type { RunReport } from '../../src/results/report.ts';
import { collectResults, formatReport } from '../../src/results/results.ts';
import { summarizeRepeats } from '../../src/results/stats.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { parseCsv, tempDir, writeFakeRun } from './fixture.ts';

/**
 * A 95% interval of a quantity that cannot be negative (a duration, bytes, a count) is shown only
 * where it means something: with 2 repeats, mean ± 12.7 · sd / √2 easily reaches below zero
 * (the report once showed a duration of "-45.0 s … 53.0 s").
 */

describe('95% intervals of quantities that cannot be negative', () => {
  it('are left out, with the reason, when they would reach below zero', () => {
    // The reported case: two repeats of 4 s and 94 s.
    const s = summarizeRepeats([4_000, 94_000], { nonNegative: true });
    expect(s.mean).toBe(49_000);
    expect(s.ci95).toBeNull();
    expect(s.ci95Omitted).toBe('below-zero');
    // A quantity that may be negative keeps its interval.
    const signed = summarizeRepeats([4_000, 94_000]);
    expect(signed.ci95![0]).toBeLessThan(0);
    expect(signed.ci95Omitted).toBeUndefined();
    // Narrow enough: shown.
    expect(summarizeRepeats([100, 101, 102], { nonNegative: true }).ci95![0]).toBeGreaterThan(0);
  });

  it('say why there is none for one repeat and for the same value in every repeat', () => {
    expect(summarizeRepeats([5], { nonNegative: true }).ci95Omitted).toBe('one-repeat');
    expect(summarizeRepeats([8, 8, 8], { nonNegative: true })).toMatchObject({ ci95: null, ci95Omitted: 'no-spread' });
  });

  describe('in a run of 2 repeats', () => {
    let dir: { path: string; remove: () => Promise<void> };
    let report: RunReport;

    beforeAll(async () => {
      dir = await tempDir();
      const store = createFolderStore({ root: join(dir.path, 'store') });
      const fake = await writeFakeRun(store, { instances: 5, repeats: 2, seed: 7 });
      report = (await collectResults({ id: fake.runId, store, outDir: join(dir.path, 'out') })).report as RunReport;
    });
    afterAll(() => dir.remove());

    it('no figure or metric interval goes below zero, and the omitted ones are named in a note', () => {
      const summaries = [
        ...REPEAT_FIGURES.map((f) => report.figures.overRepeats[f.key]),
        ...report.metrics.flatMap((m) => Object.values(m.overRepeats)),
      ];
      for (const summary of summaries) if (summary.ci95) expect(summary.ci95[0]).toBeGreaterThanOrEqual(0);
      const omitted = summaries.filter((s) => s.ci95Omitted === 'below-zero');
      expect(omitted.length).toBeGreaterThan(0);

      // Notes wrap: join their continued lines.
      const table = formatReport(report, 'table').replaceAll('\n  ', ' ');
      // No interval cell with a negative bound (e.g. "-45.0 s … 53.0 s").
      expect(table).not.toMatch(/-[\d.]+ \S+ … /);
      expect(table).toMatch(/95% CI not shown for .*duration \(median\).*: with 2 repeats the interval .* would reach below zero/);
      expect(table).toMatch(/95% CI not shown for N, .*: the same in every repeat/);

      const csv = parseCsv(formatReport(report, 'csv'));
      const low = csv.find((r) => r.kind === 'figure' && r.name === 'durationMedianMs' && r.aggregate === 'ci95_low')!;
      expect(low.value).toBe('');
    });
  });
});
