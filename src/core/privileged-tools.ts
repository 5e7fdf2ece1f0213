import type { RunManifest } from './manifest.ts';

/**
 * The commands a run's agents will run with root's rights: `tc` for network emulation (the spec's
 * `network`, and `network` faults), `nft` for partitions. A provider whose hosts are not ours (SSH)
 * checks, before it starts anything, that each host has them and that the login may run them (as
 * root, or through `sudo -n`).
 */
export function privilegedToolsFor(manifest: Pick<RunManifest, 'network' | 'faults'>): string[] {
  const actions = new Set((manifest.faults?.events ?? []).map((e) => e.action));
  const tools: string[] = [];
  if (manifest.network || actions.has('network')) tools.push('tc');
  if (actions.has('partition')) tools.push('nft');
  return tools;
}

/** What each tool is for and where it comes from, in a refusal's words. */
export const PRIVILEGED_TOOLS: Readonly<Record<string, { readonly purpose: string; readonly feature: string; readonly install: string }>> = {
  tc: { purpose: 'network emulation (`network`, or a `network` fault, in the spec)', feature: 'network emulation', install: 'iproute2 (`iproute-tc` on Fedora-family systems)' },
  nft: { purpose: 'partitions (a `partition` fault in the spec)', feature: 'partitions', install: 'nftables' },
};
