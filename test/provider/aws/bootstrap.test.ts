import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
} from '@aws-sdk/client-ec2';
import { CreateRoleCommand, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { CreateBucketCommand, PutPublicAccessBlockCommand } from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bootstrapAws, formatBootstrap, storePolicy } from '../../../src/provider/aws/bootstrap.ts';
import { AwsClients } from '../../../src/provider/aws/clients.ts';
import { loadAwsConfig } from '../../../src/provider/aws/config.ts';
import { AwsSetupError } from '../../../src/provider/aws/errors.ts';
import { ACCOUNT, fakeAccount, MUTATING, type FakeAccount } from './fake-account.ts';
import { awsError, mockAws, useFakeCredentials, type AwsMocks } from './helpers.ts';

describe('lockstep aws bootstrap', () => {
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
    dir = mkdtempSync(join(tmpdir(), 'lockstep-bootstrap-'));
    configPath = join(dir, 'lockstep', 'aws.json');
  });
  afterEach(() => {
    clients.destroy();
    aws.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  const mutatingCalls = () =>
    [aws.s3, aws.iam, aws.ec2].flatMap((mock) => MUTATING.flatMap((command) => mock.commandCalls(command as never).map(() => command.name)));

  it('creates the bucket, role, instance profile and security groups, and saves what it made', async () => {
    const result = await bootstrapAws({ regions: ['us-east-1', 'eu-west-1'], sshCidr: '203.0.113.7/32', clients, configPath });
    expect(result.unchanged).toBe(false);
    const bucket = `lockstep-${ACCOUNT}-us-east-1`;
    expect(account.buckets.get(bucket)).toEqual({
      publicAccessBlock: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true },
      encryption: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' }, BucketKeyEnabled: true }] },
    });
    // us-east-1 takes no LocationConstraint.
    expect(aws.s3.commandCalls(CreateBucketCommand)[0]!.args[0].input.CreateBucketConfiguration).toBeUndefined();

    const trust = JSON.parse(aws.iam.commandCalls(CreateRoleCommand)[0]!.args[0].input.AssumeRolePolicyDocument!);
    expect(trust.Statement[0].Principal).toEqual({ Service: 'ec2.amazonaws.com' });
    const policy = JSON.parse(account.roles.get('lockstep-instance')!.policies.get('lockstep-store')!);
    expect(policy.Statement).toEqual([
      expect.objectContaining({ Resource: `arn:aws:s3:::${bucket}/lockstep/*`, Action: expect.arrayContaining(['s3:GetObject', 's3:PutObject']) }),
      expect.objectContaining({
        Action: 's3:ListBucket',
        Resource: `arn:aws:s3:::${bucket}`,
        Condition: { StringLike: { 's3:prefix': ['lockstep/*'] } },
      }),
    ]);
    expect(JSON.stringify(policy)).not.toMatch(/"Resource":"\*"|s3:\*/);
    expect(account.profiles.get('lockstep-instance')).toEqual({ roles: ['lockstep-instance'] });

    const groups = [...account.groups.values()];
    expect(groups.map((g) => [g.region, g.GroupName, g.VpcId])).toEqual(
      expect.arrayContaining([
        ['us-east-1', 'lockstep', 'vpc-us-east-1'],
        ['eu-west-1', 'lockstep', 'vpc-eu-west-1'],
      ]),
    );
    for (const g of groups) {
      expect(g.IpPermissions).toEqual([
        { IpProtocol: '-1', UserIdGroupPairs: [{ GroupId: g.GroupId, Description: 'lockstep: members reach each other' }] },
        { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '203.0.113.7/32', Description: 'lockstep: SSH' }] },
      ]);
    }

    const saved = await loadAwsConfig(configPath);
    expect(saved).toEqual(result.config);
    expect(saved).toMatchObject({
      account: ACCOUNT,
      bucket,
      store: `s3://${bucket}/lockstep?region=us-east-1`,
      instanceProfileName: 'lockstep-instance',
      regions: { 'us-east-1': { securityGroupId: expect.stringMatching(/^sg-/) }, 'eu-west-1': { securityGroupId: expect.stringMatching(/^sg-/) } },
    });
    expect(statSync(configPath).mode & 0o777).toBe(0o600);
    expect(formatBootstrap(result)).toContain(`Store: s3://${bucket}/lockstep?region=us-east-1`);
  });

  it('run twice, creates nothing the second time: it only describes', async () => {
    await bootstrapAws({ regions: ['us-east-1', 'eu-west-1'], sshCidr: '203.0.113.7/32', clients, configPath });
    const firstConfig = readFileSync(configPath, 'utf8');
    for (const mock of [aws.s3, aws.iam, aws.ec2, aws.sts]) mock.resetHistory();

    const second = await bootstrapAws({ regions: ['us-east-1', 'eu-west-1'], sshCidr: '203.0.113.7/32', clients, configPath });
    expect(mutatingCalls()).toEqual([]);
    expect(second.unchanged).toBe(true);
    expect(second.steps.every((s) => s.action === 'exists')).toBe(true);
    expect(readFileSync(configPath, 'utf8')).toBe(firstConfig);
    expect(aws.sts.commandCalls(GetCallerIdentityCommand)).toHaveLength(1);
    expect(formatBootstrap(second)).toMatch(/^Everything was already in place; nothing was created\./);

    // A later bootstrap of one more region adds only that region's group, keeping the others.
    const third = await bootstrapAws({ regions: ['ap-south-1'], clients, configPath });
    expect(mutatingCalls()).toEqual(['CreateSecurityGroupCommand', 'AuthorizeSecurityGroupIngressCommand']);
    expect(Object.keys(third.config.regions).sort()).toEqual(['ap-south-1', 'eu-west-1', 'us-east-1']);
  });

  it('repairs what is missing or different: public access, a changed policy', async () => {
    await bootstrapAws({ clients, configPath });
    const bucket = `lockstep-${ACCOUNT}-us-east-1`;
    account.buckets.get(bucket)!.publicAccessBlock = { BlockPublicAcls: false };
    account.roles.get('lockstep-instance')!.policies.set('lockstep-store', JSON.stringify(storePolicy('aws', bucket, 'other/')));
    for (const mock of [aws.s3, aws.iam, aws.ec2]) mock.resetHistory();
    const result = await bootstrapAws({ clients, configPath });
    expect(aws.s3.commandCalls(PutPublicAccessBlockCommand)).toHaveLength(1);
    expect(aws.iam.commandCalls(PutRolePolicyCommand)).toHaveLength(1);
    expect(result.steps.filter((s) => s.action === 'updated').map((s) => s.resource)).toEqual(['bucket-public-access-block', 'role-policy']);
    expect(aws.ec2.commandCalls(CreateSecurityGroupCommand)).toHaveLength(0);
    expect(aws.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(0);
  });

  it("says what to do about someone else's bucket name, bad input and missing credentials", async () => {
    aws.s3.on(CreateBucketCommand).rejects(awsError('BucketAlreadyExists', 'taken', 409));
    await expect(bootstrapAws({ clients, configPath })).rejects.toThrow(/taken by another account: choose another name \(`--bucket`\)/);
    await expect(bootstrapAws({ clients, configPath, bucket: 'Bad_Name' })).rejects.toThrow(AwsSetupError);
    await expect(bootstrapAws({ clients, configPath, sshCidr: '1.2.3.4' })).rejects.toThrow(/not an IPv4 CIDR/);
    aws.sts.on(GetCallerIdentityCommand).rejects(awsError('InvalidClientTokenId', 'bad token', 403));
    await expect(bootstrapAws({ clients, configPath })).rejects.toThrow(/No valid AWS credentials: configure them/);
  });
});
