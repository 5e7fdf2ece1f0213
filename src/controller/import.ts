import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { layout } from '../core/layout.ts';
import type { RunManifest } from '../core/manifest.ts';
import { pointLabel } from '../results/matrix.ts';
import { eachLimited } from '../util/pool.ts';
import { readSweepRecord, writeSweepRecord, type SweepPoint, type SweepRecord } from '../results/sweep-layout.ts';
import type { Matrix, MatrixValue } from '../spec/matrix.ts';
import { getJson, putJson, type Store } from '../store/store.ts';
import { planFolder, type FolderPlan, type ImportLayout } from './import-layouts.ts';
import { newRunId } from './run-id.ts';
import { rememberRun } from './run-index.ts';

/**
 * `lockstep import`: folders of existing results become runs in a store, so that `ls`, `status`,
 * `results` and `--spec` re-analysis treat them like any other run. Several folders make a sweep
 * whose points are the folders' params. A folder imports once (by the digest of its files), and a
 * call imports all its folders or none.
 */

/** Where imports are remembered in the store, beside `runs/` and `sweeps/`. */
export const importLayout = {
  run: (digest: string) => `imports/${digest}.json`,
  sweep: (digest: string) => `imports/sweeps/${digest}.json`,
} as const;

interface ImportIndex {
  readonly formatVersion: 1;
  readonly runId?: string;
  readonly sweepId?: string;
  readonly folder?: string;
  readonly at: string;
}

export interface ImportProgress {
  readonly folder: string;
  readonly filesDone: number;
  readonly filesTotal: number;
}

export interface ImportOptions {
  readonly store: Store;
  /** Folders as the user gave them (relative to `cwd`). */
  readonly folders: readonly string[];
  readonly cwd?: string;
  /** Spec text recorded in each imported run, whose `metrics` and `analysis` `results` then uses. */
  readonly specSource?: string;
  /** Name of the sweep (several folders); default `import`. */
  readonly sweepName?: string;
  /** Files uploaded at the same time; default 16. */
  readonly concurrency?: number;
  readonly onProgress?: (progress: ImportProgress) => void;
  readonly now?: () => Date;
  /** Where the index of known runs lives (default `$LOCKSTEP_HOME` or `~/.lockstep`). */
  readonly home?: string;
}

export interface ImportedRun {
  readonly runId: string;
  /** The folder as given. */
  readonly folder: string;
  readonly layout: ImportLayout;
  /** False: the store already held this folder's run (nothing was written). */
  readonly created: boolean;
}

export interface ImportOutcome {
  readonly runs: readonly ImportedRun[];
  /** Several folders: the sweep whose points they are. */
  readonly sweep?: { readonly sweepId: string; readonly created: boolean; readonly keys: readonly string[] };
}

export async function importFolders(options: ImportOptions): Promise<ImportOutcome> {
  const { store } = options;
  const cwd = options.cwd ?? process.cwd();
  const now = options.now ?? (() => new Date());

  // Read every folder first: a bad one is refused before anything is written.
  const plans: FolderPlan[] = [];
  for (const folder of options.folders) {
    const plan = await planFolder(folder, cwd);
    if (!plans.some((p) => p.folder === plan.folder)) plans.push(plan);
  }

  const runs: ImportedRun[] = [];
  const created: string[] = [];
  const byDigest = new Map<string, string>();
  try {
    for (const plan of plans) {
      const digest = await digestOf(plan);
      const known = byDigest.get(digest) ?? (await existingRun(store, plan, digest));
      if (known) {
        runs.push({ runId: known, folder: plan.shown, layout: plan.layout, created: false });
        byDigest.set(digest, known);
        continue;
      }
      const runId = plan.manifest?.runId ?? newRunId(plan.name, now());
      created.push(runId);
      await uploadRun(store, plan, runId, digest, options, now());
      byDigest.set(digest, runId);
      runs.push({ runId, folder: plan.shown, layout: plan.layout, created: true });
    }
    const distinct = [...new Set(runs.map((r) => r.runId))];
    const sweep = distinct.length < 2 ? undefined : await recordSweep(store, distinct, options, now());
    // So that `results`, `status` and `ls` find them without --store.
    for (const runId of distinct) {
      const plan = plans[runs.findIndex((r) => r.runId === runId)]!;
      await rememberRun({ id: runId, kind: 'run', name: plan.name, createdAt: now().toISOString(), store: store.locator }, options.home);
    }
    if (sweep) await rememberRun({ id: sweep.sweepId, kind: 'sweep', name: options.sweepName ?? 'import', createdAt: now().toISOString(), store: store.locator }, options.home);
    return sweep ? { runs, sweep } : { runs };
  } catch (error) {
    // All or nothing: the runs this call wrote go again.
    for (const runId of created) await removeRun(store, runId).catch(() => {});
    throw error;
  }
}

/** sha256 over every file's key, size and content: the same folder (or a copy of it) has the same digest. */
async function digestOf(plan: FolderPlan): Promise<string> {
  const whole = createHash('sha256').update(`${plan.layout}\n`);
  for (const file of plan.files) {
    const content = createHash('sha256');
    for await (const chunk of createReadStream(file.path)) content.update(chunk as Buffer);
    whole.update(`${file.key}\0${file.size}\0${content.digest('hex')}\n`);
  }
  return whole.digest('hex');
}

/** The run this folder already is in the store, if it is there. */
async function existingRun(store: Store, plan: FolderPlan, digest: string): Promise<string | undefined> {
  const index = await getJson<ImportIndex>(store, importLayout.run(digest));
  if (index?.runId && (await store.get(layout.manifest(index.runId))) !== undefined) return index.runId;
  if (plan.manifest && (await store.get(layout.manifest(plan.manifest.runId))) !== undefined) return plan.manifest.runId;
  return undefined;
}

async function uploadRun(store: Store, plan: FolderPlan, runId: string, digest: string, options: ImportOptions, at: Date): Promise<void> {
  const prefix = layout.run(runId);
  // The manifest goes last: until it is there, `ls` and `results` do not see the run.
  const files = plan.files.filter((f) => f.key !== 'manifest.json');
  let done = 0;
  options.onProgress?.({ folder: plan.shown, filesDone: 0, filesTotal: files.length });
  await eachLimited(files, options.concurrency ?? 16, async (file) => {
    await store.putFile(prefix + file.key, file.path);
    options.onProgress?.({ folder: plan.shown, filesDone: ++done, filesTotal: files.length });
  });

  const imported = { from: plan.folder, layout: plan.layout, at: at.toISOString(), digest };
  const manifest: RunManifest = plan.manifest
    ? { ...plan.manifest, imported, ...(options.specSource !== undefined ? { specSource: options.specSource } : {}) }
    : {
        formatVersion: 1,
        runId,
        name: plan.name,
        createdAt: at.toISOString(),
        instances: plan.instances,
        minInstances: plan.instances,
        repeats: plan.repeats,
        run: '',
        params: plan.params,
        groups: [],
        collect: [],
        startDelayMs: 0,
        timeouts: { barrierMs: 0, setupMs: 0, runMs: 0, instanceMs: 0 },
        expiresAt: at.toISOString(),
        terminateWhenDone: true,
        provider: 'import',
        specSource: options.specSource ?? '',
        imported,
      };
  await putJson(store, layout.manifest(runId), manifest);
  await putJson(store, importLayout.run(digest), { formatVersion: 1, runId, folder: plan.folder, at: at.toISOString() } satisfies ImportIndex);
}

async function removeRun(store: Store, runId: string): Promise<void> {
  const manifest = await getJson<RunManifest>(store, layout.manifest(runId));
  await store.delete(layout.manifest(runId));
  for (const object of await store.list(layout.run(runId))) await store.delete(object.key);
  if (manifest?.imported) await store.delete(importLayout.run(manifest.imported.digest));
}

/**
 * A sweep over the runs: its keys are `instances` and the params whose values differ between the
 * runs (`name` too when two runs would otherwise be the same point). The same set of runs is one sweep.
 */
async function recordSweep(store: Store, runIds: readonly string[], options: ImportOptions, at: Date): Promise<NonNullable<ImportOutcome['sweep']>> {
  const digest = createHash('sha256').update([...runIds].sort().join('\n')).digest('hex');
  const index = await getJson<ImportIndex>(store, importLayout.sweep(digest));
  const manifests = await Promise.all(runIds.map((runId) => getJson<RunManifest>(store, layout.manifest(runId))));
  const pointValues = manifests.map((m) => pointOf(m!));
  const keys = distinguishingKeys(pointValues, manifests.map((m) => m!.name));
  if (index?.sweepId) {
    const existing = await readSweepRecord(store, index.sweepId);
    if (existing) return { sweepId: existing.sweepId, created: false, keys: Object.keys(existing.matrix) };
  }
  const values = pointValues.map((all, i) => Object.fromEntries(keys.map((key) => [key, key === 'name' ? manifests[i]!.name : all[key]!])));
  const matrix: Matrix = Object.fromEntries(keys.map((key) => [key, sortValues([...new Set(values.map((v) => v[key]!))])]));
  const points: SweepPoint[] = values.map((v, index) => ({
    index,
    values: v,
    overrides: Object.entries(v).map(([key, value]) => `${key}=${JSON.stringify(value)}`),
    runId: runIds[index]!,
  }));
  const name = options.sweepName ?? 'import';
  const sweepId = newRunId(`${name}-sweep`, at);
  const record: SweepRecord = { formatVersion: 1, sweepId, name, createdAt: at.toISOString(), matrix, points };
  await writeSweepRecord(store, record);
  await putJson(store, importLayout.sweep(digest), { formatVersion: 1, sweepId, at: at.toISOString() } satisfies ImportIndex);
  return { sweepId, created: true, keys };
}

/** `instances` and every param, as sweep keys (`params.<name>`). */
function pointOf(manifest: RunManifest): Record<string, MatrixValue> {
  return { instances: manifest.instances, ...Object.fromEntries(Object.entries(manifest.params ?? {}).map(([k, v]) => [`params.${k}`, v])) };
}

/** The keys whose values differ between points; `name` added when that leaves two points alike. */
function distinguishingKeys(points: ReadonlyArray<Record<string, MatrixValue>>, names: readonly string[]): string[] {
  const all = [...new Set(points.flatMap((p) => Object.keys(p)))];
  const keys = all.filter((key) => points.every((p) => key in p) && new Set(points.map((p) => JSON.stringify(p[key]))).size > 1);
  const labels = points.map((p) => pointLabel(Object.fromEntries(keys.map((k) => [k, p[k]!]))));
  if (new Set(labels).size < points.length && new Set(names).size > new Set(labels).size) keys.push('name');
  return keys;
}

function sortValues(values: MatrixValue[]): MatrixValue[] {
  return values.sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b))));
}
