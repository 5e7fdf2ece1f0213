import { succeeded, type FailureRecord, type NodeResult, type StartRecord } from '../core/manifest.ts';

/** What the store says of one repeat, as far as this instance is concerned. */
export interface RepeatFacts {
  readonly instanceId: string;
  /** Epoch ms now. */
  readonly now: number;
  /** The repeat's start record, once its barrier closed. */
  readonly start?: StartRecord;
  /** This instance's failure record of the repeat. */
  readonly failure?: FailureRecord;
  /** The result stored at this instance's rank (whoever wrote it). */
  readonly result?: NodeResult;
}

/** What to do with a repeat. */
export type RepeatAction =
  /** Already over for this instance (an earlier agent recorded it): nothing to do. */
  | { readonly kind: 'recorded'; readonly outcome: string; readonly failed: boolean }
  /** The barrier closed without this instance: say so. */
  | { readonly kind: 'left-out' }
  /** It started while no agent ran here: its outcome is unknown; record what there is. */
  | { readonly kind: 'missed'; readonly start: StartRecord; readonly rank: number }
  /** Take part. `keepReady`: an earlier agent's ready record stands (same readyAt, so the same T). */
  | { readonly kind: 'run'; readonly keepReady: boolean };

/**
 * The first life of an agent runs every repeat. A restarted one reads the facts first: a repeat
 * may be recorded already, closed without it, or under way past its start time.
 */
export function decideRepeat(facts: RepeatFacts | undefined): RepeatAction {
  if (!facts) return { kind: 'run', keepReady: false };
  if (facts.failure) return { kind: 'recorded', outcome: `failed at ${facts.failure.stage}`, failed: true };
  const { start } = facts;
  if (!start) return { kind: 'run', keepReady: true };
  const rank = start.members.findIndex((m) => m.instanceId === facts.instanceId);
  if (rank < 0) return { kind: 'left-out' };
  if (facts.result?.instanceId === facts.instanceId) {
    return { kind: 'recorded', outcome: facts.result.outcome, failed: !succeeded(facts.result.outcome) };
  }
  // Still before T: the barrier is closed but the command has not started, so this node can make it.
  return facts.now < start.startAt ? { kind: 'run', keepReady: true } : { kind: 'missed', start, rank };
}
