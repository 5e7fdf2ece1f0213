import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { FaultRecord, FaultTimeline } from '../../src/core/faults.ts';
import type { NodeResult, RunManifest } from '../../src/core/manifest.ts';
import { reportCharts } from '../../src/results/charts.ts';
import { faultReportOf, faultTables, sampleTime } from '../../src/results/faults.ts';
import { writeHtmlReport } from '../../src/results/html.ts';
import { loadLocalRun } from '../../src/results/local-run.ts';
import { reportOf } from '../../src/results/report.ts';
import { renderTables } from '../../src/results/tables.ts';
import { tempDir } from '../helpers/temp.ts';

/**
 * Faults in the results, from a downloaded run written by hand: 3 nodes, one repeat, T = 1_796_000_000_000
 * (epoch ms). A partition of rank 2 from T+2s to T+4s, a kill of rank 1 at T+5s. Every node prints
 * `latency_ms` as JSON lines with a time, every 100 ms from T to T+6s: 10 ms outside faults, 80 ms
 * inside the partition.
 */
const T = 1_796_000_000_000;
const timeline: FaultTimeline = {
  seeds: [{ entry: 1, seed: 99, drawn: true }],
  events: [
    { id: '0#1', entry: 0, occurrence: 1, action: 'partition', atMs: 2000, durationMs: 2000, repeats: [1], targets: [0, 1, 2], partition: { kind: 'sides', sides: [[0, 1], [2]], shape: 'isolate' } },
    { id: '1#1', entry: 1, occurrence: 1, action: 'kill', atMs: 5000, repeats: [1], targets: [1] },
  ],
};

async function writeRun(): Promise<string> {
  const dir = tempDir('fault-results');
  const manifest = { formatVersion: 1, runId: 'r-faults', name: 'faults', createdAt: '2026-12-01T00:00:00.000Z', instances: 3, minInstances: 3, repeats: 1, run: 'x', params: {}, groups: [], collect: [], startDelayMs: 1000, timeouts: { barrierMs: 1, setupMs: 1, runMs: 60_000, instanceMs: 1 }, expiresAt: '', terminateWhenDone: true, provider: 'local', faults: timeline, specSource: 'metrics:\n  - { name: latency_ms, json: true, unit: ms }\n' } as RunManifest;
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  await mkdir(join(dir, 'repeat-1'));
  await writeFile(join(dir, 'repeat-1', 'start.json'), JSON.stringify({ members: [], startAt: T, writtenBy: 'x', quorum: false }));
  for (let rank = 0; rank < 3; rank++) {
    const faults: FaultRecord[] = [{ id: '0#1', action: 'partition', dueAt: T + 2000, healDueAt: T + 4000, appliedAt: T + 2001 + rank, healedAt: T + 4002, healedBy: 'window', detail: 'nft' }];
    if (rank === 1) faults.push({ id: '1#1', action: 'kill', dueAt: T + 5000, appliedAt: T + 5001, detail: 'SIGKILL to process group 7' });
    const result = { runId: 'r-faults', repeat: 1, rank, n: 3, outcome: rank === 1 ? 'killed' : 'success', readyAt: T - 1500, barrierAt: T - 1000, scheduledStartAt: T, startedAt: T, endedAt: T + 6000, durationMs: 6000, exitCode: 0, faults } as unknown as NodeResult;
    const lines: string[] = ['not a sample', JSON.stringify({ metric: 'latency_ms', value: 1 })];
    for (let at = 0; at <= 6000; at += 100) lines.push(JSON.stringify({ metric: 'latency_ms', value: at > 2100 && at < 3900 ? 80 : 10, time: T + at }));
    // The same samples as text lines with an ISO time, every 500 ms: for a regex metric with `(?<time>…)`.
    for (let at = 0; at <= 6000; at += 500) lines.push(`${new Date(T + at).toISOString()} commit took ${at > 2100 && at < 3900 ? 80 : 10} ms`);
    lines.push('commit took 5 ms');
    const node = join(dir, 'repeat-1', `rank-${rank}`);
    await mkdir(node);
    await writeFile(join(node, 'result.json'), JSON.stringify(result));
    await writeFile(join(node, 'stdout.log'), lines.join('\n') + '\n');
  }
  return dir;
}

describe('faults in the results', () => {
  it('reads times in epoch ms or seconds, as numbers or strings, or ISO 8601', () => {
    expect([sampleTime(1_796_000_000_123), sampleTime(1_796_000_000.5), sampleTime('1796000000123'), sampleTime('2026-12-01T00:00:00.000Z'), sampleTime('soon'), sampleTime(null)]).toEqual([
      1_796_000_000_123, 1_796_000_000_500, 1_796_000_000_123, Date.parse('2026-12-01T00:00:00.000Z'), undefined, undefined,
    ]);
  });

  it('lists each window as planned and as the nodes did it, and splits timed samples by the windows', async () => {
    const run = await loadLocalRun(await writeRun());
    const report = (await faultReportOf(run, [{ name: 'latency_ms', json: true, unit: 'ms', file: 'stdout.log', perNode: 'all' } as never]))!;
    const [partition, kill] = report.repeats[0]!.windows;
    expect(partition).toMatchObject({ id: '0#1', what: 'isolate: 0-1 | 2', fromMs: 2000, toMs: 4000, appliedFromMs: 2001, healedToMs: 4002, applied: 3, healed: 3 });
    expect(kill).toMatchObject({ id: '1#1', fromMs: 5000, toMs: null, applied: 1, healed: 0 });
    const [latency] = report.split;
    // During: from the first node's apply to the last one's heal of the partition (2.001–4.002 s),
    // and from the kill on (it lasts to the end).
    expect(latency!.during).toMatchObject({ min: 10, max: 80 });
    expect(latency!.during!.count).toBe(3 * (20 + 10));
    expect(latency!.outside).toMatchObject({ min: 10, max: 10, count: 3 * (21 + 10) });
    expect(latency!.untimed).toBe(3);
    const text = renderTables(faultTables(report));
    expect(text).toContain('Faults (times after the start T of each repeat)');
    expect(text).toMatch(/faults\.0 #1 +\S* *partition +isolate: 0-1 \| 2 +T\+2\.00 s → T\+4\.00 s +T\+2\.00 s → T\+4\.00 s +3 applied, 3 healed/);
    expect(text).toMatch(/faults\.1 #1 +\S* *kill +rank 1 +T\+5\.00 s → end +T\+5\.00 s → end +1 applied/);
    expect(text).toContain('faults.1: seed 99 was drawn for this run; repeat its choices with `--set faults.1.targets.random.seed=99`');
    expect(text).toMatch(/latency_ms +80 ms \(n=90, p95 80 ms\) +10 ms \(n=93, p95 10 ms\)/);
  });

  it('splits a regex metric whose named capture `time` gives each sample its time', async () => {
    const run = await loadLocalRun(await writeRun());
    const metric = { name: 'commit_ms', regex: '^(?<time>\\S+Z) commit took (?<value>\\d+) ms', unit: 'ms', file: 'stdout.log', perNode: 'all' };
    const [commit] = (await faultReportOf(run, [metric as never]))!.split;
    // Per node: 2.5, 3.0, 3.5 s (80 ms) and 4.0 s (10 ms) in the partition, applied 2.001–4.002 s; 5.5
    // and 6.0 s after the kill (5.001 s on); the other 7 outside.
    expect(commit!.during).toMatchObject({ count: 3 * 6, min: 10, max: 80 });
    expect(commit!.outside).toMatchObject({ count: 3 * 7, min: 10, max: 10 });
    // The untimed line does not match the regex (it has no time), so it is no sample at all.
    expect(commit!.untimed).toBe(0);
  });

  const CHROMIUM = '/usr/bin/chromium';
  it.skipIf(!existsSync(CHROMIUM))('shades the fault windows on the timeline and on the metric over time, in Chromium', async () => {
    const dir = await writeRun();
    const report = await reportOf(await loadLocalRun(dir));
    const charts = reportCharts(report);
    const shaded = charts.filter((c) => c.title.includes('fault windows shaded')).map((c) => c.id);
    expect(shaded).toEqual(['timeline-r-faults-1', 'metric-time-r-faults-latency_ms-1']);
    const file = join(dir, 'report.html');
    await writeHtmlReport(report, file);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (message) => void (message.type() === 'error' && problems.push(message.text())));
      await page.goto(pathToFileURL(file).href);
      for (const id of shaded) {
        const svg = page.locator(`section.chart[data-chart="${id}"] svg`);
        // The bands: two shaded rectangles (partition, kill) with their labels, drawn on the page.
        const bands = svg.locator('polygon[fill="rgb(214,69,65)"][fill-opacity="0.22"]');
        expect(await bands.count()).toBe(2);
        for (let i = 0; i < 2; i++) expect((await bands.nth(i).boundingBox())!.width).toBeGreaterThan(20);
        expect(await svg.locator('text', { hasText: 'partition 0 #1' }).count()).toBe(1);
        expect(await svg.locator('text', { hasText: 'kill 1 #1' }).count()).toBe(1);
      }
      expect(await page.locator('h2', { hasText: 'Faults (times after the start T of each repeat)' }).count()).toBe(1);
      expect(problems).toEqual([]);
      const keep = process.env.LOCKSTEP_KEEP_SCREENSHOTS;
      if (keep) {
        await page.screenshot({ path: join(keep, 'faults-report.png'), fullPage: true });
        for (const id of shaded) await page.locator(`section.chart[data-chart="${id}"]`).screenshot({ path: join(keep, `${id}.png`) });
      }
    } finally {
      await browser.close();
    }
  });
});
