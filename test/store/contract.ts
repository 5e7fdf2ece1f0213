/**
 * The store contract, as one suite that every driver runs (`folder.test.ts`, `s3.test.ts`). Only
 * behaviour the `Store` interface promises belongs here; a driver's own cases go beside its call.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError, type Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/temp.ts';

export interface StoreUnderTest {
  /** A store that holds no objects yet. */
  readonly store: Store;
  /** Disposes the store and removes what it wrote. */
  cleanup(): Promise<void>;
}

export interface StoreContractOptions {
  /** Bytes of the file sent through `putFile`/`getFile`. Default 3 MiB; S3 passes more than one part (8 MiB). */
  readonly largeFileBytes?: number;
  /** The backend keeps the first object of a `putIfAbsent` (s3rver does not: it overwrites). Default true. */
  readonly conditionalWrites?: boolean;
}

export function storeContract(
  name: string,
  makeStore: () => Promise<StoreUnderTest>,
  options: StoreContractOptions = {},
): void {
  const largeFileBytes = options.largeFileBytes ?? 3 * 1024 * 1024;

  describe(`store contract: ${name}`, () => {
    let subject: StoreUnderTest | undefined;
    let store: Store;
    let scratch: string;

    beforeEach(async () => {
      subject = await makeStore();
      store = subject.store;
      scratch = tempDir('contract');
    });
    afterEach(async () => {
      try {
        await subject?.cleanup();
      } finally {
        subject = undefined;
        await rm(scratch, { recursive: true, force: true });
      }
    });

    const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));
    const keysOf = (objects: readonly { key: string }[]) => objects.map((object) => object.key);
    const putAll = (keys: readonly string[]) => Promise.all(keys.map((key) => store.put(key, `body of ${key}`)));

    it('putIfAbsent writes where the key is free', async () => {
      expect(await store.putIfAbsent('once/a.json', 'first')).toBe(true);
      expect(text(await store.get('once/a.json'))).toBe('first');
    });

    if (options.conditionalWrites !== false) {
      it('putIfAbsent keeps the first object: a second write, or many at once, change nothing', async () => {
        expect(await store.putIfAbsent('once/b.json', 'first')).toBe(true);
        expect(await store.putIfAbsent('once/b.json', 'second')).toBe(false);
        expect(text(await store.get('once/b.json'))).toBe('first');
        const racers = await Promise.all(Array.from({ length: 8 }, (_, i) => store.putIfAbsent('once/c.json', `racer ${i}`)));
        expect(racers.filter(Boolean)).toHaveLength(1);
        expect(text(await store.get('once/c.json'))).toBe(`racer ${racers.indexOf(true)}`);
      });
    }

    it('has a locator', () => {
      expect(store.locator).toMatch(/^[a-z][a-z0-9+.-]*:/);
    });

    it('round-trips bytes exactly, every byte value included', async () => {
      const bytes = new Uint8Array(512);
      for (let index = 0; index < bytes.length; index++) bytes[index] = index % 256;
      await store.put('bytes.bin', bytes);
      const got = await store.get('bytes.bin');
      expect(got).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(got!).equals(Buffer.from(bytes))).toBe(true);
    });

    it('stores a string as UTF-8', async () => {
      const value = 'héllo wörld — ✓ 🎉\nzweite Zeile\n';
      await store.put('text.txt', value);
      const got = await store.get('text.txt');
      expect(text(got)).toBe(value);
      expect(got!.byteLength).toBe(Buffer.byteLength(value, 'utf8'));
    });

    it('round-trips an empty object', async () => {
      await store.put('empty', '');
      const got = await store.get('empty');
      expect(got).toBeDefined();
      expect(got!.byteLength).toBe(0);
      expect(await store.list('empty')).toMatchObject([{ key: 'empty', size: 0 }]);
    });

    it('stores exactly the bytes sent: sizes listed and bytes read match, no framing added', async () => {
      const body = randomBytes(100 * 1024 + 7);
      await store.put('exact/body.bin', body);
      const [info] = await store.list('exact/');
      expect(info).toMatchObject({ key: 'exact/body.bin', size: body.byteLength });
      expect(Buffer.from((await store.get('exact/body.bin'))!).equals(body)).toBe(true);
    });

    it('answers undefined for a missing key', async () => {
      expect(await store.get('missing.json')).toBeUndefined();
      expect(await store.get('no/such/folder/missing.json')).toBeUndefined();
    });

    it('overwrites an object', async () => {
      await store.put('state.json', 'first, and longer than the second');
      await store.put('state.json', 'second');
      expect(text(await store.get('state.json'))).toBe('second');
      expect(await store.list('state')).toMatchObject([{ key: 'state.json', size: 'second'.length }]);
    });

    it(`streams a file of ${largeFileBytes} bytes up and down unchanged`, async () => {
      const source = join(scratch, 'source.bin');
      await writeFile(source, randomBytes(largeFileBytes));
      await store.putFile('artifacts/large.bin', source);
      expect(await store.list('artifacts/')).toMatchObject([{ key: 'artifacts/large.bin', size: largeFileBytes }]);

      const target = join(scratch, 'down', 'deeper', 'large.bin');
      expect(await store.getFile('artifacts/large.bin', target)).toBe(true);
      expect((await stat(target)).size).toBe(largeFileBytes);
      expect(await sha256(target)).toBe(await sha256(source));
      expect(await readdir(join(scratch, 'down', 'deeper'))).toEqual(['large.bin']);
    });

    it('uploads a small file and an empty file with putFile', async () => {
      const small = join(scratch, 'small.txt');
      const empty = join(scratch, 'empty.txt');
      await writeFile(small, 'a small file\n');
      await writeFile(empty, '');
      await store.putFile('files/small.txt', small);
      await store.putFile('files/empty.txt', empty);
      expect(text(await store.get('files/small.txt'))).toBe('a small file\n');
      expect((await store.get('files/empty.txt'))?.byteLength).toBe(0);
    });

    it('putFile of a missing file rejects and stores nothing', async () => {
      await expect(store.putFile('files/none', join(scratch, 'does-not-exist'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await store.list('files/')).toEqual([]);
    });

    it('getFile replaces an existing file', async () => {
      await store.put('notes.txt', 'new content');
      const target = join(scratch, 'notes.txt');
      await writeFile(target, 'old content that is longer than the new one');
      expect(await store.getFile('notes.txt', target)).toBe(true);
      expect(await readFile(target, 'utf8')).toBe('new content');
    });

    it('getFile of a missing key answers false and leaves no file', async () => {
      const folder = join(scratch, 'out');
      const target = join(folder, 'missing.bin');
      expect(await store.getFile('missing.bin', target)).toBe(false);
      await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await readdir(folder).catch(() => [])).toEqual([]);
    });

    it('lists by prefix: only that prefix, in key order, with sizes', async () => {
      const keys = ['runs/b/1', 'runs/abc/x', 'runs/abd', 'runs/abc/y/z', 'runsx', 'other/runs/abc', 'runs/a'];
      for (const key of keys) await store.put(key, `body of ${key}`);

      const listed = await store.list('runs/');
      expect(keysOf(listed)).toEqual(['runs/a', 'runs/abc/x', 'runs/abc/y/z', 'runs/abd', 'runs/b/1']);
      for (const object of listed) expect(object.size).toBe(Buffer.byteLength(`body of ${object.key}`));

      expect(keysOf(await store.list('runs'))).toEqual([
        'runs/a',
        'runs/abc/x',
        'runs/abc/y/z',
        'runs/abd',
        'runs/b/1',
        'runsx',
      ]);
      expect(keysOf(await store.list(''))).toEqual([...keys].sort());
      expect(await store.list('nothing/')).toEqual([]);
      expect(await store.list('runs/zzz')).toEqual([]);
    });

    it('lists a prefix that ends inside a name (`runs/ab` matches `runs/abc/x`)', async () => {
      await putAll(['runs/abc/x', 'runs/abd', 'runs/a', 'runs/b/ab', 'runs/ab']);
      expect(keysOf(await store.list('runs/ab'))).toEqual(['runs/ab', 'runs/abc/x', 'runs/abd']);
      expect(keysOf(await store.list('runs/abc/'))).toEqual(['runs/abc/x']);
    });

    it('reads every page: pageSize 2 over 7 keys returns all 7', async () => {
      const keys = Array.from({ length: 7 }, (_, index) => `ready/node-${index}.json`);
      await putAll(keys);
      await store.put('readyx', 'outside');
      expect(keysOf(await store.list('ready/', { pageSize: 2 }))).toEqual(keys);
      expect(keysOf(await store.list('ready/', { pageSize: 1 }))).toEqual(keys);
      expect(keysOf(await store.list('ready/', { pageSize: 7 }))).toEqual(keys);
    });

    it('lists only keys strictly after `startAfter`', async () => {
      const keys = Array.from({ length: 7 }, (_, index) => `p/${index}`);
      await putAll(keys);
      expect(keysOf(await store.list('p/', { startAfter: 'p/2' }))).toEqual(['p/3', 'p/4', 'p/5', 'p/6']);
      expect(keysOf(await store.list('p/', { startAfter: 'p/2', pageSize: 2 }))).toEqual(['p/3', 'p/4', 'p/5', 'p/6']);
      expect(keysOf(await store.list('p/', { startAfter: 'p/20' }))).toEqual(['p/3', 'p/4', 'p/5', 'p/6']);
      expect(keysOf(await store.list('p/', { startAfter: 'p/6' }))).toEqual([]);
      expect(keysOf(await store.list('p/', { startAfter: 'a' }))).toEqual(keys);
    });

    it('lists at most `maxKeys` keys, the first in key order, across pages too', async () => {
      const keys = Array.from({ length: 7 }, (_, index) => `m/${index}`);
      await putAll(keys);
      expect(keysOf(await store.list('m/', { maxKeys: 3 }))).toEqual(['m/0', 'm/1', 'm/2']);
      expect(keysOf(await store.list('m/', { maxKeys: 5, pageSize: 2 }))).toEqual(['m/0', 'm/1', 'm/2', 'm/3', 'm/4']);
      expect(keysOf(await store.list('m/', { startAfter: 'm/4', maxKeys: 3 }))).toEqual(['m/5', 'm/6']);
    });

    it('deletes, and deleting a missing key is not an error', async () => {
      await putAll(['d/keep', 'd/gone']);
      await store.delete('d/gone');
      expect(await store.get('d/gone')).toBeUndefined();
      expect(keysOf(await store.list('d/'))).toEqual(['d/keep']);
      await expect(store.delete('d/gone')).resolves.toBeUndefined();
      await expect(store.delete('never/was/here')).resolves.toBeUndefined();
      expect(text(await store.get('d/keep'))).toBe('body of d/keep');
    });

    it('keeps keys in nested folders apart', async () => {
      const keys = [
        'runs/r1/repeats/0/nodes/0/stdout.log',
        'runs/r1/repeats/0/nodes/0/files/out/data.csv',
        'runs/r1/repeats/0/nodes/1/stdout.log',
        'runs/r1/repeats/1/nodes/0/stdout.log',
      ];
      await putAll(keys);
      for (const key of keys) expect(text(await store.get(key))).toBe(`body of ${key}`);
      expect(keysOf(await store.list('runs/r1/repeats/0/nodes/0/'))).toEqual([
        'runs/r1/repeats/0/nodes/0/files/out/data.csv',
        'runs/r1/repeats/0/nodes/0/stdout.log',
      ]);
      await store.delete('runs/r1/repeats/0/nodes/0/files/out/data.csv');
      expect(keysOf(await store.list('runs/r1/'))).toEqual([
        'runs/r1/repeats/0/nodes/0/stdout.log',
        'runs/r1/repeats/0/nodes/1/stdout.log',
        'runs/r1/repeats/1/nodes/0/stdout.log',
      ]);
    });

    it('handles many concurrent writes', async () => {
      const keys = Array.from({ length: 40 }, (_, index) => `many/${String(index).padStart(3, '0')}`);
      await putAll(keys);
      expect(keysOf(await store.list('many/', { pageSize: 9 }))).toEqual(keys);
    });

    it('rejects keys that could escape or alias: empty, absolute, `.` and `..` parts', async () => {
      for (const key of ['', '/abs', 'a/../b', './a', 'a/./b', '..']) {
        await expect(store.put(key, 'x'), `key \`${key}\``).rejects.toBeInstanceOf(StoreError);
        await expect(store.get(key), `key \`${key}\``).rejects.toBeInstanceOf(StoreError);
      }
    });
  });
}

function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}
