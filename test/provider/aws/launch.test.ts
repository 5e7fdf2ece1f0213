import {
  DescribeSubnetsCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { GetServiceQuotaCommand } from '@aws-sdk/client-service-quotas';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AwsClients } from '../../../src/provider/aws/clients.ts';
import { AwsLaunchError, clientToken, dryRunLaunch, launchFleet, type FleetRequest } from '../../../src/provider/aws/launch.ts';
import type { LaunchPlan, RegionPlan } from '../../../src/provider/aws/plan.ts';
import { createAwsProvider } from '../../../src/provider/aws/provider.ts';
import { TAG } from '../../../src/core/tags.ts';
import { renderUserData } from '../../../src/provider/aws/user-data.ts';
import { LaunchError, type LaunchRequest } from '../../../src/provider/provider.ts';
import { awsError, awsSpec, FAKE_CREDENTIALS, mockAws, noSleep, useFakeCredentials, type AwsMocks } from './helpers.ts';

const boot = {
  runId: 'run-1',
  store: 's3://lockstep-bucket/lockstep?region=us-east-1&profile=mine',
  agentKey: 'agents/0.1.0/agent.mjs',
  expiresAt: new Date(Date.now() + 2 * 3_600_000),
};

function region(name: string, count: number, subnets: string[]): RegionPlan {
  return {
    region: name,
    count,
    ami: 'ami-1',
    amiSource: 'spec',
    subnets,
    subnetSource: 'spec',
    securityGroupIds: ['sg-1'],
    securityGroupSource: 'spec',
  };
}

function fleet(regions: RegionPlan[], extra: Partial<LaunchPlan> = {}, minCount?: number): FleetRequest {
  const instances = regions.reduce((n, r) => n + r.count, 0);
  return {
    plan: {
      instances,
      instanceType: 't3a.medium',
      architecture: 'x86_64',
      spot: false,
      addressKind: regions.length > 1 ? 'public' : 'private',
      iamInstanceProfile: 'lockstep-instance',
      allowSmaller: false,
      regions,
      cost: { known: false, note: '' },
      problems: [],
      warnings: [],
      ...extra,
    },
    runId: boot.runId,
    specName: 'dkg',
    boot,
    minCount: minCount ?? instances,
    userData: renderUserData({ boot, architecture: 'x86_64' }),
  };
}

/** Node.js for the instances, as if it were in the store already (no download in these tests). */
const provideNode = async (architecture: 'x86_64' | 'arm64') => ({
  version: 'v24.0.0',
  architecture,
  key: 'runtimes/node-v24.0.0-linux-x64.tar.gz',
  sha256: 'c'.repeat(64),
  dir: 'node-v24.0.0-linux-x64',
  bytes: 1,
  uploaded: false,
});

let serial = 0;
/** A RunInstances answer with `n` instances (or MaxCount when n is omitted). */
function launched(input: RunInstancesCommandInput, n = input.MaxCount ?? 1) {
  return {
    Instances: Array.from({ length: n }, () => {
      serial++;
      return {
        InstanceId: `i-${serial.toString(16).padStart(17, '0')}`,
        PrivateIpAddress: `10.0.0.${serial % 250}`,
        PublicIpAddress: `198.51.100.${serial % 250}`,
        SubnetId: input.SubnetId ?? input.NetworkInterfaces?.[0]?.SubnetId,
        Placement: { AvailabilityZone: 'zone-a' },
      };
    }),
  };
}

function runInputs(aws: AwsMocks): RunInstancesCommandInput[] {
  return aws.ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
}

function subnetOf(input: RunInstancesCommandInput): string | undefined {
  return input.SubnetId ?? input.NetworkInterfaces?.[0]?.SubnetId;
}

describe('launch', () => {
  let aws: AwsMocks;
  let clients: AwsClients;
  let restoreEnv: () => void;
  beforeAll(() => (restoreEnv = useFakeCredentials()));
  afterAll(() => restoreEnv());
  beforeEach(() => {
    aws = mockAws();
    clients = new AwsClients();
    aws.ec2.on(TerminateInstancesCommand).resolves({});
  });
  afterEach(() => {
    clients.destroy();
    aws.restore();
  });

  describe('through the provider: N=10 over 3 regions', () => {
    const request = (): LaunchRequest => ({
      runId: 'run-10',
      specName: 'dkg',
      count: 10,
      minCount: 10,
      boot: { ...boot, runId: 'run-10' },
      provider: awsSpec({ regions: ['us-east-1', 'eu-west-1', 'ap-south-1'], iamInstanceProfile: 'lockstep-instance' }),
    });

    beforeEach(() => {
      aws.ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'ami-al2023' } });
      aws.ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [{ SubnetId: 'subnet-a', AvailabilityZone: 'zone-a', VpcId: 'vpc-1' }] });
      aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => launched(input));
    });

    it('launches 4/3/3, every request with the tags, IMDSv2 + metadata tags, terminate-on-shutdown and a ClientToken', async () => {
      const provider = createAwsProvider({ clients, configPath: '/nonexistent/aws.json', sleep: noSleep, provideNode });
      const instances = await provider.launch(request());
      expect(instances).toHaveLength(10);
      const inputs = runInputs(aws);
      const byRegion = new Map<string, number>();
      for (const call of aws.ec2.commandCalls(RunInstancesCommand)) {
        const regionName = await call.thisValue.config.region();
        byRegion.set(regionName, (byRegion.get(regionName) ?? 0) + (call.args[0].input.MaxCount ?? 0));
      }
      expect(Object.fromEntries(byRegion)).toEqual({ 'us-east-1': 4, 'eu-west-1': 3, 'ap-south-1': 3 });
      expect(instances.filter((i) => i.region === 'us-east-1')).toHaveLength(4);

      for (const input of inputs) {
        const tags = Object.fromEntries((input.TagSpecifications?.find((t) => t.ResourceType === 'instance')?.Tags ?? []).map((t) => [t.Key, t.Value]));
        expect(tags).toMatchObject({
          [TAG.name]: 'lockstep dkg run-10',
          [TAG.runId]: 'run-10',
          [TAG.spec]: 'dkg',
          [TAG.expiresAt]: boot.expiresAt.toISOString(),
          [TAG.addressKind]: 'public',
        });
        expect(Object.keys(tags).every((k) => /^[A-Za-z0-9+\-=.,_:@]+$/.test(k))).toBe(true);
        expect(input.MetadataOptions).toMatchObject({ HttpTokens: 'required', InstanceMetadataTags: 'enabled' });
        expect(input.InstanceInitiatedShutdownBehavior).toBe('terminate');
        expect(input.ClientToken).toMatch(/^lockstep-[0-9a-f]{48}$/);
        expect(input.IamInstanceProfile).toEqual({ Name: 'lockstep-instance' });
        expect(input.ImageId).toBe('ami-al2023');
        // Several regions: public addresses on the first interface, with the subnet and groups there.
        expect(input.NetworkInterfaces?.[0]).toMatchObject({ DeviceIndex: 0, SubnetId: 'subnet-a', AssociatePublicIpAddress: true });
      }
      expect(new Set(inputs.map((i) => i.ClientToken)).size).toBe(3);
      expect(instances.every((i) => i.address?.startsWith('198.51.100.'))).toBe(true);
    });

    it('puts no credential in user-data or tags, and the user-data decodes to the bash boot script', async () => {
      const provider = createAwsProvider({ clients, configPath: '/nonexistent/aws.json', sleep: noSleep, provideNode });
      await provider.launch(request());
      for (const input of runInputs(aws)) {
        const script = Buffer.from(input.UserData!, 'base64').toString('utf8');
        expect(script.startsWith('#!/bin/bash\n')).toBe(true);
        // Node.js from the store for the planned architecture; no AWS CLI.
        expect(script).toContain('\nNODE_KEY=runtimes/node-v24.0.0-linux-x64.tar.gz\n');
        expect(script).toContain('\nARCHITECTURE=x86_64\n');
        expect(script).not.toContain('aws s3');
        const everything = script + JSON.stringify(input.TagSpecifications);
        for (const secret of Object.values(FAKE_CREDENTIALS)) expect(everything).not.toContain(secret);
        // The operator's profile name is not passed on either: instances use their instance profile.
        expect(everything).not.toContain('profile=mine');
      }
    });

    it('sends the same ClientTokens when the same launch is made again, so EC2 does not double the fleet', async () => {
      const provider = createAwsProvider({ clients, configPath: '/nonexistent/aws.json', sleep: noSleep, provideNode });
      await provider.launch(request());
      const first = runInputs(aws).map((i) => i.ClientToken);
      aws.ec2.resetHistory();
      await createAwsProvider({ clients, configPath: '/nonexistent/aws.json', sleep: noSleep, provideNode }).launch(request());
      expect(runInputs(aws).map((i) => i.ClientToken).sort()).toEqual([...first].sort());
      expect(clientToken('run-10', 'us-east-1', 'subnet-a', 0)).not.toBe(clientToken('run-11', 'us-east-1', 'subnet-a', 0));
    });
  });

  it('moves to the next subnet on InsufficientInstanceCapacity', async () => {
    aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => {
      if (subnetOf(input) === 'subnet-a') throw awsError('InsufficientInstanceCapacity', 'We currently do not have sufficient t3a.medium capacity');
      return launched(input);
    });
    const progress: string[] = [];
    const { instances, regions } = await launchFleet(fleet([region('us-east-1', 5, ['subnet-a', 'subnet-b'])]), {
      clients,
      sleep: noSleep,
      onProgress: (m) => progress.push(m),
    });
    expect(instances).toHaveLength(5);
    expect(runInputs(aws).map(subnetOf)).toEqual(['subnet-a', 'subnet-b']);
    expect(runInputs(aws)[1]!.SubnetId).toBe('subnet-b');
    expect(regions[0]!.skipped).toEqual([expect.objectContaining({ subnet: 'subnet-a', code: 'InsufficientInstanceCapacity' })]);
    expect(progress.join('\n')).toContain('InsufficientInstanceCapacity in subnet-a, trying the next subnet');
  });

  it('asks the next subnet for the rest when EC2 launches fewer than asked', async () => {
    aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => launched(input, subnetOf(input) === 'subnet-a' ? 2 : undefined));
    const { instances } = await launchFleet(fleet([region('us-east-1', 5, ['subnet-a', 'subnet-b'])]), { clients, sleep: noSleep });
    expect(instances).toHaveLength(5);
    expect(runInputs(aws).map((i) => [subnetOf(i), i.MaxCount])).toEqual([
      ['subnet-a', 5],
      ['subnet-b', 3],
    ]);
  });

  it('fills what one region lacks from another region', async () => {
    aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => {
      if (subnetOf(input)?.startsWith('subnet-eu')) throw awsError('InsufficientInstanceCapacity');
      return launched(input);
    });
    const { instances, regions } = await launchFleet(
      fleet([region('us-east-1', 2, ['subnet-us']), region('eu-west-1', 2, ['subnet-eu1', 'subnet-eu2'])]),
      { clients, sleep: noSleep },
    );
    expect(instances).toHaveLength(4);
    expect(instances.every((i) => i.region === 'us-east-1')).toBe(true);
    expect(regions.map((r) => [r.region, r.launched])).toEqual([
      ['us-east-1', 4],
      ['eu-west-1', 0],
    ]);
  });

  it('terminates what it launched and throws a clear LaunchError when it cannot reach N', async () => {
    let capacityUs = 3;
    aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => {
      if (subnetOf(input)?.startsWith('subnet-eu') || capacityUs === 0) throw awsError('InsufficientInstanceCapacity');
      const n = Math.min(input.MaxCount!, capacityUs);
      capacityUs -= n;
      return launched(input, n);
    });
    const error = await launchFleet(
      fleet([region('us-east-1', 3, ['subnet-us']), region('eu-west-1', 2, ['subnet-eu1', 'subnet-eu2'])]),
      { clients, sleep: noSleep },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LaunchError);
    expect(error).toBeInstanceOf(AwsLaunchError);
    const launchError = error as AwsLaunchError;
    expect(launchError.message).toMatch(/^Launched 3 of 5 instances, fewer than the 5 needed: /);
    expect(launchError.message).toContain('eu-west-1 got 0 of 2 (InsufficientInstanceCapacity in subnet-eu1, subnet-eu2)');
    // It tried to make up for eu-west-1 in us-east-1 first.
    expect(runInputs(aws).map((i) => [subnetOf(i), i.MaxCount])).toContainEqual(['subnet-us', 2]);
    expect(launchError.message).toContain('terminated the 3 launched');
    expect(launchError.message).toMatch(/Fix: EC2 lacks capacity .*\(`provider.allowSmaller` with `minInstances`\)$/);
    expect(launchError.launched).toHaveLength(3);
    expect(launchError.launched.every((i) => i.state === 'ended')).toBe(true);
    expect(launchError.leftRunning).toEqual([]);
    const terminated = aws.ec2.commandCalls(TerminateInstancesCommand).flatMap((c) => c.args[0].input.InstanceIds ?? []);
    expect(terminated.sort()).toEqual(launchError.launched.map((i) => i.id).sort());
  });

  it('goes on with fewer when the spec allows a smaller run, down to minCount', async () => {
    aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => launched(input, Math.min(input.MaxCount!, 3)));
    const request = fleet([region('us-east-1', 5, ['subnet-a'])], { allowSmaller: true }, 3);
    const { instances } = await launchFleet(request, { clients, sleep: noSleep });
    expect(instances).toHaveLength(3);
    expect(aws.ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    // Without allowSmaller the same shortfall fails.
    await expect(launchFleet({ ...request, plan: { ...request.plan, allowSmaller: false } }, { clients, sleep: noSleep })).rejects.toThrow(
      /fewer than the 5 needed/,
    );
  });

  it('retries RequestLimitExceeded with backoff, with the same ClientToken', async () => {
    let calls = 0;
    aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => {
      if (++calls <= 2) throw awsError('RequestLimitExceeded', 'Request limit exceeded.', 503);
      return launched(input);
    });
    const waits: number[] = [];
    const { instances } = await launchFleet(fleet([region('us-east-1', 2, ['subnet-a'])]), {
      clients,
      sleep: async (ms) => void waits.push(ms),
    });
    expect(instances).toHaveLength(2);
    const tokens = runInputs(aws).map((i) => i.ClientToken);
    expect(tokens).toHaveLength(3);
    expect(new Set(tokens).size).toBe(1);
    expect(waits).toHaveLength(2);
    expect(waits[1]!).toBeGreaterThanOrEqual(waits[0]! / 2);
  });

  it('reports VcpuLimitExceeded with the numbers and the fix', async () => {
    aws.ec2.on(RunInstancesCommand).rejects(awsError('VcpuLimitExceeded', 'You have requested more vCPU capacity than your current vCPU limit of 16 allows'));
    aws.quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 16 } });
    const error = (await launchFleet(fleet([region('us-east-1', 10, ['subnet-a'])]), { clients, sleep: noSleep }).catch((e: unknown) => e)) as AwsLaunchError;
    expect(error).toBeInstanceOf(AwsLaunchError);
    expect(error.message).toContain('us-east-1 got 0 of 10 (VcpuLimitExceeded: asked for 10 × t3a.medium = 20 vCPUs, the quota is 16 vCPUs (L-1216C47A)');
    expect(error.message).toMatch(/Fix: request a vCPU quota increase \(Service Quotas → EC2 → L-1216C47A\), or launch fewer instances or a smaller type/);
    expect(error.regions[0]!.fatal?.quota).toEqual({ quotaCode: 'L-1216C47A', quotaVcpus: 16, vcpusPerInstance: 2, askedInstances: 10, askedVcpus: 20 });
    expect(aws.ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    expect(runInputs(aws)).toHaveLength(1);
  });

  it('launches spot instances with one-time, terminate-on-interruption options, and private addresses in one region', async () => {
    aws.ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => launched(input));
    await launchFleet(fleet([region('us-east-1', 2, ['subnet-a'])], { spot: true }), { clients, sleep: noSleep });
    const input = runInputs(aws)[0]!;
    expect(input.InstanceMarketOptions).toEqual({
      MarketType: 'spot',
      SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
    });
    expect(input.SubnetId).toBe('subnet-a');
    expect(input.SecurityGroupIds).toEqual(['sg-1']);
    expect(input.NetworkInterfaces).toBeUndefined();
  });

  it('refuses a plan with problems before calling EC2', async () => {
    const request = fleet([region('us-east-1', 2, ['subnet-a'])]);
    const { AwsSetupError } = await import('../../../src/provider/aws/errors.ts');
    const problem = new AwsSetupError('No instance profile', 'run `lockstep aws bootstrap`');
    await expect(launchFleet({ ...request, plan: { ...request.plan, problems: [problem] } }, { clients })).rejects.toBe(problem);
    expect(runInputs(aws)).toHaveLength(0);
  });

  it('dry run: DryRunOperation means allowed, UnauthorizedOperation means not', async () => {
    aws.ec2.on(RunInstancesCommand).callsFake(async (input: RunInstancesCommandInput) => {
      expect(input.DryRun).toBe(true);
      throw subnetOf(input) === 'subnet-us'
        ? awsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412)
        : awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403);
    });
    const results = await dryRunLaunch(fleet([region('us-east-1', 1, ['subnet-us']), region('eu-west-1', 1, ['subnet-eu'])]), { clients });
    expect(results.map((r) => [r.region, r.allowed, r.code])).toEqual([
      ['us-east-1', true, 'DryRunOperation'],
      ['eu-west-1', false, 'UnauthorizedOperation'],
    ]);
  });
});
