/**
 * The machine-image checks of `lockstep aws doctor --ami` and `lockstep run --dry-run`, against
 * moto_server: AMIs registered there under the names their publishers use, looked up per region.
 */
import { join } from 'node:path';
import { CreateImageCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeLaunchPlan } from '../../../src/cli/commands/aws.ts';
import { AwsClients } from '../../../src/provider/aws/clients.ts';
import { runAwsDoctor, type DoctorCheck } from '../../../src/provider/aws/doctor.ts';
import { judgeImage } from '../../../src/provider/aws/images.ts';
import { specSchema } from '../../../src/spec/schema.ts';
import { startMoto, type Moto } from '../../helpers/cloud/moto.ts';
import { tempDir } from '../../helpers/temp.ts';

let moto: Moto;
let clients: AwsClients;
let configPath: string;
const saved: Record<string, string | undefined> = {};

/**
 * An image in one region, named as its publisher names it; its AMI id. Made as EC2 makes one from a
 * running instance (moto's RegisterImage records no architecture; CreateImage takes the instance's).
 */
async function register(region: string, name: string, architecture: 'x86_64' | 'arm64' = 'x86_64'): Promise<string> {
  const ec2 = moto.ec2(region);
  const base = await ssm(region, `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${architecture}`);
  const launched = await ec2.send(new RunInstancesCommand({ ImageId: base, InstanceType: architecture === 'arm64' ? 't4g.micro' : 't3a.micro', MinCount: 1, MaxCount: 1 }));
  const image = await ec2.send(new CreateImageCommand({ InstanceId: launched.Instances![0]!.InstanceId!, Name: name }));
  return image.ImageId!;
}

async function ssm(region: string, name: string): Promise<string> {
  const client = new SSMClient({ region, endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  try {
    return (await client.send(new GetParameterCommand({ Name: name }))).Parameter!.Value!;
  } finally {
    client.destroy();
  }
}

async function amiChecks(options: { ami: string; regions: string[]; instanceType?: string }): Promise<DoctorCheck[]> {
  const report = await runAwsDoctor({ clients, configPath, ...options });
  return report.checks.filter((c) => c.check === 'ami');
}

describe('machine-image checks, against moto_server', () => {
  beforeAll(async () => {
    moto = await startMoto();
    for (const [key, value] of Object.entries(moto.env)) {
      saved[key] = process.env[key];
      process.env[key] = value;
    }
    clients = new AwsClients();
    configPath = join(tempDir('aws-images'), 'none.json');
  });
  afterAll(async () => {
    clients?.destroy();
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await moto?.stop();
  });

  it('an AMI is there in its own region only: the other region gets a problem that says how to fix it', async () => {
    const ami = await register('eu-central-1', 'ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251101');
    const checks = await amiChecks({ ami, regions: ['eu-central-1', 'eu-west-3'], instanceType: 't3a.micro' });
    expect(checks).toEqual([
      { check: 'ami', region: 'eu-central-1', status: 'ok', detail: `${ami} (ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251101): Ubuntu 24.04, x86_64` },
      {
        check: 'ami',
        region: 'eu-west-3',
        status: 'problem',
        detail: `No AMI ${ami} in eu-west-3`,
        fix: 'AMIs belong to one region: give this region its own (`provider.ami: { region: ami-… }`), or copy the image there',
      },
    ]);
  });

  it("an AMI of another architecture than the instance type's is a problem; the doctor report fails", async () => {
    const ami = await register('eu-north-1', 'debian-12-amd64-20251101-1000');
    const report = await runAwsDoctor({ clients, configPath, ami, regions: ['eu-north-1'], instanceType: 't4g.small' });
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => c.check === 'ami')).toMatchObject({
      status: 'problem',
      detail: `${ami} (debian-12-amd64-20251101-1000) is x86_64, but t4g.small is arm64`,
      fix: 'use an arm64 AMI, or an x86_64 type (t3a, m7i, c7i, …)',
    });
    // Without an instance type there is nothing to compare: it is a Debian 12 image, which the boot runs on.
    expect(await amiChecks({ ami, regions: ['eu-north-1'] })).toMatchObject([{ status: 'ok', detail: `${ami} (debian-12-amd64-20251101-1000): Debian 12, x86_64` }]);
  });

  it('warns of Amazon Linux 2 (too old a C library for official Node.js builds) and of images never tried, saying what the boot needs', async () => {
    const old = await register('ap-south-1', 'amzn2-ami-kernel-5.10-hvm-2.0.20251101.0-x86_64-gp2');
    const own = await register('ap-south-1', 'team-golden-image-7');
    const [oldCheck, ownCheck] = [(await amiChecks({ ami: old, regions: ['ap-south-1'] }))[0], (await amiChecks({ ami: own, regions: ['ap-south-1'] }))[0]];
    expect(oldCheck).toMatchObject({ status: 'warning', detail: expect.stringContaining('looks like Amazon Linux 2 (glibc 2.26)'), fix: expect.stringContaining('only if the image has Node.js ≥ 20') });
    expect(ownCheck).toMatchObject({ status: 'warning', detail: `${own} (team-golden-image-7) is not an image lockstep was tested on`, fix: expect.stringContaining('glibc ≥ 2.28') });
  });

  it('resolves resolve:ssm: AMIs first; a parameter SSM does not have is a problem', async () => {
    const arm = await amiChecks({ ami: 'resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64', regions: ['us-east-1'], instanceType: 'c7g.large' });
    expect(arm).toMatchObject([{ region: 'us-east-1', status: 'ok', detail: expect.stringMatching(/^ami-\w+ \(al2023-ami-.*\): Amazon Linux 2023, arm64$/) }]);
    const missing = await amiChecks({ ami: 'resolve:ssm:/aws/service/no-such-parameter', regions: ['us-east-1'] });
    expect(missing).toMatchObject([{ status: 'problem', detail: 'SSM has no parameter /aws/service/no-such-parameter in us-east-1' }]);
  });

  it("`run --dry-run`'s launch plan refuses an AMI of the wrong architecture and names the AMIs it checked", async () => {
    const x86 = await register('ca-central-1', 'ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20251101');
    const spec = (instanceType: string) =>
      specSchema.parse({
        name: 'images',
        instances: 2,
        run: 'true',
        store: 's3://lockstep-images/lockstep?region=ca-central-1',
        provider: { kind: 'aws', regions: ['ca-central-1'], instanceType, ami: { 'ca-central-1': x86 }, securityGroups: { 'ca-central-1': ['sg-1'] }, iamInstanceProfile: 'lockstep' },
      });
    const wrong = await describeLaunchPlan(spec('t4g.micro'), { configPath, checkPermissions: false });
    expect(wrong.plan.problems.map((p) => p.message)).toEqual([
      `ca-central-1: ${x86} (ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20251101) is x86_64, but t4g.micro is arm64: use an arm64 AMI, or an x86_64 type (t3a, m7i, c7i, …)`,
    ]);
    const right = await describeLaunchPlan(spec('t3a.micro'), { configPath, checkPermissions: false });
    expect(right.plan.problems).toEqual([]);
    expect(right.text).toContain(`AMI in ca-central-1: ${x86} (ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20251101): Ubuntu 22.04, x86_64`);
  });
});

describe('judgeImage (what moto cannot register)', () => {
  const at = ['us-east-1', 'ami-0123456789abcdef0'] as const;
  it('a Windows image is a problem: the boot is a bash script', () => {
    expect(judgeImage(...at, { ImageId: at[1], Name: 'Windows_Server-2022-English-Full-Base', Architecture: 'x86_64', Platform: 'Windows', PlatformDetails: 'Windows', State: 'available' })).toMatchObject({
      status: 'problem',
      fix: 'use a Linux AMI: lockstep boots instances with a bash script',
    });
  });
  it('an image that is not available (pending, failed, deregistered) is a problem', () => {
    expect(judgeImage(...at, { ImageId: at[1], Name: 'al2023-ami-2023.6', Architecture: 'x86_64', State: 'pending' })).toMatchObject({
      status: 'problem',
      detail: `${at[1]} (al2023-ami-2023.6) is pending, not available`,
    });
  });
});
