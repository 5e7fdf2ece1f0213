import { setTimeout as delay } from 'node:timers/promises';
import { layout, parseDoneKey } from '../core/layout.ts';
import type { RunManifest, StartRecord } from '../core/manifest.ts';
import { getJson, type Store } from '../store/store.ts';

export interface RepeatEndingWatch {
  readonly store: Store;
  readonly manifest: Pick<RunManifest, 'runId' | 'timeouts'>;
  readonly repeat: number;
  readonly signal?: AbortSignal;
  /** How often to LIST the repeat's done markers. */
  readonly pollMs?: number;
}

/**
 * A node left out of a repeat joins the next one when that repeat's members are finishing: the
 * first member done, or the repeat's run timeout passed (members may be lost). Arriving at the next
 * barrier while they still run would start its timeout alone, long before the others come.
 */
export async function awaitRepeatEnding({ store, manifest, repeat, signal, pollMs = 2000 }: RepeatEndingWatch): Promise<void> {
  const start = await getJson<StartRecord>(store, layout.start(manifest.runId, repeat));
  if (!start) return;
  const members = new Set(start.members.map((m) => m.instanceId));
  const latest = start.startAt + manifest.timeouts.runMs;
  while (!signal?.aborted && Date.now() < latest) {
    const done = await store.list(layout.donePrefix(manifest.runId, repeat));
    if (done.some((o) => members.has(parseDoneKey(o.key)?.instanceId ?? ''))) return;
    await delay(Math.min(pollMs, latest - Date.now()), undefined, { signal }).catch(() => undefined);
  }
}
