/**
 * What lets an agent restarted on the same instance (same identity, same working folder) pick up
 * where the last one stopped: its checkpoint, what the store says of each repeat, and the records of
 * a repeat that started while no agent ran.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { layout, nodeFiles } from '../core/layout.ts';
import type { FailureRecord, NodeResult, RunManifest, StartRecord } from '../core/manifest.ts';
import { getJson, type Store } from '../store/store.ts';
import { preciseNow } from '../util/clock.ts';
import type { Identity } from './identity.ts';
import { killProcesses, processesOfInstance } from './leftovers.ts';
import { storeResult } from './records.ts';
import type { RepeatFacts } from './repeat-plan.ts';
import { nodeOf } from './repeat.ts';
import { filesBelow, uploadFile } from './upload.ts';

/**
 * What an agent keeps in its working folder so that an agent restarted on the same instance (same
 * identity, same folder) picks up where the last one stopped instead of starting over.
 */
export interface Checkpoint {
  readonly runId: string;
  readonly instanceId: string;
  /** How many agents have started on this instance for this run, this one included. */
  readonly lives: number;
  readonly setupDone: boolean;
}

const checkpointPath = (identity: Identity) => join(identity.workDir, 'checkpoint.json');

/**
 * Reads the checkpoint an earlier agent of this instance left, and counts this life. A restarted
 * agent first ends whatever its predecessor left running (a command in its own process group).
 */
export async function startLife(identity: Identity, log: (message: string) => void, seenInStore: boolean): Promise<Checkpoint> {
  await mkdir(identity.workDir, { recursive: true });
  let previous: Checkpoint | undefined;
  try {
    const found = JSON.parse(await readFile(checkpointPath(identity), 'utf8')) as Checkpoint;
    if (found.runId === identity.runId && found.instanceId === identity.instanceId) previous = found;
  } catch {
    // First life on this instance.
  }
  const checkpoint: Checkpoint = {
    runId: identity.runId,
    instanceId: identity.instanceId,
    lives: (previous?.lives ?? 0) + 1,
    setupDone: previous?.setupDone ?? false,
  };
  if (previous || seenInStore) {
    const killed = killProcesses(processesOfInstance(identity.runId, identity.instanceId));
    const life = previous ? `life ${checkpoint.lives}` : 'its working folder is new';
    log(`restarted (${life}): picking up where the last agent stopped${killed ? `; ended ${killed} process(es) it left running` : ''}`);
  }
  await saveCheckpoint(identity, checkpoint);
  return checkpoint;
}

export async function saveCheckpoint(identity: Identity, checkpoint: Checkpoint): Promise<void> {
  const path = checkpointPath(identity);
  await writeFile(`${path}.partial`, JSON.stringify(checkpoint, null, 2));
  await rename(`${path}.partial`, path);
}

/** What the store says of repeat r for this instance (three small GETs at most). */
export async function readRepeatFacts(store: Store, runId: string, identity: Identity, repeat: number): Promise<RepeatFacts> {
  const [start, failure] = await Promise.all([
    getJson<StartRecord>(store, layout.start(runId, repeat)),
    getJson<FailureRecord>(store, layout.failure(runId, repeat, identity.instanceId)),
  ]);
  const rank = start?.members.findIndex((m) => m.instanceId === identity.instanceId) ?? -1;
  const result = rank >= 0 && !failure ? await getJson<NodeResult>(store, layout.node(runId, repeat, rank) + nodeFiles.result) : undefined;
  return { instanceId: identity.instanceId, now: preciseNow(), start, failure, result };
}

/**
 * The store as the repeat sees it, except that `key` is never overwritten once it exists: a
 * restarted agent keeps the ready record of its predecessor, so the barrier counts it once and
 * every node computes the same start time from it.
 */
export function keepingRecord(store: Store, key: string): Store {
  return {
    locator: store.locator,
    readsPerSecond: store.readsPerSecond,
    readRatePerPrefix: store.readRatePerPrefix,
    put: async (k, body) => {
      if (k === key && (await store.get(k)) !== undefined) return;
      await store.put(k, body);
    },
    putIfAbsent: (k, body) => store.putIfAbsent(k, body),
    putFile: (k, path) => store.putFile(k, path),
    get: (k) => store.get(k),
    getFile: (k, path) => store.getFile(k, path),
    list: (prefix, listOptions) => store.list(prefix, listOptions),
    delete: (k) => store.delete(k),
    dispose: () => store.dispose(),
  };
}

/**
 * A repeat whose start time passed while no agent ran on this instance (it was restarted during the
 * command, or during its upload): the command's outcome is unknown. What the node wrote up to then
 * is uploaded, with an `error` result, so that the repeat is complete in the store.
 */
export async function recordMissedRepeat(store: Store, manifest: RunManifest, identity: Identity, repeat: number, start: StartRecord, rank: number): Promise<void> {
  const folder = join(identity.workDir, 'repeats', String(repeat));
  const nodePrefix = layout.node(manifest.runId, repeat, rank);
  const files: string[] = [];
  for (const [relativeName, path] of await filesBelow(join(folder, 'out'))) {
    await uploadFile(store, nodePrefix + nodeFiles.filesPrefix + relativeName, path);
    files.push(nodeFiles.filesPrefix + relativeName);
  }
  for (const name of [nodeFiles.stdout, nodeFiles.stderr]) {
    const path = join(folder, name);
    if (existsSync(path)) await uploadFile(store, nodePrefix + name, path);
    else await store.put(nodePrefix + name, '');
  }
  const member = start.members[rank]!;
  const result: NodeResult = {
    ...nodeOf(manifest, identity, start, repeat, rank).subject,
    command: manifest.run,
    outcome: 'error',
    exitCode: null,
    signal: null,
    timedOut: false,
    readyAt: member.readyAt,
    barrierAt: start.startAt,
    scheduledStartAt: start.startAt,
    // Unknown: the agent that ran the command is gone. Its scheduled start stands in, duration 0.
    startedAt: start.startAt,
    endedAt: start.startAt,
    durationMs: 0,
    barrierWaitMs: 0,
    cpuUserMs: null,
    cpuSystemMs: null,
    peakMemoryBytes: null,
    network: null,
    error: 'the agent was restarted after this repeat started: the outcome of the command is unknown; its logs up to then are uploaded',
    files,
  };
  await storeResult(store, result, folder);
}
