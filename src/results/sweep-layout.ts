import { getJson, putJson, type Store } from '../store/store.ts';
import type { Matrix, MatrixValue } from '../spec/matrix.ts';

/** Where a sweep is recorded in the store, beside `runs/` (see `src/core/layout.ts`). */
export const sweepLayout = {
  sweepsPrefix: () => `sweeps/`,
  sweep: (sweepId: string) => `sweeps/${sweepId}.json`,
} as const;

/** `sweeps/<sweepId>.json`: which run belongs to which point of a sweep. Written by the controller. */
export interface SweepRecord {
  readonly formatVersion: 1;
  readonly sweepId: string;
  /** The spec's `name`. */
  readonly name: string;
  readonly createdAt: string;
  readonly matrix: Matrix;
  readonly points: readonly SweepPoint[];
}

export interface SweepPoint {
  readonly index: number;
  readonly values: Readonly<Record<string, MatrixValue>>;
  readonly overrides: readonly string[];
  /** Absent until the point's run has been started. */
  readonly runId?: string;
}

export async function readSweepRecord(store: Store, sweepId: string): Promise<SweepRecord | undefined> {
  return getJson<SweepRecord>(store, sweepLayout.sweep(sweepId));
}

export async function writeSweepRecord(store: Store, record: SweepRecord): Promise<void> {
  await putJson(store, sweepLayout.sweep(record.sweepId), record);
}

/** Records the run of one point (read, change, write: only the controller writes a sweep record). */
export async function recordSweepRun(store: Store, sweepId: string, pointIndex: number, runId: string): Promise<SweepRecord> {
  const record = await readSweepRecord(store, sweepId);
  if (!record) throw new Error(`No sweep record ${sweepLayout.sweep(sweepId)}: write it with writeSweepRecord first`);
  const updated: SweepRecord = {
    ...record,
    points: record.points.map((point) => (point.index === pointIndex ? { ...point, runId } : point)),
  };
  await writeSweepRecord(store, updated);
  return updated;
}

/** Every sweep record in the store, newest first. */
export async function listSweeps(store: Store): Promise<SweepRecord[]> {
  const keys = (await store.list(sweepLayout.sweepsPrefix())).map((o) => o.key).filter((k) => k.endsWith('.json') && !k.slice(sweepLayout.sweepsPrefix().length).includes('/'));
  const records = await Promise.all(keys.map((k) => getJson<SweepRecord>(store, k)));
  return records.filter((r): r is SweepRecord => r !== undefined).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}
