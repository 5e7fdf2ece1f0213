/** Descriptive statistics for figures and metrics: small, exact, no dependencies. */

/** Per-repeat statistics of a set of samples (over nodes, or over every sample of every node). */
export interface Distribution {
  readonly count: number;
  readonly min: number;
  readonly median: number;
  readonly mean: number;
  readonly p95: number;
  readonly max: number;
}

/** A figure over repeats: mean, sample standard deviation and a 95% confidence interval (Student's t). */
export interface RepeatSummary {
  /** Repeats that had a value. */
  readonly n: number;
  readonly mean: number | null;
  /** Sample standard deviation (n − 1); null for fewer than two repeats. */
  readonly sd: number | null;
  /**
   * 95% confidence interval of the mean, mean ± t(0.975, n − 1) · sd / √n; null where it would mean
   * nothing (`ci95Omitted` says why).
   */
  readonly ci95: readonly [number, number] | null;
  /**
   * Why there is no interval: `one-repeat` (fewer than two repeats had a value), `no-spread` (the
   * same value in every repeat), `below-zero` (the interval would reach below zero for a quantity
   * that cannot be negative: too few repeats for the spread).
   */
  readonly ci95Omitted?: CiOmitted;
}

export type CiOmitted = 'one-repeat' | 'no-spread' | 'below-zero';

export interface SummarizeOptions {
  /** The quantity cannot be negative (a duration, bytes, a count): an interval reaching below zero is left out. */
  readonly nonNegative?: boolean;
}

export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum / values.length;
}

export function sampleSd(values: ArrayLike<number>): number {
  const m = mean(values);
  let squares = 0;
  for (let i = 0; i < values.length; i++) squares += (values[i]! - m) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of values sorted ascending, by linear interpolation between closest
 * ranks (R's type 7, numpy's default): median = quantile(0.5), p95 = quantile(0.95).
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const fraction = position - lower;
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * fraction;
}

/**
 * min, median, mean, p95 and max; undefined for no samples. Works on a copy, in linear time (the
 * quantiles by selection, not by sorting: the same numbers as `quantileSorted` of the sorted samples).
 */
export function distribution(values: ArrayLike<number>): Distribution | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  const copy = Float64Array.from(values);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = copy[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { count: n, min, median: quantileSelect(copy, 0.5), mean: sum / n, p95: quantileSelect(copy, 0.95), max };
}

/** The q-quantile as `quantileSorted` defines it, by selection; reorders `values`. */
export function quantileSelect(values: Float64Array, q: number): number {
  const position = (values.length - 1) * q;
  const lower = Math.floor(position);
  const low = select(values, lower, 0, values.length - 1);
  if (position === lower) return low;
  // After selecting `lower`, everything right of it is ≥ it: the next order statistic is their minimum.
  let next = Number.POSITIVE_INFINITY;
  for (let i = lower + 1; i < values.length; i++) if (values[i]! < next) next = values[i]!;
  return low + (next - low) * (position - lower);
}

/** The k-th smallest of values[left..right] (Hoare's selection, median-of-three pivots); reorders in place. */
function select(values: Float64Array, k: number, left: number, right: number): number {
  while (right > left) {
    const middle = (left + right) >>> 1;
    // Median of three as the pivot, which also guards against sorted input.
    if (values[middle]! < values[left]!) swap(values, middle, left);
    if (values[right]! < values[left]!) swap(values, right, left);
    if (values[right]! < values[middle]!) swap(values, right, middle);
    const pivot = values[middle]!;
    let i = left;
    let j = right;
    while (i <= j) {
      while (values[i]! < pivot) i++;
      while (values[j]! > pivot) j--;
      if (i <= j) {
        swap(values, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return values[k]!;
  }
  return values[k]!;
}

function swap(values: Float64Array, a: number, b: number): void {
  const t = values[a]!;
  values[a] = values[b]!;
  values[b] = t;
}

/** Mean, sd and 95% CI of per-repeat values; nulls (a repeat without the figure) are left out. */
export function summarizeRepeats(values: ReadonlyArray<number | null | undefined>, options: SummarizeOptions = {}): RepeatSummary {
  const present = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const n = present.length;
  if (n === 0) return { n, mean: null, sd: null, ci95: null };
  const m = mean(present);
  if (n < 2) return { n, mean: m, sd: null, ci95: null, ci95Omitted: 'one-repeat' };
  const sd = sampleSd(present);
  if (sd === 0) return { n, mean: m, sd, ci95: null, ci95Omitted: 'no-spread' };
  const half = studentT975(n - 1) * (sd / Math.sqrt(n));
  if (options.nonNegative && m - half < 0) return { n, mean: m, sd, ci95: null, ci95Omitted: 'below-zero' };
  return { n, mean: m, sd, ci95: [m - half, m + half] };
}

const t975Cache = new Map<number, number>();

/** The 0.975 quantile of Student's t distribution with `df` degrees of freedom (two-sided 95%). */
export function studentT975(df: number): number {
  let t = t975Cache.get(df);
  if (t === undefined) {
    t = studentTQuantile(0.975, df);
    t975Cache.set(df, t);
  }
  return t;
}

/** The p-quantile (0.5 < p < 1) of Student's t with `df` degrees of freedom, by bisection on the CDF. */
export function studentTQuantile(p: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`Expected degrees of freedom > 0, got ${df}`);
  if (!(p > 0.5 && p < 1)) throw new RangeError(`Expected 0.5 < p < 1, got ${p}`);
  let low = 0;
  let high = 1;
  while (studentTCdf(high, df) < p) high *= 2;
  for (let i = 0; i < 200 && high - low > 1e-12 * high; i++) {
    const middle = (low + high) / 2;
    if (studentTCdf(middle, df) < p) low = middle;
    else high = middle;
  }
  return (low + high) / 2;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** I_x(a, b), by the continued fraction of Numerical Recipes (modified Lentz). */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let term = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + term * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + term / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    term = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + term * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + term / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) break;
  }
  return h;
}

const LANCZOS = [
  676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let sum = 0.99999999999980993;
  for (let i = 0; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i + 1);
  const t = z + LANCZOS.length - 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}
