import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportCharts } from '../../src/results/charts.ts';
import { writeHtmlReport } from '../../src/results/html.ts';
import { matrixPoints } from '../../src/results/matrix.ts';
import type { Report, SweepReport } from '../../src/results/report.ts';
import { collectResults } from '../../src/results/results.ts';
import { recordSweepRun, writeSweepRecord } from '../../src/results/sweep-layout.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { importFolders } from '../../src/controller/import.ts';
import { writeSeedFolder } from '../helpers/seed-logs.ts';
import { tempDir, writeFakeRun } from './fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
const SEED_SPEC = fileURLToPath(new URL('../../examples/seed-analysis/lockstep.yaml', import.meta.url));
// scripts/test-deps.sh installs Debian's chromium (CI runs it first): a missing browser fails the
// tests, saying so, rather than skip them.
const NO_BROWSER = `Chromium is missing (${CHROMIUM}): run scripts/test-deps.sh, which installs it`;

let dir: { path: string; remove: () => Promise<void> };
let context: BrowserContext | undefined;
const reports = new Map<string, Report>();

beforeAll(async () => {
  dir = await tempDir('lockstep-html-');
  const store = createFolderStore({ root: join(dir.path, 'store') });
  const out = join(dir.path, 'out');
  await writeFakeRun(store, { runId: 'r-html', instances: 6, repeats: 3, failedNodes: [[2, 4]] });
  reports.set('run', (await collectResults({ id: 'r-html', store, outDir: out })).report);

  const matrix = { instances: [3, 5], 'params.protocol': ['normal', 'adversarial'] };
  const points = matrixPoints(matrix);
  await writeSweepRecord(store, { formatVersion: 1, sweepId: 's-html', name: 'dkg', createdAt: '2025-01-01T00:00:00.000Z', matrix, points });
  for (const point of points) {
    await writeFakeRun(store, {
      runId: `r-html-${point.index}`,
      instances: point.values.instances as number,
      repeats: 3,
      seed: 10 + point.index,
      latencyScale: (point.values['params.protocol'] === 'adversarial' ? 2 : 1) * (point.values.instances === 5 ? 1.5 : 1),
    });
    await recordSweepRun(store, 's-html', point.index, `r-html-${point.index}`);
  }
  reports.set('sweep', (await collectResults({ id: 's-html', store, outDir: out })).report);

  // The seed's experiment at three N, two protocols: the paper's figure.
  const seedFolders = [];
  for (const nodes of [16, 32, 64]) {
    for (const protocol of ['normal', 'corrupted']) seedFolders.push((await writeSeedFolder(join(dir.path, 'seed'), { nodes, protocol, repeats: 3 })).folder);
  }
  const imported = await importFolders({ store, home: join(dir.path, 'home'), folders: seedFolders, specSource: await readFile(SEED_SPEC, 'utf8'), sweepName: 'anytrust-dkg' });
  reports.set('seed', (await collectResults({ id: imported.sweep!.sweepId, store, outDir: out })).report);

  if (!existsSync(CHROMIUM)) throw new Error(NO_BROWSER);
  const profile = join(dir.path, 'chromium-profile');
  await mkdir(profile);
  // Playwright passes the profile as --user-data-dir (a new, empty folder) and runs headless.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await dir.remove();
});

describe('HTML report in headless Chromium', () => {
  it.each(['run', 'sweep'])('%s report: every chart is an SVG, no console errors, no network', async (kind) => {
    const report = reports.get(kind)!;
    const file = join(dir.path, `${kind}-report.html`);
    await writeHtmlReport(report, file);
    const html = await readFile(file, 'utf8');
    expect(html).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org)/);

    const page = await context!.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });

    const charts = reportCharts(report);
    expect(charts.length).toBeGreaterThanOrEqual(kind === 'run' ? 3 + 3 + 4 - 1 : 6);
    for (const chart of charts) {
      const section = page.locator(`section.chart[data-chart="${chart.id}"]`);
      await expect(section.count()).resolves.toBe(1);
      const svg = section.locator('svg');
      await expect(svg.count()).resolves.toBe(1);
      // Drawn: bars, lines and labels are paths and text inside the SVG, and it has a size on the page.
      expect(await svg.locator('path').count()).toBeGreaterThan(5);
      expect(await svg.locator('text').count()).toBeGreaterThan(3);
      const box = await svg.boundingBox();
      expect(box!.width).toBeGreaterThan(300);
      expect(box!.height).toBeGreaterThan(200);
    }
    expect(await page.locator('table tr').count()).toBeGreaterThan(kind === 'run' ? 20 : 4);
    expect(problems).toEqual([]);
    expect(requests.filter((url) => !url.startsWith('file://'))).toEqual([]);

    const shot = join(dir.path, `${kind}-report.png`);
    await page.screenshot({ path: shot, fullPage: true });
    expect(existsSync(shot)).toBe(true);
    if (process.env.LOCKSTEP_KEEP_SCREENSHOTS) {
      const { copyFile } = await import('node:fs/promises');
      await copyFile(shot, join(process.env.LOCKSTEP_KEEP_SCREENSHOTS, `${kind}-report.png`));
      await copyFile(file, join(process.env.LOCKSTEP_KEEP_SCREENSHOTS, `${kind}-report.html`));
    }
    await page.close();
  });

  it('a sweep of the seed’s experiment charts the worst node against N, one line per protocol (mean and worst)', async () => {
    const report = reports.get('seed')!;
    const file = join(dir.path, 'seed-report.html');
    await writeHtmlReport(report, file);
    const page = await context!.newPage();
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    const chart = reportCharts(report).find((c) => c.title === 'adjusted of the worst node against instances')!;
    const svg = page.locator(`section.chart[data-chart="${chart.id}"] svg`);
    const texts = await svg.locator('text').allTextContents();
    // The x axis is N, the legend one mean and one worst line per protocol.
    for (const label of ['17', '33', '65', 'instances']) expect(texts).toContain(label);
    for (const series of ['protocol=corrupted · mean', 'protocol=corrupted · worst', 'protocol=normal · mean', 'protocol=normal · worst']) {
      expect(texts).toContain(series);
    }
    // Two dashed lines (the worst), drawn across the plot.
    const dashed = svg.locator('path[stroke-dasharray]');
    expect(await dashed.count()).toBeGreaterThanOrEqual(2);
    const widths = await dashed.evaluateAll((paths) => paths.map((p) => (p as SVGGraphicsElement).getBBox().width));
    expect(Math.max(...widths)).toBeGreaterThan(300);
    // What the lines say: the honest protocol waits out its multicast timeout (10 s), slower at every N.
    const sweep = report as SweepReport;
    const worstOf = (protocol: string) => sweep.points.filter((p) => p.values['params.protocol'] === protocol).map((p) => p.run!.extremes[0]!.overall!.value);
    expect(Math.min(...worstOf('normal'))).toBeGreaterThan(Math.max(...worstOf('corrupted')));
    const shot = join(dir.path, 'seed-chart.png');
    await page.locator(`section.chart[data-chart="${chart.id}"]`).screenshot({ path: shot });
    expect(existsSync(shot)).toBe(true);
    if (process.env.LOCKSTEP_KEEP_SCREENSHOTS) {
      const { copyFile } = await import('node:fs/promises');
      await copyFile(shot, join(process.env.LOCKSTEP_KEEP_SCREENSHOTS, 'seed-chart.png'));
    }
    await page.close();
  });
});
