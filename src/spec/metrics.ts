import { z } from 'zod';

/**
 * The spec's `metrics` field: values read from each node's files after a run (see
 * docs/results.md). The results code reads the declarations back from a run's recorded spec.
 */

export const PER_NODE = ['all', 'first', 'last', 'min', 'max', 'mean', 'sum'] as const;
export type PerNode = (typeof PER_NODE)[number];

const VALUE_GROUP = /\(\?<value>/;

export const metricSpec = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'Expected a metric name of letters, digits, `_`, `.` and `-`')
      .describe('Name of the metric; for `json: true` also the `metric` field of the JSON lines'),
    regex: z
      .string()
      .min(1)
      .refine(isRegex, { message: 'Expected a valid regular expression (JavaScript syntax)' })
      .refine((source) => VALUE_GROUP.test(source), {
        message: 'Expected a named capture `(?<value>…)` in the regular expression, e.g. `took (?<value>[0-9.]+) ms`',
      })
      .optional()
      .describe('A regular expression matched against each line of `file`; its named capture `value` is the number'),
    json: z
      .boolean()
      .optional()
      .describe('Read JSON lines `{"metric": "<name>", "value": <number>}` from `file` instead of a regex'),
    file: z
      .string()
      .min(1)
      .regex(/^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$)).*$/, 'Expected a relative path without `..`')
      .default('stdout.log')
      .describe('`stdout.log` (default), `stderr.log`, or a collected file (its path as uploaded under the node\'s `files/`)'),
    unit: z.string().min(1).optional().describe('Unit shown beside the values (e.g. `ms`)'),
    perNode: z
      .enum(PER_NODE)
      .default('all')
      .describe('How a node\'s samples count in a repeat: `all` of them, or one value per node (first, last, min, max, mean, sum)'),
  })
  .refine((m) => (m.regex === undefined) !== (m.json !== true), {
    message: 'A metric needs exactly one of `regex` or `json: true`',
  });

export const metricsField = z
  .array(metricSpec)
  .default([])
  .refine((list) => new Set(list.map((m) => m.name)).size === list.length, { message: 'Metric names must be unique' })
  .describe('User metrics extracted from every node\'s logs after each repeat (see docs/results.md)');

export type MetricSpec = z.output<typeof metricSpec>;
export type MetricSpecInput = z.input<typeof metricSpec>;

function isRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
