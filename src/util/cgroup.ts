import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SocketGroup } from './nft.ts';

/**
 * A cgroup (v2) of its own for the node's command, in loopback mode, where only the sending
 * socket's cgroup tells nftables which node a packet comes from (nft.ts). Every run of the command
 * is put in it before it starts; what it starts inherits it.
 */

/** Where nft resolves cgroup paths from. */
const NFT_CGROUP_ROOT = '/sys/fs/cgroup';

/** The mount point of the cgroup2 hierarchy (Linux), from /proc/mounts. */
export function cgroup2Mount(mounts?: string): string | undefined {
  let text = mounts;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/mounts', 'utf8');
    } catch {
      return undefined;
    }
  }
  for (const line of text.split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (type === 'cgroup2' && mountPoint) return mountPoint;
  }
  return undefined;
}

/** Why this machine cannot match sockets by cgroup, or undefined when it can. */
export function cgroupProblem(mount = cgroup2Mount()): string | undefined {
  if (!mount) return 'this machine has no cgroup v2 hierarchy (no `cgroup2` in /proc/mounts)';
  if (mount !== NFT_CGROUP_ROOT && !mount.startsWith(`${NFT_CGROUP_ROOT}/`)) return `the cgroup v2 hierarchy is mounted at ${mount}, outside ${NFT_CGROUP_ROOT}, where nft looks for it`;
  return undefined;
}

export interface CommandGroup extends SocketGroup {
  /** Absolute path of the group's folder. */
  readonly path: string;
  /** Moves a process (and with it what it starts later) into the group. */
  add(pid: number): Promise<void>;
  /** Moves any process still inside to the root group, and removes the group. */
  remove(): Promise<void>;
}

/** Creates (or takes over) the group `name` at the top of the cgroup2 hierarchy. */
export async function createCommandGroup(name: string, mount = cgroup2Mount()): Promise<CommandGroup> {
  const problem = cgroupProblem(mount);
  if (problem) throw new Error(`Cannot give the command a cgroup of its own: ${problem}`);
  const path = join(mount!, name);
  await mkdir(path, { recursive: true });
  const relative = mount === NFT_CGROUP_ROOT ? '' : `${mount!.slice(NFT_CGROUP_ROOT.length + 1)}/`;
  return {
    path,
    nftPath: `${relative}${name}`,
    level: 1,
    add: (pid) => writeFile(join(path, 'cgroup.procs'), `${pid}\n`),
    remove: () => removeGroup(path, mount!),
  };
}

/** Removes a group folder, after moving what still runs inside to the root group. */
export async function removeGroup(path: string, mount = cgroup2Mount()!): Promise<void> {
  if (!existsSync(path)) return;
  const left = (await readFile(join(path, 'cgroup.procs'), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean);
  for (const pid of left) await writeFile(join(mount, 'cgroup.procs'), `${pid}\n`).catch(() => {});
  await rmdir(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}
