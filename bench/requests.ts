/**
 * Store requests per node per barrier, and barrier latency (last arrival → every node knows the
 * members and T), with N lightweight agents in one process arriving over `spreadMs`:
 *
 * - live: against s3rver on loopback behind a counting proxy (every request on the wire counts);
 * - simulated: the same barrier code in virtual time against a store with S3's request times, for
 *   both lockstep and the seed's barrier. The seed's LIST-every-0.5-s loop saturates s3rver (a LIST
 *   of 1,000 keys costs it ~0.25 s of CPU), so live it runs only at the smallest N, where the
 *   figures show how s3rver slows it down.
 */
import { startS3Server } from '../test/helpers/s3-server.ts';
import { simulateBarrier, type SimulationResult } from '../test/helpers/barrier-sim.ts';
import { outputOf, startNode, type ProcName } from './procs.ts';
import { startCountingProxy, type RequestCounts } from './proxy.ts';

export interface RequestsOptions {
  readonly ns: readonly number[];
  readonly spreadMs: number;
  readonly startDelayMs: number;
  /** The seed's barrier runs live up to this N. */
  readonly seedLiveMaxN: number;
  /** Live lockstep runs per N up to `liveRepeatMaxN` (the latency varies from run to run); one above it. */
  readonly liveRuns: number;
  readonly liveRepeatMaxN: number;
  readonly procs: Record<ProcName, string>;
  readonly log: (line: string) => void;
}

export interface BarrierFigures {
  readonly requestsPerNode: number;
  readonly putPerNode: number;
  readonly getPerNode: number;
  readonly listPerNode: number;
  /** LIST requests (pages) / all requests. */
  readonly listShare: number;
  /** S3 prices (us-east-1): PUT/LIST $0.005 per 1,000, GET $0.0004 per 1,000; the whole barrier. */
  readonly dollars: number;
  /** Last readyAt → the last node knows members and T (ms); the median run's when there are several. */
  readonly latencyMs: number;
  /** Every live run's latency, when there are several (the figures above are the median run's). */
  readonly latencySamplesMs?: readonly number[];
  /** Nodes that knew T less than 100 ms before T (lockstep only). */
  readonly lateNodes: number;
  /** T − (latest readyAt + start delay), ms (lockstep only). */
  readonly extraDelayMs: number;
  /** Peak memory of the process that ran all N (live only). */
  readonly processPeakBytes?: number;
  /** s3rver's failed reads (5xx, bodies cut short) that the proxy asked again, not counted above (live only). */
  readonly s3rverRetries?: number;
}

export interface RequestsRow {
  readonly n: number;
  readonly spreadMs: number;
  readonly live: { readonly lockstep: BarrierFigures; readonly seed?: BarrierFigures };
  readonly simulated: { readonly lockstep: BarrierFigures; readonly seed: BarrierFigures };
}

export async function benchRequests(options: RequestsOptions): Promise<RequestsRow[]> {
  const s3 = await startS3Server({ bucket: 'lockstep-bench' });
  const proxy = await startCountingProxy(s3.endpoint);
  const rows: RequestsRow[] = [];
  try {
    for (const n of options.ns) {
      const live = async (mode: 'lockstep' | 'seed', seed: number) => {
        proxy.reset();
        const runId = `bench-${mode}-${n}-${Date.now()}`;
        const args = {
          locator: s3.locator(`${runId}/`, { endpoint: proxy.endpoint }),
          runId,
          n,
          spreadMs: options.spreadMs,
          mode,
          startDelayMs: options.startDelayMs,
          seed,
        };
        const child = startNode(options.procs['light-agents'], [JSON.stringify(args)], { ...process.env, ...s3.env });
        const lines = await outputOf(child, `${n} lightweight agents (${mode})`);
        const result = JSON.parse(lines.find((l) => l.startsWith('{'))!) as { nodes: NodeOutcome[]; maxRssBytes: number };
        return { ...figuresOf(n, { ...proxy.counts }, result.nodes, options.startDelayMs, result.maxRssBytes), s3rverRetries: proxy.retries };
      };
      // Each run has its own arrival times. The nodes pace their polls by the store's readsPerSecond:
      // 500 for an S3-compatible endpoint such as this s3rver (4,000 on AWS S3).
      const runs: BarrierFigures[] = [];
      for (let r = 0; r < (n <= options.liveRepeatMaxN ? options.liveRuns : 1); r++) {
        runs.push(await live('lockstep', n + 7919 * r));
        options.log(describe(`requests N=${n} live lockstep${runs.length > 1 || options.liveRuns > 1 ? ` (run ${r + 1})` : ''}`, runs[r]!));
      }
      const byLatency = [...runs].sort((a, b) => a.latencyMs - b.latencyMs);
      const lockstep = { ...byLatency[Math.floor((byLatency.length - 1) / 2)]!, ...(runs.length > 1 && { latencySamplesMs: runs.map((x) => x.latencyMs) }) };
      let seedLive: BarrierFigures | undefined;
      if (n <= options.seedLiveMaxN) {
        seedLive = await live('seed', n);
        options.log(describe(`requests N=${n} live seed-like`, seedLive));
      }
      const simulate = async (barrier: 'lockstep' | 'seed') =>
        fromSimulation(await simulateBarrier({ n, barrier, startDelayMs: options.startDelayMs, spreadMs: options.spreadMs, seed: n }), n);
      const simulated = { lockstep: await simulate('lockstep'), seed: await simulate('seed') };
      options.log(describe(`requests N=${n} simulated lockstep`, simulated.lockstep));
      options.log(describe(`requests N=${n} simulated seed-like`, simulated.seed));
      rows.push({ n, spreadMs: options.spreadMs, live: { lockstep, ...(seedLive && { seed: seedLive }) }, simulated });
    }
  } finally {
    await proxy.close();
    await s3.stop();
  }
  return rows;
}

interface NodeOutcome {
  readonly readyAt: number;
  readonly knownAt: number;
  readonly startAt: number;
}

function figuresOf(n: number, counts: RequestCounts, nodes: readonly NodeOutcome[], startDelayMs: number, peak?: number): BarrierFigures {
  const lastReady = Math.max(...nodes.map((x) => x.readyAt));
  return {
    ...perNode(n, counts.put + counts.other, counts.get, counts.list),
    latencyMs: Math.max(...nodes.map((x) => x.knownAt)) - lastReady,
    lateNodes: nodes.filter((x) => x.knownAt > x.startAt - 100).length,
    extraDelayMs: Math.max(0, nodes[0]!.startAt - lastReady - startDelayMs),
    ...(peak !== undefined && { processPeakBytes: peak }),
  };
}

function fromSimulation(result: SimulationResult, n: number): BarrierFigures {
  return {
    ...perNode(n, result.counts.put, result.counts.get, result.counts.list),
    latencyMs: result.latencyMs,
    lateNodes: result.late,
    extraDelayMs: Math.max(0, result.extraDelayMs),
  };
}

function perNode(n: number, put: number, get: number, list: number) {
  const total = put + get + list;
  return {
    requestsPerNode: total / n,
    putPerNode: put / n,
    getPerNode: get / n,
    listPerNode: list / n,
    listShare: total > 0 ? list / total : 0,
    dollars: ((put + list) * 0.005 + get * 0.0004) / 1000,
  };
}

function describe(what: string, f: BarrierFigures): string {
  return `${what}: ${f.requestsPerNode.toFixed(2)} requests/node (LIST ${(100 * f.listShare).toFixed(1)}%), latency ${(f.latencyMs / 1000).toFixed(2)} s, $${f.dollars.toFixed(4)}`;
}
