import { literalPrefix, requiredLiteral } from './regex-literal.ts';
import { scanLines, type LineMatcher } from './line-scan.ts';
import type { MetricSpec, PerNode } from '../spec/metrics.ts';

/**
 * Extraction from one node file: the line matcher of each probe and the samples it gathers. Used
 * in-process and by the scan workers (`scan-worker.ts`), so it imports nothing heavy.
 */

/** What one read of a file looks for: a metric's values, or the lines matching a regex (a node left out). */
export type Probe = { readonly kind: 'metric'; readonly metric: MetricSpec } | { readonly kind: 'match'; readonly regex: string };

const DIGIT = /\d/;
/** The first number on a line, for `after`: `43`, `-1.5`, `2e3`. */
const FIRST_NUMBER = /[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?/;

/** Scans one file for some probes (one pass) and returns each probe's samples, in the given order. */
export async function scanNodeFile(path: string, probes: readonly Probe[], options: { chunkSize?: number; size?: number } = {}): Promise<NodeSamples[]> {
  const samples = probes.map((probe) => new NodeSamples(probe.kind === 'metric' ? (probe.metric.perNode ?? 'all') : 'sum'));
  await scanLines(
    path,
    probes.map((probe, i) => matcherFor(probe, samples[i]!)),
    options,
  );
  return samples;
}

/** The scanner side of one probe, for one file: its needle and what to do with a candidate line. */
export function matcherFor(probe: Probe, samples: NodeSamples): LineMatcher {
  return compiled(probe)(samples);
}

type MatcherFactory = (samples: NodeSamples) => LineMatcher;

// A probe's regular expressions and needles are worked out once, not once per file.
const byObject = new WeakMap<Probe, MatcherFactory>();
const byText = new Map<string, MatcherFactory>();

function compiled(probe: Probe): MatcherFactory {
  let factory = byObject.get(probe);
  if (factory) return factory;
  const key = JSON.stringify(probe);
  factory = byText.get(key);
  if (!factory) {
    factory = compile(probe);
    if (byText.size > 1000) byText.clear();
    byText.set(key, factory);
  }
  byObject.set(probe, factory);
  return factory;
}

function compile(probe: Probe): MatcherFactory {
  if (probe.kind === 'match') {
    const regex = new RegExp(probe.regex);
    const { needle, fromNeedle } = needleOf(probe.regex);
    return (samples) => ({
      needle,
      fromNeedle,
      onLine(line) {
        if (regex.test(line)) samples.add(1);
      },
    });
  }
  const metric = probe.metric;
  if (metric.json) {
    const name = metric.name;
    const needle = Buffer.from(JSON.stringify(name));
    return (samples) => ({
      needle,
      onLine(line) {
        const value = jsonLineValue(line, name);
        if (value !== undefined) samples.add(value);
      },
    });
  }
  if (metric.after !== undefined) {
    const after: AfterRule = {
      label: new RegExp(metric.after),
      pick: metric.number === undefined ? undefined : valueRegex(metric.number),
      ...needleOf(metric.after),
      follow: metric.skip ?? 1,
    };
    return (samples) => new AfterMatcher(after, samples);
  }
  const pick = valueRegex(metric.regex!);
  const { needle, fromNeedle } = needleOf(metric.regex!);
  return (samples) => ({
    needle,
    fromNeedle,
    onLine(line) {
      if (addCapture(pick, line, samples) !== 'no-match') samples.matched++;
    },
  });
}

interface AfterRule {
  readonly label: RegExp;
  readonly pick: { regex: RegExp; group: number | 'value' } | undefined;
  readonly needle: Uint8Array | undefined;
  readonly fromNeedle: boolean | undefined;
  readonly follow: number;
}

/** `after`: a label line, then the number on the line `follow` lines further (thousands of files: a class, not closures). */
class AfterMatcher implements LineMatcher {
  readonly needle: Uint8Array | undefined;
  readonly fromNeedle: boolean | undefined;
  readonly follow: number;

  constructor(
    private readonly rule: AfterRule,
    private readonly samples: NodeSamples,
  ) {
    this.needle = rule.needle;
    this.fromNeedle = rule.fromNeedle;
    this.follow = rule.follow;
  }

  onLine(line: string): boolean {
    if (!this.rule.label.test(line)) return false;
    this.samples.matched++;
    return true;
  }

  onFollowing(line: string): void {
    if (this.rule.pick) {
      addCapture(this.rule.pick, line, this.samples);
      return;
    }
    const found = FIRST_NUMBER.exec(line);
    if (found) this.samples.add(Number(found[0]));
  }
}

/** The bytes a line must hold to match `source`, and whether the match starts with them. */
function needleOf(source: string): { needle: Uint8Array | undefined; fromNeedle: boolean } {
  const literal = requiredLiteral(source);
  const prefix = literalPrefix(source);
  // A prefix needle lets the scanner decode from the match on; it must not be much weaker a filter.
  const fromNeedle = prefix !== undefined && prefix.length >= Math.min(4, literal?.length ?? 0);
  return { needle: fromNeedle ? Buffer.from(prefix!) : literal ? Buffer.from(literal) : undefined, fromNeedle };
}

/** Adds the number a value regex captures on `line`, if it is one. */
function addCapture(pick: { regex: RegExp; group: number | 'value' }, line: string, samples: NodeSamples): 'no-match' | 'number' | 'not-a-number' {
  const match = pick.regex.exec(line);
  const raw = match === null ? undefined : pick.group === 'value' ? match.groups?.value : match[pick.group];
  if (raw === undefined) return 'no-match';
  const value = Number(raw);
  // Number('') and Number('  ') are 0: only a zero needs a second look (is there a digit?).
  if (!Number.isFinite(value) || (value === 0 && !DIGIT.test(raw))) return 'not-a-number';
  samples.add(value);
  return 'number';
}

/**
 * The metric's regular expression, compiled for speed: V8 builds a `groups` object for every match
 * of a regex with named captures, so when nothing refers to a group by name (`\k<…>`), the named
 * captures become plain ones and `value` is read by its index. Same matches, same captures.
 */
export function valueRegex(source: string): { regex: RegExp; group: number | 'value' } {
  if (source.includes('\\k<')) return { regex: new RegExp(source), group: 'value' };
  let plain = '';
  let count = 0;
  let index: number | undefined;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      plain += c + (source[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '[') {
      let j = i + 1;
      while (j < source.length && source[j] !== ']') j += source[j] === '\\' ? 2 : 1;
      plain += source.slice(i, j + 1);
      i = j;
      continue;
    }
    if (c === '(') {
      const named = /^\(\?<([A-Za-z_$][\w$]*)>/.exec(source.slice(i, i + 64));
      if (named) {
        count++;
        if (named[1] === 'value') index = count;
        plain += '(';
        i += named[0].length - 1;
        continue;
      }
      if (source[i + 1] !== '?') count++;
    }
    plain += c;
  }
  if (index === undefined) return { regex: new RegExp(source), group: 'value' };
  try {
    // Same number of groups, and `value` where the original has it, or keep the original.
    const groups = (pattern: string) => new RegExp(`${pattern}|`).exec('')!.length;
    const regex = new RegExp(plain);
    if (groups(plain) === groups(source) && groups(source) > index - 1) return { regex, group: index };
  } catch {
    // Fall through to the original.
  }
  return { regex: new RegExp(source), group: 'value' };
}

/** The value of a JSON line `{"metric": name, "value": 12.5}` (a number or numeric string), if it is one. */
export function jsonLineValue(line: string, name: string): number | undefined {
  const start = line.indexOf('{');
  if (start < 0) return undefined;
  let record: unknown;
  try {
    record = JSON.parse(start === 0 ? line : line.slice(start));
  } catch {
    return undefined;
  }
  if (!record || typeof record !== 'object') return undefined;
  const { metric, value } = record as { metric?: unknown; value?: unknown };
  if (metric !== name) return undefined;
  const number = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  return Number.isFinite(number) ? number : undefined;
}

/** What a worker sends back for one metric of one file (structured-clone safe). */
export interface SamplesState {
  readonly perNode: PerNode;
  readonly count: number;
  /** The samples themselves (`perNode: all` only). */
  readonly values: Float64Array;
  readonly first: number;
  readonly last: number;
  readonly min: number;
  readonly max: number;
  readonly sum: number;
  readonly matched: number;
}

const EMPTY = new Float64Array(0);

/** The samples of one metric on one node: all of them, or a running reduction. */
export class NodeSamples {
  count = 0;
  /** Lines that matched (a regex, or an `after` label), whether or not they gave a number. */
  matched = 0;
  private values: Float64Array = EMPTY;
  private first = Number.NaN;
  private last = Number.NaN;
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  private sum = 0;

  constructor(readonly perNode: PerNode) {}

  /** Its state, for sending to another thread (the samples are copied to a buffer of their own). */
  state(): SamplesState {
    const { perNode, count, first, last, min, max, sum, matched } = this;
    return { perNode, count, values: this.values.slice(0, perNode === 'all' ? count : 0), first, last, min, max, sum, matched };
  }

  static fromState(state: SamplesState): NodeSamples {
    const samples = new NodeSamples(state.perNode);
    samples.count = state.count;
    samples.values = state.values.length > 0 ? state.values : EMPTY;
    samples.first = state.first;
    samples.last = state.last;
    samples.min = state.min;
    samples.max = state.max;
    samples.sum = state.sum;
    samples.matched = state.matched;
    return samples;
  }

  add(value: number): void {
    if (this.perNode === 'all') {
      if (this.count === this.values.length) {
        const grown = new Float64Array(Math.max(16, this.values.length * 2));
        grown.set(this.values);
        this.values = grown;
      }
      this.values[this.count] = value;
    }
    if (this.count === 0) this.first = value;
    this.last = value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.sum += value;
    this.count++;
  }

  /** Every sample (perNode `all`). */
  samples(): Float64Array {
    return this.values.subarray(0, this.count);
  }

  /** The node's one value: its reduction, or the mean of its samples for `all`. */
  value(): number {
    switch (this.perNode) {
      case 'first':
        return this.first;
      case 'last':
        return this.last;
      case 'min':
        return this.min;
      case 'max':
        return this.max;
      case 'sum':
        return this.sum;
      default:
        return this.sum / this.count;
    }
  }
}
