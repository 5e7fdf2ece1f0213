import { z } from 'zod';
import { closestRegion, INSTANCE_TYPE, isKnownRegion } from './aws-catalogue.ts';

// Known regions are checked on the whole provider (below), so that the message names the region.
const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'Expected an AWS region such as `us-east-1`');
const perRegion = <T extends z.ZodType>(value: T) => z.record(region, value);

/** `provider: { kind: aws, … }`: EC2 instances in one or more regions. See docs/aws.md. */
export const awsProvider = z.strictObject({
  kind: z.literal('aws'),
  regions: z
    .union([z.array(region).min(1), perRegion(z.number().int().nonnegative())])
    .default(['us-east-1'])
    .describe('A list of regions to split `instances` over evenly, or explicit counts per region (they must add up to `instances`)'),
  instanceType: z
    .string()
    .regex(INSTANCE_TYPE, 'Expected an EC2 instance type such as `t3a.medium` (family, then a size: nano … 48xlarge, metal)')
    .default('t3a.medium'),
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
}).superRefine((spec, context) => {
  // Every region the spec names (regions, and the keys of per-region maps) must be one AWS has.
  const named: Array<[path: (string | number)[], region: string]> = Array.isArray(spec.regions)
    ? spec.regions.map((r, i) => [['regions', i], r])
    : Object.keys(spec.regions).map((r) => [['regions'], r]);
  for (const key of ['ami', 'subnets', 'securityGroups'] as const) {
    const value = spec[key];
    if (value && typeof value === 'object') for (const r of Object.keys(value)) named.push([[key], r]);
  }
  for (const [path, name] of named) {
    if (isKnownRegion(name)) continue;
    context.addIssue({
      code: 'custom',
      path: [...path],
      message: `Unknown AWS region \`${name}\`: did you mean \`${closestRegion(name)}\`?`,
      // The message names the value already (see describeIssue in load.ts).
      params: { namesValue: true },
    });
    return;
  }
});
