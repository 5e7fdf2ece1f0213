/**
 * A stand-in for one EC2 instance's metadata service (IMDS) on loopback, for tests that run the
 * agent as it runs on EC2 (`LOCKSTEP_IDENTITY=ec2`).
 *
 * ```ts
 * const imds = await startImdsStandIn({ instanceId: 'i-0abc…', localIpv4: '127.9.0.7', region: 'eu-west-1', zone: 'eu-west-1a', tags });
 * // the agent's environment: AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint
 * …
 * await imds.close();
 * ```
 *
 * It speaks IMDSv2 as EC2 does: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
 * (1–21600) gives a token; GETs must carry it in `X-aws-ec2-metadata-token` (401 without, unless
 * `tokensRequired: false`). Paths are normalised (`@aws-sdk/ec2-metadata-service` asks for
 * `/latest/meta-data//instance-id`). It serves:
 *
 * - `instance-id`, `local-ipv4`, `public-ipv4` (404 when not given), `placement/region`,
 *   `placement/availability-zone`;
 * - `tags/instance` (the keys, one a line) and `tags/instance/<key>`, only when `tagsEnabled`
 *   (`InstanceMetadataTags: enabled` at launch); values exactly as given (tag values as EC2 stores
 *   them, so `b64u:` values stay encoded);
 * - with an instance profile, `iam/security-credentials/` (the role name) and
 *   `iam/security-credentials/<role>` (temporary credentials as JSON): what the SDK's default
 *   credential chain reads on an instance.
 *
 * Every request is recorded (method, normalised path, whether it carried a valid token).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ImdsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  /** Default: six hours from the request. */
  readonly expiration?: Date;
}

export interface ImdsInstance {
  readonly instanceId: string;
  readonly localIpv4: string;
  readonly publicIpv4?: string;
  readonly region: string;
  readonly zone: string;
  /** Instance tags (key → value as EC2 stores it). */
  readonly tags?: Readonly<Record<string, string>>;
  /** `InstanceMetadataTags: enabled`. Default true. */
  readonly tagsEnabled?: boolean;
  /** `HttpTokens: required` (IMDSv2 only). Default true. */
  readonly tokensRequired?: boolean;
  /** The instance profile's role and the credentials it hands out. */
  readonly role?: { readonly name: string; readonly credentials: ImdsCredentials };
}

export interface ImdsRequest {
  readonly method: string;
  readonly path: string;
  readonly withToken: boolean;
  readonly status: number;
}

export interface ImdsStandIn {
  /** `http://127.0.0.1:<port>`: the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`. */
  readonly endpoint: string;
  readonly instance: ImdsInstance;
  readonly requests: readonly ImdsRequest[];
  /** Metadata paths (below `/latest/meta-data/`) that were answered with 200. */
  servedPaths(): string[];
  /** Stops answering and closes open connections. Safe to call twice. */
  close(): Promise<void>;
}

const META = '/latest/meta-data/';
const TOKEN_TTL_MAX = 21_600;

export async function startImdsStandIn(instance: ImdsInstance): Promise<ImdsStandIn> {
  const tokens = new Map<string, number>();
  const requests: ImdsRequest[] = [];
  const tagsEnabled = instance.tagsEnabled ?? true;
  const tokensRequired = instance.tokensRequired ?? true;

  const values = (): Map<string, string> => {
    const found = new Map<string, string>([
      ['instance-id', instance.instanceId],
      ['local-ipv4', instance.localIpv4],
      ['placement/region', instance.region],
      ['placement/availability-zone', instance.zone],
    ]);
    if (instance.publicIpv4) found.set('public-ipv4', instance.publicIpv4);
    if (tagsEnabled) {
      const tags = Object.entries(instance.tags ?? {});
      found.set('tags/instance', tags.map(([key]) => key).join('\n'));
      for (const [key, value] of tags) found.set(`tags/instance/${key}`, value);
    }
    if (instance.role) {
      const { name, credentials } = instance.role;
      found.set('iam/security-credentials', name);
      found.set(
        `iam/security-credentials/${name}`,
        JSON.stringify({
          Code: 'Success',
          LastUpdated: new Date().toISOString(),
          Type: 'AWS-HMAC',
          AccessKeyId: credentials.accessKeyId,
          SecretAccessKey: credentials.secretAccessKey,
          Token: credentials.sessionToken,
          Expiration: (credentials.expiration ?? new Date(Date.now() + 6 * 3_600_000)).toISOString(),
        }),
      );
    }
    return found;
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/{2,}/g, '/');
    const method = req.method ?? 'GET';
    const presented = req.headers['x-aws-ec2-metadata-token'];
    const expiry = typeof presented === 'string' ? tokens.get(presented) : undefined;
    const withToken = expiry !== undefined && expiry > Date.now();
    const answer = (status: number, body = '', type = 'text/plain') => {
      requests.push({ method, path, withToken, status });
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
    };
    req.resume();

    if (path === '/latest/api/token') {
      if (method !== 'PUT') return answer(405);
      // IMDS refuses a token request that came through a proxy.
      if (req.headers['x-forwarded-for']) return answer(403);
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > TOKEN_TTL_MAX) return answer(400);
      const token = randomBytes(24).toString('base64');
      tokens.set(token, Date.now() + ttl * 1000);
      return answer(200, token);
    }
    if (method !== 'GET' && method !== 'HEAD') return answer(405);
    if (presented !== undefined && !withToken) return answer(401);
    if (tokensRequired && !withToken) return answer(401);
    if (!path.startsWith(META)) return answer(404);
    const key = path.slice(META.length).replace(/\/$/, '');
    const value = values().get(key);
    if (value === undefined) return answer(404);
    return answer(200, value, value.startsWith('{') ? 'application/json' : 'text/plain');
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    instance,
    requests,
    servedPaths: () => [...new Set(requests.filter((r) => r.status === 200 && r.path.startsWith(META)).map((r) => r.path.slice(META.length).replace(/\/$/, '')))],
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
