import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awaitBarrier } from '../../src/agent/barrier.ts';
import { layout } from '../../src/core/layout.ts';
import type { StartRecord } from '../../src/core/manifest.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson, type Store } from '../../src/store/store.ts';
import { startMotoS3Server, startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { tempDir } from '../helpers/temp.ts';

const runId = 'barrier-final';
const node = (i: number) => ({ instanceId: `i-${i}`, address: `10.0.0.${i + 1}` });

let s3: S3Server;
let moto: S3Server;
let prefixes = 0;
beforeAll(async () => {
  [s3, moto] = await Promise.all([startS3Server(), startMotoS3Server()]);
  Object.assign(process.env, s3.env);
});
afterAll(async () => {
  await Promise.all([s3?.stop(), moto?.stop()]);
});

const stores: Array<{ name: string; open: () => Promise<Store> }> = [
  { name: 'folder store', open: async () => createFolderStore({ root: tempDir('barrier-final') }) },
  { name: 's3rver (ignores conditional writes)', open: async () => openStore(s3.locator(`final-${++prefixes}/`)) },
  { name: 'moto (honours conditional writes)', open: async () => openStore(moto.locator(`final-${++prefixes}/`)) },
];

describe.each(stores)('a start record, once written, is final ($name)', ({ open }) => {
  it('a node that arrives after a quorum close is left out, and the start record stays as it was', async () => {
    const store = await open();
    const request = (i: number) => ({
      store,
      runId,
      repeat: 1,
      self: node(i),
      expected: 3,
      minMembers: 2,
      timeoutMs: 300,
      startDelayMs: 100,
      tuning: { quorumGraceMs: 100 },
      measureClockOffset: false,
    });
    const closed = await Promise.all([0, 1].map((i) => awaitBarrier(request(i))));
    const first = (await getJson<StartRecord>(store, layout.start(runId, 1)))!;
    expect(first.quorum).toBe(true);
    expect(first.members.map((m) => m.instanceId)).toEqual(['i-0', 'i-1']);
    for (const o of closed) expect(o.start.startAt).toBe(first.startAt);

    const late = await awaitBarrier(request(2));
    expect(late.rank).toBe(-1);
    expect(late.start).toEqual(first);
    expect(await getJson<StartRecord>(store, layout.start(runId, 1))).toEqual(first);
    await store.dispose();
  });
});
