import { setTimeout as delay } from 'node:timers/promises';

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) => delay(ms, undefined, { signal });

export interface RetryOptions {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** The first wait's ceiling; it doubles each time. Default 200 ms. */
  readonly baseDelayMs?: number;
  /** The longest wait. Default 10 s. */
  readonly maxDelayMs?: number;
  readonly signal?: AbortSignal;
  /** Return false for errors that must not be retried. Default: every error is retried. */
  readonly retryable?: (error: unknown) => boolean;
  /** Told before each wait (for progress messages). */
  readonly onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
  /** How to wait; tests pass one that does not. */
  readonly sleep?: Sleep;
}

/**
 * Runs `operation` until it succeeds, fails with an error that is not retryable, or runs out of
 * attempts (then the last error is thrown). Between attempts it waits between half and all of an
 * exponentially growing ceiling, so that many clients that failed together do not retry together.
 */
export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const base = options.baseDelayMs ?? 200;
  const max = options.maxDelayMs ?? 10_000;
  const sleep = options.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= options.attempts || options.retryable?.(error) === false || options.signal?.aborted) throw error;
      const ceiling = Math.min(max, base * 2 ** (attempt - 1));
      const waitMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      options.onRetry?.(error, attempt, waitMs);
      await sleep(waitMs, options.signal);
    }
  }
}
