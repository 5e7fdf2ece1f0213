import { setTimeout as delay } from 'node:timers/promises';

/** Wall-clock epoch milliseconds with sub-millisecond precision. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Waits until the wall-clock time `at` (epoch ms). Timers sleep most of the way; the last
 * `spinMs` are spent polling the clock, since timers on a busy machine wake late by a millisecond
 * or more.
 */
export async function sleepUntil(at: number, options: { spinMs?: number; signal?: AbortSignal } = {}): Promise<number> {
  const spinMs = options.spinMs ?? 1;
  const coarse = at - preciseNow() - spinMs;
  if (coarse > 0) await delay(coarse, undefined, { signal: options.signal });
  let now = preciseNow();
  while (now < at) now = preciseNow();
  return now;
}

export function isoNow(): string {
  return new Date().toISOString();
}
