/**
 * The launch plan: how many instances go to which region, with which AMI, subnets and security
 * groups, and roughly what it costs. Made before anything is launched; printed by
 * `lockstep run --dry-run`, followed by `launch.ts`.
 */
import type { AwsProviderSpec } from '../../spec/schema.ts';
import { describeDefaultSubnets, getSsmParameter } from './api.ts';
import type { AwsClients } from './clients.ts';
import type { AwsConfig } from './config.ts';
import { AwsSetupError } from './errors.ts';
import { architectureOf, knownInstanceType, PRICE_NOTE } from './pricing.ts';
import type { AddressKind } from '../../core/tags.ts';

/** Public SSM parameters of the latest Amazon Linux 2023 AMI, per architecture. */
export const AL2023_PARAMETER = {
  x86_64: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64',
  arm64: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64',
} as const;

export interface RegionPlan {
  readonly region: string;
  readonly count: number;
  /** An AMI id, or `resolve:ssm:<parameter>` (EC2 resolves it at launch) when it was not looked up. */
  readonly ami: string;
  readonly amiSource: 'spec' | 'ssm' | 'ssm-at-launch';
  /** Subnets to try, in order. Empty only when not looked up (`subnetSource: 'unresolved'`). */
  readonly subnets: readonly string[];
  readonly subnetSource: 'spec' | 'default-vpc' | 'unresolved';
  /** Empty: the VPC's default group (which admits traffic from its own members). */
  readonly securityGroupIds: readonly string[];
  readonly securityGroupSource: 'spec' | 'bootstrap' | 'vpc-default';
}

export interface CostEstimate {
  /** False when the instance type is not in the built-in table. */
  readonly known: boolean;
  readonly vcpusPerInstance?: number;
  readonly usdPerInstanceHour?: number;
  readonly usdPerHour?: number;
  /** Upper bound: every instance runs until its expiry. */
  readonly usdUntilExpiry?: number;
  readonly lifetimeHours?: number;
  readonly note: string;
}

export interface LaunchPlan {
  readonly instances: number;
  readonly instanceType: string;
  readonly architecture: 'x86_64' | 'arm64';
  readonly spot: boolean;
  readonly addressKind: AddressKind;
  readonly iamInstanceProfile?: string;
  readonly keyName?: string;
  readonly allowSmaller: boolean;
  readonly regions: readonly RegionPlan[];
  readonly cost: CostEstimate;
  /** What stands in the way of a launch, each with its fix. Empty when the plan can launch. */
  readonly problems: readonly AwsSetupError[];
  /** What may not work as intended, for people to read. */
  readonly warnings: readonly string[];
}

export interface PlanOptions {
  /** SDK clients: when given, AMIs are looked up in SSM and default subnets in EC2. */
  readonly clients?: AwsClients;
  /** What `lockstep aws bootstrap` made (security groups, instance profile). */
  readonly config?: AwsConfig;
  /** Lifetime of an instance (the spec's `timeouts.instance`), for the cost bound. */
  readonly lifetimeMs?: number;
}

/**
 * Splits `total` over regions: a list evenly (the first regions get one more: 10 over 3 → 4/3/3),
 * or explicit counts, which must add up to `total`. Regions that get 0 are left out.
 */
export function splitCount(total: number, regions: readonly string[] | Readonly<Record<string, number>>): { region: string; count: number }[] {
  if (!Array.isArray(regions)) {
    const entries = Object.entries(regions as Record<string, number>);
    const sum = entries.reduce((s, [, n]) => s + n, 0);
    if (sum !== total) {
      throw new AwsSetupError(
        `\`provider.regions\` counts add up to ${sum}, but \`instances\` is ${total}`,
        'make them equal, or give a list of regions to split `instances` over evenly',
      );
    }
    return entries.filter(([, count]) => count > 0).map(([region, count]) => ({ region, count }));
  }
  const list = regions as readonly string[];
  const duplicate = list.find((r, i) => list.indexOf(r) !== i);
  if (duplicate) throw new AwsSetupError(`\`provider.regions\` names ${duplicate} twice`, 'name each region once');
  const base = Math.floor(total / list.length);
  const extra = total % list.length;
  return list.map((region, i) => ({ region, count: base + (i < extra ? 1 : 0) })).filter((r) => r.count > 0);
}

export async function resolveLaunchPlan(spec: AwsProviderSpec, instances: number, options: PlanOptions = {}): Promise<LaunchPlan> {
  const split = splitCount(instances, spec.regions);
  const architecture = architectureOf(spec.instanceType);
  const problems: AwsSetupError[] = [];
  const addressKind: AddressKind = spec.addresses === 'auto' ? (split.length > 1 ? 'public' : 'private') : spec.addresses;

  const regions = await Promise.all(
    split.map(async ({ region, count }): Promise<RegionPlan> => {
      const ami = await resolveAmi(spec, region, split.length, architecture, options.clients);
      const subnets = await resolveSubnets(spec, region, options.clients);
      const specGroups = spec.securityGroups?.[region];
      const bootstrapGroup = options.config?.regions[region]?.securityGroupId;
      return {
        region,
        count,
        ...ami,
        ...subnets,
        securityGroupIds: specGroups ?? (bootstrapGroup ? [bootstrapGroup] : []),
        securityGroupSource: specGroups ? 'spec' : bootstrapGroup ? 'bootstrap' : 'vpc-default',
      };
    }),
  );

  const iamInstanceProfile = spec.iamInstanceProfile ?? options.config?.instanceProfileName;
  if (!iamInstanceProfile) {
    problems.push(
      new AwsSetupError(
        'No instance profile: the agents could not reach the store',
        'run `lockstep aws bootstrap`, or set `provider.iamInstanceProfile`',
      ),
    );
  }
  const warnings: string[] = [];
  if (addressKind === 'public' && split.length > 1 && !spec.securityGroups) {
    warnings.push(
      'The run spans regions: instances reach each other on public addresses, which a security group does not admit by ' +
        'membership; give `provider.securityGroups` that admit the other regions (see docs/aws.md, "Several regions")',
    );
  }

  return {
    instances,
    instanceType: spec.instanceType,
    architecture,
    spot: spec.spot,
    addressKind,
    iamInstanceProfile,
    keyName: spec.keyName,
    allowSmaller: spec.allowSmaller,
    regions,
    cost: estimateCost(spec.instanceType, instances, options.lifetimeMs),
    problems,
    warnings,
  };
}

async function resolveAmi(
  spec: AwsProviderSpec,
  region: string,
  regionCount: number,
  architecture: 'x86_64' | 'arm64',
  clients: AwsClients | undefined,
): Promise<Pick<RegionPlan, 'ami' | 'amiSource'>> {
  if (typeof spec.ami === 'string') {
    if (regionCount > 1 && !spec.ami.startsWith('resolve:ssm:')) {
      throw new AwsSetupError(
        `\`provider.ami\` is one AMI id, but an AMI belongs to one region and the run spans ${regionCount}`,
        'give one per region (`ami: { us-east-1: ami-…, eu-west-1: ami-… }`), or leave `ami` out for Amazon Linux 2023',
      );
    }
    return { ami: spec.ami, amiSource: 'spec' };
  }
  if (spec.ami) {
    const ami = spec.ami[region];
    if (!ami) throw new AwsSetupError(`\`provider.ami\` has no AMI for ${region}`, `add \`${region}: ami-…\` to \`provider.ami\``);
    return { ami, amiSource: 'spec' };
  }
  const parameter = AL2023_PARAMETER[architecture];
  if (!clients) return { ami: `resolve:ssm:${parameter}`, amiSource: 'ssm-at-launch' };
  const ami = await getSsmParameter(clients, region, parameter);
  if (!ami) {
    throw new AwsSetupError(`SSM has no parameter ${parameter}`, 'set `provider.ami` for this region', { region });
  }
  return { ami, amiSource: 'ssm' };
}

async function resolveSubnets(
  spec: AwsProviderSpec,
  region: string,
  clients: AwsClients | undefined,
): Promise<Pick<RegionPlan, 'subnets' | 'subnetSource'>> {
  const given = spec.subnets?.[region];
  if (given) return { subnets: given, subnetSource: 'spec' };
  if (!clients) return { subnets: [], subnetSource: 'unresolved' };
  const subnets = await describeDefaultSubnets(clients, region);
  if (subnets.length === 0) {
    throw new AwsSetupError(
      'The region has no default VPC, so lockstep does not know where to launch',
      `set \`provider.subnets.${region}\`, or create a default VPC (\`aws ec2 create-default-vpc --region ${region}\`)`,
      { region },
    );
  }
  return { subnets: subnets.map((s) => s.subnetId), subnetSource: 'default-vpc' };
}

export function estimateCost(instanceType: string, instances: number, lifetimeMs?: number): CostEstimate {
  const known = knownInstanceType(instanceType);
  if (!known) {
    return {
      known: false,
      note: `${instanceType} is not in lockstep's small price table: see https://aws.amazon.com/ec2/pricing/on-demand/`,
    };
  }
  const usdPerHour = known.usdPerHour * instances;
  const lifetimeHours = lifetimeMs === undefined ? undefined : lifetimeMs / 3_600_000;
  return {
    known: true,
    vcpusPerInstance: known.vcpus,
    usdPerInstanceHour: known.usdPerHour,
    usdPerHour,
    lifetimeHours,
    usdUntilExpiry: lifetimeHours === undefined ? undefined : usdPerHour * Math.max(lifetimeHours, 1 / 60),
    note: PRICE_NOTE,
  };
}

/** The plan as text for people (the `--json` form is the plan itself). */
export function formatLaunchPlan(plan: LaunchPlan): string {
  const market = plan.spot ? 'spot' : 'on-demand';
  const lines = [
    `Launch plan: ${plan.instances} × ${plan.instanceType} (${plan.architecture}, ${market}) in ${plan.regions.length} region${
      plan.regions.length === 1 ? '' : 's'
    }, ${plan.addressKind} addresses`,
  ];
  const rows = plan.regions.map((r) => [
    r.region,
    String(r.count),
    r.amiSource === 'ssm-at-launch' ? 'Amazon Linux 2023 (SSM, at launch)' : `${r.ami}${r.amiSource === 'ssm' ? ' (AL2023)' : ''}`,
    r.subnetSource === 'unresolved' ? 'default VPC (at launch)' : `${r.subnets.join(', ')}${r.subnetSource === 'default-vpc' ? ' (default VPC)' : ''}`,
    r.securityGroupIds.length ? `${r.securityGroupIds.join(', ')}${r.securityGroupSource === 'bootstrap' ? ' (bootstrap)' : ''}` : 'VPC default group',
  ]);
  lines.push(...table([['region', 'count', 'AMI', 'subnets (tried in order)', 'security groups'], ...rows]).map((l) => `  ${l}`));
  lines.push(`  instance profile: ${plan.iamInstanceProfile ?? 'none'}${plan.keyName ? `; SSH key pair: ${plan.keyName}` : ''}`);
  lines.push(
    `  capacity: ${plan.allowSmaller ? 'goes on with fewer instances (down to `minInstances`) when EC2 lacks capacity' : 'all instances or none'}`,
  );
  const c = plan.cost;
  if (c.known) {
    const bound =
      c.usdUntilExpiry !== undefined ? `; at most ${usd(c.usdUntilExpiry)} if every instance lives to its expiry (${formatHours(c.lifetimeHours!)})` : '';
    lines.push(`  cost: about ${usd(c.usdPerHour!)}/hour (${usd(c.usdPerInstanceHour!)} per instance)${bound}`);
    lines.push(`        ${c.note}${plan.spot ? '; spot shown at the on-demand price, an upper bound' : ''}`);
  } else {
    lines.push(`  cost: unknown: ${c.note}`);
  }
  for (const w of plan.warnings) lines.push(`Warning: ${w}`);
  if (plan.problems.length) {
    lines.push('Problems:');
    for (const p of plan.problems) lines.push(`  - ${p.message}`);
  }
  return lines.join('\n');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === 1 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

function usd(value: number): string {
  return `$${value < 1 ? value.toFixed(4) : value.toFixed(2)}`;
}

function formatHours(hours: number): string {
  return hours >= 1 ? `${Number(hours.toFixed(1))} h` : `${Math.round(hours * 60)} min`;
}
