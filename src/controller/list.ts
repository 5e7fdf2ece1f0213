/** `lockstep ls`: the runs and sweeps of every store lockstep knows (or of one), saying which store holds each. */
import type { RunManifest } from '../core/manifest.ts';
import { listSweeps, type SweepRecord } from '../results/sweep-layout.ts';
import { isS3Locator } from '../store/s3-locator.ts';
import type { Store } from '../store/store.ts';
import { knownStores, openExistingStore, type LocateOptions } from './locate.ts';
import { listRuns } from './status.ts';

export interface ListedRun {
  readonly kind: 'run';
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  readonly store: string;
  readonly provider: string;
  readonly instances: number;
  readonly repeats: number;
  /** The sweep this run is a point of, and which point (from 1). */
  readonly sweep?: { readonly id: string; readonly point: number };
}

export interface ListedSweep {
  readonly kind: 'sweep';
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  readonly store: string;
  readonly points: number;
  /** Points whose run has started. */
  readonly started: number;
}

export interface Listing {
  /** Newest first. */
  readonly items: ReadonlyArray<ListedRun | ListedSweep>;
  /** Every store looked in. */
  readonly stores: readonly string[];
  /** Stores that could not be read, with why. */
  readonly unreadable: ReadonlyArray<{ readonly store: string; readonly reason: string }>;
}

/**
 * With `store`, that store's runs and sweeps (a store that does not exist is refused); without,
 * those of every store lockstep knows, passing over folders that are gone and naming the stores
 * that could not be read.
 */
export async function listKnown(options: LocateOptions = {}): Promise<Listing> {
  if (options.store !== undefined) {
    const store = await openExistingStore(options.store, options.cwd);
    try {
      return { items: await listStore(store), stores: [store.locator], unreadable: [] };
    } finally {
      await store.dispose();
    }
  }
  const items: Array<ListedRun | ListedSweep> = [];
  const stores: string[] = [];
  const unreadable: Array<{ store: string; reason: string }> = [];
  for (const locator of await knownStores(options)) {
    let store: Store | undefined;
    try {
      store = await openExistingStore(locator, options.cwd);
      items.push(...(await listStore(store)));
      stores.push(store.locator);
    } catch (error) {
      // A folder store that is gone is simply no longer known.
      if (isS3Locator(locator)) unreadable.push({ store: locator, reason: ((error as Error).message ?? String(error)).split('\n')[0]! });
    } finally {
      await store?.dispose();
    }
  }
  items.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  return { items, stores, unreadable };
}

async function listStore(store: Store): Promise<Array<ListedRun | ListedSweep>> {
  const [runs, sweeps] = await Promise.all([listRuns(store), listSweeps(store)]);
  const pointOf = new Map<string, { id: string; point: number }>();
  for (const sweep of sweeps) for (const p of sweep.points) if (p.runId) pointOf.set(p.runId, { id: sweep.sweepId, point: p.index + 1 });
  return [...sweeps.map((s) => listedSweep(s, store.locator)), ...runs.map((m) => listedRun(m, store.locator, pointOf.get(m.runId)))];
}

function listedRun(m: RunManifest, store: string, sweep?: { id: string; point: number }): ListedRun {
  return { kind: 'run', id: m.runId, name: m.name, createdAt: m.createdAt, store, provider: m.provider, instances: m.instances, repeats: m.repeats, ...(sweep ? { sweep } : {}) };
}

function listedSweep(s: SweepRecord, store: string): ListedSweep {
  return { kind: 'sweep', id: s.sweepId, name: s.name, createdAt: s.createdAt, store, points: s.points.length, started: s.points.filter((p) => p.runId).length };
}
