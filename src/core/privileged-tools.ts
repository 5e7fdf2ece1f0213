import type { RunManifest } from './manifest.ts';

/**
 * The commands a run's agents will run with root's rights: `tc` for network emulation. A provider
 * whose hosts are not ours (SSH) checks before it starts anything that each host has them, and
 * that the login may run them (root, or `sudo -n`).
 */
export function privilegedToolsFor(manifest: Pick<RunManifest, 'network'>): string[] {
  const tools: string[] = [];
  if (manifest.network) tools.push('tc');
  return tools;
}

/** What each tool is for, in a refusal's words. */
export const PRIVILEGED_PURPOSE: Readonly<Record<string, string>> = {
  tc: 'network emulation (`network` in the spec)',
};
