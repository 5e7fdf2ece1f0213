/**
 * A tiny stateful stand-in for one AWS account behind aws-sdk-client-mock: what bootstrap creates
 * is there on the next describe. Only the calls bootstrap and doctor make.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  DescribeVpcsCommand,
  type AuthorizeSecurityGroupIngressCommandInput,
  type CreateSecurityGroupCommandInput,
  type DescribeSecurityGroupsCommandInput,
  type SecurityGroup,
} from '@aws-sdk/client-ec2';
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  PutRolePolicyCommand,
  type AddRoleToInstanceProfileCommandInput,
  type CreateInstanceProfileCommandInput,
  type CreateRoleCommandInput,
  type PutRolePolicyCommandInput,
} from '@aws-sdk/client-iam';
import {
  CreateBucketCommand,
  GetBucketEncryptionCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  PutBucketEncryptionCommand,
  PutPublicAccessBlockCommand,
  type CreateBucketCommandInput,
  type PutBucketEncryptionCommandInput,
  type PutPublicAccessBlockCommandInput,
} from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { awsError, type AwsMocks } from './helpers.ts';

export const ACCOUNT = '123456789012';

export interface FakeAccount {
  buckets: Map<string, { publicAccessBlock?: unknown; encryption?: unknown }>;
  roles: Map<string, { policies: Map<string, string> }>;
  profiles: Map<string, { roles: string[] }>;
  groups: Map<string, SecurityGroup & { region: string }>;
}

export function fakeAccount(aws: AwsMocks): FakeAccount {
  const account: FakeAccount = { buckets: new Map(), roles: new Map(), profiles: new Map(), groups: new Map() };
  let groupSerial = 0;
  const region = async (getClient: () => unknown) => (getClient() as { config: { region: () => Promise<string> } }).config.region();

  aws.sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: `arn:aws:iam::${ACCOUNT}:user/alice` });

  aws.s3.on(HeadBucketCommand).callsFake((input: { Bucket: string }) => {
    if (!account.buckets.has(input.Bucket)) throw awsError('NotFound', 'Not Found', 404);
    return {};
  });
  aws.s3.on(CreateBucketCommand).callsFake((input: CreateBucketCommandInput) => {
    account.buckets.set(input.Bucket!, {});
    return {};
  });
  aws.s3.on(GetPublicAccessBlockCommand).callsFake((input: { Bucket: string }) => {
    const block = account.buckets.get(input.Bucket)?.publicAccessBlock;
    if (!block) throw awsError('NoSuchPublicAccessBlockConfiguration', 'none', 404);
    return { PublicAccessBlockConfiguration: block };
  });
  aws.s3.on(PutPublicAccessBlockCommand).callsFake((input: PutPublicAccessBlockCommandInput) => {
    account.buckets.get(input.Bucket!)!.publicAccessBlock = input.PublicAccessBlockConfiguration;
    return {};
  });
  aws.s3.on(GetBucketEncryptionCommand).callsFake((input: { Bucket: string }) => {
    const encryption = account.buckets.get(input.Bucket)?.encryption;
    if (!encryption) throw awsError('ServerSideEncryptionConfigurationNotFoundError', 'none', 404);
    return { ServerSideEncryptionConfiguration: encryption };
  });
  aws.s3.on(PutBucketEncryptionCommand).callsFake((input: PutBucketEncryptionCommandInput) => {
    account.buckets.get(input.Bucket!)!.encryption = input.ServerSideEncryptionConfiguration;
    return {};
  });

  aws.iam.on(GetRoleCommand).callsFake((input: { RoleName: string }) => {
    if (!account.roles.has(input.RoleName)) throw awsError('NoSuchEntity', 'no role', 404);
    return { Role: { RoleName: input.RoleName, Arn: `arn:aws:iam::${ACCOUNT}:role/${input.RoleName}` } };
  });
  aws.iam.on(CreateRoleCommand).callsFake((input: CreateRoleCommandInput) => {
    account.roles.set(input.RoleName!, { policies: new Map() });
    return { Role: { RoleName: input.RoleName, Arn: `arn:aws:iam::${ACCOUNT}:role/${input.RoleName}` } };
  });
  aws.iam.on(GetRolePolicyCommand).callsFake((input: { RoleName: string; PolicyName: string }) => {
    const document = account.roles.get(input.RoleName)?.policies.get(input.PolicyName);
    if (!document) throw awsError('NoSuchEntity', 'no policy', 404);
    // IAM answers URL-encoded documents.
    return { RoleName: input.RoleName, PolicyName: input.PolicyName, PolicyDocument: encodeURIComponent(document) };
  });
  aws.iam.on(PutRolePolicyCommand).callsFake((input: PutRolePolicyCommandInput) => {
    account.roles.get(input.RoleName!)!.policies.set(input.PolicyName!, input.PolicyDocument!);
    return {};
  });
  aws.iam.on(GetInstanceProfileCommand).callsFake((input: { InstanceProfileName: string }) => {
    const profile = account.profiles.get(input.InstanceProfileName);
    if (!profile) throw awsError('NoSuchEntity', 'no profile', 404);
    return {
      InstanceProfile: {
        InstanceProfileName: input.InstanceProfileName,
        Arn: `arn:aws:iam::${ACCOUNT}:instance-profile/${input.InstanceProfileName}`,
        Roles: profile.roles.map((RoleName) => ({ RoleName })),
      },
    };
  });
  aws.iam.on(CreateInstanceProfileCommand).callsFake((input: CreateInstanceProfileCommandInput) => {
    account.profiles.set(input.InstanceProfileName!, { roles: [] });
    return {
      InstanceProfile: { InstanceProfileName: input.InstanceProfileName, Arn: `arn:aws:iam::${ACCOUNT}:instance-profile/${input.InstanceProfileName}`, Roles: [] },
    };
  });
  aws.iam.on(AddRoleToInstanceProfileCommand).callsFake((input: AddRoleToInstanceProfileCommandInput) => {
    account.profiles.get(input.InstanceProfileName!)!.roles.push(input.RoleName!);
    return {};
  });

  aws.ec2.on(DescribeVpcsCommand).callsFake(async (_input: unknown, getClient: () => unknown) => ({ Vpcs: [{ VpcId: `vpc-${await region(getClient)}` }] }));
  aws.ec2.on(DescribeSecurityGroupsCommand).callsFake(async (input: DescribeSecurityGroupsCommandInput, getClient: () => unknown) => {
    const where = await region(getClient);
    const value = (name: string) => input.Filters?.find((f) => f.Name === name)?.Values?.[0];
    const groups = [...account.groups.values()].filter(
      (g) =>
        g.region === where &&
        (value('group-name') === undefined || g.GroupName === value('group-name')) &&
        (value('vpc-id') === undefined || g.VpcId === value('vpc-id')) &&
        (value('group-id') === undefined || g.GroupId === value('group-id')),
    );
    return { SecurityGroups: groups };
  });
  aws.ec2.on(CreateSecurityGroupCommand).callsFake(async (input: CreateSecurityGroupCommandInput, getClient: () => unknown) => {
    const GroupId = `sg-${++groupSerial}`;
    account.groups.set(GroupId, { GroupId, GroupName: input.GroupName, VpcId: input.VpcId, IpPermissions: [], region: await region(getClient) });
    return { GroupId };
  });
  aws.ec2.on(AuthorizeSecurityGroupIngressCommand).callsFake((input: AuthorizeSecurityGroupIngressCommandInput) => {
    account.groups.get(input.GroupId!)!.IpPermissions!.push(...(input.IpPermissions ?? []));
    return {};
  });
  return account;
}

/** Names of the commands that create or change something. */
export const MUTATING = [
  CreateBucketCommand,
  PutPublicAccessBlockCommand,
  PutBucketEncryptionCommand,
  CreateRoleCommand,
  PutRolePolicyCommand,
  CreateInstanceProfileCommand,
  AddRoleToInstanceProfileCommand,
  CreateSecurityGroupCommand,
  AuthorizeSecurityGroupIngressCommand,
];
