import type { Matrix, MatrixValue } from '../spec/matrix.ts';

/** One point of a sweep: a value for every matrix key, and the `--set` overrides that make it. */
export interface MatrixPoint {
  /** 0-based, in expansion order. */
  readonly index: number;
  /** Matrix key path → value at this point, in the matrix's key order. */
  readonly values: Readonly<Record<string, MatrixValue>>;
  /** `key.path=value` overrides, the value written as YAML (JSON) so that `--set` reads it back exactly. */
  readonly overrides: readonly string[];
}

/**
 * Every combination of the matrix values (the cartesian product), the first key varying slowest:
 * `{ instances: [16, 32], params.protocol: [normal, adversarial] }` gives four points
 * 16/normal, 16/adversarial, 32/normal, 32/adversarial. An empty or missing matrix is one point
 * with no overrides.
 */
export function matrixPoints(matrix: Matrix | undefined): MatrixPoint[] {
  const keys = Object.keys(matrix ?? {});
  let combinations: Array<Array<[string, MatrixValue]>> = [[]];
  for (const key of keys) {
    const values = matrix![key]!;
    combinations = combinations.flatMap((prefix) => values.map((value) => [...prefix, [key, value] as [string, MatrixValue]]));
  }
  return combinations.map((pairs, index) => ({
    index,
    values: Object.fromEntries(pairs),
    overrides: pairs.map(([key, value]) => `${key}=${JSON.stringify(value)}`),
  }));
}

/** The override lists of every sweep point: the controller runs one run per list (`--set` each entry). */
export function expandMatrix(matrix: Matrix | undefined): string[][] {
  return matrixPoints(matrix).map((point) => [...point.overrides]);
}

/** A short label of a point for tables and charts: `instances=16 protocol=normal`. */
export function pointLabel(values: Readonly<Record<string, MatrixValue>>): string {
  return Object.entries(values)
    .map(([key, value]) => `${key.replace(/^params\./, '')}=${String(value)}`)
    .join(' ');
}
