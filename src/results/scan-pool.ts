import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { NodeSamples, scanNodeFile, type Probe, type SamplesState } from './extract.ts';
import { forEachLimited } from '../util/pool.ts';
import type { ScanRequest } from './scan-worker.ts';

export interface ScanJob {
  readonly path: string;
  readonly probes: readonly Probe[];
  /** The file's size, when known. */
  readonly size?: number;
}

export interface ScanPoolOptions {
  /**
   * Worker threads scanning files side by side. Default: one per idle CPU (CPUs less the load
   * average; at most 8) when there are several files with 32 MiB or more in all, and at least two
   * CPUs idle; 0 scans on this thread.
   */
  readonly workers?: number;
  readonly chunkSize?: number;
}

/** Below this many bytes in all, starting workers costs more than it saves. */
const WORKER_THRESHOLD = 32 << 20;

/** Scans every job's file for its probes; the result holds, per job, each probe's samples. */
export async function scanFiles(jobs: readonly ScanJob[], options: ScanPoolOptions = {}): Promise<NodeSamples[][]> {
  const workers = options.workers ?? (await defaultWorkers(jobs));
  const script = workers > 0 ? await workerScript() : undefined;
  if (!script || jobs.length === 0) return scanHere(jobs, options.chunkSize);
  try {
    return await scanInWorkers(jobs, Math.min(workers, jobs.length), script, options.chunkSize);
  } catch (error) {
    if (error instanceof WorkerStartError) return scanHere(jobs, options.chunkSize);
    throw error;
  }
}

async function defaultWorkers(jobs: readonly ScanJob[]): Promise<number> {
  // CPUs not already busy (by the 1-minute load average): on a loaded machine, workers only compete.
  const spare = Math.min(8, Math.round(availableParallelism() - loadavg()[0]!));
  if (spare < 2 || jobs.length < 2) return 0;
  let bytes = 0;
  for (const job of jobs) {
    bytes += job.size ?? (await stat(job.path).catch(() => undefined))?.size ?? 0;
    if (bytes >= WORKER_THRESHOLD) return spare;
  }
  return 0;
}

async function scanHere(jobs: readonly ScanJob[], chunkSize: number | undefined): Promise<NodeSamples[][]> {
  const results: NodeSamples[][] = new Array(jobs.length);
  const failures = await forEachLimited(
    jobs.map((job, index) => ({ job, index })),
    2,
    async ({ job, index }) => {
      results[index] = await scanNodeFile(job.path, job.probes, { chunkSize, size: job.size });
    },
  );
  if (failures.length > 0) throw failures[0]!.error;
  return results;
}

/** How to start a worker: its built file, or (from source) its code bundled in memory. */
type WorkerScript = { readonly file: URL };

/**
 * The built CLI starts `scan-worker.mjs` from beside itself; from source (tests, benchmarks) the
 * worker is the one `npm run build` wrote to dist/. Undefined when there is none: scan in-process.
 */
async function workerScript(): Promise<WorkerScript | undefined> {
  const built = new URL(import.meta.url.endsWith('.ts') ? '../../dist/scan-worker.mjs' : './scan-worker.mjs', import.meta.url);
  return built.protocol === 'file:' && existsSync(fileURLToPath(built)) ? { file: built } : undefined;
}

/** A worker failed before it scanned anything (it could not load): scan in-process instead. */
class WorkerStartError extends Error {}

function scanInWorkers(jobs: readonly ScanJob[], count: number, script: WorkerScript, chunkSize: number | undefined): Promise<NodeSamples[][]> {
  return new Promise((resolve, reject) => {
    const results: NodeSamples[][] = new Array(jobs.length);
    const pool: Worker[] = [];
    let next = 0;
    let done = 0;
    let settled = false;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      Promise.all(pool.map((worker) => worker.terminate())).then(
        () => (error === undefined ? resolve(results) : reject(error)),
        () => (error === undefined ? resolve(results) : reject(error)),
      );
    };
    const feed = (worker: Worker) => {
      if (next >= jobs.length) return;
      const id = next++;
      const request: ScanRequest = { id, path: jobs[id]!.path, probes: jobs[id]!.probes, chunkSize, size: jobs[id]!.size };
      worker.postMessage(request);
    };
    for (let i = 0; i < count; i++) {
      const worker = new Worker(script.file);
      pool.push(worker);
      let replied = false;
      worker.on('message', (reply: { id: number; states?: SamplesState[]; error?: string }) => {
        replied = true;
        if (reply.error !== undefined || !reply.states) {
          finish(new Error(`Could not scan ${jobs[reply.id]?.path}: ${reply.error}`));
          return;
        }
        results[reply.id] = reply.states.map((state) => NodeSamples.fromState(state));
        if (++done === jobs.length) finish();
        else feed(worker);
      });
      worker.on('error', (error) => finish(replied ? error : new WorkerStartError(error.message, { cause: error })));
      worker.on('exit', (code) => {
        if (!settled) finish(replied ? new Error(`A scan worker exited with code ${code}`) : new WorkerStartError(`exit ${code}`));
      });
      feed(worker);
    }
  });
}
