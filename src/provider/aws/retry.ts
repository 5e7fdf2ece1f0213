import { awsErrorCode } from './errors.ts';

export type { Sleep } from '../../util/retry.ts';

/** Codes of throttling: the request was fine, the account's token bucket was empty. */
const THROTTLING = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'SlowDown']);

/**
 * Throttling is worth another attempt (with `retry` from util/retry.ts). The SDK retries it itself
 * too; the application-level retry on top also sees errors the SDK does not retry.
 */
export function isThrottling(error: unknown): boolean {
  return THROTTLING.has(awsErrorCode(error));
}
