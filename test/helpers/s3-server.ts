/**
 * A real S3-compatible server (`s3rver` from npm) for tests, on loopback.
 *
 * ```ts
 * const s3 = await startS3Server();            // own process, free port, own data folder, one bucket
 * Object.assign(process.env, s3.env);           // dummy credentials and region for the SDK
 * const store = await openStore(s3.locator('runs-a/'));
 * …
 * await s3.stop();                              // kills the process, removes the folder
 * ```
 *
 * The server runs in its own Node process with `NODE_OPTIONS=--openssl-legacy-provider`: s3rver
 * encrypts its ListObjectsV2 continuation tokens with a cipher that OpenSSL 3 disables, so paging
 * fails with 500 InternalError without it. The process exits and removes its folder by itself when
 * the test process that started it goes away (it watches its stdin), so a crashed test leaves
 * nothing behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface S3ServerOptions {
  /** The bucket created at start. Default `lockstep-test`. */
  readonly bucket?: string;
  /** How long to wait for the server to accept connections. Default 20 s. */
  readonly startTimeoutMs?: number;
  /** The address it listens on. Default 127.0.0.1; a test's network namespaces reach it at an address of their bridge. */
  readonly address?: string;
}

export interface S3Server {
  /** `http://<address>:<port>`. */
  readonly endpoint: string;
  readonly port: number;
  /** The bucket created at start. */
  readonly bucket: string;
  /** s3rver's data folder; an object's bytes are in `<directory>/<bucket>/<key>._S3rver_object` ('' on moto). */
  readonly directory: string;
  /**
   * Dummy credentials and region for this server (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
   * `AWS_REGION`), `AWS_EC2_METADATA_DISABLED` so the SDK never looks for an instance role off
   * loopback, and the switch that silences the SDK's "Node < 22" warning: what a child process
   * (an agent) needs besides the locator. Merge it into `process.env` to use the SDK in a test.
   */
  readonly env: Readonly<Record<string, string>>;
  /**
   * The store locator of `prefix` in this server's bucket (`s3://bucket/prefix?region=…&endpoint=…&pathStyle=true`).
   * `endpoint` replaces the server's own, e.g. with a fault-injecting proxy in front of it.
   */
  locator(prefix?: string, options?: { readonly endpoint?: string }): string;
  /** Stops the process and removes its data folder. Safe to call twice. */
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

/**
 * Runs inside the server's own process (CommonJS, via `node -e <script> <directory> <bucket>`).
 * The folder is on the command line so that the suite's end-of-run check for stray processes
 * (test/global-setup.ts) sees a server left running.
 */
const CHILD_SCRIPT = `
const [directory, bucket, address] = process.argv.slice(1);
process.title = 'lockstep-s3rver ' + directory;
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({
  address,
  port: 0,
  silent: true,
  directory,
  vhostBuckets: false,
  configureBuckets: [{ name: bucket, configs: [] }],
});
server.run().then(
  ({ port }) => process.stdout.write(JSON.stringify({ port }) + '\\n'),
  (error) => { console.error(error && error.stack || error); process.exit(1); },
);
// The test process went away without stop(): clean up and leave.
const orphaned = () => {
  require('node:fs').rmSync(directory, { recursive: true, force: true });
  process.exit(0);
};
process.stdin.on('end', orphaned);
process.stdin.on('error', orphaned);
process.stdin.resume();
`;

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const bucket = options.bucket ?? 'lockstep-test';
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const address = options.address ?? '127.0.0.1';
  const directory = await mkdtemp(join(process.env.LOCKSTEP_TEST_ROOT ?? tmpdir(), 'lockstep-s3rver-'));
  const child = spawn(process.execPath, ['-e', CHILD_SCRIPT, directory, bucket, address], {
    env: {
      PATH: process.env.PATH ?? '',
      NODE_OPTIONS: '--openssl-legacy-provider',
      S3RVER_MODULE: require.resolve('s3rver'),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // The server never keeps this process alive. When this process ends without calling stop()
  // (even by SIGKILL), the child sees its stdin close, removes its folder and exits.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await killAndWait(child);
      await rm(directory, { recursive: true, force: true });
    })());

  try {
    const port = await readPort(child, startTimeoutMs);
    await waitForBucket(address, port, bucket, startTimeoutMs);
    return serverAt(address, port, bucket, directory, stop);
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Said when a test needs `moto_server` and this machine has none. */
export const MOTO_MISSING =
  "moto_server is not installed (the S3 tests of conditional writes use it): install it with `pip install 'moto[server]'`, or run scripts/test-deps.sh";

/** The `moto_server` on this machine, if any. */
export function motoServerPath(): string | undefined {
  const found = spawnSync('bash', ['-c', 'command -v moto_server'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/**
 * `bash -c MOTO_WATCHDOG <moto_server> <port>` (0: any free port): the emulator goes when this
 * process goes (its stdin closes; background jobs read /dev/null, so the watcher reads the saved
 * stdin, fd 3). On SIGTERM the shell exits only once moto_server has (which can take seconds), so
 * that waiting for the shell waits for the emulator.
 */
export const MOTO_WATCHDOG =
  'exec 3<&0; "$0" -H 127.0.0.1 -p "$1" & pid=$!; trap \'kill "$pid" 2>/dev/null; wait "$pid"; exit 143\' TERM; { read -r _ <&3; kill "$pid"; } 2>/dev/null & wait "$pid"';

/**
 * S3 on `moto_server` (Python moto), on a free loopback port, with one bucket. Unlike s3rver it
 * honours conditional writes (`If-None-Match: *`), as AWS S3 does.
 */
export async function startMotoS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const binary = motoServerPath();
  if (!binary) throw new Error(MOTO_MISSING);
  const bucket = options.bucket ?? 'lockstep-test';
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const child = spawn('bash', ['-c', MOTO_WATCHDOG, binary, '0'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      child.stdin?.end();
      await killAndWait(child);
    })());
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let said = '';
      const timer = setTimeout(() => reject(new Error(`moto_server did not start within ${startTimeoutMs} ms: ${said}`)), startTimeoutMs);
      const onData = (chunk: Buffer) => {
        said = (said + chunk.toString('utf8')).slice(-4000);
        const port = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(said)?.[1];
        if (!port) return;
        clearTimeout(timer);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(Number(port));
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => reject(new Error(`moto_server exited (code ${code}): ${said}`)));
    });
    if ((await httpStatus('127.0.0.1', port, `/${bucket}`, 'PUT')) !== 200) throw new Error(`moto_server did not create bucket ${bucket}`);
    return serverAt('127.0.0.1', port, bucket, '', stop);
  } catch (error) {
    await stop();
    throw error;
  }
}

function serverAt(address: string, port: number, bucket: string, directory: string, stop: () => Promise<void>): S3Server {
  const endpoint = `http://${address}:${port}`;
  return {
    endpoint,
    port,
    bucket,
    directory,
    env: {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    locator(prefix = '', locatorOptions = {}) {
      const query = new URLSearchParams({
        region: 'us-east-1',
        endpoint: locatorOptions.endpoint ?? endpoint,
        pathStyle: 'true',
      });
      return `s3://${bucket}/${prefix.replace(/^\/+/, '')}?${query}`;
    },
    stop,
  };
}

/** Waits for the `{"port":…}` line the child prints once it listens. */
function readPort(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const fail = (reason: string) => {
      cleanup();
      const details = stderr.trim() ? `\n${stderr.trim().split('\n').slice(-20).join('\n')}` : '';
      reject(new Error(`s3rver did not start: ${reason}${details}`));
    };
    const onStdout = (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const line = stdout.split('\n').find((candidate) => candidate.startsWith('{'));
      if (!line) return;
      const port = Number((JSON.parse(line) as { port?: unknown }).port);
      cleanup();
      if (Number.isInteger(port) && port > 0) resolve(port);
      else reject(new Error(`s3rver did not start: it reported \`${line}\``));
    };
    const onStderr = (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-8_000);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      fail(`its process exited (${signal ?? `code ${code}`})`);
    const onError = (error: Error) => fail(`its process could not be spawned (${error.message})`);
    const timer = setTimeout(() => fail(`no port reported within ${timeoutMs} ms`), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onStdout);
      child.stderr?.off('data', onStderr);
      child.off('exit', onExit);
      child.off('error', onError);
      // Keep draining whatever the server still prints, and let this process exit without it.
      child.stdout?.resume();
      child.stderr?.resume();
    };
    child.stdout?.on('data', onStdout);
    child.stderr?.on('data', onStderr);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** Polls until a TCP connection succeeds and the bucket answers a listing. */
async function waitForBucket(host: string, port: number, bucket: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      await tcpConnect(host, port);
      const status = await httpStatus(host, port, `/${bucket}?list-type=2&max-keys=1`);
      if (status === 200) return;
      last = `listing the bucket answered HTTP ${status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`s3rver did not start: ${host}:${port} not ready within ${timeoutMs} ms (${last})`);
}

function tcpConnect(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(2_000, () => socket.destroy(new Error('connect timed out')));
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
    socket.once('error', reject);
  });
}

function httpStatus(host: string, port: number, path: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy(new Error('request timed out')));
    req.once('error', reject);
    req.end();
  });
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}
