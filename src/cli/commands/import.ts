import { defineCommand } from 'citty';
import { importFolders, type ImportOutcome } from '../../controller/import.ts';
import { loadSpec } from '../../spec/load.ts';
import { DEFAULT_STORE, openStore, storeFromEnv } from '../../store/open.ts';
import { UsageError } from '../errors.ts';
import { jsonArg, storeArg } from '../shared-args.ts';

export interface ImportCommandOptions {
  readonly folders: readonly string[];
  readonly store?: string;
  readonly json?: boolean;
  /** A spec whose `metrics` and `analysis` the imported runs record. */
  readonly spec?: string;
  readonly cwd?: string;
  readonly write?: (text: string) => void;
  readonly note?: (text: string) => void;
}

/**
 * `lockstep import`: prints one line per run, `<runId><TAB><folder>` (or the outcome as JSON);
 * what was already there and the sweep go to stderr.
 */
export async function runImportCommand(options: ImportCommandOptions): Promise<ImportOutcome> {
  const cwd = options.cwd ?? process.cwd();
  const write = options.write ?? ((text: string) => process.stdout.write(text));
  const note = options.note ?? ((text: string) => process.stderr.write(text));
  if (options.folders.length === 0) throw new UsageError('Name at least one folder: `lockstep import <folder>…`');
  const loaded = options.spec ? loadSpec(options.spec, { cwd }) : undefined;
  // The store runs go to: --store, else $LOCKSTEP_STORE, else the spec's, else .lockstep/store.
  const store = await openStore(options.store ?? storeFromEnv() ?? loaded?.spec.store ?? DEFAULT_STORE, { cwd });
  try {
    const showProgress = !options.json && process.stderr.isTTY === true;
    const outcome = await importFolders({
      store,
      folders: options.folders,
      cwd,
      specSource: loaded?.source,
      sweepName: loaded?.spec.name,
      onProgress: showProgress
        ? (p) => process.stderr.write(`\r\x1b[2KImporting ${p.folder}: ${p.filesDone}/${p.filesTotal} files${p.filesDone === p.filesTotal ? '\n' : ''}`)
        : undefined,
    });
    if (options.json) {
      write(JSON.stringify({ store: store.locator, ...outcome }, null, 2) + '\n');
      return outcome;
    }
    for (const run of outcome.runs) {
      write(`${run.runId}\t${run.folder}\n`);
      if (!run.created) note(`${run.folder}: already imported as ${run.runId}; nothing written\n`);
    }
    if (outcome.sweep) {
      const how = outcome.sweep.created ? 'Sweep' : 'Already a sweep:';
      note(`${how} ${outcome.sweep.sweepId} (${outcome.runs.length} folders, by ${outcome.sweep.keys.join(', ') || 'folder'}): lockstep results ${outcome.sweep.sweepId}\n`);
    }
    return outcome;
  } finally {
    await store.dispose();
  }
}

export default defineCommand({
  meta: {
    name: 'import',
    description:
      "Bring existing results into a store as runs: the seed's folders (GroupSize…/Repeat<r>/logs/stdout/<i>.log) or runs downloaded by `lockstep results`; several folders make a sweep",
  },
  args: {
    folders: { type: 'positional', required: true, valueHint: 'folder...', description: 'Folders to import, each one run' },
    store: { ...storeArg, description: 'Store the runs go to (default: $LOCKSTEP_STORE, else the --spec’s `store`, else .lockstep/store)' },
    spec: { type: 'string', valueHint: 'spec.yaml', description: 'Record this spec’s `metrics` and `analysis` in the runs, so that `lockstep results` uses them' },
    json: { ...jsonArg, description: 'Print the runs (and the sweep) as JSON instead of `<runId><TAB><folder>` lines' },
  },
  async run({ args }) {
    await runImportCommand({ folders: args._.map(String), store: args.store, spec: args.spec, json: args.json });
  },
});
