import { layout } from '../core/layout.ts';
import { openStore } from '../store/open.ts';
import { isS3Locator, parseS3Locator } from '../store/s3-locator.ts';
import type { Store } from '../store/store.ts';

export class StoreUnreachableError extends Error {
  override readonly name = 'StoreUnreachableError';
  constructor(
    readonly locator: string,
    options: { cause?: unknown },
  ) {
    const reason = ((options.cause as Error | undefined)?.message ?? 'unknown error').split('\n')[0];
    super(`Cannot reach the store ${locator}: ${reason}; check the locator and credentials`, options);
  }
}

export interface ReachableOptions {
  /** How long the store has to answer one small listing. Default 15 s. */
  readonly timeoutMs?: number;
}

/**
 * Opens a store and proves it answers, so a bad locator fails before anything is written or
 * launched, and fails fast: an S3 store is probed with a client that tries three times (the store itself
 * keeps the SDK's patient retries for the run), and the probe has a deadline.
 */
export async function openReachableStore(locator: string, cwd?: string, options: ReachableOptions = {}): Promise<Store> {
  const store = await openStore(locator, { cwd });
  const timeoutMs = options.timeoutMs ?? 15_000;
  let probe: Store = store;
  let timer: NodeJS.Timeout | undefined;
  try {
    if (isS3Locator(locator)) {
      const { createS3Store } = await import('../store/s3.ts');
      probe = createS3Store({ ...parseS3Locator(locator), maxAttempts: 3 });
    }
    await Promise.race([
      probe.list(layout.runsPrefix(), { pageSize: 1 }),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs))),
    ]);
  } catch (error) {
    await store.dispose();
    throw new StoreUnreachableError(locator, { cause: error });
  } finally {
    clearTimeout(timer);
    if (probe !== store) await probe.dispose();
  }
  return store;
}
