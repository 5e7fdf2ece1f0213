import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layout } from '../../src/core/layout.ts';
import type { NodeResult } from '../../src/core/manifest.ts';
import type { RunReport } from '../../src/results/report.ts';
import { collectResults, formatReport } from '../../src/results/results.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson, type Store } from '../../src/store/store.ts';
import { runProbe, type ProbeRun } from '../helpers/local-run.ts';
import { countingStore, parseCsv, reference } from './fixture.ts';

/**
 * A real run on the local provider (agents, barrier, uploads), then `lockstep results` over it:
 * the figures must be what the nodes recorded in their result.json, read here from the store.
 */
const N = 4;
const REPEATS = 2;
const FAIL_RANK = 1;

let probe: ProbeRun;
let store: Store;
let report: RunReport;
const results = new Map<number, NodeResult[]>();

beforeAll(async () => {
  probe = await runProbe({
    instances: N,
    repeats: REPEATS,
    failRank: FAIL_RANK,
    extra: [
      'metrics:',
      '  - name: rank_seen',
      "    regex: '^rank=(?<value>\\d+) n='",
      '    perNode: last',
      '  - name: stderr_rank',
      "    regex: 'stderr of rank (?<value>\\d+)'",
      '    file: stderr.log',
      '  - name: note_rank',
      "    regex: 'note from rank (?<value>\\d+)'",
      '    file: notes.txt',
    ],
  });
  store = await openStore(probe.outcome.store);
  for (let repeat = 1; repeat <= REPEATS; repeat++) {
    const list: NodeResult[] = [];
    for (let rank = 0; rank < N; rank++) list.push((await getJson<NodeResult>(store, layout.node(probe.outcome.runId, repeat, rank) + 'result.json'))!);
    results.set(repeat, list);
  }
  report = (await collectResults({ id: probe.outcome.runId, store, outDir: join(probe.dir, 'lockstep-results') })).report as RunReport;
}, 180_000);

afterAll(async () => {
  await store?.dispose();
});

describe('results of a real local run', () => {
  it('has the figures the nodes recorded', () => {
    expect(report.figures.repeats.map((r) => r.repeat)).toEqual([1, 2]);
    for (const repeat of report.figures.repeats) {
      const nodes = results.get(repeat.repeat)!;
      const starts = nodes.map((r) => r.startedAt);
      const durations = nodes.map((r) => r.durationMs);
      expect(repeat.values.n).toBe(N);
      expect(repeat.values.startSkewMs).toBeCloseTo(Math.max(...starts) - Math.min(...starts), 9);
      expect(repeat.values.durationMedianMs).toBeCloseTo(reference.quantile(durations, 0.5), 9);
      expect(repeat.values.durationMaxMs).toBe(Math.max(...durations));
      expect(repeat.values.barrierWaitMaxMs).toBe(Math.max(...nodes.map((r) => r.barrierWaitMs)));
      expect(repeat.failedRanks).toEqual([FAIL_RANK]);
      expect(repeat.perNode.find((n) => n.rank === FAIL_RANK)!.exitCode).toBe(3);
      const cpu = nodes.filter((r) => r.cpuUserMs !== null && r.cpuSystemMs !== null).map((r) => r.cpuUserMs! + r.cpuSystemMs!);
      if (cpu.length > 0) expect(repeat.values.cpuTotalMs).toBeCloseTo(cpu.reduce((a, b) => a + b, 0), 6);
    }
    expect(report.figures.failuresByRank).toEqual([{ rank: FAIL_RANK, repeats: [1, 2] }]);
  });

  it('extracts the metrics from stdout, stderr and a collected file', () => {
    const ranks = Array.from({ length: N }, (_, i) => i);
    for (const name of ['rank_seen', 'stderr_rank', 'note_rank']) {
      const metric = report.metrics.find((m) => m.name === name)!;
      for (const repeat of metric.repeats) {
        expect(repeat.nodes).toBe(N);
        expect(repeat.byRank.map((r) => r.value)).toEqual(ranks);
        expect(repeat.stats!.mean).toBe(reference.mean(ranks));
        expect(repeat.stats!.max).toBe(N - 1);
      }
    }
  });

  it('prints the same numbers as table, CSV and JSON', () => {
    const json = JSON.parse(formatReport(report, 'json')) as RunReport;
    const rows = parseCsv(formatReport(report, 'csv'));
    const skew = rows.find((r) => r.kind === 'figure' && r.name === 'startSkewMs' && r.repeat === '1')!;
    expect(Number(skew.value)).toBe(json.figures.repeats[0]!.values.startSkewMs);
    expect(formatReport(report, 'table')).toContain(`rank ${FAIL_RANK} failed in repeats 1, 2`);
  });

  it('resumes: a second download fetches nothing', async () => {
    const counting = countingStore(store);
    const again = await collectResults({ id: probe.outcome.runId, store: counting, outDir: join(probe.dir, 'lockstep-results') });
    expect(again.download!.fetched).toBe(0);
    expect(counting.counts.getFile).toBe(0);
  });
});
