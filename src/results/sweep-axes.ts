import type { MatrixValue } from '../spec/matrix.ts';
import type { AnalysisSpec } from '../spec/metrics.ts';

/**
 * Which param of a sweep runs along the x axis of its charts, and which make one line per value
 * (`analysis.sweep`, or chosen from the sweep's keys). A key is a matrix key (`instances`,
 * `params.protocol`), `instances`, or a param of the points' runs (`network_size` or
 * `params.network_size`).
 */

export interface SweepAxes {
  readonly x: string;
  readonly lines: readonly string[];
}

/** What the axes need of a point: its matrix values, and its run's N and params. */
export interface AxisPoint {
  readonly values: Readonly<Record<string, MatrixValue>>;
  readonly run: { readonly instances: number; readonly params: Readonly<Record<string, MatrixValue>> } | null;
}

/** A requested axis names nothing the sweep has: bad input (exit 2). */
export class SweepAxisError extends Error {
  override readonly name = 'SweepAxisError';
  readonly exitCode = 2;
}

/** The value of `key` at a point: its matrix value, else its run's N or param. */
export function pointValue(point: AxisPoint, key: string): MatrixValue | undefined {
  if (key in point.values) return point.values[key];
  if (!point.run) return undefined;
  if (key === 'instances') return point.run.instances;
  return point.run.params[key.replace(/^params\./, '')];
}

export function sweepAxes(keys: readonly string[], points: readonly AxisPoint[], requested: AnalysisSpec['sweep'] | undefined, sweepId: string): SweepAxes | null {
  const known = (key: string, what: string): string => {
    const spelled = [key, `params.${key}`].find((k) => keys.includes(k));
    if (spelled) return spelled;
    const resolved = key === 'instances' || key.startsWith('params.') ? key : `params.${key}`;
    if (points.some((p) => pointValue(p, resolved) !== undefined)) return resolved;
    throw new SweepAxisError(
      `analysis.sweep.${what}: \`${key}\` is neither a key of sweep ${sweepId} (${keys.join(', ') || 'none'}) nor a param of its runs: use one of those`,
    );
  };
  const distinct = (key: string) => new Set(points.map((p) => JSON.stringify(pointValue(p, key) ?? null))).size;

  let x: string | undefined = requested ? known(requested.x, 'x') : undefined;
  if (x === undefined) {
    const numeric = keys.filter((key) => points.every((p) => typeof (pointValue(p, key) ?? 0) === 'number'));
    const candidates = numeric.length > 0 ? numeric : keys;
    x = candidates.reduce<string | undefined>((best, key) => (best === undefined || distinct(key) > distinct(best) ? key : best), undefined);
  }
  if (x === undefined) return null;
  if (requested?.lines) return { x, lines: requested.lines.map((key) => known(key, 'lines')) };

  // Every other key that varies on its own: not fixed by x, and not a renaming of a key kept before it.
  const lines: string[] = [];
  for (const key of keys) {
    if (key === x || determines(points, x, key)) continue;
    if (lines.some((kept) => determines(points, kept, key) && determines(points, key, kept))) continue;
    lines.push(key);
  }
  return { x, lines };
}

/** Whether the value of `a` fixes the value of `b` at every point. */
function determines(points: readonly AxisPoint[], a: string, b: string): boolean {
  const seen = new Map<string, string>();
  for (const point of points) {
    const from = JSON.stringify(pointValue(point, a) ?? null);
    const to = JSON.stringify(pointValue(point, b) ?? null);
    if (seen.has(from) && seen.get(from) !== to) return false;
    seen.set(from, to);
  }
  return true;
}
