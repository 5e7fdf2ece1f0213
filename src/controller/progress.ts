import { layout, parseDoneKey, type DoneKind } from '../core/layout.ts';
import { HEARTBEAT_STALE_MS, succeeded, type BarrierProgress, type RunManifest } from '../core/manifest.ts';
import { getJson, StoreError, type Store } from '../store/store.ts';
import { OVER, type RepeatState } from '../core/repeat-state.ts';
import type { RunStatus } from './status.ts';

/** How a repeat stands, from a few aggregate objects (no per-node record read). */
export interface RepeatProgress {
  readonly repeat: number;
  /** Ready records, as the barrier's watcher last counted them. */
  readonly ready: number;
  /** Members once the barrier closed. */
  readonly members: number | null;
  readonly startAt: number | null;
  /** Instances through with the repeat: their command succeeded. */
  readonly succeeded: number;
  /** Instances through with the repeat otherwise (a failed command, or a failure before it). */
  readonly failed: number;
  /** As `repeatState` says it, from the aggregates while following. */
  readonly state: RepeatState;
}

/** An agent that has not ended and has not rewritten its instance record for a while. */
export interface StaleInstance {
  readonly instanceId: string;
  /** When its record was last written (epoch ms). */
  readonly lastSeenAt: number;
}

export interface RunProgress {
  /** Instances whose agent has written its record. */
  readonly booted: number;
  readonly stale: readonly StaleInstance[];
  readonly repeats: readonly RepeatProgress[];
  readonly state: 'starting' | 'running' | 'done' | 'failed';
}

export interface ProgressOptions {
  /** The last reading: repeats it saw over are not read again. */
  readonly previous?: RunProgress;
  /** Ids the provider says are still running: only these can be stale. Default: every instance. */
  readonly running?: ReadonlySet<string>;
  readonly now?: number;
}

/**
 * How a run stands, for following it at any N with a few requests: a LIST of the instance records
 * (their last-modified times are the heartbeats), the barrier's progress record of the current
 * repeat (and of the next one once the current one started), and a LIST of the current repeat's
 * done markers, whose keys carry each instance's outcome. Repeats over are not read again.
 */
export async function readProgress(store: Store, manifest: RunManifest, options: ProgressOptions = {}): Promise<RunProgress> {
  const { runId } = manifest;
  const now = options.now ?? Date.now();
  const instances = await store.list(layout.instancesPrefix(runId));
  const stale = instances
    .map((o) => ({ instanceId: o.key.slice(o.key.lastIndexOf('/') + 1).replace(/\.json$/, ''), lastSeenAt: o.lastModified?.getTime() ?? now }))
    .filter((i) => now - i.lastSeenAt > HEARTBEAT_STALE_MS && (options.running?.has(i.instanceId) ?? true));

  const repeats: RepeatProgress[] = [];
  let current = true;
  for (let repeat = 1; repeat <= manifest.repeats; repeat++) {
    const before = options.previous?.repeats[repeat - 1];
    if (before && OVER.includes(before.state)) {
      repeats.push(before);
      continue;
    }
    if (current) {
      const found = await repeatProgress(store, manifest, repeat);
      repeats.push(found);
      // Over: the next repeat is the current one. Started: nodes through with it may be ready for the next one already.
      current = OVER.includes(found.state);
      if (!current && found.startAt === null) break;
      continue;
    }
    const barrier = await readBarrier(store, runId, repeat);
    repeats.push(waiting(repeat, barrier?.count ?? 0));
    break;
  }
  for (let repeat = repeats.length + 1; repeat <= manifest.repeats; repeat++) repeats.push(waiting(repeat, 0));
  const over = repeats.every((r) => OVER.includes(r.state));
  const state = over ? (repeats.some((r) => r.state !== 'done') ? 'failed' : 'done') : instances.length === 0 ? 'starting' : 'running';
  return { booted: instances.length, stale, repeats, state };
}

/** The same figures from a full status (`runStatus`), e.g. at the end of a run. */
export function progressOf(status: RunStatus): RunProgress {
  return {
    booted: status.instances.length,
    stale: status.stale.map((s) => ({ instanceId: s.instanceId, lastSeenAt: Date.parse(s.heartbeatAt) })),
    repeats: status.repeats.map((r) => ({
      repeat: r.repeat,
      ready: r.ready,
      members: r.members,
      startAt: r.startAt,
      succeeded: r.results.filter((x) => succeeded(x.outcome)).length,
      failed: r.results.filter((x) => !succeeded(x.outcome)).length + r.failures.length,
      state: r.state,
    })),
    state: status.state,
  };
}

async function repeatProgress(store: Store, manifest: RunManifest, repeat: number): Promise<RepeatProgress> {
  const { runId } = manifest;
  const [barrier, done] = await Promise.all([readBarrier(store, runId, repeat), store.list(layout.donePrefix(runId, repeat))]);
  const kinds = new Map<string, DoneKind>();
  for (const object of done) {
    const parsed = parseDoneKey(object.key);
    if (parsed) kinds.set(parsed.instanceId, parsed.kind);
  }
  const ok = [...kinds.values()].filter((k) => succeeded(k)).length;
  const failed = kinds.size - ok;
  const start = barrier?.start;
  const members = start ? start.members.length : null;
  let over = members !== null && start!.members.every((m) => kinds.has(m.instanceId));
  if (members === null && failed > 0) {
    // No barrier closed: the repeat is over once every instance that got ready has said why it
    // failed, and none failed while running its command.
    const ready = await store.list(layout.readyPrefix(runId, repeat));
    const readyIds = ready.map((o) => o.key.slice(o.key.lastIndexOf('/') + 1).replace(/\.json$/, ''));
    // When none got ready, every instance must have failed: one still in setup may yet come.
    over =
      readyIds.every((id) => kinds.has(id) && kinds.get(id) !== 'run-failure') &&
      [...kinds.values()].every((k) => k !== 'run-failure') &&
      (readyIds.length > 0 || kinds.size >= manifest.instances);
  }
  const readyCount = barrier?.count ?? 0;
  // As `repeatState` says it: a repeat no instance tried (each failed before its barrier, at setup) was not run.
  const tried = [...kinds.values()].some((k) => k !== 'setup-failure');
  return {
    repeat,
    ready: readyCount,
    members,
    startAt: start?.startAt ?? null,
    succeeded: ok,
    failed,
    state: over ? (failed === 0 ? 'done' : members === null && !tried ? 'not run' : [...kinds.values()].includes('aborted') ? 'aborted' : 'failed') : readyCount > 0 || start || kinds.size > 0 ? 'running' : 'waiting',
  };
}

function waiting(repeat: number, ready: number): RepeatProgress {
  return { repeat, ready, members: null, startAt: null, succeeded: 0, failed: 0, state: ready > 0 ? 'running' : 'waiting' };
}

/** The barrier's progress record; undefined when missing or caught half-written (read it next time). */
async function readBarrier(store: Store, runId: string, repeat: number): Promise<BarrierProgress | undefined> {
  try {
    return await getJson<BarrierProgress>(store, layout.barrier(runId, repeat));
  } catch (error) {
    if (error instanceof StoreError && error.cause instanceof SyntaxError) return undefined;
    throw error;
  }
}
