import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { layout } from '../core/layout.ts';
import type { ObjectInfo, Store } from '../store/store.ts';
import { DownloadError, ResultsNotFoundError } from './errors.ts';
import { forEachLimited } from '../util/pool.ts';

/** Default folder (relative to the working folder) that runs are downloaded into. */
export const DEFAULT_RESULTS_DIR = 'lockstep-results';
/** The small file in each downloaded run folder that remembers what was fetched, for resuming. */
export const INDEX_FILE = '.lockstep-download.json';

export interface DownloadProgress {
  /** Objects handled so far (fetched or already up to date), of `filesTotal`. */
  readonly filesDone: number;
  readonly filesTotal: number;
  /** Bytes of the objects handled so far, of `bytesTotal`. */
  readonly bytesDone: number;
  readonly bytesTotal: number;
  /** Objects fetched so far in this call. */
  readonly fetched: number;
  /** Objects found up to date locally (not fetched). */
  readonly skipped: number;
  /** The object just handled, if any. */
  readonly key?: string;
}

export interface DownloadOptions {
  readonly store: Store;
  readonly runIds: readonly string[];
  /** Folder that gets one sub-folder per run; default `lockstep-results` below `cwd`. */
  readonly outDir?: string;
  readonly cwd?: string;
  /** Objects fetched at the same time; default 16. */
  readonly concurrency?: number;
  /** Called after the listing and after each object. */
  readonly onProgress?: (progress: DownloadProgress) => void;
}

export interface DownloadResult {
  /** Absolute folder of each run, in the order asked. */
  readonly runs: ReadonlyArray<{ readonly runId: string; readonly dir: string }>;
  readonly fetched: number;
  readonly skipped: number;
  readonly bytesFetched: number;
}

interface IndexEntry {
  readonly size: number;
  readonly etag?: string;
  readonly lastModified?: string;
}

interface DownloadIndex {
  formatVersion: 1;
  store: string;
  objects: Record<string, IndexEntry>;
}

/** Absolute folder of a downloaded run. */
export function runDir(outDir: string, runId: string): string {
  return join(outDir, runId);
}

/**
 * Where an object of a run lands, relative to the run's folder:
 * `repeats/<r>/nodes/<k>/x` → `repeat-<r>/rank-<k>/x`, `repeats/<r>/x` → `repeat-<r>/x`, the rest as is.
 */
export function localPathOf(runId: string, key: string): string {
  const rest = key.slice(layout.run(runId).length);
  const node = /^repeats\/(\d+)\/nodes\/(\d+)\/(.+)$/.exec(rest);
  if (node) return `repeat-${node[1]}/rank-${node[2]}/${node[3]}`;
  const repeat = /^repeats\/(\d+)\/(.+)$/.exec(rest);
  if (repeat) return `repeat-${repeat[1]}/${repeat[2]}`;
  return rest;
}

/** The inverse of `localPathOf`: the key (relative to `runs/<runId>/`) of a file of a downloaded run. */
export function runKeyOf(localPath: string): string {
  const node = /^repeat-(\d+)\/rank-(\d+)\/(.+)$/.exec(localPath);
  if (node) return `repeats/${node[1]}/nodes/${node[2]}/${node[3]}`;
  const repeat = /^repeat-(\d+)\/(.+)$/.exec(localPath);
  if (repeat) return `repeats/${repeat[1]}/${repeat[2]}`;
  return localPath;
}

/**
 * Downloads every object of the given runs into `<outDir>/<runId>/`, at most `concurrency` at a
 * time, skipping objects already fetched and unchanged (same size, and same etag or last-modified
 * time as recorded in the run's index file, and a local file of that size). Works with any Store.
 */
export async function downloadRuns(options: DownloadOptions): Promise<DownloadResult> {
  const { store } = options;
  const outDir = resolve(options.cwd ?? process.cwd(), options.outDir ?? DEFAULT_RESULTS_DIR);
  const concurrency = options.concurrency ?? 16;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Expected \`concurrency\` to be a positive integer, got \`${concurrency}\``);
  }

  interface Job {
    readonly runId: string;
    readonly object: ObjectInfo;
    readonly path: string;
  }
  const jobs: Job[] = [];
  const indexes = new Map<string, DownloadIndex>();
  let skipped = 0;
  let bytesDone = 0;
  let bytesTotal = 0;
  for (const runId of options.runIds) {
    const objects = await store.list(layout.run(runId));
    if (!objects.some((o) => o.key === layout.manifest(runId))) throw new ResultsNotFoundError(runId, store.locator);
    const dir = runDir(outDir, runId);
    const index = await readIndex(dir, store.locator);
    indexes.set(runId, index);
    for (const object of objects) {
      if (object.key.endsWith('.partial')) continue;
      const path = join(dir, ...localPathOf(runId, object.key).split('/'));
      bytesTotal += object.size;
      if (await upToDate(index.objects[object.key], object, path)) {
        skipped++;
        bytesDone += object.size;
      } else {
        jobs.push({ runId, object, path });
      }
    }
  }

  let filesDone = skipped;
  let fetched = 0;
  let bytesFetched = 0;
  const filesTotal = filesDone + jobs.length;
  const report = (key?: string) =>
    options.onProgress?.({ filesDone, filesTotal, bytesDone, bytesTotal, fetched, skipped, key });
  report();

  let unsaved = 0;
  const save = async () => {
    unsaved = 0;
    await Promise.all([...indexes].map(([runId, index]) => writeIndex(runDir(outDir, runId), index)));
  };
  let failures: Array<{ item: Job; error: unknown }> = [];
  try {
    failures = await forEachLimited(jobs, concurrency, async ({ runId, object, path }) => {
      await mkdir(dirname(path), { recursive: true });
      const partial = `${path}.${randomBytes(4).toString('hex')}.partial`;
      const index = indexes.get(runId)!;
      try {
        // An empty object (a done marker, an empty log) is all in the listing: no GET for it.
        if (object.size === 0 ? (await writeFile(partial, ''), true) : await store.getFile(object.key, partial)) {
          await rename(partial, path);
          index.objects[object.key] = entryOf(object);
          fetched++;
          bytesFetched += object.size;
        } else {
          delete index.objects[object.key];
        }
      } finally {
        await rm(partial, { force: true });
      }
      filesDone++;
      bytesDone += object.size;
      report(object.key);
      if (++unsaved >= 200) await save();
    });
  } finally {
    await save();
  }
  if (failures.length > 0) {
    throw new DownloadError(failures[0]!.item.object.key, failures.length, { cause: failures[0]!.error });
  }
  return {
    runs: options.runIds.map((runId) => ({ runId, dir: runDir(outDir, runId) })),
    fetched,
    skipped,
    bytesFetched,
  };
}

function entryOf(object: ObjectInfo): IndexEntry {
  return { size: object.size, etag: object.etag, lastModified: object.lastModified?.toISOString() };
}

async function upToDate(entry: IndexEntry | undefined, object: ObjectInfo, path: string): Promise<boolean> {
  if (!entry || entry.size !== object.size) return false;
  if (object.etag !== undefined || entry.etag !== undefined) {
    if (entry.etag !== object.etag) return false;
  } else if (entry.lastModified !== object.lastModified?.toISOString()) {
    return false;
  }
  const local = await stat(path).catch(() => undefined);
  return local?.isFile() === true && local.size === object.size;
}

async function readIndex(dir: string, locator: string): Promise<DownloadIndex> {
  try {
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as DownloadIndex;
    // Objects of another store are not the same objects, whatever their size.
    if (index.formatVersion === 1 && index.store === locator && index.objects) return index;
  } catch {
    // No index, or an unreadable one: fetch everything again.
  }
  return { formatVersion: 1, store: locator, objects: {} };
}

async function writeIndex(dir: string, index: DownloadIndex): Promise<void> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, INDEX_FILE);
  const partial = `${path}.${randomBytes(4).toString('hex')}.partial`;
  await writeFile(partial, JSON.stringify(index) + '\n');
  await rename(partial, path);
}
