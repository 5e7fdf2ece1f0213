import { setTimeout as delay } from 'node:timers/promises';
import { awsErrorCode } from './errors.ts';

export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => delay(ms).then(() => undefined);

/** Codes of throttling: the request was fine, the account's token bucket was empty. */
const THROTTLING = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'SlowDown']);

export function isThrottling(error: unknown): boolean {
  return THROTTLING.has(awsErrorCode(error));
}

export interface BackoffOptions {
  /** Attempts in all, the first included. Default 8. */
  readonly attempts?: number;
  /** First delay; doubles each time, with full jitter. Default 500 ms. */
  readonly baseMs?: number;
  /** Longest delay. Default 20 s. */
  readonly maxMs?: number;
  readonly sleep?: Sleep;
  /** Which errors are worth another attempt. Default: throttling. */
  readonly retryable?: (error: unknown) => boolean;
  /** Told before each wait (for progress messages). */
  readonly onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
}

/**
 * Calls `operation` until it succeeds, or fails with an error that is not retryable, or runs out of
 * attempts (then the last error is thrown). The SDK retries throttling itself too; this loop is the
 * application-level one on top, which also sees errors the SDK does not retry.
 */
export async function withBackoff<T>(operation: (attempt: number) => Promise<T>, options: BackoffOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 8;
  const retryable = options.retryable ?? isThrottling;
  const sleep = options.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= attempts || !retryable(error)) throw error;
      const ceiling = Math.min(options.maxMs ?? 20_000, (options.baseMs ?? 500) * 2 ** (attempt - 1));
      const waitMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      options.onRetry?.(error, attempt, waitMs);
      await sleep(waitMs);
    }
  }
}
