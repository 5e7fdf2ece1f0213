/**
 * The boot script every EC2 instance runs (user-data): install Node.js, fetch the agent bundle from
 * the store with the instance profile's access, arm a dead-man's switch, start the agent. It holds
 * no credential. Pure: no AWS SDK here.
 *
 * The package install, the agent download, the power-off command and the metadata endpoint can be
 * substituted (`UserDataOptions`) so that a test can run the script with bash against local
 * stand-ins; the defaults are the real thing on Amazon Linux 2023.
 */
import { shellQuote } from '../../spec/template.ts';
import { isS3Locator, parseS3Locator, type S3Locator } from '../../store/s3-locator.ts';
import type { AgentBoot } from '../provider.ts';
import { AwsSetupError, UserDataTooLargeError } from './errors.ts';

/** EC2 accepts at most 16 KB of user-data before base64. */
export const USER_DATA_LIMIT = 16 * 1024;

export interface UserDataOptions {
  /**
   * Bash that installs Node.js ≥ 20 (and the AWS CLI when the download needs it). Retried up to 5
   * times. Default: `dnf install` of `nodejs20` (Amazon Linux 2023), `awscli-2` if missing.
   */
  readonly installCommand?: string;
  /**
   * Bash that puts the agent bundle at "$AGENT_FILE"; it may use "$AGENT_URI" (`s3://bucket/key`),
   * "$AGENT_REGION" and "$AGENT_ENDPOINT" (empty when not set). Retried up to 5 times.
   * Default: `aws s3 cp` with the instance profile's credentials.
   */
  readonly downloadCommand?: string;
  /** Bash that ends the machine in "$1" minutes, "$2" being the reason. Default: `shutdown -h "+$1" "$2"`. */
  readonly powerOffCommand?: string;
  /** Instance metadata endpoint, exported as AWS_EC2_METADATA_SERVICE_ENDPOINT. Default: the SDK's (169.254.169.254). */
  readonly imdsEndpoint?: string;
  /**
   * Folder of the agent bundle and its work (the agent gets it as LOCKSTEP_WORKDIR). A relative path
   * is taken from the folder the script starts in. Default `/opt/lockstep`.
   */
  readonly workDir?: string;
  /** Minutes the machine stays up after a failed boot or agent crash (time to look around). Default 5. */
  readonly failureGraceMinutes?: number;
}

/** Fails (and so is retried) unless both Node.js and the AWS CLI end up installed. */
export const DEFAULT_INSTALL_COMMAND = [
  '{ dnf install -y -q nodejs20 || dnf install -y -q nodejs; } &&',
  '  { command -v aws >/dev/null || dnf install -y -q awscli-2; }',
].join('\n');

export const DEFAULT_DOWNLOAD_COMMAND =
  'aws s3 cp --only-show-errors ${AGENT_REGION:+--region "$AGENT_REGION"} ${AGENT_ENDPOINT:+--endpoint-url "$AGENT_ENDPOINT"} "$AGENT_URI" "$AGENT_FILE"';

export const DEFAULT_POWER_OFF_COMMAND = 'shutdown -h "+$1" "$2"';

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

/** The bash boot script for one run (the same for every instance of it). */
export function renderUserData(boot: AgentBoot, options: UserDataOptions = {}): string {
  const location = parseStoreLocation(boot.store);
  const agentUri = `s3://${location.bucket}/${location.prefix}${boot.agentKey.replace(/^\/+/, '')}`;
  const workDir = options.workDir ?? '/opt/lockstep';
  const grace = options.failureGraceMinutes ?? 5;
  const expiresEpoch = Math.floor(boot.expiresAt.getTime() / 1000);
  const q = shellQuote;
  const lines = [
    '#!/bin/bash',
    `# lockstep boot script, run ${boot.runId}. It holds no credential: the instance profile gives`,
    '# the agent access to the store. Its output: /var/log/cloud-init-output.log.',
    'set -Eeuo pipefail',
    '',
    `RUN_ID=${q(boot.runId)}`,
    `EXPIRES_EPOCH=${expiresEpoch}`,
    `WORK_DIR=${q(workDir)}`,
    'AGENT_FILE="$WORK_DIR/agent.mjs"',
    `AGENT_URI=${q(agentUri)}`,
    `AGENT_REGION=${q(location.region ?? '')}`,
    `AGENT_ENDPOINT=${q(location.endpoint ?? '')}`,
    'export LOCKSTEP_IDENTITY=ec2',
    'export HOME="${HOME:-/root}"',
    ...(options.imdsEndpoint ? [`export AWS_EC2_METADATA_SERVICE_ENDPOINT=${q(options.imdsEndpoint)}`] : []),
    '',
    'log() { echo "lockstep-boot: $*" >&2; }',
    'power_off_in() {',
    indent(options.powerOffCommand ?? DEFAULT_POWER_OFF_COMMAND),
    '}',
    'retry() {',
    '  local attempt=1',
    '  until "$@"; do',
    '    if [ "$attempt" -ge 5 ]; then return 1; fi',
    '    log "$1 failed (attempt $attempt), trying again"',
    '    sleep $((attempt * attempt)); attempt=$((attempt + 1))',
    '  done',
    '}',
    'install_node() {',
    indent(options.installCommand ?? DEFAULT_INSTALL_COMMAND),
    '}',
    'download_agent() {',
    indent(options.downloadCommand ?? DEFAULT_DOWNLOAD_COMMAND),
    '}',
    '',
    "# 1. Dead-man's switch: the instance ends itself at the run's expiry, whatever happens below",
    '#    (instance-initiated shutdown terminates it).',
    'minutes=$(( (EXPIRES_EPOCH - $(date +%s) + 59) / 60 ))',
    'if [ "$minutes" -lt 1 ]; then minutes=1; fi',
    'power_off_in "$minutes" "lockstep run $RUN_ID expired"',
    `trap 'log "boot failed at line $LINENO: ending this instance in ${grace} minutes"; power_off_in ${grace} "lockstep boot failed"' ERR`,
    '',
    '# 2. Node.js and the agent bundle (nothing else is fetched: the agent reads the run from the store)',
    'retry install_node',
    'NODE="$(command -v node-20 || command -v node)"',
    'mkdir -p "$WORK_DIR"',
    'cd "$WORK_DIR"',
    '# The agent works here too (absolute, whatever WORK_DIR was given as).',
    'export LOCKSTEP_WORKDIR="$PWD"',
    'retry download_agent',
    '',
    '# 3. The agent: it learns the run and its identity from instance metadata and tags',
    'trap - ERR',
    'status=0',
    '"$NODE" "$AGENT_FILE" || status=$?',
    'if [ "$status" -ne 0 ]; then',
    `  log "agent exited with status $status: ending this instance in ${grace} minutes"`,
    `  power_off_in ${grace} "lockstep agent failed"`,
    'fi',
    'exit "$status"',
    '',
  ];
  const script = lines.join('\n');
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

function indent(body: string): string {
  return body
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
