import { readFileSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { layout } from '../core/layout.ts';
import { killProcesses, processesWhere, type FoundProcess } from '../agent/leftovers.ts';
import { createLocalProvider } from '../provider/local/local.ts';
import { isAgentAlive, localWorkDir, lockstepHome, readRunStates, removeRunState } from '../provider/local/state.ts';
import { openStore } from '../store/open.ts';
import type { AwsGcOptions, AwsGcReport } from './gc-aws.ts';
import type { SshGcOptions, SshGcReport } from './gc-ssh.ts';
import { runStatus } from './status.ts';

export interface GcOptions {
  /** Local provider state folder (default `$LOCKSTEP_HOME` or `~/.lockstep`). */
  readonly home?: string;
  /** Report what would be ended; end nothing. */
  readonly dryRun?: boolean;
  readonly now?: Date;
  /**
   * Also every lockstep EC2 instance past its expiry, in these regions (default: every region the
   * account has enabled). Loads the AWS SDK. Default: local instances only.
   */
  readonly aws?: false | Omit<AwsGcOptions, 'now' | 'dryRun'>;
  /** Also the hosts of an SSH inventory: what ended runs left there (processes, folders, network rules). Loads ssh2. */
  readonly ssh?: false | Omit<SshGcOptions, 'now' | 'dryRun' | 'home'>;
  /**
   * Processes left behind by a dead agent are ended only once they are this old, so that a run
   * being launched at this very moment is not mistaken for leftovers. Default 60 s.
   */
  readonly leftoverMinAgeMs?: number;
}

export type LocalEndReason = 'expired' | 'run over' | 'run aborted';

/** Why gc left a run's live agents alone. */
export interface KeptRun {
  readonly runId: string;
  readonly instances: number;
  /** Their expiry: they end then, or at `lockstep down`. */
  readonly expiresAt: string;
}

export interface GcReport {
  readonly dryRun: boolean;
  readonly local: {
    /** Local instances (agent processes) ended, with why. */
    readonly ended: ReadonlyArray<{ readonly runId: string; readonly instanceId: string; readonly reason: LocalEndReason }>;
    /** Runs whose agents had all ended: their state was forgotten. */
    readonly forgotten: readonly string[];
    /** Processes a dead agent left running (a command in its own process group), ended. */
    readonly leftovers: ReadonlyArray<{ readonly pid: number; readonly runId: string; readonly instanceId: string }>;
    /** Network namespaces (netns mode) of runs that are over or past their expiry, by tag. */
    readonly networks: readonly string[];
    /** Runs with `keep: true` whose instances stay up: only their expiry or `lockstep down` ends them. */
    readonly kept: readonly KeptRun[];
    /** Working folders of runs with no live agent (older than a minute), removed, with their size. */
    readonly folders: ReadonlyArray<{ readonly runId: string; readonly path: string; readonly bytes: number }>;
    /** Bytes those folders held. */
    readonly freedBytes: number;
  };
  readonly aws?: AwsGcReport;
  readonly ssh?: SshGcReport;
}

/**
 * `lockstep gc`: ends every local instance whose run is over (its store says so, or it was aborted)
 * or past its expiry, except those a run keeps (`keep: true`: only expiry or `lockstep down` ends
 * them); ends processes that dead agents left behind; forgets runs with no live agent and removes
 * their working folders; and with `aws`, terminates every lockstep EC2 instance past its expiry in
 * every region.
 */
export async function collectGarbage(options: GcOptions = {}): Promise<GcReport> {
  const home = options.home ?? lockstepHome();
  const now = options.now ?? new Date();
  const dryRun = options.dryRun ?? false;
  const provider = createLocalProvider({ home });
  const ended: Array<{ runId: string; instanceId: string; reason: LocalEndReason }> = [];
  const forgotten: string[] = [];
  /** Instance ids whose agent is alive and stays alive. */
  const keptAlive = new Set<string>();
  /** Runs with an agent that stays alive: their working folders stay. */
  const liveRuns = new Set<string>();
  const kept: KeptRun[] = [];

  for (const state of await readRunStates(home)) {
    const alive = [];
    for (const instance of state.instances) if (await isAgentAlive(instance.pid)) alive.push(instance);
    if (alive.length === 0) {
      forgotten.push(state.runId);
      if (!dryRun) await removeRunState(home, state.runId);
      continue;
    }
    const verdict = Date.parse(state.expiresAt) <= now.getTime() ? 'expired' : await runOver(state.runId, alive.map((i) => i.pid));
    if (verdict === undefined || verdict === 'kept') {
      for (const i of alive) keptAlive.add(i.id);
      liveRuns.add(state.runId);
      if (verdict === 'kept') kept.push({ runId: state.runId, instances: alive.length, expiresAt: state.expiresAt });
      continue;
    }
    const reason: LocalEndReason = verdict;
    for (const i of alive) ended.push({ runId: state.runId, instanceId: i.id, reason });
    if (!dryRun) await provider.terminate(alive.map((i) => i.id));
  }

  const minAge = options.leftoverMinAgeMs ?? 60_000;
  const workRoot = localWorkDir(home) + sep;
  const leftovers = processesWhere((env) => (env.get('LOCKSTEP_WORKDIR') ?? '').startsWith(workRoot)).filter(
    (p) => !keptAlive.has(p.env.get('LOCKSTEP_INSTANCE_ID') ?? '') && processAgeMs(p.pid) >= minAge,
  );
  if (!dryRun) killProcesses(leftovers);

  // Namespaces, bridge and WAN relay of netns runs whose agents are all gone, or past expiry. A
  // network of a run this home does not know may belong to another LOCKSTEP_HOME: left alone.
  const networks: string[] = [];
  if (process.platform === 'linux') {
    const { listLockstepNetworks, removeNetwork } = await import('../provider/local/netns.ts');
    for (const network of await listLockstepNetworks().catch(() => [])) {
      const expired = network.expiresAt !== undefined && Date.parse(network.expiresAt) <= now.getTime();
      const orphaned = network.runId !== undefined && forgotten.includes(network.runId);
      if (!expired && !orphaned) continue;
      networks.push(network.tag);
      if (!dryRun) await removeNetwork(network.tag);
    }
  }

  // Working folders of runs with no live agent left; one a minute old at least, so that a run
  // being launched at this very moment keeps its own.
  const folders: Array<{ runId: string; path: string; bytes: number }> = [];
  for (const runId of await readdir(localWorkDir(home)).catch(() => [] as string[])) {
    const path = join(localWorkDir(home), runId);
    if (liveRuns.has(runId) || now.getTime() - (await stat(path)).mtimeMs < minAge) continue;
    folders.push({ runId, path, bytes: await folderBytes(path) });
    if (!dryRun) await rm(path, { recursive: true, force: true });
  }

  const report: GcReport = {
    dryRun,
    local: {
      ended,
      forgotten,
      leftovers: leftovers.map((p: FoundProcess) => ({ pid: p.pid, runId: p.env.get('LOCKSTEP_RUN_ID') ?? '', instanceId: p.env.get('LOCKSTEP_INSTANCE_ID') ?? '' })),
      networks,
      kept,
      folders,
      freedBytes: folders.reduce((sum, f) => sum + f.bytes, 0),
    },
  };
  const aws = options.aws ? await (await import('./gc-aws.ts')).collectAwsGarbage({ ...options.aws, now, dryRun }) : undefined;
  const ssh = options.ssh ? await (await import('./gc-ssh.ts')).collectSshGarbage({ ...options.ssh, home, now, dryRun }) : undefined;
  return { ...report, ...(aws ? { aws } : {}), ...(ssh ? { ssh } : {}) };
}

/**
 * Whether the run of these live agents is over, as its store says (the agents' environment names
 * the store). `kept` when it is over but keeps its instances (`keep: true`); `undefined` when it is
 * not over, or when the store cannot tell.
 */
async function runOver(runId: string, pids: readonly number[]): Promise<LocalEndReason | 'kept' | undefined> {
  const locator = pids.map((pid) => environmentOf(pid).get('LOCKSTEP_STORE')).find((l) => l !== undefined);
  return locator ? verdictInStore(locator, runId) : undefined;
}

/**
 * Whether a run is over, as the store at `locator` says; `undefined` when it is not, when it keeps
 * its instances (`keep: true`), or when the store cannot tell.
 */
export async function runOverInStore(locator: string, runId: string): Promise<LocalEndReason | undefined> {
  const verdict = await verdictInStore(locator, runId);
  return verdict === 'kept' ? undefined : verdict;
}

async function verdictInStore(locator: string, runId: string): Promise<LocalEndReason | 'kept' | undefined> {
  try {
    const store = await openStore(locator);
    try {
      if (await store.get(layout.abort(runId))) return 'run aborted';
      const status = await runStatus(store, runId);
      if (status.state !== 'done' && status.state !== 'failed') return undefined;
      return status.manifest.terminateWhenDone ? 'run over' : 'kept';
    } finally {
      await store.dispose();
    }
  } catch {
    return undefined;
  }
}

/** Bytes of the files below a folder (what removing it frees, near enough). */
async function folderBytes(path: string): Promise<number> {
  let bytes = 0;
  for (const entry of await readdir(path, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (entry.isFile()) bytes += (await stat(join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return bytes;
}

function environmentOf(pid: number): Map<string, string> {
  const env = new Map<string, string>();
  try {
    for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  } catch {
    // Gone, or not Linux.
  }
  return env;
}

/** How long ago a process started (Linux /proc); Infinity where that cannot be read. */
function processAgeMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const uptimeSeconds = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    // USER_HZ is 100 on every Linux lockstep runs on.
    return (uptimeSeconds - startTicks / 100) * 1000;
  } catch {
    return Infinity;
  }
}
