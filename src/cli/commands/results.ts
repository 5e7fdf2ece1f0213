import { resolve } from 'node:path';
import { defineCommand } from 'citty';
import { loadSpec } from '../../spec/load.ts';
import { analysisOfSpec } from '../../spec/metrics.ts';
import { openRunStore } from '../../controller/locate.ts';
import type { Store } from '../../store/store.ts';
import { DEFAULT_RESULTS_DIR, type DownloadProgress } from '../../results/download.ts';
import { formatBytes } from '../../results/format.ts';
import { writeHtmlReport } from '../../results/html.ts';
import { collectResults, formatReport, type OutputFormat, type ResultsOptions } from '../../results/results.ts';
import type { Report } from '../../results/report.ts';
import { UsageError } from '../errors.ts';
import { jsonArg, runStoreArg } from '../shared-args.ts';

export interface ResultsCommandOptions {
  readonly id: string;
  readonly store?: string;
  readonly out?: string;
  readonly csv?: boolean;
  readonly json?: boolean;
  /** With `csv` or `json`: only every node's value of every metric and per-node figure, one row each. */
  readonly perNode?: boolean;
  readonly html?: string;
  readonly download?: boolean;
  readonly concurrency?: number;
  /** A spec whose `metrics` and `analysis` replace the ones the run recorded. */
  readonly spec?: string;
  readonly cwd?: string;
  /** Show a progress bar while downloading (default: when stderr is a terminal). */
  readonly progress?: boolean;
  readonly write?: (text: string) => void;
}

/** `lockstep results`: download, analyse, print (table, --csv or --json), and optionally write the HTML report. */
export async function runResultsCommand(options: ResultsCommandOptions): Promise<Report> {
  const cwd = options.cwd ?? process.cwd();
  if (options.json && options.csv) throw new UsageError('Use one of --csv or --json');
  if (options.perNode && !options.json && !options.csv) throw new UsageError('`--per-node` prints rows for a script: add --csv (or --json)');
  const format: OutputFormat = options.json ? (options.perNode ? 'per-node-json' : 'json') : options.csv ? (options.perNode ? 'per-node-csv' : 'csv') : 'table';
  if (options.concurrency !== undefined && !(Number.isInteger(options.concurrency) && options.concurrency > 0)) {
    throw new UsageError(`Expected \`--concurrency\` to be a positive integer, got \`${options.concurrency}\``);
  }
  const analysis = options.spec ? analysisOfSpec(loadSpec(options.spec, { cwd }).spec) : undefined;
  const download = options.download !== false;
  let store: Store | undefined;
  try {
    // The store the run (or sweep) ran with, unless --store names one.
    store = download ? (await openRunStore(options.id, { store: options.store, cwd })).store : undefined;
    const request: ResultsOptions = {
      id: options.id,
      store,
      outDir: options.out ?? DEFAULT_RESULTS_DIR,
      cwd,
      download,
      concurrency: options.concurrency,
      analysis,
    };
    const showProgress = download && (options.progress ?? process.stderr.isTTY === true);
    const { report } = showProgress ? await withProgressBar(options.id, (onProgress) => collectResults({ ...request, onProgress })) : await collectResults(request);
    (options.write ?? ((text: string) => process.stdout.write(text)))(formatReport(report, format));
    if (options.html) {
      const file = resolve(cwd, options.html);
      await writeHtmlReport(report, file);
      if (format === 'table') process.stderr.write(`HTML report: ${file}\n`);
    }
    return report;
  } finally {
    await store?.dispose();
  }
}

/** A listr2 task on stderr whose title is a progress bar, so stdout stays clean for --csv/--json. */
async function withProgressBar<T>(id: string, work: (onProgress: (p: DownloadProgress) => void) => Promise<T>): Promise<T> {
  const { Listr, ListrLogger, ProcessOutput } = await import('listr2');
  const toStderr = () => new ProcessOutput(process.stderr, process.stderr);
  let result: T | undefined;
  const list = new Listr(
    [
      {
        title: `Download ${id}`,
        task: async (_, task) => {
          let shownAt = 0;
          result = await work((p) => {
            const now = Date.now();
            if (now - shownAt < 100 && p.filesDone < p.filesTotal) return;
            shownAt = now;
            task.title = `Download ${id} ${progressBar(p)}`;
          });
        },
      },
    ],
    {
      exitOnError: true,
      rendererOptions: { collapseErrors: false, logger: new ListrLogger({ processOutput: toStderr() }) },
      fallbackRendererOptions: { logger: new ListrLogger({ processOutput: toStderr() }) },
    },
  );
  await list.run();
  return result as T;
}

/** `[██████░░░░] 60% 12/20 files 3.1 MiB/5.0 MiB (4 up to date)`. */
export function progressBar(p: DownloadProgress, width = 20): string {
  const fraction = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.filesTotal > 0 ? p.filesDone / p.filesTotal : 1;
  const filled = Math.round(fraction * width);
  const skipped = p.skipped > 0 ? ` (${p.skipped} up to date)` : '';
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${Math.floor(fraction * 100)}% ${p.filesDone}/${p.filesTotal} files ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}${skipped}`;
}

export const resultsCommand = defineCommand({
  meta: {
    name: 'results',
    description: 'Download a run (or every run of a sweep), analyse it and print the figures and metrics',
  },
  args: {
    id: { type: 'positional', required: true, description: 'Run id or sweep id' },
    store: runStoreArg,
    out: { type: 'string', description: `Folder the runs are downloaded into (default ${DEFAULT_RESULTS_DIR})` },
    csv: { type: 'boolean', description: 'Print every number as CSV rows instead of the table' },
    json: { ...jsonArg, description: 'Print the report as JSON instead of the table' },
    'per-node': {
      type: 'boolean',
      description: 'With --csv: only the nodes\' values, as `run,repeat,rank,metric,value` rows (every metric, derived ones and per-node figures); with --json: the same rows',
    },
    html: { type: 'string', description: 'Also write a self-contained HTML report with charts to this file' },
    download: { type: 'boolean', default: true, description: 'Fetch what is missing or changed first', negativeDescription: 'Analyse what is already downloaded; fetch nothing' },
    concurrency: { type: 'string', description: 'Objects downloaded at the same time (default 16)' },
    spec: { type: 'string', description: 'Take `metrics` and `analysis` from this spec instead of the run’s own (re-analyse)' },
  },
  async run({ args }) {
    await runResultsCommand({
      id: args.id,
      store: args.store,
      out: args.out,
      csv: args.csv,
      json: args.json,
      perNode: args['per-node'],
      html: args.html,
      download: args.download,
      concurrency: args.concurrency === undefined ? undefined : Number(args.concurrency),
      spec: args.spec,
    });
  },
});

export default resultsCommand;
