import { parentPort } from 'node:worker_threads';
import { scanNodeFile } from './extract.ts';
import type { MetricSpec } from '../spec/metrics.ts';

/**
 * A scan worker: takes one node file at a time from the pool (`scan-pool.ts`), scans it for the
 * given metrics, and sends back each metric's samples. Built as `dist/scan-worker.mjs` beside the CLI.
 */

export interface ScanRequest {
  readonly id: number;
  readonly path: string;
  readonly metrics: readonly MetricSpec[];
  readonly chunkSize?: number;
}

parentPort?.on('message', async (request: ScanRequest) => {
  try {
    const samples = await scanNodeFile(request.path, request.metrics, request.chunkSize);
    const states = samples.map((s) => s.state());
    parentPort!.postMessage({ id: request.id, states }, states.map((s) => s.values.buffer as ArrayBuffer));
  } catch (error) {
    parentPort!.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
