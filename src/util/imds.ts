/**
 * A small client of the EC2 instance metadata service, IMDSv2 only (a session token first, then
 * GETs that carry it), over node:http: what the agent's EC2 identity and the S3 store's instance-role
 * credentials read. The endpoint is `AWS_EC2_METADATA_SERVICE_ENDPOINT` where set (as the AWS SDK
 * reads it), else `http://169.254.169.254`.
 */
import { request } from 'node:http';
import { retry } from './retry.ts';

export interface ImdsOptions {
  /** Default: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`. */
  readonly endpoint?: string;
  /** Per request, in milliseconds. Default 2000. */
  readonly timeoutMs?: number;
  /** Attempts after the first, per request, for network errors, timeouts and 5xx. Default 3. */
  readonly retries?: number;
}

export interface Imds {
  /** The text at `/latest/meta-data/<path>`, trimmed. Throws `ImdsError` (with `status` 404 for a missing path). */
  get(path: string): Promise<string>;
}

export class ImdsError extends Error {
  override readonly name = 'ImdsError';
  constructor(
    message: string,
    /** The HTTP status, where the service answered. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const TOKEN_TTL_SECONDS = 21_600;

export function imdsClient(options: ImdsOptions = {}): Imds {
  const endpoint = new URL(options.endpoint ?? (process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT || 'http://169.254.169.254'));
  const timeoutMs = options.timeoutMs ?? 2000;
  const attempts = (options.retries ?? 3) + 1;
  let token: { value: Promise<string>; until: number } | undefined;

  const call = (method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<string> =>
    retry(() => once(endpoint, method, path, headers, timeoutMs), {
      attempts,
      baseDelayMs: 250,
      maxDelayMs: 2000,
      retryable: (error) => !(error instanceof ImdsError && error.status !== undefined && error.status < 500),
    });

  const sessionToken = (): Promise<string> => {
    if (!token || token.until <= Date.now()) {
      const value = call('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) });
      // A token is good for six hours; ask for a new one well before.
      token = { value, until: Date.now() + (TOKEN_TTL_SECONDS - 60) * 1000 };
      value.catch(() => (token = undefined));
    }
    return token.value;
  };

  return {
    async get(path) {
      const metadataPath = `/latest/meta-data/${path}`;
      try {
        return (await call('GET', metadataPath, { 'x-aws-ec2-metadata-token': await sessionToken() })).trim();
      } catch (error) {
        // The token ran out early (the service restarted): once more with a new one.
        if (!(error instanceof ImdsError && error.status === 401)) throw error;
        token = undefined;
        return (await call('GET', metadataPath, { 'x-aws-ec2-metadata-token': await sessionToken() })).trim();
      }
    },
  };
}

function once(endpoint: URL, method: 'GET' | 'PUT', path: string, headers: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = request(
      { protocol: endpoint.protocol, hostname: endpoint.hostname.replace(/^\[|\]$/g, ''), port: endpoint.port, method, path, headers, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status === 200) resolve(body);
          else reject(new ImdsError(`${method} ${path} answered HTTP ${status}`, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new ImdsError(`${method} ${path} had no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
