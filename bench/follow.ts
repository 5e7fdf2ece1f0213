/**
 * What following a run costs the store: the controller's requests per minute while N instances go
 * through their repeats (`followRun`, as `lockstep run` follows), beside what the same run cost when
 * every poll read every instance record and every result (one full `runStatus` every 0.5 s).
 *
 * The fleet is simulated: its records appear in a folder store on the schedule real agents would
 * write them (boot, ready records and the barrier's progress record, done markers and results), so
 * that N=1,000 costs no processes; the controller's side is the real code.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { followRun } from '../src/controller/run.ts';
import { runStatus } from '../src/controller/status.ts';
import { layout, nodeFiles } from '../src/core/layout.ts';
import type { BarrierProgress, InstanceRecord, NodeResult, RunManifest, StartRecord } from '../src/core/manifest.ts';
import type { InstanceInfo, Provider } from '../src/provider/provider.ts';
import { countingStore, noRequests, type RequestCounts } from '../src/store/counting.ts';
import { createFolderStore } from '../src/store/folder.ts';
import { putJson, type Store } from '../src/store/store.ts';

export interface FollowResult {
  readonly n: number;
  readonly repeats: number;
  /** Seconds the run was followed. */
  readonly followedSeconds: number;
  /** Store requests per minute while following. */
  readonly requestsPerMinute: number;
  /** Requests of the one full read at the end (the summary). */
  readonly finalReadRequests: number;
  /** One full `runStatus` mid-run, as every poll did before, × 120 polls a minute. */
  readonly fullReadPerMinute: number;
}

export async function benchFollow(options: { readonly n: number; readonly repeats: number; readonly log: (line: string) => void }): Promise<FollowResult> {
  const { n, repeats } = options;
  const root = await mkdtemp(join(tmpdir(), 'lockstep-bench-follow-'));
  try {
    const store = createFolderStore({ root });
    const runId = 'bench-follow';
    const ids = Array.from({ length: n }, (_, i) => `i-${i.toString(16).padStart(8, '0')}`);
    const manifest = { formatVersion: 1, runId, name: 'bench', instances: n, minInstances: n, repeats, run: 'true', timeouts: { barrierMs: 600_000 }, expiresAt: new Date(Date.now() + 3_600_000).toISOString() } as unknown as RunManifest;
    await putJson(store, layout.manifest(runId), manifest);

    let fleetOver = false;
    let fullReadRequests = 0;
    const fleet = simulateFleet(store, runId, ids, repeats, async () => {
      // Mid-run, once: what one poll cost when it read everything.
      const full = countingStore(store);
      await runStatus(full, runId, manifest);
      fullReadRequests = total(full.counts);
    }).then(() => (fleetOver = true));
    const provider: Provider = {
      kind: 'bench',
      launch: async () => [],
      list: async (): Promise<InstanceInfo[]> => ids.map((id) => ({ id, runId, state: fleetOver ? 'ended' : 'running' })),
      terminate: async () => {},
    };
    const counted = countingStore(store);
    let followed: RequestCounts = noRequests();
    const began = Date.now();
    let lastProgressAt = began;
    await followRun(counted, provider, manifest, { pollIntervalMs: 500 }, (event) => {
      if (event.type !== 'progress') return;
      followed = { ...counted.counts };
      lastProgressAt = Date.now();
    });
    await fleet;
    const followedSeconds = (lastProgressAt - began) / 1000;
    const result: FollowResult = {
      n,
      repeats,
      followedSeconds,
      requestsPerMinute: (total(followed) / followedSeconds) * 60,
      finalReadRequests: total(counted.counts) - total(followed),
      fullReadPerMinute: fullReadRequests * 120,
    };
    options.log(
      `following N=${n}: ${result.requestsPerMinute.toFixed(0)} requests/min over ${followedSeconds.toFixed(0)} s (full read at the end: ${result.finalReadRequests}); reading everything every 0.5 s: ${result.fullReadPerMinute.toLocaleString('en-US')}/min`,
    );
    return result;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const total = (counts: RequestCounts) => counts.put + counts.get + counts.list + counts.delete;

/** N instances boot over 3 s, then per repeat: ready over 4 s, the barrier closes, results over 8 s. */
async function simulateFleet(store: Store, runId: string, ids: readonly string[], repeats: number, midRun: () => Promise<void>): Promise<void> {
  const now = () => new Date().toISOString();
  await spread(ids, 3000, async (instanceId) => {
    const record: InstanceRecord = { instanceId, address: '10.0.0.1', bootedAt: now(), heartbeatAt: now(), state: 'waiting', agentVersion: 'bench' };
    await putJson(store, layout.instance(runId, instanceId), record);
  });
  for (let repeat = 1; repeat <= repeats; repeat++) {
    let ready = 0;
    const progress = (start?: StartRecord): BarrierProgress => ({ expected: ids.length, count: ready, watcher: ids[0]!, updatedAt: Date.now(), listedAt: Date.now(), writeLagMs: 0, cycleMs: 250, nextListAt: Date.now() + 250, quietUntil: Date.now(), ...(start && { start }) });
    const watcher = setInterval(() => void putJson(store, layout.barrier(runId, repeat), progress()), 250);
    const members = await spread(ids, 4000, async (instanceId, i) => {
      const record = { instanceId, address: `10.0.${i >> 8}.${i & 255}`, readyAt: Date.now() };
      await putJson(store, layout.ready(runId, repeat, instanceId), record);
      ready++;
      return record;
    });
    clearInterval(watcher);
    const start: StartRecord = { members, startAt: Date.now() + 1000, writtenBy: ids[0]!, quorum: false };
    await putJson(store, layout.start(runId, repeat), start);
    await putJson(store, layout.barrier(runId, repeat), progress(start));
    await delay(1000);
    if (repeat === 1) void midRun();
    await spread(ids, 8000, async (instanceId, rank) => {
      const result = { runId, repeat, rank, n: ids.length, instanceId, outcome: 'success', startedAt: start.startAt, durationMs: 1 } as NodeResult;
      await putJson(store, layout.node(runId, repeat, rank) + nodeFiles.result, result);
      await store.put(layout.done(runId, repeat, instanceId, 'success'), '');
    });
  }
}

/** Runs `write` for every item, spread evenly over `ms`. */
async function spread<T, R>(items: readonly T[], ms: number, write: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const began = Date.now();
  const out: R[] = [];
  for (const [i, item] of items.entries()) {
    const due = began + (i * ms) / items.length;
    if (due > Date.now()) await delay(due - Date.now());
    out.push(await write(item, i));
  }
  return out;
}
