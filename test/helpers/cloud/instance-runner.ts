/**
 * The hypervisor of the emulated cloud. moto_server keeps EC2's state but boots nothing; the
 * runner watches it for instances in every region and boots each new one as EC2 would:
 *
 * - a machine of its own (test/helpers/cloud/machine.ts) from its AMI's image profile (which
 *   commands it has), with its own loopback addresses as private and public address;
 * - its UserData, as RunInstances stored it, run by bash in the machine;
 * - an IMDSv2 stand-in for that instance alone (test/helpers/imds-stand-in.ts): id, region, zone,
 *   tags (when the launch enabled them), addresses and its instance profile's role credentials;
 *   the machine's environment points the SDK at it (AWS_EC2_METADATA_SERVICE_ENDPOINT) and at the
 *   emulator's endpoint (AWS_ENDPOINT_URL), as EC2's network routes both;
 * - `shutdown`/`poweroff` in the machine become TerminateInstances (or StopInstances, by the
 *   instance's InstanceInitiatedShutdownBehavior) of that instance;
 * - an instance terminated or stopped in the emulator (by lockstep, `gc`, a test) is powered off:
 *   its processes get SIGTERM, and after a grace period its whole namespace is killed.
 *
 * Regions in `bareRegions` are left alone: their instances never boot, as on a bare moto_server.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeRegionsCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, IAMClient } from '@aws-sdk/client-iam';
import { startImdsStandIn, type ImdsStandIn } from '../imds-stand-in.ts';
import { IMAGES, type ImageProfile } from './images.ts';
import { Machine } from './machine.ts';
import type { Moto } from './moto.ts';

export interface InstanceRunnerOptions {
  readonly moto: Moto;
  /** Where the machines' network sends S3 requests (AWS_ENDPOINT_URL_S3). Default: `moto`. */
  readonly s3Endpoint?: string;
  /** Folder of the machines' folders. */
  readonly root: string;
  /** Image profile of an AMI id; default: Amazon Linux 2023 of the AMI's architecture (what the SSM parameters name). */
  readonly imageOf?: (imageId: string, region: string) => ImageProfile | undefined;
  /** Regions whose instances never boot. */
  readonly bareRegions?: readonly string[];
  /** Time the OS gets to stop its processes when the machine powers off. Default 5 s. */
  readonly shutdownGraceMs?: number;
  /** How often regions with live instances are looked at. Default 1 s (every region: 4 × that). */
  readonly pollMs?: number;
}

export interface PowerRequest {
  readonly at: number;
  /** Seconds until power-off; absent for a cancel. */
  readonly inSeconds?: number;
  readonly cancel?: boolean;
}

export interface EmulatedInstance {
  readonly id: string;
  readonly region: string;
  readonly zone: string;
  readonly imageId: string;
  readonly image: ImageProfile;
  readonly privateAddress: string;
  readonly publicAddress?: string;
  readonly shutdownBehavior: 'terminate' | 'stop';
  readonly machine: Machine;
  readonly imds: ImdsStandIn;
  /** When its machine started (ms since the epoch). */
  readonly bootedAt: number;
  readonly powerRequests: PowerRequest[];
  state: 'running' | 'ending' | 'ended';
  endedAt?: number;
  /** `power-off`: it ended itself (shutdown in the machine); `emulator`: terminated or stopped from outside. */
  endedBy?: 'power-off' | 'emulator';
}

export interface InstanceRunner {
  readonly instances: readonly EmulatedInstance[];
  instance(id: string): EmulatedInstance | undefined;
  /** What went wrong in the runner itself (a failed boot, an emulator that did not answer). */
  readonly problems: readonly string[];
  /** Resolves once `done()` holds (checked every 100 ms); rejects after `timeoutMs`, saying `what`. */
  waitFor(done: () => boolean, timeoutMs: number, what: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startInstanceRunner(options: InstanceRunnerOptions): Promise<InstanceRunner> {
  const { moto } = options;
  const graceMs = options.shutdownGraceMs ?? 5000;
  const pollMs = options.pollMs ?? 1000;
  const bare = new Set(options.bareRegions ?? []);
  const instances = new Map<string, EmulatedInstance>();
  /** Instance ids seen in the emulator (booted, booting, or in a bare region). */
  const seen = new Set<string>();
  const timers = new Map<string, NodeJS.Timeout>();
  const hot = new Set<string>();
  const iam = new IAMClient({ region: 'us-east-1', endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  const regions = ((await moto.ec2('us-east-1').send(new DescribeRegionsCommand({}))).Regions ?? []).map((r) => r.RegionName!);
  const addresses = addressBlocks();
  const problems: string[] = [];

  // ---- The hypervisor's side of `shutdown` in a machine.
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://hypervisor');
    const match = /^\/power\/([^/]+)$/.exec(url.pathname);
    const instance = match ? instances.get(match[1]!) : undefined;
    if (req.method !== 'POST' || !instance) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': 0 }).end();
    clearTimeout(timers.get(instance.id));
    timers.delete(instance.id);
    if (url.searchParams.has('cancel')) {
      instance.powerRequests.push({ at: Date.now(), cancel: true });
      return;
    }
    const seconds = Number(url.searchParams.get('in') ?? '0');
    instance.powerRequests.push({ at: Date.now(), inSeconds: seconds });
    if (seconds <= 0) void powerOff(instance);
    else timers.set(instance.id, setTimeout(() => void powerOff(instance), seconds * 1000));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hypervisorPort = (server.address() as AddressInfo).port;

  /** The machine powered itself off: the OS stops, then EC2 applies the shutdown behaviour. */
  const powerOff = async (instance: EmulatedInstance) => {
    if (instance.state !== 'running') return;
    instance.state = 'ending';
    instance.endedBy = 'power-off';
    await end(instance);
    const ids = { InstanceIds: [instance.id] };
    const ec2 = moto.ec2(instance.region);
    const apply = () => (instance.shutdownBehavior === 'stop' ? ec2.send(new StopInstancesCommand(ids)) : ec2.send(new TerminateInstancesCommand(ids)));
    // The controller may terminate the instance at the same moment. EC2 answers both calls; moto's
    // second can fail half-way (InvalidNetworkInterfaceID.NotFound: the first removed the interface),
    // and answers once the first is through. Asked again, only a real refusal stays a problem.
    await apply()
      .catch(() => delay(500).then(apply))
      .catch((error: unknown) => problems.push(`${instance.id}: ${String(error)}`));
  };

  const endings = new Map<string, Promise<void>>();
  const end = (instance: EmulatedInstance): Promise<void> => {
    let ending = endings.get(instance.id);
    if (!ending) {
      clearTimeout(timers.get(instance.id));
      ending = (async () => {
        await instance.machine.stop(graceMs);
        await instance.imds.close();
        instance.state = 'ended';
        instance.endedAt = Date.now();
      })();
      endings.set(instance.id, ending);
    }
    return ending;
  };

  const boot = async (described: Instance, region: string) => {
    const id = described.InstanceId!;
    const ec2 = moto.ec2(region);
    const [userData, behavior] = await Promise.all([
      ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: id, Attribute: 'userData' })),
      ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: id, Attribute: 'instanceInitiatedShutdownBehavior' })),
    ]);
    const profileName = described.IamInstanceProfile?.Arn?.split('/').pop();
    const role = profileName
      ? (await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: profileName })).catch(() => undefined))?.InstanceProfile?.Roles?.[0]?.RoleName
      : undefined;
    const imageId = described.ImageId ?? '';
    const image = options.imageOf?.(imageId, region) ?? (await defaultImage(imageId, region));
    const privateAddress = addresses.next('private');
    const publicAddress = described.PublicIpAddress ? addresses.next('public') : undefined;
    const zone = described.Placement?.AvailabilityZone ?? `${region}a`;
    const tags = Object.fromEntries((described.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
    const imds = await startImdsStandIn({
      instanceId: id,
      localIpv4: privateAddress,
      ...(publicAddress ? { publicIpv4: publicAddress } : {}),
      region,
      zone,
      tags,
      tagsEnabled: described.MetadataOptions?.InstanceMetadataTags === 'enabled',
      tokensRequired: described.MetadataOptions?.HttpTokens === 'required',
      ...(role
        ? {
            role: {
              name: role,
              credentials: { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(20).toString('base64'), sessionToken: randomBytes(48).toString('base64') },
            },
          }
        : {}),
    });
    const machine = new Machine({
      id,
      dir: join(options.root, id),
      image,
      userData: Buffer.from(userData.UserData?.Value ?? '', 'base64').toString('utf8'),
      env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint, AWS_ENDPOINT_URL: moto.endpoint, AWS_ENDPOINT_URL_S3: options.s3Endpoint ?? moto.endpoint },
      hypervisorPort,
    });
    const instance: EmulatedInstance = {
      id,
      region,
      zone,
      imageId,
      image,
      privateAddress,
      ...(publicAddress ? { publicAddress } : {}),
      shutdownBehavior: behavior.InstanceInitiatedShutdownBehavior?.Value === 'stop' ? 'stop' : 'terminate',
      machine,
      imds,
      bootedAt: Date.now(),
      powerRequests: [],
      state: 'running',
    };
    instances.set(id, instance);
    // A machine whose first process dies (it should not) is ended like any other.
    void machine.exited.then(() => {
      if (instance.state === 'running') {
        problems.push(`${id}: its machine died by itself (see ${machine.consoleLog})`);
        void powerOff(instance);
      }
    });
  };

  const defaultImage = async (imageId: string, region: string): Promise<ImageProfile> => {
    const described = await moto.ec2(region).send(new DescribeImagesCommand({ ImageIds: [imageId] })).catch(() => undefined);
    return described?.Images?.[0]?.Architecture === 'arm64' ? IMAGES.al2023Arm : IMAGES.al2023;
  };

  const look = async (region: string) => {
    // Ended instances stay in EC2's answers for a while: they are asked for no more (smaller answers).
    const out = await moto.ec2(region).send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running'] }] }));
    const live = new Set<string>();
    for (const described of (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      const id = described.InstanceId!;
      live.add(id);
      if (seen.has(id)) continue;
      seen.add(id);
      if (!bare.has(region)) await boot(described, region).catch((error: unknown) => problems.push(`${id}: boot: ${String(error)}`));
    }
    // A machine whose instance is no longer pending or running was terminated or stopped in the emulator.
    for (const instance of instances.values()) {
      if (instance.region !== region || instance.state !== 'running' || live.has(instance.id)) continue;
      instance.state = 'ending';
      instance.endedBy = 'emulator';
      void end(instance);
    }
    // Regions with live instances are looked at often, the others in the rounds over every region.
    if (live.size > 0) hot.add(region);
    else hot.delete(region);
  };

  let stopped = false;
  const loop = (async () => {
    for (let round = 0; !stopped; round++) {
      const targets = round % 4 === 0 ? regions : [...hot];
      await Promise.all(targets.map((region) => look(region).catch((error: unknown) => problems.push(`${region}: ${String(error)}`))));
      await delay(pollMs);
    }
  })();

  return {
    get instances() {
      return [...instances.values()];
    },
    instance: (id) => instances.get(id),
    problems,
    async waitFor(done, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${problems.length ? `; runner problems: ${problems.join('; ')}` : ''}`);
        await delay(100);
      }
    },
    async stop() {
      stopped = true;
      await loop;
      for (const timer of timers.values()) clearTimeout(timer);
      for (const i of instances.values()) if (i.state === 'running') i.state = 'ending';
      await Promise.all([...instances.values()].map((i) => end(i)));
      iam.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Loopback addresses for machines: two /16 blocks of this runner's (private and public addresses). */
function addressBlocks() {
  const privateBlock = randomInt(100, 200);
  const publicBlock = randomInt(200, 250);
  const next = { private: 0, public: 0 };
  return {
    next(kind: 'private' | 'public'): string {
      const n = ++next[kind];
      return `127.${kind === 'private' ? privateBlock : publicBlock}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    },
  };
}
