import { setTimeout as delay } from 'node:timers/promises';

export interface RetryOptions {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly signal?: AbortSignal;
  /** Return false for errors that must not be retried. */
  readonly retryable?: (error: unknown) => boolean;
  readonly onRetry?: (error: unknown, attempt: number) => void;
}

/** Runs `operation` until it succeeds, backing off exponentially with full jitter between tries. */
export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const base = options.baseDelayMs ?? 200;
  const max = options.maxDelayMs ?? 10_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= options.attempts || options.retryable?.(error) === false || options.signal?.aborted) throw error;
      options.onRetry?.(error, attempt);
      await delay(Math.random() * Math.min(max, base * 2 ** (attempt - 1)), undefined, { signal: options.signal });
    }
  }
}

/** A delay with ±`spread` relative jitter, so that N pollers do not move in step. */
export function jittered(ms: number, spread = 0.2): number {
  return ms * (1 - spread + Math.random() * 2 * spread);
}
