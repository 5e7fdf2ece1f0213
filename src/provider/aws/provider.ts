/**
 * The AWS provider: EC2 instances in one or more regions, each running the lockstep agent. It only
 * launches, lists and ends instances; everything about the run goes through the store.
 * Load it lazily (`await import(...)`): it loads the AWS SDK.
 */
import type { Instance } from '@aws-sdk/client-ec2';
import type { AwsProviderSpec } from '../../spec/schema.ts';
import type { AgentBoot, ConsoleOutputProvider, InstanceInfo, LaunchRequest, Provider } from '../provider.ts';
import { describeInstances, getConsoleOutput } from './api.ts';
import { AwsClients } from './clients.ts';
import { defaultAwsConfigPath, loadAwsConfig, type AwsConfig } from './config.ts';
import { AwsApiError, AwsSetupError, awsErrorCode } from './errors.ts';
import { dryRunLaunch, launchFleet, type DryRunResult, type FleetRequest } from './launch.ts';
import { resolveLaunchPlan, type LaunchPlan } from './plan.ts';
import type { Sleep } from './retry.ts';
import { decodeTagValue, TAG } from '../../core/tags.ts';
import { terminateByRegion } from './terminate.ts';
import { renderUserData } from './user-data.ts';
import { NodeRuntimeError, publishNodeRuntime, type Architecture, type NodeRuntime } from '../node-runtime.ts';
import { openStore } from '../../store/open.ts';

export interface AwsProviderOptions {
  /** The spec's `provider` section: its regions are where `list` and `terminate` look, its profile is used. */
  readonly spec?: AwsProviderSpec;
  /**
   * The regions `list` and `terminate` look in (besides those of instances it launched). Default:
   * the spec's and the bootstrap config's.
   */
  readonly regions?: readonly string[];
  /** A named AWS profile; default: `spec.profile`, else the standard credential chain. */
  readonly profile?: string;
  /** The bootstrap config file. Default: `defaultAwsConfigPath()`. */
  readonly configPath?: string;
  /**
   * Puts Node.js for images without it in the store, for a launch (tests substitute it). Default:
   * `publishNodeRuntime` into the run's store.
   */
  readonly provideNode?: (architecture: Architecture, boot: AgentBoot, onProgress?: (message: string) => void) => Promise<NodeRuntime>;
  /** SDK clients to use (tests); default: made here and destroyed by `dispose`. */
  readonly clients?: AwsClients;
  readonly sleep?: Sleep;
  /** Most instances one RunInstances call asks for. Default 100. */
  readonly chunkSize?: number;
}

export interface AwsProvider extends Provider, ConsoleOutputProvider {
  readonly kind: 'aws';
  /** The launch plan of a request, with AMIs and subnets looked up. Launches nothing. */
  plan(request: LaunchRequest): Promise<LaunchPlan>;
  /** Asks EC2 whether the request's launch would be allowed (`DryRun`). Launches nothing. */
  dryRun(request: LaunchRequest): Promise<DryRunResult[]>;
}

/** Takes options, or just the spec's `provider` section (`createAwsProvider(spec.provider)`). */
export function createAwsProvider(optionsOrSpec: AwsProviderOptions | AwsProviderSpec = {}): AwsProvider {
  const options: AwsProviderOptions = 'kind' in optionsOrSpec ? { spec: optionsOrSpec } : optionsOrSpec;
  // Made on first use, so that a launch request's `provider.profile` counts when no other is given.
  let made: AwsClients | undefined = options.clients;
  const sdk = (profile?: string): AwsClients => (made ??= new AwsClients({ profile: options.profile ?? options.spec?.profile ?? profile }));
  const configPath = options.configPath ?? defaultAwsConfigPath();
  /** Region of every instance this provider launched or listed. */
  const regionOf = new Map<string, string>();
  let config: Promise<AwsConfig | undefined> | undefined;
  const getConfig = () => (config ??= loadAwsConfig(configPath));

  /** The fleet of a request; for a launch (`forLaunch`), Node.js for the instances is put in the store first. */
  const prepare = async (request: LaunchRequest, forLaunch = false): Promise<FleetRequest> => {
    const spec = awsSpec(request);
    const plan = await resolveLaunchPlan(spec, request.count, {
      clients: sdk(spec.profile),
      config: await getConfig(),
      lifetimeMs: Math.max(0, request.boot.expiresAt.getTime() - Date.now()),
    });
    const node = forLaunch && plan.problems.length === 0 ? await provideNode(request, plan) : undefined;
    return {
      plan,
      runId: request.runId,
      specName: request.specName,
      boot: request.boot,
      minCount: request.minCount,
      // Nobody can look around on a failed instance without SSH: it ends at once then.
      userData: renderUserData({ boot: request.boot, architecture: plan.architecture, node, failureGraceMinutes: plan.keyName ? 5 : 0 }),
    };
  };

  /**
   * Node.js in the store for images without it. Without it, an image that has Node.js ≥ 20 still
   * boots, so only a run on the default image (which has none) is refused.
   */
  const provideNode = async (request: LaunchRequest, plan: LaunchPlan): Promise<NodeRuntime | undefined> => {
    try {
      return await (options.provideNode ?? publishToStore)(plan.architecture, request.boot, request.onProgress);
    } catch (error) {
      if (!(error instanceof NodeRuntimeError)) throw error;
      if (plan.regions.some((r) => r.amiSource !== 'spec')) {
        throw new AwsSetupError(
          `Amazon Linux 2023 has no Node.js ≥ 20, and lockstep could not get one for the instances: ${error.message}`,
          'let this machine reach https://nodejs.org once (or set LOCKSTEP_NODE_MIRROR to a mirror), or use an AMI with Node.js ≥ 20 (`provider.ami`)',
          { cause: error },
        );
      }
      request.onProgress?.(`Warning: no Node.js for the instances (${error.message}): only an image with Node.js ≥ 20 boots`);
      return undefined;
    }
  };

  const regionsToSearch = async (): Promise<string[]> => {
    const found = new Set<string>(options.regions ?? []);
    if (!options.regions) {
      if (options.spec) for (const region of specRegions(options.spec)) found.add(region);
      for (const region of Object.keys((await getConfig())?.regions ?? {})) found.add(region);
    }
    for (const region of regionOf.values()) found.add(region);
    if (found.size === 0) {
      throw new AwsSetupError('No region to look in', 'pass the regions (`--region`), or run `lockstep aws bootstrap` first');
    }
    return [...found];
  };

  return {
    kind: 'aws',

    async plan(request) {
      return (await prepare(request)).plan;
    },

    async dryRun(request) {
      return dryRunLaunch(await prepare(request), { clients: sdk() });
    },

    async launch(request) {
      const fleet = await prepare(request, true);
      request.onProgress?.(
        `Launching ${fleet.plan.instances} × ${fleet.plan.instanceType} in ${fleet.plan.regions.map((r) => `${r.region} (${r.count})`).join(', ')}`,
      );
      const { instances } = await launchFleet(fleet, {
        clients: sdk(),
        sleep: options.sleep,
        chunkSize: options.chunkSize,
        onProgress: request.onProgress,
      });
      for (const i of instances) regionOf.set(i.id, i.region);
      const isPublic = fleet.plan.addressKind === 'public';
      return instances.map((i) => ({
        id: i.id,
        runId: request.runId,
        state: 'pending',
        address: isPublic ? i.publicIp : i.privateIp,
        region: i.region,
        expiresAt: request.boot.expiresAt,
      }));
    },

    async list(runId) {
      const filter = runId ? { Name: `tag:${TAG.runId}`, Values: [runId] } : { Name: 'tag-key', Values: [TAG.runId] };
      const regions = await regionsToSearch();
      const perRegion = await Promise.all(
        regions.map(async (region) => {
          const instances = await describeInstances(sdk(), region, [filter]).catch((error: unknown) => {
            throw new AwsApiError('ec2:DescribeInstances', awsErrorCode(error), region, 'check the credentials with `lockstep aws doctor`', { cause: error });
          });
          return instances.map((i) => toInstanceInfo(i, region));
        }),
      );
      const all = perRegion.flat().filter((i): i is InstanceInfo => i !== undefined);
      for (const i of all) if (i.region) regionOf.set(i.id, i.region);
      return all;
    },

    async terminate(instanceIds) {
      if (instanceIds.length === 0) return;
      const unknown = instanceIds.filter((id) => !regionOf.has(id));
      if (unknown.length) await locate(unknown);
      const lost = instanceIds.filter((id) => !regionOf.has(id));
      if (lost.length) {
        throw new AwsSetupError(
          `No instance ${lost.join(', ')} in ${(await regionsToSearch()).join(', ')}`,
          'check the ids, or pass the region they run in (`--region`)',
        );
      }
      const byRegion = new Map<string, string[]>();
      for (const id of instanceIds) {
        const region = regionOf.get(id)!;
        byRegion.set(region, [...(byRegion.get(region) ?? []), id]);
      }
      await terminateByRegion(sdk(), byRegion, { sleep: options.sleep });
    },

    async consoleOutput(instanceId) {
      if (!regionOf.has(instanceId)) await locate([instanceId]);
      const region = regionOf.get(instanceId);
      return region ? getConsoleOutput(sdk(), region, instanceId) : undefined;
    },

    async dispose() {
      if (!options.clients) made?.destroy();
      made = options.clients;
    },
  };

  async function locate(ids: readonly string[]): Promise<void> {
    await Promise.all(
      (await regionsToSearch()).map(async (region) => {
        const found = await describeInstances(sdk(), region, [{ Name: 'instance-id', Values: [...ids] }]);
        for (const i of found) if (i.InstanceId) regionOf.set(i.InstanceId, region);
      }),
    );
  }
}

async function publishToStore(architecture: Architecture, boot: AgentBoot, onProgress?: (message: string) => void): Promise<NodeRuntime> {
  const store = await openStore(boot.store);
  try {
    return await publishNodeRuntime(store, architecture, { onProgress });
  } finally {
    await store.dispose();
  }
}

function awsSpec(request: LaunchRequest): AwsProviderSpec {
  if (request.provider.kind !== 'aws') {
    throw new AwsSetupError(`The AWS provider got a \`${request.provider.kind}\` provider spec`, 'set `provider.kind: aws`');
  }
  return request.provider;
}

function specRegions(spec: AwsProviderSpec): string[] {
  return Array.isArray(spec.regions) ? [...spec.regions] : Object.keys(spec.regions);
}

/** An EC2 instance as lockstep sees it; `undefined` for one without a run-id tag. */
export function toInstanceInfo(instance: Instance, region: string): InstanceInfo | undefined {
  const tags = new Map((instance.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  const runId = tags.get(TAG.runId);
  if (!instance.InstanceId || !runId) return undefined;
  const stateName = instance.State?.Name;
  const state = stateName === 'pending' ? 'pending' : stateName === 'running' ? 'running' : 'ended';
  const expires = tags.get(TAG.expiresAt);
  const expiresAt = expires ? new Date(decodeTagValue(expires)) : undefined;
  const address = tags.get(TAG.addressKind) === 'public' ? instance.PublicIpAddress : instance.PrivateIpAddress;
  return {
    id: instance.InstanceId,
    runId,
    state,
    ...(address ? { address } : {}),
    region,
    ...(expiresAt && !Number.isNaN(expiresAt.getTime()) ? { expiresAt } : {}),
  };
}
