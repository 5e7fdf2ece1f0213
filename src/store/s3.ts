/**
 * The S3 store driver: objects in one bucket below a key prefix, on AWS or any S3-compatible
 * endpoint. This is the only module that loads the AWS SDK for S3; `openStore` imports it lazily,
 * so a folder store never pays for it.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type ListObjectsV2CommandInput,
  type ListObjectsV2CommandOutput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { fromIni } from '@aws-sdk/credential-providers';
import { Upload } from '@aws-sdk/lib-storage';
import { retry } from '../util/retry.ts';
import { StoreError, type ListOptions, type ObjectInfo, type Store } from './store.ts';

export interface S3StoreOptions {
  /** The bucket that holds the objects. Required. */
  readonly bucket: string;
  /** Key prefix every key is relative to; normalised to `''` or a string ending in `/`. Default `''`. */
  readonly prefix?: string;
  /** AWS region. Default: the SDK's chain (`AWS_REGION`, the profile), or `us-east-1` with an `endpoint`. */
  readonly region?: string;
  /** An S3-compatible endpoint such as `http://127.0.0.1:4568`. Default: AWS S3 itself. */
  readonly endpoint?: string;
  /** Bucket in the path instead of the host name. Default: `true` with an `endpoint`, else `false`. */
  readonly forcePathStyle?: boolean;
  /** A named profile of `~/.aws/config` and `~/.aws/credentials`. Default: the standard credential chain. */
  readonly profile?: string;
  /**
   * GETs per second on one prefix the barrier's waiting nodes may make together. Default: 4,000 on
   * AWS S3 (which serves 5,500 per prefix), 500 with an `endpoint` (a server of unknown size: s3rver
   * on 2 cores serves about that).
   */
  readonly readsPerSecond?: number;
  /** Attempts per request, the first included, for throttling, 500/502/503/504 and network errors. Default 8. */
  readonly maxAttempts?: number;
  /** `putFile` sends files larger than this in parts of this size (at least 5 MiB). Default 8 MiB. */
  readonly partSize?: number;
}

export const DEFAULT_MAX_ATTEMPTS = 8;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PAGE_SIZE = 1000;
/** Reading a response body is not retried by the SDK; `get` and `getFile` try this often. */
const BODY_ATTEMPTS = 4;
const LOCATOR_PARAMS = ['region', 'endpoint', 'pathStyle', 'profile', 'readsPerSecond'] as const;
const LOCATOR_FORM = 's3://bucket/prefix?region=…&endpoint=…&pathStyle=true&profile=…&readsPerSecond=…';
const AWS_READS_PER_SECOND = 4000;
const ENDPOINT_READS_PER_SECOND = 500;

/**
 * Parses `s3://bucket/some/prefix?region=us-east-1&endpoint=http://127.0.0.1:4568&pathStyle=true&profile=name&readsPerSecond=2000`.
 * Every query parameter is optional. Credentials never belong in a locator.
 */
export function parseS3Locator(locator: string): S3StoreOptions {
  let url: URL;
  try {
    url = new URL(locator);
  } catch (error) {
    throw new StoreError(`Invalid S3 locator \`${locator}\`: expected ${LOCATOR_FORM}`, locator, { cause: error });
  }
  if (url.username || url.password) {
    // Never repeat the secret in a message or in the error's data.
    const redacted = `s3://…@${url.host}${url.pathname}`;
    throw new StoreError(
      'An S3 locator must not hold credentials: use `?profile=name`, the AWS_* environment variables or an instance role',
      redacted,
    );
  }
  if (url.protocol !== 's3:') {
    throw new StoreError(`Invalid S3 locator \`${locator}\`: it must start with s3://`, locator);
  }
  if (url.port) {
    throw new StoreError(
      `Invalid S3 locator \`${locator}\`: a port belongs in the endpoint, e.g. ?endpoint=http://127.0.0.1:${url.port}`,
      locator,
    );
  }
  if (url.hash) throw new StoreError(`Invalid S3 locator \`${locator}\`: remove the \`#…\` part`, locator);
  const bucket = url.hostname;
  if (!bucket) throw new StoreError(`S3 locator \`${locator}\` names no bucket: expected ${LOCATOR_FORM}`, locator);
  checkBucket(bucket, locator);

  const params: Partial<Record<(typeof LOCATOR_PARAMS)[number], string>> = {};
  for (const [name, value] of url.searchParams) {
    if (!(LOCATOR_PARAMS as readonly string[]).includes(name)) {
      throw new StoreError(
        `Unknown parameter \`${name}\` in S3 locator \`${locator}\`: expected one of ${LOCATOR_PARAMS.join(', ')}`,
        locator,
      );
    }
    const known = name as (typeof LOCATOR_PARAMS)[number];
    if (params[known] !== undefined) {
      throw new StoreError(`Parameter \`${name}\` appears twice in S3 locator \`${locator}\``, locator);
    }
    params[known] = value;
  }

  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch (error) {
    throw new StoreError(`Invalid percent-encoding in the prefix of S3 locator \`${locator}\``, locator, { cause: error });
  }
  const options: { -readonly [K in keyof S3StoreOptions]: S3StoreOptions[K] } = {
    bucket,
    prefix: normalisePrefix(path, locator),
  };
  if (params.region !== undefined) options.region = checkRegion(params.region, locator);
  if (params.endpoint !== undefined) options.endpoint = checkEndpoint(params.endpoint, locator);
  if (params.pathStyle !== undefined) options.forcePathStyle = parseBoolean(params.pathStyle, locator);
  if (params.profile !== undefined) {
    if (!params.profile) throw new StoreError(`Empty \`profile\` in S3 locator \`${locator}\`: name a profile or drop it`, locator);
    options.profile = params.profile;
  }
  if (params.readsPerSecond !== undefined) options.readsPerSecond = checkReadsPerSecond(params.readsPerSecond, locator);
  return options;
}

/** The canonical locator of a store with these options (the inverse of `parseS3Locator`). */
export function formatS3Locator(options: S3StoreOptions): string {
  const prefix = (options.prefix ?? '')
    .split('/')
    .map((part) => encodeURIComponent(part))
    .join('/');
  const query = new URLSearchParams();
  if (options.region !== undefined) query.set('region', options.region);
  if (options.endpoint !== undefined) query.set('endpoint', options.endpoint);
  if (options.forcePathStyle !== undefined) query.set('pathStyle', String(options.forcePathStyle));
  if (options.profile !== undefined) query.set('profile', options.profile);
  if (options.readsPerSecond !== undefined) query.set('readsPerSecond', String(options.readsPerSecond));
  const search = query.toString();
  return `s3://${options.bucket}/${prefix}${search ? `?${search}` : ''}`;
}

/** A store in an S3 bucket below a prefix. Keys given to and returned by it are relative to the prefix. */
export function createS3Store(options: S3StoreOptions): Store {
  const bucket = options.bucket;
  if (!bucket) throw new StoreError('S3 store needs `bucket`', 's3:');
  const prefix = normalisePrefix(options.prefix ?? '', `s3://${bucket}/`);
  const endpoint = options.endpoint === undefined ? undefined : checkEndpoint(options.endpoint, `s3://${bucket}/`);
  const locator = formatS3Locator({ ...options, prefix, endpoint });
  checkBucket(bucket, locator);
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new StoreError(`Expected \`maxAttempts\` to be a positive integer, got \`${maxAttempts}\``, locator);
  }
  const readsPerSecond = options.readsPerSecond === undefined ? undefined : checkReadsPerSecond(String(options.readsPerSecond), locator);
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE) {
    throw new StoreError(`Expected \`partSize\` to be an integer of at least ${MIN_PART_SIZE} (5 MiB), got \`${partSize}\``, locator);
  }

  const config: S3ClientConfig = {
    maxAttempts,
    retryMode: 'standard',
    // A socket that goes silent (connect or mid-transfer) fails as a TimeoutError, which is retried.
    requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
  };
  if (options.region !== undefined) config.region = options.region;
  else if (endpoint !== undefined) config.region = 'us-east-1';
  if (endpoint !== undefined) {
    config.endpoint = endpoint;
    // S3-compatible servers (s3rver among them) store the aws-chunked framing of flexible
    // checksums inside the object; send and check checksums only where the API requires them.
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  config.forcePathStyle = options.forcePathStyle ?? endpoint !== undefined;
  if (options.profile !== undefined) {
    config.profile = options.profile;
    config.credentials = fromIni({ profile: options.profile });
  }
  const s3: S3Context = { client: new S3Client(config), bucket, locator };

  const keyOf = (key: string): string => {
    if (!key || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.')) {
      throw new StoreError(`Invalid object key \`${key}\``, locator);
    }
    return prefix + key;
  };

  return {
    locator,
    readsPerSecond: readsPerSecond ?? (endpoint === undefined ? AWS_READS_PER_SECOND : ENDPOINT_READS_PER_SECOND),
    async put(key, body) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      await putObject(s3, keyOf(key), bytes);
    },
    async putFile(key, path) {
      await uploadObject(s3, keyOf(key), createReadStream(path), partSize);
    },
    async get(key) {
      const fullKey = keyOf(key);
      return await withBodyRetries(s3, fullKey, async () => {
        const body = await getObject(s3, fullKey);
        return body === undefined ? undefined : new Uint8Array(await body.transformToByteArray());
      });
    },
    async getFile(key, target) {
      const fullKey = keyOf(key);
      await mkdir(dirname(target), { recursive: true });
      const temporary = `${target}.${randomBytes(6).toString('hex')}.partial`;
      try {
        const found = await withBodyRetries(s3, fullKey, async () => {
          const body = await getObject(s3, fullKey);
          if (body === undefined) return false;
          await pipeline(body as Readable, createWriteStream(temporary));
          return true;
        });
        if (found) await rename(temporary, target);
        // Like the folder store: after a miss there is no file at the target.
        else await rm(target, { force: true });
        return found;
      } finally {
        await rm(temporary, { force: true });
      }
    },
    async list(listPrefix, listOptions?: ListOptions) {
      const pageSize = listOptions?.pageSize ?? MAX_PAGE_SIZE;
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
        throw new StoreError(`Expected \`pageSize\` to be an integer from 1 to ${MAX_PAGE_SIZE}, got \`${pageSize}\``, locator);
      }
      const startAfter = listOptions?.startAfter;
      const objects: ObjectInfo[] = [];
      const tokens = new Set<string>();
      let token: string | undefined;
      for (;;) {
        const page = await listObjectsV2(s3, {
          Prefix: prefix + listPrefix,
          MaxKeys: pageSize,
          // Later pages continue from the token, which already lies after `startAfter`.
          ...(token === undefined ? (startAfter ? { StartAfter: prefix + startAfter } : {}) : { ContinuationToken: token }),
        });
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined || !object.Key.startsWith(prefix)) {
            throw new StoreError(`S3 ListObjectsV2 returned a key outside the prefix: \`${object.Key}\``, locator);
          }
          objects.push({
            key: object.Key.slice(prefix.length),
            size: object.Size ?? 0,
            ...(object.ETag !== undefined && { etag: object.ETag }),
            ...(object.LastModified !== undefined && { lastModified: object.LastModified }),
          });
        }
        if (!page.IsTruncated) return objects;
        token = page.NextContinuationToken;
        if (!token || tokens.has(token)) {
          throw new StoreError(
            `S3 ListObjectsV2 of \`${prefix + listPrefix}\` returned a truncated page ${token ? 'with a repeated' : 'without a'} continuation token after ${objects.length} keys; refusing to return half a list`,
            locator,
          );
        }
        tokens.add(token);
      }
    },
    async delete(key) {
      await deleteObject(s3, keyOf(key));
    },
    async dispose() {
      s3.client.destroy();
    },
  };
}

// ---- One helper per S3 API call -------------------------------------------------------------

interface S3Context {
  readonly client: S3Client;
  readonly bucket: string;
  readonly locator: string;
}

/** The body of a GetObject response, as the SDK hands it over. */
type ObjectBody = NonNullable<GetObjectCommandOutput['Body']>;

/** S3 PutObject with the whole body in memory (a known length, so retries can resend it). */
async function putObject(s3: S3Context, key: string, body: Uint8Array): Promise<void> {
  try {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
  } catch (error) {
    throw s3Error('PutObject', s3, key, error);
  }
}

/**
 * S3 PutObject, or CreateMultipartUpload + UploadPart + CompleteMultipartUpload when the stream is
 * larger than one part (lib-storage's `Upload`). Each request carries a buffered part, so the SDK
 * can retry it; a failed multipart upload is aborted.
 */
async function uploadObject(s3: S3Context, key: string, body: Readable, partSize: number): Promise<void> {
  try {
    const upload = new Upload({ client: s3.client, params: { Bucket: s3.bucket, Key: key, Body: body }, partSize, queueSize: 4 });
    await upload.done();
  } catch (error) {
    if (isLocalFileError(error)) throw error;
    throw s3Error('PutObject (multipart upload)', s3, key, error);
  } finally {
    body.destroy();
  }
}

/** S3 GetObject; `undefined` for a missing key (NoSuchKey). */
async function getObject(s3: S3Context, key: string): Promise<ObjectBody | undefined> {
  try {
    const output = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    if (output.Body === undefined) throw new Error('the response has no body');
    return output.Body;
  } catch (error) {
    if (isMissingKey(error)) return undefined;
    throw s3Error('GetObject', s3, key, error);
  }
}

/** S3 ListObjectsV2, one page. */
async function listObjectsV2(
  s3: S3Context,
  input: Omit<ListObjectsV2CommandInput, 'Bucket'>,
): Promise<ListObjectsV2CommandOutput> {
  try {
    return await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, ...input }));
  } catch (error) {
    throw s3Error('ListObjectsV2', s3, input.Prefix ?? '', error);
  }
}

/** S3 DeleteObject (S3 answers 204 for a missing key too). */
async function deleteObject(s3: S3Context, key: string): Promise<void> {
  try {
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
  } catch (error) {
    if (isMissingKey(error)) return;
    throw s3Error('DeleteObject', s3, key, error);
  }
}

// ---- Errors and retries ---------------------------------------------------------------------

/**
 * The SDK retries a request until its response headers arrive; a connection that breaks while the
 * body streams in is retried here, by asking again from the start.
 */
async function withBodyRetries<T>(s3: S3Context, key: string, read: () => Promise<T>): Promise<T> {
  try {
    return await retry(read, { attempts: BODY_ATTEMPTS, baseDelayMs: 200, retryable: isBrokenTransfer });
  } catch (error) {
    if (!isBrokenTransfer(error)) throw error;
    throw new StoreError(
      `S3 GetObject of \`${key}\` in bucket \`${s3.bucket}\` failed while reading the body, ${BODY_ATTEMPTS} attempts: ${describe(error)}`,
      s3.locator,
      { cause: error },
    );
  }
}

function s3Error(api: string, s3: S3Context, key: string, error: unknown): StoreError {
  const name = (error as { name?: string } | undefined)?.name;
  const hint =
    name === 'NoSuchBucket'
      ? ': the bucket does not exist (create it, or check the locator\'s bucket, region and endpoint)'
      : name === 'CredentialsProviderError'
        ? ': no AWS credentials found (set AWS_PROFILE or the AWS_* variables, add `?profile=name`, or use an instance role)'
        : name === 'AccessDenied' || name === 'Forbidden'
          ? ': access denied (check the credentials and that the policy allows this bucket and prefix)'
          : /Region is missing/.test(String((error as Error | undefined)?.message))
            ? ': no AWS region (add `?region=…` to the locator, or set AWS_REGION)'
            : '';
  const attempts = (error as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts;
  return new StoreError(
    `S3 ${api} of \`${key}\` in bucket \`${s3.bucket}\` failed${attempts && attempts > 1 ? ` after ${attempts} attempts` : ''}${hint}: ${describe(error)}`,
    s3.locator,
    { cause: error },
  );
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return `${error.name}${status ? ` (HTTP ${status})` : ''}: ${error.message}`;
}

function isMissingKey(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return name === 'NoSuchKey' || (status === 404 && name !== 'NoSuchBucket');
}

/** Errors of the local file (a missing or unreadable source) are the caller's, not S3's. */
function isLocalFileError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException | undefined)?.path === 'string';
}

/** A connection that broke or went silent while a response body streamed in. */
function isBrokenTransfer(error: unknown): boolean {
  if (error instanceof StoreError) return false;
  const { code, name, message } = (error ?? {}) as NodeJS.ErrnoException;
  return (
    name === 'TimeoutError' ||
    message === 'aborted' ||
    ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE'].includes(code ?? '')
  );
}

// ---- Locator pieces -------------------------------------------------------------------------

function normalisePrefix(path: string, locator: string): string {
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!trimmed) return '';
  if (trimmed.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new StoreError(`Invalid prefix \`${path}\` in \`${locator}\`: no empty, \`.\` or \`..\` parts`, locator);
  }
  return `${trimmed}/`;
}

function checkBucket(bucket: string, locator: string): void {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new StoreError(
      `Invalid bucket name \`${bucket}\` in \`${locator}\`: S3 bucket names have 3 to 63 lowercase letters, digits, dots and hyphens, and start and end with a letter or digit`,
      locator,
    );
  }
}

function checkRegion(region: string, locator: string): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(region)) {
    throw new StoreError(`Invalid region \`${region}\` in S3 locator \`${locator}\`: expected e.g. region=us-east-1`, locator);
  }
  return region;
}

function checkEndpoint(endpoint: string, locator: string): string {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password || url.search || url.hash) {
    throw new StoreError(
      `Invalid endpoint \`${endpoint}\` in \`${locator}\`: expected an http:// or https:// URL such as endpoint=http://127.0.0.1:4568`,
      locator,
    );
  }
  return url.href.replace(/\/+$/, '');
}

function checkReadsPerSecond(value: string, locator: string): number {
  const rate = Number(value);
  if (!/^\d+$/.test(value) || rate < 1) {
    throw new StoreError(
      `Invalid readsPerSecond \`${value}\` in S3 locator \`${locator}\`: expected a whole number of GETs per second the server sustains, e.g. readsPerSecond=2000`,
      locator,
    );
  }
  return rate;
}

function parseBoolean(value: string, locator: string): boolean {
  if (value === '' || value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new StoreError(`Invalid pathStyle \`${value}\` in S3 locator \`${locator}\`: expected pathStyle=true or pathStyle=false`, locator);
}
