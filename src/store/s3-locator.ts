/**
 * S3 store locators, `s3://bucket/prefix?region=…&endpoint=…&pathStyle=true&profile=…&readsPerSecond=…`:
 * parsing, checking and formatting, in one place that needs no AWS SDK (the controller, the EC2
 * boot script and the agent read locators; only the S3 driver talks to S3).
 */
import { StoreError } from './store.ts';

/** Where an S3 store lives, as its locator says. */
export interface S3Locator {
  /** The bucket that holds the objects. Required. */
  readonly bucket: string;
  /** Key prefix every key is relative to; normalised to `''` or a string ending in `/`. Default `''`. */
  readonly prefix?: string;
  /**
   * AWS region. Default: the SDK driver, `us-east-1` with an `endpoint`, else the SDK's chain
   * (`AWS_REGION`, the profile); the agent's light driver, `AWS_REGION` or `AWS_DEFAULT_REGION`, else
   * `us-east-1` with an endpoint, else none (its requests fail, saying so).
   */
  readonly region?: string;
  /** An S3-compatible endpoint such as `http://127.0.0.1:4568`. Default: AWS S3 itself. */
  readonly endpoint?: string;
  /** Bucket in the path instead of the host name. Default: `true` with an `endpoint`, else `false`. */
  readonly forcePathStyle?: boolean;
  /** A named profile of `~/.aws/config` and `~/.aws/credentials`. Default: the standard credential chain. */
  readonly profile?: string;
  /**
   * GETs per second on one prefix the barrier's waiting nodes may make together. Default: 4,000 on
   * AWS S3 (which serves 5,500 per prefix), 500 with an `endpoint` or `AWS_ENDPOINT_URL(_S3)` (a
   * server of unknown size: s3rver on 2 cores serves about that).
   */
  readonly readsPerSecond?: number;
}

const LOCATOR_PARAMS = ['region', 'endpoint', 'pathStyle', 'profile', 'readsPerSecond'] as const;
const LOCATOR_FORM = 's3://bucket/prefix?region=…&endpoint=…&pathStyle=true&profile=…&readsPerSecond=…';
const AWS_READS_PER_SECOND = 4000;
const ENDPOINT_READS_PER_SECOND = 500;

export const isS3Locator = (locator: string): boolean => locator.startsWith('s3://');

/**
 * Parses `s3://bucket/some/prefix?region=us-east-1&endpoint=http://127.0.0.1:4568&pathStyle=true&profile=name&readsPerSecond=2000`.
 * Every query parameter is optional. Credentials never belong in a locator.
 */
export function parseS3Locator(locator: string): S3Locator {
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
  const options: { -readonly [K in keyof S3Locator]: S3Locator[K] } = {
    bucket,
    prefix: normaliseS3Prefix(path, locator),
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
export function formatS3Locator(options: S3Locator): string {
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

/**
 * The locator as an EC2 instance must see it: without `profile=` (a name from the operator's own
 * `~/.aws`, which an instance does not have: it uses its instance profile).
 */
export function withoutProfile(locator: string): string {
  const parsed = parseS3Locator(locator);
  if (parsed.profile === undefined) return locator;
  const { profile: _profile, ...rest } = parsed;
  return formatS3Locator(rest);
}

/** GETs per second the barrier's waiting nodes may make together on this store (see `S3Locator`). */
export function readsPerSecondOf(locator: Pick<S3Locator, 'endpoint' | 'readsPerSecond'>, env: NodeJS.ProcessEnv = process.env): number {
  // An endpoint the environment gives (as the AWS SDK reads it) is another server too.
  const aws = locator.endpoint === undefined && !env.AWS_ENDPOINT_URL_S3 && !env.AWS_ENDPOINT_URL;
  return locator.readsPerSecond ?? (aws ? AWS_READS_PER_SECOND : ENDPOINT_READS_PER_SECOND);
}

/** `path` without leading and trailing slashes, then `''` or ending in one `/`. */
export function trimPrefix(path: string): string {
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed ? `${trimmed}/` : '';
}

/** `''` or a prefix ending in `/`, with no empty, `.` or `..` parts. */
export function normaliseS3Prefix(path: string, locator: string): string {
  const prefix = trimPrefix(path);
  if (prefix && prefix.slice(0, -1).split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new StoreError(`Invalid prefix \`${path}\` in \`${locator}\`: no empty, \`.\` or \`..\` parts`, locator);
  }
  return prefix;
}

/** S3's bucket naming rules: 3 to 63 lowercase letters, digits, dots and hyphens, a letter or digit at each end. */
export function isBucketName(bucket: string): boolean {
  return /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) && !bucket.includes('..');
}

export function checkBucket(bucket: string, locator: string): void {
  if (!isBucketName(bucket)) {
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

export function checkEndpoint(endpoint: string, locator: string): string {
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

export function checkReadsPerSecond(value: string, locator: string): number {
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
