/**
 * The EC2 boot script, executed: a test provider launches "instances" by doing what EC2 would do
 * with the real RunInstances input (the boot script from its base64 `UserData`, the tags from its
 * `TagSpecifications`, metadata options from `MetadataOptions`), on this machine:
 *
 * - each instance is `bash <user-data>` in a folder of its own (its "disk"; the script's work
 *   folder is `.`), in a process group of its own (its "machine");
 * - its metadata service is an IMDSv2 stand-in on loopback (test/helpers/imds-stand-in.ts) with its
 *   own instance id, its own loopback address 127.x.y.z as local-ipv4, the run's tags, and the
 *   instance profile's credentials. The machine's environment points the SDK at it
 *   (`AWS_EC2_METADATA_SERVICE_ENDPOINT`), as every EC2 machine routes 169.254.169.254 to its own;
 *   so the script is the same for every instance, as on EC2;
 * - the package install is a no-op check that Node is here; the agent download fetches from the
 *   S3 server on loopback with the SDK and the instance profile's credentials (`aws s3 cp` would);
 * - `shutdown` on the machine's PATH is a stand-in that records its arguments: the script's
 *   dead-man's switch and the agent's power-off after the last repeat both end up there.
 *
 * Then a whole run goes through `runExperiment` with that provider and its store on s3rver.
 */
import type { RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killProcesses, processesWhere } from '../../../src/agent/leftovers.ts';
import { runExperiment } from '../../../src/controller/run.ts';
import { layout, nodeFiles } from '../../../src/core/layout.ts';
import type { InstanceRecord, NodeResult } from '../../../src/core/manifest.ts';
import { clientToken, instanceTags, runInstancesInput, type FleetRequest } from '../../../src/provider/aws/launch.ts';
import { resolveLaunchPlan } from '../../../src/provider/aws/plan.ts';
import { decodeTagValue, TAG } from '../../../src/core/tags.ts';
import { renderUserData, type UserDataOptions } from '../../../src/provider/aws/user-data.ts';
import { withoutProfile } from '../../../src/store/s3-locator.ts';
import { LaunchError, type InstanceInfo, type Provider } from '../../../src/provider/provider.ts';
import { loadSpec } from '../../../src/spec/load.ts';
import { shellQuote } from '../../../src/spec/template.ts';
import { openStore } from '../../../src/store/open.ts';
import { getJson } from '../../../src/store/store.ts';
import { processesMentioning } from '../../global-setup.ts';
import { startImdsStandIn, type ImdsCredentials, type ImdsStandIn } from '../../helpers/imds-stand-in.ts';
import { startS3Server, type S3Server } from '../../helpers/s3-server.ts';
import { tempDir } from '../../helpers/temp.ts';
import { FAKE_CREDENTIALS, useFakeCredentials } from './helpers.ts';

const require = createRequire(import.meta.url);

// ---- A provider that boots "EC2 instances" as bash processes -----------------------------------

interface FakeInstance {
  readonly id: string;
  readonly runId: string;
  readonly address: string;
  readonly region: string;
  readonly expiresAt: Date;
  /** Its "disk": the folder the boot script starts in and works in. */
  readonly dir: string;
  /** The boot script as this instance got it (base64-decoded `UserData`). */
  readonly userData: string;
  readonly imds: ImdsStandIn;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  /** bash's exit status, once it has exited. */
  exit?: { readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly at: number };
  /** Whether it ended on its own (power-off after the last repeat) or had to be ended by `terminate`. */
  endedBy?: 'itself' | 'terminate';
}

interface BootProviderOptions {
  /** Folder of the instances' folders. */
  readonly root: string;
  /** Substitutions for the boot script. */
  readonly userData: UserDataOptions;
  /** local-ipv4 of each instance, in launch order. */
  readonly addresses: readonly string[];
  /** What the instance profile's role hands out through instance metadata. */
  readonly credentials: ImdsCredentials;
  /**
   * How long `terminate` lets an instance end itself before it ends it: the agent powers its
   * instance off after the last repeat, usually a moment after the run is complete in the store.
   */
  readonly selfTerminationGraceMs?: number;
}

interface BootProvider extends Provider {
  /** The RunInstances inputs the launch made (what EC2 would have been sent). */
  readonly inputs: RunInstancesCommandInput[];
  readonly instances: FakeInstance[];
}

/** `shutdown` on an instance: records its arguments, ends nothing. */
const shutdownStandIn = (log: string) => `#!/bin/sh\necho "$(date +%s%3N) $*" >> ${shellQuote(log)}\n`;

function createBootProvider(options: BootProviderOptions): BootProvider {
  const inputs: RunInstancesCommandInput[] = [];
  const instances: FakeInstance[] = [];
  const graceMs = options.selfTerminationGraceMs ?? 20_000;

  const bootOne = async (
    runId: string,
    expiresAt: Date,
    input: RunInstancesCommandInput,
    region: string,
    roleName: string,
    index: number,
  ): Promise<FakeInstance> => {
    const id = `i-0${randomBytes(8).toString('hex')}`;
    const address = options.addresses[index];
    if (!address) throw new LaunchError(`No address for instance ${index + 1}`, []);
    const dir = join(options.root, id);
    for (const sub of ['bin', 'home', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });

    // What EC2 hands the instance: the boot script, tags and metadata options of the launch.
    const userData = Buffer.from(input.UserData ?? '', 'base64').toString('utf8');
    const scriptPath = join(dir, 'user-data');
    writeFileSync(scriptPath, userData, { mode: 0o700 });
    const tags = Object.fromEntries(
      (input.TagSpecifications?.find((t) => t.ResourceType === 'instance')?.Tags ?? []).map((t) => [t.Key!, t.Value ?? '']),
    );
    const imds = await startImdsStandIn({
      instanceId: id,
      localIpv4: address,
      region,
      zone: `${region}${'abc'[index % 3]}`,
      tags,
      tagsEnabled: input.MetadataOptions?.InstanceMetadataTags === 'enabled',
      tokensRequired: input.MetadataOptions?.HttpTokens === 'required',
      role: { name: roleName, credentials: options.credentials },
    });

    writeFileSync(join(dir, 'bin', 'shutdown'), shutdownStandIn(join(dir, 'power-off.log')), { mode: 0o755 });
    // The machine: its own PATH (with the `shutdown` stand-in first), HOME and TMPDIR, its metadata
    // service, and nothing of this process's environment (no credential, no LOCKSTEP_*).
    const env: NodeJS.ProcessEnv = {
      PATH: [join(dir, 'bin'), dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
      HOME: join(dir, 'home'),
      TMPDIR: join(dir, 'tmp'),
      LANG: 'C.UTF-8',
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
    };
    // This test runs as root on a machine with a real `shutdown`: make sure the stand-in is what runs.
    const resolved = execFileSync('bash', ['-c', 'command -v shutdown'], { env, encoding: 'utf8' }).trim();
    if (resolved !== join(dir, 'bin', 'shutdown')) {
      await imds.close();
      throw new LaunchError(`\`shutdown\` resolves to ${resolved}, not the stand-in`, []);
    }

    // cloud-init runs the script as root and sends its output to /var/log/cloud-init-output.log.
    const output = openSync(join(dir, 'cloud-init-output.log'), 'a');
    let child: ChildProcess;
    try {
      child = spawn('bash', [scriptPath], { cwd: dir, env, detached: true, stdio: ['ignore', output, output] });
    } finally {
      closeSync(output);
    }
    const instance: FakeInstance = {
      id,
      runId,
      address,
      region,
      expiresAt,
      dir,
      userData,
      imds,
      child,
      exited: new Promise<void>((resolve) => {
        child.once('exit', (code, signal) => {
          instance.exit = { code, signal, at: Date.now() };
          resolve();
        });
        child.once('error', () => {
          instance.exit ??= { code: null, signal: null, at: Date.now() };
          resolve();
        });
      }),
    };
    return instance;
  };

  const info = (i: FakeInstance): InstanceInfo => ({
    id: i.id,
    runId: i.runId,
    state: i.exit ? 'ended' : 'running',
    address: i.address,
    region: i.region,
    expiresAt: i.expiresAt,
  });

  const signalGroup = (i: FakeInstance, signal: NodeJS.Signals) => {
    try {
      if (i.child.pid) process.kill(-i.child.pid, signal);
    } catch {
      // The group is gone already.
    }
  };
  const exitedWithin = (i: FakeInstance, ms: number) => Promise.race([i.exited.then(() => true), delay(ms).then(() => false)]);

  return {
    kind: 'user-data-on-bash',
    inputs,
    instances,

    async launch(request) {
      if (request.provider.kind !== 'aws') throw new LaunchError(`This test provider boots EC2 user-data, not ${request.provider.kind}`, []);
      // The launch the AWS provider would make (no AWS clients: AMI and subnets come from the spec).
      const plan = await resolveLaunchPlan(request.provider, request.count, {
        lifetimeMs: Math.max(0, request.boot.expiresAt.getTime() - Date.now()),
      });
      if (plan.problems.length > 0) throw new LaunchError(plan.problems.map((p) => p.message).join('; '), []);
      const fleet: FleetRequest = {
        plan,
        runId: request.runId,
        specName: request.specName,
        boot: request.boot,
        minCount: request.minCount,
        userData: renderUserData(request.boot, options.userData),
      };
      const launched: FakeInstance[] = [];
      try {
        for (const region of plan.regions) {
          const subnet = region.subnets[0];
          const input = runInstancesInput(fleet, region, subnet, region.count, clientToken(request.runId, region.region, subnet, 0));
          inputs.push(input);
          for (let k = 0; k < (input.MaxCount ?? 0); k++) {
            const instance = await bootOne(request.runId, request.boot.expiresAt, input, region.region, plan.iamInstanceProfile!, launched.length);
            launched.push(instance);
            instances.push(instance);
          }
        }
      } catch (error) {
        await this.terminate(launched.map((i) => i.id));
        throw error;
      }
      request.onProgress?.(`booted ${launched.length} instance(s) from user-data`);
      return launched.map(info);
    },

    async list(runId) {
      return instances.filter((i) => runId === undefined || i.runId === runId).map(info);
    },

    async terminate(instanceIds) {
      const wanted = new Set(instanceIds);
      await Promise.all(
        instances
          .filter((i) => wanted.has(i.id))
          .map(async (i) => {
            if (!i.exit && !(await exitedWithin(i, graceMs))) {
              // Like TerminateInstances: the OS gets to stop its processes, then the machine is gone.
              i.endedBy = 'terminate';
              signalGroup(i, 'SIGTERM');
              if (!(await exitedWithin(i, 5_000))) {
                signalGroup(i, 'SIGKILL');
                await i.exited;
              }
            }
            i.endedBy ??= 'itself';
            // Whatever the agent started in process groups of its own goes with the machine.
            killProcesses(processesWhere((env) => (env.get('LOCKSTEP_WORKDIR') ?? '').startsWith(i.dir)));
            await i.imds.close();
          }),
      );
    },

    async dispose() {
      await Promise.all(instances.map((i) => i.imds.close()));
    },
  };
}

// ---- The test --------------------------------------------------------------------------------

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));
const numeric = (address: string) => address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);

/** Prints what the node was given: rank, address, instance id, credentials seen, and its hosts file. */
const PROBE = `#!/bin/sh
echo "rank=$LOCKSTEP_RANK n=$LOCKSTEP_N repeat=$LOCKSTEP_REPEAT address=$LOCKSTEP_ADDRESS instance=$LOCKSTEP_INSTANCE_ID argrank=$1 key=\${AWS_ACCESS_KEY_ID:-none} secret=\${AWS_SECRET_ACCESS_KEY:-none}"
echo "hosts:"
cat "$LOCKSTEP_HOSTS_FILE"
echo "stderr of rank $LOCKSTEP_RANK on $LOCKSTEP_INSTANCE_ID" >&2
`;

/**
 * The agent download on an instance: what `aws s3 cp "$AGENT_URI" "$AGENT_FILE"` does, with the
 * SDK's default credential chain (which finds the instance profile's credentials in metadata).
 */
const downloadScript = (sdkPath: string) => `
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { S3Client, GetObjectCommand } = require(${JSON.stringify(sdkPath)});
const { writeFileSync } = require('node:fs');
const [uri, file, region, endpoint] = process.argv.slice(2);
const match = /^s3:\\/\\/([^/]+)\\/(.+)$/.exec(uri);
if (!match) { console.error('not an s3:// URI: ' + uri); process.exit(2); }
const client = new S3Client({ region: region || 'us-east-1', ...(endpoint ? { endpoint, forcePathStyle: true } : {}) });
client
  .send(new GetObjectCommand({ Bucket: match[1], Key: match[2] }))
  .then((response) => response.Body.transformToByteArray())
  .then((bytes) => {
    writeFileSync(file, bytes);
    console.error('download: ' + uri + ' (' + bytes.length + ' bytes)');
    client.destroy();
  })
  .catch((error) => {
    console.error('download failed: ' + (error && error.message));
    process.exit(1);
  });
`;

describe('EC2 user-data executed with bash, against IMDS and S3 stand-ins on loopback', () => {
  let s3: S3Server;
  let root: string;
  let restoreEnv: () => void = () => {};
  const savedFiles = { AWS_SHARED_CREDENTIALS_FILE: process.env.AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE: process.env.AWS_CONFIG_FILE };
  const OPERATOR_PROFILE = 'lockstep-operator';
  // The instance profile's temporary credentials. s3rver knows one access key id (its dummy
  // account's, checked) and checks no signature, so only the secret and token are of our own.
  let instanceCredentials: ImdsCredentials;

  beforeAll(async () => {
    // The operator's environment holds credentials of its own, which must reach no instance.
    restoreEnv = useFakeCredentials();
    s3 = await startS3Server();
    root = tempDir('user-data-e2e');
    instanceCredentials = {
      accessKeyId: s3.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: `instance-secret-${randomBytes(12).toString('hex')}`,
      sessionToken: `instance-token-${randomBytes(12).toString('hex')}`,
    };
    // The controller reaches s3rver through a named profile (`?profile=` in the locator): the
    // instances must not get that name, and cannot use the environment's fake credentials.
    writeFileSync(
      join(root, 'aws-credentials'),
      `[${OPERATOR_PROFILE}]\naws_access_key_id = ${s3.env.AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${s3.env.AWS_SECRET_ACCESS_KEY}\n`,
    );
    writeFileSync(join(root, 'aws-config'), '');
    process.env.AWS_SHARED_CREDENTIALS_FILE = join(root, 'aws-credentials');
    process.env.AWS_CONFIG_FILE = join(root, 'aws-config');
  });

  afterAll(async () => {
    await s3?.stop();
    restoreEnv();
    for (const [key, value] of Object.entries(savedFiles)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('boots N=3 instances from the rendered user-data; their agents learn who they are from IMDS, run 2 repeats against S3 and power off', async () => {
    const started = Date.now();
    const experiment = join(root, 'experiment');
    mkdirSync(join(experiment, 'app'), { recursive: true });
    writeFileSync(join(experiment, 'app', 'probe.sh'), PROBE);
    writeFileSync(
      join(experiment, 'spec.yaml'),
      [
        'name: user-data-e2e',
        'instances: 3',
        'repeats: 2',
        'artifact: ./app',
        'run: sh probe.sh {{rank}}',
        'startDelay: 300ms',
        'timeouts:',
        '  barrier: 60s',
        '  run: 30s',
        '  instance: 10m',
        'provider:',
        '  kind: aws',
        '  regions: [eu-west-1]',
        '  instanceType: t3a.micro',
        '  ami: ami-0123456789abcdef0',
        '  subnets:',
        '    eu-west-1: [subnet-0a1b2c3d4e5f60718]',
        '  iamInstanceProfile: lockstep-test-agents',
      ].join('\n'),
    );
    writeFileSync(join(root, 'download-agent.cjs'), downloadScript(require.resolve('@aws-sdk/client-s3')));

    // Launch order, numeric order and text order all differ: the hosts file must be numeric.
    const addresses = ['127.77.10.2', '127.77.100.1', '127.77.9.30'];
    const provider = createBootProvider({
      root: join(root, 'instances'),
      addresses,
      credentials: instanceCredentials,
      userData: {
        installCommand: 'command -v node >/dev/null',
        downloadCommand: `"$NODE" ${shellQuote(join(root, 'download-agent.cjs'))} "$AGENT_URI" "$AGENT_FILE" "$AGENT_REGION" "$AGENT_ENDPOINT"`,
        workDir: '.',
      },
    });

    const locator = `${s3.locator('user-data-e2e/')}&profile=${OPERATOR_PROFILE}`;
    const outcome = await runExperiment({ loaded: loadSpec(join(experiment, 'spec.yaml')), store: locator, provider, cwd: experiment, pollIntervalMs: 200 });
    const elapsedMs = Date.now() - started;

    const bootLogs = () =>
      provider.instances
        .map((i) => `--- ${i.id} (exit ${JSON.stringify(i.exit)})\n${readFileSync(join(i.dir, 'cloud-init-output.log'), 'utf8').split('\n').slice(-40).join('\n')}`)
        .join('\n');
    expect(
      {
        state: outcome.status.state,
        lost: outcome.lostInstances,
        failures: outcome.status.repeats.flatMap((r) => r.failures),
        // As the controller saw them when it decided (instance records may still say `running`).
        repeats: outcome.status.repeats.map((r) => `${r.state} ${r.results.length}/${r.members}`),
      },
      `${bootLogs()}\ninstance records as the controller saw them: ${JSON.stringify(outcome.status.instances.map((i) => [i.instanceId, i.state]))}`,
    ).toEqual({ state: 'done', lost: [], failures: [], repeats: ['done 3/3', 'done 3/3'] });
    expect(outcome.ok).toBe(true);

    // ---- What EC2 would have been sent: one launch, IMDSv2, tags readable from metadata.
    expect(provider.inputs).toHaveLength(1);
    const input = provider.inputs[0]!;
    expect(input).toMatchObject({
      MinCount: 1,
      MaxCount: 3,
      MetadataOptions: { HttpTokens: 'required', InstanceMetadataTags: 'enabled' },
      InstanceInitiatedShutdownBehavior: 'terminate',
      IamInstanceProfile: { Name: 'lockstep-test-agents' },
    });
    const tags = input.TagSpecifications!.find((t) => t.ResourceType === 'instance')!.Tags!;
    const boot = { runId: outcome.runId, store: outcome.store, agentKey: '', expiresAt: new Date(0) };
    expect(tags.map((t) => t.Key).sort()).toEqual(
      instanceTags({ runId: outcome.runId, specName: 'user-data-e2e', boot, plan: { addressKind: 'private' } as FleetRequest['plan'] })
        .map((t) => t.Key)
        .sort(),
    );
    const tag = (key: string) => tags.find((t) => t.Key === key)!.Value!;
    expect(tag(TAG.runId)).toBe(outcome.runId);
    expect(tag(TAG.store)).toMatch(/^b64u:/);
    expect(outcome.store).toContain(`profile=${OPERATOR_PROFILE}`);
    expect(decodeTagValue(tag(TAG.store))).toBe(withoutProfile(outcome.store));

    // ---- No credential in the user-data or the tags: not the operator's (environment or profile),
    // not the instance profile's, not the S3 server's.
    const userData = Buffer.from(input.UserData!, 'base64').toString('utf8');
    const secrets = [
      ...Object.values(FAKE_CREDENTIALS),
      s3.env.AWS_ACCESS_KEY_ID!,
      s3.env.AWS_SECRET_ACCESS_KEY!,
      instanceCredentials.secretAccessKey,
      instanceCredentials.sessionToken,
    ];
    for (const secret of secrets) {
      expect(userData).not.toContain(secret);
      expect(JSON.stringify(input)).not.toContain(secret);
    }
    expect(userData).not.toMatch(/AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)|aws_access_key_id/i);
    expect(userData).not.toContain(OPERATOR_PROFILE);
    expect(JSON.stringify(tags)).not.toContain(OPERATOR_PROFILE);
    // The real script, with only the install and the download substituted.
    expect(userData).toContain('export LOCKSTEP_IDENTITY=ec2');
    expect(userData).toContain('shutdown -h "+$1" "$2"');
    expect(userData).not.toContain('dnf install');
    expect(userData).not.toContain('AWS_EC2_METADATA_SERVICE_ENDPOINT');

    // ---- Every instance ran exactly that script, and ended on its own with status 0.
    const byId = new Map(provider.instances.map((i) => [i.id, i]));
    expect(provider.instances).toHaveLength(3);
    for (const instance of provider.instances) {
      expect(instance.userData).toBe(userData);
      expect(instance.exit, bootLogs()).toMatchObject({ code: 0, signal: null });
      expect(instance.endedBy).toBe('itself');
    }
    expect((await provider.list(outcome.runId)).map((i) => i.state)).toEqual(['ended', 'ended', 'ended']);

    // ---- Every node of every repeat: logs and result in the store, distinct ranks, the hosts file
    // sorted numerically, and an identity that came from its metadata stand-in.
    const sorted = [...addresses].sort((a, b) => numeric(a) - numeric(b));
    expect(sorted).toEqual(['127.77.9.30', '127.77.10.2', '127.77.100.1']);
    const idOfAddress = new Map(provider.instances.map((i) => [i.address, i.id]));
    const store = await openStore(outcome.store);
    const lastEndedAt = new Map<string, number>();
    try {
      for (const repeat of [1, 2]) {
        const seenRanks: number[] = [];
        for (let rank = 0; rank < 3; rank++) {
          const prefix = layout.node(outcome.runId, repeat, rank);
          const result = await getJson<NodeResult>(store, prefix + nodeFiles.result);
          const stdout = text(await store.get(prefix + nodeFiles.stdout));
          const stderr = text(await store.get(prefix + nodeFiles.stderr));
          expect(result, `result.json of repeat ${repeat} rank ${rank}`).toBeDefined();
          expect(stdout, `stdout.log of repeat ${repeat} rank ${rank}`).toBeDefined();
          expect(stderr, `stderr.log of repeat ${repeat} rank ${rank}`).toBeDefined();
          // Rank r is the r-th address in numeric order, on the instance the stand-in gave it to.
          const instanceId = idOfAddress.get(sorted[rank]!)!;
          expect(result).toMatchObject({ rank, n: 3, repeat, outcome: 'success', exitCode: 0, instanceId, address: sorted[rank] });
          expect(byId.has(result!.instanceId)).toBe(true);
          expect(stderr).toBe(`stderr of rank ${rank} on ${instanceId}\n`);
          const [first, marker, ...hosts] = stdout!.trim().split('\n');
          const seen = Object.fromEntries(first!.split(' ').map((kv) => kv.split('=')));
          expect(seen).toEqual({
            rank: String(rank),
            n: '3',
            repeat: String(repeat),
            address: sorted[rank],
            instance: instanceId,
            argrank: String(rank),
            // The node's command sees no credential in its environment: the SDK gets them from metadata.
            key: 'none',
            secret: 'none',
          });
          expect(marker).toBe('hosts:');
          expect(hosts).toEqual(sorted);
          seenRanks.push(Number(seen.rank));
          lastEndedAt.set(instanceId, Math.max(lastEndedAt.get(instanceId) ?? 0, result!.endedAt));
        }
        expect(seenRanks.sort()).toEqual([0, 1, 2]);
      }

      // The instances' own records: the id, address, region from their metadata; done.
      for (const instance of provider.instances) {
        const record = await getJson<InstanceRecord>(store, layout.instance(outcome.runId, instance.id));
        expect(record).toMatchObject({ instanceId: instance.id, address: instance.address, region: 'eu-west-1', state: 'done' });
      }

      // Nothing secret anywhere in the run's stored records and logs.
      const objects = await store.list(layout.run(outcome.runId));
      expect(objects.length).toBeGreaterThan(3 * 2 * 3);
      for (const object of objects) {
        const body = text(await store.get(object.key))!;
        for (const secret of secrets) expect(body, object.key).not.toContain(secret);
      }
    } finally {
      await store.dispose();
    }

    // ---- Each agent read its identity, the run's tags and its credentials from its own stand-in,
    // always with an IMDSv2 token.
    const tagKeys = [TAG.runId, TAG.store, TAG.expiresAt, TAG.addressKind];
    for (const instance of provider.instances) {
      const requests = instance.imds.requests;
      expect(requests.some((r) => r.method === 'PUT' && r.path === '/latest/api/token' && r.status === 200)).toBe(true);
      expect(requests.filter((r) => r.method === 'GET' && r.status === 200).every((r) => r.withToken)).toBe(true);
      expect(instance.imds.servedPaths()).toEqual(
        expect.arrayContaining([
          'instance-id',
          'local-ipv4',
          'placement/region',
          'placement/availability-zone',
          ...tagKeys.map((key) => `tags/instance/${key}`),
          'iam/security-credentials',
          'iam/security-credentials/lockstep-test-agents',
        ]),
      );
      expect(instance.imds.servedPaths()).not.toContain('public-ipv4');
    }

    // ---- Power-off: the dead-man's switch at boot (at the run's expiry), then once more, `now`,
    // after the instance's last repeat. Nothing else (no failure path).
    for (const instance of provider.instances) {
      const calls = readFileSync(join(instance.dir, 'power-off.log'), 'utf8').trim().split('\n');
      expect(calls, instance.id).toHaveLength(2);
      const [armedAt, ...armed] = calls[0]!.split(' ');
      expect(armed.slice(0, 1)).toEqual(['-h']);
      const minutes = Number(armed[1]!.replace(/^\+/, ''));
      expect(minutes).toBeGreaterThanOrEqual(9);
      expect(minutes).toBeLessThanOrEqual(11);
      expect(armed.slice(2).join(' ')).toBe(`lockstep run ${outcome.runId} expired`);
      const [offAt, ...off] = calls[1]!.split(' ');
      expect(off).toEqual(['-h', 'now']);
      expect(Number(armedAt)).toBeLessThanOrEqual(Number(offAt));
      expect(Number(offAt)).toBeGreaterThanOrEqual(Math.floor(lastEndedAt.get(instance.id)!));
      expect(Number(offAt)).toBeLessThanOrEqual(instance.exit!.at);
    }

    // ---- Nothing left running: no instance, no command, no server of the instances.
    expect(processesWhere((env) => (env.get('LOCKSTEP_WORKDIR') ?? '').startsWith(join(root, 'instances')))).toEqual([]);
    expect(processesMentioning(join(root, 'instances'))).toEqual([]);

    console.log(`user-data e2e: 3 instances × 2 repeats booted from user-data and done in ${(elapsedMs / 1000).toFixed(1)} s`);
  }, 180_000);
});
