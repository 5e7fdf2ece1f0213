import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeImagesCommand, DescribeSubnetsCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { GetServiceQuotaCommand } from '@aws-sdk/client-service-quotas';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { runCommand } from 'citty';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { aws as awsCommand, describeLaunchPlan } from '../../../src/cli/commands/aws.ts';
import { AwsDoctorError } from '../../../src/provider/aws/doctor.ts';
import { specSchema } from '../../../src/spec/schema.ts';
import { fakeAccount } from './fake-account.ts';
import { awsError, mockAws, useFakeCredentials, type AwsMocks } from './helpers.ts';

const spec = specSchema.parse({
  name: 'dkg',
  instances: 10,
  run: 'java -jar run.jar {{rank}} {{hostsFile}}',
  store: 's3://my-bucket/lockstep?region=us-east-1',
  provider: { kind: 'aws', regions: ['us-east-1', 'eu-west-1', 'ap-south-1'], iamInstanceProfile: 'lockstep-instance', securityGroups: { 'us-east-1': ['sg-1'], 'eu-west-1': ['sg-2'], 'ap-south-1': ['sg-3'] } },
});

describe('aws commands', () => {
  let aws: AwsMocks;
  let dir: string;
  let restoreEnv: () => void;
  beforeAll(() => (restoreEnv = useFakeCredentials()));
  afterAll(() => restoreEnv());
  beforeEach(() => {
    aws = mockAws();
    dir = mkdtempSync(join(tmpdir(), 'lockstep-aws-cli-'));
    aws.ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'ami-al2023' } });
    aws.ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-al2023', Name: 'al2023-ami-2023.9.20251101.0-kernel-6.1-x86_64', Architecture: 'x86_64', State: 'available' }] });
    aws.ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [{ SubnetId: 'subnet-a', AvailabilityZone: 'zone-a', VpcId: 'vpc-1' }] });
    aws.quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 64 } });
  });
  afterEach(() => {
    aws.restore();
    rmSync(dir, { recursive: true, force: true });
    vi.restoreAllMocks();
  });

  it('describeLaunchPlan: with credentials, the plan, its cost and EC2 dry run per region; nothing launched', async () => {
    aws.sts.on(GetCallerIdentityCommand).resolves({ Account: '123456789012', Arn: 'arn:aws:iam::123456789012:user/a' });
    aws.ec2.on(RunInstancesCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412));
    const described = await describeLaunchPlan(spec, { configPath: join(dir, 'none.json') });
    expect(described.credentials).toBe(true);
    expect(described.plan.regions.map((r) => r.count)).toEqual([4, 3, 3]);
    expect(described.dryRun?.map((r) => r.allowed)).toEqual([true, true, true]);
    expect(aws.ec2.commandCalls(RunInstancesCommand).every((c) => c.args[0].input.DryRun === true)).toBe(true);
    expect(described.text).toContain('Launch plan: 10 × t3a.medium (x86_64, on-demand) in 3 regions, public addresses');
    expect(described.text).toContain('cost: about $0.3760/hour');
    expect(described.text).toContain('EC2 dry run in eu-west-1: allowed');
    expect(described.text).toMatch(/Nothing was launched\.$/);
  });

  it('describeLaunchPlan: without credentials, an offline plan that says what it could not check', async () => {
    aws.sts.on(GetCallerIdentityCommand).rejects(awsError('CredentialsProviderError', 'Could not load credentials from any providers'));
    const described = await describeLaunchPlan({ ...spec, store: undefined }, { configPath: join(dir, 'none.json') });
    expect(described.credentials).toBe(false);
    expect(described.dryRun).toBeUndefined();
    expect(aws.ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
    expect(described.text).toContain('No AWS credentials found');
    expect(described.plan.problems.map((p) => p.message)).toEqual([
      'No store for the instances: set `store: s3://bucket/prefix` in the spec, or run `lockstep aws bootstrap`',
    ]);
  });

  it('`aws bootstrap --json` prints what it made; `aws doctor` prints the report and fails with AwsDoctorError on problems', async () => {
    fakeAccount(aws);
    const printed: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((text: string) => void printed.push(text));
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const configPath = join(dir, 'aws.json');
    await runCommand(awsCommand, { rawArgs: ['bootstrap', '--region', 'us-east-1,eu-west-1', '--config', configPath, '--json'] });
    const result = JSON.parse(printed.pop()!);
    expect(Object.keys(result.config.regions).sort()).toEqual(['eu-west-1', 'us-east-1']);

    aws.ec2.on(RunInstancesCommand).rejects(awsError('DryRunOperation', 'ok', 412));
    const specFile = join(dir, 'spec.yaml');
    writeFileSync(specFile, 'name: dkg\ninstances: 4\nrun: echo {{rank}}\nprovider:\n  kind: aws\n  regions: [us-east-1, eu-west-1]\n');
    await runCommand(awsCommand, { rawArgs: ['doctor', '--spec', specFile, '--config', configPath] });
    expect(printed.pop()).toContain('No problems found.');

    await expect(
      runCommand(awsCommand, { rawArgs: ['doctor', '--spec', specFile, '--set', 'instances=80', '--config', configPath] }),
    ).rejects.toBeInstanceOf(AwsDoctorError);
    expect(printed.pop()).toContain('FAIL  vcpu-quota (us-east-1): 40 × t3a.medium = 80 vCPUs, over the quota of 64');
  });

  it('`aws doctor --ami` refuses what is not an AMI id or an instance type, before any AWS call', async () => {
    const sts = aws.sts.on(GetCallerIdentityCommand).resolves({ Account: '123456789012', Arn: 'arn:aws:iam::123456789012:user/a' });
    await expect(runCommand(awsCommand, { rawArgs: ['doctor', '--ami', 'ubuntu-24.04'] })).rejects.toThrow(
      /--ami "ubuntu-24.04" is not an AMI id: give one like ami-0abcdef1234567890, or resolve:ssm:/,
    );
    await expect(runCommand(awsCommand, { rawArgs: ['doctor', '--ami', 'ami-0abcdef1234567890', '--instance-type', 'large'] })).rejects.toMatchObject({
      name: 'UsageError',
      message: '--instance-type "large" is not an instance type: give one like t3a.medium or t4g.small',
    });
    expect(sts.commandCalls(GetCallerIdentityCommand)).toHaveLength(0);
  });
});
