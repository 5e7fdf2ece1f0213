import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readProgress } from '../../src/controller/progress.ts';
import { runStatus } from '../../src/controller/status.ts';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import { HEARTBEAT_STALE_MS, type BarrierProgress, type InstanceRecord, type NodeResult, type RunManifest, type StartRecord } from '../../src/core/manifest.ts';
import { countingStore } from '../../src/store/counting.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { putJson, type Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/temp.ts';

const runId = 'progress-run';
const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${String(i).padStart(4, '0')}`);

function manifest(n: number, repeats: number): RunManifest {
  return { runId, instances: n, minInstances: n, repeats, timeouts: { barrierMs: 60_000 } } as unknown as RunManifest;
}

function start(members: string[]): StartRecord {
  return { members: members.map((instanceId, i) => ({ instanceId, address: `10.0.${i >> 8}.${i & 255}`, readyAt: 1000 })), startAt: 2000, writtenBy: members[0]!, quorum: false };
}

async function instanceRecords(store: Store, members: string[], heartbeatAt = new Date().toISOString()): Promise<void> {
  for (const instanceId of members) {
    const record: InstanceRecord = { instanceId, address: '10.0.0.1', bootedAt: heartbeatAt, heartbeatAt, state: 'running', agentVersion: 't' };
    await putJson(store, layout.instance(runId, instanceId), record);
  }
}

async function closed(store: Store, repeat: number, members: string[]): Promise<void> {
  const record: BarrierProgress = { expected: members.length, count: members.length, watcher: members[0]!, updatedAt: 0, listedAt: 0, writeLagMs: 0, cycleMs: 0, nextListAt: 0, quietUntil: 0, start: start(members) };
  await putJson(store, layout.barrier(runId, repeat), record);
}

describe('following a run from aggregates', () => {
  it('counts ready, done and failed nodes per repeat from a few requests, whatever N', async () => {
    const n = 1000;
    const members = ids(n);
    const store = countingStore(createFolderStore({ root: tempDir('progress') }));
    await instanceRecords(store, members);
    await closed(store, 1, members);
    for (const [i, id] of members.entries()) if (i < 700) await store.put(layout.done(runId, 1, id, i < 690 ? 'success' : 'failed'), '');
    const before = { ...store.counts };
    const progress = await readProgress(store, manifest(n, 2));
    const requests = Object.keys(before).reduce((sum, k) => sum + store.counts[k as keyof typeof before] - before[k as keyof typeof before], 0);
    expect(progress.repeats[0]).toMatchObject({ repeat: 1, ready: n, members: n, succeeded: 690, failed: 10, state: 'running' });
    expect(progress.repeats[1]).toMatchObject({ repeat: 2, state: 'waiting' });
    expect(progress.state).toBe('running');
    // A LIST of the instances, a GET of repeat 1's progress record and a LIST of its done markers, a GET of repeat 2's.
    expect(requests).toBe(4);
  });

  it('sees a repeat over once every member is through, and does not read it again', async () => {
    const members = ids(4);
    const store = countingStore(createFolderStore({ root: tempDir('progress') }));
    await instanceRecords(store, members);
    await closed(store, 1, members);
    for (const id of members) await store.put(layout.done(runId, 1, id, 'success'), '');
    const first = await readProgress(store, manifest(4, 2));
    expect(first.repeats[0]!.state).toBe('done');
    expect(first.repeats[1]!.state).toBe('waiting');
    await closed(store, 2, members);
    await store.put(layout.done(runId, 2, members[0]!, 'timeout'), '');
    for (const id of members.slice(1)) await store.put(layout.done(runId, 2, id, 'success'), '');
    const gets = store.counts.get;
    const second = await readProgress(store, manifest(4, 2), { previous: first });
    expect(store.counts.get - gets).toBe(1);
    expect(second.repeats.map((r) => r.state)).toEqual(['done', 'failed']);
    expect(second.state).toBe('failed');
  });

  it('a repeat whose barrier never closed is over when every ready instance recorded why', async () => {
    const members = ids(3);
    const store = createFolderStore({ root: tempDir('progress') });
    await instanceRecords(store, members);
    for (const id of members.slice(0, 2)) {
      await putJson(store, layout.ready(runId, 1, id), { instanceId: id, address: '10.0.0.1', readyAt: 1 });
      await store.put(layout.done(runId, 1, id, 'barrier-failure'), '');
    }
    await store.put(layout.done(runId, 1, members[2]!, 'setup-failure'), '');
    expect((await readProgress(store, manifest(3, 1))).repeats[0]).toMatchObject({ state: 'failed', failed: 3, members: null });
  });

  it('a repeat every instance left at setup was not run, and neither was any after it', async () => {
    const members = ids(2);
    const store = createFolderStore({ root: tempDir('progress') });
    await instanceRecords(store, members);
    for (const repeat of [1, 2]) await store.put(layout.done(runId, repeat, members[0]!, 'setup-failure'), '');
    // The other instance is still in setup: it may yet come.
    expect((await readProgress(store, manifest(2, 2))).repeats.map((r) => r.state)).toEqual(['running', 'waiting']);
    for (const repeat of [1, 2]) await store.put(layout.done(runId, repeat, members[1]!, 'setup-failure'), '');
    const progress = await readProgress(store, manifest(2, 2));
    expect(progress.repeats.map((r) => [r.state, r.failed])).toEqual([
      ['not run', 2],
      ['not run', 2],
    ]);
    expect(progress.state).toBe('failed');
  });

  it('a started repeat whose nodes `lockstep down` stopped is aborted, not failed', async () => {
    const members = ids(2);
    const store = createFolderStore({ root: tempDir('progress') });
    await instanceRecords(store, members);
    await closed(store, 1, members);
    for (const id of members) await store.put(layout.done(runId, 1, id, 'aborted'), '');
    expect((await readProgress(store, manifest(2, 2))).repeats.map((r) => r.state)).toEqual(['aborted', 'waiting']);
  });

  it('names agents whose heartbeat is stale: from the listing while following, from the records in the status', async () => {
    const members = ids(3);
    const root = tempDir('progress');
    const store = createFolderStore({ root });
    const old = new Date(Date.now() - HEARTBEAT_STALE_MS - 60_000);
    await instanceRecords(store, members.slice(0, 2));
    await instanceRecords(store, members.slice(2), old.toISOString());
    const file = join(fileURLToPath(store.locator), ...layout.instance(runId, members[2]!).split('/'));
    utimesSync(file, old, old);
    await putJson(store, layout.manifest(runId), { ...manifest(3, 1), repeats: 1 });
    const progress = await readProgress(store, manifest(3, 1));
    expect(progress.stale.map((s) => s.instanceId)).toEqual([members[2]]);
    // An instance the provider knows as ended is not stale, only gone.
    expect((await readProgress(store, manifest(3, 1), { running: new Set(members.slice(0, 2)) })).stale).toEqual([]);
    const status = await runStatus(store, runId);
    expect(status.stale.map((i) => i.instanceId)).toEqual([members[2]]);
  });

  it('counts the result records of a finished run in the full status', async () => {
    const members = ids(2);
    const store = createFolderStore({ root: tempDir('progress') });
    await putJson(store, layout.manifest(runId), manifest(2, 1));
    await putJson(store, layout.start(runId, 1), start(members));
    for (const [rank, instanceId] of members.entries()) {
      await putJson(store, layout.node(runId, 1, rank) + nodeFiles.result, { instanceId, rank, outcome: 'success', startedAt: 2000 + rank, durationMs: 5 } as NodeResult);
    }
    const status = await runStatus(store, runId);
    expect(status.repeats[0]).toMatchObject({ members: 2, skewMs: 1, state: 'done' });
  });
});
