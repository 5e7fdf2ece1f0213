import { RANK_RANGE } from './ranks.ts';
import type { GroupSpec, ParamValue } from './schema.ts';

export interface ResolvedGroup {
  readonly index: number;
  readonly name: string;
  /** Inclusive rank bounds, or an explicit list. */
  readonly ranks: readonly number[];
  readonly params: Readonly<Record<string, ParamValue>>;
}

export class GroupRangeError extends Error {
  override readonly name = 'GroupRangeError';
  constructor(
    message: string,
    readonly groupIndex: number,
  ) {
    super(message);
  }
}

/**
 * The ranks of every group for `n` instances. Throws `GroupRangeError` for ranks outside 0..n-1.
 * A `count` or `fraction` group takes the next ranks after every group before it (after the
 * highest rank any of them names; from rank 0 for the first).
 * A group of named instances (inventory hosts) takes the ranks of those among `members` (instance
 * ids in rank order); without `members` (when the spec is checked) it has none yet.
 */
export function resolveGroups(groups: readonly GroupSpec[], n: number, members: readonly string[] = []): ResolvedGroup[] {
  let next = 0;
  return groups.map((group, index) => {
    const name = group.name ?? `group${index}`;
    let ranks: number[];
    if (typeof group.ranks === 'string') {
      const [, first, last] = RANK_RANGE.exec(group.ranks)!;
      const from = Number(first);
      const to = last === undefined ? from : last === '' ? n - 1 : Number(last);
      if (from > to) throw new GroupRangeError(`Rank range \`${group.ranks}\` is empty: write it as first-last`, index);
      ranks = range(from, to + 1);
    } else if (group.ranks !== undefined) {
      ranks = [...group.ranks];
    } else if (group.hosts !== undefined) {
      const named = new Set(group.instances ?? []);
      ranks = members.flatMap((id, rank) => (named.has(id) ? [rank] : []));
    } else {
      const count = group.count ?? Math.round(group.fraction! * n);
      ranks = range(next, next + count);
      if (next + count > n) {
        const what = group.count !== undefined ? `count: ${group.count}` : `fraction: ${group.fraction}, ${count} rank(s)`;
        throw new GroupRangeError(
          `Group \`${name}\` (${what}) takes the ranks after the groups before it, ${next}..${next + count - 1}: outside 0..${n - 1} for ${n} instances; lower it, move it before the groups that end at rank ${next - 1}, or raise \`instances\``,
          index,
        );
      }
    }
    // Groups by inventory host have no place in the order: the next counted group does not follow them.
    if (group.hosts === undefined && ranks.length > 0) next = Math.max(next, Math.max(...ranks) + 1);
    const outside = ranks.filter((rank) => rank >= n);
    if (outside.length > 0) {
      throw new GroupRangeError(
        `Group \`${name}\` names rank ${outside[0]}, outside 0..${n - 1} for ${n} instances: shrink the group or raise \`instances\``,
        index,
      );
    }
    return { index, name, ranks, params: group.params };
  });
}

/** The params a rank gets: the spec's params, then each group that names the rank, in order. */
export function paramsForRank(
  base: Readonly<Record<string, ParamValue>>,
  groups: readonly ResolvedGroup[],
  rank: number,
): { params: Record<string, ParamValue>; groups: string[] } {
  const params = { ...base };
  const names: string[] = [];
  for (const group of groups) {
    if (!group.ranks.includes(rank)) continue;
    Object.assign(params, group.params);
    names.push(group.name);
  }
  return { params, groups: names };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** Consecutive ranks that get the same groups and params, as the dry run shows them. */
export interface RankAssignment {
  /** `0`, `0-3`. */
  readonly ranks: string;
  readonly groups: readonly string[];
  readonly params: Readonly<Record<string, ParamValue>>;
}

/** Which groups and params each rank gets, ranks with the same ones together. */
export function rankAssignments(base: Readonly<Record<string, ParamValue>>, groups: readonly ResolvedGroup[], n: number): RankAssignment[] {
  const rows: Array<{ from: number; to: number; groups: string[]; params: Record<string, ParamValue>; key: string }> = [];
  for (let rank = 0; rank < n; rank++) {
    const got = paramsForRank(base, groups, rank);
    const key = JSON.stringify(got);
    const last = rows[rows.length - 1];
    if (last && last.key === key && last.to === rank - 1) last.to = rank;
    else rows.push({ from: rank, to: rank, ...got, key });
  }
  return rows.map((r) => ({ ranks: r.from === r.to ? String(r.from) : `${r.from}-${r.to}`, groups: r.groups, params: r.params }));
}
