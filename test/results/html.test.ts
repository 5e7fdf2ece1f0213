import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportCharts } from '../../src/results/charts.ts';
import { writeHtmlReport } from '../../src/results/html.ts';
import { matrixPoints } from '../../src/results/matrix.ts';
import type { Report } from '../../src/results/report.ts';
import { collectResults } from '../../src/results/results.ts';
import { recordSweepRun, writeSweepRecord } from '../../src/results/sweep-layout.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { tempDir, writeFakeRun } from './fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
// CI installs Debian's chromium (.ci/run); elsewhere a missing browser skips rather than fails.
const haveBrowser = existsSync(CHROMIUM) || process.env.CI === 'true';

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

  if (haveBrowser) {
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
  }
}, 120_000);

afterAll(async () => {
  await context?.close();
  await dir.remove();
});

describe.skipIf(!haveBrowser)('HTML report in headless Chromium', () => {
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
});
