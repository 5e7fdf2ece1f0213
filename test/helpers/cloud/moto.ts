/**
 * `moto_server` (the stateful AWS emulator: EC2, IAM, SSM, STS, S3 on one port) on a free loopback
 * port, for tests of the AWS path. It boots nothing: test/helpers/cloud/instance-runner.ts plays
 * the hypervisor.
 *
 * ```ts
 * const moto = await startMoto();
 * // lockstep's environment: { ...process.env, ...moto.env }
 * await moto.stop();
 * ```
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeInstancesCommand, DescribeRegionsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { MOTO_WATCHDOG, motoServerPath } from '../s3-server.ts';

export interface Moto {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /**
   * What any AWS user would set to use it: `AWS_ENDPOINT_URL`, keys the emulator accepts (any), a
   * default region, and no metadata-service lookups from this machine.
   */
  readonly env: Readonly<Record<string, string>>;
  /** An EC2 client of a region, through the emulator. */
  ec2(region: string): EC2Client;
  stop(): Promise<void>;
}

/** The account every request to moto belongs to. */
export const MOTO_ACCOUNT = '123456789012';

export const MOTO_MISSING =
  "moto_server is not installed: the AWS tests run against it. Install it with `pip install 'moto[server]'` (Python ≥ 3.9), or run scripts/test-deps.sh";


/**
 * `warm`: the service whose first request makes moto load its models (seconds), paid here once.
 * Default `ec2`.
 */
export async function startMoto(options: { readonly warm?: 'ec2' | 's3' } = {}): Promise<Moto> {
  const binary = motoServerPath();
  if (!binary) throw new Error(MOTO_MISSING);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // The emulator goes when this process goes (its stdin closes), so that a crashed test leaves none behind.
    const child = spawn('bash', ['-c', MOTO_WATCHDOG, binary, String(port)], { stdio: ['pipe', 'ignore', 'pipe'], detached: true, env: { ...process.env, ...amiEnv(), ...suiteMark() } });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const endpoint = `http://127.0.0.1:${port}`;
    const up = await Promise.race([waitUntilAnswering(endpoint).then(() => true), exited.then(() => false)]);
    if (!up) {
      // The port was taken between our check and moto's bind: try another.
      if (attempt < 5) continue;
      throw new Error(`moto_server did not start: ${stderr}`);
    }
    const env = {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const clients = new Map<string, EC2Client>();
    const ec2 = (region: string) => {
      let client = clients.get(region);
      if (!client) {
        client = new EC2Client({ region, endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
        clients.set(region, client);
      }
      return client;
    };
    if (options.warm === 's3') {
      await fetch(endpoint, { headers: { authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request' } }).then((r) => r.arrayBuffer());
    } else {
      // moto makes a region's EC2 state on its first request there, and answers nothing else meanwhile:
      // every region now, rather than in the middle of a run.
      await ec2('us-east-1').send(new DescribeInstancesCommand({}));
      const regions = (await ec2('us-east-1').send(new DescribeRegionsCommand({}))).Regions ?? [];
      await Promise.all(regions.map((r) => ec2(r.RegionName!).send(new DescribeInstancesCommand({}))));
    }
    return {
      endpoint,
      env,
      ec2,
      stop: async () => {
        for (const client of clients.values()) client.destroy();
        await stopGroup(child, exited);
      },
    };
  }
}

/** Names the suite's temporary root in the emulator's environment, so that the suite's end finds a moto left running. */
function suiteMark(): Record<string, string> {
  const root = process.env.LOCKSTEP_TEST_ROOT;
  return root ? { LOCKSTEP_TEST_SUITE_OF: root } : {};
}

let amiFile: string | undefined | null;
/**
 * moto loads its whole AMI catalogue (over a thousand images) into every region it touches, which
 * takes seconds a region. The emulated cloud needs only the Amazon Linux 2023 images that moto's
 * SSM parameters name (tests register their own): MOTO_AMIS_PATH with just those, made once from
 * moto's own resources with moto's Python. Without that Python at hand, moto keeps its catalogue.
 */
function amiEnv(): Record<string, string> {
  if (amiFile === undefined) {
    amiFile = null;
    const script = spawnSync('bash', ['-c', 'command -v pyenv >/dev/null && pyenv which moto_server || command -v moto_server'], { encoding: 'utf8' }).stdout.trim();
    const python = script ? /^#!\s*(\S+python\S*)/.exec(readFileSync(script, 'utf8').split('\n')[0] ?? '')?.[1] : undefined;
    if (python) {
      // Below the suite's temporary root when there is one (removed at the end even if this worker is killed).
      const dir = mkdtempSync(join(process.env.LOCKSTEP_TEST_ROOT ?? tmpdir(), 'lockstep-moto-amis-'));
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, 'amis.json');
      const made = spawnSync(python, ['-c', AL2023_AMIS, file], { encoding: 'utf8' });
      if (made.status === 0) amiFile = file;
    }
  }
  return amiFile ? { MOTO_AMIS_PATH: amiFile } : {};
}

const AL2023_AMIS = `
import glob, gzip, json, os, sys, moto
amis = {}
for path in glob.glob(os.path.join(os.path.dirname(moto.__file__), 'ec2', 'resources', 'latest_amis', '*.json*')):
    data = gzip.open(path).read() if path.endswith('.gz') else open(path, 'rb').read()
    for ami in json.loads(data):
        if ami.get('name', '').startswith('al2023-ami-2023') and 'minimal' not in ami['name']:
            amis[ami['ami_id']] = ami
json.dump(list(amis.values()), open(sys.argv[1], 'w'))
`;

async function stopGroup(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // Gone already.
    }
  };
  signal('SIGTERM');
  const done = await Promise.race([exited.then(() => true), delay(5000).then(() => false)]);
  if (!done) {
    signal('SIGKILL');
    await exited;
  }
}

async function waitUntilAnswering(endpoint: string): Promise<void> {
  for (;;) {
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      return;
    } catch {
      await delay(100);
    }
  }
}

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
