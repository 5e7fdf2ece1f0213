/**
 * The barrier in virtual time: N agents run the real `awaitBarrier` code against an in-memory store
 * whose requests take S3-like times, on a clock that jumps from one timer to the next. Thousands of
 * nodes over minutes of arrivals take a second, so arrival patterns a live run cannot afford (waves,
 * stragglers) can be checked too. The tests check behaviour with it (agreement, nobody late); the
 * benchmark reads its figures (requests, latency).
 */
import { createHash } from 'node:crypto';
import { awaitBarrier, type BarrierClock, type BarrierOutcome, type BarrierTuning } from '../../src/agent/barrier.ts';
import { countingStore, noRequests, type RequestCounts } from '../../src/store/counting.ts';
import type { ListOptions, ObjectInfo, Store } from '../../src/store/store.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';

export class VirtualClock implements BarrierClock {
  private time: number;
  /** A binary heap of timers by (at, seq). */
  private readonly heap: Array<{ at: number; seq: number; wake: () => void }> = [];
  private seq = 0;

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    return new Promise((resolve) => this.push({ at: this.time + Math.max(0, ms), seq: this.seq++, wake: resolve }));
  }

  /** Runs until `done` settles: whenever every task waits on a timer, time jumps to the next one. */
  async run<T>(done: Promise<T>): Promise<T> {
    let settled = false;
    const result = done.finally(() => (settled = true));
    while (!settled) {
      await new Promise((resolve) => setImmediate(resolve));
      if (settled) break;
      const timer = this.pop();
      if (!timer) throw new Error('virtual clock: nothing left to wait for, but not done');
      this.time = Math.max(this.time, timer.at);
      timer.wake();
    }
    return result;
  }

  private before(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(timer: { at: number; seq: number; wake: () => void }): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): { at: number; seq: number; wake: () => void } | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && this.before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

export interface LatencyModel {
  readonly putMs: number;
  readonly getMs: number;
  /** A LIST page: base plus per key. */
  readonly listPageMs: number;
  readonly listPerKeyMs: number;
  /** Reads (GET, LIST page) per second one prefix serves; more wait their turn. */
  readonly readsPerSecondPerPrefix?: number;
  /** Writes (PUT) per second one prefix serves. */
  readonly writesPerSecondPerPrefix?: number;
}

/**
 * Rough S3 figures from within a region (medians; each request varies ±50%), and its request rates:
 * 5,500 reads and 3,500 writes per second per prefix (here: per folder of the key).
 */
export const S3_LATENCY: LatencyModel = { putMs: 30, getMs: 15, listPageMs: 30, listPerKeyMs: 0.05, readsPerSecondPerPrefix: 5500, writesPerSecondPerPrefix: 3500 };

/** A prefix's rate as a queue: each request takes the next free slot, 1/rate apart. */
function rateLimiter(clock: VirtualClock, perSecond: number | undefined): (key: string) => Promise<void> {
  const nextFree = new Map<string, number>();
  return async (key) => {
    if (!perSecond) return;
    const prefix = key.slice(0, key.lastIndexOf('/') + 1);
    const at = Math.max(clock.now(), nextFree.get(prefix) ?? 0);
    nextFree.set(prefix, at + 1000 / perSecond);
    if (at > clock.now()) await clock.sleep(at - clock.now());
  };
}

/** A store in memory whose requests take virtual time (count them with `countingStore`). */
export function memoryStore(clock: VirtualClock, latency: LatencyModel, random: () => number = Math.random): Store {
  const objects = new Map<string, { body: Uint8Array; at: number }>();
  // Thousands of nodes LIST the same unchanged prefix (the seed's barrier): list it once per change.
  const listings = new Map<string, ObjectInfo[]>();
  const wait = (ms: number) => clock.sleep(ms * (0.5 + random()));
  const readTurn = rateLimiter(clock, latency.readsPerSecondPerPrefix);
  const writeTurn = rateLimiter(clock, latency.writesPerSecondPerPrefix);
  return {
    locator: 'memory://',
    readsPerSecond: 4000,
    readRatePerPrefix: latency.readsPerSecondPerPrefix !== undefined,
    async put(key, body) {
      await writeTurn(key);
      await wait(latency.putMs);
      objects.set(key, { body: typeof body === 'string' ? Buffer.from(body) : body, at: clock.now() });
      listings.clear();
    },
    async putIfAbsent(key, body) {
      await writeTurn(key);
      await wait(latency.putMs);
      if (objects.has(key)) return false;
      objects.set(key, { body: typeof body === 'string' ? Buffer.from(body) : body, at: clock.now() });
      listings.clear();
      return true;
    },
    async putFile() {
      throw new Error('not in the simulation');
    },
    async get(key) {
      await readTurn(key);
      await wait(latency.getMs);
      return objects.get(key)?.body;
    },
    async getFile() {
      throw new Error('not in the simulation');
    },
    async list(prefix: string, options?: ListOptions): Promise<ObjectInfo[]> {
      let listing = listings.get(prefix);
      if (!listing) {
        const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
        listing = keys.map((key) => ({ key, size: objects.get(key)?.body.length ?? 0, lastModified: new Date(objects.get(key)?.at ?? 0) }));
        listings.set(prefix, listing);
      }
      const after = options?.startAfter;
      const from = after === undefined ? listing : listing.filter((o) => o.key > after);
      const found = from.slice(0, options?.maxKeys);
      const pages = Math.max(1, Math.ceil(found.length / 1000));
      for (let page = 0; page < pages; page++) {
        await readTurn(prefix);
        await wait(latency.listPageMs + Math.min(1000, found.length - page * 1000) * latency.listPerKeyMs);
      }
      // What the first page saw is what the LIST returns (S3 pages are read one after another).
      return found;
    },
    async delete(key) {
      objects.delete(key);
      listings.clear();
    },
    async dispose() {},
  };
}

/** Arrival offsets (ms after the first possible arrival) for N nodes. */
export type ArrivalPattern = (n: number, random: () => number) => number[];

export const patterns: Record<string, { describe: string; arrivals: ArrivalPattern }> = {
  uniform30: { describe: 'uniform over 30 s (the issue\'s case)', arrivals: (n, r) => Array.from({ length: n }, () => r() * 30_000) },
  normal: {
    describe: 'bell-shaped boots: normal, sd 8 s',
    arrivals: (n, r) => Array.from({ length: n }, () => Math.max(0, 30_000 + 8_000 * gaussian(r))),
  },
  tail: {
    describe: 'long tail: lognormal, median 20 s',
    arrivals: (n, r) => Array.from({ length: n }, () => Math.min(300_000, 20_000 * Math.exp(0.5 * gaussian(r)))),
  },
  waves: {
    describe: 'two launch waves: half over 10 s, the rest 40 s later within 2 s',
    arrivals: (n, r) => Array.from({ length: n }, (_, i) => (i < n / 2 ? r() * 10_000 : 50_000 + r() * 2_000)),
  },
  straggler: {
    describe: 'all but one over 30 s, one 60 s later',
    arrivals: (n, r) => Array.from({ length: n }, (_, i) => (i === n - 1 ? 90_000 : r() * 30_000)),
  },
  flood: {
    describe: 'a trickle of half the nodes over 30 s, then the other half within 1 s',
    arrivals: (n, r) => Array.from({ length: n }, (_, i) => (i < n / 2 ? r() * 30_000 : 30_000 + r() * 1_000)),
  },
  burst: { describe: 'all within 0.5 s (a later repeat)', arrivals: (n, r) => Array.from({ length: n }, () => r() * 500) },
};

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export interface SimulationResult {
  readonly n: number;
  readonly pattern: string;
  readonly requestsPerNode: number;
  readonly listShare: number;
  readonly counts: RequestCounts;
  /** Last arrival → every node knows members and T (ms). */
  readonly latencyMs: number;
  /** Nodes that knew T less than `marginMs` before T. */
  readonly late: number;
  readonly watchers: number;
  /** How much later than the latest readyAt + start delay T came (surprising arrivals move it). */
  readonly extraDelayMs: number;
  /** Every node got the same members and the same T. */
  readonly agree: boolean;
}

export interface SimulationOptions {
  readonly n: number;
  /** Arrivals uniform over this many ms (instead of a named pattern). */
  readonly spreadMs?: number;
  /** Whose barrier: lockstep's, or the seed's (LIST every 0.5 s until N, then start). */
  readonly barrier?: 'lockstep' | 'seed';
  readonly pattern?: string;
  readonly startDelayMs?: number;
  readonly latency?: LatencyModel;
  readonly tuning?: Partial<BarrierTuning>;
  /** A node needs this long between learning T and T (hosts files, process ready). */
  readonly marginMs?: number;
  readonly seed?: number;
}

export async function simulateBarrier(options: SimulationOptions): Promise<SimulationResult> {
  const pattern = options.spreadMs !== undefined ? `uniform over ${options.spreadMs / 1000} s` : (options.pattern ?? 'uniform30');
  const random = seededRandom(options.seed ?? 1);
  const clock = new VirtualClock();
  const counts = noRequests();
  const store = countingStore(memoryStore(clock, options.latency ?? S3_LATENCY, random), counts);
  const spread = options.spreadMs;
  const arrivals = spread !== undefined ? Array.from({ length: options.n }, () => random() * spread) : patterns[pattern]!.arrivals(options.n, random);
  const perNode = arrivals.map(() => noRequests());
  // What the figures need of each outcome: at N=10,000, 10,000 start records of 10,000 members each
  // would not fit in memory.
  const outcomes = Promise.all(
    arrivals.map(async (offset, i): Promise<NodeOutcome> => {
      await clock.sleep(offset);
      const own = countingStore(store, perNode[i]!);
      if (options.barrier === 'seed') return summarise(await seedBarrier(own, clock, i, options.n));
      return summarise(await awaitBarrier({
        store: own,
        runId: 'sim',
        repeat: 1,
        self: { instanceId: `i-${i.toString(16).padStart(8, '0')}`, address: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` },
        expected: options.n,
        timeoutMs: 600_000,
        startDelayMs: options.startDelayMs ?? 1000,
        tuning: options.tuning,
        clock,
        measureClockOffset: false,
      }));
    }),
  );
  const done = await clock.run(outcomes);
  const lastArrival = Math.max(...done.map((o) => o.readyAt));
  const total = counts.put + counts.get + counts.list + counts.delete;
  const margin = options.marginMs ?? 100;
  if (process.env.SIM_DETAIL) {
    const buckets = new Map<number, { n: number; get: number }>();
    arrivals.forEach((a, i) => {
      const b = Math.floor(a / 5000) * 5;
      const e = buckets.get(b) ?? { n: 0, get: 0 };
      e.n++;
      e.get += perNode[i]!.get;
      buckets.set(b, e);
    });
    console.log([...buckets.entries()].sort((x, y) => x[0] - y[0]).map(([b, e]) => `${b}s:${(e.get / e.n).toFixed(1)}`).join(' '));
  }
  return {
    n: options.n,
    pattern,
    requestsPerNode: total / options.n,
    listShare: counts.list / total,
    counts,
    latencyMs: Math.max(...done.map((o) => o.knownAt)) - lastArrival,
    late: options.barrier === 'seed' ? 0 : done.filter((o) => o.knownAt > o.startAt - margin).length,
    watchers: done.filter((o) => o.watched).length,
    extraDelayMs: options.barrier === 'seed' ? 0 : done[0]!.startAt - lastArrival - (options.startDelayMs ?? 1000),
    agree: done.every((o) => o.startAt === done[0]!.startAt && o.members === done[0]!.members),
  };
}

interface NodeOutcome {
  readonly readyAt: number;
  readonly knownAt: number;
  readonly startAt: number;
  /** A digest of the member ids in rank order. */
  readonly members: string;
  readonly watched: boolean;
}

function summarise(outcome: BarrierOutcome): NodeOutcome {
  const members = createHash('sha256');
  for (const m of outcome.start.members) members.update(`${m.instanceId},`);
  return { readyAt: outcome.ready.readyAt, knownAt: outcome.knownAt, startAt: outcome.start.startAt, members: members.digest('hex'), watched: outcome.watched };
}

/** The seed's barrier on the simulated store, shaped like lockstep's outcome (it starts when it sees N). */
async function seedBarrier(store: Store, clock: VirtualClock, i: number, n: number): Promise<BarrierOutcome> {
  const ready = { instanceId: `i-${i.toString(16).padStart(8, '0')}`, address: `10.0.0.${i}`, readyAt: clock.now() };
  await store.put(`seed/ready/${ready.instanceId}`, JSON.stringify(ready));
  for (;;) {
    const listed = await store.list('seed/ready/');
    if (listed.length >= n) break;
    await clock.sleep(500);
  }
  const knownAt = clock.now();
  return { start: { members: [], startAt: knownAt, writtenBy: ready.instanceId, quorum: false }, ready, knownAt, rank: 0, watched: true };
}

