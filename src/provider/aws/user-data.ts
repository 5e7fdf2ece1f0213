/**
 * The boot script every EC2 instance runs (user-data): the run's values, then `boot.sh`, which
 * arms a dead-man's switch, checks the image, finds Node.js ≥ 20 on the image or fetches the one
 * lockstep put in the store, fetches the agent bundle and starts it. It holds no credential: the
 * instance signs its store requests with its own role's credentials from instance metadata.
 * Pure: no AWS SDK here.
 */
import { readFileSync } from 'node:fs';
import { AGENT_NODE_OPTIONS } from '../../core/agent-node.ts';
import { shellQuote } from '../../spec/template.ts';
import { isS3Locator, parseS3Locator, type S3Locator } from '../../store/s3-locator.ts';
import type { AgentBoot } from '../provider.ts';
import type { NodeRuntime } from '../node-runtime.ts';
import { AwsSetupError, UserDataTooLargeError } from './errors.ts';

/** EC2 accepts at most 16 KB of user-data before base64. */
export const USER_DATA_LIMIT = 16 * 1024;

/** Where the boot script keeps Node.js, the agent and its log on the instance. */
export const INSTANCE_WORK_DIR = '/opt/lockstep';

export interface UserDataInput {
  readonly boot: AgentBoot;
  /** The planned architecture; the boot refuses a machine of another. */
  readonly architecture: 'x86_64' | 'arm64';
  /** Node.js in the store, for images without Node.js ≥ 20; absent when lockstep could not provide one. */
  readonly node?: Pick<NodeRuntime, 'key' | 'sha256' | 'dir'>;
  /** Minutes a failed instance stays up before it ends itself (time to look around over SSH). Default 0. */
  readonly failureGraceMinutes?: number;
  /** The bucket's region, when the store locator names none. Default: the instance's own region. */
  readonly storeRegion?: string;
}

/**
 * The store's bucket, prefix, region and endpoint. Instances reach only an S3 store; a malformed
 * locator is the store's error (`StoreError`), a folder store an `AwsSetupError`.
 */
export function parseStoreLocation(locator: string): S3Locator & { readonly prefix: string } {
  if (!isS3Locator(locator)) {
    throw new AwsSetupError(
      `EC2 instances need an S3 store, got \`${locator}\``,
      'set `store: s3://bucket/prefix` in the spec, or run `lockstep aws bootstrap` to make one',
    );
  }
  const parsed = parseS3Locator(locator);
  return { ...parsed, prefix: parsed.prefix ?? '' };
}

let body: string | undefined;
/**
 * boot.sh (beside this module in the sources, copied beside the bundled CLI by the build) without
 * its comments, blank lines and indentation: EC2 takes 16 KB of user-data, and the source is for
 * people to read. It has no here-documents or multi-line strings, so each line stands alone.
 */
export function bootScriptBody(): string {
  return (body ??= readFileSync(new URL('./boot.sh', import.meta.url), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .join('\n'));
}

/** The bash boot script for one run (the same for every instance of it). */
export function renderUserData(input: UserDataInput): string {
  const { boot } = input;
  const location = parseStoreLocation(boot.store);
  const q = shellQuote;
  const values: Array<[string, string | number]> = [
    ['RUN_ID', boot.runId],
    ['EXPIRES_EPOCH', Math.floor(boot.expiresAt.getTime() / 1000)],
    ['ARCHITECTURE', input.architecture],
    ['FAILURE_GRACE_MINUTES', input.failureGraceMinutes ?? 0],
    ['STORE_BUCKET', location.bucket],
    ['STORE_PREFIX', location.prefix],
    ['STORE_REGION', location.region ?? input.storeRegion ?? ''],
    ['STORE_ENDPOINT', location.endpoint ?? ''],
    ['STORE_PATH_STYLE', location.forcePathStyle === undefined ? '' : String(location.forcePathStyle)],
    ['AGENT_KEY', boot.agentKey.replace(/^\/+/, '')],
    ['AGENT_NODE_OPTIONS', AGENT_NODE_OPTIONS.join(' ')],
    ['NODE_KEY', input.node?.key ?? ''],
    ['NODE_SHA256', input.node?.sha256 ?? ''],
    ['NODE_DIR', input.node?.dir ?? ''],
  ];
  const script = [
    '#!/bin/bash',
    `# lockstep boot script of run ${boot.runId} (EC2 user-data). Its output: the console, /var/log/cloud-init-output.log`,
    `# and ${INSTANCE_WORK_DIR}/boot.log.`,
    ...values.map(([name, value]) => `${name}=${typeof value === 'number' ? value : q(value)}`),
    '',
    bootScriptBody(),
  ].join('\n');
  const bytes = Buffer.byteLength(script, 'utf8');
  if (bytes > USER_DATA_LIMIT) throw new UserDataTooLargeError(bytes, USER_DATA_LIMIT);
  return script;
}

/** Base64 of the script, as RunInstances wants it (SDK v3 does not encode user-data itself). */
export function encodeUserData(script: string): string {
  const bytes = Buffer.byteLength(script, 'utf8');
  if (bytes > USER_DATA_LIMIT) throw new UserDataTooLargeError(bytes, USER_DATA_LIMIT);
  return Buffer.from(script, 'utf8').toString('base64');
}
