import { statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { nodeFiles } from '../core/layout.ts';
import type { RunManifest } from '../core/manifest.ts';
import { evaluateExpr, exprNames, parseExpr, type Expr } from '../spec/expr.ts';
import { resolveGroups } from '../spec/groups.ts';
import {
  analysisFields,
  metricFile,
  type Analysis,
  type AnalysisSpec,
  type ExcludeSpec,
  type MetricSpec,
  type MetricSpecInput,
  type PerNode,
} from '../spec/metrics.ts';
import { hasRank } from '../spec/ranks.ts';
import type { NodeSamples, Probe } from './extract.ts';
import type { LocalNode, LocalRepeat, LocalRun } from './local-run.ts';
import { scanFiles, type ScanPoolOptions } from './scan-pool.ts';
import { distribution, summarizeRepeats, type Distribution, type RepeatSummary } from './stats.ts';

export const METRIC_STATS = ['min', 'median', 'mean', 'p95', 'max'] as const;
export type MetricStat = (typeof METRIC_STATS)[number];

/** One metric over a run: per repeat over nodes, and over repeats. */
export interface MetricReport {
  readonly name: string;
  readonly unit: string | null;
  readonly source: 'regex' | 'json' | 'after' | 'expr';
  /** The file it reads; null for a derived metric. */
  readonly file: string | null;
  readonly perNode: PerNode;
  /** A derived metric's expression. */
  readonly expr?: string;
  readonly repeats: readonly MetricRepeat[];
  /** Each per-repeat statistic over the repeats that had samples: mean, sd, 95% CI. */
  readonly overRepeats: Readonly<Record<MetricStat, RepeatSummary>>;
  /** When no repeat had a sample: why, in words (the file it looked for, whether `collect` brought it home). */
  readonly nothingFound: string | null;
}

export interface MetricRepeat {
  readonly repeat: number;
  /** Nodes with at least one sample. */
  readonly nodes: number;
  /** Samples aggregated: every sample (`perNode: all`) or one per node. */
  readonly samples: number;
  /** Over the samples; null when no node had one. */
  readonly stats: Distribution | null;
  /** Per node: how many samples it had and its value (its own reduction; `all`: the node's mean). */
  readonly byRank: ReadonlyArray<{ readonly rank: number; readonly count: number; readonly value: number }>;
  /** Ranks left out by `exclude` (the analysis's or the metric's own). */
  readonly excludedRanks: readonly number[];
}

/** `worst:` (largest) or `best:` (smallest) of a metric: the node per repeat, then over the repeats. */
export interface ExtremeReport {
  readonly kind: 'worst' | 'best';
  readonly metric: string;
  /** Per repeat that had a value: the node, with its value of every metric. */
  readonly repeats: readonly ExtremeNode[];
  /** The worst (best) of the per-repeat ones; on a tie, the earliest repeat. */
  readonly overall: ExtremeNode | null;
}

export interface ExtremeNode {
  readonly repeat: number;
  readonly rank: number;
  readonly value: number;
  /** The node's value of each metric in that repeat (null: none, or left out). */
  readonly metrics: Readonly<Record<string, number | null>>;
}

export interface MetricsAnalysis {
  readonly metrics: readonly MetricReport[];
  readonly extremes: readonly ExtremeReport[];
}

export class MetricSpecError extends Error {
  override readonly name = 'MetricSpecError';
  readonly exitCode = 2;
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(`Metrics of ${source}: ${problem}; fix \`metrics\` or \`analysis\` in the spec (see docs/results.md)`);
  }
}

/** Metric declarations with, optionally, the spec's `analysis`; or just a list of metrics. */
export type AnalysisInput = { readonly metrics?: readonly (MetricSpec | MetricSpecInput)[]; readonly analysis?: unknown } | readonly (MetricSpec | MetricSpecInput)[];

/** Validates metric declarations and `analysis` (as written in a spec) and fills their defaults. */
export function parseAnalysis(input: AnalysisInput | undefined, source = 'the spec'): Analysis {
  const fields = Array.isArray(input) ? { metrics: input } : (input ?? {});
  const parsed = analysisFields.safeParse({ metrics: (fields as { metrics?: unknown }).metrics ?? [], analysis: (fields as { analysis?: unknown }).analysis });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new MetricSpecError(source, `${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

/** The metrics and analysis a run declared: those of the spec text it recorded in its manifest. */
export function analysisOfManifest(manifest: RunManifest): Analysis {
  let document: unknown;
  try {
    document = parseYaml(manifest.specSource ?? '');
  } catch {
    return { metrics: [] };
  }
  const fields = document && typeof document === 'object' ? (document as { metrics?: unknown; analysis?: unknown }) : {};
  return parseAnalysis({ metrics: (fields.metrics ?? []) as MetricSpecInput[], analysis: fields.analysis }, `run ${manifest.runId}`);
}

export type ExtractOptions = ScanPoolOptions;

/** Who asked a probe's question of a node's file: a metric (by index) or an `exclude` rule. */
type ProbeOwner = { readonly metric: number } | { readonly rule: ExcludeRule };

interface ExcludeRule {
  readonly spec: ExcludeSpec;
  /** The metric it belongs to; undefined: `analysis.exclude`, every metric. */
  readonly metric?: number;
}

interface FileJob {
  readonly path: string;
  readonly size: number;
  readonly repeatIndex: number;
  readonly rank: number;
  readonly probes: Probe[];
  readonly owners: ProbeOwner[];
}

/**
 * Extracts the metrics from every node's files of every repeat (streaming each file once for all
 * that read it, in worker threads when there is much to read), leaves out the excluded nodes,
 * computes the derived metrics per node, aggregates, and finds the worst and best nodes.
 */
export async function extractMetrics(run: LocalRun, input: AnalysisInput, options: ExtractOptions = {}): Promise<MetricsAnalysis> {
  const { metrics, analysis } = parseAnalysis(input);
  if (metrics.length === 0) return { metrics: [], extremes: [] };

  const rules: ExcludeRule[] = [
    ...(analysis?.exclude ? [{ spec: analysis.exclude }] : []),
    ...metrics.flatMap((metric, index) => (metric.exclude ? [{ spec: metric.exclude, metric: index }] : [])),
  ];
  checkGroups(run, rules);

  // One job per node file: every probe (metric or `match` rule) reading that file. The probes are
  // made once, so that each is compiled once.
  const metricProbes = metrics.map((metric): Probe => ({ kind: 'metric', metric }));
  const ruleProbes = rules.map((rule): Probe | undefined => (rule.spec.match !== undefined ? { kind: 'match', regex: rule.spec.match } : undefined));
  const jobs: FileJob[] = [];
  const filesFound = metrics.map(() => 0);
  run.repeats.forEach((repeat, repeatIndex) => {
    for (const node of repeat.nodes) {
      const byFile = new Map<string, FileJob | null>();
      const add = (file: string, probe: Probe, owner: ProbeOwner) => {
        let job = byFile.get(file);
        if (job === undefined) {
          const path = nodeFilePath(node.dir, file);
          const size = statSync(path, { throwIfNoEntry: false })?.size;
          job = size === undefined ? null : { path, size, repeatIndex, rank: node.rank, probes: [], owners: [] };
          byFile.set(file, job);
          if (job) jobs.push(job);
        }
        if (!job) return false;
        job.probes.push(probe);
        job.owners.push(owner);
        return true;
      };
      metrics.forEach((metric, index) => {
        if (metric.expr === undefined && add(metricFile(metric), metricProbes[index]!, { metric: index })) filesFound[index]!++;
      });
      rules.forEach((rule, index) => {
        if (ruleProbes[index]) add(metricFile(rule.spec), ruleProbes[index]!, { rule });
      });
    }
  });

  const scanned = await scanFiles(jobs, options);

  // Per repeat, per metric: rank → samples; and the ranks each rule's `match` found.
  const samples = metrics.map(() => run.repeats.map(() => new Map<number, NodeSamples>()));
  const matchedBy = new Map<ExcludeRule, Set<string>>(rules.map((rule) => [rule, new Set<string>()]));
  jobs.forEach((job, j) => {
    job.owners.forEach((owner, i) => {
      const result = scanned[j]![i]!;
      if ('metric' in owner) samples[owner.metric]![job.repeatIndex]!.set(job.rank, result);
      else if (result.count > 0) matchedBy.get(owner.rule)!.add(`${job.repeatIndex}:${job.rank}`);
    });
  });

  // Node values, per repeat: metric index → rank → value (left-out nodes have none).
  const values = run.repeats.map(() => metrics.map(() => new Map<number, number>()));
  const excludedRanks = metrics.map(() => run.repeats.map(() => [] as number[]));
  const everyMetric = rules.filter((rule) => rule.metric === undefined);
  run.repeats.forEach((repeat, r) => {
    const n = repeat.start?.members.length ?? Math.max(run.manifest.instances, ...repeat.nodes.map((x) => x.rank + 1));
    const out = (rule: ExcludeRule, node: LocalNode) => excludes(rule, run, node, n, matchedBy.get(rule)!.has(`${r}:${node.rank}`));
    for (const node of repeat.nodes) {
      const leftOut = everyMetric.some((rule) => out(rule, node));
      metrics.forEach((metric, m) => {
        if (leftOut || rules.some((rule) => rule.metric === m && out(rule, node))) {
          excludedRanks[m]![r]!.push(node.rank);
          samples[m]![r]!.delete(node.rank);
          return;
        }
        const found = samples[m]![r]!.get(node.rank);
        if (found && found.count > 0) values[r]![m]!.set(node.rank, found.value());
      });
    }
  });
  deriveValues(run, metrics, values, excludedRanks);

  const reports = metrics.map((metric, m): MetricReport => {
    const repeats = run.repeats.map((repeat, r) =>
      metric.expr === undefined
        ? aggregateRepeat(repeat.repeat, samples[m]![r]!, metric.perNode ?? 'all', excludedRanks[m]![r]!)
        : aggregateValues(repeat.repeat, values[r]![m]!, excludedRanks[m]![r]!),
    );
    // A metric none of whose samples was ever negative is taken for one that cannot be.
    const nonNegative = repeats.every((rep) => rep.stats === null || rep.stats.min >= 0);
    const overRepeats = Object.fromEntries(
      METRIC_STATS.map((stat) => [stat, summarizeRepeats(repeats.map((rep) => rep.stats?.[stat] ?? null), { nonNegative })]),
    ) as Record<MetricStat, RepeatSummary>;
    return {
      name: metric.name,
      unit: metric.unit ?? null,
      source: metric.expr !== undefined ? 'expr' : metric.json ? 'json' : metric.after !== undefined ? 'after' : 'regex',
      file: metric.expr === undefined ? metricFile(metric) : null,
      perNode: metric.perNode ?? 'all',
      ...(metric.expr !== undefined ? { expr: metric.expr } : {}),
      repeats,
      overRepeats,
      nothingFound: null,
    };
  });
  const withReasons = reports.map((report, m) =>
    report.repeats.some((rep) => rep.samples > 0) ? report : { ...report, nothingFound: whyNothing(run, metrics, m, reports, filesFound[m]!, samples[m]!) },
  );
  return { metrics: withReasons, extremes: extremes(analysis, withReasons) };
}

/** `stdout.log` and `stderr.log` are the node's own logs; any other path is a collected file. */
export function nodeFilePath(nodeDir: string, file: string): string {
  if (file === nodeFiles.stdout || file === nodeFiles.stderr || file.startsWith(nodeFiles.filesPrefix)) {
    return join(nodeDir, ...file.split('/'));
  }
  return join(nodeDir, ...nodeFiles.filesPrefix.slice(0, -1).split('/'), ...file.split('/'));
}

/** Every group an `exclude` names must be a group of the run. */
function checkGroups(run: LocalRun, rules: readonly ExcludeRule[]): void {
  const known = new Set((run.manifest.groups ?? []).map((g, i) => g.name ?? `group${i}`));
  for (const rule of rules) {
    for (const group of rule.spec.groups ?? []) {
      if (!known.has(group)) {
        const names = [...known];
        throw new MetricSpecError(
          `run ${run.runId}`,
          `exclude.groups: no group \`${group}\` in this run (${names.length > 0 ? `its groups: ${names.join(', ')}` : 'it has no groups'})`,
        );
      }
    }
  }
}

/** Whether a rule leaves a node out, among `n` ranks (`matched`: its `match` found a line in the node's file). */
function excludes(rule: ExcludeRule, run: LocalRun, node: LocalNode, n: number, matched: boolean): boolean {
  if (matched) return true;
  if (rule.spec.ranks !== undefined && hasRank(rule.spec.ranks, n, node.rank)) return true;
  if (rule.spec.groups !== undefined) return groupsOf(run, node, n).some((g) => rule.spec.groups!.includes(g));
  return false;
}

/** The groups of a node: as its result recorded, else from the run's group declarations. */
function groupsOf(run: LocalRun, node: LocalNode, n: number): readonly string[] {
  if (node.result?.groups) return node.result.groups;
  try {
    return resolveGroups(run.manifest.groups ?? [], n)
      .filter((g) => g.ranks.includes(node.rank))
      .map((g) => g.name);
  } catch {
    return [];
  }
}

/** Fills each derived metric's node values from the values of the metrics it reads (in dependency order). */
function deriveValues(run: LocalRun, metrics: readonly MetricSpec[], values: Array<Array<Map<number, number>>>, excludedRanks: number[][][]): void {
  const index = new Map(metrics.map((m, i) => [m.name, i]));
  const trees = new Map<number, Expr>();
  metrics.forEach((m, i) => m.expr !== undefined && trees.set(i, parseExpr(m.expr)));
  const done = new Set<number>(metrics.map((_, i) => i).filter((i) => !trees.has(i)));
  const dependsOn = (tree: Expr): number[] => exprNames(tree).map((name) => index.get(name)!);
  // The declarations were checked for cycles: each pass resolves at least one.
  while (done.size < metrics.length) {
    for (const [m, tree] of trees) {
      if (done.has(m) || !dependsOn(tree).every((d) => done.has(d))) continue;
      run.repeats.forEach((repeat, r) => {
        const left = new Set(excludedRanks[m]![r]!);
        for (const node of repeat.nodes) {
          if (left.has(node.rank)) continue;
          const value = evaluateExpr(tree, (name) => values[r]![index.get(name)!]!.get(node.rank));
          if (value !== undefined) values[r]![m]!.set(node.rank, value);
        }
      });
      done.add(m);
    }
  }
}

function aggregateRepeat(repeat: number, nodes: Map<number, NodeSamples>, perNode: PerNode, excludedRanks: readonly number[]): MetricRepeat {
  const withSamples = [...nodes].filter(([, s]) => s.count > 0).sort(([a], [b]) => a - b);
  let pooled: Float64Array;
  if (perNode === 'all') {
    pooled = new Float64Array(withSamples.reduce((total, [, s]) => total + s.count, 0));
    let offset = 0;
    for (const [, s] of withSamples) {
      pooled.set(s.samples(), offset);
      offset += s.count;
    }
  } else {
    pooled = Float64Array.from(withSamples.map(([, s]) => s.value()));
  }
  return {
    repeat,
    nodes: withSamples.length,
    samples: pooled.length,
    stats: distribution(pooled) ?? null,
    byRank: withSamples.map(([rank, s]) => ({ rank, count: s.count, value: s.value() })),
    excludedRanks,
  };
}

function aggregateValues(repeat: number, nodes: Map<number, number>, excludedRanks: readonly number[]): MetricRepeat {
  const byRank = [...nodes].sort(([a], [b]) => a - b).map(([rank, value]) => ({ rank, count: 1, value }));
  return {
    repeat,
    nodes: byRank.length,
    samples: byRank.length,
    stats: distribution(byRank.map((n) => n.value)) ?? null,
    byRank,
    excludedRanks,
  };
}

/** Per repeat the node with the largest (`worst`) or smallest (`best`) value, then the same over repeats. */
function extremes(analysis: AnalysisSpec | undefined, metrics: readonly MetricReport[]): ExtremeReport[] {
  const reports: ExtremeReport[] = [];
  for (const kind of ['worst', 'best'] as const) {
    const better = (a: number, b: number) => (kind === 'worst' ? a > b : a < b);
    for (const name of analysis?.[kind] ?? []) {
      const metric = metrics.find((m) => m.name === name)!;
      const repeats: ExtremeNode[] = [];
      metric.repeats.forEach((repeat, r) => {
        let pick: { rank: number; value: number } | undefined;
        // byRank is in rank order: on a tie, the lowest rank.
        for (const node of repeat.byRank) if (!pick || better(node.value, pick.value)) pick = node;
        if (!pick) return;
        const nodeMetrics = Object.fromEntries(
          metrics.map((m) => [m.name, m.repeats[r]?.byRank.find((x) => x.rank === pick!.rank)?.value ?? null]),
        );
        repeats.push({ repeat: repeat.repeat, rank: pick.rank, value: pick.value, metrics: nodeMetrics });
      });
      let overall: ExtremeNode | null = null;
      for (const node of repeats) if (!overall || better(node.value, overall.value)) overall = node;
      reports.push({ kind, metric: name, repeats, overall });
    }
  }
  return reports;
}

/**
 * Why a metric found nothing, in words: the file it looked for, on how many nodes it was, whether
 * `collect` brings it home, and what the pattern matched.
 */
function whyNothing(
  run: LocalRun,
  metrics: readonly MetricSpec[],
  m: number,
  reports: readonly MetricReport[],
  filesFound: number,
  samples: ReadonlyArray<Map<number, NodeSamples>>,
): string {
  const metric = metrics[m]!;
  const considered = run.repeats.reduce((total, repeat, r) => total + repeat.nodes.length - reports[m]!.repeats[r]!.excludedRanks.length, 0);
  const nodeCount = run.repeats.reduce((total, repeat) => total + repeat.nodes.length, 0);
  if (nodeCount === 0) return 'no node folder was downloaded (no node uploaded anything)';
  if (considered === 0) return 'every node was left out by `exclude`';
  if (metric.expr !== undefined) {
    const used = exprNames(parseExpr(metric.expr));
    const empty = reports.filter((r) => used.includes(r.name) && r.repeats.every((rep) => rep.samples === 0));
    const hint = empty.length > 0 ? ` (${empty.map((r) => `\`${r.name}\``).join(', ')} found nothing)` : '';
    return `no node had a value of every metric in \`${metric.expr}\`${hint}`;
  }
  const file = metricFile(metric);
  const own = file === nodeFiles.stdout || file === nodeFiles.stderr;
  const shown = own ? file : `${nodeFiles.filesPrefix}${file.replace(/^files\//, '')}`;
  const nodes = `${filesFound} of ${considered} node${considered === 1 ? '' : 's'}`;
  if (filesFound === 0) {
    if (own) return `looked for ${file}: no node has one (the nodes uploaded no such log; see \`lockstep logs ${run.runId}\`)`;
    const collected = collectEntryFor(run.manifest.collect, file.replace(/^files\//, ''));
    return collected === undefined
      ? `looked for ${shown}: no node has it, and \`collect\` does not list it: add \`${file}\` (or its folder) to \`collect\`, or have the command write it to {{outputDir}}`
      : `looked for ${shown}: no node has it, although \`collect\` lists \`${collected}\`: check that the command writes it there (relative to its working folder)`;
  }
  const where = own ? `${file} (${nodes} have it)` : `${shown} (\`collect\` brought it home from ${nodes})`;
  const matched = samples.reduce((total, byRank) => total + [...byRank.values()].reduce((t, s) => t + s.matched, 0), 0);
  if (metric.json) return `looked in ${where}: no line is a JSON record {"metric": "${metric.name}", "value": <number>}`;
  if (metric.after !== undefined) {
    const line = (metric.skip ?? 1) === 1 ? 'the next line' : `the line ${metric.skip} after`;
    return matched > 0
      ? `looked in ${where}: \`${metric.after}\` matched ${matched} line(s), but ${line} held no ${metric.number ? `match of \`${metric.number}\`` : 'number'}`
      : `looked in ${where}: no line matched \`${metric.after}\``;
  }
  return matched > 0
    ? `looked in ${where}: \`${metric.regex}\` matched ${matched} line(s), but its \`value\` was never a number`
    : `looked in ${where}: no line matched \`${metric.regex}\``;
}

/** The `collect` entry that brings `file` home: the file itself or a folder holding it. */
function collectEntryFor(collect: readonly string[], file: string): string | undefined {
  return collect.find((entry) => {
    const path = entry.replace(/^\.\//, '').replace(/\/+$/, '');
    return path === file || file.startsWith(`${path}/`) || path === '.' || path === '';
  });
}
