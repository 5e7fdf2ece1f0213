import { UsageError } from '../core/errors.ts';
import { localCapacity, localCapacityProblem } from '../provider/local/capacity.ts';
import type { LoadedSpec } from '../spec/load.ts';
import type { ProviderSpec } from '../spec/schema.ts';
import { DEFAULT_STORE, storeFromEnv } from '../store/open.ts';
import type { Store } from '../store/store.ts';
import { checkFaultSupport } from './fault-preflight.ts';
import { openReachableStore } from './reachable.ts';

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

/**
 * The store a run uses: `--store`, then `LOCKSTEP_STORE`, then the spec's `store`, then (for AWS)
 * the bucket `lockstep aws bootstrap` made, else `.lockstep/store`. EC2 instances cannot reach a
 * folder on this machine, so an AWS run needs an S3 store.
 */
export async function storeLocatorFor(loaded: LoadedSpec, override?: string): Promise<string> {
  const chosen = override ?? storeFromEnv() ?? loaded.spec.store;
  if (loaded.spec.provider.kind !== 'aws') return chosen ?? DEFAULT_STORE;
  const { defaultAwsStore } = await import('../provider/aws/config.ts');
  const locator = chosen ?? (await defaultAwsStore());
  if (!locator?.startsWith('s3://')) {
    throw new UsageError(
      locator
        ? `An AWS run needs an S3 store, not \`${locator}\`: set \`store: s3://bucket/prefix\` or run \`lockstep aws bootstrap\``
        : 'An AWS run needs an S3 store: set `store: s3://bucket/prefix` in the spec, or run `lockstep aws bootstrap` once',
    );
  }
  return locator;
}

/**
 * What `lockstep run` checks before it writes or launches anything (and `run --dry-run` checks the
 * same): which store (an AWS run needs S3), the provider (credentials; that `instances` local
 * agents fit, default the spec's), that this machine can apply the spec's partitions, and that
 * the store answers. Returns the store, open.
 */
export async function checkRun(
  loaded: LoadedSpec,
  options: { readonly store?: string; readonly cwd?: string; readonly instances?: number; readonly provider?: boolean } = {},
): Promise<{ locator: string; store: Store }> {
  const locator = await storeLocatorFor(loaded, options.store);
  // Credentials first: nothing is written to the store for a run that could not launch.
  if (options.provider !== false) {
    await checkProviderReady({ provider: loaded.spec.provider, instances: options.instances ?? loaded.spec.instances });
    if (loaded.spec.provider.kind === 'local' && loaded.spec.provider.isolation === 'netns') {
      const { checkNetnsSupport } = await import('../provider/local/netns.ts');
      checkNetnsSupport({ store: locator });
    }
  }
  checkFaultSupport(loaded.spec);
  return { locator, store: await openReachableStore(locator, options.cwd) };
}
