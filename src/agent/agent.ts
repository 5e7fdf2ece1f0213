import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../core/layout.ts';
import type { FailureRecord, InstanceRecord, RunManifest } from '../core/manifest.ts';
import { getJson, putJson, type Store } from '../store/store.ts';
import { isoNow } from '../util/clock.ts';
import { retry } from '../util/retry.ts';
import { VERSION } from '../version.ts';
import { fetchArtifact } from './artifact.ts';
import { BarrierTimeoutError, type BarrierTuning } from './barrier.ts';
import { runCommand } from './exec.ts';
import type { Identity } from './identity.ts';
import { runRepeat } from './repeat.ts';

export interface AgentOptions {
  readonly identity: Identity;
  readonly store: Store;
  readonly tuning?: Partial<BarrierTuning>;
  /** How often the agent checks for an abort record and refreshes its heartbeat. */
  readonly watchIntervalMs?: number;
  readonly log?: (message: string) => void;
  /** Aborts the agent (SIGTERM): the running command is ended and its logs uploaded. */
  readonly signal?: AbortSignal;
}

export type AgentEnd = 'done' | 'failed' | 'aborted' | 'expired';

/**
 * The agent's whole life on one instance: manifest, artifact, setup, then every repeat. It needs
 * nothing but its identity and the store, so a controller that goes away loses nothing.
 */
export async function runAgent(options: AgentOptions): Promise<AgentEnd> {
  const { identity, store } = options;
  const log = options.log ?? ((message: string) => console.log(`${isoNow()} ${message}`));
  const stop = new AbortController();
  options.signal?.addEventListener('abort', () => stop.abort(options.signal?.reason ?? 'aborted'), { once: true });
  const bootedAt = isoNow();
  let state: InstanceRecord['state'] = 'booting';
  let currentRepeat: number | undefined;
  // Writes of the instance record are chained, so that a late 'running' never lands after 'done'.
  let recorded: Promise<unknown> = Promise.resolve();
  const record = (error?: string) =>
    (recorded = recorded.then(() => writeRecord(error)));
  const writeRecord = (error?: string) =>
    putJson(store, layout.instance(identity.runId, identity.instanceId), {
      instanceId: identity.instanceId,
      address: identity.address,
      region: identity.region,
      bootedAt,
      heartbeatAt: isoNow(),
      state,
      repeat: currentRepeat,
      agentVersion: VERSION,
      error,
    } satisfies InstanceRecord).catch((e: unknown) => log(`could not write instance record: ${String(e)}`));
  const setState = async (next: InstanceRecord['state'], error?: string) => {
    state = next;
    await record(error);
  };

  const expiry = setTimeout(() => stop.abort('expired'), Math.max(0, identity.expiresAt.getTime() - Date.now()));
  const watcher = watchForAbort(store, identity.runId, options.watchIntervalMs ?? 5000, stop, record);
  try {
    await setState('booting');
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
    await mkdir(appDir, { recursive: true });
    try {
      if (manifest.artifact) await fetchArtifact(store, manifest.artifact, appDir, identity.workDir);
      if (manifest.setup) {
        await setState('setup');
        const setupLog = join(identity.workDir, 'setup');
        const result = await runCommand({
          command: manifest.setup,
          cwd: appDir,
          env: { LOCKSTEP_RUN_ID: manifest.runId, LOCKSTEP_ADDRESS: identity.address, LOCKSTEP_INSTANCE_ID: identity.instanceId },
          stdoutPath: `${setupLog}.stdout.log`,
          stderrPath: `${setupLog}.stderr.log`,
          timeoutMs: manifest.timeouts.setupMs,
          signal: stop.signal,
        });
        if (result.exitCode !== 0) {
          throw new Error(`setup ${result.timedOut ? 'timed out' : `failed (exit ${result.exitCode ?? result.signal})`}: see ${setupLog}.stderr.log`);
        }
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log(message);
      for (let repeat = 1; repeat <= manifest.repeats; repeat++) await recordFailure(store, manifest.runId, repeat, identity.instanceId, 'setup', message);
      await setState('failed', message);
      return 'failed';
    }

    let failures = 0;
    for (let repeat = 1; repeat <= manifest.repeats; repeat++) {
      stop.signal.throwIfAborted();
      currentRepeat = repeat;
      try {
        const result = await runRepeat(
          {
            store,
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
    if (stop.signal.aborted) {
      const reason = String(stop.signal.reason);
      await setState(reason === 'expired' ? 'expired' : 'aborted', reason);
      return reason === 'expired' ? 'expired' : 'aborted';
    }
    await setState(failures > 0 ? 'failed' : 'done');
    return failures > 0 ? 'failed' : 'done';
  } catch (error) {
    if (stop.signal.aborted) {
      const reason = String(stop.signal.reason);
      await setState(reason === 'expired' ? 'expired' : 'aborted', reason);
      return reason === 'expired' ? 'expired' : 'aborted';
    }
    const message = error instanceof Error ? error.message : String(error);
    log(`agent failed: ${message}`);
    await setState('failed', message);
    return 'failed';
  } finally {
    clearTimeout(expiry);
    watcher.stop();
  }
}

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
  await putJson(store, layout.failure(runId, repeat, instanceId), failure).catch(() => {});
}
