import { parentPort } from 'node:worker_threads';
import { scanNodeFile, type Probe } from './extract.ts';

/**
 * A scan worker: takes one node file at a time from the pool (`scan-pool.ts`), scans it for the
 * given probes, and sends back each probe's samples. Built as `dist/scan-worker.mjs` beside the CLI.
 */

export interface ScanRequest {
  readonly id: number;
  readonly path: string;
  readonly probes: readonly Probe[];
  readonly chunkSize?: number;
  readonly size?: number;
}

parentPort?.on('message', async (request: ScanRequest) => {
  try {
    const samples = await scanNodeFile(request.path, request.probes, { chunkSize: request.chunkSize, size: request.size });
    const states = samples.map((s) => s.state());
    parentPort!.postMessage({ id: request.id, states }, states.map((s) => s.values.buffer as ArrayBuffer));
  } catch (error) {
    parentPort!.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
