import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../core/layout.ts';
import { agentEnded, type RunManifest } from '../core/manifest.ts';
import type { InstanceInfo, Provider } from '../provider/provider.ts';
import type { LoadedSpec } from '../spec/load.ts';
import { countingStore } from '../store/counting.ts';
import { putJson, type Store } from '../store/store.ts';
import { publishAgent } from './agent-bundle.ts';
import { publishArtifact } from './artifact.ts';
import { BootWatch, type BootFailure } from './boot-watch.ts';
import { endRun, type EndRunOutcome } from './down.ts';
import { expandFaults } from './fault-timeline.ts';
import { checkRun } from './preflight.ts';
import { createProvider } from './providers.ts';
import { newRunId } from './run-id.ts';
import { rememberRun } from './run-index.ts';
import { readProgress, type RunProgress } from './progress.ts';
import { runStatus, type RunStatus } from './status.ts';

export type RunPhase = 'store' | 'artifact' | 'agent' | 'manifest' | 'launch' | 'run' | 'cleanup';

export type RunEvent =
  | { readonly type: 'phase'; readonly phase: RunPhase; readonly detail: string }
  | { readonly type: 'launched'; readonly runId: string; readonly instances: readonly InstanceInfo[] }
  /** How the run stands, while it is followed (from aggregates: see `readProgress`). */
  | { readonly type: 'progress'; readonly progress: RunProgress }
  /** The whole status, read once at the end. */
  | { readonly type: 'status'; readonly status: RunStatus }
  /** Instances that did not boot (they have been ended). */
  | { readonly type: 'boot-failed'; readonly failures: readonly BootFailure[] };

export interface RunOptions {
  readonly loaded: LoadedSpec;
  /** Store locator; default: the spec's `store`, then `.lockstep/store` in `cwd`. */
  readonly store?: string;
  readonly cwd?: string;
  /** Local provider state folder (tests use their own). */
  readonly home?: string;
  readonly onEvent?: (event: RunEvent) => void;
  /** Ends the run early (Ctrl-C): the instances are ended, unless `confirmEnd` says no. */
  readonly signal?: AbortSignal;
  /**
   * Asked once `signal` has stopped the run: end its instances? Default: yes. When no, they go on
   * by themselves (and end after the last repeat, or at their expiry).
   */
  readonly confirmEnd?: (run: { readonly runId: string; readonly instances: number }) => Promise<boolean>;
  /** How long agents get to stop by themselves when the run is ended early. Default 10 s. */
  readonly endGraceMs?: number;
  readonly pollIntervalMs?: number;
  /** A provider to use instead of the one the spec names (tests). */
  readonly provider?: Provider;
  /** Awaited once the run's manifest is in the store, before any instance is launched (a sweep records the run). */
  readonly onManifest?: (manifest: RunManifest) => Promise<void>;
}

export interface RunOutcome {
  readonly runId: string;
  readonly store: string;
  readonly status: RunStatus;
  /** Instances that ended before their run was over. */
  readonly lostInstances: readonly string[];
  readonly ok: boolean;
  /** Instances left running on purpose (`keep: true`, or the answer to `confirmEnd`). */
  readonly leftRunning?: readonly string[];
  /** A run stopped early (`signal`): what ending it did. */
  readonly ended?: EndRunOutcome;
  /** Instances that did not boot within `timeouts.boot` (or whose boot failed), and why. */
  readonly bootFailures: readonly BootFailure[];
  /** True when the run was ended because too few instances booted. */
  readonly endedForBootFailures: boolean;
}

export { openReachableStore, StoreUnreachableError } from './reachable.ts';
export { storeLocatorFor } from './preflight.ts';

/**
 * Runs an experiment: publishes artifact, agent and manifest, launches the instances, follows the
 * run in the store until every repeat is over, and makes sure every instance has ended.
 */
export async function runExperiment(options: RunOptions): Promise<RunOutcome> {
  const { spec, artifactPath, source } = options.loaded;
  const emit = options.onEvent ?? (() => {});
  const { locator, store } = await checkRun(options.loaded, { store: options.store, cwd: options.cwd, provider: !options.provider });
  emit({ type: 'phase', phase: 'store', detail: locator });
  // Agents open the store on their own; a folder store must not depend on their working folder.
  const agentLocator = store.locator;
  let provider: Provider | undefined;
  let instances: InstanceInfo[] = [];
  const runId = newRunId(spec.name);
  let outcome: RunOutcome | undefined;
  let failed = true;
  let endedForBootFailures = false;
  let notBooted: readonly string[] = [];
  let leftRunning: string[] = [];
  let ended: EndRunOutcome | undefined;
  try {
    let artifact: RunManifest['artifact'];
    if (artifactPath) {
      const packed = await publishArtifact(store, artifactPath);
      artifact = { key: packed.key, sha256: packed.sha256, bytes: packed.bytes };
      emit({ type: 'phase', phase: 'artifact', detail: `${(packed.bytes / 1024).toFixed(1)} KiB, ${packed.uploaded ? 'uploaded' : 'already in the store'}` });
    }
    const agentKey = await publishAgent(store);
    emit({ type: 'phase', phase: 'agent', detail: agentKey });

    const createdAt = new Date();
    const faults = expandFaults(spec);
    const expiresAt = new Date(createdAt.getTime() + spec.timeouts.instance);
    const manifest: RunManifest = {
      formatVersion: 1,
      runId,
      name: spec.name,
      createdAt: createdAt.toISOString(),
      instances: spec.instances,
      minInstances: spec.minInstances ?? spec.instances,
      repeats: spec.repeats,
      artifact,
      setup: spec.setup,
      run: spec.run,
      params: spec.params,
      groups: spec.groups,
      collect: spec.collect,
      startDelayMs: spec.startDelay,
      timeouts: {
        barrierMs: spec.timeouts.barrier,
        setupMs: spec.timeouts.setup,
        runMs: spec.timeouts.run,
        instanceMs: spec.timeouts.instance,
      },
      expiresAt: expiresAt.toISOString(),
      terminateWhenDone: !spec.keep,
      provider: spec.provider.kind,
      ...(spec.network ? { network: spec.network } : {}),
      ...(faults ? { faults } : {}),
      specSource: source,
    };
    await putJson(store, layout.manifest(runId), manifest);
    emit({ type: 'phase', phase: 'manifest', detail: runId });
    await rememberRun({ id: runId, kind: 'run', name: spec.name, createdAt: manifest.createdAt, store: store.locator }, options.home);
    await options.onManifest?.(manifest);

    provider = options.provider ?? (await createProvider(spec.provider, { home: options.home }));
    instances = await provider.launch({
      runId,
      specName: spec.name,
      count: spec.instances,
      minCount: spec.minInstances ?? spec.instances,
      provider: spec.provider,
      boot: { runId, store: agentLocator, agentKey, expiresAt },
      onProgress: (message) => emit({ type: 'phase', phase: 'launch', detail: message }),
    });
    emit({ type: 'launched', runId, instances });

    const boot = new BootWatch(store, provider, runId, instances, spec.timeouts.boot);
    const { status, lost } = await followRun(store, provider, manifest, options, emit, boot);
    endedForBootFailures = boot.healthy < manifest.minInstances;
    notBooted = boot.booting;
    outcome = {
      runId,
      store: store.locator,
      status,
      // Instances that did not boot are reported as such, not as lost.
      lostInstances: lost.filter((id) => !boot.failed.some((f) => f.instanceId === id)),
      ok: status.state === 'done' && lost.length === 0 && boot.failed.length === 0,
      bootFailures: boot.failed,
      endedForBootFailures,
    };
    failed = false;
  } finally {
    try {
      if (provider && instances.length > 0) {
        ({ leftRunning, ended } = await cleanUp(store, provider, runId, instances, { ...options, keep: spec.keep && !failed, completed: !failed, endedForBootFailures, notBooted }, emit));
        // Stopped early: the summary shows the run as it was left (stopped repeats, repeats not run).
        if (ended && outcome) outcome = { ...outcome, status: await runStatus(store, runId).catch(() => outcome!.status) };
      }
    } catch (error) {
      // An error while cleaning up never hides the first failure.
      if (!failed) throw error;
      emit({ type: 'phase', phase: 'cleanup', detail: `could not end every instance: ${(error as Error).message}` });
    } finally {
      await provider?.dispose?.();
      await store.dispose();
    }
  }
  return { ...outcome!, ...(leftRunning.length > 0 ? { leftRunning } : {}), ...(ended ? { ended } : {}) };
}

/**
 * After the run: its instances end (they end themselves after the last repeat; this makes sure),
 * except with `keep: true`. A run stopped early asks `confirmEnd` first, and ends them through the
 * abort record so that the agents upload the logs of the command they stop. Returns the ids left
 * running, and what ending a stopped run did.
 */
async function cleanUp(
  store: Store,
  provider: Provider,
  runId: string,
  instances: readonly InstanceInfo[],
  options: RunOptions & {
    readonly keep: boolean;
    readonly completed: boolean;
    readonly endedForBootFailures: boolean;
    /** Instances still booting when the run ended: no agent there to stop by itself. */
    readonly notBooted: readonly string[];
  },
  emit: (event: RunEvent) => void,
): Promise<{ leftRunning: string[]; ended?: EndRunOutcome }> {
  const ids = instances.map((i) => i.id);
  if (options.endedForBootFailures) {
    // The instances that did boot wait at the barrier for ones that never come: they stop and upload what they have.
    emit({ type: 'phase', phase: 'cleanup', detail: `too few instances booted: ending all ${ids.length}` });
    if (options.notBooted.length > 0) await provider.terminate(options.notBooted);
    const ended = await endRun(store, provider, runId, { graceMs: options.endGraceMs ?? 10_000, reason: 'too few instances booted' });
    return { leftRunning: [], ended };
  }
  if (options.signal?.aborted) {
    const end = options.confirmEnd ? await options.confirmEnd({ runId, instances: ids.length }) : true;
    if (!end) {
      emit({ type: 'phase', phase: 'cleanup', detail: `left ${ids.length} instance(s) running: follow with \`lockstep status ${runId}\`, end them with \`lockstep down ${runId}\`` });
      return { leftRunning: ids };
    }
    emit({ type: 'phase', phase: 'cleanup', detail: `ending ${ids.length} instance(s)` });
    const ended = await endRun(store, provider, runId, { graceMs: options.endGraceMs ?? 10_000, reason: 'lockstep run was interrupted' });
    return { leftRunning: [], ended };
  }
  if (options.keep) {
    const running = (await provider.list(runId)).filter((i) => i.state !== 'ended').map((i) => i.id);
    if (running.length > 0) {
      emit({ type: 'phase', phase: 'cleanup', detail: `keep: ${running.length} instance(s) stay up until their expiry; end them with \`lockstep down ${runId}\`` });
      return { leftRunning: running };
    }
  }
  let running = ids;
  if (options.completed) {
    // After the last repeat the agents end their instances themselves: give them a moment to.
    const deadline = Date.now() + (options.endGraceMs ?? 10_000);
    while (running.length > 0 && Date.now() < deadline) {
      await delay(200);
      running = (await provider.list(runId)).filter((i) => i.state !== 'ended').map((i) => i.id);
    }
  }
  emit({ type: 'phase', phase: 'cleanup', detail: running.length > 0 ? `ending ${running.length} instance(s)` : 'every instance has ended' });
  // Every id, not only those still running: ending an ended instance is harmless, and the
  // provider forgets the run once none of its instances runs.
  await provider.terminate(ids);
  return { leftRunning: [] };
}

/**
 * What following a run of 1,000 or more instances may cost in store requests per minute: the same
 * prefixes serve the barrier, whose read rate is budgeted carefully (docs/barrier.md). A smaller run
 * may follow more often (the budget grows as 1,000 / N): its agents load the store less.
 */
export const FOLLOW_REQUESTS_PER_MINUTE = 100;

/**
 * Follows a run until every repeat is over (or every instance has ended) from a few aggregate
 * objects (`readProgress`), pacing its reads to FOLLOW_REQUESTS_PER_MINUTE; then reads the whole
 * status once, for the summary and to tell which instances were lost.
 */
export async function followRun(
  store: Store,
  provider: Provider,
  manifest: RunManifest,
  options: Pick<RunOptions, 'pollIntervalMs' | 'signal'>,
  emit: (event: RunEvent) => void,
  /** Instances still booting: ended when they fail to, and the run with them when too few are left. */
  boot?: BootWatch,
): Promise<{ status: RunStatus; lost: string[] }> {
  const minIntervalMs = options.pollIntervalMs ?? 500;
  const deadline = Date.parse(manifest.expiresAt) + 60_000;
  const counted = countingStore(store);
  const spent = () => Object.values(counted.counts).reduce((a, b) => a + b, 0);
  let progress: RunProgress | undefined;
  let seen = false;
  for (;;) {
    // The provider first: an agent records how it ended before it exits, so the status read after
    // holds the last record of every instance the provider knows as ended.
    const alive = await provider.list(manifest.runId);
    // Instances it listed before and lists no more are gone too (`lockstep down` made the local
    // provider forget the run meanwhile): else following would wait for the expiry.
    const allEnded = alive.length > 0 ? alive.every((i) => i.state === 'ended') : seen;
    seen ||= alive.length > 0;
    if (boot?.pending) {
      const failures = await boot.check();
      if (failures.length > 0) {
        emit({ type: 'boot-failed', failures });
        // They will never join: end them now.
        await provider.terminate(failures.map((f) => f.instanceId));
        if (boot.healthy < manifest.minInstances) return { status: await runStatus(store, manifest.runId, manifest), lost: [] };
      }
    }
    const before = spent();
    progress = await readProgress(counted, manifest, { previous: progress, running: new Set(alive.filter((i) => i.state !== 'ended').map((i) => i.id)) });
    emit({ type: 'progress', progress });
    const over = progress.state === 'done' || progress.state === 'failed';
    if (over || allEnded || Date.now() > deadline || options.signal?.aborted) {
      // Read once in full (when every instance is gone, the last uploads may have landed meanwhile).
      const status = await runStatus(store, manifest.runId, manifest);
      emit({ type: 'status', status });
      if (!over && !allEnded) return { status, lost: [] };
      // Instances the provider knows as ended whose agent never said it finished: they died.
      const finished = await finishedInstances(store, manifest.runId, status);
      return { status, lost: alive.filter((i) => i.state === 'ended' && !finished.has(i.id)).map((i) => i.id) };
    }
    const budget = FOLLOW_REQUESTS_PER_MINUTE * Math.max(1, 1000 / manifest.instances);
    const waitMs = Math.max(minIntervalMs, ((spent() - before) * 60_000) / budget);
    await delay(waitMs, undefined, { signal: options.signal }).catch(() => {});
  }
}

/**
 * Instances whose agent finished its part of the run. An agent that stopped on a signal when
 * nobody asked the run to stop (no abort record) was ended from outside, as when a spot instance
 * is reclaimed: that instance was lost, whatever its agent managed to write.
 */
async function finishedInstances(store: Store, runId: string, status: RunStatus): Promise<Set<string>> {
  const aborted = (await store.get(layout.abort(runId))) !== undefined;
  return new Set(status.instances.filter((i) => agentEnded(i.state) && (aborted || i.state !== 'aborted')).map((i) => i.instanceId));
}
