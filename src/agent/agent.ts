import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../core/layout.ts';
import { HEARTBEAT_INTERVAL_MS, succeeded, type InstanceRecord, type RunManifest } from '../core/manifest.ts';
import { getJson, putJson, type Store } from '../store/store.ts';
import { isoNow } from '../util/clock.ts';
import { formatDuration } from '../util/duration.ts';
import { retry } from '../util/retry.ts';
import { VERSION } from '../version.ts';
import { fetchArtifact } from './artifact.ts';
import { BarrierTimeoutError, type BarrierTuning } from './barrier.ts';
import { lastLines, runCommand } from './exec.ts';
import { healLeftovers } from './faults/node-faults.ts';
import type { Identity } from './identity.ts';
import { awaitRepeatEnding } from './left-out.ts';
import { wanRelayFrom } from './netem.ts';
import { recordFailure } from './records.ts';
import { runRepeat } from './repeat.ts';
import { decideRepeat, type RepeatAction } from './repeat-plan.ts';
import { keepingRecord, readRepeatFacts, recordMissedRepeat, saveCheckpoint, startLife, type Checkpoint } from './restart.ts';
import { uploadFile } from './upload.ts';

export interface AgentOptions {
  readonly identity: Identity;
  readonly store: Store;
  readonly tuning?: Partial<BarrierTuning>;
  /** How often the agent checks for an abort record (default 5 s); its heartbeat comes every HEARTBEAT_INTERVAL_MS. */
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
      retry(() => store.put(layout.agentLog(identity.runId, identity.instanceId), lines.join('\n') + '\n'), { attempts: 4, baseDelayMs: 250 }),
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

/** What a repeat came to for this instance. */
type RepeatEnd = 'success' | 'failed' | 'aborted';

/** The agent's life as a pipeline: manifest, artifact and setup, every repeat, the end. */
async function live(life: Life): Promise<AgentEnd> {
  const { stop, setState, log } = life;
  try {
    const { manifest, checkpoint, restarted } = await begin(life);
    const appDir = join(life.options.identity.workDir, 'app');
    if (!(await prepare(life, manifest, checkpoint, appDir))) return stop.signal.aborted ? await ended(life) : 'failed';
    let failures = 0;
    for (let repeat = 1; repeat <= manifest.repeats; repeat++) {
      stop.signal.throwIfAborted();
      life.setRepeat(repeat);
      const end = await playRepeat(life, manifest, appDir, repeat, restarted);
      if (end !== 'success') failures++;
      if (end === 'aborted' || stop.signal.aborted) break;
    }
    if (stop.signal.aborted) return await ended(life);
    const end: AgentEnd = failures > 0 ? 'failed' : 'done';
    await setState(end);
    if (!manifest.terminateWhenDone) await stayUp(life, manifest);
    return end;
  } catch (error) {
    if (stop.signal.aborted) return await ended(life);
    const message = error instanceof Error ? error.message : String(error);
    log(`agent failed: ${message}`);
    await setState('failed', message);
    return 'failed';
  }
}

async function ended({ stop, setState }: Life): Promise<AgentEnd> {
  const reason = String(stop.signal.reason);
  const end = reason === 'expired' ? 'expired' : 'aborted';
  await setState(end, reason);
  return end;
}

/** The instance record, this life's checkpoint and the run's manifest. */
async function begin({ options, log, stop, setState }: Life): Promise<{ manifest: RunManifest; checkpoint: Checkpoint; restarted: boolean }> {
  const { identity, store } = options;
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
  const restarted = checkpoint.lives > 1 || earlier !== undefined;
  if (restarted) {
    // Faults the last agent applied and did not live to heal: its partition rules, cgroup, emulation.
    const healed = await healLeftovers({ manifest, instanceId: identity.instanceId, choice: { address: identity.address, allowDefaultRoute: manifest.provider !== 'local' }, relay: wanRelayFrom() });
    if (healed.length > 0) log(`healed what the last agent's faults left: ${healed.join(', ')}`);
  }
  return { manifest, checkpoint, restarted };
}

/**
 * Artifact and setup, once per instance. False when they failed: then every repeat is recorded as
 * failed at setup (unless the agent was stopped meanwhile).
 */
async function prepare(life: Life, manifest: RunManifest, checkpoint: Checkpoint, appDir: string): Promise<boolean> {
  const { options, log, stop, setState } = life;
  const { identity, store } = options;
  if (checkpoint.setupDone && existsSync(appDir)) {
    log('artifact and setup are done already (an earlier agent on this instance did them)');
    return true;
  }
  await mkdir(appDir, { recursive: true });
  try {
    if (manifest.artifact) await fetchArtifact(store, manifest.artifact, appDir, identity.workDir);
    if (manifest.setup) await runSetup(options, manifest, appDir, stop.signal, setState);
    await saveCheckpoint(identity, { ...checkpoint, setupDone: true });
    return true;
  } catch (error) {
    if (stop.signal.aborted) return false;
    const message = error instanceof Error ? error.message : String(error);
    log(message);
    const details = error instanceof SetupFailedError ? { exitCode: error.exitCode, output: error.output } : {};
    for (let repeat = 1; repeat <= manifest.repeats; repeat++) await recordFailure(store, manifest.runId, repeat, identity.instanceId, 'setup', message, details);
    await setState('failed', message);
    return false;
  }
}

/** One repeat: decide what to do with it (`decideRepeat`), then do it. */
async function playRepeat(life: Life, manifest: RunManifest, appDir: string, repeat: number, restarted: boolean): Promise<RepeatEnd> {
  const { options, log, stop } = life;
  const { identity, store } = options;
  try {
    const action = decideRepeat(restarted ? await readRepeatFacts(store, manifest.runId, identity, repeat) : undefined);
    return await act(life, manifest, appDir, repeat, action);
  } catch (error) {
    if (stop.signal.aborted) return 'aborted';
    const message = error instanceof Error ? error.message : String(error);
    log(`repeat ${repeat}: ${message}`);
    const barrier = error instanceof BarrierTimeoutError;
    await recordFailure(store, manifest.runId, repeat, identity.instanceId, barrier ? 'barrier' : 'run', message, barrier ? { missing: error.missing } : {});
    return 'failed';
  }
}

async function act(life: Life, manifest: RunManifest, appDir: string, repeat: number, action: RepeatAction): Promise<RepeatEnd> {
  const { options, log, stop, setState } = life;
  const { identity, store } = options;
  switch (action.kind) {
    case 'recorded':
      log(`repeat ${repeat}: already recorded (${action.outcome}), skipping it`);
      return action.failed ? 'failed' : 'success';
    case 'left-out':
      await recordLeftOut(life, manifest, repeat);
      return 'failed';
    case 'missed':
      log(`repeat ${repeat}: it started at ${new Date(action.start.startAt).toISOString()}, before this agent did; recording it as an error`);
      await recordMissedRepeat(store, manifest, identity, repeat, action.start, action.rank);
      return 'failed';
    case 'run': {
      const result = await runRepeat(
        {
          // The ready record an earlier agent wrote stays as it was: same readyAt, so the same T.
          store: action.keepReady ? keepingRecord(store, layout.ready(manifest.runId, repeat, identity.instanceId)) : store,
          manifest,
          identity,
          appDir,
          signal: stop.signal,
          tuning: options.tuning,
          onState: (next) => void setState(next),
          log,
        },
        repeat,
      );
      if (!result) {
        await recordLeftOut(life, manifest, repeat);
        return 'failed';
      }
      log(`repeat ${repeat}: rank ${result.rank}, ${result.outcome}${result.exitCode !== null ? ` (exit ${result.exitCode})` : ''}`);
      return succeeded(result.outcome) ? 'success' : result.outcome === 'aborted' ? 'aborted' : 'failed';
    }
  }
}

async function recordLeftOut(life: Life, manifest: RunManifest, repeat: number): Promise<void> {
  const { options, log } = life;
  log(`repeat ${repeat}: the barrier closed on a quorum without me`);
  await recordFailure(options.store, manifest.runId, repeat, options.identity.instanceId, 'barrier', 'left out: the barrier closed on a quorum before this instance was ready');
  if (repeat < manifest.repeats) await awaitRepeatEnding({ store: options.store, manifest, repeat, signal: life.stop.signal });
}

/** `keep: true`: the instance stays up until its expiry or `lockstep down`. */
async function stayUp({ options, log, stop }: Life, manifest: RunManifest): Promise<void> {
  log(`keep: this instance stays up until ${options.identity.expiresAt.toISOString()} or \`lockstep down ${manifest.runId}\``);
  if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
  log(`ending the kept instance (${String(stop.signal.reason)})`);
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
    await uploadFile(store, layout.setupLog(manifest.runId, identity.instanceId, stream), `${setupLog}.${stream}.log`).catch(() => {});
  }
  signal.throwIfAborted();
  if (result.exitCode !== 0) {
    // The last lines of stderr, or of stdout when stderr is empty: where the reason usually is.
    const stderr = await lastLines(`${setupLog}.stderr.log`, 5);
    const output = stderr.length > 0 ? stderr : await lastLines(`${setupLog}.stdout.log`, 5);
    const how = result.timedOut ? `timed out after ${formatDuration(manifest.timeouts.setupMs)}` : result.exitCode !== null ? `failed (exit ${result.exitCode})` : `ended by ${result.signal}`;
    throw new SetupFailedError(`setup ${how}${output.length > 0 ? `: ${output[output.length - 1]}` : ', printing nothing'}`, result.timedOut ? null : result.exitCode, output);
  }
}

/** `setup` ended other than with exit 0. */
class SetupFailedError extends Error {
  override readonly name = 'SetupFailedError';
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly output: readonly string[],
  ) {
    super(message);
  }
}

// ---- Helpers ----------------------------------------------------------------------------------

function watchForAbort(store: Store, runId: string, intervalMs: number, stop: AbortController, heartbeat: () => Promise<unknown>) {
  const quit = new AbortController();
  void (async () => {
    let lastBeat = Date.now();
    while (!quit.signal.aborted) {
      try {
        await delay(intervalMs, undefined, { signal: quit.signal });
        if (await store.get(layout.abort(runId))) stop.abort('aborted');
        if (Date.now() - lastBeat >= HEARTBEAT_INTERVAL_MS - intervalMs / 2) {
          lastBeat = Date.now();
          await heartbeat();
        }
      } catch {
        // Stopped, or the store failed this once: look again next time.
      }
    }
  })();
  return { stop: () => quit.abort() };
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
