/**
 * `lockstep aws bootstrap` and `lockstep aws doctor`, and the launch plan `lockstep run --dry-run`
 * prints for an AWS spec. Thin: each command calls one library function. The AWS SDK loads only
 * inside `run` (dynamic imports), never when the CLI merely lists its commands.
 */
import { defineCommand } from 'citty';
import { layout } from '../../core/layout.ts';
import type { DryRunResult } from '../../provider/aws/launch.ts';
import type { LaunchPlan } from '../../provider/aws/plan.ts';
import { loadSpec } from '../../spec/load.ts';
import type { Spec } from '../../spec/schema.ts';
import { VERSION } from '../../version.ts';
import { UsageError } from '../errors.ts';
import { jsonArg, repeatedOption } from '../shared-args.ts';

const profileArg = { type: 'string', description: 'AWS profile of ~/.aws/config (default: the standard credential chain)', valueHint: 'name' } as const;
const configArg = {
  type: 'string',
  description: 'Bootstrap config file (default: $LOCKSTEP_AWS_CONFIG, else ~/.config/lockstep/aws.json)',
  valueHint: 'path',
} as const;
const regionArg = { type: 'string', description: 'Region, repeatable or comma-separated, e.g. --region us-east-1,eu-west-1', valueHint: 'region' } as const;

/** Every value of a repeatable, comma-separated option. */
function listOption(rawArgs: readonly string[], name: string): string[] {
  return repeatedOption(rawArgs, name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

export const bootstrap = defineCommand({
  meta: {
    name: 'bootstrap',
    description:
      'Create (once; running it again creates nothing) the bucket, IAM role + instance profile and per-region security groups lockstep needs',
  },
  args: {
    region: regionArg,
    bucket: { type: 'string', description: 'Bucket name (default: lockstep-<account>-<bucket region>)', valueHint: 'name' },
    'bucket-region': { type: 'string', description: 'Region of the bucket (default: the first --region)', valueHint: 'region' },
    prefix: { type: 'string', description: 'Key prefix of the store; the role reaches only this (default lockstep/)', valueHint: 'prefix' },
    'role-name': { type: 'string', description: 'IAM role and instance profile name (default lockstep-instance)', valueHint: 'name' },
    'security-group': { type: 'string', description: 'Security group name (default lockstep)', valueHint: 'name' },
    'ssh-cidr': { type: 'string', description: 'Admit SSH from this CIDR, e.g. 203.0.113.7/32 (default: no SSH)', valueHint: 'cidr' },
    vpc: { type: 'string', description: "A region's VPC, e.g. --vpc us-east-1=vpc-0abc (default: the default VPC; repeatable)", valueHint: 'region=vpc' },
    config: configArg,
    profile: profileArg,
    json: jsonArg,
  },
  async run({ args, rawArgs }) {
    const vpcIds: Record<string, string> = {};
    for (const pair of listOption(rawArgs, 'vpc')) {
      const [region, vpc] = pair.split('=');
      if (!region || !vpc) throw new UsageError(`Expected --vpc region=vpc-id, got \`${pair}\``);
      vpcIds[region] = vpc;
    }
    const { bootstrapAws, formatBootstrap } = await import('../../provider/aws/bootstrap.ts');
    const result = await bootstrapAws({
      regions: listOption(rawArgs, 'region'),
      bucket: args.bucket,
      bucketRegion: args['bucket-region'],
      prefix: args.prefix,
      roleName: args['role-name'],
      securityGroupName: args['security-group'],
      sshCidr: args['ssh-cidr'],
      vpcIds,
      profile: args.profile,
      configPath: args.config,
      onProgress: args.json ? undefined : (message) => console.error(message),
    });
    console.log(args.json ? JSON.stringify(result, null, 2) : formatBootstrap(result));
  },
});

export const doctor = defineCommand({
  meta: {
    name: 'doctor',
    description:
      "Check credentials, the bootstrap's bucket, role and security groups, (with --spec) vCPU quotas, the AMIs and EC2's dry run, and (with --ami) one machine image in each region",
  },
  args: {
    spec: { type: 'string', description: 'A spec with `provider: aws`: check its fleet (quota, AMIs, subnets, permissions)', valueHint: 'spec.yaml' },
    set: { type: 'string', description: 'Override a spec key (repeatable), as for `lockstep run`', valueHint: 'key=value' },
    ami: {
      type: 'string',
      description: 'An AMI to check in each --region: that it exists and is available there, its architecture against the instance type, and whether the boot runs on it',
      valueHint: 'ami-… | resolve:ssm:/parameter',
    },
    'instance-type': { type: 'string', description: "The instance type to check --ami's architecture against (default: the spec's, if any)", valueHint: 'type' },
    region: regionArg,
    config: configArg,
    profile: profileArg,
    json: jsonArg,
  },
  async run({ args, rawArgs }) {
    let plan: { spec: Extract<Spec['provider'], { kind: 'aws' }>; instances: number; lifetimeMs: number } | undefined;
    if (args.spec) {
      const { spec } = loadSpec(args.spec, { overrides: repeatedOption(rawArgs, 'set') });
      if (spec.provider.kind !== 'aws') throw new UsageError(`${args.spec} does not use \`provider: aws\`: doctor checks AWS specs only`);
      plan = { spec: spec.provider, instances: spec.instances, lifetimeMs: spec.timeouts.instance };
    }
    if (args.ami !== undefined && !/^(ami-[0-9a-f]{8,17}|resolve:ssm:\/\S+)$/.test(args.ami)) {
      throw new UsageError(`--ami ${JSON.stringify(args.ami)} is not an AMI id: give one like ami-0abcdef1234567890, or resolve:ssm:/aws/service/… for a public SSM parameter`);
    }
    if (args['instance-type'] !== undefined && !/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(args['instance-type'])) {
      throw new UsageError(`--instance-type ${JSON.stringify(args['instance-type'])} is not an instance type: give one like t3a.medium or t4g.small`);
    }
    const { runAwsDoctor, formatDoctorReport, AwsDoctorError } = await import('../../provider/aws/doctor.ts');
    const report = await runAwsDoctor({
      regions: listOption(rawArgs, 'region'),
      plan,
      ...(args.ami ? { ami: args.ami } : {}),
      ...(args['instance-type'] ? { instanceType: args['instance-type'] } : {}),
      profile: args.profile,
      configPath: args.config,
    });
    console.log(args.json ? JSON.stringify(report, null, 2) : formatDoctorReport(report));
    if (!report.ok) throw new AwsDoctorError(report);
  },
});

export const aws = defineCommand({
  meta: { name: 'aws', description: 'Set up and check an AWS account for lockstep' },
  subCommands: { bootstrap, doctor },
});

export default aws;

export interface LaunchPlanDescription {
  readonly plan: LaunchPlan;
  /** False when no AWS credentials were found: AMIs and subnets are then resolved at launch. */
  readonly credentials: boolean;
  /** EC2's answer per region to a `DryRun` launch; absent without credentials or when the plan has problems. */
  readonly dryRun?: readonly DryRunResult[];
  /** The plan as text for people. */
  readonly text: string;
}

export interface DescribeLaunchPlanOptions {
  /** Store locator the instances would use. Default: the spec's `store`, else the bootstrap config's. */
  readonly store?: string;
  readonly profile?: string;
  readonly configPath?: string;
  /** Ask EC2 with `DryRun` whether the launch would be allowed (needs credentials). Default true. */
  readonly checkPermissions?: boolean;
}

/**
 * The launch plan of an AWS spec, for `lockstep run --dry-run`: per region count, type, AMI and
 * subnets, an hourly cost estimate, and (when credentials exist) EC2's dry-run answer. Launches
 * nothing.
 */
export async function describeLaunchPlan(spec: Spec, options: DescribeLaunchPlanOptions = {}): Promise<LaunchPlanDescription> {
  if (spec.provider.kind !== 'aws') throw new UsageError('The launch plan is for `provider: aws` specs');
  const provider = spec.provider;
  const [{ AwsClients }, { getCallerIdentity }, { loadAwsConfig }, { resolveLaunchPlan, formatLaunchPlan }, { dryRunLaunch }, userData, { AwsSetupError }, { checkImages }] =
    await Promise.all([
      import('../../provider/aws/clients.ts'),
      import('../../provider/aws/api.ts'),
      import('../../provider/aws/config.ts'),
      import('../../provider/aws/plan.ts'),
      import('../../provider/aws/launch.ts'),
      import('../../provider/aws/user-data.ts'),
      import('../../provider/aws/errors.ts'),
      import('../../provider/aws/images.ts'),
    ]);
  const clients = new AwsClients({ profile: options.profile ?? provider.profile });
  try {
    const credentials = await getCallerIdentity(clients).then(
      () => true,
      () => false,
    );
    const config = await loadAwsConfig(options.configPath);
    const plan = await resolveLaunchPlan(provider, spec.instances, {
      clients: credentials ? clients : undefined,
      config,
      lifetimeMs: spec.timeouts.instance,
    });
    const store = options.store ?? spec.store ?? config?.store;
    const problems = [...plan.problems];
    if (!store) {
      problems.push(new AwsSetupError('No store for the instances', 'set `store: s3://bucket/prefix` in the spec, or run `lockstep aws bootstrap`'));
    } else {
      try {
        userData.parseStoreLocation(store);
      } catch (error) {
        if (error instanceof AwsSetupError) problems.push(error);
        else throw error;
      }
    }
    // The AMIs: there, of the type's architecture, a platform the boot runs on.
    const imageNotes: string[] = [];
    if (credentials) {
      const images = await checkImages(
        clients,
        plan.regions.map((r) => ({ region: r.region, ami: r.ami })),
        { architecture: plan.architecture, instanceType: plan.instanceType },
      );
      for (const image of images) {
        if (image.status === 'problem') problems.push(new AwsSetupError(image.detail, image.fix ?? 'use another AMI', { region: image.region }));
        else imageNotes.push(`AMI in ${image.region}: ${image.detail}${image.status === 'warning' && image.fix ? ` (${image.fix})` : ''}`);
      }
    }
    const checked: LaunchPlan = { ...plan, problems };

    let dryRun: DryRunResult[] | undefined;
    if (credentials && store && problems.length === 0 && options.checkPermissions !== false) {
      const boot = { runId: 'dry-run', store, agentKey: layout.agentBundle(VERSION), expiresAt: new Date(Date.now() + spec.timeouts.instance) };
      dryRun = await dryRunLaunch(
        { plan: checked, runId: 'dry-run', specName: spec.name, boot, minCount: spec.minInstances ?? spec.instances, userData: userData.renderUserData({ boot, architecture: checked.architecture }) },
        { clients },
      );
    }
    const lines = [formatLaunchPlan(checked), ...imageNotes];
    if (!credentials) lines.push('No AWS credentials found: AMIs and subnets will be looked up at launch, and permissions were not checked.');
    for (const r of dryRun ?? []) {
      lines.push(r.allowed ? `EC2 dry run in ${r.region}: allowed` : `EC2 dry run in ${r.region}: NOT allowed (${r.code}: ${r.message})`);
    }
    lines.push('Nothing was launched.');
    return { plan: checked, credentials, ...(dryRun ? { dryRun } : {}), text: lines.join('\n') };
  } finally {
    clients.destroy();
  }
}
