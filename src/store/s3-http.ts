/**
 * The light S3 store driver: the whole `Store` contract over node:http / node:https with a keep-alive
 * agent, requests signed by `aws4` (SigV4), without the AWS SDK. The agent uses it: every instance
 * downloads and loads the agent, and the SDK's S3 client would triple its bundle and add ~10 MiB to
 * its memory. The controller keeps the SDK's driver (`s3.ts`: presigned URLs, SSO and the rest).
 *
 * Wire format (what S3 and S3-compatible servers speak): objects at `/<key>` of the bucket's host
 * (`<bucket>.s3.<region>.amazonaws.com`) or at `/<bucket>/<key>` of an endpoint (path style); errors
 * as `<Error><Code>…</Code><Message>…</Message></Error>`; ListObjectsV2 as `<ListBucketResult>`.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import aws4 from 'aws4';
import { eachLimited } from '../util/pool.ts';
import { retry } from '../util/retry.ts';
import { credentialChain, type CredentialSource } from './s3-credentials.ts';
import {
  checkPageSize,
  checkS3StoreOptions,
  CONNECT_TIMEOUT_MS,
  halfListError,
  isBrokenTransfer,
  isLocalFileError,
  MAX_PAGE_SIZE,
  NO_CREDENTIALS,
  NO_REGION,
  s3StoreError,
  SOCKET_TIMEOUT_MS,
  type S3StoreOptions,
} from './s3-driver.ts';
import { readsPerSecondOf } from './s3-locator.ts';
import { parseListPage, xmlText } from './s3-xml.ts';
import { checkObjectKey, StoreError, type ListOptions, type ObjectInfo, type Store } from './store.ts';

export interface S3HttpStoreOptions extends S3StoreOptions {
  /** Where credentials come from. Default: `credentialChain` (environment, profile, instance role, the SDK's chain). */
  readonly credentials?: CredentialSource;
  /** Default `process.env` (region, endpoint and credentials variables). */
  readonly env?: NodeJS.ProcessEnv;
}

/** Parts of one multipart upload in flight at once (each streams from the file: no part is held in memory). */
const PART_CONCURRENCY = 4;

/** An S3 error answer, or a request that failed before one. */
class S3ResponseError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

interface S3Request {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** The full key (prefix included); none for the bucket itself. */
  readonly key?: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly headers?: Readonly<Record<string, string>>;
  /** A body in memory (signed with its hash), or a stream made afresh for each attempt (sent unsigned). */
  readonly body?: Buffer | { readonly open: () => Readable; readonly length: number };
}

/** A store in an S3 bucket below a prefix. Keys given to and returned by it are relative to the prefix. */
export function createS3HttpStore(options: S3HttpStoreOptions): Store {
  const { bucket, prefix, endpoint, locator, maxAttempts, readsPerSecond, partSize } = checkS3StoreOptions(options);
  const env = options.env ?? process.env;
  // As the SDK reads them: an endpoint for S3 alone, else for every service.
  const server = endpoint ?? (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined);
  const region = options.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || (server !== undefined ? 'us-east-1' : undefined));
  const pathStyle = options.forcePathStyle ?? (server !== undefined || bucket.includes('.'));
  const base = new URL(server ?? `https://s3.${region ?? 'us-east-1'}.amazonaws.com`);
  if (!pathStyle) base.hostname = `${bucket}.${base.hostname}`;
  const basePath = (base.pathname.replace(/\/+$/, '') + (pathStyle ? `/${bucket}` : '')).replace(/^\/?/, '/');
  const https = base.protocol === 'https:';
  const agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const credentials = options.credentials ?? credentialChain({ ...(options.profile !== undefined && { profile: options.profile }), env });
  const where = { bucket, locator };

  const keyOf = (key: string): string => prefix + checkObjectKey(key, locator);

  /** One request, with its answer handed to `read` (which also runs again on each retry). Throws a StoreError. */
  async function send<T>(api: string, key: string, request: S3Request, read: (response: IncomingMessage) => Promise<T>, extra?: { retryable?: (error: unknown) => boolean }): Promise<T> {
    let attempts = 0;
    try {
      if (region === undefined) throw new S3ResponseError(NO_REGION, 'Region is missing');
      return await retry(
        async (attempt) => {
          attempts = attempt;
          return await read(await exchange(request));
        },
        {
          attempts: maxAttempts,
          baseDelayMs: 100,
          maxDelayMs: 20_000,
          retryable: (error) => isRetryable(error) || extra?.retryable?.(error) === true,
        },
      );
    } catch (error) {
      if (error instanceof StoreError || isLocalFileError(error)) throw error;
      const { name, message, status } = error as S3ResponseError;
      throw s3StoreError(api, where, key, { name: name ?? 'Error', message: message ?? String(error), status, attempts }, error);
    }
  }

  /** Signs and sends one request; resolves with the answer of a 2xx, rejects with an S3ResponseError otherwise. */
  async function exchange(request: S3Request): Promise<IncomingMessage> {
    const found = await credentials();
    const path = basePath + (request.key === undefined ? '' : `/${request.key.split('/').map(encodeSegment).join('/')}`);
    const query = request.query ? new URLSearchParams(request.query).toString().replace(/\+/g, '%20') : '';
    const headers: Record<string, string> = { ...request.headers };
    const body = request.body;
    if (request.method === 'PUT' || request.method === 'POST') {
      headers['Content-Length'] = String(body?.length ?? 0);
      if (body !== undefined) headers['Content-Type'] ??= 'application/octet-stream';
    }
    if (body !== undefined && !Buffer.isBuffer(body)) headers['X-Amz-Content-Sha256'] = 'UNSIGNED-PAYLOAD';
    const signed = aws4.sign(
      { service: 's3', region, method: request.method, host: base.host, path: query ? `${path}?${query}` : path, headers, ...(Buffer.isBuffer(body) && { body }) },
      found,
    );
    return await new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = (https ? httpsRequest : httpRequest)(
        {
          protocol: base.protocol,
          hostname: base.hostname.replace(/^\[|\]$/g, ''),
          port: base.port,
          method: request.method,
          path: signed.path,
          headers: signed.headers,
          agent,
          timeout: SOCKET_TIMEOUT_MS,
        },
        (response) => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(response);
          readAll(response).then((text) => reject(errorOf(status, text.toString('utf8'))), reject);
        },
      );
      outgoing.on('error', reject);
      outgoing.on('timeout', () => outgoing.destroy(Object.assign(new Error(`no answer within ${SOCKET_TIMEOUT_MS / 1000} s`), { name: 'TimeoutError' })));
      outgoing.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => outgoing.destroy(Object.assign(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`), { name: 'TimeoutError' })),
          CONNECT_TIMEOUT_MS,
        );
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      if (body === undefined) outgoing.end();
      else if (Buffer.isBuffer(body)) outgoing.end(body);
      else pipeline(body.open(), outgoing).catch((error: unknown) => outgoing.destroy(error as Error));
    });
  }

  const putBuffer = (api: string, key: string, body: Buffer, headers?: Record<string, string>, retryable?: (error: unknown) => boolean) =>
    send(api, key, { method: 'PUT', key, body, ...(headers && { headers }) }, drain, { ...(retryable && { retryable }) });

  async function putFileInParts(key: string, path: string, size: number): Promise<void> {
    const created = await send('CreateMultipartUpload', key, { method: 'POST', key, query: { uploads: '' } }, readAll);
    const uploadId = xmlText(created.toString('utf8'), 'UploadId');
    if (!uploadId) throw new StoreError(`S3 CreateMultipartUpload of \`${key}\` in bucket \`${bucket}\` answered without an UploadId`, locator);
    const parts = Array.from({ length: Math.ceil(size / partSize) }, (_, index) => ({ number: index + 1, start: index * partSize, etag: '' }));
    try {
      await eachLimited(parts, PART_CONCURRENCY, async (part) => {
        const end = Math.min(size, part.start + partSize) - 1;
        const body = { open: () => createReadStream(path, { start: part.start, end }), length: end - part.start + 1 };
        part.etag = await send('UploadPart', key, { method: 'PUT', key, query: { partNumber: String(part.number), uploadId }, body }, async (response) => {
          await drain(response);
          return String(response.headers.etag ?? '');
        });
      });
      const manifest = `<CompleteMultipartUpload>${parts.map((p) => `<Part><PartNumber>${p.number}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const completed = await send('CompleteMultipartUpload', key, { method: 'POST', key, query: { uploadId }, body: Buffer.from(manifest), headers: { 'Content-Type': 'application/xml' } }, readAll);
      // S3 may answer 200 and then report a failure in the body.
      const answer = completed.toString('utf8');
      if (answer.includes('<Error>')) {
        throw s3StoreError('CompleteMultipartUpload', where, key, { name: xmlText(answer, 'Code') ?? 'Error', message: xmlText(answer, 'Message') ?? answer }, undefined);
      }
    } catch (error) {
      // Parts of an upload that is neither completed nor aborted are kept (and billed) by S3.
      await send('AbortMultipartUpload', key, { method: 'DELETE', key, query: { uploadId } }, drain).catch(() => undefined);
      throw error;
    }
  }

  return {
    locator,
    readsPerSecond: readsPerSecond ?? readsPerSecondOf({ endpoint }, env),
    readRatePerPrefix: endpoint === undefined,
    async put(key, body) {
      const fullKey = keyOf(key);
      await putBuffer('PutObject', fullKey, toBuffer(body));
    },
    async putIfAbsent(key, body) {
      const fullKey = keyOf(key);
      try {
        // 409: another conditional write of the key is under way; asked again, the other's object stands (412).
        await putBuffer('PutObject (If-None-Match)', fullKey, toBuffer(body), { 'If-None-Match': '*' }, (error) => statusOf(error) === 409);
        return true;
      } catch (error) {
        if (statusOf(error) === 412) return false;
        throw error;
      }
    },
    async putFile(key, path) {
      const fullKey = keyOf(key);
      const { size } = await stat(path);
      if (size > partSize) return await putFileInParts(fullKey, path, size);
      await send('PutObject', fullKey, { method: 'PUT', key: fullKey, body: { open: () => createReadStream(path), length: size } }, drain);
    },
    async get(key) {
      const fullKey = keyOf(key);
      try {
        const bytes = await send('GetObject', fullKey, { method: 'GET', key: fullKey }, readAll);
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
      } catch (error) {
        if (isMissingKey(error)) return undefined;
        throw error;
      }
    },
    async getFile(key, target) {
      const fullKey = keyOf(key);
      await mkdir(dirname(target), { recursive: true });
      const temporary = `${target}.${randomBytes(6).toString('hex')}.partial`;
      try {
        let found = true;
        try {
          await send('GetObject', fullKey, { method: 'GET', key: fullKey }, (response) => pipeline(response, createWriteStream(temporary)));
        } catch (error) {
          if (!isMissingKey(error)) throw error;
          found = false;
        }
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
      checkPageSize(pageSize, locator);
      const maxKeys = listOptions?.maxKeys ?? Infinity;
      const fullPrefix = prefix + listPrefix;
      const objects: ObjectInfo[] = [];
      const tokens = new Set<string>();
      let token: string | undefined;
      for (;;) {
        const query: Record<string, string> = { 'list-type': '2', prefix: fullPrefix, 'max-keys': String(Math.min(pageSize, maxKeys - objects.length)) };
        if (token !== undefined) query['continuation-token'] = token;
        else if (listOptions?.startAfter) query['start-after'] = prefix + listOptions.startAfter;
        const xml = await send('ListObjectsV2', fullPrefix, { method: 'GET', query }, readAll);
        const page = parseListPage(xml.toString('utf8'));
        for (const object of page.objects) {
          if (!object.key.startsWith(prefix)) throw new StoreError(`S3 ListObjectsV2 returned a key outside the prefix: \`${object.key}\``, locator);
          objects.push({ ...object, key: object.key.slice(prefix.length) });
        }
        if (objects.length >= maxKeys) return objects.slice(0, maxKeys);
        if (!page.truncated) return objects;
        if (!page.nextToken || tokens.has(page.nextToken)) throw halfListError(locator, fullPrefix, page.nextToken, objects.length);
        tokens.add(page.nextToken);
        token = page.nextToken;
      }
    },
    async delete(key) {
      const fullKey = keyOf(key);
      try {
        await send('DeleteObject', fullKey, { method: 'DELETE', key: fullKey }, drain);
      } catch (error) {
        if (!isMissingKey(error)) throw error;
      }
    },
    async dispose() {
      agent.destroy();
    },
  };
}

/**
 * Throttling, a server's passing failure, or a connection that broke or went silent. Not
 * RequestTimeTooSkewed: the same clock would sign every retry alike, and a node whose clock is that
 * far off could not keep a common start time anyway; the error says so at once.
 */
function isRetryable(error: unknown): boolean {
  if (error instanceof S3ResponseError) {
    return (
      [500, 502, 503, 504, 429].includes(error.status ?? 0) ||
      ['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'InternalError'].includes(error.name)
    );
  }
  return error instanceof Error && error.name !== NO_CREDENTIALS && isBrokenTransfer(error);
}

function errorOf(status: number, body: string): S3ResponseError {
  const code = xmlText(body, 'Code');
  const fallback = status === 404 ? 'NotFound' : status === 403 ? 'Forbidden' : status === 412 ? 'PreconditionFailed' : `HTTP${status}`;
  return new S3ResponseError(code ?? fallback, xmlText(body, 'Message') ?? (body.trim().slice(0, 200) || `HTTP ${status}`), status);
}

/** The HTTP status of a failed request, through the StoreError that wraps it. */
function statusOf(error: unknown): number | undefined {
  const cause = error instanceof StoreError ? error.cause : error;
  return cause instanceof S3ResponseError ? cause.status : undefined;
}

function isMissingKey(error: unknown): boolean {
  const cause = error instanceof StoreError ? error.cause : error;
  return cause instanceof S3ResponseError && (cause.name === 'NoSuchKey' || (cause.status === 404 && cause.name !== 'NoSuchBucket'));
}

async function readAll(response: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function drain(response: IncomingMessage): Promise<void> {
  for await (const _ of response);
}

function toBuffer(body: Uint8Array | string): Buffer {
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** A key's path segment as SigV4 encodes it (RFC 3986: also `!'()*`). */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
