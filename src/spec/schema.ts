import { z } from 'zod';
import { duration, positiveDuration } from './duration-field.ts';
import { faultProblems, faultsField } from './faults.ts';
import { networkProblems, networkSpec } from './network.ts';
import { awsProvider } from './provider-aws.ts';
import { matrixField } from './matrix.ts';
import { analysisProblems, analysisSpec, metricsField } from './metrics.ts';
import { RANK_RANGE } from './ranks.ts';
import { sshProvider } from './provider-ssh.ts';

const paramValue = z.union([z.string(), z.number(), z.boolean()]);
export const paramName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'Expected a parameter name of letters, digits and `_`');
const params = z.record(paramName, paramValue);


const group = z
  .strictObject({
    name: z.string().min(1).optional(),
    ranks: z
      .union([
        z.string().regex(RANK_RANGE, 'Expected a rank range such as `4-7`, `4-` or `3`'),
        z.array(z.number().int().nonnegative()).min(1),
      ])
      .optional()
      .describe('Ranks of this group: a range `first-last` (inclusive; `first-` to the end) or a list'),
    count: z.number().int().positive().optional().describe('Takes the next `count` ranks after every group before it (after the highest rank they name; from 0 for the first group)'),
    fraction: z
      .number()
      .gt(0)
      .max(1)
      .optional()
      .describe('Takes the next `round(fraction × instances)` ranks after every group before it (after the highest rank they name)'),
    hosts: z
      .string()
      .min(1)
      .optional()
      .describe('With `provider: { kind: ssh }`: the hosts of this inventory group (or this one host); `name` defaults to it'),
    params: params.default({}),
  })
  .refine((g) => [g.ranks, g.count, g.fraction, g.hosts].filter((x) => x !== undefined).length === 1, {
    message: 'A group needs exactly one of `ranks`, `count`, `fraction` or `hosts`',
  })
  // `hosts` is resolved when the spec is loaded into the instances it names (see inventory-groups.ts).
  .transform((g) => ({ ...g, ...(g.hosts !== undefined && g.name === undefined ? { name: g.hosts } : {}) }) as typeof g & { instances?: readonly string[] });

export const localProvider = z.strictObject({
  kind: z.literal('local'),
  isolation: z
    .enum(['loopback', 'netns'])
    .default('loopback')
    .describe(
      'How instances are kept apart: `loopback` gives each its own 127.x.y.z address; `netns` gives each its own network namespace and 198.18.x.y address (Linux, root, iproute2; needed for `network`)',
    ),
});

export const provider = z.preprocess(
  (value) => (typeof value === 'string' ? { kind: value } : value),
  z.discriminatedUnion('kind', [localProvider, awsProvider, sshProvider]),
);

export const specSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'Expected a name of letters, digits, `.`, `_` and `-`'),
    description: z.string().optional(),
    instances: z.number().int().positive().describe('How many instances (N)'),
    minInstances: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Quorum: a repeat goes on with this many instances when the others miss the barrier'),
    repeats: z.number().int().positive().default(1),
    artifact: z.string().min(1).optional().describe('A file or folder (relative to the spec) shipped to every instance'),
    setup: z.string().min(1).optional().describe('A shell command run once per instance, in the artifact folder'),
    run: z.string().min(1).describe('The shell command template run by every node in each repeat'),
    params: params.default({}),
    groups: z.array(group).default([]),
    collect: z.array(z.string().min(1)).default([]).describe('Extra files or folders (relative to the working folder) uploaded per node'),
    startDelay: duration.default(1000).describe('Time between the last ready record and the common start time T'),
    timeouts: z
      .strictObject({
        boot: positiveDuration
          .default(600_000)
          .describe('How long an instance may take from launch until its agent reports; one that takes longer is ended, and the run with it when too few are left'),
        barrier: positiveDuration.default(600_000),
        setup: positiveDuration.default(1_800_000),
        run: positiveDuration.default(1_800_000),
        instance: positiveDuration.default(7_200_000).describe('Lifetime of an instance; its agent ends it when this expires'),
      })
      .default({ boot: 600_000, barrier: 600_000, setup: 1_800_000, run: 1_800_000, instance: 7_200_000 }),
    keep: z
      .boolean()
      .default(false)
      .describe('Keep the instances after the last repeat (until `timeouts.instance` or `lockstep down`) instead of ending them'),
    provider: provider.default({ kind: 'local', isolation: 'loopback' }),
    store: z.string().min(1).optional().describe('Store locator: a folder path or `s3://bucket/prefix`; default `.lockstep/store`'),
    metrics: metricsField,
    analysis: analysisSpec.optional(),
    matrix: matrixField,
    network: networkSpec.optional(),
    faults: faultsField,
  })
  .refine((spec) => spec.minInstances === undefined || spec.minInstances <= spec.instances, {
    message: '`minInstances` must not exceed `instances`',
    path: ['minInstances'],
  })
  .superRefine((spec, ctx) => {
    for (const problem of networkProblems(spec)) ctx.addIssue({ code: 'custom', path: [...problem.path], message: problem.message });
    for (const problem of analysisProblems(spec)) ctx.addIssue({ code: 'custom', path: [...problem.path], message: problem.message, params: { namesValue: true } });
    for (const problem of faultProblems(spec)) ctx.addIssue({ code: 'custom', path: [...problem.path], message: problem.message, params: { namesValue: true } });
  });

export type SpecInput = z.input<typeof specSchema>;
export type Spec = z.output<typeof specSchema>;
export type GroupSpec = Spec['groups'][number];
export type ProviderSpec = Spec['provider'];
export type AwsProviderSpec = z.output<typeof awsProvider>;
export type ParamValue = z.output<typeof paramValue>;
