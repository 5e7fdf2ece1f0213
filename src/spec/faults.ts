import { z } from 'zod';
import { FAULT_ACTIONS, PARTITION_SHAPES, type FaultAction, type PartitionShape } from '../core/faults.ts';
import { formatDuration } from '../util/duration.ts';
import { duration } from './duration-field.ts';
import { resolveGroups, type ResolvedGroup } from './groups.ts';
import { impairmentOf, type Impairment } from './network-plan.ts';
import { impairmentFields, rankSelection, type RankSelection } from './network.ts';
import { ranksIn } from './ranks.ts';

/**
 * The spec's `faults`: kill, restart, pause, partition and degrade nodes at set times after T,
 * once or periodically, on chosen, grouped or seeded-random targets. The controller expands them
 * into one concrete timeline (controller/fault-timeline.ts); the agents apply it. See docs/faults.md.
 */

const groupNames = z.array(z.string().min(1)).min(1);

/** Ranks, groups, or a seeded random choice. A bare range or list means `ranks`; `all` is every rank. */
const targetsField = z
  .union([
    z
      .strictObject({
        ranks: rankSelection.optional().describe('Ranks: a range `first-last` (`first-` to the end) or a list'),
        groups: groupNames.optional().describe('Every rank of these groups'),
        random: z
          .strictObject({
            count: z.number().int().positive().optional().describe('How many ranks to pick'),
            fraction: z.number().gt(0).max(1).optional().describe('Share of the ranks to pick: `round(fraction × instances)`, at least 1'),
            seed: z.number().int().nonnegative().optional().describe('Seed of the choice; without one the controller draws one and records it with the timeline'),
          })
          .refine((r) => (r.count === undefined) !== (r.fraction === undefined), { message: 'A random choice needs exactly one of `count` or `fraction`' })
          .optional()
          .describe('Ranks picked at random from a seed, anew at each occurrence'),
      })
      .refine((t) => [t.ranks, t.groups, t.random].filter((x) => x !== undefined).length === 1, {
        message: 'Targets need exactly one of `ranks`, `groups` or `random`',
      }),
    z.literal('all'),
    rankSelection,
  ])
  .transform((t): Targets => (t === 'all' ? { ranks: '0-' } : typeof t === 'string' || Array.isArray(t) ? { ranks: t } : t));

/** One side of a partition: ranks, or every rank of some groups. */
const sideField = z
  .union([z.strictObject({ ranks: rankSelection.optional(), groups: groupNames.optional() }), rankSelection])
  .refine((s) => typeof s === 'string' || Array.isArray(s) || (s.ranks === undefined) !== (s.groups === undefined), {
    message: 'A side needs exactly one of `ranks` or `groups`',
  })
  .transform((s): Side => (typeof s === 'string' || Array.isArray(s) ? { ranks: s } : s));

/** `2`, `"1-3"`, `"2-"`, `[1, 3]`: repeats counted from 1. */
const repeatsField = z.union([z.number().int().positive(), rankSelection]);

const faultEntry = z
  .strictObject({
    action: z.enum(FAULT_ACTIONS).describe('`kill`, `restart`, `pause`, `partition` or `network`'),
    at: duration.default(0).describe('When the (first) window opens, after the start time T; default 0'),
    every: duration.optional().describe('Period: the fault comes back this long after each opening, `count` times in all'),
    count: z.number().int().positive().optional().describe('With `every`: how many windows'),
    duration: duration.optional().describe('How long each window lasts (pause, partition, network): then it is healed'),
    downtime: duration.optional().describe('restart: how long the command stays down before it starts again; default 0'),
    targets: targetsField.optional().describe('Whose command or traffic: ranks (`"0-2"`, `[0, 3]`, `all`), `{ groups: [...] }`, or `{ random: { count | fraction, seed } }`'),
    sides: z.array(sideField).min(2).optional().describe('partition: who is cut from whom, as rank ranges or lists, or `{ groups: [...] }`; a rank in no side reaches every side'),
    shape: z.enum(PARTITION_SHAPES).optional().describe('partition by shape: `isolate` (each target alone), `majority-minority`, `halves`, `bridge` (halves joined by one node), `ring` (each node sees a different majority)'),
    seed: z.number().int().nonnegative().optional().describe('Shapes other than `isolate`: shuffle the ranks with this seed before cutting (anew at each occurrence); without it, by rank order'),
    ...impairmentFields,
    repeats: repeatsField.optional().describe('Repeats it applies to: a number, a range `"1-3"` or a list; default all'),
  })
  .superRefine((entry, ctx) => {
    for (const problem of entryProblems(entry)) ctx.addIssue({ code: 'custom', path: [...problem.path], message: problem.message, params: { namesValue: true } });
  })
  .transform(({ delay, jitter, loss, rate, ...rest }): FaultSpec => {
    const impairment = impairmentOf({ delay, jitter, loss, rate });
    return { ...rest, ...(rest.action === 'network' ? { impairment } : {}) };
  });

export const faultsField = z
  .array(faultEntry)
  .optional()
  .describe('Faults applied by the agents at set times after T: kill, restart, pause, partition, network (see docs/faults.md)');

export interface Targets {
  readonly ranks?: RankSelection;
  readonly groups?: readonly string[];
  readonly random?: { readonly count?: number; readonly fraction?: number; readonly seed?: number };
}

export interface Side {
  readonly ranks?: RankSelection;
  readonly groups?: readonly string[];
}

/** One entry of `faults` after validation (durations in ms). */
export interface FaultSpec {
  readonly action: FaultAction;
  readonly at: number;
  readonly every?: number;
  readonly count?: number;
  readonly duration?: number;
  readonly downtime?: number;
  readonly targets?: Targets;
  readonly sides?: readonly Side[];
  readonly shape?: PartitionShape;
  readonly seed?: number;
  readonly impairment?: Impairment;
  readonly repeats?: number | RankSelection;
}

interface Problem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

type EntryInput = Omit<FaultSpec, 'impairment'> & { delay?: number; jitter?: number; loss?: number; rate?: number };

/** Keys each action takes besides `action`, `at`, `every`, `count`, `repeats`. */
const KEYS_OF: Record<FaultAction, readonly string[]> = {
  kill: ['targets'],
  restart: ['targets', 'downtime'],
  pause: ['targets', 'duration'],
  partition: ['duration', 'sides', 'shape', 'targets', 'seed'],
  network: ['targets', 'duration', 'delay', 'jitter', 'loss', 'rate'],
};
const ACTION_KEYS = ['targets', 'duration', 'downtime', 'sides', 'shape', 'seed', 'delay', 'jitter', 'loss', 'rate'] as const;

/** What one entry alone can tell: keys that fit its action, and a coherent schedule. */
function entryProblems(entry: EntryInput): Problem[] {
  const problems: Problem[] = [];
  const { action } = entry;
  for (const key of ACTION_KEYS) {
    if (entry[key] !== undefined && !KEYS_OF[action].includes(key)) {
      const takers = FAULT_ACTIONS.filter((a) => KEYS_OF[a].includes(key));
      problems.push({ path: [key], message: `\`${key}\` does not apply to \`action: ${action}\` (only to ${takers.map((a) => `\`${a}\``).join(', ')}): remove it` });
    }
  }
  if ((action === 'kill' || action === 'restart' || action === 'pause') && entry.targets === undefined) {
    problems.push({ path: ['targets'], message: `\`action: ${action}\` needs \`targets\`: ranks (\`"0-2"\`), \`{ groups: [...] }\` or \`{ random: { count: 1 } }\`` });
  }
  if ((action === 'pause' || action === 'partition' || action === 'network') && entry.duration === undefined) {
    problems.push({ path: ['duration'], message: `\`action: ${action}\` needs a \`duration\` (how long until it is healed), e.g. \`duration: 10s\`` });
  }
  if (action === 'network' && [entry.delay, entry.jitter, entry.loss, entry.rate].every((v) => v === undefined)) {
    problems.push({ path: ['action'], message: '`action: network` needs at least one of `delay`, `jitter`, `loss` or `rate`' });
  }
  if (action === 'partition') {
    if ((entry.sides === undefined) === (entry.shape === undefined)) {
      problems.push({ path: ['sides'], message: '`action: partition` needs exactly one of `sides` (e.g. `sides: ["0-1", "2-"]`) or `shape` (isolate, majority-minority, halves, bridge, ring)' });
    }
    if (entry.shape === 'isolate' && entry.targets === undefined) {
      problems.push({ path: ['targets'], message: '`shape: isolate` needs `targets`: the ranks to cut off, each alone' });
    }
    if (entry.targets !== undefined && entry.shape !== 'isolate') {
      problems.push({ path: ['targets'], message: '`targets` of a partition name the ranks `shape: isolate` cuts off; other shapes and `sides` cut every rank: remove it' });
    }
    if (entry.seed !== undefined && (entry.shape === undefined || entry.shape === 'isolate')) {
      problems.push({ path: ['seed'], message: '`seed` shuffles the ranks before a shape other than `isolate` cuts them: for random targets use `targets: { random: { count: 1, seed: 7 } }`' });
    }
  }
  if ((entry.every === undefined) !== (entry.count === undefined)) {
    problems.push({ path: [entry.every === undefined ? 'count' : 'every'], message: 'A periodic fault needs both `every` (the period) and `count` (how many windows)' });
  }
  if (entry.every !== undefined && entry.every <= 0) problems.push({ path: ['every'], message: 'Expected a period greater than 0' });
  const window = windowOf(entry);
  if (entry.every !== undefined && window > 0 && window >= entry.every) {
    problems.push({
      path: [action === 'restart' ? 'downtime' : 'duration'],
      message: `Each window (${formatDuration(window)}) must end before the next opens (\`every: ${formatDuration(entry.every)}\`): shorten it or lengthen \`every\``,
    });
  }
  return problems;
}

/** How long one window of an entry lasts (ms): a restart's downtime, 0 for a kill. */
export function windowOf(entry: { readonly action: FaultAction; readonly duration?: number; readonly downtime?: number }): number {
  return entry.action === 'restart' ? (entry.downtime ?? 0) : entry.action === 'kill' ? 0 : (entry.duration ?? 0);
}

/** Offsets from T at which the windows of an entry open. */
export function openingsOf(entry: Pick<FaultSpec, 'at' | 'every' | 'count'>): number[] {
  return Array.from({ length: entry.count ?? 1 }, (_, i) => entry.at + i * (entry.every ?? 0));
}

/** The repeats an entry applies to (`repeats` of the run: all of them by default). */
export function repeatsOf(entry: Pick<FaultSpec, 'repeats'>, repeats: number): number[] {
  if (entry.repeats === undefined) return Array.from({ length: repeats }, (_, i) => i + 1);
  if (typeof entry.repeats === 'number') return [entry.repeats];
  // The syntax of ranks, counted from 1: `2-` runs to the last repeat.
  return ranksIn(entry.repeats, repeats + 1);
}

/** The ranks a side or a (non-random) target names, for `n` instances. */
export function ranksOfSelection(selection: Side, groups: readonly ResolvedGroup[], n: number): number[] {
  if (selection.ranks !== undefined) return ranksIn(selection.ranks, n);
  const wanted = new Set(selection.groups ?? []);
  return [...new Set(groups.filter((g) => wanted.has(g.name)).flatMap((g) => g.ranks))].sort((a, b) => a - b);
}

/** How many ranks a random choice picks among `n`. */
export function randomCount(random: NonNullable<Targets['random']>, n: number): number {
  return random.count ?? Math.max(1, Math.round(random.fraction! * n));
}

/** Fewest instances each shape needs to cut anything. */
const SHAPE_MINIMUM: Record<PartitionShape, number> = { isolate: 2, 'majority-minority': 2, halves: 2, bridge: 3, ring: 4 };

interface WholeSpec {
  readonly instances: number;
  readonly repeats: number;
  readonly groups: Parameters<typeof resolveGroups>[0];
  readonly timeouts: { readonly run: number };
  readonly provider: { readonly kind: string; readonly isolation?: string };
  readonly faults?: readonly FaultSpec[];
}

/** What only the whole spec can tell about `faults`: ranks, groups, repeats and windows that exist. */
export function faultProblems(spec: WholeSpec): Problem[] {
  if (!spec.faults?.length) return [];
  const n = spec.instances;
  let groups: ResolvedGroup[];
  try {
    groups = resolveGroups(spec.groups, n);
  } catch {
    // `groups` itself is wrong: that error comes first.
    return [];
  }
  const names = groups.map((g) => g.name);
  const known = names.length > 0 ? `one of ${names.map((name) => `\`${name}\``).join(', ')}` : 'a group: `groups` has none';
  const problems: Problem[] = [];
  const at = (i: number, ...path: (string | number)[]) => ['faults', i, ...path];

  const checkSelection = (selection: Side, path: (string | number)[]): number[] | undefined => {
    for (const [j, name] of (selection.groups ?? []).entries()) {
      if (!names.includes(name)) {
        problems.push({ path: [...path, 'groups', j], message: `No group named \`${name}\` in \`groups\`: name ${known}` });
        return undefined;
      }
    }
    if (selection.ranks !== undefined && typeof selection.ranks === 'string') {
      const [first, last] = selection.ranks.split('-');
      if (last !== undefined && last !== '' && Number(last) < Number(first)) {
        problems.push({ path: [...path, 'ranks'], message: `The rank range \`${selection.ranks}\` is empty: write it as first-last` });
        return undefined;
      }
    }
    const ranks = ranksOfSelection(selection, groups, n);
    const outside = ranks.find((rank) => rank >= n);
    if (outside !== undefined) {
      problems.push({ path: [...path, 'ranks'], message: `Target rank ${outside} is outside 0..${n - 1} for ${n} instances: name ranks below ${n}, or raise \`instances\`` });
      return undefined;
    }
    return ranks;
  };

  spec.faults.forEach((entry, i) => {
    const isolation = spec.provider.kind === 'local' ? (spec.provider.isolation ?? 'loopback') : undefined;
    if (entry.action === 'network' && isolation === 'loopback') {
      problems.push({
        path: at(i, 'action'),
        message:
          'A `network` fault needs each instance in its own network namespace: set `provider: { kind: local, isolation: netns }` (Linux, root, iproute2); with `isolation: loopback` all instances share one interface',
      });
    }
    const targets = entry.targets;
    let targetCount = n;
    if (targets?.random) {
      targetCount = randomCount(targets.random, n);
      if (targetCount > n) {
        problems.push({ path: at(i, 'targets', 'random', 'count'), message: `Cannot pick ${targetCount} of ${n} instances: pick at most ${n}` });
      }
    } else if (targets) {
      const ranks = checkSelection(targets, at(i, 'targets'));
      if (ranks?.length === 0) problems.push({ path: at(i, 'targets'), message: 'The targets name no rank (an empty group?): name at least one' });
      targetCount = ranks?.length ?? n;
    }

    if (entry.action === 'partition') {
      if (entry.shape !== undefined) {
        const minimum = SHAPE_MINIMUM[entry.shape];
        if (n < minimum) {
          problems.push({ path: at(i, 'shape'), message: `\`shape: ${entry.shape}\` needs at least ${minimum} instances to cut anything, and the run has ${n}` });
        }
        if (entry.shape === 'isolate' && targetCount >= n) {
          problems.push({ path: at(i, 'targets'), message: `Isolating ${targetCount} of ${n} instances leaves no one on the other side: isolate fewer` });
        }
      }
      const seen = new Map<number, number>();
      entry.sides?.forEach((side, j) => {
        const ranks = checkSelection(side, at(i, 'sides', j));
        if (!ranks) return;
        if (ranks.length === 0) {
          problems.push({ path: at(i, 'sides', j), message: 'This side of the partition is empty (a group with no ranks?): every side needs at least one rank' });
          return;
        }
        const twice = ranks.find((rank) => seen.has(rank));
        if (twice !== undefined) {
          problems.push({ path: at(i, 'sides', j), message: `Rank ${twice} is on side ${seen.get(twice)} already: a rank can be on one side only` });
          return;
        }
        for (const rank of ranks) seen.set(rank, j);
      });
    }

    const repeats = repeatsOf(entry, spec.repeats);
    const beyond = repeats.find((r) => r > spec.repeats || r < 1);
    if (beyond !== undefined || repeats.length === 0) {
      problems.push({ path: at(i, 'repeats'), message: `Repeat ${beyond ?? entry.repeats} is outside 1..${spec.repeats}: name repeats of this run` });
    }

    const openings = openingsOf(entry);
    const lastOpening = openings.at(-1)!;
    const end = lastOpening + windowOf(entry);
    if (entry.action === 'kill' ? lastOpening >= spec.timeouts.run : end > spec.timeouts.run) {
      const what = entry.action === 'kill' ? `The last kill comes ${formatDuration(lastOpening)} after T` : `The last window ends ${formatDuration(end)} after T`;
      problems.push({
        path: at(i, entry.every !== undefined ? 'count' : 'at'),
        message: `${what}, past \`timeouts.run\` (${formatDuration(spec.timeouts.run)}), when every command has ended: end it earlier or raise \`timeouts.run\``,
      });
    }
  });

  // Two network windows at once on one node cannot both hold: refuse any that may meet.
  const network = spec.faults.flatMap((entry, i) => (entry.action === 'network' ? [{ entry, i }] : []));
  for (const [k, a] of network.entries()) {
    for (const b of network.slice(k + 1)) {
      if (!mayShareTargets(a.entry, b.entry, groups, n) || !sharesRepeat(a.entry, b.entry, spec.repeats)) continue;
      const overlap = openingsOf(a.entry).some((x) => openingsOf(b.entry).some((y) => x < y + b.entry.duration! && y < x + a.entry.duration!));
      if (overlap) {
        problems.push({
          path: at(b.i, 'at'),
          message: `This \`network\` window may overlap that of \`faults.${a.i}\` on the same instance, and a node has one network setting at a time: move one, or give them targets that cannot meet`,
        });
      }
    }
  }
  return problems;
}

function mayShareTargets(a: FaultSpec, b: FaultSpec, groups: readonly ResolvedGroup[], n: number): boolean {
  if (a.targets?.random || b.targets?.random) return true;
  const ranksOf = (t: Targets | undefined) => new Set(t ? ranksOfSelection(t, groups, n) : ranksIn('0-', n));
  const other = ranksOf(b.targets);
  return [...ranksOf(a.targets)].some((rank) => other.has(rank));
}

function sharesRepeat(a: FaultSpec, b: FaultSpec, repeats: number): boolean {
  const other = new Set(repeatsOf(b, repeats));
  return repeatsOf(a, repeats).some((r) => other.has(r));
}
