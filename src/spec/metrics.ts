import { z } from 'zod';
import { editDistance } from '../util/edit-distance.ts';
import { exprNames, ExprSyntaxError, parseExpr } from './expr.ts';
import { rankSelection } from './network.ts';

/**
 * The spec's `metrics` (values read from each node's files after a run, or derived from other
 * metrics) and `analysis` (nodes left out, the worst or best node, the sweep chart's axes). See
 * docs/results.md. The results code reads the declarations back from a run's recorded spec.
 *
 * This module imports nothing of `schema.ts`, so that `schema.ts` can import it.
 */

export const PER_NODE = ['all', 'first', 'last', 'min', 'max', 'mean', 'sum'] as const;
export type PerNode = (typeof PER_NODE)[number];

/** Where a metric reads by default. */
export const DEFAULT_METRIC_FILE = 'stdout.log';

const VALUE_GROUP = /\(\?<value>/;
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const RELATIVE_PATH = /^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$)).*$/;

const regexSource = z
  .string()
  .min(1)
  .refine(isRegex, { message: 'Expected a valid regular expression (JavaScript syntax)' })
  .refine((source) => !matchesEmpty(source), { message: 'This regular expression matches every line: make it more specific' });

const relativeFile = z.string().min(1).regex(RELATIVE_PATH, 'Expected a relative path without `..`');

/** Nodes left out: those whose log holds a line matching `match`, and those of some ranks or groups. */
export const excludeSpec = z
  .strictObject({
    match: regexSource.optional().describe('Leave out every node whose `file` holds a line matching this regular expression'),
    file: relativeFile.optional().describe('The file `match` reads: `stdout.log` (default), `stderr.log` or a collected file'),
    ranks: rankSelection.optional().describe('Leave out these ranks: a range `first-last` (`first-` to the last rank) or a list'),
    groups: z.array(z.string().min(1)).min(1).optional().describe('Leave out the ranks of these groups (by name)'),
  })
  .refine((e) => e.match !== undefined || e.ranks !== undefined || e.groups !== undefined, {
    message: 'An `exclude` needs at least one of `match`, `ranks` or `groups`',
  })
  .refine((e) => e.file === undefined || e.match !== undefined, { message: '`file` says where `match` looks: add `match`' });

export const metricSpec = z
  .strictObject({
    name: z
      .string()
      .regex(NAME, 'Expected a metric name of letters, digits, `_`, `.` and `-`')
      .describe('Name of the metric; for `json: true` also the `metric` field of the JSON lines'),
    regex: regexSource
      .refine((source) => VALUE_GROUP.test(source), {
        message: 'Expected a named capture `(?<value>…)` in the regular expression, e.g. `took (?<value>[0-9.]+) ms`',
      })
      .optional()
      .describe('A regular expression matched against each line of `file`; its named capture `value` is the number'),
    json: z
      .boolean()
      .optional()
      .describe('Read JSON lines `{"metric": "<name>", "value": <number>}` from `file` instead of a regex'),
    after: regexSource
      .refine((source) => !VALUE_GROUP.test(source), {
        message: 'The value is on a line after the one `after` matches: remove `(?<value>…)` here, and pick the number with `number` if the first one is not it',
      })
      .optional()
      .describe('A label: the value is the first number on the line after each line matching this regular expression'),
    skip: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('With `after`: take the n-th line after the label (1, the default, is the next line)'),
    number: regexSource
      .refine((source) => VALUE_GROUP.test(source), {
        message: 'Expected a named capture `(?<value>…)` that captures the number, e.g. `sent (?<value>[0-9]+) bytes`',
      })
      .optional()
      .describe('With `after`: a regular expression whose named capture `value` picks the number on that line (default: the first number)'),
    expr: z
      .string()
      .min(1)
      .optional()
      .describe('A per-node figure computed from the same node\'s other metrics: names, numbers, + - * / and parentheses'),
    file: relativeFile
      .optional()
      .describe('`stdout.log` (default), `stderr.log`, or a collected file (its path as uploaded under the node\'s `files/`)'),
    unit: z.string().min(1).optional().describe('Unit shown beside the values (e.g. `ms`)'),
    perNode: z
      .enum(PER_NODE)
      .optional()
      .describe('How a node\'s samples count in a repeat: `all` of them (default), or one value per node (first, last, min, max, mean, sum)'),
    exclude: excludeSpec.optional().describe('Nodes left out of this metric (besides those of `analysis.exclude`)'),
  })
  .superRefine((m, context) => {
    const kinds = (['regex', 'json', 'after', 'expr'] as const).filter((k) => (k === 'json' ? m.json === true : m[k] !== undefined));
    const issue = (message: string, path: string) => context.addIssue({ code: 'custom', message, path: [path], params: { namesValue: true } });
    if (kinds.length !== 1) {
      const found = kinds.length === 0 ? 'none' : kinds.map((k) => `\`${k}\``).join(' and ');
      context.addIssue({
        code: 'custom',
        message: `A metric needs exactly one of \`regex\`, \`json: true\`, \`after\` or \`expr\`; this one has ${found}`,
        params: { namesValue: true },
      });
      return;
    }
    if (m.after === undefined) {
      if (m.skip !== undefined) issue('`skip` counts lines after the line `after` matches: add `after`, or remove `skip`', 'skip');
      if (m.number !== undefined) issue('`number` picks the value on the line after `after`: add `after`, or put the capture in `regex`', 'number');
    }
    if (m.expr !== undefined) {
      for (const key of ['file', 'perNode'] as const) {
        if (m[key] !== undefined) issue(`A derived metric (\`expr\`) reads no file and has one value per node: remove \`${key}\``, key);
      }
      try {
        parseExpr(m.expr);
      } catch (error) {
        if (!(error instanceof ExprSyntaxError)) throw error;
        issue(`${error.message} of \`${m.expr}\``, 'expr');
      }
    }
  });

const metricNames = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (typeof v === 'string' ? [v] : v));

export const analysisSpec = z
  .strictObject({
    exclude: excludeSpec.optional().describe('Nodes left out of every metric: `match` (a regex their log matches), `ranks`, `groups`'),
    worst: metricNames
      .optional()
      .describe('Per repeat, the node with the largest value of this metric (or of each listed), shown with its other metrics; then the worst repeat'),
    best: metricNames.optional().describe('As `worst`, with the smallest value'),
    sweep: z
      .strictObject({
        x: z.string().min(1).describe('The param (or matrix key) along the x axis of the sweep charts, e.g. `instances`'),
        lines: metricNames.optional().describe('The params that make one line per value (default: every other key that varies on its own)'),
      })
      .optional()
      .describe('Axes of a sweep\'s charts'),
  })
  .describe('How metrics are analysed: nodes left out, the worst or best node, the axes of sweep charts (see docs/results.md)');

export const metricsField = z
  .array(metricSpec)
  .default([])
  .refine((list) => new Set(list.map((m) => m.name)).size === list.length, { message: 'Metric names must be unique' })
  .describe('Metrics read from every node\'s files after each repeat, or derived from other metrics (see docs/results.md)');

export type MetricSpec = z.output<typeof metricSpec>;
export type MetricSpecInput = z.input<typeof metricSpec>;
export type ExcludeSpec = z.output<typeof excludeSpec>;
export type AnalysisSpec = z.output<typeof analysisSpec>;

/** The file a metric reads (`stdout.log` unless it says otherwise). */
export function metricFile(metric: Pick<MetricSpec, 'file'>): string {
  return metric.file ?? DEFAULT_METRIC_FILE;
}

/** What is wrong across declarations (a metric name `expr` or `worst` uses, a cycle), with the key path. */
export interface AnalysisProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/**
 * Checks what one declaration alone cannot: every name an `expr`, `worst` or `best` uses is a
 * metric, and derived metrics do not depend on themselves.
 */
export function analysisProblems(spec: { readonly metrics: readonly MetricSpec[]; readonly analysis?: AnalysisSpec }): AnalysisProblem[] {
  const problems: AnalysisProblem[] = [];
  const names = spec.metrics.map((m) => m.name);
  const unknown = (name: string) => {
    const close = names.filter((n) => editDistance(n.toLowerCase(), name.toLowerCase()) <= 2);
    const hyphenated = names.find((n) => n.includes('-') && n.split('-').includes(name));
    if (hyphenated) return `\`${hyphenated}\` reads as a subtraction in \`expr\`: rename it without \`-\``;
    return close.length > 0 ? `did you mean \`${close[0]}\`?` : names.length > 0 ? `declared metrics: ${names.join(', ')}` : 'declare it in `metrics`';
  };

  const dependencies = new Map<string, string[]>();
  spec.metrics.forEach((metric, index) => {
    if (metric.expr === undefined) return;
    let used: string[];
    try {
      used = exprNames(parseExpr(metric.expr));
    } catch {
      return; // Reported by the declaration itself.
    }
    for (const name of used) {
      if (!names.includes(name)) problems.push({ path: ['metrics', index, 'expr'], message: `Unknown metric \`${name}\` in \`${metric.expr}\`: ${unknown(name)}` });
    }
    dependencies.set(metric.name, used.filter((n) => names.includes(n)));
  });
  const cycle = findCycle(dependencies);
  if (cycle) {
    const index = names.indexOf(cycle[0]!);
    problems.push({
      path: ['metrics', index, 'expr'],
      message: `Derived metrics depend on each other in a cycle: ${cycle.join(' → ')}; one of them must read its value from the logs`,
    });
  }
  for (const key of ['worst', 'best'] as const) {
    for (const name of spec.analysis?.[key] ?? []) {
      if (!names.includes(name)) problems.push({ path: ['analysis', key], message: `Unknown metric \`${name}\`: ${unknown(name)}` });
    }
  }
  return problems;
}

/** A cycle in a dependency graph, as the names along it (first = last), if there is one. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const found = visit(next);
      if (found) return found;
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const found = visit(node);
    if (found) return found;
  }
  return undefined;
}

/**
 * `metrics` and `analysis` alone, with the checks across them: what the results read back from a
 * run's recorded spec (and the spec schema checks the same when a spec is loaded).
 */
export const analysisFields = z
  .object({ metrics: metricsField, analysis: analysisSpec.optional() })
  .superRefine((spec, context) => {
    for (const problem of analysisProblems(spec)) {
      context.addIssue({ code: 'custom', path: [...problem.path], message: problem.message, params: { namesValue: true } });
    }
  });

export type Analysis = z.output<typeof analysisFields>;

/** The analysis part of a loaded spec. */
export function analysisOfSpec(spec: { readonly metrics: readonly MetricSpec[]; readonly analysis?: AnalysisSpec }): Analysis {
  return { metrics: [...spec.metrics], analysis: spec.analysis };
}

function isRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

function matchesEmpty(source: string): boolean {
  try {
    return new RegExp(source).test('');
  } catch {
    return false;
  }
}
