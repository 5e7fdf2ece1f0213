import { writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import type { ReadyRecord } from '../core/manifest.ts';

/** Orders addresses numerically (IPv4 by octets, as `sort -V` did in the seed), then by text. */
export function compareAddresses(a: string, b: string): number {
  if (isIPv4(a) && isIPv4(b)) {
    const x = a.split('.').map(Number);
    const y = b.split('.').map(Number);
    for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  }
  if (isIPv4(a) !== isIPv4(b)) return isIPv4(a) ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Members in rank order: by address, then by instance id for instances that share one. */
export function rankOrder(records: readonly ReadyRecord[]): ReadyRecord[] {
  return [...records].sort((a, b) => compareAddresses(a.address, b.address) || (a.instanceId < b.instanceId ? -1 : 1));
}

export interface HostEntry {
  readonly rank: number;
  readonly address: string;
  readonly instanceId: string;
  readonly region?: string;
  readonly zone?: string;
}

export function hostEntries(members: readonly ReadyRecord[]): HostEntry[] {
  return members.map((m, rank) => ({ rank, address: m.address, instanceId: m.instanceId, region: m.region, zone: m.zone }));
}

/** The seed's `hosts.config` (one address a line, in rank order) and `hosts.json`. */
export async function writeHostsFiles(members: readonly ReadyRecord[], paths: { hosts: string; json: string }): Promise<void> {
  await Promise.all([
    writeFile(paths.hosts, members.map((m) => m.address).join('\n') + '\n'),
    writeFile(paths.json, JSON.stringify(hostEntries(members), null, 2) + '\n'),
  ]);
}
