import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { layout, nodeFiles } from '../core/layout.ts';
import type { FailureRecord, InstanceRecord, NodeResult, RunManifest, StartRecord } from '../core/manifest.ts';
import { paramsForRank, resolveGroups } from '../spec/groups.ts';
import { getJson, putJson, type Store } from '../store/store.ts';
import { isoNow, preciseNow } from '../util/clock.ts';
import { retry } from '../util/retry.ts';
import { VERSION } from '../version.ts';
import { fetchArtifact } from './artifact.ts';
import { BarrierTimeoutError, type BarrierTuning } from './barrier.ts';
import { runCommand } from './exec.ts';
import type { Identity } from './identity.ts';
import { killProcesses, processesOfInstance } from './leftovers.ts';
import { runRepeat } from './repeat.ts';
import { filesBelow, uploadFile } from './upload.ts';

export interface AgentOptions {
  readonly identity: Identity;
  readonly store: Store;
  readonly tuning?: Partial<BarrierTuning>;
  /** How often the agent checks for an abort record and refreshes its heartbeat. */
  readonly watchIntervalMs?: number;
  readonly log?: (message: string) => void;
  /** Aborts the agent (SIGTERM): the running command is ended and its logs uploaded. */
  readonly signal?: AbortSignal;
  /**
   * At the expiry the running command is ended and its logs uploaded; if that is not over this long
   * after the expiry (a store that does not answer, say), the agent gives up on it and returns
   * `expired` anyway, so that the instance ends. Default 30 s.
   */
  readonly expiryGraceMs?: number;
}

export type AgentEnd = 'done' | 'failed' | 'aborted' | 'expired';

/** Store key of an agent's own log (what it printed), uploaded when it ends. */
export const agentLogKey = (runId: string, instanceId: string) => `${layout.run(runId)}agents/${instanceId}.log`;
/** Store keys of an instance's setup output. */
export const setupLogKey = (runId: string, instanceId: string, stream: 'stdout' | 'stderr') =>
  `${layout.run(runId)}agents/${instanceId}.setup.${stream}.log`;

/**
 * What an agent keeps in its working folder so that an agent restarted on the same instance (same
 * identity, same folder) picks up where the last one stopped instead of starting over.
 */
interface Checkpoint {
  readonly runId: string;
  readonly instanceId: string;
  /** How many agents have started on this instance for this run, this one included. */
  readonly lives: number;
  readonly setupDone: boolean;
}

const MAX_LOG_LINES = 5000;

/**
 * The agent's whole life on one instance: manifest, artifact, setup, then every repeat. It needs
 * nothing but its identity and the store, so a controller that goes away loses nothing. It ends
 * itself at its expiry whatever it is doing, and after the last repeat unless the run keeps it.
 */
export async function runAgent(options: AgentOptions): Promise<AgentEnd> {
  const { identity, store } = options;
  const lines: string[] = [];
  const print = options.log ?? ((message: string) => console.log(`${isoNow()} ${message}`));
  const log = (message: string) => {
    lines.push(`${isoNow()} ${message}`);
    if (lines.length > MAX_LOG_LINES) lines.splice(0, lines.length - MAX_LOG_LINES);
    print(message);
  };
  const stop = new AbortController();
  options.signal?.addEventListener('abort', () => stop.abort(options.signal?.reason ?? 'aborted'), { once: true });
  if (options.signal?.aborted) stop.abort(options.signal.reason ?? 'aborted');

  const bootedAt = isoNow();
  let state: InstanceRecord['state'] = 'booting';
  let currentRepeat: number | undefined;
  const instanceRecord = (error?: string): InstanceRecord => ({
    instanceId: identity.instanceId,
    address: identity.address,
    region: identity.region,
    bootedAt,
    heartbeatAt: isoNow(),
    state,
    repeat: currentRepeat,
    agentVersion: VERSION,
    error,
  });
  // Writes of the instance record are chained, so that a late 'running' never lands after 'done'.
  let recorded: Promise<unknown> = Promise.resolve();
  const record = (error?: string) =>
    (recorded = recorded.then(() =>
      putJson(store, layout.instance(identity.runId, identity.instanceId), instanceRecord(error)).catch((e: unknown) =>
        log(`could not write instance record: ${String(e)}`),
      ),
    ));
  const setState = async (next: InstanceRecord['state'], error?: string) => {
    state = next;
    await record(error);
  };

  const untilExpiry = Math.max(0, identity.expiresAt.getTime() - Date.now());
  const expiry = setLongTimeout(() => {
    log(`the instance expired at ${identity.expiresAt.toISOString()}: ending the command and this instance`);
    stop.abort('expired');
  }, untilExpiry);
  // The dead-man's switch behind the expiry: whatever still runs this long after it is given up.
  let givenUp = false;
  let hardTimer: { clear(): void } | undefined;
  const hardDeadline = new Promise<AgentEnd>((resolve) => {
    hardTimer = setLongTimeout(() => {
      givenUp = true;
      resolve('expired');
    }, untilExpiry + (options.expiryGraceMs ?? 30_000));
  });
  const watcher = watchForAbort(store, identity.runId, options.watchIntervalMs ?? 5000, stop, () => record());

  const life = live({ options, log, stop, setState, setRepeat: (r) => (currentRepeat = r) });
  try {
    const end = await Promise.race([life, hardDeadline]);
    if (givenUp) {
      log(`still busy ${Math.round((options.expiryGraceMs ?? 30_000) / 1000)} s after the expiry: giving up on it`);
      state = 'expired';
      await withTimeout(putJson(store, layout.instance(identity.runId, identity.instanceId), instanceRecord('expired; gave up on unfinished work')), 3000);
      return 'expired';
    }
    log(`agent ${end}`);
    await withTimeout(
      retry(() => store.put(agentLogKey(identity.runId, identity.instanceId), lines.join('\n') + '\n'), { attempts: 4, baseDelayMs: 250 }),
      15_000,
    ).catch(() => {});
    return end;
  } finally {
    expiry.clear();
    hardTimer?.clear();
    watcher.stop();
  }
}

interface Life {
  readonly options: AgentOptions;
  readonly log: (message: string) => void;
  readonly stop: AbortController;
  readonly setState: (next: InstanceRecord['state'], error?: string) => Promise<void>;
  readonly setRepeat: (repeat: number) => void;
}

async function live({ options, log, stop, setState, setRepeat }: Life): Promise<AgentEnd> {
  const { identity, store } = options;
  const ended = async (): Promise<AgentEnd> => {
    const reason = String(stop.signal.reason);
    const end = reason === 'expired' ? 'expired' : 'aborted';
    await setState(end, reason);
    return end;
  };
  try {
    // An instance record already in the store means an earlier agent ran here, even when this
    // instance's working folder (and its checkpoint) did not survive.
    const earlier = await retry(() => store.get(layout.instance(identity.runId, identity.instanceId)), { attempts: 5, baseDelayMs: 500, signal: stop.signal });
    await setState('booting');
    const checkpoint = await startLife(identity, log, earlier !== undefined);
    const manifest = await retry(
      async () => {
        const found = await getJson<RunManifest>(store, layout.manifest(identity.runId));
        if (!found) throw new Error(`No manifest for run ${identity.runId} in ${store.locator}`);
        return found;
      },
      { attempts: 10, baseDelayMs: 500, signal: stop.signal },
    );
    log(`run ${manifest.runId}: ${manifest.instances} instances, ${manifest.repeats} repeat(s); I am ${identity.instanceId} at ${identity.address}`);

    const appDir = join(identity.workDir, 'app');
    if (checkpoint.setupDone && existsSync(appDir)) {
      log('artifact and setup are done already (an earlier agent on this instance did them)');
    } else {
      await mkdir(appDir, { recursive: true });
      try {
        if (manifest.artifact) await fetchArtifact(store, manifest.artifact, appDir, identity.workDir);
        if (manifest.setup) await runSetup(options, manifest, appDir, stop.signal, setState);
        await saveCheckpoint(identity, { ...checkpoint, setupDone: true });
      } catch (error) {
        if (stop.signal.aborted) return await ended();
        const message = error instanceof Error ? error.message : String(error);
        log(message);
        for (let repeat = 1; repeat <= manifest.repeats; repeat++) await recordFailure(store, manifest.runId, repeat, identity.instanceId, 'setup', message);
        await setState('failed', message);
        return 'failed';
      }
    }

    const restarted = checkpoint.lives > 1 || earlier !== undefined;
    let failures = 0;
    for (let repeat = 1; repeat <= manifest.repeats; repeat++) {
      stop.signal.throwIfAborted();
      setRepeat(repeat);
      try {
        let repeatStore = store;
        if (restarted) {
          const progress = await progressOf(store, manifest, identity, repeat);
          if (progress.kind === 'finished') {
            log(`repeat ${repeat}: already recorded (${progress.outcome}), skipping it`);
            if (progress.outcome !== 'success') failures++;
            continue;
          }
          if (progress.kind === 'left-out') {
            log(`repeat ${repeat}: the barrier closed on a quorum without me`);
            await recordFailure(store, manifest.runId, repeat, identity.instanceId, 'barrier', 'left out: the barrier closed on a quorum before this instance was ready');
            failures++;
            continue;
          }
          if (progress.kind === 'missed') {
            log(`repeat ${repeat}: it started at ${new Date(progress.start.startAt).toISOString()}, before this agent did; recording it as an error`);
            await recordMissedRepeat(store, manifest, identity, repeat, progress.start, progress.rank);
            failures++;
            continue;
          }
          // The ready record an earlier agent wrote stays as it was: same readyAt, so the same T.
          repeatStore = keepingRecord(store, layout.ready(manifest.runId, repeat, identity.instanceId));
        }
        const result = await runRepeat(
          {
            store: repeatStore,
            manifest,
            identity,
            appDir,
            signal: stop.signal,
            tuning: options.tuning,
            onState: (next) => void setState(next),
          },
          repeat,
        );
        if (!result) {
          log(`repeat ${repeat}: the barrier closed on a quorum without me`);
          await recordFailure(store, manifest.runId, repeat, identity.instanceId, 'barrier', 'left out: the barrier closed on a quorum before this instance was ready');
          failures++;
        } else {
          log(`repeat ${repeat}: rank ${result.rank}, ${result.outcome}${result.exitCode !== null ? ` (exit ${result.exitCode})` : ''}`);
          if (result.outcome !== 'success') failures++;
          if (result.outcome === 'aborted') break;
        }
      } catch (error) {
        if (stop.signal.aborted) break;
        failures++;
        const message = error instanceof Error ? error.message : String(error);
        log(`repeat ${repeat}: ${message}`);
        await recordFailure(store, manifest.runId, repeat, identity.instanceId, error instanceof BarrierTimeoutError ? 'barrier' : 'run', message, error instanceof BarrierTimeoutError ? error.missing : undefined);
      }
    }
    if (stop.signal.aborted) return await ended();
    const end: AgentEnd = failures > 0 ? 'failed' : 'done';
    await setState(end);
    if (!manifest.terminateWhenDone) {
      log(`keep: this instance stays up until ${identity.expiresAt.toISOString()} or \`lockstep down ${manifest.runId}\``);
      if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
      log(`ending the kept instance (${String(stop.signal.reason)})`);
    }
    return end;
  } catch (error) {
    if (stop.signal.aborted) return await ended();
    const message = error instanceof Error ? error.message : String(error);
    log(`agent failed: ${message}`);
    await setState('failed', message);
    return 'failed';
  }
}

async function runSetup(
  options: AgentOptions,
  manifest: RunManifest,
  appDir: string,
  signal: AbortSignal,
  setState: (next: InstanceRecord['state']) => Promise<void>,
): Promise<void> {
  const { identity, store } = options;
  await setState('setup');
  const setupLog = join(identity.workDir, 'setup');
  const result = await runCommand({
    command: manifest.setup!,
    cwd: appDir,
    env: { LOCKSTEP_RUN_ID: manifest.runId, LOCKSTEP_ADDRESS: identity.address, LOCKSTEP_INSTANCE_ID: identity.instanceId },
    stdoutPath: `${setupLog}.stdout.log`,
    stderrPath: `${setupLog}.stderr.log`,
    timeoutMs: manifest.timeouts.setupMs,
    signal,
  });
  for (const stream of ['stdout', 'stderr'] as const) {
    await uploadFile(store, setupLogKey(manifest.runId, identity.instanceId, stream), `${setupLog}.${stream}.log`).catch(() => {});
  }
  signal.throwIfAborted();
  if (result.exitCode !== 0) {
    throw new Error(
      `setup ${result.timedOut ? 'timed out' : `failed (exit ${result.exitCode ?? result.signal})`}: see ${setupLogKey(manifest.runId, identity.instanceId, 'stderr')} in the store`,
    );
  }
}

// ---- Restarts ---------------------------------------------------------------------------------

const checkpointPath = (identity: Identity) => join(identity.workDir, 'checkpoint.json');

/**
 * Reads the checkpoint an earlier agent of this instance left, and counts this life. A restarted
 * agent first ends whatever its predecessor left running (a command in its own process group).
 */
async function startLife(identity: Identity, log: (message: string) => void, seenInStore: boolean): Promise<Checkpoint> {
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

async function saveCheckpoint(identity: Identity, checkpoint: Checkpoint): Promise<void> {
  const path = checkpointPath(identity);
  await writeFile(`${path}.partial`, JSON.stringify(checkpoint, null, 2));
  await rename(`${path}.partial`, path);
}

type Progress =
  | { readonly kind: 'finished'; readonly outcome: string }
  | { readonly kind: 'missed'; readonly start: StartRecord; readonly rank: number }
  | { readonly kind: 'left-out' }
  | { readonly kind: 'open' };

/** How far repeat r got for this instance, as the store tells a restarted agent. */
async function progressOf(store: Store, manifest: RunManifest, identity: Identity, repeat: number): Promise<Progress> {
  const runId = manifest.runId;
  const start = await getJson<StartRecord>(store, layout.start(runId, repeat));
  const failure = await getJson<FailureRecord>(store, layout.failure(runId, repeat, identity.instanceId));
  if (failure) return { kind: 'finished', outcome: `failed at ${failure.stage}` };
  if (!start) return { kind: 'open' };
  const rank = start.members.findIndex((m) => m.instanceId === identity.instanceId);
  if (rank < 0) return { kind: 'left-out' };
  const result = await getJson<NodeResult>(store, layout.node(runId, repeat, rank) + nodeFiles.result);
  if (result?.instanceId === identity.instanceId) return { kind: 'finished', outcome: result.outcome };
  // Still before T: the barrier is closed but the command has not started, so this node can make it.
  return preciseNow() < start.startAt ? { kind: 'open' } : { kind: 'missed', start, rank };
}

/**
 * The store as the repeat sees it, except that `key` is never overwritten once it exists: a
 * restarted agent keeps the ready record of its predecessor, so the barrier counts it once and
 * every node computes the same start time from it.
 */
function keepingRecord(store: Store, key: string): Store {
  return {
    locator: store.locator,
    readsPerSecond: store.readsPerSecond,
    put: async (k, body) => {
      if (k === key && (await store.get(k)) !== undefined) return;
      await store.put(k, body);
    },
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
async function recordMissedRepeat(store: Store, manifest: RunManifest, identity: Identity, repeat: number, start: StartRecord, rank: number): Promise<void> {
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
  const n = start.members.length;
  const { params, groups } = paramsForRank(manifest.params, resolveGroups(manifest.groups, n), rank);
  const member = start.members[rank]!;
  const result: NodeResult = {
    runId: manifest.runId,
    repeat,
    rank,
    n,
    instanceId: identity.instanceId,
    address: identity.address,
    groups,
    params,
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
  await putJson(store, nodePrefix + nodeFiles.result, result);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, nodeFiles.result), JSON.stringify(result, null, 2));
}

// ---- Helpers ----------------------------------------------------------------------------------

function watchForAbort(store: Store, runId: string, intervalMs: number, stop: AbortController, heartbeat: () => Promise<unknown>) {
  const quit = new AbortController();
  void (async () => {
    let beats = 0;
    while (!quit.signal.aborted) {
      try {
        await delay(intervalMs, undefined, { signal: quit.signal });
        if (await store.get(layout.abort(runId))) stop.abort('aborted');
        if (++beats % 6 === 0) await heartbeat();
      } catch {
        // Stopped, or the store failed this once: look again next time.
      }
    }
  })();
  return { stop: () => quit.abort() };
}

async function recordFailure(
  store: Store,
  runId: string,
  repeat: number,
  instanceId: string,
  stage: FailureRecord['stage'],
  error: string,
  missing?: readonly string[],
): Promise<void> {
  const failure: FailureRecord = { instanceId, repeat, stage, error, missing, at: isoNow() };
  await retry(() => putJson(store, layout.failure(runId, repeat, instanceId), failure), { attempts: 4, baseDelayMs: 250 }).catch(() => {});
}

/** `setTimeout` for any delay: Node's own fires at once for delays over 2^31-1 ms (24.8 days). */
function setLongTimeout(callback: () => void, ms: number): { clear(): void } {
  const MAX = 2 ** 31 - 1;
  const due = Date.now() + ms;
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = due - Date.now();
    timer = setTimeout(left > MAX ? arm : callback, Math.max(0, Math.min(left, MAX)));
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
