import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Store } from '../../src/store/s3.ts';
import { createS3HttpStore } from '../../src/store/s3-http.ts';
import { formatS3Locator, parseS3Locator } from '../../src/store/s3-locator.ts';
import { openLightStore, openStore } from '../../src/store/open.ts';
import { StoreError, type Store } from '../../src/store/store.ts';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { tempDir } from '../helpers/temp.ts';
import { storeContract } from './contract.ts';

const MiB = 1024 * 1024;
let server: S3Server;
let stores = 0;

beforeAll(async () => {
  server = await startS3Server();
  Object.assign(process.env, server.env);
});
afterAll(async () => {
  await server?.stop();
});

describe('parseS3Locator', () => {
  it('reads every part of a locator', () => {
    expect(
      parseS3Locator('s3://my-bucket/some/prefix?region=eu-west-1&endpoint=http://127.0.0.1:4568&pathStyle=true&profile=lab'),
    ).toEqual({
      bucket: 'my-bucket',
      prefix: 'some/prefix/',
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:4568',
      forcePathStyle: true,
      profile: 'lab',
    });
  });

  it('normalises the prefix to empty or ending in a slash', () => {
    expect(parseS3Locator('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Locator('s3://bucket/').prefix).toBe('');
    expect(parseS3Locator('s3://bucket/a').prefix).toBe('a/');
    expect(parseS3Locator('s3://bucket/a/b/').prefix).toBe('a/b/');
    expect(parseS3Locator('s3://bucket/with%20space/x').prefix).toBe('with space/x/');
    expect(parseS3Locator('s3://bucket/x?pathStyle=false').forcePathStyle).toBe(false);
  });


  it('round-trips through formatS3Locator', () => {
    for (const locator of [
      's3://bucket/',
      's3://bucket/a/b/?region=us-east-1',
      's3://b.c-d/with%20space/?region=us-east-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&pathStyle=true&profile=lab',
      's3://bucket/x/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&readsPerSecond=2000',
    ]) {
      expect(formatS3Locator(parseS3Locator(locator))).toBe(locator);
    }
  });

  it.each([
    ['s3:///prefix', /names no bucket/],
    ['s3://Bucket/x', /Invalid bucket name `Bucket`.*lowercase/],
    ['s3://ab/x', /Invalid bucket name `ab`/],
    ['s3://bucket:9000/x', /a port belongs in the endpoint, e\.g\. \?endpoint=http:\/\/127\.0\.0\.1:9000/],
    ['s3://bucket/x?regoin=us-east-1', /Unknown parameter `regoin`.*region, endpoint, pathStyle, profile, readsPerSecond/],
    ['s3://bucket/x?readsPerSecond=fast', /Invalid readsPerSecond `fast`.*readsPerSecond=2000/],
    ['s3://bucket/x?readsPerSecond=0', /Invalid readsPerSecond `0`/],
    ['s3://bucket/x?region=a&region=b', /appears twice/],
    ['s3://bucket/x?endpoint=ftp://host', /Invalid endpoint `ftp:\/\/host`.*http:\/\/ or https:\/\//],
    ['s3://bucket/x?endpoint=127.0.0.1:4568', /Invalid endpoint/],
    ['s3://bucket/x?pathStyle=yes', /pathStyle=true or pathStyle=false/],
    ['s3://bucket/x?profile=', /Empty `profile`/],
    ['s3://bucket/x?region=US East', /Invalid region/],
    ['s3://bucket/a//b', /Invalid prefix/],
    ['not a url', /Invalid S3 locator.*s3:\/\/bucket\/prefix/],
    ['http://bucket/x', /must start with s3:\/\//],
  ])('rejects %s with a message naming the fix', (locator, message) => {
    expect(() => parseS3Locator(locator)).toThrow(StoreError);
    expect(() => parseS3Locator(locator)).toThrow(message);
  });

  it('refuses credentials in the locator without repeating them', () => {
    let caught: unknown;
    try {
      parseS3Locator('s3://AKIAEXAMPLE:s3cr3t@bucket/x');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(StoreError);
    const error = caught as StoreError;
    expect(error.message).toMatch(/must not hold credentials.*profile/);
    expect(`${error.message} ${error.locator}`).not.toMatch(/s3cr3t|AKIAEXAMPLE/);
  });

});

// Both S3 drivers: the AWS SDK's (the controller's) and the light one over node:http (the agent's).
const DRIVERS = [
  ['sdk', createS3Store, openStore],
  ['http', createS3HttpStore, openLightStore],
] as const;

for (const [driver, createStore, open] of DRIVERS) {
  /** A store on a prefix of its own, so tests on the one server never see each other's objects. */
  function freshStore(options: { endpoint?: string; maxAttempts?: number } = {}): Store {
    const parsed = parseS3Locator(server.locator(`t${++stores}/`, options));
    return createStore({ ...parsed, ...(options.maxAttempts !== undefined && { maxAttempts: options.maxAttempts }) });
  }

  storeContract(
    `s3 (s3rver, ${driver} driver)`,
    async () => {
      const store = freshStore();
      return { store, cleanup: () => store.dispose() };
    },
    // More than one 8 MiB part, so putFile goes multipart. s3rver ignores If-None-Match.
    { largeFileBytes: 8 * MiB + 123_457, conditionalWrites: false },
  );

  describe(`s3 store options (${driver} driver)`, () => {
    it('paces the barrier by AWS S3\'s rate, by a cautious one for another server, or by the locator\'s readsPerSecond', () => {
      expect(createStore(parseS3Locator('s3://bucket/x?region=us-east-1')).readsPerSecond).toBe(4000);
      expect(createStore(parseS3Locator('s3://bucket/x?endpoint=http://127.0.0.1:9000')).readsPerSecond).toBe(500);
      expect(createStore(parseS3Locator('s3://bucket/x?endpoint=http://127.0.0.1:9000&readsPerSecond=20000')).readsPerSecond).toBe(20000);
      // AWS S3's rate holds per prefix; another server's is one rate in all.
      expect(createStore(parseS3Locator('s3://bucket/x?region=us-east-1')).readRatePerPrefix).toBe(true);
      expect(createStore(parseS3Locator('s3://bucket/x?endpoint=http://127.0.0.1:9000')).readRatePerPrefix).toBe(false);
    });
    it('checks its options', () => {
      expect(() => createStore({ bucket: '' })).toThrow(/needs `bucket`/);
      expect(() => createStore({ bucket: 'b_c' })).toThrow(/Invalid bucket name/);
      expect(() => createStore({ bucket: 'bucket', partSize: MiB })).toThrow(/partSize/);
      expect(() => createStore({ bucket: 'bucket', maxAttempts: 0 })).toThrow(/maxAttempts/);
    });
  });

  describe(`s3 store (${driver} driver)`, () => {
    it('is opened by openStore from an s3:// locator, with a canonical locator', async () => {
      const store = await open(server.locator('opened'));
      try {
        expect(store.locator).toBe(server.locator('opened/'));
        await store.put('x.txt', 'via openStore');
        expect(Buffer.from((await store.get('x.txt'))!).toString()).toBe('via openStore');
      } finally {
        await store.dispose();
      }
    });

    it('keeps two stores on one bucket apart by prefix, with keys relative to each', async () => {
      const a = createStore(parseS3Locator(server.locator('iso/a')));
      const b = createStore(parseS3Locator(server.locator('iso/ab')));
      const root = createStore(parseS3Locator(server.locator('iso')));
      try {
        await a.put('same.txt', 'from a');
        await b.put('same.txt', 'from b');
        expect(Buffer.from((await a.get('same.txt'))!).toString()).toBe('from a');
        expect(Buffer.from((await b.get('same.txt'))!).toString()).toBe('from b');
        expect((await a.list('')).map((o) => o.key)).toEqual(['same.txt']);
        expect((await b.list('')).map((o) => o.key)).toEqual(['same.txt']);
        expect((await root.list('')).map((o) => o.key)).toEqual(['a/same.txt', 'ab/same.txt']);
        await a.delete('same.txt');
        expect(await b.get('same.txt')).toBeDefined();
      } finally {
        await Promise.all([a.dispose(), b.dispose(), root.dispose()]);
      }
    });

    it('stores the raw bytes on the server, with no aws-chunked framing (put, putFile, multipart)', async () => {
      const store = createStore(parseS3Locator(server.locator('raw')));
      const scratch = tempDir('s3-raw');
      try {
        const small = randomBytes(70_000);
        const large = randomBytes(9 * MiB);
        await writeFile(join(scratch, 'small'), small);
        await writeFile(join(scratch, 'large'), large);
        await store.put('put.bin', small);
        await store.putFile('file.bin', join(scratch, 'small'));
        await store.putFile('multi.bin', join(scratch, 'large'));
        const onDisk = (key: string) => readFile(join(server.directory, server.bucket, 'raw', `${key}._S3rver_object`));
        expect((await onDisk('put.bin')).equals(small)).toBe(true);
        expect((await onDisk('file.bin')).equals(small)).toBe(true);
        expect((await onDisk('multi.bin')).equals(large)).toBe(true);
      } finally {
        await store.dispose();
        await rm(scratch, { recursive: true, force: true });
      }
    });

    it('reads every page of more than 1000 keys', async () => {
      const store = freshStore();
      try {
        const keys = Array.from({ length: 1005 }, (_, index) => `k/${String(index).padStart(4, '0')}`);
        for (let start = 0; start < keys.length; start += 50) {
          await Promise.all(keys.slice(start, start + 50).map((key) => store.put(key, '')));
        }
        expect((await store.list('k/')).map((o) => o.key)).toEqual(keys);
      } finally {
        await store.dispose();
      }
    });

    it('takes credentials from a named profile, and says so when the profile is missing', async () => {
      const folder = tempDir('s3-profile');
      const saved = { credentials: process.env.AWS_SHARED_CREDENTIALS_FILE, config: process.env.AWS_CONFIG_FILE };
      process.env.AWS_SHARED_CREDENTIALS_FILE = join(folder, 'credentials');
      process.env.AWS_CONFIG_FILE = join(folder, 'config');
      await writeFile(process.env.AWS_SHARED_CREDENTIALS_FILE, '[lab]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n');
      await writeFile(process.env.AWS_CONFIG_FILE, '[profile lab]\nregion = us-east-1\n');
      const lab = createStore(parseS3Locator(`${server.locator('profiles')}&profile=lab`));
      const missing = createStore(parseS3Locator(`${server.locator('profiles')}&profile=nope`));
      try {
        expect(lab.locator).toMatch(/&profile=lab$/);
        await lab.put('x', 'with a profile');
        await expect(missing.put('x', 'y')).rejects.toThrow(/no AWS credentials found .*profile=name/);
      } finally {
        await Promise.all([lab.dispose(), missing.dispose()]);
        for (const [name, value] of [['AWS_SHARED_CREDENTIALS_FILE', saved.credentials], ['AWS_CONFIG_FILE', saved.config]] as const) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
        await rm(folder, { recursive: true, force: true });
      }
    });

    it('says what failed when the bucket does not exist', async () => {
      const store = createStore({ ...parseS3Locator(server.locator('x')), bucket: 'no-such-bucket' });
      try {
        await expect(store.put('a', 'b')).rejects.toThrow(/PutObject of `x\/a` in bucket `no-such-bucket` failed: the bucket does not exist/);
        await expect(store.list('')).rejects.toBeInstanceOf(StoreError);
      } finally {
        await store.dispose();
      }
    });
  });

  describe(`s3 store behind a faulty network (${driver} driver)`, () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy(server.port);
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it('retries a 503 SlowDown, a 500 and a dropped connection on PUT', async () => {
      const store = freshStore({ endpoint: proxy.endpoint });
      try {
        proxy.fail((req, seen) => (req.method === 'PUT' && req.url?.includes('/slow') && seen === 1 ? { status: 503, code: 'SlowDown' } : undefined));
        proxy.fail((req, seen) => (req.method === 'PUT' && req.url?.includes('/five') && seen === 1 ? { status: 500, code: 'InternalError' } : undefined));
        proxy.fail((req, seen) => (req.method === 'PUT' && req.url?.includes('/drop') && seen <= 2 ? 'drop' : undefined));
        await store.put('slow', 'a');
        await store.put('five', 'b');
        await store.put('drop', 'c');
        expect(proxy.count('PUT', '/slow')).toBe(2);
        expect(proxy.count('PUT', '/five')).toBe(2);
        expect(proxy.count('PUT', '/drop')).toBe(3);
        expect(Buffer.from((await store.get('drop'))!).toString()).toBe('c');
      } finally {
        proxy.clear();
        await store.dispose();
      }
    });

    it('retries GET, LIST and DELETE on 503, and a body cut off mid-stream', async () => {
      const store = freshStore({ endpoint: proxy.endpoint });
      const scratch = tempDir('s3-fault');
      try {
        const body = randomBytes(256 * 1024);
        await store.put('obj', body);
        for (let index = 0; index < 5; index++) await store.put(`l/${index}`, 'x');

        proxy.fail((req, seen) => (req.method === 'GET' && pathOf(req).endsWith('/obj') && seen === 1 ? { status: 503, code: 'SlowDown' } : undefined));
        expect(Buffer.from((await store.get('obj'))!).equals(body)).toBe(true);
        expect(proxy.count('GET', '/obj')).toBe(2);
        proxy.clear();

        proxy.fail((req, seen) => (req.method === 'GET' && pathOf(req).endsWith('/obj') && seen <= 2 ? 'truncate' : undefined));
        expect(Buffer.from((await store.get('obj'))!).equals(body)).toBe(true);
        expect(proxy.count('GET', '/obj')).toBe(3);
        proxy.clear();

        proxy.fail((req, seen) => (req.method === 'GET' && pathOf(req).endsWith('/obj') && seen === 1 ? 'truncate' : undefined));
        const target = join(scratch, 'obj.bin');
        expect(await store.getFile('obj', target)).toBe(true);
        expect((await readFile(target)).equals(body)).toBe(true);
        proxy.clear();

        // The second page of a listing fails once; the list is still whole.
        proxy.fail((req, seen) =>
          req.method === 'GET' && req.url?.includes('continuation-token') && seen === 1 ? { status: 500, code: 'InternalError' } : undefined,
        );
        expect((await store.list('l/', { pageSize: 2 })).map((o) => o.key)).toEqual(['l/0', 'l/1', 'l/2', 'l/3', 'l/4']);
        proxy.clear();

        proxy.fail((req, seen) => (req.method === 'DELETE' && seen === 1 ? { status: 503, code: 'ServiceUnavailable' } : undefined));
        await store.delete('obj');
        expect(await store.get('obj')).toBeUndefined();
      } finally {
        proxy.clear();
        await store.dispose();
        await rm(scratch, { recursive: true, force: true });
      }
    });

    it('pages with ListObjectsV2: pageSize 2 over 7 keys is 4 requests', async () => {
      const store = freshStore({ endpoint: proxy.endpoint });
      try {
        for (let index = 0; index < 7; index++) await store.put(`p/${index}`, 'x');
        proxy.clear();
        expect(await store.list('p/', { pageSize: 2 })).toHaveLength(7);
        expect(proxy.requests.filter((r) => r.method === 'GET' && r.url.includes('list-type=2'))).toHaveLength(4);
      } finally {
        proxy.clear();
        await store.dispose();
      }
    });

    it('refuses to return half a list when a truncated page has no continuation token', async () => {
      const store = freshStore({ endpoint: proxy.endpoint });
      try {
        for (let index = 0; index < 5; index++) await store.put(`h/${index}`, 'x');
        proxy.fail((req) =>
          req.method === 'GET' && req.url?.includes('list-type=2')
            ? { rewrite: (body) => body.replace(/<NextContinuationToken>[^<]*<\/NextContinuationToken>/, '') }
            : undefined,
        );
        const listing = store.list('h/', { pageSize: 2 });
        await expect(listing).rejects.toBeInstanceOf(StoreError);
        await expect(listing).rejects.toThrow(/truncated page without a continuation token after 2 keys; refusing to return half a list/);
        expect(await store.list('h/', { pageSize: 5 })).toHaveLength(5);
      } finally {
        proxy.clear();
        await store.dispose();
      }
    });

    it('retries a multipart upload part that fails', async () => {
      const store = freshStore({ endpoint: proxy.endpoint });
      const scratch = tempDir('s3-fault');
      try {
        const source = join(scratch, 'big');
        const bytes = randomBytes(10 * MiB);
        await writeFile(source, bytes);
        proxy.fail((req, seen) => (req.method === 'PUT' && req.url?.includes('partNumber=2') && seen === 1 ? { status: 503, code: 'SlowDown' } : undefined));
        await store.putFile('big', source);
        expect(proxy.requests.filter((r) => r.method === 'POST' && r.url.includes('?uploads'))).toHaveLength(1);
        expect(proxy.requests.filter((r) => r.url.includes('partNumber=1'))).toHaveLength(1);
        expect(proxy.requests.filter((r) => r.url.includes('partNumber=2'))).toHaveLength(2);
        expect(Buffer.from((await store.get('big'))!).equals(bytes)).toBe(true);
      } finally {
        proxy.clear();
        await store.dispose();
        await rm(scratch, { recursive: true, force: true });
      }
    });

    it('gives up after maxAttempts with a StoreError that says how often it tried', async () => {
      const store = freshStore({ endpoint: proxy.endpoint, maxAttempts: 3 });
      try {
        proxy.fail((req) => (req.url?.includes('/down') ? { status: 503, code: 'ServiceUnavailable' } : undefined));
        const failure = store.put('down', 'x');
        await expect(failure).rejects.toBeInstanceOf(StoreError);
        await expect(failure).rejects.toThrow(/PutObject of `t\d+\/down` .* failed after 3 attempts/);
        expect(proxy.count('PUT', '/down')).toBe(3);
      } finally {
        proxy.clear();
        await store.dispose();
      }
    });
  });
}

// ---- A tiny fault-injecting HTTP proxy in front of s3rver ----------------------------------

/** An error answer, a connection closed before answering, half a body, or a changed body. */
type Fault = { status: number; code: string } | 'drop' | 'truncate' | { rewrite: (body: string) => string };
/** `seen` counts the requests with this method and path (query included), this one included. */
type FaultRule = (req: IncomingMessage, seen: number) => Fault | undefined;

/** The request's path, without the query. */
const pathOf = (req: IncomingMessage): string => (req.url ?? '/').split('?')[0]!;

interface FaultProxy {
  readonly endpoint: string;
  readonly requests: { method: string; url: string }[];
  fail(rule: FaultRule): void;
  count(method: string, pathPart: string): number;
  /** Forgets rules and recorded requests. */
  clear(): void;
  close(): Promise<void>;
}

async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const rules: FaultRule[] = [];
  const requests: { method: string; url: string }[] = [];
  const seen = new Map<string, number>();

  const server: Server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    requests.push({ method, url });
    const id = `${method} ${url}`;
    const count = (seen.get(id) ?? 0) + 1;
    seen.set(id, count);
    const fault = rules.map((rule) => rule(req, count)).find((result) => result !== undefined);

    if (fault === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault !== undefined && fault !== 'truncate' && 'status' in fault) {
      req.resume();
      req.once('end', () => {
        res.writeHead(fault.status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>injected</Message></Error>`);
      });
      return;
    }
    const upstream = request(
      { host: '127.0.0.1', port: targetPort, method, path: url, headers: req.headers },
      (response) => {
        if (fault !== undefined) {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const whole = Buffer.concat(chunks);
            if (fault === 'truncate') {
              res.writeHead(response.statusCode ?? 502, response.headers);
              res.write(whole.subarray(0, Math.floor(whole.length / 2)), () => res.socket?.destroy());
            } else {
              const body = Buffer.from(fault.rewrite(whole.toString('utf8')));
              res.writeHead(response.statusCode ?? 502, { ...response.headers, 'content-length': String(body.length) });
              res.end(body);
            }
          });
          return;
        }
        res.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(res);
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    fail: (rule) => rules.push(rule),
    count: (method, pathPart) => requests.filter((r) => r.method === method && r.url.split('?')[0]!.endsWith(pathPart)).length,
    clear() {
      rules.length = 0;
      requests.length = 0;
      seen.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
