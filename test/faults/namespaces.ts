import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { findIp } from '../../src/provider/local/netns.ts';
import { findSystemBinary } from '../../src/util/system-binary.ts';

/**
 * Network namespaces made by a test, for fault mechanics on real packets: nothing here touches
 * this machine's own network namespace.
 */

/** Why the fault mechanics cannot be tested here (root, ip, nft, namespaces), or undefined. */
export function missingFaultSupport(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (namespaces, nftables)';
  if (!findIp()) return 'needs `ip` (iproute2)';
  if (!findSystemBinary('nft')) return 'needs `nft` (nftables): run scripts/test-deps.sh';
  if (!findSystemBinary('nsenter')) return 'needs `nsenter` (util-linux)';
  return undefined;
}

const ip = (...args: string[]) => execFileSync(findIp()!, args, { stdio: 'pipe', encoding: 'utf8' });

/**
 * `argv` inside a namespace by nsenter, which (unlike `ip netns exec`) keeps this machine's /sys:
 * nft and the probes find the cgroup hierarchy where it is.
 */
export const inNamespace = (namespace: string, argv: readonly string[]) => ['nsenter', `--net=/var/run/netns/${namespace}`, ...argv];

export interface Pair {
  /** Namespace names. */
  readonly a: string;
  readonly b: string;
  readonly addressA: string;
  readonly addressB: string;
  /** Runs `argv` inside a namespace. */
  exec(namespace: string, argv: readonly string[], input?: string): string;
  remove(): void;
}

/** Two namespaces joined by a veth pair, 198.18.250.1 and .2 (the benchmarking range). */
export function namespacePair(): Pair {
  const tag = randomBytes(3).toString('hex');
  const a = `lst-${tag}-a`;
  const b = `lst-${tag}-b`;
  ip('netns', 'add', a);
  ip('netns', 'add', b);
  try {
    ip('-n', a, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', b);
    ip('-n', a, 'addr', 'add', '198.18.250.1/24', 'dev', 'va');
    ip('-n', b, 'addr', 'add', '198.18.250.2/24', 'dev', 'vb');
    for (const [ns, dev] of [[a, 'va'], [b, 'vb']] as const) {
      ip('-n', ns, 'link', 'set', dev, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
  } catch (error) {
    for (const ns of [a, b]) execFileSync(findIp()!, ['netns', 'delete', ns], { stdio: 'ignore' });
    throw error;
  }
  return {
    a,
    b,
    addressA: '198.18.250.1',
    addressB: '198.18.250.2',
    exec: (namespace, argv, input) => execFileSync('nsenter', inNamespace(namespace, argv).slice(1), { input, stdio: 'pipe', encoding: 'utf8' }),
    remove: () => {
      for (const ns of [a, b]) execFileSync(findIp()!, ['netns', 'delete', ns], { stdio: 'ignore' });
    },
  };
}

/** A TCP server in `namespace` on address:port that answers every connection with `hi`. */
export function tcpServer(namespace: string, address: string, port: number): Promise<ChildProcess> {
  const child = spawn('nsenter', [`--net=/var/run/netns/${namespace}`, process.execPath, '-e', `
    require('node:net').createServer((s) => s.end('hi')).listen(${port}, ${JSON.stringify(address)}, () => console.log('listening'));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`the server ended (${code})`)));
  });
}

/**
 * Whether a TCP connection from `namespace` to address:port gets its answer within `ms`. With
 * `cgroup`, the probing process runs in that cgroup (its folder path) first.
 */
export function reaches(namespace: string, address: string, port: number, options: { ms?: number; bind?: string; cgroup?: string } = {}): boolean {
  const script = `
    ${options.cgroup ? `require('node:fs').writeFileSync(${JSON.stringify(`${options.cgroup}/cgroup.procs`)}, String(process.pid));` : ''}
    const socket = require('node:net').connect({ host: ${JSON.stringify(address)}, port: ${port}${options.bind ? `, localAddress: ${JSON.stringify(options.bind)}` : ''} });
    socket.on('data', () => { console.log('yes'); process.exit(0); });
    socket.on('error', () => { console.log('no'); process.exit(0); });
    setTimeout(() => { console.log('no'); process.exit(0); }, ${options.ms ?? 400});
  `;
  return execFileSync('nsenter', [`--net=/var/run/netns/${namespace}`, process.execPath, '-e', script], { encoding: 'utf8' }).trim() === 'yes';
}
