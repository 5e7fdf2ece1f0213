/**
 * AWS credentials for the light S3 driver (`s3-http.ts`), without the AWS SDK. In this order:
 * 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) in the environment;
 * 2. static keys of the profile (`?profile=` of the locator, else `AWS_PROFILE`, else `default`) in the
 *    shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) or the
 *    config file (`AWS_CONFIG_FILE`, default `~/.aws/config`);
 * 3. the EC2 instance role, from instance metadata (IMDSv2), renewed before it expires;
 * 4. otherwise the AWS SDK's own chain (SSO, assume-role, `credential_process` profiles), imported
 *    where it is installed beside the agent (the local provider runs the agent from the package);
 *    on an instance it is not, and the error says what is supported.
 * A locator's `?profile=` reads that profile only (steps 2 and 4), never the environment.
 * Credentials are never logged: errors name where they looked, not what they found.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { imdsClient } from '../util/imds.ts';
import { NO_CREDENTIALS } from './s3-driver.ts';

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

export type CredentialSource = () => Promise<AwsCredentials>;

/** No source had credentials. Named as the SDK names it, so both drivers word it alike. */
export class NoCredentialsError extends Error {
  override readonly name = NO_CREDENTIALS;
}

/** Credentials that expire within this are renewed before the next request. */
const RENEW_BEFORE_MS = 5 * 60_000;

export interface CredentialChainOptions {
  /** The locator's `?profile=`: that profile alone. */
  readonly profile?: string;
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** How the AWS SDK's chain is loaded. Default: a dynamic import, outside the agent's bundle. */
  readonly loadSdk?: () => Promise<SdkProviders>;
}

type SdkProviders = Pick<typeof import('@aws-sdk/credential-providers'), 'fromIni' | 'fromNodeProviderChain'>;
/** A variable, so that bundlers leave the import alone: the SDK is used only where it is installed. */
const SDK_PROVIDERS = '@aws-sdk/credential-providers';
const importSdk = (): Promise<SdkProviders> => import(SDK_PROVIDERS) as Promise<SdkProviders>;

/** The chain above, remembered until its credentials are about to expire; one lookup at a time. */
export function credentialChain(options: CredentialChainOptions = {}): CredentialSource {
  const env = options.env ?? process.env;
  let current: Promise<AwsCredentials> | undefined;
  let expiration: Date | undefined;
  return () => {
    if (current && expiration && expiration.getTime() - Date.now() < RENEW_BEFORE_MS) current = undefined;
    if (!current) {
      const lookup = resolveCredentials(options.profile, env, options.loadSdk ?? importSdk);
      current = lookup;
      expiration = undefined;
      lookup.then(
        (found) => (expiration = found.expiration),
        () => {
          if (current === lookup) current = undefined;
        },
      );
    }
    return current;
  };
}

async function resolveCredentials(locatorProfile: string | undefined, env: NodeJS.ProcessEnv, loadSdk: () => Promise<SdkProviders>): Promise<AwsCredentials> {
  const tried: string[] = [];
  if (locatorProfile === undefined) {
    const fromEnv = environmentCredentials(env);
    if (fromEnv) return fromEnv;
    tried.push('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }
  const profile = locatorProfile ?? (env.AWS_PROFILE || 'default');
  const files = await readProfile(profile, env);
  if (files.credentials) return files.credentials;
  tried.push(`static keys of profile \`${profile}\` in ${files.paths.join(' or ')}`);

  // A profile that exists but has no static keys (SSO, assume-role) is the SDK's to resolve; so is
  // a profile the locator names.
  if (locatorProfile === undefined && !files.found && env.AWS_EC2_METADATA_DISABLED !== 'true') {
    try {
      return await instanceRoleCredentials(env);
    } catch (error) {
      tried.push(`an EC2 instance role (instance metadata: ${error instanceof Error ? error.message : String(error)})`);
    }
  }
  return await sdkCredentials(locatorProfile, tried, loadSdk);
}

function environmentCredentials(env: NodeJS.ProcessEnv): AwsCredentials | undefined {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return undefined;
  return { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
}

/** The profile's static keys in the credentials file, else the config file (as the SDK reads them). */
async function readProfile(profile: string, env: NodeJS.ProcessEnv): Promise<{ credentials?: AwsCredentials; found: boolean; paths: string[] }> {
  const credentialsFile = env.AWS_SHARED_CREDENTIALS_FILE || join(homedir(), '.aws', 'credentials');
  const configFile = env.AWS_CONFIG_FILE || join(homedir(), '.aws', 'config');
  let found = false;
  for (const [path, section] of [
    [credentialsFile, profile],
    [configFile, profile === 'default' ? 'default' : `profile ${profile}`],
  ] as const) {
    const values = parseIni(await readFile(path, 'utf8').catch(() => '')).get(section);
    if (!values) continue;
    found = true;
    const accessKeyId = values.get('aws_access_key_id');
    const secretAccessKey = values.get('aws_secret_access_key');
    const sessionToken = values.get('aws_session_token');
    if (accessKeyId && secretAccessKey) return { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) }, found, paths: [] };
  }
  return { found, paths: [credentialsFile, configFile] };
}

/** Sections of an INI file (`[name]`, `key = value`, `#` and `;` comments). */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[\s*([^\]]*?)\s*\]$/.exec(line);
    if (section) {
      current = sections.get(section[1]!) ?? new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const equals = line.indexOf('=');
    if (current && equals > 0 && !/^\s/.test(raw)) current.set(line.slice(0, equals).trim(), line.slice(equals + 1).trim());
  }
  return sections;
}

/** The instance profile's role credentials (IMDSv2), with their expiry. */
async function instanceRoleCredentials(env: NodeJS.ProcessEnv): Promise<AwsCredentials> {
  // Patient, as an instance whose metadata service is busy still finds its role; quick where none answers.
  const endpoint = env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  const imds = imdsClient({ ...(endpoint && { endpoint }), timeoutMs: 1000, retries: 2 });
  const role = (await imds.get('iam/security-credentials/')).split('\n')[0]?.trim();
  if (!role) throw new Error('the instance has no role');
  const document = JSON.parse(await imds.get(`iam/security-credentials/${role}`)) as {
    AccessKeyId?: string;
    SecretAccessKey?: string;
    Token?: string;
    Expiration?: string;
  };
  if (!document.AccessKeyId || !document.SecretAccessKey) throw new Error(`the role \`${role}\` has no keys in instance metadata`);
  return {
    accessKeyId: document.AccessKeyId,
    secretAccessKey: document.SecretAccessKey,
    ...(document.Token ? { sessionToken: document.Token } : {}),
    ...(document.Expiration ? { expiration: new Date(document.Expiration) } : {}),
  };
}

/** The AWS SDK's chain where it is installed (kept outside the agent's bundle), else the error naming what is supported. */
async function sdkCredentials(profile: string | undefined, tried: string[], loadSdk: () => Promise<SdkProviders>): Promise<AwsCredentials> {
  let providers: SdkProviders;
  try {
    providers = await loadSdk();
  } catch {
    throw new NoCredentialsError(
      `tried ${tried.join('; ')}; SSO, assume-role and credential_process profiles need ${SDK_PROVIDERS}, which is not installed beside the agent: set the AWS_* variables, give the profile static keys, or use an instance role`,
    );
  }
  try {
    const provider = profile === undefined ? providers.fromNodeProviderChain({ timeout: 3000, maxRetries: 2 }) : providers.fromIni({ profile });
    return await provider();
  } catch (error) {
    throw new NoCredentialsError(`tried ${tried.join('; ')}; then the AWS SDK's chain: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}
