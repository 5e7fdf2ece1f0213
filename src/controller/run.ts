import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../core/layout.ts';
import type { RunManifest } from '../core/manifest.ts';
import type { InstanceInfo, Provider } from '../provider/provider.ts';
import type { LoadedSpec } from '../spec/load.ts';
import { DEFAULT_STORE, openStore } from '../store/open.ts';
import { putJson, type Store } from '../store/store.ts';
import { publishAgent } from './agent-bundle.ts';
import { publishArtifact } from './artifact.ts';
import { createProvider } from './providers.ts';
import { newRunId } from './run-id.ts';
import { runStatus, type RunStatus } from './status.ts';

export type RunPhase = 'store' | 'artifact' | 'agent' | 'manifest' | 'launch' | 'run' | 'cleanup';

export type RunEvent =
  | { readonly type: 'phase'; readonly phase: RunPhase; readonly detail: string }
  | { readonly type: 'launched'; readonly runId: string; readonly instances: readonly InstanceInfo[] }
  | { readonly type: 'status'; readonly status: RunStatus };

export interface RunOptions {
  readonly loaded: LoadedSpec;
  /** Store locator; default: the spec's `store`, then `.lockstep/store` in `cwd`. */
  readonly store?: string;
  readonly cwd?: string;
  /** Local provider state folder (tests use their own). */
  readonly home?: string;
  readonly onEvent?: (event: RunEvent) => void;
  /** Ends the run early (Ctrl-C): instances are ended unless `keepOnAbort`. */
  readonly signal?: AbortSignal;
  readonly pollIntervalMs?: number;
  /** A provider to use instead of the one the spec names (tests). */
  readonly provider?: Provider;
}

export interface RunOutcome {
  readonly runId: string;
  readonly store: string;
  readonly status: RunStatus;
  /** Instances that ended before their run was over. */
  readonly lostInstances: readonly string[];
  readonly ok: boolean;
}

export class StoreUnreachableError extends Error {
  override readonly name = 'StoreUnreachableError';
  constructor(
    readonly locator: string,
    options: { cause?: unknown },
  ) {
    super(`Cannot reach the store ${locator}: ${(options.cause as Error | undefined)?.message ?? 'unknown error'}; check the locator and credentials`, options);
  }
}

export function storeLocatorFor(loaded: LoadedSpec, override?: string): string {
  return override ?? process.env.LOCKSTEP_STORE ?? loaded.spec.store ?? DEFAULT_STORE;
}

/** Opens a store and proves it answers, so a bad locator fails before anything is launched. */
export async function openReachableStore(locator: string, cwd?: string): Promise<Store> {
  const store = await openStore(locator, { cwd });
  try {
    await store.list(layout.runsPrefix(), { pageSize: 1 });
  } catch (error) {
    await store.dispose();
    throw new StoreUnreachableError(locator, { cause: error });
  }
  return store;
}

/**
 * Runs an experiment: publishes artifact, agent and manifest, launches the instances, follows the
 * run in the store until every repeat is over, and makes sure every instance has ended.
 */
export async function runExperiment(options: RunOptions): Promise<RunOutcome> {
  const { spec, artifactPath, source } = options.loaded;
  const emit = options.onEvent ?? (() => {});
  const locator = storeLocatorFor(options.loaded, options.store);
  emit({ type: 'phase', phase: 'store', detail: locator });
  const store = await openReachableStore(locator, options.cwd);
  // Agents open the store on their own; a folder store must not depend on their working folder.
  const agentLocator = store.locator;
  let provider: Provider | undefined;
  let instances: InstanceInfo[] = [];
  try {
    const runId = newRunId(spec.name);
    let artifact: RunManifest['artifact'];
    if (artifactPath) {
      const packed = await publishArtifact(store, artifactPath);
      artifact = { key: packed.key, sha256: packed.sha256, bytes: packed.bytes };
      emit({ type: 'phase', phase: 'artifact', detail: `${(packed.bytes / 1024).toFixed(1)} KiB, ${packed.uploaded ? 'uploaded' : 'already in the store'}` });
    }
    const agentKey = await publishAgent(store);
    emit({ type: 'phase', phase: 'agent', detail: agentKey });

    const createdAt = new Date();
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
      terminateWhenDone: true,
      provider: spec.provider.kind,
      specSource: source,
    };
    await putJson(store, layout.manifest(runId), manifest);
    emit({ type: 'phase', phase: 'manifest', detail: runId });

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

    const { status, lost } = await follow(store, provider, manifest, options, emit);
    return { runId, store: store.locator, status, lostInstances: lost, ok: status.state === 'done' && lost.length === 0 };
  } finally {
    if (provider && instances.length > 0) {
      emit({ type: 'phase', phase: 'cleanup', detail: `ending ${instances.length} instance(s)` });
      await provider.terminate(instances.map((i) => i.id));
    }
    await provider?.dispose?.();
    await store.dispose();
  }
}

async function follow(
  store: Store,
  provider: Provider,
  manifest: RunManifest,
  options: RunOptions,
  emit: (event: RunEvent) => void,
): Promise<{ status: RunStatus; lost: string[] }> {
  const interval = options.pollIntervalMs ?? 500;
  const deadline = Date.parse(manifest.expiresAt) + 60_000;
  for (;;) {
    const status = await runStatus(store, manifest.runId, manifest);
    emit({ type: 'status', status });
    if (status.state === 'done' || status.state === 'failed') return { status, lost: [] };
    const alive = await provider.list(manifest.runId);
    if (alive.length > 0 && alive.every((i) => i.state === 'ended')) {
      // Every instance is gone: read once more, since the last uploads may have landed meanwhile.
      const final = await runStatus(store, manifest.runId, manifest);
      emit({ type: 'status', status: final });
      const finishedIds = new Set(final.instances.filter((i) => ['done', 'failed', 'aborted', 'expired'].includes(i.state)).map((i) => i.instanceId));
      return { status: final, lost: alive.filter((i) => !finishedIds.has(i.id)).map((i) => i.id) };
    }
    if (Date.now() > deadline || options.signal?.aborted) return { status, lost: [] };
    await delay(interval, undefined, { signal: options.signal }).catch(() => {});
  }
}
