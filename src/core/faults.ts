import { createHash } from 'node:crypto';
import type { Impairment } from '../spec/network-plan.ts';

/**
 * The fault timeline of a run: what the controller expanded the spec's `faults` into before the
 * start (random choices made, from seeds), recorded in the run manifest. Every agent applies its own
 * part at T + offset on its own clock, and results read it back. Plain data: the agent reads it
 * with no schema library. See docs/faults.md.
 */

export const FAULT_ACTIONS = ['kill', 'restart', 'pause', 'partition', 'network'] as const;
export type FaultAction = (typeof FAULT_ACTIONS)[number];

export const PARTITION_SHAPES = ['isolate', 'majority-minority', 'halves', 'bridge', 'ring'] as const;
export type PartitionShape = (typeof PARTITION_SHAPES)[number];

/**
 * Who cannot reach whom during a partition.
 * - `sides`: members of different sides cannot reach each other; a member in no side (the node in
 *   the middle of a bridge) reaches every side.
 * - `ring`: the members in a ring (`order`); each reaches those at most `reach` places away on the
 *   ring, so every member sees a majority, and no two see the same one.
 */
export type PartitionLayout =
  | { readonly kind: 'sides'; readonly sides: readonly (readonly number[])[] }
  | { readonly kind: 'ring'; readonly order: readonly number[]; readonly reach: number };

/** One window of one fault: entry `entry` of the spec's `faults`, its `occurrence`-th time. */
export interface FaultEvent {
  /** `<entry>#<occurrence>`: the entry's index in `faults` (from 0, as in its key path) and the occurrence (from 1); unique in the timeline. */
  readonly id: string;
  /** Index of the entry in the spec's `faults` (from 0, as its key path). */
  readonly entry: number;
  /** 1..count. */
  readonly occurrence: number;
  readonly action: FaultAction;
  /** Offset from the start time T (ms). */
  readonly atMs: number;
  /** Length of the window (ms): healed at T + atMs + durationMs. `restart`: the downtime. Absent for `kill`. */
  readonly durationMs?: number;
  /** Repeats it applies to. */
  readonly repeats: readonly number[];
  /** Ranks that act: whose command is killed, restarted or paused, whose traffic is impaired or cut. */
  readonly targets: readonly number[];
  /** `partition`: who cannot reach whom (and, for the record, the shape it came from). */
  readonly partition?: PartitionLayout & { readonly shape?: PartitionShape };
  /** `network`: what the targets' traffic gets during the window, on top of the run's `network`. */
  readonly impairment?: Impairment;
}

/** `manifest.faults`: the whole schedule, the same for every agent. */
export interface FaultTimeline {
  /** The seed of each entry with random choices; `drawn` when the spec gave none and the controller drew it. */
  readonly seeds: readonly { readonly entry: number; readonly seed: number; readonly drawn: boolean }[];
  /** In the order of their start, then of their entry. */
  readonly events: readonly FaultEvent[];
}

/** What one node did about one fault window (`result.json` → `faults`). */
export interface FaultRecord {
  readonly id: string;
  readonly action: FaultAction;
  /** Epoch ms at which the window was due to open (T + atMs) and to close. */
  readonly dueAt: number;
  readonly healDueAt?: number;
  /** Epoch ms at which it was applied; absent when it was not (see `skipped`, `error`). */
  readonly appliedAt?: number;
  readonly healedAt?: number;
  /** What ended it: its window, the end of the command, an abort, or a later agent after a restart. */
  readonly healedBy?: 'window' | 'end' | 'abort' | 'agent-restart';
  /** What was done, in words (the rules, the signal and process group). */
  readonly detail?: string;
  /** Why it was not applied (the command had ended, say). */
  readonly skipped?: string;
  readonly error?: string;
  readonly healError?: string;
}

/** One run of a node's command: a restart makes a second. */
export interface CommandRun {
  readonly startedAt: number;
  readonly endedAt: number;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The fault that ended it (`kill` or `restart`), by event id. */
  readonly endedBy?: string;
}

/** The events in which `rank` acts in `repeat`, in timeline order. */
export function eventsOf(timeline: FaultTimeline | undefined, repeat: number, rank: number): FaultEvent[] {
  return (timeline?.events ?? []).filter((e) => e.repeats.includes(repeat) && e.targets.includes(rank));
}

/** The ranks `rank` may not exchange packets with during `layout`. */
export function blockedPeers(layout: PartitionLayout, rank: number): number[] {
  if (layout.kind === 'sides') {
    const own = layout.sides.findIndex((side) => side.includes(rank));
    if (own < 0) return [];
    return layout.sides.flatMap((side, i) => (i === own ? [] : side)).sort((a, b) => a - b);
  }
  const n = layout.order.length;
  const at = layout.order.indexOf(rank);
  if (at < 0) return [];
  return layout.order
    .filter((_, i) => {
      const apart = Math.abs(i - at);
      return Math.min(apart, n - apart) > layout.reach;
    })
    .sort((a, b) => a - b);
}

/** Ranks with at least one peer they cannot reach. */
export function partitionedRanks(layout: PartitionLayout): number[] {
  const members = layout.kind === 'sides' ? layout.sides.flat() : layout.order;
  return members.filter((rank) => blockedPeers(layout, rank).length > 0).sort((a, b) => a - b);
}

/**
 * Names of what an instance's faults leave on a machine while they hold: nftables tables
 * `lockstep_<run>_<instance>_<entry>_<occurrence>` and (loopback mode) the cgroup
 * `lockstep_<run>_<instance>`, where `<run>` and `<instance>` are 6 hex digits of a hash. An agent
 * that restarts removes those of its instance; the local provider those of its run.
 */
export function faultNamePrefix(runId: string, instanceId?: string): string {
  const tag = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 6);
  return `lockstep_${tag(runId)}_${instanceId === undefined ? '' : `${tag(instanceId)}`}`;
}

export function partitionTableName(runId: string, instanceId: string, eventId: string): string {
  return `${faultNamePrefix(runId, instanceId)}_${eventId.replace('#', '_')}`;
}
