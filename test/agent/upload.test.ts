import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadFile } from '../../src/agent/upload.ts';
import { createS3HttpStore } from '../../src/store/s3-http.ts';
import { parseS3Locator } from '../../src/store/s3-locator.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { tempDir } from '../helpers/temp.ts';

describe('uploading a log', () => {
  let s3: S3Server;
  let proxy: FaultProxy;
  beforeAll(async () => {
    s3 = await startS3Server();
    Object.assign(process.env, s3.env);
    // Every request fails 5 times in a row before it gets through: more often than the store retries (3).
    proxy = await startFaultProxy({ target: s3.endpoint, rate: 1, kinds: ['error500'], maxConsecutive: 5 });
  });
  afterAll(async () => {
    await proxy?.stop();
    await s3?.stop();
  });

  it('goes on past the store giving up, until a server that fails more often than the store retries takes it', async () => {
    // The agent's S3 driver.
    const store = createS3HttpStore({ ...parseS3Locator(s3.locator('upload/', { endpoint: proxy.url })), maxAttempts: 3 });
    const bytes = randomBytes(100_000);
    const path = join(tempDir('upload'), 'stdout.log');
    await writeFile(path, bytes);
    try {
      await expect(store.putFile('direct', path), 'the store alone gives up after 3 attempts').rejects.toThrow(/failed after 3 attempts/);
      const before = proxy.counts.faults;
      await uploadFile(store, 'stdout.log', path);
      expect(proxy.counts.faults - before).toBe(5);
      proxy.setEnabled(false);
      expect(Buffer.from((await store.get('stdout.log'))!).equals(bytes)).toBe(true);
    } finally {
      await store.dispose();
    }
  });
});
