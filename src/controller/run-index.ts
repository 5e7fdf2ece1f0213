/**
 * A small index of the runs and sweeps started from this machine, and the store each went to, so
 * that `status`, `logs`, `results` and `down` find a run without `--store`, and `ls` lists every
 * store lockstep knows. One file per entry under `$LOCKSTEP_HOME/index/` (runs started at the same
 * time never write the same file); the oldest entries are dropped beyond `MAX_ENTRIES`.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lockstepHome } from '../provider/local/state.ts';

export interface IndexEntry {
  readonly id: string;
  readonly kind: 'run' | 'sweep';
  readonly name: string;
  readonly createdAt: string;
  /** The store's locator, as the store reports it (absolute: `file:///…`, `s3://…`). */
  readonly store: string;
}

const MAX_ENTRIES = 500;

const indexDir = (home: string) => join(home, 'index');

/** Records a run or sweep; a failure to write the index never fails the run. */
export async function rememberRun(entry: IndexEntry, home: string = lockstepHome()): Promise<void> {
  try {
    const dir = indexDir(home);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${entry.id}.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify(entry) + '\n');
    await rename(tmp, join(dir, `${entry.id}.json`));
    const entries = await knownRuns(home);
    for (const old of entries.slice(MAX_ENTRIES)) await rm(join(dir, `${old.id}.json`), { force: true });
  } catch {
    // The index only saves typing --store.
  }
}

/** Every entry, newest first. */
export async function knownRuns(home: string = lockstepHome()): Promise<IndexEntry[]> {
  const dir = indexDir(home);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
  const entries = await Promise.all(
    names.map(async (name) => {
      try {
        return JSON.parse(await readFile(join(dir, name), 'utf8')) as IndexEntry;
      } catch {
        return undefined;
      }
    }),
  );
  return entries.filter((e): e is IndexEntry => e !== undefined).sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}

export async function findKnownRun(id: string, home: string = lockstepHome()): Promise<IndexEntry | undefined> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) return undefined;
  try {
    return JSON.parse(await readFile(join(indexDir(home), `${id}.json`), 'utf8')) as IndexEntry;
  } catch {
    return undefined;
  }
}
