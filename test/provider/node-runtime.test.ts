import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layout } from '../../src/core/layout.ts';
import { NodeRuntimeError, publishNodeRuntime } from '../../src/provider/node-runtime.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { startNodeMirror, type NodeMirror } from '../helpers/cloud/node-mirror.ts';
import { tempDir } from '../helpers/temp.ts';

describe('Node.js for instances without it', () => {
  let mirror: NodeMirror;
  let root: string;
  beforeAll(async () => {
    root = tempDir('node-runtime');
    mirror = await startNodeMirror(join(root, 'mirror'), 'v24.3.1');
  });
  afterAll(() => mirror?.close());

  it('takes the newest release of its major line (not a newer major) for the architecture, checks it, caches it, and puts it in the store once', async () => {
    const store = createFolderStore({ root: join(root, 'store') });
    const cacheDir = join(root, 'cache');
    const first = await publishNodeRuntime(store, 'arm64', { mirror: mirror.url, cacheDir, major: 24 });
    expect(first).toMatchObject({
      version: 'v24.3.1',
      architecture: 'arm64',
      key: layout.runtime('node-v24.3.1-linux-arm64.tar.gz'),
      dir: 'node-v24.3.1-linux-arm64',
      uploaded: true,
    });
    const stored = await store.get(first.key);
    expect(createHash('sha256').update(stored!).digest('hex')).toBe(first.sha256);
    const sums = readFileSync(join(cacheDir, 'v24.3.1-SHASUMS256.txt'), 'utf8');
    expect(sums).toContain(`${first.sha256}  node-v24.3.1-linux-arm64.tar.gz`);

    // Again: no download (the cached copy checks out), no upload.
    const downloads = () => mirror.requests.filter((p) => p.endsWith('.tar.gz')).length;
    const before = downloads();
    const second = await publishNodeRuntime(store, 'arm64', { mirror: mirror.url, cacheDir, major: 24 });
    expect(second).toMatchObject({ key: first.key, sha256: first.sha256, uploaded: false });
    expect(downloads()).toBe(before);
  });

  it('refuses a damaged download, and says so when the mirror cannot be reached', async () => {
    const store = createFolderStore({ root: join(root, 'store-2') });
    mirror.damage();
    await expect(publishNodeRuntime(store, 'x86_64', { mirror: mirror.url, cacheDir: join(root, 'cache-2'), major: 24 })).rejects.toThrow(
      /The download of node-v24\.3\.1-linux-x64\.tar\.gz from http:\/\/127\.0\.0\.1:\d+ is damaged \(SHA-256 [0-9a-f]{64}, the release says [0-9a-f]{64}\)/,
    );
    expect(await store.list('runtimes/')).toEqual([]);
    const unreachable = publishNodeRuntime(store, 'x86_64', { mirror: 'http://127.0.0.1:1', cacheDir: join(root, 'cache-3') });
    await expect(unreachable).rejects.toThrow(NodeRuntimeError);
    await expect(unreachable).rejects.toThrow(/Could not reach http:\/\/127\.0\.0\.1:1\/index\.json/);
  });
});
