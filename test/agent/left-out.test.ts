import { describe, expect, it } from 'vitest';
import { awaitRepeatEnding } from '../../src/agent/left-out.ts';
import { layout } from '../../src/core/layout.ts';
import type { StartRecord } from '../../src/core/manifest.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { getJson, putJson } from '../../src/store/store.ts';
import { tempDir } from '../helpers/temp.ts';

const runId = 'left-out';
const member = (instanceId: string, address: string) => ({ instanceId, address, readyAt: Date.now() });

/** A store holding repeat 1's start record (members i-a and i-b, T now), and the watch's settings. */
async function repeatUnderWay(runMs: number) {
  const store = createFolderStore({ root: tempDir('left-out') });
  const start: StartRecord = { members: [member('i-a', '10.0.0.1'), member('i-b', '10.0.0.2')], startAt: Date.now(), writtenBy: 'i-a', quorum: true };
  await putJson(store, layout.start(runId, 1), start);
  return { store, manifest: { runId, timeouts: { barrierMs: 1000, setupMs: 1000, runMs, instanceMs: 60_000 } }, repeat: 1, pollMs: 20 };
}

describe('a node left out of a repeat', () => {
  it('waits until a member of that repeat is done, not for its own done marker', async () => {
    const watch = await repeatUnderWay(60_000);
    let over = false;
    const waiting = awaitRepeatEnding(watch).then(() => (over = true));
    await watch.store.put(layout.done(runId, 1, 'i-late', 'barrier-failure'), '');
    await new Promise((r) => setTimeout(r, 200));
    expect(over).toBe(false);
    await watch.store.put(layout.done(runId, 1, 'i-b', 'success'), '');
    await waiting;
    expect(over).toBe(true);
  });

  it('waits no longer than the repeat’s run timeout when no member reports (members lost)', async () => {
    const watch = await repeatUnderWay(300);
    await awaitRepeatEnding(watch);
    const start = await getJson<StartRecord>(watch.store, layout.start(runId, 1));
    expect(Date.now()).toBeGreaterThanOrEqual(start!.startAt + 300);
  });

  it('stops waiting when the agent is stopped', async () => {
    const watch = await repeatUnderWay(60_000);
    const stop = new AbortController();
    const waiting = awaitRepeatEnding({ ...watch, signal: stop.signal });
    stop.abort();
    await expect(waiting).resolves.toBeUndefined();
  });
});
