import { editDistance } from '../util/edit-distance.ts';

/**
 * What the spec checks AWS names against before anything is launched: the regions lockstep knows
 * and the shape of an EC2 instance type. Pure data, no SDK: the spec loader imports it.
 *
 * A region AWS opens after this list was written is refused until it is added here (one line).
 */
export const AWS_REGIONS: readonly string[] = [
  'us-east-1',
  'us-east-2',
  'us-west-1',
  'us-west-2',
  'ca-central-1',
  'ca-west-1',
  'mx-central-1',
  'sa-east-1',
  'eu-central-1',
  'eu-central-2',
  'eu-west-1',
  'eu-west-2',
  'eu-west-3',
  'eu-south-1',
  'eu-south-2',
  'eu-north-1',
  'il-central-1',
  'me-south-1',
  'me-central-1',
  'af-south-1',
  'ap-east-1',
  'ap-east-2',
  'ap-south-1',
  'ap-south-2',
  'ap-southeast-1',
  'ap-southeast-2',
  'ap-southeast-3',
  'ap-southeast-4',
  'ap-southeast-5',
  'ap-southeast-6',
  'ap-southeast-7',
  'ap-northeast-1',
  'ap-northeast-2',
  'ap-northeast-3',
  'us-gov-east-1',
  'us-gov-west-1',
  'cn-north-1',
  'cn-northwest-1',
];

export function isKnownRegion(region: string): boolean {
  return AWS_REGIONS.includes(region);
}

/** The known region closest in spelling to `region`, for "did you mean" hints. */
export function closestRegion(region: string): string {
  let best = AWS_REGIONS[0]!;
  let bestDistance = Infinity;
  for (const candidate of AWS_REGIONS) {
    const distance = editDistance(candidate, region);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

/**
 * An EC2 instance type: a family with its generation digit and attribute letters, optionally
 * `-suffix` parts (`m7i-flex`, `mac2-m2pro`, `u-6tb1`), then a size (`nano` … `48xlarge`, `metal`,
 * `metal-24xl`). `t3a.medium`, `c7gn.16xlarge`, `u7i-12tb.224xlarge` pass; `t3a.gigantic` and
 * `large.t3` do not.
 */
export const INSTANCE_TYPE = /^(?:[a-z]+\d+[a-z0-9]*|u)(?:-[a-z0-9]+)*\.(?:nano|micro|small|medium|large|\d*xlarge|metal(?:-\d+xl)?)$/;
