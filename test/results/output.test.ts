import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatValue } from '../../src/results/format.ts';
import type { RunReport } from '../../src/results/report.ts';
import { collectResults, formatReport } from '../../src/results/results.ts';
import { reportTables } from '../../src/results/tables.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { parseCsv, reference, tempDir, writeFakeRun, type FakeRun } from './fixture.ts';

let dir: { path: string; remove: () => Promise<void> };
let fake: FakeRun;
let report: RunReport;

beforeAll(async () => {
  dir = await tempDir();
  const store = createFolderStore({ root: join(dir.path, 'store') });
  fake = await writeFakeRun(store, { instances: 4, repeats: 3, failedNodes: [[3, 0]] });
  const outcome = await collectResults({ id: fake.runId, store, outDir: join(dir.path, 'out') });
  report = outcome.report as RunReport;
});
afterAll(() => dir.remove());

const keyOf = (r: Readonly<Record<string, unknown>>) =>
  [r.run, r.kind, r.repeat, r.rank ?? '', r.name, r.stat, r.aggregate].map(String).join('|');

describe('outputs carry the same numbers', () => {
  it('every number in the table is a CSV row, formatted', () => {
    const csv = new Map(parseCsv(formatReport(report, 'csv')).map((row) => [keyOf(row), row]));
    const tables = reportTables(report);
    const text = formatReport(report, 'table');
    let checked = 0;
    for (const table of tables) {
      for (const row of table.rows) {
        // The printed line of this row holds each cell's text, in order.
        const line = text.split('\n').find((l) => l.startsWith(row[0]!.text + ' '))!;
        expect(line, row[0]!.text).toBeDefined();
        let at = 0;
        for (const cell of row.slice(1)) {
          at = line.indexOf(cell.text, at);
          expect(at, `${row[0]!.text}: ${cell.text}`).toBeGreaterThanOrEqual(0);
          for (const ref of cell.refs ?? []) {
            const csvRow = csv.get(keyOf({ ...ref, rank: '' }));
            expect(csvRow, JSON.stringify(ref)).toBeDefined();
            const value = csvRow!.value === '' ? null : Number(csvRow!.value);
            expect(cell.text).toContain(formatValue(value, csvRow!.unit || null));
            checked++;
          }
        }
      }
    }
    // 15 figures + 4 metrics × 6 rows, each with 3 repeat columns, and mean, sd and (where shown) the CI's 2 numbers for all but `samples`.
    const intervals = [...Object.values(report.figures.overRepeats), ...report.metrics.flatMap((m) => Object.values(m.overRepeats))].filter((s) => s.ci95).length;
    expect(checked).toBe(15 * (3 + 2) + 4 * (5 * (3 + 2) + 3) + 2 * intervals);
  });

  it('every CSV row is the number in the JSON report', () => {
    const json = JSON.parse(formatReport(report, 'json')) as RunReport;
    const rows = parseCsv(formatReport(report, 'csv'));
    expect(rows.length).toBeGreaterThan(300);
    for (const row of rows) {
      const value = row.value === '' ? null : Number(row.value);
      let want: unknown;
      const repeatIndex = Number(row.repeat) - 1;
      if (row.kind === 'figure') {
        want =
          row.repeat === 'all'
            ? aggregateOf(json.figures.overRepeats[row.name as 'n'], row.aggregate!)
            : json.figures.repeats[repeatIndex]!.values[row.name as 'n'];
      } else if (row.kind === 'metric') {
        const metric = json.metrics.find((m) => m.name === row.name)!;
        if (row.repeat === 'all') want = aggregateOf(metric.overRepeats[row.stat as 'mean'], row.aggregate!);
        else {
          const repeat = metric.repeats[repeatIndex]!;
          want = row.stat === 'samples' ? repeat.samples : row.stat === 'nodes' ? repeat.nodes : repeat.stats![row.stat as 'mean'];
        }
      } else if (row.kind === 'node') {
        const node = json.figures.repeats[repeatIndex]!.perNode.find((n) => n.rank === Number(row.rank))!;
        want = row.name === 'failed' ? (node.outcome === 'success' ? 0 : 1) : node[row.name as 'durationMs'];
      } else {
        const metric = json.metrics.find((m) => m.name === row.name)!;
        const byRank = metric.repeats[repeatIndex]!.byRank.find((n) => n.rank === Number(row.rank))!;
        want = row.stat === 'count' ? byRank.count : byRank.value;
      }
      expect(value, JSON.stringify(row)).toBe(want ?? null);
    }
  });

  it('the numbers are the ones the nodes recorded (computed here from the fixture)', () => {
    const rows = parseCsv(formatReport(report, 'csv'));
    const find = (kind: string, repeat: string, name: string, stat = '', aggregate = 'value', rank = '') =>
      Number(rows.find((r) => keyOf(r) === keyOf({ run: fake.runId, kind, repeat, rank, name, stat, aggregate }))!.value);
    for (const fr of fake.repeats) {
      const results = fr.nodes.map((n) => n.result!);
      const starts = results.map((r) => r.startedAt);
      expect(find('figure', String(fr.repeat), 'startSkewMs')).toBe(Math.max(...starts) - Math.min(...starts));
      expect(find('figure', String(fr.repeat), 'durationMaxMs')).toBe(Math.max(...results.map((r) => r.durationMs)));
      const commits = fr.nodes.flatMap((n) => n.samples.commit_ms!);
      expect(find('metric', String(fr.repeat), 'commit_ms', 'p95')).toBeCloseTo(reference.quantile(commits, 0.95), 9);
      expect(find('node', String(fr.repeat), 'txBytes', '', 'value', '2')).toBe(results[2]!.network!.txBytes);
    }
    expect(find('figure', 'all', 'failed', '', 'mean')).toBeCloseTo(1 / 3, 12);
    expect(find('node', '3', 'failed', '', 'value', '0')).toBe(1);
  });

  it('prints a readable table', () => {
    const text = formatReport(report, 'table');
    expect(text).toContain(`run ${fake.runId} · N=4 · 3 repeats`);
    expect(text).toMatch(/^start skew\s/m);
    expect(text).toMatch(/^commit_ms p95\s/m);
    expect(text).toContain('rank 0 failed in repeat 3');
    for (const line of text.split('\n')) expect(line.length).toBeLessThan(200);
  });

  it('leaves out the failures when `lockstep run` has listed them above the table', () => {
    const text = formatReport(report, 'table', { failuresListedAbove: true });
    expect(text).not.toContain('failed in repeat');
    expect(text).toMatch(/^commit_ms p95\s/m);
  });
});

function aggregateOf(summary: { n: number; mean: number | null; sd: number | null; ci95: readonly [number, number] | null }, aggregate: string) {
  switch (aggregate) {
    case 'mean':
      return summary.mean;
    case 'sd':
      return summary.sd;
    case 'ci95_low':
      return summary.ci95?.[0] ?? null;
    case 'ci95_high':
      return summary.ci95?.[1] ?? null;
    default:
      return summary.n;
  }
}
