import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeImagesCommand, DescribeSubnetsCommand, RunInstancesCommand, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { GetServiceQuotaCommand } from '@aws-sdk/client-service-quotas';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bootstrapAws } from '../../../src/provider/aws/bootstrap.ts';
import { AwsClients } from '../../../src/provider/aws/clients.ts';
import { AwsDoctorError, formatDoctorReport, runAwsDoctor } from '../../../src/provider/aws/doctor.ts';
import { ACCOUNT, fakeAccount, type FakeAccount } from './fake-account.ts';
import { awsError, awsSpec, mockAws, useFakeCredentials, type AwsMocks } from './helpers.ts';

describe('lockstep aws doctor', () => {
  let aws: AwsMocks;
  let account: FakeAccount;
  let clients: AwsClients;
  let dir: string;
  let configPath: string;
  let restoreEnv: () => void;
  beforeAll(() => (restoreEnv = useFakeCredentials()));
  afterAll(() => restoreEnv());
  beforeEach(() => {
    aws = mockAws();
    account = fakeAccount(aws);
    clients = new AwsClients();
    dir = mkdtempSync(join(tmpdir(), 'lockstep-doctor-'));
    configPath = join(dir, 'aws.json');
    aws.quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 32 } });
    aws.ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'ami-al2023' } });
    aws.ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-al2023', Name: 'al2023-ami-2023.9.20251101.0-kernel-6.1-x86_64', Architecture: 'x86_64', State: 'available' }] });
    aws.ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [{ SubnetId: 'subnet-a', AvailabilityZone: 'zone-a', VpcId: 'vpc-1' }] });
    aws.ec2.on(RunInstancesCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412));
  });
  afterEach(() => {
    clients.destroy();
    aws.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  const problems = (checks: readonly { check: string; status: string; fix?: string; region?: string }[]) =>
    checks.filter((c) => c.status === 'problem').map((c) => `${c.check}${c.region ? `@${c.region}` : ''}: ${c.fix}`);

  it('finds nothing wrong after bootstrap, and checks the planned fleet against quota and EC2 dry run', async () => {
    await bootstrapAws({ regions: ['us-east-1', 'eu-west-1'], clients, configPath });
    const report = await runAwsDoctor({
      clients,
      configPath,
      plan: { spec: awsSpec({ regions: ['us-east-1', 'eu-west-1'], securityGroups: { 'us-east-1': ['sg-1'], 'eu-west-1': ['sg-2'] } }), instances: 10 },
    });
    expect(problems(report.checks)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.account).toBe(ACCOUNT);
    const text = formatDoctorReport(report);
    expect(text).toMatch(/ok\s+vcpu-quota \(us-east-1\): 5 × t3a.medium = 10 vCPUs, quota 32 \(L-1216C47A/);
    expect(text).toMatch(/ok\s+dry-run \(eu-west-1\): EC2 would allow the launch/);
    expect(text).toContain('No problems found.');
    const dryRuns = aws.ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input as RunInstancesCommandInput);
    expect(dryRuns.every((i) => i.DryRun === true)).toBe(true);
  });

  it('reports each missing piece with its fix', async () => {
    await bootstrapAws({ regions: ['us-east-1'], clients, configPath });
    account.buckets.clear();
    account.profiles.clear();
    account.groups.clear();
    aws.quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 8 } });
    aws.ec2.on(RunInstancesCommand).rejects(awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403));
    const report = await runAwsDoctor({
      clients,
      configPath,
      plan: { spec: awsSpec({ regions: ['us-east-1', 'eu-west-1'], instanceType: 't3a.xlarge' }), instances: 6 },
    });
    expect(report.ok).toBe(false);
    expect(problems(report.checks)).toEqual([
      'bucket@us-east-1: run `lockstep aws bootstrap`',
      'instance-profile: run `lockstep aws bootstrap`',
      'security-group@us-east-1: run `lockstep aws bootstrap --region us-east-1`',
      'vcpu-quota@us-east-1: request an increase to at least 12 vCPUs (Service Quotas → Amazon EC2 → L-1216C47A), or plan fewer instances or a smaller type here',
      'security-group@eu-west-1: run `lockstep aws bootstrap --region eu-west-1`',
      'vcpu-quota@eu-west-1: request an increase to at least 12 vCPUs (Service Quotas → Amazon EC2 → L-1216C47A), or plan fewer instances or a smaller type here',
      'dry-run@us-east-1: use credentials that may call ec2:RunInstances, ec2:CreateTags and iam:PassRole on the lockstep role',
      'dry-run@eu-west-1: use credentials that may call ec2:RunInstances, ec2:CreateTags and iam:PassRole on the lockstep role',
    ]);
    const text = formatDoctorReport(report);
    expect(text).toContain('FAIL  vcpu-quota (us-east-1): 3 × t3a.xlarge = 12 vCPUs, over the quota of 8 (L-1216C47A)');
    expect(text).toContain('8 problems found.');
    expect(new AwsDoctorError(report).message).toMatch(/^8 problems found: run `lockstep aws bootstrap`; /);
  });

  it('without a bootstrap config says to run bootstrap; without credentials says to configure them and stops', async () => {
    const report = await runAwsDoctor({ clients, configPath, regions: ['us-east-1'] });
    expect(problems(report.checks)).toEqual(['config: run `lockstep aws bootstrap`']);
    expect(report.checks.find((c) => c.check === 'vcpu-quota')).toMatchObject({ status: 'ok', detail: expect.stringContaining('32 vCPUs') });

    aws.sts.on(GetCallerIdentityCommand).rejects(awsError('ExpiredToken', 'The security token included in the request is expired', 403));
    const noCredentials = await runAwsDoctor({ clients, configPath });
    expect(noCredentials.checks).toEqual([
      expect.objectContaining({ check: 'credentials', status: 'problem', fix: expect.stringMatching(/aws configure/) }),
    ]);
  });
});
