import { describe, expect, it } from 'vitest';
import {
  distribution,
  quantileSorted,
  studentT975,
  studentTCdf,
  studentTQuantile,
  summarizeRepeats,
} from '../../src/results/stats.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';
import { reference } from './fixture.ts';

describe('Student t', () => {
  it('matches the printed table of two-sided 95% critical values', () => {
    for (const [df, t] of Object.entries(reference.t975)) expect(studentT975(Number(df))).toBeCloseTo(t, 3);
    expect(studentT975(1000)).toBeCloseTo(1.9623, 3);
  });

  it('has a CDF that is symmetric and reaches its quantiles', () => {
    expect(studentTCdf(0, 7)).toBeCloseTo(0.5, 12);
    expect(studentTCdf(-2, 7) + studentTCdf(2, 7)).toBeCloseTo(1, 12);
    expect(studentTCdf(studentTQuantile(0.995, 4), 4)).toBeCloseTo(0.995, 9);
    expect(studentTQuantile(0.995, 4)).toBeCloseTo(4.6041, 3);
  });
});

describe('quantiles and distributions', () => {
  it('interpolates between closest ranks like numpy', () => {
    const xs = [1, 2, 3, 4, 10];
    expect(quantileSorted(xs, 0.5)).toBe(3);
    expect(quantileSorted(xs, 0.95)).toBeCloseTo(8.8, 12); // numpy.percentile([1,2,3,4,10], 95)
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([7], 0.95)).toBe(7);
  });

  it('sorts numerically, not as text', () => {
    const d = distribution([10, 9, 100, 2])!;
    expect(d).toEqual({ count: 4, min: 2, median: 9.5, mean: 30.25, p95: reference.quantile([10, 9, 100, 2], 0.95), max: 100 });
    expect(distribution([])).toBeUndefined();
  });

  it('summarises repeats with mean, sample sd and a t-based 95% CI, skipping missing repeats', () => {
    const xs = [10.2, 11.1, 9.7, 10.5];
    const s = summarizeRepeats([...xs, null]);
    const half = (reference.t975[3]! * reference.sd(xs)) / Math.sqrt(4);
    expect(s.n).toBe(4);
    expect(s.mean).toBeCloseTo(reference.mean(xs), 12);
    expect(s.sd).toBeCloseTo(reference.sd(xs), 12);
    expect(s.ci95![0]).toBeCloseTo(reference.mean(xs) - half, 3);
    expect(s.ci95![1]).toBeCloseTo(reference.mean(xs) + half, 3);
    expect(summarizeRepeats([5])).toEqual({ n: 1, mean: 5, sd: null, ci95: null, ci95Omitted: 'one-repeat' });
    expect(summarizeRepeats([])).toEqual({ n: 0, mean: null, sd: null, ci95: null });
  });
});

describe('quantiles by selection', () => {
  it('give exactly what sorting gives, on random, sorted, reversed and tied samples', async () => {
    const { quantileSelect } = await import('../../src/results/stats.ts');
    const rand = seededRandom(9);
    const inputs: number[][] = [
      Array.from({ length: 1001 }, () => rand() * 100),
      Array.from({ length: 1000 }, (_, i) => i),
      Array.from({ length: 999 }, (_, i) => 999 - i),
      Array.from({ length: 500 }, () => Math.floor(rand() * 3)),
      [5],
      [2, 1],
    ];
    for (const xs of inputs) {
      const sorted = Float64Array.from(xs).sort();
      for (const q of [0, 0.05, 0.5, 0.95, 0.99, 1]) {
        expect(quantileSelect(Float64Array.from(xs), q)).toBe(quantileSorted(sorted, q));
      }
      const d = distribution(xs)!;
      expect(d.median).toBe(quantileSorted(sorted, 0.5));
      expect(d.p95).toBe(quantileSorted(sorted, 0.95));
      expect(d.min).toBe(sorted[0]);
      expect(d.max).toBe(sorted.at(-1));
    }
  });
});
