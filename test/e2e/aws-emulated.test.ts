/**
 * lockstep on AWS, end to end, in the emulated cloud (test/helpers/cloud): moto_server keeps EC2,
 * IAM, SSM, STS and S3; the instance runner boots each instance from its real user-data on a
 * machine of its own with an IMDSv2 stand-in. Every case drives the `lockstep` commands a user
 * types, with only what any AWS user sets (AWS_ENDPOINT_URL, keys, a region), and the store in the
 * bucket that `lockstep aws bootstrap` made. The cases run concurrently, each in regions of its
 * own, so that ending or collecting one run's instances never touches another's.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateTagsCommand, DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceRecord, NodeResult, ReadyRecord, StartRecord } from '../../src/core/manifest.ts';
import { TAG } from '../../src/core/tags.ts';
import { startEmulatedCloud, type EmulatedCloud } from '../helpers/cloud/cloud.ts';
import { IMAGES } from '../helpers/cloud/images.ts';
import type { EmulatedInstance } from '../helpers/cloud/instance-runner.ts';
import { runLockstep, startLockstep, type CliResult, type RunningCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp.ts';

const REGIONS = {
  main: ['us-east-1', 'eu-west-1', 'ap-south-1'],
  images: { ubuntu: 'eu-central-1', debian: 'eu-north-1', withNode: 'ca-central-1', noPackageManager: 'sa-east-1' },
  arm: 'us-east-2',
  reclaim: 'us-west-2',
  bootFailures: { noTar: 'eu-west-3', deaf: 'ap-northeast-1', noDownloader: 'ap-northeast-2', bare: 'us-west-1' },
  down: 'ap-southeast-1',
  interrupt: 'ap-southeast-2',
  terminate: 'ap-northeast-3',
  expiry: 'eu-west-2',
  gc: 'eu-south-1',
} as const;
const ALL_REGIONS = [
  ...REGIONS.main,
  ...Object.values(REGIONS.images),
  REGIONS.arm,
  REGIONS.reclaim,
  ...Object.values(REGIONS.bootFailures),
  REGIONS.down,
  REGIONS.interrupt,
  REGIONS.terminate,
  REGIONS.expiry,
  REGIONS.gc,
];
const PREFIX = 'lockstep/';

type ImageName = 'ubuntu' | 'debian' | 'withNode' | 'noPackageManager' | 'noTar' | 'deaf' | 'noDownloader';

let cloud: EmulatedCloud<ImageName>;
let root: string;
let env: Record<string, string>;
let s3: S3Client;
/** The bucket `lockstep aws bootstrap` made. */
let bucket: string;
let firstBootstrap: CliResult;

function lockstepIn(cwd: string, args: readonly string[]): RunningCli {
  return startLockstep(args, { cwd, env, timeoutMs: 280_000 });
}

function lockstepDone(cwd: string, args: readonly string[]): Promise<CliResult> {
  return runLockstep(args, { cwd, env, timeoutMs: 280_000 });
}

/** An experiment folder: `app/` holds the files, `spec.yaml` the spec lines. */
function experiment(name: string, spec: readonly string[], files: Readonly<Record<string, string>>): string {
  const dir = join(root, 'experiments', name);
  mkdirSync(join(dir, 'app'), { recursive: true });
  for (const [file, body] of Object.entries(files)) writeFileSync(join(dir, 'app', file), body);
  writeFileSync(join(dir, 'spec.yaml'), [`name: ${name}`, 'artifact: ./app', ...spec].join('\n') + '\n');
  return dir;
}

/**
 * A bucket of a case's own: moto lists a bucket by walking every key in it, so runs that share one
 * slow each other down as it fills. The seed-shaped run uses the bucket bootstrap made.
 */
async function ownStore(name: string): Promise<{ bucket: string; store: string }> {
  const own = `lockstep-e2e-${name}`;
  await s3.send(new CreateBucketCommand({ Bucket: own }));
  return { bucket: own, store: `s3://${own}/lockstep?region=us-east-1` };
}

async function listKeys(bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: PREFIX + prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!.slice(PREFIX.length)));
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

async function readText(bucket: string, key: string): Promise<string | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: PREFIX + key }));
    return await out.Body!.transformToString();
  } catch {
    return undefined;
  }
}

async function readJson<T>(bucket: string, key: string): Promise<T | undefined> {
  const text = await readText(bucket, key);
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

/** The id of the run of spec `name` that `cli` started, once its manifest is in the store. */
async function runIdOf(bucket: string, name: string, cli: RunningCli, timeoutMs = 150_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = (await listKeys(bucket, `runs/${name}-`)).map((k) => new RegExp(`^runs/(${name}-[^/]+)/manifest\\.json$`).exec(k)).find(Boolean);
    if (match) return match[1]!;
    if (Date.now() > deadline || cli.child.exitCode !== null) {
      throw new Error(`No run of ${name} in the store after ${timeoutMs} ms; it printed:\n${cli.stdout()}\n${cli.stderr()}`);
    }
    await delay(1000);
  }
}

async function waitForKey(bucket: string, key: string, cli: RunningCli, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await readText(bucket, key)) === undefined) {
    if (Date.now() > deadline || cli.child.exitCode !== null) throw new Error(`No ${key} in the store after ${timeoutMs} ms; lockstep printed:\n${cli.stdout()}\n${cli.stderr()}`);
    await delay(500);
  }
}

/** EC2's view of a run's instances in some regions: id → state. */
async function ec2States(runId: string, regions: readonly string[]): Promise<Record<string, string>> {
  const states: Record<string, string> = {};
  for (const region of regions) {
    const out = await cloud.moto.ec2(region).send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:lockstep:run-id', Values: [runId] }] }));
    for (const i of (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])) states[i.InstanceId!] = i.State!.Name!;
  }
  return states;
}

function machinesIn(regions: readonly string[]): EmulatedInstance[] {
  return cloud.runner.instances.filter((i) => regions.includes(i.region));
}

/** The machine's boot log (what the boot script printed), as its console shows it. */
const consoleOf = (i: EmulatedInstance) => readFileSync(i.machine.consoleLog, 'utf8');

async function everyInstanceEnded(runId: string, regions: readonly string[], timeoutMs = 30_000): Promise<void> {
  await cloud.runner.waitFor(() => machinesIn(regions).every((i) => i.state === 'ended'), timeoutMs, `the machines in ${regions.join(', ')} to end`);
  const states = await ec2States(runId, regions);
  expect(Object.keys(states).length).toBeGreaterThan(0);
  expect(Object.values(states).every((s) => s === 'terminated'), JSON.stringify(states)).toBe(true);
}

const figures: string[] = [];

/** Notes how long the machine took from boot to its agent's ready record of repeat 1 (docs/aws.md's table). */
async function noteBootFigure(storeBucket: string, runId: string, m: EmulatedInstance): Promise<void> {
  const ready = await readJson<ReadyRecord>(storeBucket, `runs/${runId}/repeats/1/ready/${m.id}.json`);
  expect(ready, `${m.id} has a ready record`).toBeDefined();
  figures.push(`boot → ready, image ${m.image.name}: ${((ready!.readyAt - m.bootedAt) / 1000).toFixed(1)} s`);
}

describe('lockstep on AWS, in the emulated cloud', () => {
  beforeAll(async () => {
    root = tempDir('aws-emulated');
    const { images, bootFailures } = REGIONS;
    cloud = await startEmulatedCloud<ImageName>({
      root: join(root, 'cloud'),
      images: {
        ubuntu: { image: IMAGES.ubuntu2404, regions: [images.ubuntu] },
        debian: { image: IMAGES.debian12Wget, regions: [images.debian] },
        withNode: { image: IMAGES.withNode, regions: [images.withNode] },
        noPackageManager: { image: IMAGES.noPackageManager, regions: [images.noPackageManager] },
        noTar: { image: IMAGES.noTar, regions: [bootFailures.noTar] },
        deaf: { image: IMAGES.deaf, regions: [bootFailures.deaf, REGIONS.gc] },
        noDownloader: { image: IMAGES.noDownloader, regions: [bootFailures.noDownloader] },
      },
      bareRegions: [bootFailures.bare],
    });
    env = {
      ...cloud.env,
      LOCKSTEP_AWS_CONFIG: join(root, 'aws.json'),
      LOCKSTEP_HOME: join(root, 'home'),
      XDG_CACHE_HOME: join(root, 'cache'),
    };
    s3 = new S3Client({ region: 'us-east-1', endpoint: cloud.s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    // Every case needs what bootstrap makes; the first case checks what it printed.
    firstBootstrap = await lockstepDone(root, ['aws', 'bootstrap', '--region', ALL_REGIONS.join(','), '--json']);
    if (firstBootstrap.status !== 0) throw new Error(`bootstrap failed: ${firstBootstrap.stderr}`);
    bucket = (JSON.parse(firstBootstrap.stdout) as { config: { bucket: string } }).config.bucket;
  }, 180_000);

  afterAll(async () => {
    s3?.destroy();
    await cloud?.stop();
    if (figures.length) console.log(`emulated cloud figures:\n${figures.join('\n')}`);
    expect(cloud?.runner.problems ?? []).toEqual([]);
  }, 60_000);

  describe.concurrent('', { timeout: 300_000 }, () => {
    it('bootstrap a second time creates nothing; doctor finds no problem and names what the emulator does not serve', async () => {
      const first = JSON.parse(firstBootstrap.stdout) as { steps: Array<{ action: string; resource: string }>; config: { store: string } };
      expect(first.steps.filter((s) => s.action === 'created').length).toBeGreaterThan(ALL_REGIONS.length);
      expect(first.config.store).toBe(`s3://${bucket}/lockstep?region=us-east-1`);

      const again = await lockstepDone(root, ['aws', 'bootstrap', '--region', ALL_REGIONS.join(','), '--json']);
      expect(again.status, again.stderr).toBe(0);
      const steps = (JSON.parse(again.stdout) as { steps: Array<{ action: string; resource: string }> }).steps;
      expect(steps.filter((s) => s.action !== 'exists'), JSON.stringify(steps)).toEqual([]);

      const doctor = await lockstepDone(root, ['aws', 'doctor', '--region', REGIONS.main.join(',')]);
      expect(doctor.status, doctor.stdout + doctor.stderr).toBe(0);
      expect(doctor.stdout).toContain('No problems found.');
      // moto does not serve Service Quotas: doctor says which service and what to do, never a bare exception name.
      expect(doctor.stdout).toMatch(/warn {2}vcpu-quota \(us-east-1\): Service Quotas did not answer/);
      expect(doctor.stdout).toMatch(/fix: check it in the Service Quotas console; the service did not answer: check the network, and whether AWS_ENDPOINT_URL/);
      expect(doctor.stdout).not.toMatch(/SyntaxError|TypeError|: Error\b/);

      // An AMI belongs to one region: doctor --ami finds the Ubuntu image in its own and fails elsewhere.
      const ubuntu = cloud.ami('ubuntu', REGIONS.images.ubuntu);
      const ami = await lockstepDone(root, ['aws', 'doctor', '--ami', ubuntu, '--instance-type', 't3a.micro', '--region', `${REGIONS.images.ubuntu},us-east-1`]);
      expect(ami.status, ami.stdout + ami.stderr).toBe(1);
      expect(ami.stdout).toContain(`ok    ami (${REGIONS.images.ubuntu}): ${ubuntu} (${IMAGES.ubuntu2404.amiName}): Ubuntu 24.04`);
      expect(ami.stdout).toContain(`FAIL  ami (us-east-1): No AMI ${ubuntu} in us-east-1`);
    });

    it('N=6 × 2 repeats over 3 regions (2/2/2), invoked as the seed: logs, results and skew come home, every instance ends, gc finds nothing', async () => {
      const dir = experiment(
        'emulated-dkg',
        [
          'instances: 6',
          'repeats: 2',
          'run: sh run.sh {{rank}} {{hostsFile}} {{params.atSize}} {{runId}} {{params.protocol}}',
          'params: { atSize: 38, protocol: normal }',
          'groups:',
          '  - { name: adversaries, ranks: "3-", params: { protocol: adversarial } }',
          'collect: [results/]',
          'startDelay: 500ms',
          'timeouts: { boot: 2m, barrier: 90s, run: 30s, instance: 6m }',
          `provider: { kind: aws, regions: [${REGIONS.main.join(', ')}], instanceType: t3a.micro }`,
        ],
        {
          'run.sh': [
            'echo "args: $*"',
            'echo "hosts:"; cat "$2"',
            'mkdir -p results && echo "{\\"rank\\": $1}" > results/out.json',
            'echo "stderr of $LOCKSTEP_INSTANCE_ID" >&2',
          ].join('\n'),
        },
      );
      const started = Date.now();
      const run = await lockstepDone(dir, ['run', 'spec.yaml']);
      const elapsed = Date.now() - started;
      expect(run.status, run.stdout + run.stderr).toBe(0);
      const runId = /Run (emulated-dkg-\S+)/.exec(run.stdout)![1]!;

      // The summary: both repeats, 6 nodes each, all ok, with a start skew.
      const rows = run.stdout.split('\n').filter((l) => /^\s*[12]\s+done\s+6\s+6\s+0\s/.test(l));
      expect(rows, run.stdout).toHaveLength(2);
      for (const row of rows) expect(row).toMatch(/\d+(\.\d+)? (µs|ms|s)\s+\d+(\.\d+)? (µs|ms|s)\s+\d+(\.\d+)? (µs|ms|s)$/);

      // Multi-region: public addresses; the hosts file holds all six, sorted numerically.
      const machines = machinesIn(REGIONS.main);
      expect(machines).toHaveLength(6);
      expect(machines.map((m) => m.region).sort()).toEqual([...REGIONS.main, ...REGIONS.main].sort());
      const numeric = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
      const hosts = machines.map((m) => m.publicAddress!).sort((a, b) => numeric(a) - numeric(b));

      // Every node's logs and result were downloaded, with the seed's arguments and params by group.
      const results = join(dir, 'lockstep-results', runId);
      for (const repeat of [1, 2]) {
        for (let rank = 0; rank < 6; rank++) {
          const node = join(results, `repeat-${repeat}`, `rank-${rank}`);
          const stdout = readFileSync(join(node, 'stdout.log'), 'utf8');
          const result = JSON.parse(readFileSync(join(node, 'result.json'), 'utf8')) as NodeResult;
          const protocol = rank >= 3 ? 'adversarial' : 'normal';
          expect(stdout).toMatch(new RegExp(`^args: ${rank} \\S+/hosts\\.config 38 ${runId} ${protocol}\\n`));
          expect(stdout.split('\n').slice(2, 8)).toEqual(hosts);
          expect(result).toMatchObject({ rank, repeat, n: 6, outcome: 'success', address: hosts[rank], groups: rank >= 3 ? ['adversaries'] : [] });
          expect(readFileSync(join(node, 'stderr.log'), 'utf8')).toBe(`stderr of ${result.instanceId}\n`);
          expect(JSON.parse(readFileSync(join(node, 'files', 'results', 'out.json'), 'utf8'))).toEqual({ rank });
        }
      }

      // Every instance ended itself after the last repeat (power-off, terminate-on-shutdown).
      await everyInstanceEnded(runId, REGIONS.main);
      for (const m of machines) expect(m.endedBy, `${m.id}\n${consoleOf(m)}`).toBe('power-off');
      // Its dead-man's switch was armed at boot, for the run's expiry (6 minutes).
      for (const m of machines) expect(m.powerRequests[0]?.inSeconds).toBe(6 * 60);
      for (const m of machines) await noteBootFigure(bucket, runId, m);

      const gc = await lockstepDone(dir, ['gc', '--aws', '--region', REGIONS.main.join(','), '--json']);
      expect(gc.status, gc.stderr).toBe(0);
      expect(JSON.parse(gc.stdout).aws).toMatchObject({ ended: [], withoutExpiry: [], running: 0 });
      figures.push(`N=6 × 2 repeats over 3 regions: ${(elapsed / 1000).toFixed(1)} s from \`lockstep run\` to its exit`);
    });

    it('boots Ubuntu, Debian (wget only), an image with Node.js and one without a package manager: the same run, no AWS CLI, nothing installed where Node.js is', async () => {
      const { images } = REGIONS;
      const regions = Object.values(images);
      const amis = Object.entries(images).map(([name, region]) => `${region}: ${cloud.ami(name as ImageName, region)}`);
      const own = await ownStore('images');
      const dir = experiment(
        'emulated-images',
        [
          `store: ${own.store}`,
          'instances: 4',
          'run: echo "$LOCKSTEP_RANK on $LOCKSTEP_INSTANCE_ID"',
          'startDelay: 300ms',
          'timeouts: { boot: 2m, barrier: 90s, run: 30s, instance: 6m }',
          `provider: { kind: aws, regions: [${regions.join(', ')}], instanceType: t3a.micro, ami: { ${amis.join(', ')} } }`,
        ],
        { 'keep.txt': 'x' },
      );
      const run = await lockstepDone(dir, ['run', 'spec.yaml', '--no-results']);
      expect(run.status, run.stdout + run.stderr + machinesIn(regions).map(consoleOf).join('\n')).toBe(0);
      const runId = /Run (emulated-images-\S+)/.exec(run.stdout)![1]!;
      await everyInstanceEnded(runId, regions);

      for (const m of machinesIn(regions)) {
        const log = consoleOf(m);
        if (m.image === IMAGES.withNode) {
          expect(log).toMatch(/\[node\] \S+ is Node\.js v\d+\.\d+\.\d+ \(on the image\): nothing to install/);
          expect(readdirSync(m.machine.opt + '/lockstep').filter((f) => f.startsWith('node-'))).toEqual([]);
        } else {
          expect(log, m.image.name).toContain(`[node] /opt/lockstep/node-${cloud.mirror.version}-linux-x64/bin/node is Node.js`);
        }
        // No package manager, no AWS CLI was asked for anything.
        expect(readdirSync(join(m.machine.opt, '..', '..')).filter((f) => f.endsWith('.calls'))).toEqual([]);
        await noteBootFigure(own.bucket, runId, m);
      }
    });

    it('boots an arm64 type on the arm64 Amazon Linux 2023 with the arm64 Node.js', async () => {
      const own = await ownStore('arm');
      const dir = experiment(
        'emulated-arm',
        [`store: ${own.store}`, 'instances: 1', 'run: uname -m', 'timeouts: { boot: 2m, barrier: 60s, run: 30s, instance: 6m }', `provider: { kind: aws, regions: [${REGIONS.arm}], instanceType: t4g.micro }`],
        { 'keep.txt': 'x' },
      );
      const run = await lockstepDone(dir, ['run', 'spec.yaml', '--no-results']);
      const [machine] = machinesIn([REGIONS.arm]);
      expect(run.status, run.stdout + run.stderr + (machine ? consoleOf(machine) : '')).toBe(0);
      expect(machine!.image).toBe(IMAGES.al2023Arm);
      expect(consoleOf(machine!)).toContain(`node-${cloud.mirror.version}-linux-arm64/bin/node is Node.js`);
      const runId = /Run (emulated-arm-\S+)/.exec(run.stdout)![1]!;
      expect(await readText(own.bucket, `runs/${runId}/repeats/1/nodes/0/stdout.log`)).toBe('aarch64\n');
      await noteBootFigure(own.bucket, runId, machine!);
    });

    it('an instance terminated mid-run (a spot reclaim): the others go on and close on quorum, their logs arrive, the summary names it', async () => {
      const own = await ownStore('reclaim');
      const dir = experiment(
        'emulated-reclaim',
        [
          `store: ${own.store}`,
          'instances: 3',
          'minInstances: 2',
          'repeats: 2',
          'run: sh work.sh',
          'startDelay: 300ms',
          'timeouts: { boot: 2m, barrier: 8s, run: 60s, instance: 6m }',
          `provider: { kind: aws, regions: [${REGIONS.reclaim}], instanceType: t3a.micro, spot: true }`,
        ],
        // Repeat 1 runs long enough for the reclaim to land in it, whatever the load.
        { 'work.sh': 'echo "repeat $LOCKSTEP_REPEAT rank $LOCKSTEP_RANK of $LOCKSTEP_N"\nif [ "$LOCKSTEP_REPEAT" = 1 ]; then sleep 20; else sleep 1; fi\n' },
      );
      const cli = lockstepIn(dir, ['run', 'spec.yaml', '--no-results']);
      const runId = await runIdOf(own.bucket, 'emulated-reclaim', cli);
      await waitForKey(own.bucket, `runs/${runId}/repeats/1/start.json`, cli, 150_000);
      const start = (await readJson<StartRecord>(own.bucket, `runs/${runId}/repeats/1/start.json`))!;
      const reclaimed = start.members[1]!.instanceId;
      await cloud.moto.ec2(REGIONS.reclaim).send(new TerminateInstancesCommand({ InstanceIds: [reclaimed] }));
      const run = await cli.done;

      expect(run.status, run.stdout + run.stderr).toBe(1);
      expect(run.stdout).toContain(`Instances that ended before the run was over: ${reclaimed}`);
      expect(cloud.runner.instance(reclaimed)).toMatchObject({ state: 'ended', endedBy: 'emulator' });
      const second = (await readJson<StartRecord>(own.bucket, `runs/${runId}/repeats/2/start.json`))!;
      expect(second).toMatchObject({ quorum: true });
      expect(second.members.map((m) => m.instanceId)).not.toContain(reclaimed);
      // Every other instance of the run, one left out of repeat 1 (a slow boot) included.
      const survivors = Object.keys(await ec2States(runId, [REGIONS.reclaim])).filter((id) => id !== reclaimed);
      expect(second.members.map((m) => m.instanceId).sort()).toEqual(survivors.sort());
      // Every other node's logs of both repeats are in the store.
      for (const [repeat, members] of [
        [1, start.members],
        [2, second.members],
      ] as const) {
        for (let rank = 0; rank < members.length; rank++) {
          if (members[rank]!.instanceId === reclaimed) continue;
          expect(await readText(own.bucket, `runs/${runId}/repeats/${repeat}/nodes/${rank}/stdout.log`)).toBe(`repeat ${repeat} rank ${rank} of ${members.length}\n`);
        }
      }
      await everyInstanceEnded(runId, [REGIONS.reclaim]);
    });

    it('boot failures end the run at timeouts.boot with exit 1, naming each instance and why (its boot log, else the console output); every instance ends', async () => {
      const { noTar, deaf, noDownloader, bare } = REGIONS.bootFailures;
      const regions = [noTar, deaf, noDownloader, bare];
      const own = await ownStore('boot-failures');
      const dir = experiment(
        'emulated-boot-failures',
        [
          `store: ${own.store}`,
          'instances: 4',
          'minInstances: 1',
          'run: "true"',
          'timeouts: { boot: 20s, barrier: 60s, run: 30s, instance: 6m }',
          `provider: { kind: aws, regions: [${regions.join(', ')}], instanceType: t3a.micro, ami: { ${noTar}: ${cloud.ami('noTar', noTar)}, ${deaf}: ${cloud.ami('deaf', deaf)}, ${noDownloader}: ${cloud.ami('noDownloader', noDownloader)}, ${bare}: ami-0123456789abcdef0 } }`,
        ],
        { 'keep.txt': 'x' },
      );
      const started = Date.now();
      const run = await lockstepDone(dir, ['run', 'spec.yaml', '--no-results']);
      const elapsed = Date.now() - started;
      expect(run.status, run.stdout + run.stderr).toBe(1);
      const runId = /Run (emulated-boot-failures-\S+)/.exec(run.stdout)![1]!;
      const states = await ec2States(runId, regions);
      expect(Object.keys(states)).toHaveLength(4);
      for (const id of Object.keys(states)) expect(run.stdout).toContain(`  ${id} (`);
      expect(run.stdout).toContain('4 instance(s) did not boot:');
      expect(run.stdout).toContain('every instance was ended');

      const [tarless] = machinesIn([noTar]);
      expect(run.stdout).toContain(`${tarless!.id} (${noTar}): boot failed at step node: this image has no Node.js >= 20 and no tar to unpack the one from the store`);
      expect(run.stdout).toMatch(/its boot log \(last lines\):\n.*lockstep-boot: \[expiry\]/);
      // No boot log from the others: EC2's console output (moto's is a fixed kernel log).
      expect(run.stdout.match(/no boot log in the store; its console output \(last lines\):\n\s+Linux version/g)).toHaveLength(3);
      expect(run.stdout).toMatch(/did not report within timeouts\.boot \(20\.0 s\)/);
      // The image without curl or wget could not upload its log, but said why and ended itself.
      const [curlless] = machinesIn([noDownloader]);
      expect(consoleOf(curlless!)).toContain('FAILED at step image: this image has neither curl nor wget');
      await everyInstanceEnded(runId, regions.filter((r) => r !== bare));
      expect(curlless!.endedBy).toBe('power-off');
      expect(tarless!.endedBy).toBe('power-off');
      expect(Object.values(await ec2States(runId, [bare]))).toEqual(['terminated']);
      figures.push(`boot failures with timeouts.boot 20s: \`lockstep run\` exited after ${(elapsed / 1000).toFixed(1)} s`);
    });

    for (const how of ['down', 'interrupt', 'terminate'] as const) {
      it(`\`lockstep ${how === 'down' ? 'down' : how === 'interrupt' ? 'run` + Ctrl-C' : 'run` + SIGTERM'}\` mid-run ends every instance, after the stopped command's logs are uploaded`, async () => {
        const region = REGIONS[how];
        const name = `emulated-${how}`;
        const own = await ownStore(how);
        const dir = experiment(
          name,
          [`store: ${own.store}`, 'instances: 2', 'run: echo started; sleep 600', 'timeouts: { boot: 2m, barrier: 60s, run: 15m, instance: 20m }', `provider: { kind: aws, regions: [${region}], instanceType: t3a.micro }`],
          { 'keep.txt': 'x' },
        );
        const cli = lockstepIn(dir, ['run', 'spec.yaml', '--no-results']);
        const runId = await runIdOf(own.bucket, name, cli);
        await waitForKey(own.bucket, `runs/${runId}/repeats/1/start.json`, cli, 150_000);
        const { startAt } = (await readJson<StartRecord>(own.bucket, `runs/${runId}/repeats/1/start.json`))!;
        await delay(Math.max(0, startAt - Date.now() + 1000));
        if (how === 'down') {
          const down = await lockstepDone(dir, ['down', runId, '--store', own.store]);
          expect(down.status, down.stdout + down.stderr).toBe(0);
        } else {
          cli.child.kill(how === 'interrupt' ? 'SIGINT' : 'SIGTERM');
        }
        const run = await cli.done;
        expect(run.status, run.stdout + run.stderr).toBe(how === 'down' ? 1 : 130);
        await everyInstanceEnded(runId, [region]);
        // The stopped commands' logs and results were uploaded before the instances ended.
        for (const rank of [0, 1]) {
          expect(await readText(own.bucket, `runs/${runId}/repeats/1/nodes/${rank}/stdout.log`)).toBe('started\n');
          expect(await readJson<NodeResult>(own.bucket, `runs/${runId}/repeats/1/nodes/${rank}/result.json`)).toMatchObject({ outcome: 'aborted' });
        }
      });
    }

    it('after the controller is killed (SIGKILL) the instances end at their own expiry', async () => {
      const region = REGIONS.expiry;
      const own = await ownStore('expiry');
      const dir = experiment(
        'emulated-expiry',
        [`store: ${own.store}`, 'instances: 2', 'run: sleep 600', 'timeouts: { boot: 2m, barrier: 60s, run: 15m, instance: 45s }', `provider: { kind: aws, regions: [${region}], instanceType: t3a.micro }`],
        { 'keep.txt': 'x' },
      );
      const cli = lockstepIn(dir, ['run', 'spec.yaml', '--no-results']);
      const runId = await runIdOf(own.bucket, 'emulated-expiry', cli);
      await waitForKey(own.bucket, `runs/${runId}/repeats/1/start.json`, cli, 150_000);
      cli.child.kill('SIGKILL');
      await cli.done;
      const expiresAt = Date.parse((await readJson<{ expiresAt: string }>(own.bucket, `runs/${runId}/manifest.json`))!.expiresAt);
      await cloud.runner.waitFor(() => machinesIn([region]).every((m) => m.state === 'ended'), expiresAt - Date.now() + 40_000, 'the instances to end at their expiry');
      for (const m of machinesIn([region])) {
        expect(m.endedBy).toBe('power-off');
        expect(m.endedAt!).toBeGreaterThanOrEqual(expiresAt);
      }
      await everyInstanceEnded(runId, [region]);
      for (const id of Object.keys(await ec2States(runId, [region]))) {
        expect(await readJson<InstanceRecord>(own.bucket, `runs/${runId}/instances/${id}.json`)).toMatchObject({ state: 'expired' });
      }
    });

    it('`gc --aws` ends an instance past its expiry that did not end itself', async () => {
      const region = REGIONS.gc;
      const own = await ownStore('gc');
      const dir = experiment(
        'emulated-gc',
        [
          `store: ${own.store}`,
          'instances: 1',
          'run: "true"',
          'timeouts: { boot: 10m, barrier: 60s, run: 30s, instance: 30m }',
          `provider: { kind: aws, regions: [${region}], instanceType: t3a.micro, ami: ${cloud.ami('deaf', region)} }`,
        ],
        { 'keep.txt': 'x' },
      );
      const cli = lockstepIn(dir, ['run', 'spec.yaml', '--no-results']);
      const runId = await runIdOf(own.bucket, 'emulated-gc', cli);
      await cloud.runner.waitFor(() => machinesIn([region]).length === 1, 30_000, 'the instance to boot');
      cli.child.kill('SIGKILL');
      await cli.done;
      const [machine] = machinesIn([region]);

      const early = await lockstepDone(dir, ['gc', '--aws', '--region', region, '--json']);
      expect(JSON.parse(early.stdout).aws).toMatchObject({ ended: [], running: 1 });
      // Half an hour passes: the instance's expiry tag, which gc reads, moves into the past ('deaf' never powers off itself).
      const past = new Date(Date.now() - 1000).toISOString();
      await cloud.moto.ec2(region).send(new CreateTagsCommand({ Resources: [machine!.id], Tags: [{ Key: TAG.expiresAt, Value: past }] }));
      expect(machine!.state).toBe('running');
      const dry = await lockstepDone(dir, ['gc', '--aws', '--region', region, '--dry-run', '--json']);
      expect(JSON.parse(dry.stdout).aws.ended.map((i: { id: string }) => i.id)).toEqual([machine!.id]);
      expect(machine!.state).toBe('running');
      const gc = await lockstepDone(dir, ['gc', '--aws', '--region', region]);
      expect(gc.status, gc.stderr).toBe(0);
      expect(gc.stdout).toContain(`aws: ended ${machine!.id} of ${runId} in ${region}`);
      await everyInstanceEnded(runId, [region]);
      expect(machine!.endedBy).toBe('emulator');
    });
  });
});
