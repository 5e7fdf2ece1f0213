import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { isMap, isNode, isPair, isScalar, LineCounter, parse as parseYamlValue, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { GroupRangeError, resolveGroups } from './groups.ts';
import { specSchema, type Spec } from './schema.ts';
import { resolveSshSpec } from './ssh-spec.ts';
import { NODE_VARIABLES, SETUP_VARIABLES, unknownPlaceholders } from './template.ts';
import { editDistance } from '../util/edit-distance.ts';

/** A refused spec: one line for people, with the key path and where it came from. */
export class SpecError extends Error {
  override readonly name = 'SpecError';
  constructor(
    readonly file: string,
    readonly keyPath: string,
    readonly problem: string,
    readonly line?: number,
    readonly column?: number,
    readonly origin?: string,
  ) {
    const where = origin ?? (line === undefined ? file : `${file}:${line}:${column ?? 1}`);
    super(`${where}: ${keyPath ? `${keyPath}: ` : ''}${problem}`);
  }
}

export interface LoadedSpec {
  readonly spec: Spec;
  /** Absolute path of the spec file. */
  readonly file: string;
  /** Absolute path of the artifact, when the spec ships one. */
  readonly artifactPath?: string;
  /** The spec as YAML text after overrides, for the record of the run. */
  readonly source: string;
}

export interface LoadOptions {
  /** `key.path=value` overrides, applied in order before validation. */
  readonly overrides?: readonly string[];
  /**
   * One point of the spec's `matrix` (key path → value), applied after the overrides; the spec is
   * then that point's run, without the matrix. An error in a value points at its matrix line.
   */
  readonly matrixPoint?: Readonly<Record<string, unknown>>;
  readonly cwd?: string;
}

export function loadSpec(path: string, options: LoadOptions = {}): LoadedSpec {
  const file = resolve(options.cwd ?? process.cwd(), path);
  const shown = relative(options.cwd ?? process.cwd(), file) || file;
  if (!existsSync(file)) throw new SpecError(shown, '', `No spec file here: check the path, or create one (see README "Spec reference")`);
  return parseSpec(readFileSync(file, 'utf8'), { ...options, file, shown });
}

export function parseSpec(text: string, options: LoadOptions & { file: string; shown?: string }): LoadedSpec {
  const shown = options.shown ?? options.file;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const pos = lineCounter.linePos(yamlError.pos[0]);
    const detail = yamlError.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new SpecError(shown, '', `Malformed YAML: ${detail}; fix the syntax at this line`, pos.line, pos.col);
  }
  if (!isMap(doc.contents)) throw new SpecError(shown, '', 'Expected a YAML mapping of spec keys (name, instances, run, …)', 1, 1);

  const overridden = new Map<string, string>();
  for (const override of options.overrides ?? []) {
    const { keyPath, value } = parseOverride(override);
    doc.setIn(keyPath, doc.createNode(value));
    overridden.set(keyPath.join('.'), `${shown} (--set ${override})`);
  }
  // At a sweep's point, an error elsewhere in the spec (a group that does not fit N) names the point too.
  const atPoint = options.matrixPoint ? ` (matrix point ${Object.entries(options.matrixPoint).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(' ')})` : '';
  if (options.matrixPoint) {
    for (const [key, value] of Object.entries(options.matrixPoint)) {
      const keyNode = nodeAt(doc, ['matrix', key]);
      const at = keyNode?.range ? lineCounter.linePos(keyNode.range[0]) : undefined;
      overridden.set(key, `${shown}${at ? `:${at.line}:${at.col}` : ''}${atPoint}`);
      doc.setIn(splitKeyPath(key), doc.createNode(value));
    }
    doc.delete('matrix');
  }

  const locate = (path: readonly PropertyKey[]): { line?: number; column?: number; origin?: string } => {
    const dotted = path.map(String);
    for (let i = dotted.length; i > 0; i--) {
      const origin = overridden.get(dotted.slice(0, i).join('.'));
      if (origin) return { origin };
    }
    const node = nodeAt(doc, path);
    const pos = node?.range ? lineCounter.linePos(node.range[0]) : undefined;
    if (atPoint) return { origin: `${shown}${pos ? `:${pos.line}:${pos.col}` : ''}${atPoint}` };
    return pos ? { line: pos.line, column: pos.col } : {};
  };
  const fail = (path: readonly PropertyKey[], problem: string): never => {
    const at = locate(path);
    throw new SpecError(shown, path.map(String).join('.'), problem, at.line, at.column, at.origin);
  };

  const input: unknown = doc.toJS();
  const parsed = specSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0]!;
      fail([...issue.path, key], unknownKeyProblem(key, allowedKeys(issue.path)));
    }
    fail(issue.path, describeIssue(issue, valueAt(input, issue.path)));
  }
  const spec = parsed.data!;

  try {
    // A sweep's groups are checked at each point, with that point's `instances`.
    if (Object.keys(spec.matrix ?? {}).length === 0) resolveGroups(spec.groups, spec.instances);
  } catch (error) {
    if (error instanceof GroupRangeError) fail(['groups', error.groupIndex, 'ranks'], error.message);
    throw error;
  }

  const sshProblem = resolveSshSpec(spec, dirname(options.file), options.cwd);
  if (sshProblem?.origin) throw new SpecError(shown, sshProblem.path.join('.'), sshProblem.message, undefined, undefined, sshProblem.origin);
  if (sshProblem) fail(sshProblem.path, sshProblem.message);

  const paramNames = new Set([...Object.keys(spec.params), ...spec.groups.flatMap((g) => Object.keys(g.params))]);
  const runVariables = new Set<string>([...Object.keys(NODE_VARIABLES), ...[...paramNames].map((p) => `params.${p}`)]);
  const setupVariables = new Set<string>([...SETUP_VARIABLES, ...Object.keys(spec.params).map((p) => `params.${p}`)]);
  for (const [key, known] of [
    ['run', runVariables],
    ['setup', setupVariables],
  ] as const) {
    const template = spec[key];
    if (template === undefined) continue;
    const unknown = unknownPlaceholders(template, known)[0];
    if (unknown !== undefined) {
      const hint = unknown.startsWith('params.')
        ? `add \`${unknown.slice(7)}\` to \`params\`${key === 'run' ? ' or a group' : ''}`
        : `use one of ${[...known].filter((k) => !k.startsWith('params.')).map((k) => `{{${k}}}`).join(', ')}`;
      fail([key], `Unknown template variable {{${unknown}}}: ${hint}`);
    }
  }

  let artifactPath: string | undefined;
  if (spec.artifact !== undefined) {
    artifactPath = resolve(dirname(options.file), spec.artifact);
    if (!existsSync(artifactPath)) fail(['artifact'], `No file or folder at ${artifactPath}: fix the path (it is relative to the spec file)`);
  }
  return { spec, file: options.file, artifactPath, source: doc.toString() };
}

/** `instances=4`, `params.atSize=38`, `groups.0.params.role=adversary`: the value is read as YAML. */
export function parseOverride(override: string): { keyPath: (string | number)[]; value: unknown } {
  const eq = override.indexOf('=');
  if (eq <= 0) throw new SpecError('--set', override, 'Expected `key.path=value`, e.g. `--set instances=16`');
  const keyPath = splitKeyPath(override.slice(0, eq));
  if (keyPath.some((part) => part === '')) throw new SpecError('--set', override, 'Empty key in the path: write it as `a.b=value`');
  let value: unknown;
  try {
    value = parseYamlValue(override.slice(eq + 1));
  } catch {
    value = override.slice(eq + 1);
  }
  return { keyPath, value: value ?? '' };
}

/** `groups.0.params.role` → `['groups', 0, 'params', 'role']`. */
function splitKeyPath(dotted: string): (string | number)[] {
  return dotted.split('.').map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function nodeAt(doc: Document, path: readonly PropertyKey[]): { range?: [number, number, number] | null } | undefined {
  // For a key that exists, point at the key itself; otherwise at the nearest existing parent.
  for (let i = path.length; i > 0; i--) {
    const parent = i === 1 ? doc.contents : doc.getIn(path.slice(0, i - 1) as (string | number)[], true);
    if (isMap(parent)) {
      const pair = parent.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(path[i - 1]));
      if (pair && isNode(pair.key)) return pair.key;
    }
    const node = doc.getIn(path.slice(0, i) as (string | number)[], true);
    if (isNode(node)) return node;
  }
  return isNode(doc.contents) ? doc.contents : undefined;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    // A shorthand (`provider: gce` for `provider: { kind: gce }`): the scalar is what was given.
    if (value !== null && value !== undefined && typeof value !== 'object') return value;
    value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  }
  return value;
}

function allowedKeys(path: readonly PropertyKey[]): string[] {
  let schema: unknown = specSchema;
  for (const key of ['', ...path.map(String)]) {
    schema = unwrap(schema);
    if (key === '') continue;
    const shape = (schema as { shape?: Record<string, unknown> }).shape;
    const element = (schema as { element?: unknown }).element;
    schema = shape?.[key] ?? element ?? (schema as { options?: unknown[] }).options?.[0];
  }
  // A union with a shorthand (`targets: "0-2"` or `{ ranks, groups, random }`): its object form.
  const last = unwrap(schema) as { shape?: Record<string, unknown>; options?: unknown[] };
  const shape = last.shape ?? (unwrap(last.options?.[0]) as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

function unwrap(schema: unknown): unknown {
  let current = schema as { def?: { innerType?: unknown; in?: unknown; out?: unknown; type?: string; schema?: unknown } };
  for (let i = 0; i < 10 && current?.def; i++) {
    const def = current.def;
    const next = def.innerType ?? (def.type === 'pipe' ? def.in : undefined) ?? def.schema;
    if (!next) break;
    current = next as typeof current;
  }
  return current;
}

function unknownKeyProblem(key: string, allowed: string[]): string {
  const close = allowed.find((candidate) => editDistance(candidate.toLowerCase(), key.toLowerCase()) <= 2);
  const hint = close ? `did you mean \`${close}\`?` : `remove it, or use one of: ${allowed.join(', ')}`;
  return `Unknown key \`${key}\`: ${hint}`;
}

/** How the schema's types read to people. */
const TYPE_WORDS: Readonly<Record<string, string>> = {
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  string: 'text',
  boolean: '`true` or `false`',
  array: 'a list',
  tuple: 'a list',
  record: 'a mapping (`name: value` lines)',
  object: 'a mapping (`name: value` lines)',
  map: 'a mapping (`name: value` lines)',
};

const typeWords = (type: string): string => TYPE_WORDS[type] ?? type;

function describeIssue(issue: z.core.$ZodIssue, got: unknown): string {
  const shown = got === undefined ? 'nothing' : `\`${JSON.stringify(got)}\``;
  // A number or a boolean where text is one of the choices: YAML read it as such; quoting keeps it text.
  const quoteIt = (expected: string) => (/\btext\b/.test(expected) && (typeof got === 'number' || typeof got === 'boolean') ? `: write it in quotes, \`"${String(got)}"\`` : '');
  switch (issue.code) {
    case 'invalid_type': {
      if (got === undefined) return `Missing required key: add it (expected ${typeWords(issue.expected)})`;
      const expected = typeWords(issue.expected);
      return `Expected ${expected}, got ${shown}${quoteIt(expected)}`;
    }
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'number') return `Expected a number ${issue.inclusive ? `at least ${min}` : `greater than ${min}`}, got ${shown}`;
      if (issue.origin === 'string') return `Expected ${min <= 1 ? 'text that is not empty' : `text of at least ${min} characters`}, got ${shown}`;
      if (issue.origin === 'array' || issue.origin === 'set') return `Expected ${min <= 1 ? 'a list of at least one entry' : `a list of at least ${min} entries`}, got ${shown}`;
      return `Expected at least ${min}, got ${shown}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'number') return `Expected a number ${issue.inclusive ? `at most ${max}` : `less than ${max}`}, got ${shown}`;
      if (issue.origin === 'string') return `Expected text of at most ${max} characters, got ${shown}`;
      if (issue.origin === 'array' || issue.origin === 'set') return `Expected a list of at most ${max} entries, got ${shown}`;
      return `Expected at most ${max}, got ${shown}`;
    }
    case 'invalid_union': {
      const expected = issue.path.at(-1) === 'ranks' ? 'a rank range as text (`"4-7"`, `"4-"`, `"3"`) or a list of ranks' : describeExpected(issue);
      return `Expected ${expected}, got ${shown}${quoteIt(expected)}`;
    }
    case 'invalid_value':
      return `Expected one of ${issue.values.map((v) => `\`${String(v)}\``).join(', ')}, got ${shown}`;
    default:
      // A refinement whose message already names the offending value says it once.
      if (issue.code === 'custom' && (issue.params as { namesValue?: boolean } | undefined)?.namesValue) return issue.message;
      return `${issue.message}, got ${shown}`;
  }
}

function describeExpected(issue: z.core.$ZodIssue & { code: 'invalid_union' }): string {
  const { note, errors } = issue as { note?: string; errors?: z.core.$ZodIssue[][] };
  if (note === 'No matching discriminator') return 'a `kind` of `local` or `aws`';
  const messages = (errors ?? []).flat().map((e) => (e.code === 'invalid_type' ? typeWords(e.expected) : e.message));
  return [...new Set(messages)].join(' or ');
}
