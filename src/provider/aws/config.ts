/**
 * What `lockstep aws bootstrap` made, saved in a small JSON file that later runs read:
 * `$LOCKSTEP_AWS_CONFIG`, else `$XDG_CONFIG_HOME/lockstep/aws.json`, else `~/.config/lockstep/aws.json`.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { AwsSetupError } from './errors.ts';

const regionConfig = z.object({
  vpcId: z.string(),
  securityGroupId: z.string(),
  sshCidr: z.string().optional(),
});

export const awsConfigSchema = z.object({
  formatVersion: z.literal(1),
  account: z.string(),
  /** The bucket and key prefix of the store: `s3://<bucket>/<prefix>?region=<bucketRegion>`. */
  bucket: z.string(),
  bucketRegion: z.string(),
  prefix: z.string(),
  store: z.string(),
  roleName: z.string(),
  roleArn: z.string(),
  instanceProfileName: z.string(),
  instanceProfileArn: z.string(),
  securityGroupName: z.string(),
  regions: z.record(z.string(), regionConfig),
});

export type AwsConfig = z.output<typeof awsConfigSchema>;
export type AwsRegionConfig = z.output<typeof regionConfig>;

export function defaultAwsConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LOCKSTEP_AWS_CONFIG) return env.LOCKSTEP_AWS_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'lockstep', 'aws.json');
}

/** The saved config, or `undefined` when there is none. Throws `AwsSetupError` for a damaged file. */
export async function loadAwsConfig(path: string = defaultAwsConfigPath()): Promise<AwsConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: z.ZodSafeParseResult<AwsConfig>;
  try {
    parsed = awsConfigSchema.safeParse(JSON.parse(text));
  } catch (error) {
    throw new AwsSetupError(`${path} is not valid JSON`, 'delete it and run `lockstep aws bootstrap` again', { cause: error });
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AwsSetupError(
      `${path}: ${issue.path.join('.') || '(top)'}: ${issue.message}`,
      'delete it and run `lockstep aws bootstrap` again',
    );
  }
  return parsed.data;
}

/** Writes the config atomically (temporary file, then rename). */
export async function saveAwsConfig(path: string, config: AwsConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await rename(temporary, path);
}

/** The store locator bootstrap set up, for a run whose spec names no `store`. */
export async function defaultAwsStore(path?: string): Promise<string | undefined> {
  return (await loadAwsConfig(path))?.store;
}
