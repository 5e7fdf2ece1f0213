/**
 * Machine images of the emulated cloud: which commands an image has. A machine booted from an
 * image sees only those commands on its PATH (taken from this machine), plus stand-ins for what
 * cannot run here (a package manager with no repositories, the AWS CLI) that record every call and
 * fail, so that a test can check the boot used none of them.
 */
import { DescribeImagesCommand, RegisterImageCommand } from '@aws-sdk/client-ec2';
import type { Moto } from './moto.ts';

export interface ImageProfile {
  /** Short name for test output, e.g. `al2023`. */
  readonly name: string;
  /** The AMI's name and description, as EC2 would list them (`lockstep aws doctor --ami` reads them). */
  readonly amiName: string;
  readonly description: string;
  readonly architecture: 'x86_64' | 'arm64';
  /** Commands on the image's PATH. */
  readonly commands: readonly string[];
  /** A package manager that records what is asked of it and fails (there are no repositories here). */
  readonly packageManager?: 'dnf' | 'apt-get';
  /** The AWS CLI, as a stand-in that records its calls and fails. */
  readonly awsCli?: boolean;
  /** Node.js on the PATH (this machine's, ≥ 20). */
  readonly node?: boolean;
  /** False: the image never runs its user-data (a broken cloud-init). Default true. */
  readonly runsUserData?: boolean;
}

/** What every Linux image has: a shell and coreutils. */
export const BASE_COMMANDS = [
  'bash', 'sh', 'cat', 'chmod', 'cp', 'cut', 'date', 'dirname', 'basename', 'env', 'grep', 'head', 'id', 'kill', 'ln', 'ls', 'mkdir',
  'mktemp', 'mv', 'printf', 'ps', 'readlink', 'rm', 'rmdir', 'sed', 'sleep', 'sort', 'stat', 'tail', 'tee', 'touch', 'tr', 'true',
  'false', 'uname', 'wc', 'xargs', 'awk', 'find', 'sha256sum', 'hostname',
] as const;

const FETCH = ['curl', 'openssl', 'tar', 'gzip'] as const;

export const IMAGES = {
  /** Amazon Linux 2023 as AWS publishes it: dnf, the AWS CLI, curl, no Node.js. */
  al2023: {
    name: 'al2023',
    amiName: 'al2023-ami-2023.9.20261201.0-kernel-6.1-x86_64',
    description: 'Amazon Linux 2023 AMI 2023.9.20261201.0 x86_64 HVM kernel-6.1',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, ...FETCH],
    packageManager: 'dnf',
    awsCli: true,
  },
  al2023Arm: {
    name: 'al2023-arm64',
    amiName: 'al2023-ami-2023.9.20261201.0-kernel-6.1-arm64',
    description: 'Amazon Linux 2023 AMI 2023.9.20261201.0 arm64 HVM kernel-6.1',
    architecture: 'arm64',
    commands: [...BASE_COMMANDS, ...FETCH],
    packageManager: 'dnf',
    awsCli: true,
  },
  /** Ubuntu 24.04 as Canonical publishes it: apt-get, curl and wget, no AWS CLI, no Node.js. */
  ubuntu2404: {
    name: 'ubuntu-24.04',
    amiName: 'ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261120',
    description: 'Canonical, Ubuntu, 24.04, amd64 noble image',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, ...FETCH, 'wget'],
    packageManager: 'apt-get',
  },
  /** Debian 12 with wget and no curl: the boot's second way to reach the store. */
  debian12Wget: {
    name: 'debian-12-wget',
    amiName: 'debian-12-amd64-20261115-2300',
    description: 'Debian 12 (20261115-2300)',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, 'wget', 'openssl', 'tar', 'gzip'],
    packageManager: 'apt-get',
  },
  /** A team's own image with Node.js already there: the boot installs nothing. */
  withNode: {
    name: 'with-node',
    amiName: 'research-team-node-24-20261101',
    description: 'Ubuntu 24.04 with Node.js preinstalled',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, ...FETCH],
    packageManager: 'apt-get',
    node: true,
  },
  /** No dnf, yum or apt-get at all: lockstep's boot needs none. */
  noPackageManager: {
    name: 'no-package-manager',
    amiName: 'minimal-linux-20261101',
    description: 'A minimal Linux without a package manager',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, ...FETCH],
  },
  /** Cannot unpack Node.js: the boot's Node.js step fails. */
  noTar: {
    name: 'no-tar',
    amiName: 'stripped-linux-20261101',
    description: 'A stripped Linux without tar and gzip',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, 'curl', 'openssl'],
    packageManager: 'dnf',
  },
  /** Neither curl nor wget: the boot cannot reach the store, not even to upload its log. */
  noDownloader: {
    name: 'no-downloader',
    amiName: 'bare-linux-20261101',
    description: 'A Linux without curl or wget',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, 'openssl', 'tar', 'gzip'],
    packageManager: 'dnf',
  },
  /** Its cloud-init is broken: user-data never runs. */
  deaf: {
    name: 'never-runs-user-data',
    amiName: 'broken-cloud-init-20261101',
    description: 'An image whose cloud-init never runs user-data',
    architecture: 'x86_64',
    commands: [...BASE_COMMANDS, ...FETCH],
    runsUserData: false,
  },
} as const satisfies Record<string, ImageProfile>;

/** Registers the image in each region; returns its AMI id per region. */
export async function registerImage(moto: Moto, image: ImageProfile, regions: readonly string[]): Promise<Record<string, string>> {
  const ids: Record<string, string> = {};
  for (const region of regions) {
    const existing = await moto.ec2(region).send(new DescribeImagesCommand({ Filters: [{ Name: 'name', Values: [image.amiName] }] }));
    const found = existing.Images?.[0]?.ImageId;
    ids[region] =
      found ??
      (await moto.ec2(region).send(
        new RegisterImageCommand({
          Name: image.amiName,
          Description: image.description,
          Architecture: image.architecture,
          RootDeviceName: '/dev/xvda',
          VirtualizationType: 'hvm',
        }),
      )).ImageId!;
  }
  return ids;
}
