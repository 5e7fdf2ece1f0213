/** `{{name}}` and `{{params.name}}` placeholders in `run` and `setup`. */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/g;

/** Variables every node's command gets, as template names and as environment variables. */
export const NODE_VARIABLES = {
  rank: 'LOCKSTEP_RANK',
  n: 'LOCKSTEP_N',
  runId: 'LOCKSTEP_RUN_ID',
  repeat: 'LOCKSTEP_REPEAT',
  address: 'LOCKSTEP_ADDRESS',
  hostsFile: 'LOCKSTEP_HOSTS_FILE',
  hostsJson: 'LOCKSTEP_HOSTS_JSON',
  outputDir: 'LOCKSTEP_OUTPUT_DIR',
  instanceId: 'LOCKSTEP_INSTANCE_ID',
} as const;

/** What `setup` may use: it runs once per instance, before any rank is known. */
export const SETUP_VARIABLES = ['n', 'runId', 'address', 'instanceId'] as const;

export type NodeVariables = { [K in keyof typeof NODE_VARIABLES]: string | number };

export function paramEnvName(name: string): string {
  return `LOCKSTEP_PARAM_${name.toUpperCase()}`;
}

export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/** The placeholders of `template` that are not among `known` (names, and `params.` + param names). */
export function unknownPlaceholders(template: string, known: ReadonlySet<string>): string[] {
  return placeholders(template).filter((name) => !known.has(name));
}

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes a value for POSIX sh, leaving plain words as they are. */
export function shellQuote(value: string): string {
  if (value !== '' && SAFE.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Replaces every placeholder with its shell-quoted value; throws on one it cannot fill. */
export function renderTemplate(template: string, values: Readonly<Record<string, string | number | boolean>>): string {
  return template.replace(PLACEHOLDER, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`Unknown template variable {{${name}}}`);
    return shellQuote(String(value));
  });
}

/** The flat name → value map a template is rendered with. */
export function templateValues(
  node: Partial<NodeVariables>,
  params: Readonly<Record<string, string | number | boolean>>,
): Record<string, string | number | boolean> {
  const values: Record<string, string | number | boolean> = {};
  for (const [name, value] of Object.entries(node)) if (value !== undefined) values[name] = value;
  for (const [name, value] of Object.entries(params)) values[`params.${name}`] = value;
  return values;
}

/** The same values as environment variables for the command. */
export function environmentFor(
  node: Partial<NodeVariables>,
  params: Readonly<Record<string, string | number | boolean>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(node)) {
    if (value !== undefined) env[NODE_VARIABLES[name as keyof NodeVariables]] = String(value);
  }
  for (const [name, value] of Object.entries(params)) env[paramEnvName(name)] = String(value);
  return env;
}
