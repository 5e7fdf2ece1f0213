/**
 * Launches a run's fleet: RunInstances per region and subnet chunk, regions in parallel.
 *
 * - Every call carries a deterministic `ClientToken` (run, region, subnet, call slot): retrying a
 *   call, or running the whole launch again for the same run, gives back the instances already
 *   launched instead of new ones.
 * - `InsufficientInstanceCapacity` (or fewer than asked) moves on to the region's next subnet;
 *   what a region could not launch is then asked of the other regions.
 * - Fewer than the minimum in the end: everything launched is terminated and `LaunchError` thrown.
 * - Throttling is retried with backoff; quota errors say the numbers and the fix.
 */
import { createHash } from 'node:crypto';
import { RunInstancesCommand, type Instance, type RunInstancesCommandInput, type Tag, type _InstanceType } from '@aws-sdk/client-ec2';
import { LaunchError, type AgentBoot, type InstanceInfo } from '../provider.ts';
import { describeVcpus, getEc2Quota } from './api.ts';
import type { AwsClients } from './clients.ts';
import { AwsSetupError, awsErrorCode, awsErrorMessage } from './errors.ts';
import type { LaunchPlan, RegionPlan } from './plan.ts';
import { knownInstanceType, vcpuQuotaCode } from './pricing.ts';
import { retry } from '../../util/retry.ts';
import { isThrottling, type Sleep } from './retry.ts';
import { encodeTagValue, TAG, TAG_VALUE_MAX } from '../../core/tags.ts';
import { terminateByRegion } from './terminate.ts';
import { withoutProfile } from '../../store/s3-locator.ts';
import { encodeUserData } from './user-data.ts';

export interface FleetRequest {
  readonly plan: LaunchPlan;
  readonly runId: string;
  readonly specName: string;
  readonly boot: AgentBoot;
  /** Fewer than `plan.instances` is accepted down to this many. */
  readonly minCount: number;
  /** The boot script (plain text; encoded here). */
  readonly userData: string;
}

export interface FleetOptions {
  readonly clients: AwsClients;
  readonly sleep?: Sleep;
  /** Most instances asked of one RunInstances call. Default 100. */
  readonly chunkSize?: number;
  /** Attempts of one call while it is throttled or the new instance profile is not visible yet. Default 8. */
  readonly attempts?: number;
  readonly onProgress?: (message: string) => void;
}

export interface LaunchedInstance {
  readonly id: string;
  readonly region: string;
  readonly zone?: string;
  readonly subnetId?: string;
  readonly privateIp?: string;
  readonly publicIp?: string;
}

export interface SubnetFailure {
  readonly subnet?: string;
  readonly code: string;
  readonly message: string;
}

export interface QuotaDetail {
  readonly quotaCode?: string;
  readonly quotaVcpus?: number;
  readonly vcpusPerInstance?: number;
  readonly askedInstances: number;
  readonly askedVcpus?: number;
}

export interface RegionOutcome {
  readonly region: string;
  readonly planned: number;
  readonly launched: number;
  /** Subnets passed over (capacity, zone does not offer the type, …). */
  readonly skipped: readonly SubnetFailure[];
  /** What stopped the region for good, if anything. */
  readonly fatal?: SubnetFailure & { readonly quota?: QuotaDetail };
}

/** A launch that could not reach its minimum. `launched` lists what was started (and then ended). */
export class AwsLaunchError extends LaunchError {
  constructor(
    message: string,
    launched: readonly InstanceInfo[],
    readonly regions: readonly RegionOutcome[],
    /** Ids that could not be terminated (they may still run: `lockstep down`). */
    readonly leftRunning: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, launched, options);
  }
}

/** Codes after which the next subnet (zone) may do better. */
const NEXT_SUBNET = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientCapacity',
  'InsufficientFreeAddressesInSubnet',
  'Unsupported',
  'SpotMaxPriceTooLow',
]);
const QUOTA = new Set(['VcpuLimitExceeded', 'InstanceLimitExceeded', 'MaxSpotInstanceCountExceeded']);

/** The instance tags of a run (keys readable from instance metadata). */
export function instanceTags(request: Pick<FleetRequest, 'runId' | 'specName' | 'boot' | 'plan'>): Tag[] {
  const store = encodeTagValue(withoutProfile(request.boot.store));
  if (store === undefined) {
    throw new AwsSetupError(
      `The store locator is too long for an EC2 tag (${TAG_VALUE_MAX} characters)`,
      'use a shorter bucket name or prefix',
    );
  }
  return [
    { Key: TAG.name, Value: `lockstep ${request.specName} ${request.runId}`.slice(0, TAG_VALUE_MAX) },
    { Key: TAG.runId, Value: request.runId },
    { Key: TAG.spec, Value: encodeTagValue(request.specName) ?? request.specName.slice(0, TAG_VALUE_MAX) },
    { Key: TAG.expiresAt, Value: request.boot.expiresAt.toISOString() },
    { Key: TAG.store, Value: store },
    { Key: TAG.addressKind, Value: request.plan.addressKind },
  ];
}

/** A ClientToken (≤ 64 ASCII characters) that is the same whenever the same call is made again. */
export function clientToken(runId: string, region: string, subnet: string | undefined, slot: number): string {
  const digest = createHash('sha256').update(`${runId}\n${region}\n${subnet ?? ''}\n${slot}`).digest('hex');
  return `lockstep-${digest.slice(0, 48)}`;
}

/** The RunInstances input for `count` instances in one region and subnet. */
export function runInstancesInput(
  request: FleetRequest,
  region: RegionPlan,
  subnet: string | undefined,
  count: number,
  clientTokenValue: string | undefined,
  extra: { tags?: Tag[]; userDataBase64?: string } = {},
): RunInstancesCommandInput {
  const { plan } = request;
  const tags = extra.tags ?? instanceTags(request);
  const groups = region.securityGroupIds.length ? [...region.securityGroupIds] : undefined;
  const profile = plan.iamInstanceProfile;
  return {
    ImageId: region.ami,
    InstanceType: plan.instanceType as _InstanceType,
    MinCount: 1,
    MaxCount: count,
    ClientToken: clientTokenValue,
    UserData: extra.userDataBase64 ?? encodeUserData(request.userData),
    ...(profile ? { IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile } } : {}),
    ...(plan.keyName ? { KeyName: plan.keyName } : {}),
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', InstanceMetadataTags: 'enabled' },
    InstanceInitiatedShutdownBehavior: 'terminate',
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags.filter((t) => t.Key === TAG.name || t.Key === TAG.runId) },
    ],
    ...(plan.spot
      ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } }
      : {}),
    ...(plan.addressKind === 'public'
      ? { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnet, Groups: groups, AssociatePublicIpAddress: true, DeleteOnTermination: true }] }
      : { SubnetId: subnet, SecurityGroupIds: groups }),
  };
}

interface RegionState {
  readonly plan: RegionPlan;
  readonly subnets: readonly (string | undefined)[];
  subnetIndex: number;
  slot: number;
  readonly instances: LaunchedInstance[];
  readonly skipped: SubnetFailure[];
  fatal?: SubnetFailure & { quota?: QuotaDetail };
}

/**
 * Launches `plan.instances` instances, or at least `minCount`. Throws `AwsLaunchError` (after
 * terminating what it launched) when it cannot, `AwsSetupError` when the plan has a problem.
 */
export async function launchFleet(request: FleetRequest, options: FleetOptions): Promise<{ instances: LaunchedInstance[]; regions: RegionOutcome[] }> {
  const { plan } = request;
  const problem = plan.problems[0];
  if (problem) throw problem;
  const progress = options.onProgress ?? (() => {});
  const tags = instanceTags(request);
  const userDataBase64 = encodeUserData(request.userData);
  const states: RegionState[] = plan.regions.map((r) => ({
    plan: r,
    subnets: r.subnets.length ? r.subnets : [undefined],
    subnetIndex: 0,
    slot: 0,
    instances: [],
    skipped: [],
  }));

  const launchIn = async (state: RegionState, wanted: number): Promise<void> => {
    const region = state.plan.region;
    while (wanted > 0 && !state.fatal && state.subnetIndex < state.subnets.length) {
      const subnet = state.subnets[state.subnetIndex];
      const ask = Math.min(wanted, options.chunkSize ?? 100);
      const token = clientToken(request.runId, region, subnet, state.slot++);
      const input = runInstancesInput(request, state.plan, subnet, ask, token, { tags, userDataBase64 });
      let got: Instance[];
      try {
        got = await retry(
          async () => (await options.clients.ec2(region).send(new RunInstancesCommand(input))).Instances ?? [],
          {
            attempts: options.attempts ?? 8,
            baseDelayMs: 500,
            maxDelayMs: 20_000,
            sleep: options.sleep,
            retryable: (error) => isThrottling(error) || isProfileNotVisibleYet(error),
            onRetry: (error, attempt, waitMs) =>
              progress(`${region}: ${awsErrorCode(error)}, trying again in ${(waitMs / 1000).toFixed(1)} s (attempt ${attempt + 1})`),
          },
        );
      } catch (error) {
        const code = awsErrorCode(error);
        const failure = { subnet, code, message: awsErrorMessage(error) };
        if (NEXT_SUBNET.has(code)) {
          state.skipped.push(failure);
          state.subnetIndex++;
          progress(`${region}: ${code}${subnet ? ` in ${subnet}` : ''}, trying the next subnet`);
          continue;
        }
        state.fatal = QUOTA.has(code) ? { ...failure, quota: await quotaDetail(options.clients, region, plan, ask) } : failure;
        progress(`${region}: ${code}: ${failure.message}`);
        break;
      }
      for (const instance of got) {
        if (!instance.InstanceId) continue;
        state.instances.push({
          id: instance.InstanceId,
          region,
          zone: instance.Placement?.AvailabilityZone,
          subnetId: instance.SubnetId ?? subnet,
          privateIp: instance.PrivateIpAddress,
          publicIp: instance.PublicIpAddress,
        });
      }
      wanted -= got.length;
      progress(`${region}: launched ${got.length} of ${ask}${subnet ? ` in ${subnet}` : ''}`);
      if (got.length < ask) {
        state.skipped.push({ subnet, code: 'PartialCapacity', message: `EC2 launched ${got.length} of ${ask}` });
        state.subnetIndex++;
      }
    }
  };

  // 1. Every region its share, in parallel.
  await Promise.all(states.map((state) => launchIn(state, state.plan.count)));
  // 2. What some region could not launch, asked of the others (in plan order).
  let total = states.reduce((n, s) => n + s.instances.length, 0);
  for (const state of states) {
    const missing = plan.instances - total;
    if (missing <= 0) break;
    if (state.fatal || state.subnetIndex >= state.subnets.length) continue;
    progress(`${state.plan.region}: asking for ${missing} more to make up for the other regions`);
    const before = state.instances.length;
    await launchIn(state, missing);
    total += state.instances.length - before;
  }

  const instances = states.flatMap((s) => s.instances);
  const regions: RegionOutcome[] = states.map((s) => ({
    region: s.plan.region,
    planned: s.plan.count,
    launched: s.instances.length,
    skipped: s.skipped,
    ...(s.fatal ? { fatal: s.fatal } : {}),
  }));
  const minimum = plan.allowSmaller ? Math.min(request.minCount, plan.instances) : plan.instances;
  if (instances.length >= minimum) {
    if (instances.length < plan.instances) {
      progress(`Launched ${instances.length} of ${plan.instances} instances (allowed down to ${minimum})`);
    }
    return { instances, regions };
  }
  throw await failLaunch(request, options, instances, regions, minimum);
}

/** Terminates what was launched and makes the error that says why the launch fell short. */
async function failLaunch(
  request: FleetRequest,
  options: FleetOptions,
  instances: readonly LaunchedInstance[],
  regions: readonly RegionOutcome[],
  minimum: number,
): Promise<AwsLaunchError> {
  const { plan } = request;
  const byRegion = new Map<string, string[]>();
  for (const i of instances) byRegion.set(i.region, [...(byRegion.get(i.region) ?? []), i.id]);
  let leftRunning: string[] = [];
  let terminateError: unknown;
  if (instances.length) {
    options.onProgress?.(`Terminating the ${instances.length} instances launched`);
    try {
      await terminateByRegion(options.clients, byRegion, { sleep: options.sleep });
    } catch (error) {
      terminateError = error;
      leftRunning = instances.map((i) => i.id);
    }
  }
  const shortfalls = regions
    .filter((r) => r.launched < r.planned || r.fatal)
    .map((r) => `${r.region} got ${r.launched} of ${r.planned} (${describeRegionFailure(r, plan)})`);
  const ended = instances.length === 0 ? '' : terminateError ? `; could NOT terminate ${leftRunning.join(', ')}: run \`lockstep down\`` : `; terminated the ${instances.length} launched`;
  const message =
    `Launched ${instances.length} of ${plan.instances} instances, fewer than the ${minimum} needed: ${shortfalls.join('; ')}${ended}. ` +
    `Fix: ${fixFor(regions, plan)}`;
  const launched: InstanceInfo[] = instances.map((i) => ({
    id: i.id,
    runId: request.runId,
    state: terminateError ? 'running' : 'ended',
    address: i.privateIp,
    region: i.region,
    expiresAt: request.boot.expiresAt,
  }));
  return new AwsLaunchError(message, launched, regions, leftRunning, { cause: terminateError });
}

function describeRegionFailure(r: RegionOutcome, plan: LaunchPlan): string {
  const parts: string[] = [];
  const skipped = new Map<string, string[]>();
  for (const s of r.skipped) skipped.set(s.code, [...(skipped.get(s.code) ?? []), s.subnet ?? 'default subnet']);
  for (const [code, subnets] of skipped) parts.push(`${code} in ${subnets.join(', ')}`);
  if (r.fatal?.quota) {
    const q = r.fatal.quota;
    const asked = q.askedVcpus !== undefined ? `${q.askedInstances} × ${plan.instanceType} = ${q.askedVcpus} vCPUs` : `${q.askedInstances} × ${plan.instanceType}`;
    const quota = q.quotaVcpus !== undefined ? `, the quota is ${q.quotaVcpus} vCPUs${q.quotaCode ? ` (${q.quotaCode})` : ''}, running instances included` : '';
    parts.push(`${r.fatal.code}: asked for ${asked}${quota}`);
  } else if (r.fatal) {
    parts.push(`${r.fatal.code}: ${r.fatal.message}`);
  }
  return parts.join('; ') || 'not tried';
}

function fixFor(regions: readonly RegionOutcome[], plan: LaunchPlan): string {
  const codes = new Set(regions.flatMap((r) => [...r.skipped.map((s) => s.code), ...(r.fatal ? [r.fatal.code] : [])]));
  const fixes: string[] = [];
  if ([...codes].some((c) => QUOTA.has(c))) {
    fixes.push(
      `request a vCPU quota increase (Service Quotas → EC2 → ${vcpuQuotaCode(plan.instanceType, plan.spot) ?? 'the quota of this instance family'}), or launch fewer instances or a smaller type`,
    );
  }
  if ([...codes].some((c) => NEXT_SUBNET.has(c) || c === 'PartialCapacity')) {
    fixes.push(
      'EC2 lacks capacity for this type there: try another `instanceType`, more `subnets` or `regions`, or allow a smaller run (`provider.allowSmaller` with `minInstances`)',
    );
  }
  if (codes.has('UnauthorizedOperation')) fixes.push('your credentials may not launch instances: run `lockstep aws doctor`');
  if ([...codes].some((c) => c.startsWith('InvalidAMIID'))) fixes.push('check `provider.ami`');
  if (codes.has('IdempotentParameterMismatch')) fixes.push('this run id was launched before with other parameters: start a new run');
  if (fixes.length === 0) fixes.push('run `lockstep aws doctor`, which checks credentials, quotas and the bootstrap setup');
  return fixes.join('; ');
}

/** Right after `lockstep aws bootstrap`, EC2 may not see the new instance profile for a few seconds. */
function isProfileNotVisibleYet(error: unknown): boolean {
  return awsErrorCode(error) === 'InvalidParameterValue' && /iamInstanceProfile|instance profile/i.test(awsErrorMessage(error));
}

async function quotaDetail(clients: AwsClients, region: string, plan: LaunchPlan, asked: number): Promise<QuotaDetail> {
  const quotaCode = vcpuQuotaCode(plan.instanceType, plan.spot);
  const vcpusPerInstance =
    knownInstanceType(plan.instanceType)?.vcpus ?? (await describeVcpus(clients, region, plan.instanceType).catch(() => undefined));
  const quotaVcpus = quotaCode ? await getEc2Quota(clients, region, quotaCode).catch(() => undefined) : undefined;
  return {
    quotaCode,
    quotaVcpus,
    vcpusPerInstance,
    askedInstances: asked,
    askedVcpus: vcpusPerInstance === undefined ? undefined : vcpusPerInstance * asked,
  };
}

export interface DryRunResult {
  readonly region: string;
  /** True when EC2 answered `DryRunOperation` (the launch would be allowed). */
  readonly allowed: boolean;
  readonly code: string;
  readonly message: string;
}

/**
 * Asks EC2, per region, whether the first launch call of the plan would be allowed (`DryRun: true`):
 * `DryRunOperation` means yes, `UnauthorizedOperation` means the credentials may not, anything else
 * names a problem with the request (AMI, subnet, profile, …). Launches nothing.
 */
export async function dryRunLaunch(request: FleetRequest, options: Pick<FleetOptions, 'clients'>): Promise<DryRunResult[]> {
  const tags = instanceTags(request);
  const userDataBase64 = encodeUserData(request.userData);
  return Promise.all(
    request.plan.regions.map(async (region): Promise<DryRunResult> => {
      const input = { ...runInstancesInput(request, region, region.subnets[0], region.count, undefined, { tags, userDataBase64 }), DryRun: true };
      try {
        await options.clients.ec2(region.region).send(new RunInstancesCommand(input));
        return { region: region.region, allowed: true, code: 'DryRunOperation', message: 'EC2 accepted the dry run' };
      } catch (error) {
        const code = awsErrorCode(error);
        return { region: region.region, allowed: code === 'DryRunOperation', code, message: awsErrorMessage(error) };
      }
    }),
  );
}
