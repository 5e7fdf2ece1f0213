import type { RepeatState } from '../core/repeat-state.ts';
import type { EndRunOutcome } from '../controller/down.ts';
import type { RunStatus } from '../controller/status.ts';
import { formatDuration } from '../util/duration.ts';
import { alignColumns } from './output.ts';
import { succeeded } from '../core/manifest.ts';

export interface RepeatSummary {
  readonly repeat: number;
  readonly state: RepeatState;
  readonly members: number | null;
  readonly succeeded: number;
  /** Nodes that failed, and instances that could not take part (setup failures are in `setupFailures`). */
  readonly failed: ReadonlyArray<{ readonly rank?: number; readonly instanceId: string; readonly outcome: string; readonly detail: string }>;
  /** Nodes whose command `lockstep down` or Ctrl-C stopped. */
  readonly aborted: number;
  readonly durationMs: number | null;
  readonly skewMs: number | null;
  readonly maxBarrierWaitMs: number | null;
}

export interface SetupFailure {
  readonly instanceId: string;
  /** Null when the timeout or a signal ended it; absent when the agent did not say. */
  readonly exitCode?: number | null;
  readonly error: string;
  /** The last lines of its output. */
  readonly output: readonly string[];
}

export interface RunSummary {
  readonly runId: string;
  readonly state: RunStatus['state'];
  readonly repeats: readonly RepeatSummary[];
  /** Once per instance (the agent records the failure in every repeat). */
  readonly setupFailures: readonly SetupFailure[];
  /** `lockstep down` or Ctrl-C stopped the run. */
  readonly aborted?: { readonly at: string; readonly reason: string };
  /** `keep: true`: instances that finished and stay up until `until` or `lockstep down`. */
  readonly kept?: { readonly instances: number; readonly until: string };
}

/** Per repeat: its state, members, successes, failures by rank, duration and start skew; setup failures once per instance. */
export function summarize(status: RunStatus): RunSummary {
  const setupFailures = new Map<string, SetupFailure>();
  for (const f of status.repeats.flatMap((r) => r.failures)) {
    if (f.stage === 'setup' && !setupFailures.has(f.instanceId)) {
      setupFailures.set(f.instanceId, { instanceId: f.instanceId, ...(f.exitCode !== undefined ? { exitCode: f.exitCode } : {}), error: f.error, output: f.output ?? [] });
    }
  }
  const repeats = status.repeats.map((r) => ({
    repeat: r.repeat,
    state: r.state,
    members: r.members,
    succeeded: r.results.filter((x) => succeeded(x.outcome)).length,
    failed: [
      ...r.results
        .filter((x) => !succeeded(x.outcome) && x.outcome !== 'aborted')
        .map((x) => ({
          rank: x.rank,
          instanceId: x.instanceId,
          outcome: x.outcome,
          detail: x.exitCode !== null ? `exit ${x.exitCode}` : x.signal ? `signal ${x.signal}` : x.outcome,
        })),
      ...r.failures.filter((f) => f.stage !== 'setup').map((f) => ({ instanceId: f.instanceId, outcome: `${f.stage} failed`, detail: f.error })),
    ],
    aborted: r.results.filter((x) => x.outcome === 'aborted').length,
    durationMs: r.durationMs,
    skewMs: r.skewMs,
    maxBarrierWaitMs: r.results.length > 0 ? Math.max(...r.results.map((x) => x.barrierWaitMs)) : null,
  }));
  const kept = keptInstances(status);
  return {
    runId: status.manifest.runId,
    state: status.state,
    repeats,
    setupFailures: [...setupFailures.values()],
    ...(status.aborted ? { aborted: { at: status.aborted.at, reason: status.aborted.reason } } : {}),
    ...(kept > 0 ? { kept: { instances: kept, until: status.manifest.expiresAt } } : {}),
  };
}

/** Instances a finished `keep: true` run keeps up: their agents said done (or failed) and wait for expiry or `lockstep down`. */
function keptInstances(status: RunStatus): number {
  if (status.manifest.terminateWhenDone || status.aborted || Date.parse(status.manifest.expiresAt) <= Date.now()) return 0;
  return status.instances.filter((i) => i.state === 'done' || i.state === 'failed').length;
}

/** The instances of a run by state, as people read them (`kept` for those a finished keep run keeps up). */
export function instanceStates(status: RunStatus, summary: RunSummary): string {
  const states = new Map<string, number>();
  for (const i of status.instances) {
    const state = summary.kept && (i.state === 'done' || i.state === 'failed') ? 'kept up' : i.state;
    states.set(state, (states.get(state) ?? 0) + 1);
  }
  return [...states].map(([s, n]) => `${n} ${s}`).join(', ') || 'none booted yet';
}

/** The repeats an abort stopped, and those it left not run; both empty when it came after the last repeat (a kept run ended by `lockstep down`). */
export function cutShort(summary: RunSummary): { stopped: number[]; notRun: number[] } {
  const numbers = (state: RepeatState) => summary.repeats.filter((r) => r.state === state).map((r) => r.repeat);
  return { stopped: numbers('aborted'), notRun: numbers('not run') };
}

/** The run's state in one word: `aborted` only when the abort cut the run short. */
export function runState(summary: RunSummary): string {
  const { stopped, notRun } = cutShort(summary);
  return summary.aborted && stopped.length + notRun.length > 0 ? 'aborted' : summary.state;
}

export function formatSummary(summary: RunSummary): string {
  const header = ['repeat', 'state', 'nodes', 'ok', 'failed', 'duration', 'start skew', 'barrier wait'];
  const body = summary.repeats.map((r) => [
    String(r.repeat),
    r.state,
    r.members === null ? '-' : String(r.members),
    String(r.succeeded),
    String(r.failed.length),
    r.durationMs === null ? '-' : formatDuration(r.durationMs),
    r.skewMs === null ? '-' : formatDuration(r.skewMs),
    r.maxBarrierWaitMs === null ? '-' : formatDuration(r.maxBarrierWaitMs),
  ]);
  const lines = [`Run ${summary.runId}`, ...alignColumns([header, ...body], [2, 3, 4, 5, 6, 7])];
  if (summary.aborted) {
    const { stopped, notRun } = cutShort(summary);
    const parts = [stopped.length > 0 ? `repeat ${stopped.join(', ')} stopped` : '', notRun.length > 0 ? `repeat ${notRun.join(', ')} not run` : ''].filter(Boolean);
    lines.push(
      parts.length > 0
        ? `Aborted (${summary.aborted.reason}) at ${summary.aborted.at}: ${parts.join('; ')}`
        : `Ended (${summary.aborted.reason}) at ${summary.aborted.at}, after every repeat had run`,
    );
  }
  if (summary.setupFailures.length > 0) {
    lines.push(`Setup failed on ${summary.setupFailures.length} instance(s) (output: lockstep logs ${summary.runId} --setup [--instance <id>]):`);
    for (const f of summary.setupFailures) {
      const how = f.exitCode === undefined ? f.error : `${f.exitCode === null ? f.error.replace(/:.*$/, '') : `exit ${f.exitCode}`}${f.output.length > 0 ? `: ${f.output.join(' ⏎ ')}` : ', no output'}`;
      lines.push(`  ${f.instanceId}: ${how}`);
    }
  }
  const failures = summary.repeats.flatMap((r) =>
    r.failed.map((f) => `  repeat ${r.repeat}${f.rank !== undefined ? ` rank ${f.rank}` : ''} (${f.instanceId}): ${f.outcome}, ${f.detail}`),
  );
  if (failures.length > 0) lines.push('Failures:', ...failures);
  if (summary.kept) lines.push(`Kept: ${summary.kept.instances} instance(s) stay up until ${summary.kept.until}, or \`lockstep down ${summary.runId}\``);
  return lines.join('\n');
}

/** What ending a run did, for `lockstep down` and an interrupted `lockstep run`. */
export function describeEnded(ended: EndRunOutcome): string {
  const parts = [`${ended.ended.length} instance(s) ended${ended.ended.length > 0 ? ` (${ended.ended.join(', ')})` : ''}`];
  if (ended.stoppedByThemselves.length > 0) parts.push(`${ended.stoppedByThemselves.length} of them stopped by themselves first (a running command ended, its logs uploaded)`);
  if (ended.alreadyEnded.length > 0) parts.push(`${ended.alreadyEnded.length} had ended already`);
  return parts.join('; ');
}
