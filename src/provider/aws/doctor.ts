/**
 * `lockstep aws doctor`: checks that a launch can work (credentials, the bootstrap's bucket, role,
 * instance profile and security groups, the vCPU quota per region against the planned fleet, the
 * machine images, and EC2's own dry run) and names the fix of each problem.
 */
import type { AwsProviderSpec } from '../../spec/schema.ts';
import { describeSecurityGroups, describeVcpus, getCallerIdentity, getEc2Quota, getInstanceProfile, headBucket } from './api.ts';
import { AwsClients } from './clients.ts';
import { defaultAwsConfigPath, loadAwsConfig, type AwsConfig } from './config.ts';
import { AwsSetupError, awsErrorMessage, awsFailure, describeAwsCall, isCredentialsError } from './errors.ts';
import { checkImages } from './images.ts';
import { dryRunLaunch } from './launch.ts';
import { resolveLaunchPlan, type LaunchPlan } from './plan.ts';
import { architectureOf, knownInstanceType, vcpuQuotaCode } from './pricing.ts';
import { renderUserData } from './user-data.ts';

export type CheckStatus = 'ok' | 'problem' | 'warning' | 'skipped';

export interface DoctorCheck {
  /** What was checked: `credentials`, `config`, `bucket`, `instance-profile`, `security-group`, `vcpu-quota`, `plan`, `ami`, `dry-run`. */
  readonly check: string;
  readonly region?: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do, for a problem or warning. */
  readonly fix?: string;
}

export interface DoctorReport {
  /** True when no check found a problem (warnings allowed). */
  readonly ok: boolean;
  readonly account?: string;
  readonly configPath: string;
  readonly checks: readonly DoctorCheck[];
}

export interface DoctorOptions {
  /** Regions to check. Default: the planned ones, else those of the bootstrap config, else `us-east-1`. */
  readonly regions?: readonly string[];
  /** An AMI to check in each region (default: the plan's AMIs, when there is a plan). */
  readonly ami?: string;
  /** The instance type to check the AMI's architecture against (default: the plan's). */
  readonly instanceType?: string;
  /** A fleet to check quotas and permissions against (the spec's provider section and `instances`). */
  readonly plan?: { readonly spec: AwsProviderSpec; readonly instances: number; readonly lifetimeMs?: number };
  readonly profile?: string;
  readonly configPath?: string;
  readonly clients?: AwsClients;
}

/** A doctor run that found problems: the CLI prints the report and exits non-zero. */
export class AwsDoctorError extends Error {
  override readonly name = 'AwsDoctorError';
  readonly exitCode = 1;
  constructor(readonly report: DoctorReport) {
    const problems = report.checks.filter((c) => c.status === 'problem');
    super(`${problems.length} problem${problems.length === 1 ? '' : 's'} found: ${problems.map((p) => p.fix ?? p.detail).join('; ')}`);
  }
}

export async function runAwsDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const clients = options.clients ?? new AwsClients({ profile: options.profile ?? options.plan?.spec.profile });
  try {
    return await doctor(clients, options);
  } finally {
    if (!options.clients) clients.destroy();
  }
}

async function doctor(clients: AwsClients, options: DoctorOptions): Promise<DoctorReport> {
  const configPath = options.configPath ?? defaultAwsConfigPath();
  const checks: DoctorCheck[] = [];
  const report = (account?: string): DoctorReport => ({ ok: !checks.some((c) => c.status === 'problem'), account, configPath, checks });

  // 1. Credentials: nothing else can be checked without them.
  let account: string;
  try {
    const identity = await getCallerIdentity(clients);
    account = identity.account;
    checks.push({ check: 'credentials', status: 'ok', detail: `${identity.arn} (account ${account})` });
  } catch (error) {
    checks.push({
      check: 'credentials',
      status: 'problem',
      detail: isCredentialsError(error) ? 'No valid AWS credentials' : describeAwsCall('sts:GetCallerIdentity', error),
      fix:
        awsFailure(error).kind === 'service' || isCredentialsError(error)
          ? 'configure credentials (`aws configure`, `aws sso login`, or `--profile name`)'
          : `check the network${process.env.AWS_ENDPOINT_URL ? ` and AWS_ENDPOINT_URL (${process.env.AWS_ENDPOINT_URL})` : ''}, then run it again`,
    });
    return report();
  }

  // 2. What bootstrap made.
  let config: AwsConfig | undefined;
  try {
    config = await loadAwsConfig(configPath);
  } catch (error) {
    checks.push({ check: 'config', status: 'problem', detail: awsErrorMessage(error), fix: error instanceof AwsSetupError ? error.fix : undefined });
  }
  if (!config && !checks.some((c) => c.check === 'config')) {
    checks.push({ check: 'config', status: 'problem', detail: `No bootstrap config at ${configPath}`, fix: 'run `lockstep aws bootstrap`' });
  } else if (config && config.account !== account) {
    checks.push({
      check: 'config',
      status: 'problem',
      detail: `${configPath} was made for account ${config.account}, the credentials are for ${account}`,
      fix: 'use the profile of that account (`--profile`), or run `lockstep aws bootstrap` for this one',
    });
    config = undefined;
  } else if (config) {
    checks.push({ check: 'config', status: 'ok', detail: `${configPath}: store ${config.store}` });
  }

  if (config) {
    await checkBucket(clients, config, account, checks);
    await checkInstanceProfile(clients, config, checks);
  }

  // 3. The plan (AMIs, subnets) when a fleet is given.
  let plan: LaunchPlan | undefined;
  if (options.plan) {
    try {
      plan = await resolveLaunchPlan(options.plan.spec, options.plan.instances, { clients, config, lifetimeMs: options.plan.lifetimeMs });
      checks.push({ check: 'plan', status: 'ok', detail: plan.regions.map((r) => `${r.region}: ${r.count} × ${plan!.instanceType}, ${r.ami}`).join('; ') });
      for (const p of plan.problems) checks.push({ check: 'plan', region: p.region, status: 'problem', detail: p.problem, fix: p.fix });
      for (const w of plan.warnings) checks.push({ check: 'plan', status: 'warning', detail: w });
    } catch (error) {
      checks.push({
        check: 'plan',
        region: error instanceof AwsSetupError ? error.region : undefined,
        status: 'problem',
        detail: error instanceof AwsSetupError ? error.problem : awsErrorMessage(error),
        fix: error instanceof AwsSetupError ? error.fix : 'run with valid credentials that may read SSM parameters and describe subnets',
      });
    }
  }

  // 4. Per region: security group and vCPU quota.
  const regions = options.regions?.length
    ? [...options.regions]
    : plan
      ? plan.regions.map((r) => r.region)
      : Object.keys(config?.regions ?? {}).length
        ? Object.keys(config!.regions)
        : ['us-east-1'];
  // In parallel, reported in region order.
  const perRegion = await Promise.all(
    regions.map(async (region) => {
      const found: DoctorCheck[] = [];
      if (config) await checkSecurityGroup(clients, config, region, found);
      await checkQuota(clients, region, plan, options.plan?.spec, found);
      return found;
    }),
  );
  checks.push(...perRegion.flat());

  // 5. The machine images: there, available, of the type's architecture, a platform the boot runs on.
  const images = options.ami
    ? regions.map((region) => ({ region, ami: options.ami! }))
    : (plan?.regions.map((r) => ({ region: r.region, ami: r.ami })) ?? []);
  const instanceType = options.instanceType ?? plan?.instanceType;
  const fleet = instanceType ? { architecture: architectureOf(instanceType), instanceType } : undefined;
  for (const image of await checkImages(clients, images, fleet)) {
    checks.push({ check: 'ami', region: image.region, status: image.status, detail: image.detail, ...(image.fix ? { fix: image.fix } : {}) });
  }

  // 6. EC2's own opinion of the first launch call in each region.
  if (plan && plan.problems.length === 0) {
    const store = config?.store ?? 's3://lockstep-doctor/lockstep';
    const boot = { runId: 'doctor', store, agentKey: 'agents/doctor/agent.mjs', expiresAt: new Date(Date.now() + 3_600_000) };
    const results = await dryRunLaunch(
      { plan, runId: 'doctor', specName: 'doctor', boot, minCount: plan.instances, userData: renderUserData({ boot, architecture: plan.architecture }) },
      { clients },
    );
    for (const r of results) {
      checks.push(
        r.allowed
          ? { check: 'dry-run', region: r.region, status: 'ok', detail: 'EC2 would allow the launch (DryRunOperation)' }
          : {
              check: 'dry-run',
              region: r.region,
              status: 'problem',
              detail: `${r.code}: ${r.message}`,
              fix:
                r.code === 'UnauthorizedOperation'
                  ? 'use credentials that may call ec2:RunInstances, ec2:CreateTags and iam:PassRole on the lockstep role'
                  : 'fix the spec value EC2 names (AMI, subnet, security group, key pair or instance profile)',
            },
      );
    }
  }
  return report(account);
}

async function checkBucket(clients: AwsClients, config: AwsConfig, account: string, checks: DoctorCheck[]): Promise<void> {
  try {
    const state = await headBucket(clients, config.bucketRegion, config.bucket, account);
    checks.push(
      state === 'yours'
        ? { check: 'bucket', region: config.bucketRegion, status: 'ok', detail: `${config.bucket} is reachable` }
        : state === 'missing'
          ? { check: 'bucket', region: config.bucketRegion, status: 'problem', detail: `Bucket ${config.bucket} does not exist`, fix: 'run `lockstep aws bootstrap`' }
          : {
              check: 'bucket',
              region: config.bucketRegion,
              status: 'problem',
              detail: `Bucket ${config.bucket} is not yours or you may not see it`,
              fix: 'use credentials of the account that owns it, or bootstrap with another `--bucket`',
            },
    );
  } catch (error) {
    checks.push({ check: 'bucket', region: config.bucketRegion, status: 'problem', detail: describeAwsCall('s3:HeadBucket', error, config.bucketRegion), fix: unansweredFix(error, 'check the bucket region and your S3 permissions') });
  }
}

async function checkInstanceProfile(clients: AwsClients, config: AwsConfig, checks: DoctorCheck[]): Promise<void> {
  try {
    const profile = await getInstanceProfile(clients, config.instanceProfileName);
    if (!profile) {
      checks.push({ check: 'instance-profile', status: 'problem', detail: `Instance profile ${config.instanceProfileName} does not exist`, fix: 'run `lockstep aws bootstrap`' });
    } else if (!(profile.Roles ?? []).some((r) => r.RoleName === config.roleName)) {
      checks.push({
        check: 'instance-profile',
        status: 'problem',
        detail: `Instance profile ${config.instanceProfileName} does not hold role ${config.roleName}`,
        fix: 'run `lockstep aws bootstrap`, which adds the role',
      });
    } else {
      checks.push({ check: 'instance-profile', status: 'ok', detail: `${config.instanceProfileName} with role ${config.roleName}` });
    }
  } catch (error) {
    checks.push({
      check: 'instance-profile',
      status: 'warning',
      detail: describeAwsCall('iam:GetInstanceProfile', error),
      fix: unansweredFix(error, 'nothing, if your credentials may launch but not read IAM; else check IAM permissions'),
    });
  }
}

async function checkSecurityGroup(clients: AwsClients, config: AwsConfig, region: string, checks: DoctorCheck[]): Promise<void> {
  const id = config.regions[region]?.securityGroupId;
  if (!id) {
    checks.push({ check: 'security-group', region, status: 'problem', detail: 'No lockstep security group in this region', fix: `run \`lockstep aws bootstrap --region ${region}\`` });
    return;
  }
  try {
    const found = await describeSecurityGroups(clients, region, [{ Name: 'group-id', Values: [id] }]);
    checks.push(
      found.length
        ? { check: 'security-group', region, status: 'ok', detail: `${id} (${config.securityGroupName})` }
        : { check: 'security-group', region, status: 'problem', detail: `Security group ${id} is gone`, fix: `run \`lockstep aws bootstrap --region ${region}\`` },
    );
  } catch (error) {
    checks.push({ check: 'security-group', region, status: 'problem', detail: describeAwsCall('ec2:DescribeSecurityGroups', error, region), fix: unansweredFix(error, 'check your EC2 permissions') });
  }
}

async function checkQuota(clients: AwsClients, region: string, plan: LaunchPlan | undefined, spec: AwsProviderSpec | undefined, checks: DoctorCheck[]): Promise<void> {
  const type = plan?.instanceType ?? spec?.instanceType;
  const spot = plan?.spot ?? spec?.spot ?? false;
  const code = vcpuQuotaCode(type ?? 't3a.medium', spot);
  if (!code) {
    checks.push({ check: 'vcpu-quota', region, status: 'skipped', detail: `lockstep does not know the quota of ${type}'s family`, fix: 'check it in the Service Quotas console' });
    return;
  }
  let quota: number | undefined;
  try {
    quota = await getEc2Quota(clients, region, code);
  } catch (error) {
    checks.push({
      check: 'vcpu-quota',
      region,
      status: 'warning',
      detail: `${describeAwsCall('servicequotas:GetServiceQuota', error, region)}; the vCPU quota ${code} was not checked`,
      fix: unansweredFix(error, 'allow servicequotas:GetServiceQuota to have it checked, or check it in the Service Quotas console', 'check it in the Service Quotas console'),
    });
    return;
  }
  const count = plan?.regions.find((r) => r.region === region)?.count;
  if (quota === undefined) {
    checks.push({ check: 'vcpu-quota', region, status: 'warning', detail: `Service Quotas has no value for ${code}` });
    return;
  }
  if (count === undefined || !type) {
    checks.push({ check: 'vcpu-quota', region, status: 'ok', detail: `${quota} vCPUs of ${spot ? 'spot' : 'on-demand'} standard instances (${code})` });
    return;
  }
  const vcpus = knownInstanceType(type)?.vcpus ?? (await describeVcpus(clients, region, type).catch(() => undefined));
  if (vcpus === undefined) {
    checks.push({ check: 'vcpu-quota', region, status: 'warning', detail: `Quota ${quota} vCPUs (${code}); the vCPUs of ${type} are unknown` });
    return;
  }
  const needed = vcpus * count;
  checks.push(
    needed <= quota
      ? { check: 'vcpu-quota', region, status: 'ok', detail: `${count} × ${type} = ${needed} vCPUs, quota ${quota} (${code}; running instances count too)` }
      : {
          check: 'vcpu-quota',
          region,
          status: 'problem',
          detail: `${count} × ${type} = ${needed} vCPUs, over the quota of ${quota} (${code})`,
          fix: `request an increase to at least ${needed} vCPUs (Service Quotas → Amazon EC2 → ${code}), or plan fewer instances or a smaller type here`,
        },
  );
}

/** The fix of a failed call: `whenRefused` when the service answered, else about reaching it at all. */
function unansweredFix(error: unknown, whenRefused: string, otherwise = whenRefused): string {
  if (awsFailure(error).kind === 'service') return whenRefused;
  const endpoint = process.env.AWS_ENDPOINT_URL;
  return `${otherwise}; the service did not answer: check the network${endpoint ? `, and whether AWS_ENDPOINT_URL (${endpoint}) serves it` : ''}`;
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', problem: 'FAIL', warning: 'warn', skipped: 'skip' };

export function formatDoctorReport(report: DoctorReport): string {
  const lines = report.checks.map((c) => {
    const head = `${MARK[c.status]}  ${c.check}${c.region ? ` (${c.region})` : ''}: ${c.detail}`;
    return c.fix && c.status !== 'ok' ? `${head}\n        fix: ${c.fix}` : head;
  });
  const problems = report.checks.filter((c) => c.status === 'problem').length;
  lines.push(problems === 0 ? 'No problems found.' : `${problems} problem${problems === 1 ? '' : 's'} found.`);
  return lines.join('\n');
}
