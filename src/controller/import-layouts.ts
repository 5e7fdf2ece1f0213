import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { nodeFiles } from '../core/layout.ts';
import type { RunManifest } from '../core/manifest.ts';
import { INDEX_FILE, runKeyOf } from '../results/download.ts';
import type { ParamValue } from '../spec/schema.ts';

/**
 * The folder layouts `lockstep import` reads, each turned into the files of one run (their keys
 * below `runs/<runId>/`) and what the run's manifest says: name, N, repeats, params.
 *
 * - `seed`: the seed framework's `GroupSize<g>-ExpId<id>-<date>-atSize<k>/` with `configuration.txt`
 *   (`key: value` lines) and `Repeat<r>/logs/stdout/<i>.log` (node i is rank i; N is the number of logs).
 * - `lockstep`: a run folder downloaded by `lockstep results` (`manifest.json`, `repeat-<r>/rank-<k>/…`).
 */

export type ImportLayout = 'seed' | 'lockstep';

export interface ImportFile {
  /** Absolute path. */
  readonly path: string;
  /** Key below `runs/<runId>/`. */
  readonly key: string;
  readonly size: number;
}

export interface FolderPlan {
  /** Absolute path of the folder. */
  readonly folder: string;
  /** The folder as the user gave it. */
  readonly shown: string;
  readonly layout: ImportLayout;
  readonly name: string;
  readonly instances: number;
  readonly repeats: number;
  readonly params: Readonly<Record<string, ParamValue>>;
  /** `lockstep` layout: the run's own manifest (the run keeps its id). */
  readonly manifest?: RunManifest;
  /** Every file to upload, in key order. */
  readonly files: readonly ImportFile[];
}

/** A folder that cannot be imported: one line naming the folder, the problem and the fix (exit 2). */
export class ImportError extends Error {
  override readonly name = 'ImportError';
  readonly exitCode = 2;
  constructor(
    readonly folder: string,
    readonly problem: string,
  ) {
    super(`${folder}: ${problem}`);
  }
}

/** `GroupSize17-ExpIdcorrupted-0428-atSize38`. */
const SEED_FOLDER = /^GroupSize(\d+)-ExpId(.+)-(\d+)-atSize(\d+)$/;
const SEED_REPEAT = /^Repeat(\d+)$/;
const SEED_LOG = /^(\d+)\.log$/;
const CONFIGURATION = 'configuration.txt';

/** Reads a folder in one of the known layouts; throws `ImportError` for anything else. */
export async function planFolder(shown: string, cwd: string): Promise<FolderPlan> {
  const folder = resolve(cwd, shown);
  if (!existsSync(folder)) throw new ImportError(shown, 'No such folder: check the path');
  if (!statSync(folder).isDirectory()) throw new ImportError(shown, 'Not a folder: give the folder of an experiment (or of a downloaded run)');
  if (existsSync(join(folder, 'manifest.json'))) return planLockstepFolder(folder, shown);
  const entries = await readdir(folder);
  if (existsSync(join(folder, CONFIGURATION)) || entries.some((name) => SEED_REPEAT.test(name))) return planSeedFolder(folder, shown, entries);
  throw new ImportError(
    shown,
    'Not a layout lockstep can import: expected the seed\'s (`configuration.txt` and `Repeat<r>/logs/stdout/<i>.log`) or a run downloaded by `lockstep results` (`manifest.json`)',
  );
}

async function planSeedFolder(folder: string, shown: string, entries: readonly string[]): Promise<FolderPlan> {
  // The configuration's params first, then those only the folder's name gives.
  const params: Record<string, ParamValue> = {};
  const files: ImportFile[] = [];
  if (entries.includes(CONFIGURATION)) {
    const path = join(folder, CONFIGURATION);
    Object.assign(params, parseConfiguration(readFileSync(path, 'utf8'), `${shown}/${CONFIGURATION}`));
    files.push({ path, key: `source/${CONFIGURATION}`, size: statSync(path).size });
  }
  const named = SEED_FOLDER.exec(basename(folder));
  if (named) {
    params.groupSize ??= Number(named[1]);
    params.expId ??= named[2]!;
    params.date ??= named[3]!;
    params.atSize ??= Number(named[4]);
  }

  const repeats = entries.flatMap((name) => {
    const match = SEED_REPEAT.exec(name);
    return match ? [{ name, repeat: Number(match[1]) }] : [];
  });
  if (repeats.length === 0) throw new ImportError(shown, `No \`Repeat<r>\` folder: the seed's layout keeps each repeat's logs in \`Repeat<r>/logs/stdout/<i>.log\``);
  let instances = 0;
  for (const { name, repeat } of repeats.sort((a, b) => a.repeat - b.repeat)) {
    if (repeat < 1) throw new ImportError(`${shown}/${name}`, 'Repeats are numbered from 1');
    const stdoutDir = join(folder, name, 'logs', 'stdout');
    if (!existsSync(stdoutDir)) throw new ImportError(`${shown}/${name}`, 'No `logs/stdout/` folder: the seed\'s layout keeps the logs in `Repeat<r>/logs/stdout/<i>.log`');
    const logs = await nodeLogs(stdoutDir, `${shown}/${name}/logs/stdout`);
    if (logs.length === 0) throw new ImportError(`${shown}/${name}/logs/stdout`, 'No `<i>.log` file: nothing to import for this repeat');
    instances = Math.max(instances, logs.length);
    for (const { rank, path } of logs) files.push({ path, key: `repeats/${repeat}/nodes/${rank}/${nodeFiles.stdout}`, size: statSync(path).size });
    const stderrDir = join(folder, name, 'logs', 'stderr');
    if (existsSync(stderrDir)) {
      for (const { rank, path } of await nodeLogs(stderrDir, `${shown}/${name}/logs/stderr`)) {
        files.push({ path, key: `repeats/${repeat}/nodes/${rank}/${nodeFiles.stderr}`, size: statSync(path).size });
      }
    }
  }
  return {
    folder,
    shown,
    layout: 'seed',
    name: basename(folder).replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'imported',
    instances,
    repeats: Math.max(...repeats.map((r) => r.repeat)),
    params,
    files: files.sort((a, b) => (a.key < b.key ? -1 : 1)),
  };
}

/** The `<i>.log` files of a folder, by rank; anything else but hidden files is refused. */
async function nodeLogs(dir: string, shown: string): Promise<Array<{ rank: number; path: string }>> {
  const logs: Array<{ rank: number; path: string }> = [];
  for (const name of await readdir(dir)) {
    if (name.startsWith('.')) continue;
    const match = SEED_LOG.exec(name);
    if (!match) throw new ImportError(`${shown}/${name}`, 'Expected a node log named `<rank>.log` (0.log, 1.log, …): move other files out of this folder');
    logs.push({ rank: Number(match[1]), path: join(dir, name) });
  }
  return logs.sort((a, b) => a.rank - b.rank);
}

/** `key: value` lines; a value that reads as a number (without a leading zero) or a boolean becomes one. */
export function parseConfiguration(text: string, shown: string): Record<string, ParamValue> {
  const params: Record<string, ParamValue> = {};
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ImportError(`${shown}:${index + 1}`, `Expected a \`key: value\` line, got \`${line.trim()}\``);
    const key = line.slice(0, colon).trim().replace(/[^A-Za-z0-9_]+/g, '_').replace(/^(?=\d)/, '_');
    params[key] = scalar(line.slice(colon + 1).trim());
  });
  return params;
}

function scalar(text: string): ParamValue {
  if (/^-?(?:0|[1-9]\d*)(?:\.\d+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}

async function planLockstepFolder(folder: string, shown: string): Promise<FolderPlan> {
  let manifest: RunManifest;
  try {
    manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as RunManifest;
  } catch (error) {
    throw new ImportError(`${shown}/manifest.json`, `Not a run manifest (${(error as Error).message}): download the run again with \`lockstep results\``);
  }
  if (manifest?.formatVersion !== 1 || typeof manifest.runId !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(manifest.runId)) {
    throw new ImportError(`${shown}/manifest.json`, 'Not a run manifest of this lockstep (formatVersion 1 with a runId): download the run again with `lockstep results`');
  }
  const files: ImportFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && entry.name !== INDEX_FILE && !entry.name.endsWith('.partial')) {
        const local = relative(folder, path).split('\\').join('/');
        files.push({ path, key: runKeyOf(local), size: statSync(path).size });
      }
    }
  };
  await walk(folder);
  return {
    folder,
    shown,
    layout: 'lockstep',
    name: manifest.name,
    instances: manifest.instances,
    repeats: manifest.repeats,
    params: manifest.params ?? {},
    manifest,
    files: files.sort((a, b) => (a.key < b.key ? -1 : 1)),
  };
}
