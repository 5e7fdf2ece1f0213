import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { layout } from '../core/layout.ts';
import type { Store } from '../store/store.ts';
import { DEFAULT_RESULTS_DIR, downloadRuns, runDir, type DownloadProgress, type DownloadResult } from './download.ts';
import { LocalResultsMissingError } from './errors.ts';
import { writeHtmlReport } from './html.ts';
import { analyseRun, analyseSweep, type Report } from './report.ts';
import { perNodeCsv, perNodeRows, reportRows, rowsToCsv } from './rows.ts';
import type { Analysis } from '../spec/metrics.ts';
import { readSweepRecord, type SweepRecord } from './sweep-layout.ts';
import { renderTables, reportTables, type TableOptions } from './tables.ts';

export interface ResultsOptions {
  /** A run id or a sweep id. */
  readonly id: string;
  /** Where the run lives; needed unless `download` is false. */
  readonly store?: Store;
  /** Local folder of downloaded runs; default `lockstep-results` below `cwd`. */
  readonly outDir?: string;
  readonly cwd?: string;
  /** Fetch what is missing or changed first (default true); false analyses what is already local. */
  readonly download?: boolean;
  /** Objects fetched at the same time; default 16. */
  readonly concurrency?: number;
  /** Metrics (and `analysis`) to use instead of those the run's spec declared. */
  readonly analysis?: Analysis;
  readonly onProgress?: (progress: DownloadProgress) => void;
}

export interface ResultsOutcome {
  readonly report: Report;
  /** Absent with `download: false`. */
  readonly download?: DownloadResult;
}

/** Downloads (resumably) and analyses a run or a sweep: what `lockstep results` does before printing. */
export async function collectResults(options: ResultsOptions): Promise<ResultsOutcome> {
  const outDir = resolve(options.cwd ?? process.cwd(), options.outDir ?? DEFAULT_RESULTS_DIR);
  const analyse = { analysis: options.analysis };
  const sweepFile = join(outDir, 'sweeps', `${options.id}.json`);

  if (options.download === false) {
    if (existsSync(join(runDir(outDir, options.id), 'manifest.json'))) {
      return { report: await analyseRun(runDir(outDir, options.id), analyse) };
    }
    if (!existsSync(sweepFile)) throw new LocalResultsMissingError(runDir(outDir, options.id));
    const record = JSON.parse(await readFile(sweepFile, 'utf8')) as SweepRecord;
    return { report: await analyseSweep(record, (runId) => runDir(outDir, runId), analyse) };
  }

  const store = options.store;
  if (!store) throw new TypeError('collectResults needs `store` unless `download` is false');
  // A sweep id first; otherwise a run id (the download says when there is no such run either).
  const sweep = await readSweepRecord(store, options.id);
  // A sweep point whose run has not written its manifest yet is reported as not run.
  const runIds: string[] = [];
  for (const runId of sweep ? sweep.points.flatMap((p) => (p.runId ? [p.runId] : [])) : [options.id]) {
    if (!sweep || (await store.get(layout.manifest(runId))) !== undefined) runIds.push(runId);
  }
  const download = await downloadRuns({ store, runIds, outDir, concurrency: options.concurrency, onProgress: options.onProgress });
  if (!sweep) return { report: await analyseRun(runDir(outDir, options.id), analyse), download };

  await mkdir(dirname(sweepFile), { recursive: true });
  await writeFile(sweepFile, JSON.stringify(sweep, null, 2) + '\n');
  return { report: await analyseSweep(sweep, (runId) => runDir(outDir, runId), analyse), download };
}

export type OutputFormat = 'table' | 'csv' | 'json' | 'per-node-csv' | 'per-node-json';

/**
 * The report as the terminal table, CSV (every number, one row each) or JSON (the report object);
 * or only the per-node values, as tidy CSV (`run,repeat,rank,metric,value`) or JSON rows.
 */
export function formatReport(report: Report, format: OutputFormat, tableOptions: TableOptions = {}): string {
  const keys = report.kind === 'sweep' ? report.keys : [];
  switch (format) {
    case 'csv':
      return rowsToCsv(reportRows(report), keys);
    case 'json':
      return JSON.stringify(report, null, 2) + '\n';
    case 'per-node-csv':
      return perNodeCsv(perNodeRows(report), keys);
    case 'per-node-json':
      return JSON.stringify(perNodeRows(report), null, 2) + '\n';
    default:
      return renderTables(reportTables(report, tableOptions));
  }
}

export interface SummaryOptions extends ResultsOptions {
  /** Where the table goes; default stdout. */
  readonly write?: (text: string) => void;
  /** Also write the HTML report here (relative to `cwd`). */
  readonly html?: string;
  /** The caller has listed the run's failures already (the end of `lockstep run`). */
  readonly failuresListedAbove?: boolean;
}

/**
 * For the end of `lockstep run`: downloads the run (or sweep) into the results folder, prints the
 * summary table and, if asked, writes the HTML report. Returns the report.
 */
export async function printSummary(options: SummaryOptions): Promise<Report> {
  const { report } = await collectResults(options);
  (options.write ?? ((text: string) => process.stdout.write(text)))(formatReport(report, 'table', { failuresListedAbove: options.failuresListedAbove }));
  if (options.html) await writeHtmlReport(report, resolve(options.cwd ?? process.cwd(), options.html));
  return report;
}
