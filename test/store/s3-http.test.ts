// The light S3 driver's own parts (the shared contract runs in s3.test.ts and s3-moto.test.ts):
// multipart uploads and their abort, signatures, each credential source, and its errors.
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialChain } from '../../src/store/s3-credentials.ts';
import { createS3HttpStore } from '../../src/store/s3-http.ts';
import { parseS3Locator } from '../../src/store/s3-locator.ts';
import { parseListPage } from '../../src/store/s3-xml.ts';
import { StoreError } from '../../src/store/store.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { startImdsStandIn } from '../helpers/imds-stand-in.ts';
import { Sha256 } from '../helpers/sha256.ts';
import { startMotoS3Server, startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { tempDir } from '../helpers/temp.ts';

const MiB = 1024 * 1024;
const KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

describe('light S3 driver on moto: multipart uploads', () => {
  let moto: S3Server;
  let scratch: string;
  beforeAll(async () => {
    moto = await startMotoS3Server();
    // The test's own SDK client (to see what moto holds) on Node 20.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    scratch = tempDir('s3-http-multipart');
  });
  afterAll(async () => {
    await moto?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  const pendingUploads = async (client: S3Client): Promise<string[]> =>
    ((await client.send(new ListMultipartUploadsCommand({ Bucket: moto.bucket }))).Uploads ?? []).map((u) => u.Key!);

  it('aborts an upload whose part fails more often than it retries: no parts are left', async () => {
    const client = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    // Part 2 always fails; everything else gets through.
    const proxy = await startFaultProxy({ target: moto.endpoint, rate: 1, kinds: ['error500'], maxConsecutive: 1000, only: (method, url) => method === 'PUT' && url.includes('partNumber=2') });
    const store = createS3HttpStore({ ...parseS3Locator(moto.locator('multi/', { endpoint: proxy.url })), maxAttempts: 2, partSize: 5 * MiB, env: { ...KEYS } });
    try {
      // moto keeps an upload that is neither completed nor aborted, and lists it.
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: moto.bucket, Key: 'control' }));
      expect(await pendingUploads(client)).toEqual(['control']);
      await client.send(new AbortMultipartUploadCommand({ Bucket: moto.bucket, Key: 'control', UploadId }));

      const source = join(scratch, 'big');
      await writeFile(source, randomBytes(11 * MiB));
      const failure = store.putFile('big', source);
      await expect(failure).rejects.toBeInstanceOf(StoreError);
      await expect(failure).rejects.toThrow(/S3 UploadPart of `multi\/big` .* failed after 2 attempts: InternalError \(HTTP 500\)/);
      expect(proxy.counts.error500).toBe(2);
      expect(await pendingUploads(client)).toEqual([]);
      expect(await store.get('big')).toBeUndefined();
    } finally {
      await store.dispose();
      await proxy.stop();
      client.destroy();
    }
  });

  it('uploads a file of three parts, each streamed from the file, and reads it back whole', async () => {
    const store = createS3HttpStore({ ...parseS3Locator(moto.locator('multi/')), partSize: 5 * MiB, env: { ...KEYS } });
    try {
      const bytes = randomBytes(12 * MiB + 7);
      const source = join(scratch, 'three');
      await writeFile(source, bytes);
      await store.putFile('three', source);
      expect(Buffer.from((await store.get('three'))!).equals(bytes)).toBe(true);
      const [listed] = await store.list('three');
      // A multipart ETag: the MD5 of the parts' MD5s, a dash, the number of parts.
      expect(listed).toMatchObject({ key: 'three', size: bytes.length, etag: expect.stringMatching(/-3"$/) });
    } finally {
      await store.dispose();
    }
  });
});

describe('light S3 driver: signatures', () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('signs as the AWS SDK signs: the same signature for keys and queries that need encoding', async () => {
    const seen: IncomingMessage[] = [];
    const server = createServer((req, res) => {
      seen.push(req);
      req.resume();
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(req.method === 'GET' ? '<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>' : '');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'token/+=' };
    const store = createS3HttpStore({ bucket: 'sig-bucket', prefix: 'p q/', endpoint, region: 'eu-west-1', credentials: async () => credentials, env: {} });
    try {
      await store.put("odd key+(1)!*'ü~.txt", 'body');
      await store.list('a b+c', { startAfter: 'x=y&z', pageSize: 7 });
      const signer = new SignatureV4({ service: 's3', region: 'eu-west-1', credentials, sha256: Sha256, uriEscapePath: false, applyChecksum: true });
      expect(seen).toHaveLength(2);
      for (const req of seen) {
        const url = new URL(req.url!, endpoint);
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name !== 'authorization' && name !== 'connection')) as Record<string, string>;
        const amzDate = headers['x-amz-date']!;
        const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
        const expected = await signer.sign(
          {
            method: req.method!,
            protocol: 'http:',
            hostname: url.hostname,
            port: Number(url.port),
            path: url.pathname,
            query: Object.fromEntries(url.searchParams),
            headers,
          },
          { signingDate, signableHeaders: new Set(Object.keys(headers)) },
        );
        const signature = (value: string) => /Signature=([0-9a-f]{64})/.exec(value)?.[1];
        expect(signature(req.headers.authorization!), `${req.method} ${req.url}`).toBe(signature(String(expected.headers.authorization)));
        expect(req.headers['x-amz-security-token']).toBe('token/+=');
      }
    } finally {
      await store.dispose();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  // Neither s3rver nor moto checks signatures (the test above compares them with the SDK's); s3rver checks the key id.
  it('fails at once, with a StoreError, where the server refuses the key', async () => {
    const store = createS3HttpStore({
      ...parseS3Locator(s3.locator('sig/')),
      credentials: async () => ({ accessKeyId: 'NOTAKEY', secretAccessKey: 'wrong' }),
      env: {},
    });
    try {
      const failure = store.put('x', 'y');
      await expect(failure).rejects.toBeInstanceOf(StoreError);
      await expect(failure).rejects.toThrow(/^S3 PutObject of `sig\/x` in bucket `lockstep-test` failed: InvalidAccessKeyId \(HTTP 403\): The AWS Access Key Id/);
    } finally {
      await store.dispose();
    }
  });
});

describe('light S3 driver: what it retries', () => {
  /** A server that answers every request with `status` and S3's error `code`, counting the requests. */
  async function answering(status: number, code: string): Promise<{ endpoint: string; requests: () => number; close: () => Promise<void> }> {
    let requests = 0;
    const server = createServer((req, res) => {
      requests++;
      req.resume();
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(`<Error><Code>${code}</Code><Message>${code} from the test server</Message></Error>`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      requests: () => requests,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
  const credentials = async () => ({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' });

  it('retries throttling up to its attempts, and fails at once where the clock is too far off (a retry would sign alike)', async () => {
    for (const [status, code, expected] of [
      [503, 'SlowDown', 3],
      [403, 'RequestTimeTooSkewed', 1],
    ] as const) {
      const server = await answering(status, code);
      const store = createS3HttpStore({ bucket: 'retry-bucket', endpoint: server.endpoint, maxAttempts: 3, credentials, env: {} });
      try {
        await expect(store.get('k')).rejects.toThrow(new RegExp(`${code} \\(HTTP ${status}\\)`));
        expect(server.requests(), code).toBe(expected);
      } finally {
        await store.dispose();
        await server.close();
      }
    }
  });
});

describe('light S3 driver: credentials', () => {
  let s3: S3Server;
  let scratch: string;
  beforeAll(async () => {
    s3 = await startS3Server();
    scratch = tempDir('s3-http-credentials');
  });
  afterAll(async () => {
    await s3?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  /** An environment that finds nothing outside the test's own folder. */
  const isolated = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    AWS_SHARED_CREDENTIALS_FILE: join(scratch, 'none', 'credentials'),
    AWS_CONFIG_FILE: join(scratch, 'none', 'config'),
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  });

  it('takes keys from the environment first', async () => {
    const chain = credentialChain({ env: isolated({ ...KEYS, AWS_SESSION_TOKEN: 'tok' }) });
    expect(await chain()).toEqual({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', sessionToken: 'tok' });
    const store = createS3HttpStore({ ...parseS3Locator(s3.locator('cred/')), env: isolated(KEYS) });
    try {
      await store.put('env', 'from the environment');
    } finally {
      await store.dispose();
    }
  });

  it('takes static keys of AWS_PROFILE or the locator\'s profile from the credentials file, or the config file', async () => {
    const folder = join(scratch, 'files');
    await mkdir(folder, { recursive: true });
    const credentials = join(folder, 'credentials');
    const config = join(folder, 'config');
    await writeFile(credentials, '[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d\n\n# a comment\n[lab]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\naws_session_token = labtoken\n');
    await writeFile(config, '[profile other]\nregion = eu-west-1\naws_access_key_id = OTHERKEY\naws_secret_access_key = o\n');
    const files = { AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: config, AWS_EC2_METADATA_DISABLED: 'true' };
    expect((await credentialChain({ env: files })()).accessKeyId).toBe('DEFAULTKEY');
    expect(await credentialChain({ env: { ...files, AWS_PROFILE: 'lab' } })()).toEqual({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', sessionToken: 'labtoken' });
    expect((await credentialChain({ env: { ...files, AWS_PROFILE: 'other' } })()).accessKeyId).toBe('OTHERKEY');
    // The locator's profile wins over the environment's keys.
    expect((await credentialChain({ profile: 'lab', env: { ...files, AWS_ACCESS_KEY_ID: 'ENVKEY', AWS_SECRET_ACCESS_KEY: 'e' } })()).accessKeyId).toBe('S3RVER');
    const store = createS3HttpStore({ ...parseS3Locator(`${s3.locator('cred/')}&profile=lab`), env: files });
    try {
      await store.put('profile', 'from the credentials file');
    } finally {
      await store.dispose();
    }
  });

  it('takes the instance role from instance metadata (IMDSv2), and renews it before it expires', async () => {
    const role = { name: 'lockstep-agent', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', sessionToken: 'first', expiration: new Date(Date.now() + 60_000) } };
    const imds = await startImdsStandIn({ instanceId: 'i-1', localIpv4: '10.0.0.1', region: 'us-east-1', zone: 'us-east-1a', role });
    const env = isolated({ AWS_EC2_METADATA_DISABLED: undefined, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint });
    const store = createS3HttpStore({ ...parseS3Locator(s3.locator('cred/')), env });
    const roleReads = () => imds.requests.filter((r) => r.path === '/latest/meta-data/iam/security-credentials/lockstep-agent' && r.status === 200).length;
    try {
      await store.put('role', 'from the instance role');
      expect(roleReads()).toBe(1);
      expect(imds.requests.every((r) => r.path === '/latest/api/token' || r.withToken)).toBe(true);
      // Expiring within five minutes: the next request reads the role again, and takes the new keys.
      (role as { credentials: typeof role.credentials }).credentials = { ...role.credentials, sessionToken: 'second', expiration: new Date(Date.now() + 6 * 3_600_000) };
      await store.put('role', 'renewed');
      expect(roleReads()).toBe(2);
      await store.get('role');
      await store.list('');
      expect(roleReads()).toBe(2);
    } finally {
      await store.dispose();
      await imds.close();
    }
  });

  it('says so, naming what it tried and the fix, where no source has credentials', async () => {
    const store = createS3HttpStore({ ...parseS3Locator(s3.locator('cred/')), env: isolated() });
    const chain = credentialChain({ env: isolated(), loadSdk: () => Promise.reject(new Error('Cannot find package')) });
    const saved = { ...process.env };
    try {
      // The SDK's own chain reads process.env: nothing there either.
      for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete process.env[name];
      Object.assign(process.env, isolated());
      const failure = store.put('x', 'y');
      await expect(failure).rejects.toBeInstanceOf(StoreError);
      await expect(failure).rejects.toThrow(/S3 PutObject of `cred\/x` .* failed: no AWS credentials found \(set AWS_PROFILE or the AWS_\* variables, add `\?profile=name`, or use an instance role\)/);
      await expect(chain()).rejects.toThrow(/tried AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; static keys of profile `default` in .*; SSO, assume-role and credential_process profiles need @aws-sdk\/credential-providers, which is not installed beside the agent/);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
      await store.dispose();
    }
  });

  it('says so where no region is known (no locator region, no AWS_REGION, no endpoint)', async () => {
    const store = createS3HttpStore({ bucket: 'some-bucket', env: isolated(KEYS) });
    try {
      await expect(store.put('x', 'y')).rejects.toThrow(/failed: no AWS region \(add `\?region=…` to the locator, or set AWS_REGION\)/);
    } finally {
      await store.dispose();
    }
  });
});

describe('parseListPage', () => {
  it('reads keys with XML entities, sizes, ETags, times and the continuation token', () => {
    const page = parseListPage(
      '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>' +
        '<Contents><Key>p/a&amp;b&lt;c&gt;&#233;</Key><LastModified>2026-12-01T10:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>12</Size></Contents>' +
        '<Contents><Key>p/z</Key><Size>0</Size></Contents>' +
        '<IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken></ListBucketResult>',
    );
    expect(page).toEqual({
      objects: [
        { key: 'p/a&b<c>é', size: 12, etag: '"abc"', lastModified: new Date('2026-12-01T10:00:00.000Z') },
        { key: 'p/z', size: 0 },
      ],
      truncated: true,
      nextToken: 'tok+/=',
    });
  });

  it('refuses a cut-off page rather than return part of it', () => {
    expect(() => parseListPage('<ListBucketResult><Contents><Key>a</Key>')).toThrow(/cut-off page/);
    expect(() => parseListPage('<ListBucketResult><Contents><Key>a</Key></Contents>')).toThrow(/cut-off page/);
    expect(() => parseListPage('<Error><Code>x</Code></Error>')).toThrow(/without a ListBucketResult/);
  });
});
