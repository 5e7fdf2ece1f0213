/**
 * The AWS half of `lockstep gc`: every lockstep EC2 instance past its expiry, in every region.
 * Loads the AWS SDK: `gc.ts` imports this module only when asked to look at AWS.
 */
import { DescribeRegionsCommand } from '@aws-sdk/client-ec2';
import { AwsClients } from '../provider/aws/clients.ts';
import { AwsApiError, awsErrorCode } from '../provider/aws/errors.ts';
import { createAwsProvider } from '../provider/aws/provider.ts';

export interface AwsGcOptions {
  /** Regions to look in. Default: every region enabled in the account (ec2:DescribeRegions). */
  readonly regions?: readonly string[];
  readonly profile?: string;
  /** SDK clients to use (tests); default: made here and destroyed at the end. */
  readonly clients?: AwsClients;
  readonly now: Date;
  readonly dryRun: boolean;
}

export interface AwsGcInstance {
  readonly id: string;
  readonly runId: string;
  readonly region?: string;
  readonly expiresAt?: string;
}

export interface AwsGcReport {
  readonly regions: readonly string[];
  /** Instances past their expiry, terminated (or, with dryRun, to be terminated). */
  readonly ended: readonly AwsGcInstance[];
  /** Running lockstep instances without a readable expiry tag: left alone, reported. */
  readonly withoutExpiry: readonly AwsGcInstance[];
  /** Running lockstep instances not expired yet. */
  readonly running: number;
}

export async function collectAwsGarbage(options: AwsGcOptions): Promise<AwsGcReport> {
  const clients = options.clients ?? new AwsClients({ profile: options.profile });
  try {
    const regions = options.regions?.length ? [...options.regions] : await describeRegions(clients);
    const provider = createAwsProvider({ regions, clients, profile: options.profile });
    try {
      const live = (await provider.list()).filter((i) => i.state !== 'ended');
      const show = (i: (typeof live)[number]): AwsGcInstance => ({
        id: i.id,
        runId: i.runId,
        ...(i.region ? { region: i.region } : {}),
        ...(i.expiresAt ? { expiresAt: i.expiresAt.toISOString() } : {}),
      });
      const expired = live.filter((i) => i.expiresAt !== undefined && i.expiresAt.getTime() <= options.now.getTime());
      const withoutExpiry = live.filter((i) => i.expiresAt === undefined);
      if (!options.dryRun && expired.length > 0) await provider.terminate(expired.map((i) => i.id));
      return { regions, ended: expired.map(show), withoutExpiry: withoutExpiry.map(show), running: live.length - expired.length - withoutExpiry.length };
    } finally {
      await provider.dispose?.();
    }
  } finally {
    if (!options.clients) clients.destroy();
  }
}

/** ec2:DescribeRegions: the regions enabled in the account, asked of the default region. */
export async function describeRegions(clients: AwsClients): Promise<string[]> {
  const home = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
  try {
    const out = await clients.ec2(home).send(new DescribeRegionsCommand({}));
    const regions = (out.Regions ?? []).map((r) => r.RegionName).filter((r): r is string => typeof r === 'string');
    if (regions.length === 0) throw new Error('the answer lists no region');
    return regions.sort();
  } catch (error) {
    throw new AwsApiError('ec2:DescribeRegions', awsErrorCode(error), home, 'check the credentials with `lockstep aws doctor`, or name the regions with `--region`', { cause: error });
  }
}
