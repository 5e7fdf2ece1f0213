import type { NetemPlan, NetworkSpec } from '../spec/network-plan.ts';
import type { CommandRun, FaultRecord, FaultTimeline } from './faults.ts';
import type { GroupSpec, ParamValue } from '../spec/schema.ts';

/**
 * What the controller tells every agent about a run (`runs/<runId>/manifest.json`). The agent needs
 * nothing else: no controller connection, no provider knowledge. Never holds a credential.
 */
export interface RunManifest {
  readonly formatVersion: 1;
  readonly runId: string;
  readonly name: string;
  readonly createdAt: string;
  readonly instances: number;
  /** Quorum: the barrier may close with this many members once `timeouts.barrier` has passed. */
  readonly minInstances: number;
  readonly repeats: number;
  /** Store key and digest of the packed artifact, when the spec ships one. */
  readonly artifact?: { readonly key: string; readonly sha256: string; readonly bytes: number };
  readonly setup?: string;
  readonly run: string;
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly groups: readonly GroupSpec[];
  readonly collect: readonly string[];
  readonly startDelayMs: number;
  readonly timeouts: {
    readonly barrierMs: number;
    readonly setupMs: number;
    readonly runMs: number;
    readonly instanceMs: number;
  };
  /** Wall-clock time (ISO) after which every instance ends itself. */
  readonly expiresAt: string;
  /** End the instance after the last repeat (false: `keep: true`). */
  readonly terminateWhenDone: boolean;
  readonly provider: string;
  /** Network emulation the agents apply with `tc` (the spec's `network`), when the spec has one. */
  readonly network?: NetworkSpec;
  /** The spec's `faults`, expanded before the start into one concrete timeline (see core/faults.ts). */
  readonly faults?: FaultTimeline;
  /** The spec text after overrides, for the record. */
  readonly specSource: string;
  /** Set when `lockstep import` brought the run in from a folder instead of running it. */
  readonly imported?: ImportRecord;
}

/** Where an imported run came from. */
export interface ImportRecord {
  /** The folder, as an absolute path on the machine that imported it. */
  readonly from: string;
  /** `seed`: the seed framework's `GroupSize…/Repeat<r>/logs/stdout/<i>.log`; `lockstep`: a run downloaded by `lockstep results`. */
  readonly layout: 'seed' | 'lockstep';
  readonly at: string;
  /** sha256 of the folder's files (paths, sizes, contents): the same folder imports once. */
  readonly digest: string;
}

/** `repeats/<r>/ready/<instanceId>.json`: an instance is ready for repeat r. */
export interface ReadyRecord {
  readonly instanceId: string;
  readonly address: string;
  readonly region?: string;
  readonly zone?: string;
  /** Wall-clock epoch milliseconds, sub-millisecond precision. */
  readonly readyAt: number;
  /** Clock offset the agent measured against its reference, when it knows it (ms; + = ahead). */
  readonly clockOffsetMs?: number;
}

/** `repeats/<r>/start.json`: members in rank order and the common start time T. */
export interface StartRecord {
  readonly members: readonly ReadyRecord[];
  /** Epoch milliseconds. */
  readonly startAt: number;
  /** Who wrote it first (any member computes the same record). */
  readonly writtenBy: string;
  /** True when the barrier closed on a quorum rather than all N. */
  readonly quorum: boolean;
}

/**
 * `repeats/<r>/barrier.json`: what the watcher last saw. Waiting nodes read only this object; once
 * the set is complete it carries the start record too.
 */
export interface BarrierProgress {
  readonly expected: number;
  /** Ready records in the watcher's last LIST. */
  readonly count: number;
  readonly watcher: string;
  /** When this record was written (epoch ms, the watcher's clock). */
  readonly updatedAt: number;
  /** When the LIST behind it began. */
  readonly listedAt: number;
  /** From the start of a LIST to its progress record being stored, lately. */
  readonly writeLagMs: number;
  /** The watcher's LIST interval now. */
  readonly cycleMs: number;
  readonly nextListAt: number;
  /** Until then the set is very unlikely to be complete: waiting nodes may sleep. */
  readonly quietUntil: number;
  /**
   * The watcher's best guess of when the set completes, at the recent arrival rate (not a bound:
   * waiting nodes approach it, see `nextPollAt`). Absent from watchers of older versions.
   */
  readonly likelyAt?: number;
  readonly start?: StartRecord;
}

/** `killed`: a `kill` fault of the spec ended the command, as planned. */
export type Outcome = 'success' | 'failed' | 'timeout' | 'aborted' | 'error' | 'killed';

/** Whether a node did what the run asked of it: its command succeeded, or a planned `kill` fault ended it. */
export function succeeded(outcome: string): boolean {
  return outcome === 'success' || outcome === 'killed';
}

/** `repeats/<r>/nodes/<rank>/result.json`. */
export interface NodeResult {
  readonly runId: string;
  readonly repeat: number;
  readonly rank: number;
  readonly n: number;
  readonly instanceId: string;
  readonly address: string;
  readonly groups: readonly string[];
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly command: string;
  readonly outcome: Outcome;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  /** Epoch ms, sub-millisecond precision. */
  readonly readyAt: number;
  readonly barrierAt: number;
  readonly scheduledStartAt: number;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly durationMs: number;
  /** Time from its ready record until it knew the members and T. */
  readonly barrierWaitMs: number;
  readonly cpuUserMs: number | null;
  readonly cpuSystemMs: number | null;
  readonly peakMemoryBytes: number | null;
  readonly clockOffsetMs?: number;
  /** Interface counters read before and after the command (Linux); null where unreadable. */
  readonly network: { readonly interface: string; readonly rxBytes: number; readonly txBytes: number } | null;
  /** Network emulation of this node in this repeat, when the run has a `network`. */
  readonly netem?: NetemRecord;
  /** What this node did about its fault windows in this repeat, when the timeline gave it any. */
  readonly faults?: readonly FaultRecord[];
  /** Each run of the command (a `restart` makes more than one); the figures above are over all of them, the outcome the last one's. */
  readonly runs?: readonly CommandRun[];
  readonly error?: string;
  readonly files: readonly string[];
}

/** Whether an agent in this state has ended (it writes no more records). */
export function agentEnded(state: InstanceRecord['state']): boolean {
  return state === 'done' || state === 'failed' || state === 'aborted' || state === 'expired';
}

/** How often a live agent rewrites its instance record (`heartbeatAt`), at the least. */
export const HEARTBEAT_INTERVAL_MS = 30_000;
/** An instance record this old, of an agent that has not ended, means the agent is stuck or gone. */
export const HEARTBEAT_STALE_MS = 3 * HEARTBEAT_INTERVAL_MS;

/** `instances/<instanceId>.json`: boot record and heartbeat of one instance. */
export interface InstanceRecord {
  readonly instanceId: string;
  readonly address: string;
  readonly region?: string;
  readonly bootedAt: string;
  readonly heartbeatAt: string;
  readonly state: 'booting' | 'setup' | 'waiting' | 'running' | 'done' | 'failed' | 'aborted' | 'expired';
  readonly repeat?: number;
  readonly agentVersion: string;
  readonly error?: string;
}

/** `runs/<runId>/abort.json`: agents that see it end their command, upload its logs and end. */
export interface AbortRecord {
  readonly runId: string;
  readonly at: string;
  /** Why: `lockstep down`, an interrupted `lockstep run`, … */
  readonly reason: string;
}

/** `repeats/<r>/failures/<instanceId>.json`: an instance could not take part in a repeat. */
export interface FailureRecord {
  readonly instanceId: string;
  readonly repeat: number;
  readonly stage: 'setup' | 'barrier' | 'run' | 'upload' | 'aborted';
  readonly error: string;
  readonly missing?: readonly string[];
  /** A failed `setup`: its exit code (null when a signal or the timeout ended it) and the last lines of its output. */
  readonly exitCode?: number | null;
  readonly output?: readonly string[];
  readonly at: string;
}

/** What a node did about network emulation in one repeat (`result.json` → `netem`). */
export interface NetemRecord {
  /** The interface `tc` worked on (the one holding the node's address); null if none was found. */
  readonly interface: string | null;
  /** What this node's egress gets: a default, and per-destination rules from the latency matrix. */
  readonly plan: NetemPlan;
  /** The `tc` commands run to apply it, in order (none when the plan asks for nothing). */
  readonly commands: readonly string[];
  /** True when every command succeeded before T. False: the repeat is an `error` of this node. */
  readonly applied: boolean;
  /** Epoch ms. */
  readonly appliedAt?: number;
  /** Why applying failed. */
  readonly error?: string;
  /** True once the emulation was removed after the command (also after a failure or an abort). */
  readonly removed: boolean;
  readonly removedAt?: number;
  readonly removeError?: string;
}
