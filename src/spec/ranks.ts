/**
 * Rank ranges as the spec writes them (`groups[].ranks`, `network.overrides[].ranks`, fault
 * targets): `3`, `0-3`, `4-` (to the last rank), or a list. No schema library here: the agent
 * uses these too.
 */

/** `3`, `0-3`, `4-` (to the last rank). */
export const RANK_RANGE = /^(\d+)(?:-(\d*))?$/;

/** Lowest and highest rank of a range or list (`from > to`: an empty range). */
export function rankBounds(ranks: string | readonly number[], n: number): { from: number; to: number } {
  if (typeof ranks !== 'string') return { from: Math.min(...ranks), to: Math.max(...ranks) };
  const [, first, last] = RANK_RANGE.exec(ranks)!;
  const from = Number(first);
  return { from, to: last === undefined ? from : last === '' ? n - 1 : Number(last) };
}

/** The ranks of a range or list, in order and once each (those ≥ n included: callers check). */
export function ranksIn(ranks: string | readonly number[], n: number): number[] {
  if (typeof ranks !== 'string') return [...new Set(ranks)].sort((a, b) => a - b);
  const { from, to } = rankBounds(ranks, n);
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

export function hasRank(ranks: string | readonly number[], n: number, rank: number): boolean {
  if (typeof ranks !== 'string') return ranks.includes(rank);
  const { from, to } = rankBounds(ranks, n);
  return from <= rank && rank <= to;
}
