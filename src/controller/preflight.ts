import { UsageError } from '../core/errors.ts';
import { localCapacity, localCapacityProblem } from '../provider/local/capacity.ts';
import type { ProviderSpec } from '../spec/schema.ts';

/** The chosen provider cannot be used from this machine as it is set up (bad input: exit 2). */
export class MissingCredentialsError extends Error {
  override readonly name = 'MissingCredentialsError';
  readonly exitCode = 2;
  constructor(
    readonly provider: string,
    readonly profile: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(
      `No AWS credentials for the aws provider${profile ? ` (profile \`${profile}\`)` : ''}: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run \`aws configure\`; nothing was launched`,
      options,
    );
  }
}

/**
 * Checks, before anything is written or launched, what the provider needs from this machine: for
 * `local`, that `instances` agents fit (an address each, and their memory); for `aws`, that the
 * standard credential chain (or the spec's profile) yields credentials. Loads the AWS SDK only for
 * an AWS spec. It asks AWS nothing: `lockstep aws doctor` checks that they work.
 */
export async function checkProviderReady(run: { readonly provider: ProviderSpec; readonly instances: number }, options: { timeoutMs?: number } = {}): Promise<void> {
  const spec = run.provider;
  if (spec.kind === 'local') {
    const problem = localCapacityProblem(run.instances, localCapacity(spec.isolation));
    if (problem) throw new UsageError(problem);
    return;
  }
  if (spec.kind !== 'aws') return;
  const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
  const timeoutMs = options.timeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const found = await Promise.race([
      fromNodeProviderChain(spec.profile ? { profile: spec.profile } : {})(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no credentials within ${timeoutMs / 1000} s`)), timeoutMs))),
    ]);
    if (!found.accessKeyId || !found.secretAccessKey) throw new Error('the credential chain returned empty credentials');
  } catch (error) {
    throw new MissingCredentialsError('aws', spec.profile, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}
