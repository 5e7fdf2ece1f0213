import { z } from 'zod';

const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'Expected an AWS region such as `us-east-1`');
const perRegion = <T extends z.ZodType>(value: T) => z.record(region, value);

/** `provider: { kind: aws, … }`: EC2 instances in one or more regions. See docs/aws.md. */
export const awsProvider = z.strictObject({
  kind: z.literal('aws'),
  regions: z
    .union([z.array(region).min(1), perRegion(z.number().int().nonnegative())])
    .default(['us-east-1'])
    .describe('A list of regions to split `instances` over evenly, or explicit counts per region (they must add up to `instances`)'),
  instanceType: z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'Expected an EC2 instance type such as `t3a.medium`').default('t3a.medium'),
  ami: z
    .union([z.string().min(1), perRegion(z.string().min(1))])
    .optional()
    .describe('An AMI id, or one per region; default: the latest Amazon Linux 2023 from the public SSM parameter'),
  spot: z.boolean().default(false).describe('Launch spot instances (one-time, terminated on interruption)'),
  subnets: perRegion(z.array(z.string().min(1)).min(1))
    .optional()
    .describe("Subnets to try per region, in order; default: the default VPC's subnets, one per zone"),
  securityGroups: perRegion(z.array(z.string().min(1)).min(1))
    .optional()
    .describe('Security group ids per region; default: the group `lockstep aws bootstrap` made, else the VPC default group'),
  iamInstanceProfile: z
    .string()
    .min(1)
    .optional()
    .describe('Instance profile name or ARN giving the agent access to the store; default: the one `lockstep aws bootstrap` made'),
  addresses: z
    .enum(['auto', 'private', 'public'])
    .default('auto')
    .describe('Addresses in the hosts file: `auto` = private in one region, public when the run spans regions'),
  allowSmaller: z
    .boolean()
    .default(false)
    .describe('When EC2 lacks capacity, go on with fewer instances (down to `minInstances`) instead of failing the launch'),
  keyName: z.string().optional().describe('An EC2 key pair for SSH access (optional)'),
  profile: z.string().optional().describe('The AWS profile to use on this machine'),
});
