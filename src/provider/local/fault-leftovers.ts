import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { faultNamePrefix } from '../../core/faults.ts';
import { cgroup2Mount, removeGroup } from '../../util/cgroup.ts';
import { deleteTablesWithPrefix, type NftRunner } from '../../util/nft.ts';
import { findSystemBinary } from '../../util/system-binary.ts';

/**
 * What a run's faults may leave in this machine's own network namespace when an agent dies without
 * healing them (loopback mode: partition tables and command cgroups; in netns mode they go with the
 * namespaces). The local provider removes them once the run's last agent is gone. Returns what it
 * removed; never throws.
 */
export async function removeFaultLeftovers(runId: string): Promise<string[]> {
  const prefix = faultNamePrefix(runId);
  const removed: string[] = [];
  const nft = findSystemBinary('nft');
  if (nft && process.getuid?.() === 0) {
    const run: NftRunner = (args) =>
      new Promise((resolve) =>
        execFile(nft, [...args], { timeout: 10_000, encoding: 'utf8' }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) || 1 : 0, stdout, stderr })),
      );
    removed.push(...(await deleteTablesWithPrefix(run, prefix).catch(() => [])).map((table) => `nft table ${table}`));
  }
  const mount = cgroup2Mount();
  if (mount) {
    for (const name of await readdir(mount).catch(() => [] as string[])) {
      if (!name.startsWith(prefix)) continue;
      await removeGroup(join(mount, name), mount)
        .then(() => removed.push(`cgroup ${name}`))
        .catch(() => {});
    }
  }
  return removed;
}
