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
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const counts: RequestCounts = { put: 0, get: 0, list: 0, other: 0 };
  const server: Server = createServer((req, res) => {
    counts[kindOf(req)]++;
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error));
    });
    req.pipe(forward);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    reset() {
      counts.put = counts.get = counts.list = counts.other = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
