import { describeInstances, terminateInstances } from './api.ts';
import type { AwsClients } from './clients.ts';
import { AwsApiError, AwsSetupError, awsErrorCode } from './errors.ts';
import { retry } from '../../util/retry.ts';
import { isThrottling, type Sleep } from './retry.ts';

/** TerminateInstances takes at most this many ids a call. */
const IDS_PER_CALL = 1000;

export interface TerminateOptions {
  readonly sleep?: Sleep;
  /** Attempts for ids EC2 does not know yet (eventual consistency right after launch). Default 6 (about 30 s). */
  readonly notFoundAttempts?: number;
}

/**
 * Terminates instances grouped by region, regions in parallel. Right after launch EC2 may answer
 * `InvalidInstanceID.NotFound` for ids it just gave out: that is retried with backoff, as is
 * throttling. Every region is attempted; the first failure is thrown after all have been tried.
 */
export async function terminateByRegion(
  clients: AwsClients,
  byRegion: ReadonlyMap<string, readonly string[]>,
  options: TerminateOptions = {},
): Promise<void> {
  const results = await Promise.allSettled(
    [...byRegion].flatMap(([region, ids]) =>
      chunks(ids, IDS_PER_CALL).map((chunk) =>
        retry(() => terminateInstances(clients, region, chunk), {
          attempts: options.notFoundAttempts ?? 6,
          baseDelayMs: 1000,
          maxDelayMs: 10_000,
          sleep: options.sleep,
          retryable: (error) => isThrottling(error) || awsErrorCode(error) === 'InvalidInstanceID.NotFound',
        }).catch(async (error: unknown) => {
          // Ending what has ended already is done, whatever EC2 answered: ask again for the rest only.
          const live = await stillRunning(clients, region, chunk).catch(() => chunk);
          if (live.length === 0) return;
          if (live.length === chunk.length) throw terminateError(error, region, chunk);
          await terminateInstances(clients, region, live).catch((again: unknown) => Promise.reject(terminateError(again, region, live)));
        }),
      ),
    ),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Of `ids`, those EC2 still lists as pending, running, stopping or stopped. */
async function stillRunning(clients: AwsClients, region: string, ids: readonly string[]): Promise<string[]> {
  const found = await describeInstances(clients, region, [{ Name: 'instance-id', Values: [...ids] }]);
  const ended = new Set(found.filter((i) => ['shutting-down', 'terminated'].includes(i.State?.Name ?? '')).map((i) => i.InstanceId));
  return ids.filter((id) => !ended.has(id));
}

function terminateError(error: unknown, region: string, ids: readonly string[]): Error {
  const code = awsErrorCode(error);
  if (code === 'InvalidInstanceID.Malformed') {
    return new AwsSetupError(`Not an instance id among ${ids.join(', ')}`, 'pass ids of the form i-0123456789abcdef0', { region, cause: error });
  }
  const fix =
    code === 'InvalidInstanceID.NotFound'
      ? `EC2 does not know some of ${ids.join(', ')} in this region: check the region, or they ended long ago`
      : code === 'UnauthorizedOperation'
        ? 'your credentials may not terminate these instances: use a profile that may (ec2:TerminateInstances)'
        : `end them in the EC2 console (ids ${ids.join(', ')}), then run \`lockstep aws doctor\``;
  return new AwsApiError('ec2:TerminateInstances', code, region, fix, { cause: error });
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
