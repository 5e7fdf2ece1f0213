import type { RunStatus } from '../controller/status.ts';
import { formatDuration } from '../util/duration.ts';

export interface RepeatSummary {
  readonly repeat: number;
  readonly members: number | null;
  readonly succeeded: number;
  readonly failed: ReadonlyArray<{ readonly rank?: number; readonly instanceId: string; readonly outcome: string; readonly detail: string }>;
  readonly durationMs: number | null;
  readonly skewMs: number | null;
  readonly maxBarrierWaitMs: number | null;
}

/** Per repeat: members, successes, failures by rank, duration and start skew. */
export function summarize(status: RunStatus): RepeatSummary[] {
  return status.repeats.map((r) => ({
    repeat: r.repeat,
    members: r.members,
    succeeded: r.results.filter((x) => x.outcome === 'success').length,
    failed: [
      ...r.results
        .filter((x) => x.outcome !== 'success')
        .map((x) => ({
          rank: x.rank,
          instanceId: x.instanceId,
          outcome: x.outcome,
          detail: x.exitCode !== null ? `exit ${x.exitCode}` : x.signal ? `signal ${x.signal}` : x.outcome,
        })),
      ...r.failures.map((f) => ({ instanceId: f.instanceId, outcome: `${f.stage} failed`, detail: f.error })),
    ],
    durationMs: r.durationMs,
    skewMs: r.skewMs,
    maxBarrierWaitMs: r.results.length > 0 ? Math.max(...r.results.map((x) => x.barrierWaitMs)) : null,
  }));
}

export function formatSummary(runId: string, rows: readonly RepeatSummary[]): string {
  const header = ['repeat', 'nodes', 'ok', 'failed', 'duration', 'start skew', 'barrier wait'];
  const body = rows.map((r) => [
    String(r.repeat),
    r.members === null ? '-' : String(r.members),
    String(r.succeeded),
    String(r.failed.length),
    r.durationMs === null ? '-' : formatDuration(r.durationMs),
    r.skewMs === null ? '-' : formatDuration(r.skewMs),
    r.maxBarrierWaitMs === null ? '-' : formatDuration(r.maxBarrierWaitMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const failures = rows.flatMap((r) =>
    r.failed.map((f) => `  repeat ${r.repeat}${f.rank !== undefined ? ` rank ${f.rank}` : ''} (${f.instanceId}): ${f.outcome}, ${f.detail}`),
  );
  return [`Run ${runId}`, line(header), ...body.map(line), ...(failures.length > 0 ? ['Failures:', ...failures] : [])].join('\n');
}
