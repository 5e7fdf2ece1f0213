/**
 * What both S3 drivers share (the AWS SDK's, `s3.ts`, for the controller; the light one over
 * node:http, `s3-http.ts`, for the agent): their options and checks, their retry policy's limits, and
 * the wording of their errors, so that a user reads the same message whichever driver failed.
 */
import { checkBucket, checkEndpoint, checkReadsPerSecond, formatS3Locator, normaliseS3Prefix, type S3Locator } from './s3-locator.ts';
import { StoreError } from './store.ts';

export interface S3StoreOptions extends S3Locator {
  /** Attempts per request, the first included, for throttling, 500/502/503/504 and network errors. Default 8. */
  readonly maxAttempts?: number;
  /** `putFile` sends files larger than this in parts of this size (at least 5 MiB). Default 8 MiB. */
  readonly partSize?: number;
}

export const DEFAULT_MAX_ATTEMPTS = 8;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PAGE_SIZE = 1000;
/** A connection that does not open within this fails (and is retried). */
export const CONNECT_TIMEOUT_MS = 10_000;
/** A socket silent this long, mid-request or mid-transfer, fails (and is retried). */
export const SOCKET_TIMEOUT_MS = 120_000;

/** The options of an S3 store, checked, with their defaults. */
export interface CheckedS3Options {
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint?: string;
  readonly locator: string;
  readonly maxAttempts: number;
  readonly readsPerSecond?: number;
  readonly partSize: number;
}

export function checkS3StoreOptions(options: S3StoreOptions): CheckedS3Options {
  const bucket = options.bucket;
  if (!bucket) throw new StoreError('S3 store needs `bucket`', 's3:');
  const prefix = normaliseS3Prefix(options.prefix ?? '', `s3://${bucket}/`);
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
  return { bucket, prefix, endpoint, locator, maxAttempts, readsPerSecond, partSize };
}

export function checkPageSize(pageSize: number, locator: string): void {
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    throw new StoreError(`Expected \`pageSize\` to be an integer from 1 to ${MAX_PAGE_SIZE}, got \`${pageSize}\``, locator);
  }
}

/** A listing must not end on a truncated page it cannot follow: that would be half a list. */
export function halfListError(locator: string, listPrefix: string, token: string | undefined, keys: number): StoreError {
  return new StoreError(
    `S3 ListObjectsV2 of \`${listPrefix}\` returned a truncated page ${token ? 'with a repeated' : 'without a'} continuation token after ${keys} keys; refusing to return half a list`,
    locator,
  );
}

/** What a driver knows of a failed request, whichever client made it. */
export interface S3Failure {
  /** The S3 error code (`NoSuchBucket`, `AccessDenied`, `SlowDown`…) or the client's error name. */
  readonly name: string;
  readonly message: string;
  readonly status?: number;
  readonly attempts?: number;
}

/** Error names a driver gives where no credentials were found, and where no region is known. */
export const NO_CREDENTIALS = 'CredentialsProviderError';
export const NO_REGION = 'RegionMissing';

/** The one-line fix for the failures a user can fix. */
function hintOf(failure: S3Failure): string {
  // The SDK names a missing region only in its message.
  if (failure.name === NO_REGION || /Region is missing/.test(failure.message)) return ': no AWS region (add `?region=…` to the locator, or set AWS_REGION)';
  switch (failure.name) {
    case 'NoSuchBucket':
      return ": the bucket does not exist (create it, or check the locator's bucket, region and endpoint)";
    case NO_CREDENTIALS:
      return ': no AWS credentials found (set AWS_PROFILE or the AWS_* variables, add `?profile=name`, or use an instance role)';
    case 'AccessDenied':
    case 'Forbidden':
      return ': access denied (check the credentials and that the policy allows this bucket and prefix)';
    default:
      return '';
  }
}

/** `S3 <api> of `<key>` in bucket `<bucket>` failed[ after N attempts][: hint]: <name> (HTTP n): <message>`. */
export function s3StoreError(
  api: string,
  where: { readonly bucket: string; readonly locator: string },
  key: string,
  failure: S3Failure,
  cause: unknown,
): StoreError {
  const attempts = failure.attempts && failure.attempts > 1 ? ` after ${failure.attempts} attempts` : '';
  const detail = `${failure.name}${failure.status ? ` (HTTP ${failure.status})` : ''}: ${failure.message}`;
  return new StoreError(`S3 ${api} of \`${key}\` in bucket \`${where.bucket}\` failed${attempts}${hintOf(failure)}: ${detail}`, where.locator, { cause });
}

/** Errors of the local file (a missing or unreadable source) are the caller's, not S3's. */
export function isLocalFileError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException | undefined)?.path === 'string';
}

/** A connection that broke, was refused or went silent. */
export function isBrokenTransfer(error: unknown): boolean {
  if (error instanceof StoreError) return false;
  const { code, name, message } = (error ?? {}) as NodeJS.ErrnoException;
  return (
    name === 'TimeoutError' ||
    message === 'aborted' ||
    ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH'].includes(code ?? '')
  );
}
