/**
 * Real SSH hosts for tests: K network namespaces, each with its own address and its own OpenSSH
 * server (Debian's `/usr/sbin/sshd -D -f <config>`), on a bridge of the test's own in this
 * machine's namespace (198.18.<x>.0/24, reserved for benchmarking; the bridge holds .1). Keys are
 * made per test. Nothing leaves the bridge: no route, no forwarding, no NAT.
 *
 * ```ts
 * const lab = await startTestHosts(4);
 * writeFileSync(inventory, lab.inventory());
 * …
 * await lab.stop();          // ends every process in the namespaces, removes them and the bridge
 * ```
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify } from 'yaml';
import { tempDir } from '../../helpers/temp.ts';
import { isZombie } from '../../helpers/proc.ts';

export const SSHD = '/usr/sbin/sshd';

export interface TestHost {
  /** Inventory name: `h0`, `h1`, … */
  readonly name: string;
  readonly address: string;
  readonly namespace: string;
  /** The host's lockstep folder (its `lockstep_work_dir`). */
  readonly workDir: string;
  readonly sshd: ChildProcess;
}

export interface TestHosts {
  readonly hosts: readonly TestHost[];
  readonly dir: string;
  /** The bridge's address in this machine's namespace: what the hosts reach this machine at. */
  readonly gateway: string;
  /** A private key every host accepts, and one none accepts. */
  readonly keyFile: string;
  readonly strangerKeyFile: string;
  /** A known-hosts file with every host's key. */
  readonly knownHosts: string;
  /** An Ansible YAML inventory of the hosts (per-host variables added or replaced by `hostVars`). */
  inventory(options?: { hostVars?: (host: TestHost, index: number) => Record<string, unknown>; extraHosts?: Record<string, Record<string, unknown>> }): string;
  /** Kills the sshd processes serving the host's open connections (the listener stays). */
  dropConnections(host: TestHost): number;
  /** Processes running in the host's namespace other than its sshd listener. */
  processesOn(host: TestHost): number[];
  stop(): Promise<void>;
}

/** Why this machine cannot run the SSH tests, or undefined. */
export function missingSshSupport(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux network namespaces';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  if (!existsSync(SSHD)) return `needs OpenSSH's server at ${SSHD}: run scripts/test-deps.sh (apt-get install openssh-server)`;
  try {
    execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'needs ssh-keygen: apt-get install openssh-client';
  }
  return undefined;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A /24 in 198.18.100-254.0 that no interface of this machine's namespace uses. */
function freeSubnet(): number {
  const used = ip('-4', '-o', 'addr', 'show');
  for (let attempt = 0; attempt < 50; attempt++) {
    const x = randomInt(100, 255);
    if (!used.includes(`198.18.${x}.`)) return x;
  }
  throw new Error('no free 198.18.x.0/24 for the test hosts');
}

export async function startTestHosts(count: number, options: { env?: Record<string, string> } = {}): Promise<TestHosts> {
  const dir = tempDir('ssh-hosts');
  const tag = randomBytes(3).toString('hex');
  const subnet = freeSubnet();
  const gateway = `198.18.${subnet}.1`;
  const bridge = `ls${tag}b`;
  const hosts: TestHost[] = [];
  const namespaces: string[] = [];
  const keygen = (file: string, comment: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: 'ignore' });

  const stop = async () => {
    for (const host of hosts) host.sshd.kill('SIGTERM');
    for (const namespace of namespaces) {
      const pids = ip('netns', 'pids', namespace).split('\n').map(Number).filter((pid) => pid > 0);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    }
    await Promise.all(hosts.map((h) => (h.sshd.exitCode === null && h.sshd.signalCode === null ? new Promise((r) => h.sshd.once('exit', r)) : undefined)));
    for (const namespace of namespaces) {
      try {
        ip('netns', 'delete', namespace);
      } catch {}
    }
    try {
      ip('link', 'delete', bridge);
    } catch {}
  };

  try {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const keyFile = join(dir, 'id_client');
    const strangerKeyFile = join(dir, 'id_stranger');
    keygen(keyFile, 'lockstep-test-client');
    keygen(strangerKeyFile, 'lockstep-test-stranger');
    const authorizedKeys = join(dir, 'authorized_keys');
    writeFileSync(authorizedKeys, readFileSync(`${keyFile}.pub`), { mode: 0o600 });

    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${gateway}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const known: string[] = [];
    for (let i = 0; i < count; i++) {
      const name = `h${i}`;
      const namespace = `lssh-${tag}-${i}`;
      const address = `198.18.${subnet}.${10 + i}`;
      const hostDir = join(dir, name);
      mkdirSync(hostDir);
      ip('netns', 'add', namespace);
      namespaces.push(namespace);
      const outer = `ls${tag}v${i}`;
      ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace);
      ip('link', 'set', outer, 'master', bridge, 'up');
      ip('-n', namespace, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', namespace, 'link', 'set', 'eth0', 'up');
      ip('-n', namespace, 'link', 'set', 'lo', 'up');

      const hostKey = join(hostDir, 'ssh_host_ed25519_key');
      keygen(hostKey, name);
      known.push(`${address} ${readFileSync(`${hostKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}`);
      const config = join(hostDir, 'sshd_config');
      writeFileSync(
        config,
        [
          `ListenAddress ${address}:22`,
          `HostKey ${hostKey}`,
          `PidFile ${join(hostDir, 'sshd.pid')}`,
          // Root's keys are the test's; another login's are in its home folder.
          `AuthorizedKeysFile ${authorizedKeys} %h/.ssh/authorized_keys`,
          'StrictModes no',
          'UsePAM no',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'PermitRootLogin prohibit-password',
          'Subsystem sftp internal-sftp',
          'MaxStartups 100',
          'LogLevel ERROR',
          ...(options.env ? [`SetEnv ${Object.entries(options.env).map(([k, v]) => `${k}=${v}`).join(' ')}`] : []),
        ].join('\n') + '\n',
      );
      const sshd = spawn('ip', ['netns', 'exec', namespace, SSHD, '-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      sshd.stderr?.on('data', () => {});
      hosts.push({ name, address, namespace, workDir: join(hostDir, 'lockstep'), sshd });
    }
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, known.join('\n') + '\n');
    await Promise.all(hosts.map((h) => waitForPort(h.address, 22, h.sshd)));

    return {
      hosts,
      dir,
      gateway,
      keyFile,
      strangerKeyFile,
      knownHosts,
      inventory(inventoryOptions = {}) {
        const entries: Record<string, Record<string, unknown>> = {};
        hosts.forEach((host, index) => {
          entries[host.name] = { ansible_host: host.address, lockstep_work_dir: host.workDir, ...inventoryOptions.hostVars?.(host, index) };
        });
        Object.assign(entries, inventoryOptions.extraHosts ?? {});
        return stringify({ all: { vars: { ansible_user: 'root', ansible_ssh_private_key_file: keyFile }, hosts: entries } });
      },
      dropConnections(host) {
        const listener = host.sshd.pid!;
        // The listener runs under `ip netns exec` (same pid after exec); its children serve connections.
        let killed = 0;
        for (const pid of childrenOf(listener)) {
          try {
            process.kill(pid, 'SIGKILL');
            killed++;
          } catch {}
        }
        return killed;
      },
      processesOn(host) {
        const listener = host.sshd.pid!;
        return ip('netns', 'pids', host.namespace)
          .split('\n')
          .map(Number)
          .filter((pid) => pid > 0 && pid !== listener && !childrenOf(listener).includes(pid) && !isZombie(pid));
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function childrenOf(parent: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) found.push(Number(entry));
    } catch {}
  }
  return found;
}

async function waitForPort(host: string, port: number, sshd: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (sshd.exitCode !== null) throw new Error(`sshd for ${host} exited with ${sshd.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await delay(50);
  }
  throw new Error(`sshd on ${host}:${port} did not start`);
}
