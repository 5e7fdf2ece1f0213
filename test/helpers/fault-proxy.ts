/**
 * A fault-injecting HTTP proxy for tests, on loopback, in front of an S3-compatible server:
 *
 * ```ts
 * const proxy = await startFaultProxy({ target: s3.endpoint, rate: 0.1, seed: 7 });
 * const locator = s3.locator('runs/', { endpoint: proxy.url });   // clients talk to the proxy
 * …
 * proxy.counts;      // { requests, forwarded, error500, slowDown503, dropBeforeResponse, dropMidResponse, slow }
 * await proxy.stop();
 * ```
 *
 * A share `rate` of requests is failed in one of these ways, as S3 and networks fail:
 * - `error500`: 500 InternalError, without reaching the server;
 * - `slowDown503`: 503 SlowDown, without reaching the server;
 * - `dropBeforeResponse`: the connection is closed without an answer, without reaching the server;
 * - `dropMidResponse`: the request reaches the server (a PUT is stored), then the connection is
 *   closed halfway through the answer (before any byte of a body-less answer);
 * - `slow`: the answer comes late (`slowMs`), but whole.
 *
 * Bounded: it listens and forwards on loopback only; no request is failed more than
 * `maxConsecutive` times in a row (a client that retries gets through); at most `maxFaults` faults
 * in all; bodies are buffered up to `maxBodyBytes`; the upstream request has a timeout. Seeded, so a
 * run's faults can be replayed.
 */
import { request as httpRequest, createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { seededRandom } from '../../src/util/seeded-random.ts';

export type FaultKind = 'error500' | 'slowDown503' | 'dropBeforeResponse' | 'dropMidResponse' | 'slow';
export const FAULT_KINDS: readonly FaultKind[] = ['error500', 'slowDown503', 'dropBeforeResponse', 'dropMidResponse', 'slow'];

export interface FaultProxyOptions {
  /** The server behind the proxy: `http://127.0.0.1:<port>` (loopback only). */
  readonly target: string;
  /** Share of requests failed, 0..1. Default 0.1. */
  readonly rate?: number;
  /** Which faults to inject. Default: all kinds. */
  readonly kinds?: readonly FaultKind[];
  /** PRNG seed. Default 1. */
  readonly seed?: number;
  /** Most faults in a row for the same method and path. Default 2. */
  readonly maxConsecutive?: number;
  /** Most faults in all. Default 10 000. */
  readonly maxFaults?: number;
  /** Delay of a `slow` answer: [min, max] ms. Default [300, 1500]. */
  readonly slowMs?: readonly [number, number];
  /** Largest request or response body. Default 64 MiB. */
  readonly maxBodyBytes?: number;
  /** Only requests this accepts may be failed (e.g. one part of a multipart upload). Default: every request. */
  readonly only?: (method: string, url: string) => boolean;
}

export type FaultCounts = Record<FaultKind, number> & { requests: number; forwarded: number; faults: number };

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Live counters. */
  readonly counts: Readonly<FaultCounts>;
  /** Turns faults off (or on again), e.g. to read the store back undisturbed. */
  setEnabled(enabled: boolean): void;
  stop(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'expect', 'te', 'trailer'];

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  if (target.protocol !== 'http:' || !LOOPBACK.has(target.hostname)) {
    throw new Error(`The fault proxy forwards to loopback only (http://127.0.0.1:<port>), not ${options.target}`);
  }
  const rate = options.rate ?? 0.1;
  const kinds = options.kinds ?? FAULT_KINDS;
  const maxConsecutive = options.maxConsecutive ?? 2;
  const maxFaults = options.maxFaults ?? 10_000;
  const [slowMin, slowMax] = options.slowMs ?? [300, 1500];
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const random = seededRandom(options.seed ?? 1);
  const counts: FaultCounts = { requests: 0, forwarded: 0, faults: 0, error500: 0, slowDown503: 0, dropBeforeResponse: 0, dropMidResponse: 0, slow: 0 };
  const streak = new Map<string, number>();
  let enabled = true;
  const sockets = new Set<Socket>();

  const pickFault = (key: string): FaultKind | undefined => {
    const inRow = streak.get(key) ?? 0;
    const roll = random();
    const kindRoll = random();
    if (!enabled || counts.faults >= maxFaults || inRow >= maxConsecutive || roll >= rate) {
      streak.delete(key);
      return undefined;
    }
    streak.set(key, inRow + 1);
    return kinds[Math.floor(kindRoll * kinds.length)]!;
  };

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => res.socket?.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    counts.requests++;
    const body = await readBody(req, maxBodyBytes);
    const fault = options.only && !options.only(req.method ?? 'GET', req.url ?? '/') ? undefined : pickFault(`${req.method} ${req.url}`);
    if (fault) {
      counts[fault]++;
      counts.faults++;
    }
    switch (fault) {
      case 'error500':
        return s3Error(res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
      case 'slowDown503':
        return s3Error(res, 503, 'SlowDown', 'Please reduce your request rate.');
      case 'dropBeforeResponse':
        req.socket.destroy();
        return;
      case 'slow':
        await new Promise((resolve) => setTimeout(resolve, slowMin + random() * (slowMax - slowMin)));
        break;
    }
    const upstream = await forward(target, req, body, maxBodyBytes);
    counts.forwarded++;
    if (fault === 'dropMidResponse') {
      // The server has done the work (a PUT is stored); the client never hears so.
      if (upstream.body.length === 0) {
        req.socket.destroy();
        return;
      }
      res.writeHead(upstream.status, { 'content-length': String(upstream.body.length), ...upstream.headers });
      res.write(upstream.body.subarray(0, Math.floor(upstream.body.length / 2)), () => req.socket.destroy());
      return;
    }
    res.writeHead(upstream.status, { 'content-length': String(upstream.body.length), ...upstream.headers });
    res.end(upstream.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    setEnabled(value) {
      enabled = value;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function s3Error(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

function readBody(stream: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.destroy(new Error(`body over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

function forward(target: URL, req: IncomingMessage, body: Buffer, limit: number): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  const headers: IncomingHttpHeaders = { ...req.headers, 'content-length': String(body.length) };
  for (const name of HOP_BY_HOP) delete headers[name];
  return new Promise((resolve, reject) => {
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: false, timeout: 60_000 },
      (response) => {
        readBody(response, limit).then((buffer) => {
          const out: IncomingHttpHeaders = { ...response.headers };
          for (const name of HOP_BY_HOP) delete out[name];
          // A HEAD answer keeps the object's length; every other answer gets the buffered body's.
          if (req.method !== 'HEAD') delete out['content-length'];
          resolve({ status: response.statusCode ?? 502, headers: out, body: buffer });
        }, reject);
      },
    );
    upstream.once('timeout', () => upstream.destroy(new Error('upstream timed out')));
    upstream.once('error', reject);
    upstream.end(body);
  });
}

