import { readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { layout } from '../core/layout.ts';
import { killProcesses, processesWhere, type FoundProcess } from '../agent/leftovers.ts';
import { createLocalProvider } from '../provider/local/local.ts';
import { isAgentAlive, lockstepHome, readRunStates, removeRunState } from '../provider/local/state.ts';
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
  };
  readonly aws?: AwsGcReport;
  readonly ssh?: SshGcReport;
}

/**
 * `lockstep gc`: ends every local instance whose run is over (its store says so, or it was aborted)
 * or past its expiry, ends processes that dead agents left behind, forgets runs with no live agent,
 * and with `aws`, terminates every lockstep EC2 instance past its expiry in every region.
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

  for (const state of await readRunStates(home)) {
    const alive = [];
    for (const instance of state.instances) if (await isAgentAlive(instance.pid)) alive.push(instance);
    if (alive.length === 0) {
      forgotten.push(state.runId);
      if (!dryRun) await removeRunState(home, state.runId);
      continue;
    }
    const reason: LocalEndReason | undefined =
      Date.parse(state.expiresAt) <= now.getTime() ? 'expired' : await runOver(state.runId, alive.map((i) => i.pid));
    if (!reason) {
      for (const i of alive) keptAlive.add(i.id);
      continue;
    }
    for (const i of alive) ended.push({ runId: state.runId, instanceId: i.id, reason });
    if (!dryRun) await provider.terminate(alive.map((i) => i.id));
  }

  const minAge = options.leftoverMinAgeMs ?? 60_000;
  const workRoot = join(home, 'local', 'work') + sep;
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

  const report: GcReport = {
    dryRun,
    local: {
      ended,
      forgotten,
      leftovers: leftovers.map((p: FoundProcess) => ({ pid: p.pid, runId: p.env.get('LOCKSTEP_RUN_ID') ?? '', instanceId: p.env.get('LOCKSTEP_INSTANCE_ID') ?? '' })),
      networks,
    },
  };
  const aws = options.aws ? await (await import('./gc-aws.ts')).collectAwsGarbage({ ...options.aws, now, dryRun }) : undefined;
  const ssh = options.ssh ? await (await import('./gc-ssh.ts')).collectSshGarbage({ ...options.ssh, home, now, dryRun }) : undefined;
  return { ...report, ...(aws ? { aws } : {}), ...(ssh ? { ssh } : {}) };
}

/**
 * Whether the run of these live agents is over, as its store says (the agents' environment names
 * the store). `undefined` when it is not, or when the store cannot tell.
 */
async function runOver(runId: string, pids: readonly number[]): Promise<LocalEndReason | undefined> {
  const locator = pids.map((pid) => environmentOf(pid).get('LOCKSTEP_STORE')).find((l) => l !== undefined);
  return locator ? runOverInStore(locator, runId) : undefined;
}

/** Whether a run is over, as the store at `locator` says; `undefined` when it is not, or when the store cannot tell. */
export async function runOverInStore(locator: string, runId: string): Promise<LocalEndReason | undefined> {
  try {
    const store = await openStore(locator);
    try {
      if (await store.get(layout.abort(runId))) return 'run aborted';
      const status = await runStatus(store, runId);
      return status.state === 'done' || status.state === 'failed' ? 'run over' : undefined;
    } finally {
      await store.dispose();
    }
  } catch {
    return undefined;
  }
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
