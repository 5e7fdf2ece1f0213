import { succeeded, type FailureRecord, type Outcome } from './manifest.ts';

/**
 * Where a repeat is, as `lockstep status`, the run's summary and `lockstep results` all say it:
 * - `waiting`, `running`: it may still happen;
 * - `done`: every member ran and succeeded; `failed`: it ran (or tried to: a barrier timeout),
 *   and some node failed;
 * - `aborted`: it started, and `lockstep down` or Ctrl-C stopped it;
 * - `not run`: it never started and never will (the run was aborted or ended first, or setup
 *   failed): nothing in it failed.
 */
export type RepeatState = 'waiting' | 'running' | 'done' | 'failed' | 'aborted' | 'not run';

export interface RepeatFacts {
  /** Members of its start record; null while (or when) the barrier never closed. */
  readonly members: number | null;
  /** The outcomes of the results uploaded. */
  readonly outcomes: readonly Outcome[];
  readonly failures: ReadonlyArray<Pick<FailureRecord, 'instanceId' | 'stage'>>;
  /** Instances that wrote a ready record. */
  readonly readyIds: readonly string[];
  /** Instances the run expects: until each has failed or got ready, one may still come. */
  readonly instances: number;
  /** The run has an abort record (what stops a started repeat is then an abort, not a failure). */
  readonly aborted: boolean;
  /** Every instance of the run has ended: nothing more will be written. */
  readonly runOver: boolean;
}

export const OVER: readonly RepeatState[] = ['done', 'failed', 'aborted', 'not run'];

export function repeatState(facts: RepeatFacts): RepeatState {
  const { members, outcomes, failures, runOver } = facts;
  const finished = members !== null && outcomes.length >= members;
  // An abort is known for sure once the nodes it stopped have said so, or every instance has ended.
  if (outcomes.includes('aborted') && (finished || runOver)) return 'aborted';
  if (finished) return failures.length === 0 && outcomes.every(succeeded) ? 'done' : 'failed';
  if (members !== null) return runOver ? (facts.aborted ? 'aborted' : 'failed') : 'running';
  // The barrier never closed. A node that timed out there (or failed after) tried to run it.
  const tried = failures.some((f) => f.stage === 'barrier' || f.stage === 'run' || f.stage === 'upload');
  const failedIds = new Set(failures.map((f) => f.instanceId));
  // Every ready instance failed, and (when none got ready) every instance failed: nobody is left to come.
  const everyoneAccounted = failures.length > 0 && facts.readyIds.every((id) => failedIds.has(id)) && (facts.readyIds.length > 0 || failedIds.size >= facts.instances);
  if (tried) return everyoneAccounted || runOver ? 'failed' : 'running';
  if (everyoneAccounted || runOver) return 'not run';
  return facts.readyIds.length > 0 ? 'running' : 'waiting';
}
