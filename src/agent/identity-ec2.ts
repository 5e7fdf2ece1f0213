/**
 * Who this agent is on EC2: instance id, address, region and zone from instance metadata (IMDSv2),
 * and the run's boot info (run id, store, expiry) from the instance's tags, which lockstep sets at
 * launch and instance metadata serves (`InstanceMetadataTags: enabled`). Used when the boot script
 * sets `LOCKSTEP_IDENTITY=ec2`. Loads no EC2 control-plane code: only the metadata client.
 */
import { decodeTagValue, TAG } from '../core/tags.ts';
import { imdsClient, ImdsError } from '../util/imds.ts';

export interface Ec2Identity {
  readonly instanceId: string;
  readonly address: string;
  readonly region: string;
  readonly zone: string;
  readonly runId: string;
  /** Store locator (`s3://bucket/prefix?region=…`). */
  readonly store: string;
  readonly expiresAt: Date;
}

export interface Ec2IdentityOptions {
  /** Metadata endpoint. Default: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`. */
  readonly endpoint?: string;
  /** Use the public IPv4 address. Default: what the launch chose (tag `lockstep:address-kind`). */
  readonly publicAddress?: boolean;
  /** Per request, in milliseconds. Default 2000. */
  readonly timeoutMs?: number;
  /** Attempts after the first, per request. Default 3. */
  readonly retries?: number;
}

/** Instance metadata could not tell this agent who it is. */
export class Ec2IdentityError extends Error {
  override readonly name = 'Ec2IdentityError';
  constructor(
    message: string,
    /** The metadata path that failed. */
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export async function ec2Identity(options: Ec2IdentityOptions = {}): Promise<Ec2Identity> {
  const imds = imdsClient({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    timeoutMs: options.timeoutMs ?? 2000,
    retries: options.retries ?? 3,
  });

  const get = async (path: string, missing: string): Promise<string> => {
    try {
      return await imds.get(path);
    } catch (error) {
      if (error instanceof ImdsError && error.status === 404) throw new Ec2IdentityError(missing, path, { cause: error });
      throw new Ec2IdentityError(
        `Instance metadata did not answer ${path} (${error instanceof Error ? error.message : String(error)}): is this an EC2 instance with the metadata service enabled?`,
        path,
        { cause: error },
      );
    }
  };
  const tag = async (key: string) =>
    decodeTagValue(
      await get(
        `tags/instance/${key}`,
        `Instance tag ${key} is not in instance metadata: launch with lockstep (it sets the tag and InstanceMetadataTags: enabled)`,
      ),
    );

  const [instanceId, region, zone, runId, store, expires, addressKind] = await Promise.all([
    get('instance-id', 'Instance metadata has no instance-id'),
    get('placement/region', 'Instance metadata has no placement/region'),
    get('placement/availability-zone', 'Instance metadata has no placement/availability-zone'),
    tag(TAG.runId),
    tag(TAG.store),
    tag(TAG.expiresAt),
    tag(TAG.addressKind).catch(() => 'private'),
  ]);
  const usePublic = options.publicAddress ?? addressKind === 'public';
  const address = usePublic
    ? await get('public-ipv4', 'This instance has no public IPv4 address, and the run spans regions: launch it in a subnet that assigns public addresses')
    : await get('local-ipv4', 'Instance metadata has no local-ipv4');
  const expiresAt = new Date(expires);
  if (Number.isNaN(expiresAt.getTime())) {
    throw new Ec2IdentityError(`Instance tag ${TAG.expiresAt} is not a time: \`${expires}\``, `tags/instance/${TAG.expiresAt}`);
  }
  return { instanceId, address, region, zone, runId, store, expiresAt };
}
