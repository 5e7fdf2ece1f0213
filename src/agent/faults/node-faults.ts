import { eventsOf, faultNamePrefix, partitionTableName, type CommandRun, type FaultEvent, type FaultRecord } from '../../core/faults.ts';
import type { RunManifest } from '../../core/manifest.ts';
import type { NetemPlan } from '../../spec/network-plan.ts';
import type { ExecResult } from '../exec.ts';
import { groupMembers } from '../leftovers.ts';
import { primaryInterface, resetAtRelay, warmUpRelay, type InterfaceChoice } from '../netem.ts';
import { forgetUndo, privilegedRunner, recordUndo, refusalOf, warmPrivileged, type PrivilegedRunner } from '../privileged.ts';
import { cgroup2Mount, createCommandGroup, removeGroup, type CommandGroup } from '../../util/cgroup.ts';
import { impairNetwork } from './network.ts';
import { addTable, deleteTable, deleteTablesWithPrefix, partitionRuleset, type NftRunner } from '../../util/nft.ts';
import { FaultSession, type FaultMechanics, type HeldCommand, type RunningCommand } from './session.ts';

/**
 * The agent's side of the run's fault timeline: a node's part of it in one repeat (`nodeFaults`),
 * and what an agent that restarts removes of what its predecessor applied (`healLeftovers`).
 */

export interface NodeFaultsOptions {
  readonly manifest: RunManifest;
  readonly repeat: number;
  /** The start time T (epoch ms). */
  readonly startAt: number;
  readonly rank: number;
  /** The members' addresses in rank order. */
  readonly addresses: readonly string[];
  readonly instanceId: string;
  /** The node's own emulation in this repeat (the spec's `network`), if any. */
  readonly netemPlan?: NetemPlan;
  readonly choice: InterfaceChoice;
  /** The WAN relay (netns mode). */
  readonly relay?: string;
  readonly privileged?: PrivilegedRunner;
  /**
   * The instance's working folder: what undoes an applied window (deleting a partition's table,
   * removing an emulation) waits in its journal until it has run, for whoever finds the agent dead.
   */
  readonly journal?: string;
  readonly log?: (message: string) => void;
}

export interface NodeFaults {
  readonly events: readonly FaultEvent[];
  /** Puts a run of the command where the faults can reach it; call before releasing it. */
  adopt(pid: number | undefined): Promise<void>;
  /** Arms every window, from the first run (released at T) on. */
  start(first: RunningCommand, options: { readonly prepareRun: () => HeldCommand; readonly signal?: AbortSignal }): FaultSession;
  /** Removes what stays after the session (the cgroup). Never throws. */
  dispose(): Promise<void>;
}

/**
 * This node's faults in this repeat, or undefined when it has none. On the loopback, a node with a
 * partition gets a cgroup for its command here, before T.
 */
export async function nodeFaults(options: NodeFaultsOptions): Promise<NodeFaults | undefined> {
  const events = eventsOf(options.manifest.faults, options.repeat, options.rank);
  if (events.length === 0) return undefined;
  const { manifest, instanceId } = options;
  const privileged = options.privileged ?? privilegedRunner();
  const journal = options.journal;
  // A node whose faults cannot be applied does not run its command without them: the tools first.
  const tools = new Set([...(events.some((e) => e.action === 'partition') ? (['nft'] as const) : []), ...(events.some((e) => e.action === 'network') && !options.relay ? (['tc'] as const) : [])]);
  for (const tool of tools) {
    const probe = await privileged(tool, tool === 'nft' ? ['--version'] : ['-V']);
    if (probe.code !== 0) throw new Error(`This node's faults need \`${tool}\`: ${refusalOf(probe, tool) ?? (probe.stderr.trim().split('\n')[0] || `exit ${probe.code}`)}`);
  }
  const loopback = options.choice.address.startsWith('127.');
  let group: CommandGroup | undefined;
  if (loopback && events.some((e) => e.action === 'partition')) group = await createCommandGroup(faultNamePrefix(manifest.runId, instanceId));
  if (options.relay && events.some((e) => e.action === 'network')) await warmUpRelay(options.relay);
  // With the agent's own runner, one `nft -f -` waits ready: a window opens and heals on time.
  const warm = !options.privileged && events.some((e) => e.action === 'partition') ? warmPrivileged('nft', ['-f', '-']) : undefined;
  const nft: NftRunner = (args, input) => (warm && args.join(' ') === '-f -' ? warm.run(input ?? '') : privileged('nft', args, input));

  // What deletes each partition's table goes in the journal now, before T, not when it is due.
  if (journal) {
    for (const event of events.filter((e) => e.action === 'partition')) {
      await recordUndo(journal, `fault ${event.id}`, [{ tool: 'nft', args: ['delete', 'table', 'inet', partitionTableName(manifest.runId, instanceId, event.id)] }]).catch(() => {});
    }
  }

  const applied = new Set<string>();
  const mechanics: FaultMechanics = {
    async partition(event, peers) {
      const table = partitionTableName(manifest.runId, instanceId, event.id);
      await addTable(nft, partitionRuleset(table, peers, group));
      applied.add(event.id);
      return {
        detail: `nft table inet ${table}: drops ${group ? 'what the command sends to' : 'traffic to and from'} ${peers.join(', ')}`,
        heal: async () => {
          await deleteTable(nft, table);
          if (journal) void forgetUndo(journal, `fault ${event.id}`).catch(() => {});
        },
      };
    },
    network: (event) => impairNetwork({ base: options.netemPlan, impairment: event.impairment!, choice: options.choice, relay: options.relay, privileged, journal }),
    signal: signalGroup,
    ...(group ? { adopt: (pid: number) => adoptGroup(group, pid) } : {}),
  };
  return {
    events,
    adopt: async (pid) => {
      if (pid !== undefined) await mechanics.adopt?.(pid);
    },
    start: (first, { prepareRun, signal }) =>
      new FaultSession({ events, startAt: options.startAt, rank: options.rank, addresses: options.addresses, mechanics, prepareRun, signal, log: options.log }, first),
    dispose: async () => {
      warm?.cancel();
      // Windows that never opened (the command ended first) have nothing to undo; one whose heal
      // failed keeps its entry, for whoever comes next.
      const unopened = events.filter((e) => e.action === 'partition' && !applied.has(e.id));
      if (journal) for (const event of unopened) await forgetUndo(journal, `fault ${event.id}`).catch(() => {});
      await group?.remove().catch((error: unknown) => options.log?.(`could not remove the cgroup ${group.path}: ${String(error)}`));
    },
  };
}

/**
 * Moves a held command into the node's cgroup: the shell at its gate has started its inner shell
 * already, so every process of its group moves (what they start later follows them).
 */
async function adoptGroup(group: CommandGroup, pid: number): Promise<void> {
  await group.add(pid);
  for (const member of groupMembers(pid)) await group.add(member).catch(() => {});
}

/** Sends `signal` to a process group; a group that is gone is no error. */
export function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export interface LeftoverOptions {
  readonly manifest: RunManifest;
  readonly instanceId: string;
  readonly choice: InterfaceChoice;
  readonly relay?: string;
  readonly privileged?: PrivilegedRunner;
}

/**
 * What an earlier agent of this instance may have left applied when it died: partition tables, the
 * command's cgroup, and a `network` fault's emulation. (Its processes, paused ones too, are
 * SIGKILLed by the restart itself.) Returns what was removed, in words.
 */
export async function healLeftovers(options: LeftoverOptions): Promise<string[]> {
  const { manifest } = options;
  const events = manifest.faults?.events ?? [];
  if (events.length === 0) return [];
  const privileged = options.privileged ?? privilegedRunner();
  const removed: string[] = [];
  const prefix = faultNamePrefix(manifest.runId, options.instanceId);
  if (events.some((e) => e.action === 'partition')) {
    for (const table of await deleteTablesWithPrefix((args, input) => privileged('nft', args, input), prefix).catch(() => [])) removed.push(`nft table ${table}`);
    const mount = cgroup2Mount();
    if (mount && options.choice.address.startsWith('127.')) {
      const path = `${mount}/${prefix}`;
      await removeGroup(path, mount)
        .then(() => removed.push(`cgroup ${path}`))
        .catch(() => {});
    }
  }
  if (events.some((e) => e.action === 'network')) {
    if (options.relay) {
      if ((await resetAtRelay(options.relay, options.choice.address)) === undefined) removed.push(`the relay's emulation of ${options.choice.address}`);
    } else {
      const device = await primaryInterface(options.choice).catch(() => undefined);
      if (device && (await privileged('tc', ['qdisc', 'del', 'dev', device, 'root'])).code === 0) removed.push(`the qdisc of ${device}`);
    }
  }
  return removed;
}

/** The command's runs as the repeat records them. */
export interface CommandOutcome {
  /** All runs as one: from the first start to the last end, CPU summed, the highest peak memory; the last run's exit. */
  readonly result: ExecResult;
  /** Each run, when the node had faults. */
  readonly runs?: readonly CommandRun[];
  readonly faults?: readonly FaultRecord[];
  /** The last run was ended by a `kill` fault, as planned. */
  readonly killed: boolean;
}

/**
 * Follows the command from its first run (released at T) to its end: with this node's faults
 * applied on time and healed, restarts included; without faults, just its one run.
 */
export async function followCommand(
  faults: NodeFaults | undefined,
  first: RunningCommand,
  options: { readonly prepareRun: () => HeldCommand; readonly signal?: AbortSignal },
): Promise<CommandOutcome> {
  if (!faults) return { result: await first.ended, killed: false };
  const outcome = await faults.start(first, options).finished();
  const last = outcome.runs.at(-1);
  const killedBy = last?.endedBy === undefined ? undefined : faults.events.find((e) => e.id === last.endedBy);
  return { result: combinedResult(outcome.results), runs: outcome.runs, faults: outcome.faults, killed: killedBy?.action === 'kill' };
}

/** Several runs of a command as one result (see `CommandOutcome.result`). */
export function combinedResult(results: readonly ExecResult[]): ExecResult {
  const first = results[0]!;
  const last = results.at(-1)!;
  const sum = (pick: (r: ExecResult) => number | null) => (results.every((r) => pick(r) !== null) ? results.reduce((total, r) => total + pick(r)!, 0) : null);
  const peaks = results.map((r) => r.peakMemoryBytes).filter((p): p is number => p !== null);
  return {
    ...last,
    startedAt: first.startedAt,
    durationMs: last.endedAt - first.startedAt,
    cpuUserMs: sum((r) => r.cpuUserMs),
    cpuSystemMs: sum((r) => r.cpuSystemMs),
    peakMemoryBytes: peaks.length > 0 ? Math.max(...peaks) : null,
  };
}
