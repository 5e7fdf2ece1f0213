import { z } from 'zod';
import { parseDuration } from '../util/duration.ts';
import { impairmentOf, type Impairment, type NetworkOverride, type NetworkSpec } from './network-plan.ts';
import { RANK_RANGE, rankBounds } from './ranks.ts';

/**
 * The spec's `network` field: delay, jitter, loss and bandwidth added to every instance's egress
 * (netem and tbf/htb with `tc`, applied by the agent; see docs/network.md), for all instances, per
 * group or rank range, and optionally a one-way latency matrix between groups.
 *
 * This module imports nothing of `schema.ts` at run time, so that `schema.ts` can import it.
 */

/** Longest accepted delay or jitter: a bare number is seconds, and `delay: 50` is likely a slip. */
export const MAX_DELAY_MS = 10_000;

/** Ranks as a range `first-last` (inclusive; `first-` to the end) or a list, as `groups[].ranks`. */
export const rankSelection = z.union([
  z.string().regex(RANK_RANGE, 'Expected a rank range such as `4-7`, `4-` or `3`'),
  z.array(z.number().int().nonnegative()).min(1),
]);
export type RankSelection = z.output<typeof rankSelection>;
const PERCENT = /^(\d+(?:\.\d+)?)\s*%$/;
const RATE = /^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)$/i;
const RATE_UNIT: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

const delayField = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `Expected a ${what} such as \`50ms\` or \`0.2s\`` });
      return z.NEVER;
    }
    if (ms > MAX_DELAY_MS) {
      ctx.addIssue({ code: 'custom', message: `Expected a ${what} of at most 10s (a bare number is seconds: write \`50ms\` for milliseconds)` });
      return z.NEVER;
    }
    return ms;
  });

const lossField = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const match = typeof value === 'string' ? PERCENT.exec(value.trim()) : null;
  const percent = match ? Number(match[1]) : undefined;
  if (percent === undefined || percent > 100) {
    ctx.addIssue({ code: 'custom', message: 'Expected a percentage from `0%` to `100%`, such as `1%` or `0.5%`' });
    return z.NEVER;
  }
  return percent;
});

const rateField = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const match = typeof value === 'string' ? RATE.exec(value.trim()) : null;
  const bits = match ? Number(match[1]) * RATE_UNIT[match[2]!.toLowerCase()]! : undefined;
  if (bits === undefined || bits < 8_000) {
    ctx.addIssue({ code: 'custom', message: 'Expected a bandwidth of at least `8kbit`, in `kbit`, `mbit` or `gbit` (bits per second), such as `100mbit`' });
    return z.NEVER;
  }
  return Math.round(bits);
});

export const impairmentFields = {
  delay: delayField('delay').optional().describe('One-way delay added to every packet the instance sends, e.g. `50ms` (a round trip between two such instances gains twice this)'),
  jitter: delayField('jitter').optional().describe('Random variation of the delay, ± this much, e.g. `5ms` (packets may be reordered)'),
  loss: lossField.optional().describe('Share of sent packets dropped at random, e.g. `1%`'),
  rate: rateField.optional().describe('Bandwidth limit of the instance\'s egress, e.g. `100mbit` (units `kbit`, `mbit`, `gbit`: bits per second)'),
};

const groupName = z.string().min(1);

const override = z
  .strictObject({
    group: groupName.optional().describe('Name of a group in `groups` whose ranks get these values'),
    ranks: rankSelection
      .optional()
      .describe('Ranks that get these values: a range `first-last` (inclusive; `first-` to the end) or a list'),
    ...impairmentFields,
  })
  .refine((o) => (o.group === undefined) !== (o.ranks === undefined), { message: 'An override needs exactly one of `group` or `ranks`' })
  .transform(({ group, ranks, ...fields }): NetworkOverride => ({
    ...(group !== undefined ? { group } : {}),
    ...(ranks !== undefined ? { ranks } : {}),
    ...impairmentOf(fields),
  }));

export const networkSpec = z
  .strictObject({
    ...impairmentFields,
    overrides: z
      .array(override)
      .default([])
      .describe('Values for some instances, by `group` or `ranks`; later entries win, field by field'),
    latency: z
      .record(groupName, z.record(groupName, delayField('delay')))
      .default({})
      .describe('One-way delay from a node of the row group to a node of the column group, e.g. `{ eu: { us: 40ms } }`; replaces `delay` for that traffic'),
  })
  .transform(({ overrides, latency, ...fields }): NetworkSpec => ({ ...impairmentOf(fields), overrides, latency }))
  .describe('Network emulation: delay, jitter, loss and bandwidth per instance, applied with `tc` by the agent (see docs/network.md)');

export interface NetworkProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** What only the whole spec can tell about `network` (and about netns isolation). */
export function networkProblems(spec: {
  readonly instances: number;
  readonly groups: readonly { readonly name?: string }[];
  readonly network?: NetworkSpec;
  readonly provider: { readonly kind: string; readonly isolation?: string };
  readonly store?: string;
}): NetworkProblem[] {
  const problems: NetworkProblem[] = [];
  const isolation = spec.provider.kind === 'local' ? (spec.provider.isolation ?? 'loopback') : undefined;
  if (isolation === 'netns' && spec.store?.startsWith('s3://')) {
    problems.push({ path: ['store'], message: NETNS_NEEDS_FOLDER_STORE });
  }
  const network = spec.network;
  if (!network) return problems;
  if (isolation === 'loopback') {
    problems.push({
      path: ['network'],
      message:
        'Network emulation needs each instance in its own network namespace: set `provider: { kind: local, isolation: netns }` (Linux, root, iproute2); with `isolation: loopback` all instances share one interface',
    });
  }
  const names = spec.groups.map((g, i) => g.name ?? `group${i}`);
  const knownGroup = (name: string) => names.includes(name);
  const known = names.length > 0 ? `one of ${names.map((n) => `\`${n}\``).join(', ')}` : 'a group: `groups` has none';
  network.overrides.forEach((o, i) => {
    if (o.group !== undefined && !knownGroup(o.group)) {
      problems.push({ path: ['network', 'overrides', i, 'group'], message: `No group named \`${o.group}\` in \`groups\`: name ${known}` });
    }
    if (o.ranks !== undefined) {
      const { from, to } = rankBounds(o.ranks, spec.instances);
      if (from > to) {
        problems.push({ path: ['network', 'overrides', i, 'ranks'], message: 'The rank range is empty: write it as first-last' });
      } else if (to >= spec.instances) {
        const outside = typeof o.ranks === 'string' ? Math.max(from, spec.instances) : o.ranks.find((r) => r >= spec.instances)!;
        problems.push({ path: ['network', 'overrides', i, 'ranks'], message: `Rank ${outside} is outside 0..${spec.instances - 1} for ${spec.instances} instances` });
      }
    }
  });
  for (const [from, row] of Object.entries(network.latency)) {
    if (!knownGroup(from)) problems.push({ path: ['network', 'latency', from], message: `No group named \`${from}\` in \`groups\`: name ${known}` });
    for (const to of Object.keys(row)) {
      if (!knownGroup(to)) problems.push({ path: ['network', 'latency', from, to], message: `No group named \`${to}\` in \`groups\`: name ${known}` });
    }
  }
  return problems;
}

export const NETNS_NEEDS_FOLDER_STORE =
  '`isolation: netns` needs a folder store: the instances\' namespaces have no route out, not even to this machine\'s loopback, so they cannot reach an S3 server; use a folder (`store: .lockstep/store`), or `isolation: loopback`';
