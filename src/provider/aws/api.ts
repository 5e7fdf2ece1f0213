/**
 * One helper per remote AWS call used by more than one module. Each names the API it calls, turns
 * "not found" into `undefined` where that is an answer rather than a failure, and reads every page
 * (a pagination loop that runs away stops with an error rather than return half a list).
 */
import {
  GetConsoleOutputCommand,
  DescribeImagesCommand,
  DescribeInstanceTypesCommand,
  DescribeVpcsCommand,
  paginateDescribeInstances,
  paginateDescribeSecurityGroups,
  paginateDescribeSubnets,
  TerminateInstancesCommand,
  type Filter,
  type Image,
  type Instance,
  type SecurityGroup,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, type InstanceProfile } from '@aws-sdk/client-iam';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { GetAWSDefaultServiceQuotaCommand, GetServiceQuotaCommand } from '@aws-sdk/client-service-quotas';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { AwsClients } from './clients.ts';
import { awsErrorCode, awsHttpStatus } from './errors.ts';

const MAX_PAGES = 1000;

export class PaginationError extends Error {
  override readonly name = 'PaginationError';
  constructor(readonly operation: string) {
    super(`${operation} returned more than ${MAX_PAGES} pages: narrow the request (fewer regions or runs)`);
  }
}

// --- STS ---------------------------------------------------------------------------------------

/** sts:GetCallerIdentity: who the credentials belong to. */
export async function getCallerIdentity(clients: AwsClients): Promise<{ account: string; arn: string }> {
  const out = await clients.sts().send(new GetCallerIdentityCommand({}));
  return { account: out.Account ?? '', arn: out.Arn ?? '' };
}

// --- SSM ---------------------------------------------------------------------------------------

/** ssm:GetParameter: a parameter's value, or `undefined` when there is no such parameter. */
export async function getSsmParameter(clients: AwsClients, region: string, name: string): Promise<string | undefined> {
  try {
    const out = await clients.ssm(region).send(new GetParameterCommand({ Name: name }));
    return out.Parameter?.Value;
  } catch (error) {
    if (awsErrorCode(error) === 'ParameterNotFound') return undefined;
    throw error;
  }
}

// --- Service Quotas ----------------------------------------------------------------------------

/** servicequotas:GetServiceQuota (falling back to the AWS default): an EC2 quota's value. */
export async function getEc2Quota(clients: AwsClients, region: string, quotaCode: string): Promise<number | undefined> {
  const input = { ServiceCode: 'ec2', QuotaCode: quotaCode };
  try {
    const out = await clients.quotas(region).send(new GetServiceQuotaCommand(input));
    return out.Quota?.Value;
  } catch (error) {
    if (awsErrorCode(error) !== 'NoSuchResourceException') throw error;
    const out = await clients.quotas(region).send(new GetAWSDefaultServiceQuotaCommand(input));
    return out.Quota?.Value;
  }
}

// --- EC2 ---------------------------------------------------------------------------------------

/** ec2:DescribeInstanceTypes: the default vCPU count of a type, or `undefined` if EC2 doesn't know it. */
export async function describeVcpus(clients: AwsClients, region: string, type: string): Promise<number | undefined> {
  try {
    const out = await clients.ec2(region).send(new DescribeInstanceTypesCommand({ InstanceTypes: [type as _InstanceType] }));
    return out.InstanceTypes?.[0]?.VCpuInfo?.DefaultVCpus;
  } catch (error) {
    if (awsErrorCode(error) === 'InvalidInstanceType') return undefined;
    throw error;
  }
}

export interface SubnetInfo {
  readonly subnetId: string;
  readonly zone: string;
  readonly vpcId: string;
}

/** ec2:DescribeSubnets (default-for-az): the default VPC's subnets, one per zone, sorted by zone. */
export async function describeDefaultSubnets(clients: AwsClients, region: string): Promise<SubnetInfo[]> {
  const pages = paginateDescribeSubnets(pager(clients, region), { Filters: [{ Name: 'default-for-az', Values: ['true'] }] });
  const subnets = await everyPage(pages, 'ec2:DescribeSubnets', (page) =>
    (page.Subnets ?? []).flatMap((s) => (s.SubnetId ? [{ subnetId: s.SubnetId, zone: s.AvailabilityZone ?? '', vpcId: s.VpcId ?? '' }] : [])),
  );
  return subnets.sort((a, b) => a.zone.localeCompare(b.zone));
}

/** ec2:DescribeVpcs (is-default): the default VPC's id, or `undefined` when the region has none. */
export async function describeDefaultVpc(clients: AwsClients, region: string): Promise<string | undefined> {
  const out = await clients.ec2(region).send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
  return out.Vpcs?.[0]?.VpcId;
}

/** ec2:DescribeSecurityGroups: groups matching `filters` (e.g. by name and VPC). */
export async function describeSecurityGroups(clients: AwsClients, region: string, filters: Filter[]): Promise<SecurityGroup[]> {
  const pages = paginateDescribeSecurityGroups(pager(clients, region), { Filters: filters });
  return await everyPage(pages, 'ec2:DescribeSecurityGroups', (page) => page.SecurityGroups ?? []);
}

/** ec2:DescribeInstances: every instance matching `filters`, all pages read. */
export async function describeInstances(clients: AwsClients, region: string, filters: Filter[]): Promise<Instance[]> {
  const pages = paginateDescribeInstances({ ...pager(clients, region), pageSize: 1000 }, { Filters: filters });
  return await everyPage(pages, 'ec2:DescribeInstances', (page) => (page.Reservations ?? []).flatMap((r) => r.Instances ?? []));
}

/** The SDK's paginators, stopping (rather than looping) when a service repeats a token. */
function pager(clients: AwsClients, region: string) {
  return { client: clients.ec2(region), stopOnSameToken: true };
}

/** Every item of every page; a runaway pagination stops with an error rather than return half a list. */
async function everyPage<P, T>(pages: AsyncIterable<P>, operation: string, items: (page: P) => readonly T[]): Promise<T[]> {
  const all: T[] = [];
  let count = 0;
  for await (const page of pages) {
    if (++count > MAX_PAGES) throw new PaginationError(operation);
    all.push(...items(page));
  }
  return all;
}

/** ec2:DescribeImages of one AMI: the image, or `undefined` when the region has no such AMI. */
export async function describeImage(clients: AwsClients, region: string, imageId: string): Promise<Image | undefined> {
  try {
    const out = await clients.ec2(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return out.Images?.find((i) => i.ImageId === imageId);
  } catch (error) {
    if (['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable', 'InvalidAMIID.Malformed'].includes(awsErrorCode(error))) return undefined;
    throw error;
  }
}

/** ec2:GetConsoleOutput: what the instance's serial console showed (boot messages, cloud-init's output), decoded. */
export async function getConsoleOutput(clients: AwsClients, region: string, instanceId: string): Promise<string | undefined> {
  const out = await clients.ec2(region).send(new GetConsoleOutputCommand({ InstanceId: instanceId }));
  return out.Output ? Buffer.from(out.Output, 'base64').toString('utf8') : undefined;
}

/** ec2:TerminateInstances for at most 1000 ids of one region. */
export async function terminateInstances(clients: AwsClients, region: string, instanceIds: readonly string[]): Promise<void> {
  await clients.ec2(region).send(new TerminateInstancesCommand({ InstanceIds: [...instanceIds] }));
}

// --- IAM ---------------------------------------------------------------------------------------

/** iam:GetInstanceProfile: the profile, or `undefined` when there is none of that name. */
export async function getInstanceProfile(clients: AwsClients, name: string): Promise<InstanceProfile | undefined> {
  try {
    return (await clients.iam().send(new GetInstanceProfileCommand({ InstanceProfileName: name }))).InstanceProfile;
  } catch (error) {
    if (awsErrorCode(error) === 'NoSuchEntity' || awsErrorCode(error) === 'NoSuchEntityException') return undefined;
    throw error;
  }
}

// --- S3 ----------------------------------------------------------------------------------------

export type BucketState = 'yours' | 'missing' | 'forbidden';

/**
 * s3:HeadBucket with `ExpectedBucketOwner`: `yours` (it exists and `account` owns it), `missing`,
 * or `forbidden` (someone else's bucket, or no permission to see it).
 */
export async function headBucket(clients: AwsClients, region: string, bucket: string, account: string): Promise<BucketState> {
  try {
    await clients.s3(region).send(new HeadBucketCommand({ Bucket: bucket, ExpectedBucketOwner: account || undefined }));
    return 'yours';
  } catch (error) {
    const code = awsErrorCode(error);
    const status = awsHttpStatus(error);
    if (code === 'NotFound' || code === 'NoSuchBucket' || status === 404) return 'missing';
    if (code === 'Forbidden' || code === 'AccessDenied' || status === 403) return 'forbidden';
    throw error;
  }
}
