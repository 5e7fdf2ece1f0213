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
 * A group of named instances (inventory hosts) takes the ranks of those among `members` (instance
 * ids in rank order); without `members` (when the spec is checked) it has none yet.
 */
export function resolveGroups(groups: readonly GroupSpec[], n: number, members: readonly string[] = []): ResolvedGroup[] {
  let nextCounted = 0;
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
      ranks = range(nextCounted, nextCounted + count);
      nextCounted += count;
    }
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
