import { layout, nodeFiles } from '../core/layout.ts';
import { agentEnded, HEARTBEAT_STALE_MS, type AbortRecord, type FailureRecord, type InstanceRecord, type NodeResult, type RunManifest, type StartRecord } from '../core/manifest.ts';
import { OVER, repeatState, type RepeatState } from '../core/repeat-state.ts';
import { getJson, type Store } from '../store/store.ts';

export class RunNotFoundError extends Error {
  override readonly name = 'RunNotFoundError';
  constructor(
    readonly runId: string,
    readonly locator: string,
  ) {
    super(`No run \`${runId}\` in ${locator}: list runs with \`lockstep ls\` (and check --store)`);
  }
}

export interface RepeatStatus {
  readonly repeat: number;
  readonly ready: number;
  /** Members once the barrier closed. */
  readonly members: number | null;
  readonly startAt: number | null;
  readonly results: readonly NodeResult[];
  readonly failures: readonly FailureRecord[];
  /** Latest start − earliest start over the nodes that ran (ms). */
  readonly skewMs: number | null;
  /** Longest node duration (ms). */
  readonly durationMs: number | null;
  readonly state: RepeatState;
}

export interface RunStatus {
  readonly manifest: RunManifest;
  readonly instances: readonly InstanceRecord[];
  /**
   * Agents that have not ended and whose heartbeat (`heartbeatAt`, rewritten every 30 s) is older
   * than HEARTBEAT_STALE_MS: stuck, or gone without a word (their instance died).
   */
  readonly stale: readonly InstanceRecord[];
  readonly repeats: readonly RepeatStatus[];
  readonly state: 'starting' | 'running' | 'done' | 'failed';
  /** The run's abort record: `lockstep down`, or an interrupted `lockstep run`, stopped it. */
  readonly aborted?: AbortRecord;
}

export async function loadManifest(store: Store, runId: string): Promise<RunManifest> {
  const manifest = await getJson<RunManifest>(store, layout.manifest(runId));
  if (!manifest) throw new RunNotFoundError(runId, store.locator);
  return manifest;
}

/** Everything the store knows of a run, read with a few LISTs and small GETs. */
export async function runStatus(store: Store, runId: string, manifest?: RunManifest): Promise<RunStatus> {
  manifest ??= await loadManifest(store, runId);
  const instanceKeys = (await store.list(layout.instancesPrefix(runId))).map((o) => o.key).filter((k) => k.endsWith('.json'));
  const instances = (await Promise.all(instanceKeys.map((k) => getJson<InstanceRecord>(store, k)))).filter(
    (i): i is InstanceRecord => i !== undefined,
  );
  // Listed after the instance records were read: an agent uploads its results before it records
  // that it is done, so the listing holds every result of an instance that says it is done.
  const keys = (await store.list(layout.run(runId))).map((o) => o.key);
  const aborted = keys.includes(layout.abort(runId)) ? await getJson<AbortRecord>(store, layout.abort(runId)) : undefined;
  const ended = instances.length > 0 && instances.every((i) => agentEnded(i.state));
  const repeats: RepeatStatus[] = [];
  for (let repeat = 1; repeat <= manifest.repeats; repeat++) {
    const prefix = layout.repeat(runId, repeat);
    const mine = keys.filter((k) => k.startsWith(prefix));
    const ready = mine.filter((k) => k.startsWith(layout.readyPrefix(runId, repeat))).length;
    const start = mine.includes(layout.start(runId, repeat)) ? await getJson<StartRecord>(store, layout.start(runId, repeat)) : undefined;
    const results = (
      await Promise.all(mine.filter((k) => k.endsWith(`/${nodeFiles.result}`) && k.startsWith(layout.nodesPrefix(runId, repeat))).map((k) => getJson<NodeResult>(store, k)))
    )
      .filter((r): r is NodeResult => r !== undefined)
      .sort((a, b) => a.rank - b.rank);
    const failures = (await Promise.all(mine.filter((k) => k.startsWith(`${prefix}failures/`)).map((k) => getJson<FailureRecord>(store, k)))).filter(
      (f): f is FailureRecord => f !== undefined,
    );
    const members = start?.members.length ?? null;
    const starts = results.map((r) => r.startedAt);
    const readyIds = mine.filter((k) => k.startsWith(layout.readyPrefix(runId, repeat))).map((k) => k.slice(k.lastIndexOf('/') + 1).replace(/\.json$/, ''));
    const state = repeatState({ members, outcomes: results.map((r) => r.outcome), failures, readyIds, instances: manifest.instances, aborted: aborted !== undefined, runOver: ended });
    repeats.push({
      repeat,
      ready,
      members,
      startAt: start?.startAt ?? null,
      results,
      failures,
      skewMs: starts.length > 0 ? Math.max(...starts) - Math.min(...starts) : null,
      durationMs: results.length > 0 ? Math.max(...results.map((r) => r.durationMs)) : null,
      state,
    });
  }
  const allRepeatsOver = repeats.every((r) => OVER.includes(r.state));
  const anyFailed = repeats.some((r) => r.state !== 'done') || instances.some((i) => i.state !== 'done' && ended);
  const state = allRepeatsOver || (ended && instances.length >= manifest.instances) ? (anyFailed || !allRepeatsOver ? 'failed' : 'done') : instances.length === 0 ? 'starting' : 'running';
  const now = Date.now();
  const stale = instances.filter((i) => !agentEnded(i.state) && now - Date.parse(i.heartbeatAt) > HEARTBEAT_STALE_MS);
  // An imported run is over: it had no instances here, and may have no records but logs.
  if (manifest.imported && instances.length === 0) return { manifest, instances, stale, repeats, state: 'done' };
  return { manifest, instances, stale, repeats, state, ...(aborted ? { aborted } : {}) };
}

/** Run ids in the store, newest first (run ids start with a sortable time). */
export async function listRuns(store: Store): Promise<RunManifest[]> {
  const manifests = (await store.list(layout.runsPrefix())).filter((o) => o.key.endsWith('/manifest.json') && o.key.split('/').length === 3);
  const loaded = await Promise.all(manifests.map((o) => getJson<RunManifest>(store, o.key)));
  return loaded.filter((m): m is RunManifest => m !== undefined).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}
