/**
 * Where a run is: the store it ran with, found without `--store` from the stores lockstep knows
 * (the index of runs started here, `LOCKSTEP_STORE`, `.lockstep/store` in the working folder, the
 * bucket `lockstep aws bootstrap` configured).
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { layout } from '../core/layout.ts';
import { sweepLayout } from '../results/sweep-layout.ts';
import { DEFAULT_STORE, folderOf, openStore, storeFromEnv } from '../store/open.ts';
import { formatS3Locator, isS3Locator, parseS3Locator } from '../store/s3-locator.ts';
import { StoreError, type Store } from '../store/store.ts';
import { openReachableStore } from './reachable.ts';
import { findKnownRun, knownRuns } from './run-index.ts';
import { RunNotFoundError } from './status.ts';

export interface LocateOptions {
  /** A store named by the user (`--store`): only it is looked in. */
  readonly store?: string;
  readonly cwd?: string;
  /** Where the index lives (default `$LOCKSTEP_HOME` or `~/.lockstep`). */
  readonly home?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** A store named by the user, refused when it does not exist (a folder store is never created by reading it). */
export async function openExistingStore(locator: string, cwd?: string): Promise<Store> {
  if (!isS3Locator(locator)) {
    const store = await openStore(locator, { cwd });
    if (!existsSync(folderOf(locator, cwd))) {
      await store.dispose();
      throw new StoreError(`No store at ${folderOf(locator, cwd)}: the folder does not exist; check the locator (\`lockstep ls\` lists the runs of every store lockstep knows)`, locator);
    }
    return store;
  }
  return openReachableStore(locator, cwd);
}

/** One locator per store: folder paths as absolute `file://` URLs. */
export function canonicalLocator(locator: string, cwd?: string): string {
  if (!isS3Locator(locator)) return pathToFileURL(folderOf(locator, cwd)).href;
  try {
    return formatS3Locator(parseS3Locator(locator));
  } catch {
    return locator;
  }
}

/**
 * The stores lockstep knows, in the order a run is looked for: `LOCKSTEP_STORE`, `.lockstep/store`
 * here (when it exists), the bucket of `lockstep aws bootstrap`, then every store in the index.
 */
export async function knownStores(options: LocateOptions = {}): Promise<string[]> {
  const env = options.env ?? process.env;
  const stores: string[] = [];
  const fromEnv = storeFromEnv(env);
  if (fromEnv) stores.push(fromEnv);
  if (existsSync(folderOf(DEFAULT_STORE, options.cwd))) stores.push(DEFAULT_STORE);
  const aws = await configuredAwsStore();
  if (aws) stores.push(aws);
  for (const entry of await knownRuns(options.home)) stores.push(entry.store);
  return unique(stores, options.cwd);
}

/**
 * Opens the store that holds the run or sweep `id`: `--store` if given, else the store the index
 * recorded for it, else the first known store that has it. A store that cannot be reached is
 * passed over (and named if the id is found nowhere).
 */
export async function openRunStore(id: string, options: LocateOptions = {}): Promise<{ store: Store; kind: 'run' | 'sweep' }> {
  if (options.store !== undefined) {
    const store = await openExistingStore(options.store, options.cwd);
    const kind = await kindOf(store, id).catch(async (error) => {
      await store.dispose();
      throw error;
    });
    if (kind) return { store, kind };
    await store.dispose();
    throw new RunNotFoundError(id, store.locator);
  }
  const indexed = await findKnownRun(id, options.home);
  const candidates = unique([...(indexed ? [indexed.store] : []), ...(await knownStores(options))], options.cwd);
  const unreachable: string[] = [];
  const looked: string[] = [];
  for (const locator of candidates) {
    // A folder store removed since (a test's, a project deleted) holds no run: not worth naming.
    if (!isS3Locator(locator) && !existsSync(folderOf(locator, options.cwd))) continue;
    looked.push(locator);
    let store: Store | undefined;
    try {
      store = await openExistingStore(locator, options.cwd);
      const kind = await kindOf(store, id);
      if (kind) return { store, kind };
    } catch {
      unreachable.push(locator);
    }
    await store?.dispose();
  }
  const where = looked.length === 0 ? canonicalLocator(DEFAULT_STORE, options.cwd) : looked.length === 1 ? looked[0]! : `the ${looked.length} stores lockstep knows (${fewOf(looked)})`;
  throw new RunNotFoundError(id, unreachable.length > 0 ? `${where}; could not reach ${fewOf(unreachable)}` : where);
}

/** The first few of a list, and how many more: an error stays one readable line. */
function fewOf(items: readonly string[], shown = 3): string {
  return items.length <= shown ? items.join(', ') : `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;
}

async function kindOf(store: Store, id: string): Promise<'run' | 'sweep' | undefined> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) return undefined;
  if ((await store.get(layout.manifest(id))) !== undefined) return 'run';
  if ((await store.get(sweepLayout.sweep(id))) !== undefined) return 'sweep';
  return undefined;
}

/** The store `lockstep aws bootstrap` configured, if it was run here (reads a small file; no AWS SDK). */
async function configuredAwsStore(): Promise<string | undefined> {
  try {
    const { defaultAwsStore } = await import('../provider/aws/config.ts');
    return await defaultAwsStore();
  } catch {
    return undefined;
  }
}

function unique(locators: readonly string[], cwd?: string): string[] {
  const seen = new Map<string, string>();
  for (const locator of locators) {
    const key = canonicalLocator(locator, cwd);
    if (!seen.has(key)) seen.set(key, key);
  }
  return [...seen.values()];
}
