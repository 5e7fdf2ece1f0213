import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { NETNS_NEEDS_FOLDER_STORE } from '../../spec/network.ts';
import { findSystemBinary } from '../../util/system-binary.ts';
import { eachLimited } from '../../util/pool.ts';
import { endProcessTree } from './processes.ts';
import { instanceMac, macText, overlayAddress, OVERLAY_MTU, RELAY_UNDERLAY, UNDERLAY_PREFIX_LENGTH, underlayAddress, VXLAN_ID, VXLAN_PORT } from './wan-relay-core.ts';

/**
 * The local provider's `isolation: netns`: every instance in a network namespace of its own, with
 * a veth pair onto a bridge of the run and an address from 198.18.0.0/15 (reserved for network
 * benchmarking). The bridge lives in a namespace of its own too (the run's hub), so nothing of a
 * run is ever in this machine's own network namespace: no uplink, no forwarding, no NAT, and no
 * host firewall (bridge netfilter) in the way. See docs/network.md.
 *
 * The instances do not meet on the bridge directly: each has a VXLAN interface holding its
 * address, whose datagrams go over its veth (the underlay, 198.19.0.0/16) to the run's WAN relay
 * in the hub (wan-relay.ts), which emulates delay, jitter, loss and rate in user space and
 * forwards them to the destination's underlay address. This needs no netem in the kernel.
 *
 * Names: `ls-<tag>-<i>` (instance namespaces), `ls-<tag>-hub`, `ls-<tag>-br` (the bridge, in the
 * hub, with the relay's underlay address), `ls-<tag>-h<i>` (veth end in the hub), `ls-<tag>-u<i>`
 * (veth end in instance i's namespace: the underlay), `ls-<tag>-n<i>` (the VXLAN interface in
 * instance i's namespace, with its address), where `<tag>` is 6 hex digits derived from the run
 * id. The bridge's alias records the run id and its expiry, so `listLockstepNetworks` can tell
 * whose a network is.
 */

/** Where `ip netns` keeps namespace names. */
const NETNS_DIR = '/var/run/netns';
const NAME = /^ls-([0-9a-f]{6})-(hub|\d+)$/;
const ALIAS = /^lockstep (\S+) (\S+)$/;
/** Interface names have at most 15 characters: `ls-xxxxxx-h9999`. */
export const MAX_NETNS_INSTANCES = 10_000;
/** The prefix covers the whole benchmarking range (the instances' addresses start at 198.18.0.1). */
const PREFIX_LENGTH = 15;

export class NetnsError extends Error {
  override readonly name = 'NetnsError';
  /** Bad input for the CLI: nothing of the run was started. */
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly reason: 'platform' | 'root' | 'ip' | 'store' | 'exists' | 'create',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** 6 hex digits naming everything of a run's network. */
export function networkTag(runId: string): string {
  return createHash('sha256').update(runId).digest('hex').slice(0, 6);
}

export function networkNames(tag: string) {
  return {
    hub: `ls-${tag}-hub`,
    bridge: `ls-${tag}-br`,
    namespace: (index: number) => `ls-${tag}-${index}`,
    hubVeth: (index: number) => `ls-${tag}-h${index}`,
    /** The VXLAN interface: the instance's primary interface, holding its address. */
    instanceVeth: (index: number) => `ls-${tag}-n${index}`,
    underlayVeth: (index: number) => `ls-${tag}-u${index}`,
  };
}

/** Instance `index`'s address: 198.18.0.1, 198.18.0.2, … (every run has its own bridge). */
export function netnsAddress(index: number): string {
  return overlayAddress(index);
}

const LOOPBACK_INSTEAD = 'or use `provider: { kind: local, isolation: loopback }` (no network emulation)';

/** `ip` from the PATH or the sbin folders (a user's PATH may lack them). */
export function findIp(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findSystemBinary('ip', env);
}

interface IpResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(binary: string, args: readonly string[]): Promise<IpResult> {
  return new Promise((resolve) => {
    execFile(binary, [...args], { timeout: 30_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (error && code === -1 ? error.message : '') });
    });
  });
}

export interface SupportCheck {
  readonly platform?: NodeJS.Platform;
  readonly uid?: number;
  /** The `ip` binary; null: not installed. Default: found on the PATH. */
  readonly ip?: string | null;
  /** The store locator the agents will open. */
  readonly store?: string;
}

/**
 * Whether this machine can give instances namespaces of their own: Linux, root, iproute2, and a
 * store the namespaces can reach (a folder). Returns the `ip` binary; throws `NetnsError` saying
 * what is missing and naming loopback mode as the alternative.
 */
export function checkNetnsSupport(check: SupportCheck = {}): string {
  const platform = check.platform ?? process.platform;
  if (platform !== 'linux') throw new NetnsError(`\`isolation: netns\` needs Linux network namespaces, and this is ${platform}: ${LOOPBACK_INSTEAD}`, 'platform');
  const uid = check.uid ?? process.getuid?.();
  if (uid !== 0) {
    throw new NetnsError(
      `\`isolation: netns\` needs root: creating network namespaces, veth pairs and tc queues needs CAP_NET_ADMIN (run lockstep as root, e.g. with sudo), ${LOOPBACK_INSTEAD}`,
      'root',
    );
  }
  const ip = check.ip === undefined ? findIp() : check.ip;
  if (!ip) {
    throw new NetnsError(
      `\`isolation: netns\` needs the \`ip\` and \`tc\` commands of iproute2, which are not installed: install iproute2 (\`apt-get install iproute2\`, \`dnf install iproute iproute-tc\`), ${LOOPBACK_INSTEAD}`,
      'ip',
    );
  }
  if (check.store?.startsWith('s3://')) throw new NetnsError(NETNS_NEEDS_FOLDER_STORE, 'store');
  return ip;
}

export interface NetnsInstance {
  readonly namespace: string;
  readonly address: string;
  /** The VXLAN interface inside the namespace: the instance's primary interface. */
  readonly device: string;
  /** The veth end inside the namespace, and its underlay address (toward the relay); without a relay, the veth is `device`. */
  readonly underlayDevice: string;
  readonly underlay?: string;
}

export interface RunNetwork {
  readonly tag: string;
  readonly hub: string;
  readonly bridge: string;
  /** The relay's underlay address (on the bridge); absent for a network without a relay. */
  readonly relay?: string;
  readonly instances: readonly NetnsInstance[];
}

export interface CreateOptions {
  readonly runId: string;
  readonly count: number;
  readonly expiresAt: Date;
  /** The `ip` binary (from `checkNetnsSupport`). */
  readonly ip: string;
  /**
   * Whether the instances talk through the WAN relay (VXLAN interfaces, the underlay; default).
   * Without (a run with no network emulation), each instance's address is on its veth, on the
   * bridge directly, as fast as the kernel goes.
   */
  readonly relay?: boolean;
}

/**
 * Creates the run's hub namespace and bridge, and per instance a namespace with a veth pair onto
 * the bridge, its address and loopback up. On any failure, whatever was made is removed again.
 */
export async function createRunNetwork(options: CreateOptions): Promise<RunNetwork> {
  const { ip, count } = options;
  if (count > MAX_NETNS_INSTANCES) throw new NetnsError(`\`isolation: netns\` takes at most ${MAX_NETNS_INSTANCES} instances, not ${count}`, 'create');
  const tag = networkTag(options.runId);
  const names = networkNames(tag);
  if ((await namespaceNames()).some((name) => name.startsWith(`ls-${tag}-`))) {
    throw new NetnsError(`A lockstep network with tag ${tag} (run ${options.runId}) exists already: remove it (\`lockstep gc\`) and try again`, 'exists');
  }
  const step = async (args: string[]) => {
    const result = await run(ip, args);
    if (result.code !== 0) {
      const said = result.stderr.trim().split('\n')[0] || `exit ${result.code}`;
      const denied = /Operation not permitted|Permission denied/i.test(said);
      throw new NetnsError(
        denied
          ? `Could not create network namespaces (ip ${args.join(' ')}: ${said}): this machine does not allow them here (a container without CAP_NET_ADMIN?); ${LOOPBACK_INSTEAD}`
          : `Could not create the run's network: ip ${args.join(' ')}: ${said}`,
        denied ? 'root' : 'create',
      );
    }
  };
  const relayed = options.relay ?? true;
  const instances: NetnsInstance[] = Array.from({ length: count }, (_, i) =>
    relayed
      ? { namespace: names.namespace(i), address: netnsAddress(i), device: names.instanceVeth(i), underlayDevice: names.underlayVeth(i), underlay: underlayAddress(i) }
      : { namespace: names.namespace(i), address: netnsAddress(i), device: names.instanceVeth(i), underlayDevice: names.instanceVeth(i) },
  );
  try {
    await step(['netns', 'add', names.hub]);
    await step(['-n', names.hub, 'link', 'add', names.bridge, 'type', 'bridge']);
    await step(['-n', names.hub, 'link', 'set', names.bridge, 'alias', `lockstep ${options.runId} ${options.expiresAt.toISOString()}`]);
    if (relayed) await step(['-n', names.hub, 'addr', 'add', `${RELAY_UNDERLAY}/${UNDERLAY_PREFIX_LENGTH}`, 'dev', names.bridge]);
    await step(['-n', names.hub, 'link', 'set', names.bridge, 'up']);
    await step(['-n', names.hub, 'link', 'set', 'lo', 'up']);
    await eachLimited(instances, 8, async (instance, i) => {
      const ns = ['-n', instance.namespace];
      await step(['netns', 'add', instance.namespace]);
      await step(['-n', names.hub, 'link', 'add', names.hubVeth(i), 'type', 'veth', 'peer', 'name', instance.underlayDevice, 'netns', instance.namespace]);
      await step(['-n', names.hub, 'link', 'set', names.hubVeth(i), 'master', names.bridge, 'up']);
      if (!instance.underlay) {
        await step([...ns, 'addr', 'add', `${instance.address}/${PREFIX_LENGTH}`, 'dev', instance.device]);
        await step([...ns, 'link', 'set', instance.device, 'up']);
        await step([...ns, 'link', 'set', 'lo', 'up']);
        return;
      }
      await step([...ns, 'addr', 'add', `${instance.underlay}/${UNDERLAY_PREFIX_LENGTH}`, 'dev', instance.underlayDevice]);
      await step([...ns, 'link', 'set', instance.underlayDevice, 'up']);
      // Every frame to the relay, which alone knows where each MAC is; no IPv6 link-local chatter.
      await step([
        ...ns, 'link', 'add', instance.device, 'type', 'vxlan', 'id', String(VXLAN_ID),
        'local', instance.underlay, 'remote', RELAY_UNDERLAY, 'dstport', String(VXLAN_PORT), 'dev', instance.underlayDevice, 'nolearning',
      ]);
      await step([...ns, 'link', 'set', instance.device, 'address', macText(instanceMac(i)), 'mtu', String(OVERLAY_MTU), 'addrgenmode', 'none']);
      await step([...ns, 'addr', 'add', `${instance.address}/${PREFIX_LENGTH}`, 'dev', instance.device]);
      await step([...ns, 'link', 'set', instance.device, 'up']);
      await step([...ns, 'link', 'set', 'lo', 'up']);
    });
  } catch (error) {
    await removeNetwork(tag, { ip }).catch(() => {});
    throw error;
  }
  return { tag, hub: names.hub, bridge: names.bridge, ...(relayed ? { relay: RELAY_UNDERLAY } : {}), instances };
}

/** The command that starts `argv` inside `namespace` (`ip netns exec` keeps the process id). */
export function inNamespace(ip: string, namespace: string, argv: readonly string[]): { file: string; args: string[] } {
  return { file: ip, args: ['netns', 'exec', namespace, ...argv] };
}

export interface LockstepNetwork {
  readonly tag: string;
  /** From the bridge's alias; absent when the hub is gone (a half-removed network). */
  readonly runId?: string;
  readonly expiresAt?: string;
  /** Every namespace of the network, the hub included. */
  readonly namespaces: readonly string[];
  /** Processes still running inside those namespaces. */
  readonly processes: number;
}

/** Every lockstep network on this machine (namespaces named `ls-<tag>-…`), for `lockstep gc`. */
export async function listLockstepNetworks(options: { ip?: string } = {}): Promise<LockstepNetwork[]> {
  const byTag = new Map<string, string[]>();
  for (const name of await namespaceNames()) {
    const match = NAME.exec(name);
    if (match) byTag.set(match[1]!, [...(byTag.get(match[1]!) ?? []), name]);
  }
  if (byTag.size === 0) return [];
  const ip = options.ip ?? findIp();
  const found: LockstepNetwork[] = [];
  for (const [tag, namespaces] of byTag) {
    const names = networkNames(tag);
    let runId: string | undefined;
    let expiresAt: string | undefined;
    let processes = 0;
    if (ip) {
      if (namespaces.includes(names.hub)) {
        const shown = await run(ip, ['-n', names.hub, '-j', 'link', 'show', names.bridge]);
        try {
          const alias = ALIAS.exec((JSON.parse(shown.stdout) as Array<{ ifalias?: string }>)[0]?.ifalias ?? '');
          runId = alias?.[1];
          expiresAt = alias?.[2];
        } catch {
          // No bridge (half-made or half-removed): the tag alone names it.
        }
      }
      for (const namespace of namespaces) processes += (await pidsIn(ip, namespace)).length;
    }
    found.push({ tag, runId, expiresAt, namespaces: namespaces.sort(), processes });
  }
  return found.sort((a, b) => a.tag.localeCompare(b.tag));
}

/**
 * Removes everything of a run's network: ends any process still inside its namespaces, then
 * deletes them (with them go their veths and the bridge). Returns the namespaces removed; a run
 * without a network (loopback mode) costs one directory read.
 */
export async function removeRunNetwork(runId: string, options: { ip?: string } = {}): Promise<string[]> {
  return removeNetwork(networkTag(runId), options);
}

/** `removeRunNetwork` by tag, for networks whose run id is unknown (see `listLockstepNetworks`). */
export async function removeNetwork(tag: string, options: { ip?: string } = {}): Promise<string[]> {
  if (!/^[0-9a-f]{6}$/.test(tag)) throw new Error(`Not a lockstep network tag: ${tag}`);
  const namespaces = (await namespaceNames()).filter((name) => name.startsWith(`ls-${tag}-`));
  if (namespaces.length === 0) return [];
  const ip = options.ip ?? findIp();
  if (!ip) throw new NetnsError('Cannot remove network namespaces without the `ip` command (iproute2)', 'ip');
  const pids = (await Promise.all(namespaces.map((namespace) => pidsIn(ip, namespace)))).flat();
  await Promise.all(pids.map((pid) => endProcessTree(pid, 2000)));
  const failures: string[] = [];
  await Promise.all(
    namespaces.map(async (namespace) => {
      const result = await run(ip, ['netns', 'delete', namespace]);
      if (result.code !== 0 && (await namespaceNames()).includes(namespace)) failures.push(`${namespace}: ${result.stderr.trim()}`);
    }),
  );
  if (failures.length > 0) throw new Error(`Could not remove network namespaces: ${failures.join('; ')}`);
  return namespaces.sort();
}

async function namespaceNames(): Promise<string[]> {
  return readdir(NETNS_DIR).catch(() => [] as string[]);
}

async function pidsIn(ip: string, namespace: string): Promise<number[]> {
  const result = await run(ip, ['netns', 'pids', namespace]);
  return result.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
}
