import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellQuote } from '../../spec/template.ts';
import { describeTarget, SshError, type SshConnection } from './connection.ts';
import { AGENT_FILE, type HostInstance, type ScannedInstance, type StartRequest, type StopReport } from '../../core/host-control.ts';

/** Node.js the agent needs on a host. */
export const MIN_NODE_MAJOR = 20;

/** dist/host-control.mjs (agent/host-control.ts), beside the built CLI or at the package root when running from source. */
export function hostControlSource(): string {
  const candidates = [new URL('./host-control.mjs', import.meta.url), new URL('../../../dist/host-control.mjs', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p) && p.endsWith('dist/host-control.mjs'));
  if (!found) throw new Error(`The host-control script ${candidates[candidates.length - 1]} is missing: run \`npm run build\` first`);
  return readFileSync(found, 'utf8');
}

let helperSource: string | undefined;

/** Runs a command of the host-control script with `node` on the host; its JSON answer, or an error with what it printed. */
export async function runHelper<T>(connection: SshConnection, node: string, command: string, input: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
  helperSource ??= hostControlSource();
  const result = await connection.exec(`${shellQuote(node)} --input-type=module - ${command} ${shellQuote(JSON.stringify(input))}`, { input: helperSource, timeoutMs: options.timeoutMs ?? 60_000 });
  const line = result.stdout.trim().split('\n').pop() ?? '';
  if (result.code !== 0 || !line.startsWith('{') && !line.startsWith('[')) {
    const said = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-3).join(' ');
    throw new Error(`${command} on ${connection.target.name} failed (exit ${result.code ?? result.signal}): ${said}`);
  }
  return JSON.parse(line) as T;
}

/** Watches an instance's agent until it ends (true), or until the connection drops (false). */
export async function watchAgent(connection: SshConnection, node: string, dir: string): Promise<boolean> {
  helperSource ??= hostControlSource();
  const result = await connection.exec(`${shellQuote(node)} --input-type=module - watch ${shellQuote(JSON.stringify({ dir }))}`, { input: helperSource });
  return result.code === 0 && result.stdout.includes('ended');
}

/**
 * Runs the provider's `setup` on a host before it is checked (installing Node.js, say), as the
 * login user, ended after `timeoutMs`. Throws an `SshError` naming the host with the end of what it printed.
 */
export async function runHostSetup(connection: SshConnection, command: string, timeoutMs: number): Promise<void> {
  const target = connection.target;
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  // coreutils' timeout ends the command on the host too (closing the channel does not).
  const script = `if command -v timeout >/dev/null 2>&1; then exec timeout -k 10 ${seconds} sh -c ${shellQuote(command)}; else exec sh -c ${shellQuote(command)}; fi`;
  const result = await connection.exec(`sh -c ${shellQuote(script)} </dev/null`, { timeoutMs: timeoutMs + 30_000 });
  if (result.code === 0) return;
  const where = `${target.name} (${describeTarget(target)})`;
  const printed = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-3).join(' | ');
  const how = result.code === 124 ? `did not finish within ${seconds} s (\`timeouts.setup\`)` : `failed (exit ${result.code ?? result.signal})`;
  throw new SshError(target.name, 'setup', `${where}: \`provider.setup\` ${how}${printed ? `: ${printed}` : ''}: run it there by hand to see why, then fix it or the host`);
}

export interface HostFacts {
  /** The login user's home folder. */
  readonly home: string;
  readonly uid: number;
  /** The address this host was reached at (`$SSH_CONNECTION`): what its peers use, unless the inventory says. */
  readonly reachedAt?: string;
  /** Privileged tools found, by name; null: missing. */
  readonly tools: Readonly<Record<string, string | null>>;
  /** Whether `sudo -n` may run each tool found (always true for root). */
  readonly sudo: Readonly<Record<string, boolean>>;
  /** Whether the path the folder store lives at exists there (a shared folder). */
  readonly storeVisible?: boolean;
}

export interface ProbeOptions {
  readonly node: string;
  /** Tools the run needs with root's rights (tc, nft). */
  readonly tools: readonly string[];
  /** A path of the folder store the host must see (NFS). */
  readonly storePath?: string;
}

/**
 * What lockstep needs to know of a host before anything is started there: Node.js ≥ 20, who logs
 * in, the host's address, the privileged tools and sudo, and the shared store folder. Throws an
 * `SshError` naming the host and the fix.
 */
export async function probeHost(connection: SshConnection, options: ProbeOptions): Promise<HostFacts> {
  const target = connection.target;
  const where = `${target.name} (${describeTarget(target)})`;
  const script = [
    `node=${shellQuote(options.node)}`,
    `printf 'home\\t%s\\n' "$HOME"`,
    `printf 'uid\\t%s\\n' "$(id -u)"`,
    `printf 'ssh\\t%s\\n' "$SSH_CONNECTION"`,
    `v=$("$node" -e 'process.stdout.write(process.versions.node)' 2>&1); printf 'node\\t%s\\t%s\\n' "$?" "$(printf '%s' "$v" | head -n 1)"`,
    ...options.tools.map((tool) =>
      [
        `p=$(command -v ${tool} 2>/dev/null || for d in /usr/sbin /sbin; do [ -x "$d/${tool}" ] && echo "$d/${tool}" && break; done)`,
        `printf 'tool\\t${tool}\\t%s\\n' "$p"`,
        `if [ -n "$p" ] && [ "$(id -u)" != 0 ]; then sudo -n -l "$p" >/dev/null 2>&1; printf 'sudo\\t${tool}\\t%s\\n' "$?"; fi`,
      ].join('; '),
    ),
    ...(options.storePath ? [`[ -d ${shellQuote(options.storePath)} ]; printf 'store\\t%s\\n' "$?"`] : []),
  ].join('\n');
  const result = await connection.exec(`sh -c ${shellQuote(script)}`, { timeoutMs: 30_000 });
  const facts = new Map<string, string[]>();
  for (const line of result.stdout.split('\n')) {
    const [key, ...rest] = line.split('\t');
    if (key === 'tool' || key === 'sudo') facts.set(`${key}.${rest[0]}`, rest.slice(1));
    else if (key) facts.set(key, rest);
  }
  const [nodeExit, nodeVersion] = [...(facts.get('node') ?? [])];
  const install = `install Node.js ${MIN_NODE_MAJOR} or later there (https://nodejs.org/en/download, or the distribution's package; \`provider.setup\` may do it on every host), or point \`lockstep_node\` in the inventory (or \`provider.node\`) at one`;
  if (nodeExit !== '0') {
    const said = nodeExit === '127' ? `\`${options.node}\` is not there${options.node.includes('/') ? '' : ' (not on the PATH of a non-interactive login)'}` : `\`${options.node}\` failed (exit ${nodeExit}: ${nodeVersion})`;
    throw new SshError(target.name, 'node', `${where}: no Node.js ≥ ${MIN_NODE_MAJOR}: ${said}: ${install}`);
  }
  const major = Number(/^v?(\d+)\./.exec(nodeVersion ?? '')?.[1]);
  if (!(major >= MIN_NODE_MAJOR)) {
    throw new SshError(target.name, 'node', `${where}: Node.js ${nodeVersion} at \`${options.node}\` is too old: the agent needs ${MIN_NODE_MAJOR} or later: ${install}`);
  }
  const uid = Number(facts.get('uid')?.[0]);
  const tools: Record<string, string | null> = {};
  const sudo: Record<string, boolean> = {};
  for (const tool of options.tools) {
    tools[tool] = facts.get(`tool.${tool}`)?.[0] || null;
    sudo[tool] = uid === 0 || facts.get(`sudo.${tool}`)?.[0] === '0';
  }
  const home = facts.get('home')?.[0] || '';
  if (!home.startsWith('/')) throw new SshError(target.name, 'start', `${where}: the login has no home folder (HOME=${home || 'unset'}): set \`lockstep_work_dir\` to an absolute path`);
  return {
    home,
    uid,
    reachedAt: facts.get('ssh')?.[0]?.split(' ')[2],
    tools,
    sudo,
    ...(options.storePath ? { storeVisible: facts.get('store')?.[0] === '0' } : {}),
  };
}

/** The instance's folder on the host: `<workDir>/runs/<runId>/<instanceId>`, `workDir` relative to the home folder. */
export function instanceDir(home: string, workDir: string, runId: string, instanceId: string): string {
  return posix.join(absoluteWorkDir(home, workDir), 'runs', runId, instanceId);
}

export function absoluteWorkDir(home: string, workDir: string): string {
  return workDir.startsWith('/') ? workDir : posix.join(home, workDir.replace(/^~\/?/, ''));
}

/**
 * Where the host gets the agent bundle: the shared store folder; or from an S3 store by a presigned
 * URL, with the bytes to send over SFTP when the host cannot fetch it.
 */
export type BundleSource = { readonly sharedPath: string } | { readonly url?: string; readonly bytes: Buffer };

/** How the agent bundle got to a host. */
export type BundleRoute = 'shared folder' | 'store' | 'sftp';

/** Makes the instance's folder and puts the agent bundle there. */
export async function placeAgent(connection: SshConnection, node: string, dir: string, bundle: BundleSource): Promise<BundleRoute> {
  const made = await connection.exec(`mkdir -p ${shellQuote(dir)} && chmod 700 ${shellQuote(dir)}`, { timeoutMs: 30_000 });
  if (made.code !== 0) throw new Error(`cannot make ${dir}: ${made.stderr.trim()}`);
  const target = posix.join(dir, AGENT_FILE);
  if ('sharedPath' in bundle) {
    const copied = await connection.exec(`cp ${shellQuote(bundle.sharedPath)} ${shellQuote(target)}`, { timeoutMs: 60_000 });
    if (copied.code !== 0) throw new Error(`cannot copy the agent from the shared store: ${copied.stderr.trim()}`);
    return 'shared folder';
  }
  if (bundle.url) {
    const fetched = await runHelper<{ bytes: number }>(connection, node, 'fetch', { url: bundle.url, path: target }, { timeoutMs: 150_000 }).catch(() => undefined);
    if (fetched?.bytes === bundle.bytes.length) return 'store';
  }
  await connection.put(bundle.bytes, target);
  return 'sftp';
}

/** Starts the agent placed in `request.dir`, detached. Returns its pid. */
export async function startAgent(connection: SshConnection, node: string, request: StartRequest): Promise<number> {
  const { pid } = await runHelper<{ pid: number }>(connection, node, 'start', request);
  return pid;
}

export function stopInstance(connection: SshConnection, node: string, dir: string, options: { graceMs: number; remove: boolean }): Promise<StopReport> {
  return runHelper<StopReport>(connection, node, 'stop', { dir, graceMs: options.graceMs, remove: options.remove }, { timeoutMs: options.graceMs + 60_000 });
}

export function scanHost(connection: SshConnection, node: string, workDir: string): Promise<ScannedInstance[]> {
  return runHelper<ScannedInstance[]>(connection, node, 'scan', { workDir });
}

export function instanceStatus(connection: SshConnection, node: string, dir: string): Promise<{ alive: boolean; instance?: HostInstance }> {
  return runHelper(connection, node, 'status', { dir });
}
