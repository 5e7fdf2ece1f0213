/**
 * `lockstep aws bootstrap`: makes what the seed asked its users to make by hand, idempotently.
 *
 * - a private bucket for the store (public access blocked, default encryption);
 * - an IAM role and instance profile whose only permission is the bucket's lockstep prefix;
 * - per region, a security group whose members reach each other on every port, and optionally
 *   SSH from one CIDR;
 * - a config file that later runs read (`config.ts`).
 *
 * Every resource is looked up first and made only when missing, so a second run only describes.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  type IpPermission,
  type SecurityGroup,
} from '@aws-sdk/client-ec2';
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  PutRolePolicyCommand,
  type Role,
} from '@aws-sdk/client-iam';
import {
  CreateBucketCommand,
  GetBucketEncryptionCommand,
  GetPublicAccessBlockCommand,
  PutBucketEncryptionCommand,
  PutPublicAccessBlockCommand,
  type BucketLocationConstraint,
  type PublicAccessBlockConfiguration,
} from '@aws-sdk/client-s3';
import { describeDefaultVpc, describeSecurityGroups, getCallerIdentity, getInstanceProfile, headBucket } from './api.ts';
import { isBucketName, trimPrefix } from '../../store/s3-locator.ts';
import { AwsClients } from './clients.ts';
import { defaultAwsConfigPath, loadAwsConfig, saveAwsConfig, type AwsConfig, type AwsRegionConfig } from './config.ts';
import { AwsApiError, AwsSetupError, awsErrorCode, awsHttpStatus, isCredentialsError } from './errors.ts';

export const DEFAULTS = {
  prefix: 'lockstep/',
  roleName: 'lockstep-instance',
  securityGroupName: 'lockstep',
  policyName: 'lockstep-store',
} as const;

export interface BootstrapOptions {
  /** Regions that get a security group. Default: the bucket's region. */
  readonly regions?: readonly string[];
  /** Bucket name. Default: the saved config's, else `lockstep-<account>-<bucketRegion>`. */
  readonly bucket?: string;
  /** Region of the bucket. Default: the saved config's, else the first of `regions`, else `us-east-1`. */
  readonly bucketRegion?: string;
  /** Key prefix of the store in the bucket; the role reaches only this. Default `lockstep/`. */
  readonly prefix?: string;
  /** IAM role and instance profile name. Default `lockstep-instance`. */
  readonly roleName?: string;
  /** Security group name (one per region). Default `lockstep`. */
  readonly securityGroupName?: string;
  /** Admit SSH (port 22) from this CIDR, e.g. `203.0.113.7/32`. Default: no SSH rule. */
  readonly sshCidr?: string;
  /** The VPC of a region's security group. Default: the region's default VPC. */
  readonly vpcIds?: Readonly<Record<string, string>>;
  readonly profile?: string;
  /** Where the config is written. Default: `defaultAwsConfigPath()`. */
  readonly configPath?: string;
  /** SDK clients to use (tests); default: made and destroyed here. */
  readonly clients?: AwsClients;
  readonly onProgress?: (message: string) => void;
}

export type StepAction = 'created' | 'updated' | 'exists';

export interface BootstrapStep {
  readonly resource: 'bucket' | 'bucket-public-access-block' | 'bucket-encryption' | 'role' | 'role-policy' | 'instance-profile' | 'instance-profile-role' | 'security-group' | 'security-group-rules' | 'config-file';
  readonly id: string;
  readonly region?: string;
  readonly action: StepAction;
}

export interface BootstrapResult {
  readonly config: AwsConfig;
  readonly configPath: string;
  readonly steps: readonly BootstrapStep[];
  /** True when nothing was created or changed. */
  readonly unchanged: boolean;
}

const TAGS = [{ Key: 'lockstep:managed-by', Value: 'lockstep aws bootstrap' }];

export async function bootstrapAws(options: BootstrapOptions = {}): Promise<BootstrapResult> {
  const clients = options.clients ?? new AwsClients({ profile: options.profile });
  try {
    return await bootstrap(clients, options);
  } finally {
    if (!options.clients) clients.destroy();
  }
}

async function bootstrap(clients: AwsClients, options: BootstrapOptions): Promise<BootstrapResult> {
  const progress = options.onProgress ?? (() => {});
  const configPath = options.configPath ?? defaultAwsConfigPath();
  const identity = await getCallerIdentity(clients).catch((error: unknown) => {
    throw credentialsProblem(error);
  });
  const partition = identity.arn.split(':')[1] || 'aws';
  const saved = await loadAwsConfig(configPath);
  const previous = saved?.account === identity.account ? saved : undefined;
  if (saved && !previous) progress(`${configPath} was made for account ${saved.account}; this is ${identity.account}: starting afresh`);

  const bucketRegion = options.bucketRegion ?? previous?.bucketRegion ?? options.regions?.[0] ?? 'us-east-1';
  const bucket = options.bucket ?? previous?.bucket ?? `lockstep-${identity.account}-${bucketRegion}`;
  const prefix = trimPrefix(options.prefix ?? previous?.prefix ?? DEFAULTS.prefix);
  const roleName = options.roleName ?? previous?.roleName ?? DEFAULTS.roleName;
  const securityGroupName = options.securityGroupName ?? previous?.securityGroupName ?? DEFAULTS.securityGroupName;
  const regions = options.regions?.length ? [...new Set(options.regions)] : [bucketRegion];
  checkInputs(bucket, prefix, options.sshCidr);

  const steps: BootstrapStep[] = [];
  const step = (s: BootstrapStep) => {
    steps.push(s);
    progress(`${s.action.padEnd(7)} ${s.resource} ${s.id}${s.region ? ` (${s.region})` : ''}`);
  };

  await ensureBucket(clients, bucket, bucketRegion, identity.account, step);
  const role = await ensureRole(clients, roleName, step);
  await ensureRolePolicy(clients, roleName, storePolicy(partition, bucket, prefix), step);
  const profile = await ensureInstanceProfile(clients, roleName, step);
  const regionConfigs = Object.fromEntries(
    await Promise.all(
      regions.map(async (region) => {
        const vpcId = options.vpcIds?.[region] ?? (await describeDefaultVpc(clients, region));
        if (!vpcId) {
          throw new AwsSetupError(
            'The region has no default VPC for the security group',
            `pass its VPC (\`--vpc ${region}=vpc-…\`), or create a default VPC (\`aws ec2 create-default-vpc --region ${region}\`)`,
            { region },
          );
        }
        const securityGroupId = await ensureSecurityGroup(clients, region, vpcId, securityGroupName, options.sshCidr, step);
        const entry: AwsRegionConfig = { vpcId, securityGroupId, ...(options.sshCidr ? { sshCidr: options.sshCidr } : {}) };
        return [region, entry] as const;
      }),
    ),
  );

  const config: AwsConfig = {
    formatVersion: 1,
    account: identity.account,
    bucket,
    bucketRegion,
    prefix,
    store: `s3://${bucket}/${prefix.replace(/\/$/, '')}?region=${bucketRegion}`,
    roleName,
    roleArn: role?.Arn ?? `arn:${partition}:iam::${identity.account}:role/${roleName}`,
    instanceProfileName: roleName,
    instanceProfileArn: profile || `arn:${partition}:iam::${identity.account}:instance-profile/${roleName}`,
    securityGroupName,
    regions: { ...(previous?.regions ?? {}), ...regionConfigs },
  };
  if (JSON.stringify(config) !== JSON.stringify(saved)) {
    await saveAwsConfig(configPath, config);
    step({ resource: 'config-file', id: configPath, action: saved ? 'updated' : 'created' });
  } else {
    step({ resource: 'config-file', id: configPath, action: 'exists' });
  }
  return { config, configPath, steps, unchanged: steps.every((s) => s.action === 'exists') };
}

/** The role's only permission: objects under the prefix, and listing keys under it. */
export function storePolicy(partition: string, bucket: string, prefix: string): object {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'LockstepObjects',
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: `arn:${partition}:s3:::${bucket}/${prefix}*`,
      },
      {
        Sid: 'LockstepList',
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: `arn:${partition}:s3:::${bucket}`,
        Condition: { StringLike: { 's3:prefix': [`${prefix}*`] } },
      },
    ],
  };
}

export const TRUST_POLICY = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
};

function checkInputs(bucket: string, prefix: string, sshCidr: string | undefined): void {
  if (!isBucketName(bucket)) {
    throw new AwsSetupError(
      `\`${bucket}\` is not a valid bucket name`,
      'use 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit',
    );
  }
  if (prefix === '') throw new AwsSetupError('The store prefix is empty', 'give a prefix such as `lockstep/`: the role reaches only keys under it');
  if (!/^[A-Za-z0-9!_.*'()\/-]+$/.test(prefix)) {
    throw new AwsSetupError(`\`${prefix}\` is not a plain key prefix`, 'use letters, digits and `/ ! _ . * \' ( ) -`');
  }
  if (sshCidr !== undefined && !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(sshCidr)) {
    throw new AwsSetupError(`\`${sshCidr}\` is not an IPv4 CIDR`, 'give your address as e.g. `203.0.113.7/32`');
  }
}

function credentialsProblem(error: unknown): Error {
  if (isCredentialsError(error)) {
    return new AwsSetupError('No valid AWS credentials', 'configure them (`aws configure`, `aws sso login`, or `--profile name`)', { cause: error });
  }
  return new AwsApiError('sts:GetCallerIdentity', awsErrorCode(error), undefined, 'check the network and the credentials', { cause: error });
}

// --- bucket --------------------------------------------------------------------------------------

const BLOCK_ALL: PublicAccessBlockConfiguration = {
  BlockPublicAcls: true,
  IgnorePublicAcls: true,
  BlockPublicPolicy: true,
  RestrictPublicBuckets: true,
};

async function ensureBucket(clients: AwsClients, bucket: string, region: string, account: string, step: (s: BootstrapStep) => void): Promise<void> {
  const s3 = clients.s3(region);
  let state;
  try {
    state = await headBucket(clients, region, bucket, account);
  } catch (error) {
    if (awsHttpStatus(error) === 301) {
      throw new AwsSetupError(`Bucket ${bucket} is in another region than ${region}`, 'pass its region (`--bucket-region`)', { cause: error });
    }
    throw new AwsApiError('s3:HeadBucket', awsErrorCode(error), region, 'check the credentials with `lockstep aws doctor`', { cause: error });
  }
  if (state === 'forbidden') {
    throw new AwsSetupError(`Bucket ${bucket} belongs to someone else, or you may not see it`, 'choose another name (`--bucket`)');
  }
  if (state === 'missing') {
    try {
      await s3.send(
        new CreateBucketCommand({
          Bucket: bucket,
          ObjectOwnership: 'BucketOwnerEnforced',
          ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }),
        }),
      );
    } catch (error) {
      const code = awsErrorCode(error);
      if (code === 'BucketAlreadyExists') throw new AwsSetupError(`Bucket name ${bucket} is taken by another account`, 'choose another name (`--bucket`)');
      if (code !== 'BucketAlreadyOwnedByYou') throw new AwsApiError('s3:CreateBucket', code, region, 'check that you may create buckets (s3:CreateBucket)', { cause: error });
    }
    step({ resource: 'bucket', id: bucket, region, action: 'created' });
  } else {
    step({ resource: 'bucket', id: bucket, region, action: 'exists' });
  }

  // Public access blocked, all four switches.
  let block: PublicAccessBlockConfiguration | undefined;
  if (state === 'yours') {
    try {
      block = (await s3.send(new GetPublicAccessBlockCommand({ Bucket: bucket, ExpectedBucketOwner: account }))).PublicAccessBlockConfiguration;
    } catch (error) {
      if (awsErrorCode(error) !== 'NoSuchPublicAccessBlockConfiguration') throw error;
    }
  }
  if (block && Object.entries(BLOCK_ALL).every(([k, v]) => block[k as keyof PublicAccessBlockConfiguration] === v)) {
    step({ resource: 'bucket-public-access-block', id: bucket, region, action: 'exists' });
  } else {
    await s3.send(new PutPublicAccessBlockCommand({ Bucket: bucket, ExpectedBucketOwner: account, PublicAccessBlockConfiguration: BLOCK_ALL }));
    step({ resource: 'bucket-public-access-block', id: bucket, region, action: state === 'missing' ? 'created' : 'updated' });
  }

  // Default encryption (SSE-S3 unless the owner chose KMS).
  let encrypted = false;
  if (state === 'yours') {
    try {
      const out = await s3.send(new GetBucketEncryptionCommand({ Bucket: bucket, ExpectedBucketOwner: account }));
      encrypted = (out.ServerSideEncryptionConfiguration?.Rules ?? []).some((r) => r.ApplyServerSideEncryptionByDefault?.SSEAlgorithm);
    } catch (error) {
      if (awsErrorCode(error) !== 'ServerSideEncryptionConfigurationNotFoundError') throw error;
    }
  }
  if (encrypted) {
    step({ resource: 'bucket-encryption', id: bucket, region, action: 'exists' });
  } else {
    await s3.send(
      new PutBucketEncryptionCommand({
        Bucket: bucket,
        ExpectedBucketOwner: account,
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' }, BucketKeyEnabled: true }] },
      }),
    );
    step({ resource: 'bucket-encryption', id: bucket, region, action: state === 'missing' ? 'created' : 'updated' });
  }
}

// --- IAM -----------------------------------------------------------------------------------------

function isNoSuchEntity(error: unknown): boolean {
  const code = awsErrorCode(error);
  return code === 'NoSuchEntity' || code === 'NoSuchEntityException';
}

async function ensureRole(clients: AwsClients, roleName: string, step: (s: BootstrapStep) => void): Promise<Role | undefined> {
  const iam = clients.iam();
  try {
    const role = (await iam.send(new GetRoleCommand({ RoleName: roleName }))).Role;
    if (role) {
      step({ resource: 'role', id: roleName, action: 'exists' });
      return role;
    }
  } catch (error) {
    if (!isNoSuchEntity(error)) throw iamError('iam:GetRole', error);
  }
  try {
    const role = (
      await iam.send(
        new CreateRoleCommand({
          RoleName: roleName,
          AssumeRolePolicyDocument: JSON.stringify(TRUST_POLICY),
          Description: 'lockstep agents on EC2: read and write the lockstep store prefix, nothing else',
          Tags: TAGS,
        }),
      )
    ).Role;
    step({ resource: 'role', id: roleName, action: 'created' });
    return role;
  } catch (error) {
    throw iamError('iam:CreateRole', error);
  }
}

async function ensureRolePolicy(clients: AwsClients, roleName: string, policy: object, step: (s: BootstrapStep) => void): Promise<void> {
  const iam = clients.iam();
  let current: unknown;
  try {
    const out = await iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: DEFAULTS.policyName }));
    current = out.PolicyDocument ? JSON.parse(decodeURIComponent(out.PolicyDocument)) : undefined;
  } catch (error) {
    if (!isNoSuchEntity(error)) throw iamError('iam:GetRolePolicy', error);
  }
  const id = `${roleName}/${DEFAULTS.policyName}`;
  if (current !== undefined && JSON.stringify(current) === JSON.stringify(policy)) {
    step({ resource: 'role-policy', id, action: 'exists' });
    return;
  }
  try {
    await iam.send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: DEFAULTS.policyName, PolicyDocument: JSON.stringify(policy) }));
  } catch (error) {
    throw iamError('iam:PutRolePolicy', error);
  }
  step({ resource: 'role-policy', id, action: current === undefined ? 'created' : 'updated' });
}

/** Returns the instance profile's ARN. */
async function ensureInstanceProfile(clients: AwsClients, name: string, step: (s: BootstrapStep) => void): Promise<string> {
  const iam = clients.iam();
  let profile = await getInstanceProfile(clients, name).catch((error: unknown) => {
    throw iamError('iam:GetInstanceProfile', error);
  });
  if (profile) {
    step({ resource: 'instance-profile', id: name, action: 'exists' });
  } else {
    try {
      profile = (await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: name, Tags: TAGS }))).InstanceProfile;
    } catch (error) {
      throw iamError('iam:CreateInstanceProfile', error);
    }
    step({ resource: 'instance-profile', id: name, action: 'created' });
  }
  if ((profile?.Roles ?? []).some((r) => r.RoleName === name)) {
    step({ resource: 'instance-profile-role', id: `${name}/${name}`, action: 'exists' });
  } else {
    try {
      await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: name }));
    } catch (error) {
      throw iamError('iam:AddRoleToInstanceProfile', error);
    }
    step({ resource: 'instance-profile-role', id: `${name}/${name}`, action: 'created' });
  }
  return profile?.Arn ?? '';
}

function iamError(operation: string, error: unknown): Error {
  const code = awsErrorCode(error);
  const fix =
    code === 'AccessDenied' || code === 'AccessDeniedException'
      ? `your credentials may not call ${operation}: bootstrap once with an administrator profile (\`--profile\`)`
      : 'run `lockstep aws doctor`';
  return new AwsApiError(operation, code, undefined, fix, { cause: error });
}

// --- security groups -----------------------------------------------------------------------------

async function ensureSecurityGroup(
  clients: AwsClients,
  region: string,
  vpcId: string,
  name: string,
  sshCidr: string | undefined,
  step: (s: BootstrapStep) => void,
): Promise<string> {
  const ec2 = clients.ec2(region);
  const existing = await describeSecurityGroups(clients, region, [
    { Name: 'group-name', Values: [name] },
    { Name: 'vpc-id', Values: [vpcId] },
  ]);
  let group: SecurityGroup | undefined = existing[0];
  let groupId = group?.GroupId;
  if (groupId) {
    step({ resource: 'security-group', id: groupId, region, action: 'exists' });
  } else {
    const out = await ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: name,
        Description: 'lockstep instances: members reach each other on every port',
        VpcId: vpcId,
        TagSpecifications: [{ ResourceType: 'security-group', Tags: [...TAGS, { Key: 'Name', Value: name }] }],
      }),
    );
    groupId = out.GroupId;
    if (!groupId) throw new AwsApiError('ec2:CreateSecurityGroup', 'NoGroupId', region, 'run bootstrap again');
    group = { GroupId: groupId, IpPermissions: [] };
    step({ resource: 'security-group', id: groupId, region, action: 'created' });
  }
  const missing = missingRules(group!, groupId, sshCidr);
  if (missing.length === 0) {
    step({ resource: 'security-group-rules', id: groupId, region, action: 'exists' });
  } else {
    try {
      await ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: missing }));
    } catch (error) {
      if (awsErrorCode(error) !== 'InvalidPermission.Duplicate') throw error;
    }
    step({ resource: 'security-group-rules', id: groupId, region, action: existing.length ? 'updated' : 'created' });
  }
  return groupId;
}

/** The ingress rules the group lacks: all traffic from itself, and SSH from `sshCidr`. */
export function missingRules(group: SecurityGroup, groupId: string, sshCidr: string | undefined): IpPermission[] {
  const rules = group.IpPermissions ?? [];
  const missing: IpPermission[] = [];
  const selfRule = rules.some((r) => r.IpProtocol === '-1' && (r.UserIdGroupPairs ?? []).some((p) => p.GroupId === groupId));
  if (!selfRule) {
    missing.push({ IpProtocol: '-1', UserIdGroupPairs: [{ GroupId: groupId, Description: 'lockstep: members reach each other' }] });
  }
  if (sshCidr) {
    const sshRule = rules.some(
      (r) =>
        (r.IpProtocol === '-1' || (r.IpProtocol === 'tcp' && (r.FromPort ?? 0) <= 22 && (r.ToPort ?? 0) >= 22)) &&
        (r.IpRanges ?? []).some((range) => range.CidrIp === sshCidr),
    );
    if (!sshRule) missing.push({ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: sshCidr, Description: 'lockstep: SSH' }] });
  }
  return missing;
}

/** The result as text for people. */
export function formatBootstrap(result: BootstrapResult): string {
  const lines = result.steps.map((s) => `  ${s.action.padEnd(7)}  ${s.resource.padEnd(26)}  ${s.id}${s.region ? `  (${s.region})` : ''}`);
  const head = result.unchanged ? 'Everything was already in place; nothing was created.' : 'AWS is set up for lockstep.';
  return [
    head,
    ...lines,
    `Store: ${result.config.store}`,
    `Saved to ${result.configPath}. Next: \`lockstep aws doctor\`, then a spec with \`provider: { kind: aws }\`.`,
  ].join('\n');
}
