/**
 * What can be learnt of a run's machine images before launch: that each AMI exists in its region
 * and is available, that its architecture is the instance type's, and whether it is a platform the
 * boot script runs on (Linux with bash; tested on Amazon Linux 2023, Ubuntu 22.04 and 24.04, Debian
 * 12). `lockstep aws doctor` and `lockstep run --dry-run` report it.
 */
import type { Image } from '@aws-sdk/client-ec2';
import { describeImage, getSsmParameter } from './api.ts';
import type { AwsClients } from './clients.ts';
import { describeAwsCall } from './errors.ts';

export interface ImageCheck {
  readonly region: string;
  readonly ami: string;
  readonly status: 'ok' | 'problem' | 'warning';
  readonly detail: string;
  readonly fix?: string;
}

/** Distributions the boot was tested on, by the AMI names their publishers use. */
const TESTED: ReadonlyArray<{ readonly name: string; readonly match: RegExp }> = [
  { name: 'Amazon Linux 2023', match: /^al2023-ami-|Amazon Linux 2023/i },
  { name: 'Ubuntu 24.04', match: /ubuntu-noble-24\.04|Ubuntu,? 24\.04/i },
  { name: 'Ubuntu 22.04', match: /ubuntu-jammy-22\.04|Ubuntu,? 22\.04/i },
  { name: 'Debian 12', match: /^debian-12-|Debian 12/i },
];

/** Linux images whose C library is older than official Node.js builds need (glibc 2.28). */
const TOO_OLD: ReadonlyArray<{ readonly name: string; readonly match: RegExp }> = [
  { name: 'Amazon Linux 2 (glibc 2.26)', match: /^amzn2-ami-|Amazon Linux 2 AMI/i },
  { name: 'the Amazon Linux AMI (2018)', match: /^amzn-ami-/i },
  { name: 'Ubuntu 18.04 or older', match: /ubuntu-(bionic|xenial|trusty)/i },
  { name: 'CentOS 7 / RHEL 7', match: /centos-?7|RHEL-7\./i },
];

const REQUIREMENTS =
  'the boot needs Linux with bash, curl or GNU wget, openssl, and either Node.js ≥ 20 or tar, gzip and glibc ≥ 2.28 (for the Node.js lockstep provides)';

/** The verdict on one image, once described (pure). */
export function judgeImage(region: string, ami: string, image: Image | undefined, fleet?: { readonly architecture: 'x86_64' | 'arm64'; readonly instanceType: string }): ImageCheck {
  const at = { region, ami };
  if (!image) {
    return {
      ...at,
      status: 'problem',
      detail: `No AMI ${ami} in ${region}`,
      fix: 'AMIs belong to one region: give this region its own (`provider.ami: { region: ami-… }`), or copy the image there',
    };
  }
  const name = `${image.Name ?? ''} ${image.Description ?? ''}`.trim();
  const label = `${ami} (${image.Name ?? 'no name'})`;
  if (image.State && image.State !== 'available') {
    return { ...at, status: 'problem', detail: `${label} is ${image.State}, not available`, fix: 'wait until it is available, or use another AMI' };
  }
  const imageArchitecture = image.Architecture === 'arm64' || image.Architecture === 'arm64_mac' ? 'arm64' : image.Architecture === 'x86_64' || image.Architecture === 'x86_64_mac' ? 'x86_64' : image.Architecture;
  if (fleet && imageArchitecture && imageArchitecture !== fleet.architecture) {
    return {
      ...at,
      status: 'problem',
      detail: `${label} is ${imageArchitecture}, but ${fleet.instanceType} is ${fleet.architecture}`,
      fix: fleet.architecture === 'arm64' ? 'use an arm64 AMI, or an x86_64 type (t3a, m7i, c7i, …)' : 'use an x86_64 AMI, or an arm64 (Graviton) type (t4g, m7g, c7g, …)',
    };
  }
  if (/windows/i.test(`${image.Platform ?? ''} ${image.PlatformDetails ?? ''}`)) {
    return { ...at, status: 'problem', detail: `${label} is Windows`, fix: 'use a Linux AMI: lockstep boots instances with a bash script' };
  }
  const tested = TESTED.find((d) => d.match.test(name));
  if (tested) return { ...at, status: 'ok', detail: `${label}: ${tested.name}, ${imageArchitecture ?? 'architecture not given'}` };
  const old = TOO_OLD.find((d) => d.match.test(name));
  if (old) {
    return {
      ...at,
      status: 'warning',
      detail: `${label} looks like ${old.name}: official Node.js builds do not run there`,
      fix: 'boots only if the image has Node.js ≥ 20 already; else use Amazon Linux 2023, Ubuntu 22.04+ or Debian 12',
    };
  }
  return { ...at, status: 'warning', detail: `${label} is not an image lockstep was tested on`, fix: `it may boot: ${REQUIREMENTS}` };
}

/**
 * Describes each (region, AMI) and judges it. `resolve:ssm:<parameter>` AMIs are looked up first;
 * an AMI EC2 could not be asked about is a warning that says why.
 */
export async function checkImages(
  clients: AwsClients,
  targets: ReadonlyArray<{ readonly region: string; readonly ami: string }>,
  /** The fleet's architecture and type, to check the images' against. */
  fleet?: { readonly architecture: 'x86_64' | 'arm64'; readonly instanceType: string },
): Promise<ImageCheck[]> {
  return Promise.all(
    targets.map(async ({ region, ami }): Promise<ImageCheck> => {
      try {
        let id = ami;
        if (ami.startsWith('resolve:ssm:')) {
          const parameter = ami.slice('resolve:ssm:'.length);
          const found = await getSsmParameter(clients, region, parameter);
          if (!found) return { region, ami, status: 'problem', detail: `SSM has no parameter ${parameter} in ${region}`, fix: 'check the parameter name, or give an AMI id' };
          id = found;
        }
        return judgeImage(region, id, await describeImage(clients, region, id), fleet);
      } catch (error) {
        return { region, ami, status: 'warning', detail: `${describeAwsCall('ec2:DescribeImages', error, region)}; the AMI was not checked`, fix: 'allow ec2:DescribeImages to have it checked' };
      }
    }),
  );
}
