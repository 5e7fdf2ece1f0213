import { randomInt } from 'node:crypto';
import { partitionedRanks, type FaultEvent, type FaultTimeline, type PartitionLayout, type PartitionShape } from '../core/faults.ts';
import { openingsOf, randomCount, ranksOfSelection, repeatsOf, windowOf, type FaultSpec, type Targets } from '../spec/faults.ts';
import { resolveGroups } from '../spec/groups.ts';
import type { Spec } from '../spec/schema.ts';
import { seededRandom } from '../util/seeded-random.ts';

/**
 * Expands the spec's `faults` into the one concrete timeline of the run, before anything starts:
 * every window with its offset from T, its repeats and its target ranks, random choices made. Pure
 * but for the seeds it draws where the spec gave none (`drawSeed`), which the timeline records:
 * the same spec and the same seeds give the same timeline, on any machine.
 *
 * Random choices (`targets.random`, a shape's `seed`) come from one generator per entry, drawn in
 * occurrence order: each occurrence picks anew, and the first picks do not change when `count`
 * grows. Every repeat gets the same timeline.
 */
export function expandFaults(
  spec: Pick<Spec, 'instances' | 'repeats' | 'groups' | 'faults'>,
  options: { readonly drawSeed?: () => number } = {},
): FaultTimeline | undefined {
  if (!spec.faults?.length) return undefined;
  const n = spec.instances;
  const groups = resolveGroups(spec.groups, n);
  const drawSeed = options.drawSeed ?? (() => randomInt(2 ** 31));
  const seeds: FaultTimeline['seeds'][number][] = [];
  const events: FaultEvent[] = [];

  spec.faults.forEach((entry, index) => {
    const given = entry.targets?.random?.seed ?? entry.seed;
    const needsSeed = entry.targets?.random !== undefined || entry.seed !== undefined;
    let random: (() => number) | undefined;
    if (needsSeed) {
      const seed = given ?? drawSeed();
      seeds.push({ entry: index, seed, drawn: given === undefined });
      random = seededRandom(seed);
    }
    const repeats = repeatsOf(entry, spec.repeats);
    const window = windowOf(entry);
    openingsOf(entry).forEach((atMs, k) => {
      const base = {
        id: `${index}#${k + 1}`,
        entry: index,
        occurrence: k + 1,
        action: entry.action,
        atMs,
        ...(entry.action === 'kill' ? {} : { durationMs: window }),
        repeats,
      };
      if (entry.action === 'partition') {
        const layout = partitionLayout(entry, n, (selection) => ranksOfSelection(selection, groups, n), random);
        events.push({ ...base, targets: partitionedRanks(layout), partition: { ...layout, ...(entry.shape ? { shape: entry.shape } : {}) } });
        return;
      }
      const targets = chooseTargets(entry.targets ?? { ranks: '0-' }, n, (selection) => ranksOfSelection(selection, groups, n), random);
      events.push({ ...base, targets, ...(entry.impairment ? { impairment: entry.impairment } : {}) });
    });
  });
  events.sort((a, b) => a.atMs - b.atMs || a.entry - b.entry || a.occurrence - b.occurrence);
  return { seeds, events };
}

type Resolve = (selection: Omit<Targets, 'random'>) => number[];

function chooseTargets(targets: Targets, n: number, resolve: Resolve, random: (() => number) | undefined): number[] {
  if (!targets.random) return resolve(targets);
  return shuffled(n, random!).slice(0, randomCount(targets.random, n)).sort((a, b) => a - b);
}

/** Who cannot reach whom in one window of a partition entry. */
export function partitionLayout(entry: FaultSpec, n: number, resolve: Resolve, random: (() => number) | undefined): PartitionLayout {
  if (entry.sides) return { kind: 'sides', sides: entry.sides.map(resolve) };
  const shape: PartitionShape = entry.shape!;
  if (shape === 'isolate') {
    const alone = chooseTargets(entry.targets!, n, resolve, random);
    return { kind: 'sides', sides: [...alone.map((rank) => [rank]), ranks(n).filter((rank) => !alone.includes(rank))] };
  }
  const order = random ? shuffled(n, random) : ranks(n);
  const half = Math.floor(n / 2);
  const sorted = (list: number[]) => [...list].sort((a, b) => a - b);
  switch (shape) {
    case 'halves':
      return { kind: 'sides', sides: [sorted(order.slice(0, half)), sorted(order.slice(half))] };
    case 'majority-minority':
      return { kind: 'sides', sides: [sorted(order.slice(0, half + 1)), sorted(order.slice(half + 1))] };
    case 'bridge':
      // The two halves, and between them one node (order[half]) that reaches both.
      return { kind: 'sides', sides: [sorted(order.slice(0, half)), sorted(order.slice(half + 1))] };
    case 'ring':
      // Each member reaches those at most `reach` places away: 2·reach + 1 members, a majority.
      return { kind: 'ring', order, reach: Math.ceil(half / 2) };
  }
}

function ranks(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** 0..n-1 in the order of a Fisher–Yates shuffle drawn from `random`. */
function shuffled(n: number, random: () => number): number[] {
  const order = ranks(n);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
