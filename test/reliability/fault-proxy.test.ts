/** The fault-injecting proxy itself: loopback only, bounded, counted, and transparent when off. */
import { request } from 'node:http';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAULT_KINDS, startFaultProxy } from '../helpers/fault-proxy.ts';

function fetchOnce(url: string, method = 'GET', body?: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(url, { method, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', (error) => resolve({ error: error.message }));
      res.on('aborted', () => resolve({ error: 'aborted' }));
    });
    req.on('error', (error) => resolve({ error: error.message }));
    req.end(body);
  });
}

describe('the fault proxy', () => {
  let upstream: Server;
  let target = '';
  let received = 0;
  beforeAll(async () => {
    upstream = createServer((req, res) => {
      received++;
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => res.end(`echo ${req.method} ${req.url} ${body}`.padEnd(200, '.')));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    target = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

  it('refuses a target off loopback', async () => {
    await expect(startFaultProxy({ target: 'http://192.0.2.1:80' })).rejects.toThrow(/loopback only/);
  });

  it('fails about the share asked, every kind, never more than maxConsecutive in a row for one request, and counts it all', async () => {
    const proxy = await startFaultProxy({ target, rate: 0.3, seed: 3, slowMs: [5, 20], maxConsecutive: 2 });
    try {
      const before = received;
      let okAnswers = 0;
      for (let i = 0; i < 300; i++) {
        // A client that retries the same request until it gets through: at most 3 tries.
        let tries = 0;
        for (;;) {
          tries++;
          const answer = await fetchOnce(`${proxy.url}/key-${i}`, 'PUT', `body ${i}`);
          if ('status' in answer && answer.status === 200 && answer.body.startsWith(`echo PUT /key-${i} body ${i}`) && answer.body.length === 200) break;
          expect(tries).toBeLessThan(3);
        }
        okAnswers++;
      }
      expect(okAnswers).toBe(300);
      const counts = proxy.counts;
      expect(counts.faults).toBe(FAULT_KINDS.reduce((sum, kind) => sum + counts[kind], 0));
      for (const kind of FAULT_KINDS) expect(counts[kind], kind).toBeGreaterThan(0);
      expect(counts.faults / counts.requests).toBeGreaterThan(0.15);
      expect(counts.faults / counts.requests).toBeLessThan(0.4);
      // Only faults that happen after the server answered reach it.
      expect(received - before).toBe(counts.forwarded);
      expect(counts.forwarded).toBe(counts.requests - counts.error500 - counts.slowDown503 - counts.dropBeforeResponse);
    } finally {
      await proxy.stop();
    }
  });

  it('caps the faults in all, and passes everything through when turned off', async () => {
    const proxy = await startFaultProxy({ target, rate: 1, seed: 1, maxFaults: 5, kinds: ['error500'] });
    try {
      const answers = [];
      for (let i = 0; i < 10; i++) answers.push(await fetchOnce(`${proxy.url}/capped-${i}`));
      expect(answers.map((a) => ('status' in a ? a.status : 0))).toEqual([500, 500, 500, 500, 500, 200, 200, 200, 200, 200]);
      expect((answers[0] as { body: string }).body).toContain('<Code>InternalError</Code>');
      proxy.setEnabled(false);
      expect(proxy.counts.faults).toBe(5);
    } finally {
      await proxy.stop();
    }
  });
});
