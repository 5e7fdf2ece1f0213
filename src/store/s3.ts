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
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { fromIni, fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { Upload } from '@aws-sdk/lib-storage';
import { retry } from '../util/retry.ts';
import {
  checkPageSize,
  checkS3StoreOptions,
  CONNECT_TIMEOUT_MS,
  halfListError,
  isBrokenTransfer,
  isLocalFileError,
  MAX_PAGE_SIZE,
  s3StoreError,
  SOCKET_TIMEOUT_MS,
  type S3StoreOptions,
} from './s3-driver.ts';
import { readsPerSecondOf } from './s3-locator.ts';
import { checkObjectKey, StoreError, type ListOptions, type ObjectInfo, type Store } from './store.ts';

/** Reading a response body is not retried by the SDK; `get` and `getFile` try this often. */
const BODY_ATTEMPTS = 4;

/** A store in an S3 bucket below a prefix. Keys given to and returned by it are relative to the prefix. */
export function createS3Store(options: S3StoreOptions): Store {
  const { bucket, prefix, endpoint, locator, maxAttempts, readsPerSecond, partSize } = checkS3StoreOptions(options);

  const config: S3ClientConfig = {
    maxAttempts,
    retryMode: 'standard',
    // A socket that goes silent (connect or mid-transfer) fails as a TimeoutError, which is retried.
    requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: SOCKET_TIMEOUT_MS },
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
  } else {
    // The standard chain, with a patient instance-metadata lookup (the SDK's default is one try of
    // 1 s): an instance whose metadata service answers slowly while it is busy still finds its role.
    config.credentials = fromNodeProviderChain({ timeout: 3000, maxRetries: 2 });
  }
  const s3: S3Context = { client: new S3Client(config), bucket, locator };

  const keyOf = (key: string): string => prefix + checkObjectKey(key, locator);

  return {
    locator,
    readsPerSecond: readsPerSecond ?? readsPerSecondOf({ endpoint }),
    readRatePerPrefix: endpoint === undefined,
    async put(key, body) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      await putObject(s3, keyOf(key), bytes);
    },
    async putIfAbsent(key, body) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      return await putObjectIfAbsent(s3, keyOf(key), bytes);
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
    async urlFor(key, expiresInSeconds) {
      const { getSignedUrl } = await import('@aws-sdk/s3-request-presigner');
      return getSignedUrl(s3.client, new GetObjectCommand({ Bucket: bucket, Key: keyOf(key) }), { expiresIn: expiresInSeconds });
    },
    async list(listPrefix, listOptions?: ListOptions) {
      const pageSize = listOptions?.pageSize ?? MAX_PAGE_SIZE;
      checkPageSize(pageSize, locator);
      const startAfter = listOptions?.startAfter;
      const maxKeys = listOptions?.maxKeys ?? Infinity;
      const objects: ObjectInfo[] = [];
      const tokens = new Set<string>();
      const pages = paginateListObjectsV2(
        { client: s3.client, pageSize: Math.min(pageSize, maxKeys) },
        { Bucket: bucket, Prefix: prefix + listPrefix, ...(startAfter ? { StartAfter: prefix + startAfter } : {}) },
      );
      try {
        for await (const page of pages) {
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
          if (objects.length >= maxKeys) return objects.slice(0, maxKeys);
          if (!page.IsTruncated) continue;
          const token = page.NextContinuationToken;
          if (!token || tokens.has(token)) {
            throw halfListError(locator, prefix + listPrefix, token, objects.length);
          }
          tokens.add(token);
        }
      } catch (error) {
        if (error instanceof StoreError) throw error;
        throw s3Error('ListObjectsV2', s3, prefix + listPrefix, error);
      }
      return objects;
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
 * S3 PutObject with `If-None-Match: *`: false when the key exists (412 PreconditionFailed). A 409
 * (another conditional write of the key under way) is tried again: then the other's object stands.
 */
async function putObjectIfAbsent(s3: S3Context, key: string, body: Uint8Array): Promise<boolean> {
  try {
    await retry(() => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, IfNoneMatch: '*' })), {
      attempts: 5,
      baseDelayMs: 100,
      retryable: (error) => httpStatus(error) === 409,
    });
    return true;
  } catch (error) {
    if (httpStatus(error) === 412 || (error as { name?: string }).name === 'PreconditionFailed') return false;
    throw s3Error('PutObject (If-None-Match)', s3, key, error);
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
  const { name, message, $metadata } = (error ?? {}) as { name?: string; message?: string; $metadata?: { httpStatusCode?: number; attempts?: number } };
  return s3StoreError(
    api,
    s3,
    key,
    { name: name ?? 'Error', message: message ?? String(error), status: $metadata?.httpStatusCode, attempts: $metadata?.attempts },
    error,
  );
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return `${error.name}${status ? ` (HTTP ${status})` : ''}: ${error.message}`;
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function isMissingKey(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return name === 'NoSuchKey' || (status === 404 && name !== 'NoSuchBucket');
}

