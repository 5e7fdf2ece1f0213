import type { Spec } from '../spec/schema.ts';
import { cgroupProblem } from '../util/cgroup.ts';
import { findSystemBinary } from '../util/system-binary.ts';

/** This machine cannot apply the spec's partitions (bad input: nothing was started). */
export class FaultSupportError extends Error {
  override readonly name = 'FaultSupportError';
  readonly exitCode = 2;
}

export interface FaultSupportFacts {
  readonly platform?: NodeJS.Platform;
  readonly uid?: number;
  /** The `nft` binary; null: not installed. */
  readonly nft?: string | null;
  /** Why sockets cannot be matched by cgroup here (`cgroupProblem`); null: they can. */
  readonly cgroup?: string | null;
}

/**
 * Checks, before anything is written or launched, that this machine can apply the spec's
 * partitions where the local provider runs them: in netns mode with nftables in each namespace;
 * on the loopback by the cgroup of each node's command, which needs root, nftables and cgroup v2.
 * EC2 instances are checked by their agents (a fault that fails is in the node's result).
 */
export function checkFaultSupport(spec: Pick<Spec, 'faults' | 'provider'>, facts: FaultSupportFacts = {}): void {
  const index = spec.faults?.findIndex((f) => f.action === 'partition') ?? -1;
  if (index < 0 || spec.provider.kind !== 'local') return;
  const platform = facts.platform ?? process.platform;
  const uid = facts.uid ?? process.getuid?.();
  const nft = facts.nft === undefined ? findSystemBinary('nft') : facts.nft;
  const what = `\`faults.${index}\` (a partition)`;
  if (spec.provider.isolation === 'netns') {
    if (!nft) throw new FaultSupportError(`${what} needs nftables in the instances' namespaces, and \`nft\` is not installed: install nftables (\`apt-get install nftables\`, \`dnf install nftables\`)`);
    return;
  }
  const cgroup = facts.cgroup === undefined ? cgroupProblem() : facts.cgroup;
  const missing = [
    platform !== 'linux' ? `Linux (this is ${platform})` : '',
    uid !== 0 ? 'root' : '',
    !nft ? 'nftables (`nft`)' : '',
    platform === 'linux' && cgroup ? `cgroup v2 (${cgroup})` : '',
  ].filter(Boolean);
  if (missing.length === 0) return;
  throw new FaultSupportError(
    `${what} on the loopback cuts nodes apart by the cgroup of each node's command (all of them share one interface, and their packets often come from 127.0.0.1), which needs ${missing.join(', ')}: run lockstep as root on Linux with nftables, or use \`provider: { kind: local, isolation: netns }\``,
  );
}
