import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createFolderStore } from '../../src/store/folder.ts';
import { openStore } from '../../src/store/open.ts';
import { StoreError } from '../../src/store/store.ts';
import { tempDir } from '../helpers/temp.ts';
import { storeContract } from './contract.ts';

storeContract('folder', async () => {
  const root = tempDir('folder-store');
  const store = createFolderStore({ root: join(root, 'store') });
  return {
    store,
    async cleanup() {
      await store.dispose();
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe('folder store', () => {
  it('says which option is missing', () => {
    expect(() => createFolderStore({ root: '' })).toThrow(StoreError);
  });

  it('is opened from a path, relative to cwd, or from a file:// URL', async () => {
    const root = tempDir('folder-open');
    try {
      const relative = await openStore('data/store', { cwd: root });
      expect(relative.locator).toBe(pathToFileURL(join(root, 'data', 'store')).href);
      await relative.put('a/b.txt', 'hello');
      const byUrl = await openStore(pathToFileURL(join(root, 'data', 'store')).href);
      expect(Buffer.from((await byUrl.get('a/b.txt'))!).toString()).toBe('hello');
      await expect(openStore('ftp://host/x')).rejects.toBeInstanceOf(StoreError);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('keeps objects as plain files below the root, with no temporary files left', async () => {
    const root = tempDir('folder-files');
    try {
      const store = createFolderStore({ root });
      await store.put('runs/r1/manifest.json', '{}');
      expect(await readdir(join(root, 'runs', 'r1'))).toEqual(['manifest.json']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
