/**
 * A counting HTTP proxy in front of an S3-compatible server: every request the agents send is
 * forwarded unchanged and counted as S3 bills it (PUT, GET/HEAD, LIST pages), retries and pages
 * included, so the figures do not depend on the code counting itself.
 */
import { Agent, createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RequestCounts {
  put: number;
  get: number;
  list: number;
  other: number;
}

export interface CountingProxy {
  readonly endpoint: string;
  readonly counts: RequestCounts;
  /** GETs the proxy asked s3rver again (a 5xx, or a body cut short while the object was rewritten); not in `counts`. */
  readonly retries: number;
  reset(): void;
  close(): Promise<void>;
}

export function kindOf(req: Pick<IncomingMessage, 'method' | 'url'>): keyof RequestCounts {
  const url = new URL(req.url ?? '/', 'http://proxy');
  if (req.method === 'PUT') return 'put';
  if (req.method === 'GET' && url.searchParams.has('list-type')) return 'list';
  if (req.method === 'GET' || req.method === 'HEAD') return 'get';
  return 'other';
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  // Idle upstream connections are dropped before the server drops them (s3rver: 5 s), so that a
  // request never goes out on a connection that is closing.
  const agent = new Agent({ keepAlive: true, maxSockets: 64, timeout: 2000 });
  const counts: RequestCounts = { put: 0, get: 0, list: 0, other: 0 };
  let retries = 0;
  const server: Server = createServer((req, res) => {
    counts[kindOf(req)]++;
    // s3rver answers 500 when an object is read while it is being rewritten (S3 never does: its
    // writes are atomic). A GET that meets one is asked again here after a moment, so that the
    // figures show the barrier on an S3-like store, not the SDK's backoff on s3rver's race; every
    // such retry is counted in `retries`.
    const retryable = req.method === 'GET' || req.method === 'HEAD';
    const send = (attempt: number) => {
      let abandoned = false;
      const retry = () => {
        if (abandoned) return;
        abandoned = true;
        retries++;
        forward.destroy();
        setTimeout(() => send(attempt + 1), 5 + 10 * attempt);
      };
      const forward = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
        (answer) => {
          const status = answer.statusCode ?? 502;
          if (status >= 500 && retryable && attempt < 8) {
            answer.resume();
            retry();
            return;
          }
          if (!retryable) {
            res.writeHead(status, answer.headers);
            answer.pipe(res);
            answer.on('error', () => res.destroy());
            return;
          }
          // s3rver also serves an object that is being rewritten with a body that stops short and
          // then stalls (until its keep-alive timeout, 5 s): read the body here, and ask again when
          // it stalls or comes up short.
          const chunks: Buffer[] = [];
          const expected = Number(answer.headers['content-length'] ?? Number.NaN);
          const stall = setTimeout(() => answer.destroy(new Error('stalled')), 150);
          answer.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            stall.refresh();
          });
          answer.on('error', () => {
            clearTimeout(stall);
            if (abandoned) return;
            retry();
          });
          answer.on('end', () => {
            clearTimeout(stall);
            const body = Buffer.concat(chunks);
            if (abandoned || res.headersSent) return;
            if (Number.isFinite(expected) && body.length !== expected && attempt < 8) {
              retry();
              return;
            }
            abandoned = true;
            res.writeHead(status, answer.headers);
            res.end(body);
          });
        },
      );
      forward.setTimeout(30_000, () => forward.destroy(new Error('upstream timed out')));
      forward.on('error', (error) => {
        if (abandoned) return;
        // The client sees a failed request (and retries it), never a silent one.
        if (res.headersSent || res.destroyed) res.destroy();
        else {
          res.writeHead(502);
          res.end(String(error));
        }
      });
      if (retryable) forward.end();
      else req.pipe(forward);
    };
    send(0);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    get retries() {
      return retries;
    },
    reset() {
      counts.put = counts.get = counts.list = counts.other = 0;
      retries = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
