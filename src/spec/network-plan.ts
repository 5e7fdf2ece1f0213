import type { ResolvedGroup } from './groups.ts';
import { hasRank } from './ranks.ts';

/**
 * One node's network emulation from the spec's `network` (validated by `network.ts`): the plan
 * the agent applies. No validation here, so that the agent carries no schema library.
 */

/** What one node's egress gets, toward every destination or toward some. Absent = none. */
export interface Impairment {
  /** One-way delay added to each packet (ms). */
  readonly delayMs?: number;
  /** Random variation of the delay, ± this much (ms). */
  readonly jitterMs?: number;
  /** Share of packets dropped at random (percent, 0–100). */
  readonly lossPercent?: number;
  /** Bandwidth limit (bits per second). */
  readonly rateBitsPerSecond?: number;
}

/** `network` after validation: numbers in the units their names say. */
export interface NetworkSpec extends Impairment {
  /** Per group or rank range, in order; later entries win, field by field. */
  readonly overrides: readonly NetworkOverride[];
  /** One-way delay from a node of the row group to a node of the column group (ms). */
  readonly latency: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

export interface NetworkOverride extends Impairment {
  readonly group?: string;
  readonly ranks?: string | readonly number[];
}

/** One node's whole emulation: the default for its egress, and per-destination rules. */
export interface NetemPlan {
  readonly default: Impairment;
  /** Traffic to these addresses gets `impairment` instead of the default (from `latency`). */
  readonly rules: readonly NetemRule[];
}

export interface NetemRule {
  /** The receiving group the rule comes from (for the record). */
  readonly group: string;
  readonly to: readonly string[];
  readonly impairment: Impairment;
}

export function impairmentOf(fields: { delay?: number; jitter?: number; loss?: number; rate?: number }): Impairment {
  const out: { -readonly [K in keyof Impairment]: Impairment[K] } = {};
  if (fields.delay !== undefined) out.delayMs = fields.delay;
  if (fields.jitter !== undefined) out.jitterMs = fields.jitter;
  if (fields.loss !== undefined) out.lossPercent = fields.loss;
  if (fields.rate !== undefined) out.rateBitsPerSecond = fields.rate;
  return out;
}

/** The impairment of `rank`'s own egress: the spec's values, then each override that names it. */
export function impairmentFor(network: NetworkSpec, groups: readonly ResolvedGroup[], rank: number, n: number): Impairment {
  let merged = only(network);
  for (const o of network.overrides) {
    const applies = o.group !== undefined ? groups.some((g) => g.name === o.group && g.ranks.includes(rank)) : hasRank(o.ranks!, n, rank);
    if (applies) merged = { ...merged, ...only(o) };
  }
  return merged;
}

/** The impairment fields of `value` that are set, and nothing else. */
function only({ delayMs, jitterMs, lossPercent, rateBitsPerSecond }: Impairment): Impairment {
  return impairmentOf({ delay: delayMs, jitter: jitterMs, loss: lossPercent, rate: rateBitsPerSecond });
}

/**
 * Everything one node applies: its own impairment as the default, and for each group its
 * `latency` row names, a rule that gives traffic to that group's addresses the matrix delay
 * (other fields as the default). A node in several groups uses the last of them (in `groups`
 * order) that has a row; a destination likewise counts in the last of its groups the row names.
 */
export function planFor(network: NetworkSpec, groups: readonly ResolvedGroup[], addresses: readonly string[], rank: number): NetemPlan {
  const n = addresses.length;
  const own = impairmentFor(network, groups, rank, n);
  const sender = [...groups].reverse().find((g) => g.ranks.includes(rank) && network.latency[g.name] !== undefined);
  const rules: NetemRule[] = [];
  if (sender) {
    const row = network.latency[sender.name]!;
    const byGroup = new Map<string, string[]>();
    for (let peer = 0; peer < n; peer++) {
      if (peer === rank) continue;
      const receiver = [...groups].reverse().find((g) => g.ranks.includes(peer) && row[g.name] !== undefined);
      if (!receiver) continue;
      byGroup.set(receiver.name, [...(byGroup.get(receiver.name) ?? []), addresses[peer]!]);
    }
    for (const [group, to] of byGroup) rules.push({ group, to, impairment: { ...own, delayMs: row[group]! } });
  }
  return { default: own, rules };
}

/** True when the plan asks for nothing: no tc command is needed. */
export function isEmptyPlan(plan: NetemPlan): boolean {
  return isNone(plan.default) && plan.rules.every((r) => isNone(r.impairment));
}

export function isNone(impairment: Impairment): boolean {
  return !impairment.delayMs && !impairment.jitterMs && !impairment.lossPercent && !impairment.rateBitsPerSecond;
}
