import { DescribeSubnetsCommand } from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AwsClients } from '../../../src/provider/aws/clients.ts';
import { AwsSetupError } from '../../../src/provider/aws/errors.ts';
import { AL2023_PARAMETER, estimateCost, formatLaunchPlan, resolveLaunchPlan, splitCount } from '../../../src/provider/aws/plan.ts';
import { awsSpec, mockAws, useFakeCredentials, type AwsMocks } from './helpers.ts';

describe('splitCount', () => {
  it('splits N evenly over a list of regions, the first ones taking the remainder (10 over 3 → 4/3/3)', () => {
    expect(splitCount(10, ['us-east-1', 'eu-west-1', 'ap-south-1'])).toEqual([
      { region: 'us-east-1', count: 4 },
      { region: 'eu-west-1', count: 3 },
      { region: 'ap-south-1', count: 3 },
    ]);
    expect(splitCount(12, ['a', 'b', 'c']).map((r) => r.count)).toEqual([4, 4, 4]);
  });

  it('leaves out regions that get none', () => {
    expect(splitCount(2, ['us-east-1', 'eu-west-1', 'ap-south-1']).map((r) => r.region)).toEqual(['us-east-1', 'eu-west-1']);
  });

  it('takes explicit counts when they add up to N, and says how to fix them when not', () => {
    expect(splitCount(5, { 'us-east-1': 2, 'eu-west-1': 3, 'ap-south-1': 0 })).toEqual([
      { region: 'us-east-1', count: 2 },
      { region: 'eu-west-1', count: 3 },
    ]);
    expect(() => splitCount(6, { 'us-east-1': 2, 'eu-west-1': 3 })).toThrow(/add up to 5, but `instances` is 6: make them equal/);
  });

  it('refuses a region named twice', () => {
    expect(() => splitCount(4, ['us-east-1', 'us-east-1'])).toThrow(AwsSetupError);
  });
});

describe('resolveLaunchPlan', () => {
  let aws: AwsMocks;
  let restoreEnv: () => void;
  let clients: AwsClients;
  beforeAll(() => (restoreEnv = useFakeCredentials()));
  afterAll(() => restoreEnv());
  beforeEach(() => {
    aws = mockAws();
    clients = new AwsClients();
  });
  afterEach(() => {
    clients.destroy();
    aws.restore();
  });

  it('looks up the Amazon Linux 2023 AMI and the default subnets of every region', async () => {
    aws.ssm.on(GetParameterCommand).callsFake(async (input: { Name: string }) => ({ Parameter: { Name: input.Name, Value: 'ami-0123456789abcdef0' } }));
    aws.ec2.on(DescribeSubnetsCommand).resolves({
      Subnets: [
        { SubnetId: 'subnet-b', AvailabilityZone: 'zone-b', VpcId: 'vpc-1' },
        { SubnetId: 'subnet-a', AvailabilityZone: 'zone-a', VpcId: 'vpc-1' },
      ],
    });
    const plan = await resolveLaunchPlan(awsSpec({ regions: ['us-east-1', 'eu-west-1', 'ap-south-1'] }), 10, {
      clients,
      lifetimeMs: 2 * 3_600_000,
      config: {
        formatVersion: 1,
        account: '123456789012',
        bucket: 'b',
        bucketRegion: 'us-east-1',
        prefix: 'lockstep/',
        store: 's3://b/lockstep?region=us-east-1',
        roleName: 'lockstep-instance',
        roleArn: 'arn:aws:iam::123456789012:role/lockstep-instance',
        instanceProfileName: 'lockstep-instance',
        instanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/lockstep-instance',
        securityGroupName: 'lockstep',
        regions: { 'us-east-1': { vpcId: 'vpc-1', securityGroupId: 'sg-1' } },
      },
    });
    expect(plan.regions.map((r) => [r.region, r.count])).toEqual([
      ['us-east-1', 4],
      ['eu-west-1', 3],
      ['ap-south-1', 3],
    ]);
    expect(plan.regions.every((r) => r.ami === 'ami-0123456789abcdef0' && r.amiSource === 'ssm')).toBe(true);
    expect(aws.ssm.commandCalls(GetParameterCommand).map((c) => c.args[0].input.Name)).toEqual(Array(3).fill(AL2023_PARAMETER.x86_64));
    expect(plan.regions[0]!.subnets).toEqual(['subnet-a', 'subnet-b']);
    expect(plan.regions[0]!.securityGroupIds).toEqual(['sg-1']);
    expect(plan.regions[1]!.securityGroupSource).toBe('vpc-default');
    expect(plan.addressKind).toBe('public');
    expect(plan.iamInstanceProfile).toBe('lockstep-instance');
    expect(plan.problems).toEqual([]);
    expect(plan.warnings.join()).toMatch(/spans regions/);
    expect(plan.cost).toMatchObject({ known: true, usdPerInstanceHour: 0.0376, vcpusPerInstance: 2 });
    expect(plan.cost.usdPerHour).toBeCloseTo(0.376);
    expect(plan.cost.usdUntilExpiry).toBeCloseTo(0.752);

    const text = formatLaunchPlan(plan);
    expect(text).toContain('Launch plan: 10 × t3a.medium (x86_64, on-demand) in 3 regions, public addresses');
    expect(text).toMatch(/us-east-1\s+4\s+ami-0123456789abcdef0 \(AL2023\)\s+subnet-a, subnet-b \(default VPC\)\s+sg-1 \(bootstrap\)/);
    expect(text).toContain('cost: about $0.3760/hour ($0.0376 per instance); at most $0.7520 if every instance lives to its expiry (2 h)');
  });

  it('uses the arm64 parameter for Graviton types and says when a type has no price', async () => {
    aws.ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'ami-arm' } });
    const plan = await resolveLaunchPlan(awsSpec({ instanceType: 'm8g.large', subnets: { 'us-east-1': ['subnet-1'] } }), 2, { clients });
    expect(aws.ssm.commandCalls(GetParameterCommand)[0]!.args[0].input.Name).toBe(AL2023_PARAMETER.arm64);
    expect(plan.architecture).toBe('arm64');
    expect(plan.addressKind).toBe('private');
    expect(plan.cost.known).toBe(false);
    expect(formatLaunchPlan(plan)).toMatch(/cost: unknown: m8g.large is not in lockstep's small price table/);
    expect(plan.problems.map((p) => p.message)).toEqual([
      'No instance profile: the agents could not reach the store: run `lockstep aws bootstrap`, or set `provider.iamInstanceProfile`',
    ]);
  });

  it('without clients plans offline: AMI resolved by EC2 from SSM at launch, default subnets at launch', async () => {
    const plan = await resolveLaunchPlan(awsSpec({ iamInstanceProfile: 'p' }), 3);
    expect(plan.regions[0]).toMatchObject({ ami: `resolve:ssm:${AL2023_PARAMETER.x86_64}`, amiSource: 'ssm-at-launch', subnetSource: 'unresolved' });
    expect(formatLaunchPlan(plan)).toContain('Amazon Linux 2023 (SSM, at launch)');
  });

  it('refuses one AMI id for several regions, and a region without a default VPC, naming the fix', async () => {
    await expect(resolveLaunchPlan(awsSpec({ regions: ['us-east-1', 'eu-west-1'], ami: 'ami-1' }), 2)).rejects.toThrow(/give one per region/);
    await expect(resolveLaunchPlan(awsSpec({ ami: { 'eu-west-1': 'ami-1' } }), 2)).rejects.toThrow(/has no AMI for us-east-1/);
    aws.ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'ami-1' } });
    aws.ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [] });
    await expect(resolveLaunchPlan(awsSpec(), 2, { clients })).rejects.toThrow(/no default VPC.*aws ec2 create-default-vpc --region us-east-1/);
  });

  it('estimates cost from the built-in table', () => {
    expect(estimateCost('t3.micro', 10).usdPerHour).toBeCloseTo(0.104);
    expect(estimateCost('x9.huge', 1)).toMatchObject({ known: false });
  });
});
