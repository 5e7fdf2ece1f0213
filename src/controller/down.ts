import { setTimeout as delay } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import { layout } from '../core/layout.ts';
import { agentEnded, type AbortRecord, type InstanceRecord, type RunManifest } from '../core/manifest.ts';
import type { Provider } from '../provider/provider.ts';
import { provider as providerSchema, type ProviderSpec } from '../spec/schema.ts';
import { getJson, putJson, type Store } from '../store/store.ts';
import { createProvider } from './providers.ts';
import { UsageError } from '../core/errors.ts';
import { openRunStore } from './locate.ts';
import { loadManifest } from './status.ts';

export interface EndRunOptions {
  /**
   * How long the agents get to notice the abort record and stop by themselves (ending the command
   * and uploading its logs) before their instances are ended regardless. Default 15 s.
   */
  readonly graceMs?: number;
  readonly reason?: string;
  readonly onProgress?: (message: string) => void;
}

export interface EndRunOutcome {
  /** Instances that were running and were ended. */
  readonly ended: readonly string[];
  /** Of those, the ones whose agent had stopped by itself before the provider ended them. */
  readonly stoppedByThemselves: readonly string[];
  /** Instances the provider knew as ended already. */
  readonly alreadyEnded: readonly string[];
}

/**
 * Ends a run: writes its abort record, gives the agents `graceMs` to stop by themselves, then ends
 * every instance of the run that the provider still knows as running.
 */
export async function endRun(store: Store, provider: Provider, runId: string, options: EndRunOptions = {}): Promise<EndRunOutcome> {
  const graceMs = options.graceMs ?? 15_000;
  const record: AbortRecord = { runId, at: new Date().toISOString(), reason: options.reason ?? 'lockstep down' };
  await putJson(store, layout.abort(runId), record);
  const instances = await provider.list(runId);
  const live = instances.filter((i) => i.state !== 'ended').map((i) => i.id);
  const alreadyEnded = instances.filter((i) => i.state === 'ended').map((i) => i.id);
  const stopped = new Set<string>();
  if (live.length > 0 && graceMs > 0) {
    options.onProgress?.(`asked ${live.length} agent(s) to stop; waiting up to ${Math.round(graceMs / 1000)} s`);
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      const records = await instanceRecords(store, runId).catch(() => []);
      for (const r of records) if (agentEnded(r.state)) stopped.add(r.instanceId);
      const gone = new Set((await provider.list(runId)).filter((i) => i.state === 'ended').map((i) => i.id));
      if (live.every((id) => stopped.has(id) || gone.has(id))) break;
      await delay(Math.min(500, Math.max(0, deadline - Date.now())));
    }
  }
  if (live.length > 0) options.onProgress?.(`ending ${live.length} instance(s)`);
  // The ended ones too: ending an ended instance is harmless, and lets the provider clear what it
  // left (an SSH host's working folder, the local provider's record of the run).
  if (instances.length > 0) await provider.terminate(instances.map((i) => i.id));
  return { ended: live, stoppedByThemselves: live.filter((id) => stopped.has(id)), alreadyEnded };
}

export interface DownOptions extends EndRunOptions {
  readonly runId: string;
  /** Store locator of the run (default: the store it ran with, see `openRunStore`). */
  readonly store?: string;
  readonly cwd?: string;
  /** Local provider state folder (default `$LOCKSTEP_HOME` or `~/.lockstep`). */
  readonly home?: string;
  /** A provider to use instead of the one the run's spec names (tests). */
  readonly provider?: Provider;
}

export interface DownOutcome extends EndRunOutcome {
  readonly runId: string;
  readonly store: string;
  readonly provider: string;
}

/** `lockstep down <runId>`: tells the run's agents to stop and ends its instances. */
export async function downRun(options: DownOptions): Promise<DownOutcome> {
  const { store, kind } = await openRunStore(options.runId, { store: options.store, cwd: options.cwd, home: options.home });
  try {
    if (kind === 'sweep') throw new UsageError(`\`${options.runId}\` is a sweep: end its runs one by one (\`lockstep status ${options.runId}\` lists them)`);
    const manifest = await loadManifest(store, options.runId);
    const provider = options.provider ?? (await createProvider(providerSpecOf(manifest), { home: options.home }));
    try {
      const outcome = await endRun(store, provider, options.runId, options);
      return { runId: options.runId, store: store.locator, provider: provider.kind, ...outcome };
    } finally {
      if (!options.provider) await provider.dispose?.();
    }
  } finally {
    await store.dispose();
  }
}

/** The provider section of the spec a run was started with (it is in the manifest, as text). */
export function providerSpecOf(manifest: RunManifest): ProviderSpec {
  try {
    const fromSpec = (parseYaml(manifest.specSource) as { provider?: unknown } | null)?.provider;
    const parsed = providerSchema.safeParse(fromSpec ?? manifest.provider);
    if (parsed.success) return parsed.data;
  } catch {
    // Fall back to the kind alone.
  }
  return providerSchema.parse(manifest.provider);
}

async function instanceRecords(store: Store, runId: string): Promise<InstanceRecord[]> {
  const keys = (await store.list(layout.instancesPrefix(runId))).map((o) => o.key).filter((k) => k.endsWith('.json'));
  const records = await Promise.all(keys.map((k) => getJson<InstanceRecord>(store, k)));
  return records.filter((r): r is InstanceRecord => r !== undefined);
}
