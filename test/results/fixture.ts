import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import type { FailureRecord, NodeResult, ReadyRecord, RunManifest, StartRecord } from '../../src/core/manifest.ts';
import { putJson, type Store } from '../../src/store/store.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';

/**
 * Writes a run into a store in the real layout, the way agents would have: manifest, ready and
 * start records, and per node result.json, stdout.log, stderr.log and a collected file with
 * realistic log lines. Returns what was written, so tests can compute the expected figures on their own.
 */

export const METRICS = [
  { name: 'commit_ms', regex: 'committed in (?<value>\\d+(?:\\.\\d+)?) ms', unit: 'ms' },
  { name: 'throughput_ops', json: true, unit: 'ops/s' },
  { name: 'retransmits', regex: 'retransmissions=(?<value>\\d+)', file: 'stderr.log', perNode: 'last' },
  { name: 'bytes_out', regex: '^bytes_out (?<value>\\d+)$', file: 'stats/summary.txt', perNode: 'max', unit: 'B' },
] as const;

export interface FakeNode {
  readonly rank: number;
  /** Undefined: the node uploaded no result (it went missing). */
  readonly result?: NodeResult;
  /** Metric name → the samples written into this node's files, in order. */
  readonly samples: Record<string, number[]>;
  /** Files written (name within the node folder → content). */
  readonly files: Record<string, string>;
}

export interface FakeRepeat {
  readonly repeat: number;
  readonly nodes: FakeNode[];
  readonly start: StartRecord;
  readonly failures: FailureRecord[];
}

export interface FakeRun {
  readonly runId: string;
  readonly manifest: RunManifest;
  readonly repeats: FakeRepeat[];
  /** Every key written, with its content. */
  readonly objects: Map<string, string>;
}

export interface FakeRunOptions {
  readonly runId?: string;
  readonly name?: string;
  readonly instances?: number;
  readonly repeats?: number;
  readonly seed?: number;
  /** Extra params recorded in the manifest (for sweeps). */
  readonly params?: Record<string, string | number | boolean>;
  /** [repeat, rank] pairs whose command fails (exit 1). */
  readonly failedNodes?: ReadonlyArray<readonly [number, number]>;
  /** [repeat, rank] pairs that upload nothing but a failure record. */
  readonly missingNodes?: ReadonlyArray<readonly [number, number]>;
  /** Scales the commit latencies (so sweep points differ). */
  readonly latencyScale?: number;
  /** Metric lines per node and repeat (noise lines are 4× as many). */
  readonly linesPerNode?: number;
}


export async function writeFakeRun(store: Store, options: FakeRunOptions = {}): Promise<FakeRun> {
  const runId = options.runId ?? 'r-20250101-000000-test';
  const n = options.instances ?? 4;
  const repeatCount = options.repeats ?? 3;
  const rand = seededRandom(options.seed ?? 42);
  const linesPerNode = options.linesPerNode ?? 40;
  const scale = options.latencyScale ?? 1;
  const objects = new Map<string, string>();
  const put = async (key: string, text: string) => {
    objects.set(key, text);
    await store.put(key, text);
  };
  const putRecord = async (key: string, value: unknown) => {
    objects.set(key, JSON.stringify(value, null, 2) + '\n');
    await putJson(store, key, value);
  };

  const specSource = stringify({
    name: options.name ?? 'anytrust-dkg',
    instances: n,
    repeats: repeatCount,
    run: 'java -jar run.jar {{rank}} {{hostsFile}} {{params.atSize}} {{runId}} {{params.protocol}}',
    params: { atSize: 38, protocol: 'normal', ...options.params },
    metrics: METRICS,
  });
  const manifest: RunManifest = {
    formatVersion: 1,
    runId,
    name: options.name ?? 'anytrust-dkg',
    createdAt: '2025-01-01T00:00:00.000Z',
    instances: n,
    minInstances: n,
    repeats: repeatCount,
    run: 'java -jar run.jar {{rank}} {{hostsFile}} {{params.atSize}} {{runId}} {{params.protocol}}',
    params: { atSize: 38, protocol: 'normal', ...options.params },
    groups: [],
    collect: ['stats'],
    startDelayMs: 1000,
    timeouts: { barrierMs: 600_000, setupMs: 1_800_000, runMs: 1_800_000, instanceMs: 7_200_000 },
    expiresAt: '2025-01-01T02:00:00.000Z',
    terminateWhenDone: true,
    provider: 'local',
    specSource,
  };
  await putRecord(layout.manifest(runId), manifest);

  const repeats: FakeRepeat[] = [];
  for (let repeat = 1; repeat <= repeatCount; repeat++) {
    const base = 1_735_689_600_000 + repeat * 120_000;
    const members: ReadyRecord[] = Array.from({ length: n }, (_, rank) => ({
      instanceId: `i-${String(rank).padStart(4, '0')}`,
      address: `127.0.1.${rank + 1}`,
      readyAt: base + rand() * 3000 + rand() / 1000,
    }));
    for (const member of members) await putRecord(layout.ready(runId, repeat, member.instanceId), member);
    const lastReady = Math.max(...members.map((m) => m.readyAt));
    const start: StartRecord = { members, startAt: lastReady + 1000, writtenBy: members[0]!.instanceId, quorum: false };
    await putRecord(layout.start(runId, repeat), start);

    const nodes: FakeNode[] = [];
    const failures: FailureRecord[] = [];
    for (let rank = 0; rank < n; rank++) {
      const member = members[rank]!;
      const prefix = layout.node(runId, repeat, rank);
      if (options.missingNodes?.some(([r, k]) => r === repeat && k === rank)) {
        const failure: FailureRecord = {
          instanceId: member.instanceId,
          repeat,
          stage: 'run',
          error: 'instance stopped answering',
          at: new Date(start.startAt + 5000).toISOString(),
        };
        failures.push(failure);
        await putRecord(layout.failure(runId, repeat, member.instanceId), failure);
        nodes.push({ rank, samples: {}, files: {} });
        continue;
      }
      const failed = options.failedNodes?.some(([r, k]) => r === repeat && k === rank) ?? false;
      const samples: Record<string, number[]> = { commit_ms: [], throughput_ops: [], retransmits: [], bytes_out: [] };
      const stdout: string[] = [];
      const clock = (i: number) => new Date(start.startAt + i * 7).toISOString();
      stdout.push(`${clock(0)} INFO  [main] Replica ${rank} of ${n} starting, hosts=hosts.config atSize=38 sid=${runId}`);
      for (let i = 0; i < linesPerNode; i++) {
        for (let k = 0; k < 4; k++) {
          stdout.push(`${clock(i)} DEBUG [netty-${k}] Replica ${rank}: sent ECHO(round=${i}) to 127.0.1.${((rank + k) % n) + 1}:7000 (${Math.floor(rand() * 900 + 100)} bytes)`);
        }
        const latency = Math.round((5 + rand() * 20) * scale * 1000) / 1000;
        samples.commit_ms!.push(latency);
        stdout.push(`${clock(i)} INFO  [pool-1-thread-2] Replica ${rank}: round ${i} committed in ${latency} ms (batch=64)`);
        if (i % 10 === 9) {
          const ops = Math.round(rand() * 50_000) / 10;
          samples.throughput_ops!.push(ops);
          stdout.push(JSON.stringify({ metric: 'throughput_ops', value: ops, round: i }));
          stdout.push(JSON.stringify({ metric: 'queue_depth', value: Math.floor(rand() * 10) }));
          stdout.push(`${clock(i)} INFO  [main] reporting throughput_ops for round ${i}`);
        }
      }
      stdout.push(`${clock(linesPerNode)} INFO  [main] Replica ${rank} done`);
      const stderr: string[] = [];
      for (let i = 0; i < 5; i++) {
        const count = Math.floor(rand() * 40);
        samples.retransmits!.push(count);
        stderr.push(`WARN [netty-1] peer 127.0.1.${((rank + 1) % n) + 1} slow, retransmissions=${count}`);
      }
      if (failed) stderr.push('Exception in thread "main" java.lang.IllegalStateException: adversary detected');
      const bytesOut = Math.floor(rand() * 5_000_000);
      samples.bytes_out!.push(bytesOut);
      const summary = `rounds ${linesPerNode}\nbytes_out ${bytesOut}\nbytes_in ${Math.floor(rand() * 5_000_000)}\n`;

      const readyAt = member.readyAt;
      const barrierAt = lastReady + rand() * 80;
      const scheduledStartAt = start.startAt;
      const startedAt = scheduledStartAt + rand() * 0.9;
      const durationMs = 800 + rand() * 1500;
      const result: NodeResult = {
        runId,
        repeat,
        rank,
        n,
        instanceId: member.instanceId,
        address: member.address,
        groups: [],
        params: { atSize: 38, protocol: 'normal' },
        command: `java -jar run.jar ${rank} hosts.config 38 ${runId} normal`,
        outcome: failed ? 'failed' : 'success',
        exitCode: failed ? 1 : 0,
        signal: null,
        timedOut: false,
        readyAt,
        barrierAt,
        scheduledStartAt,
        startedAt,
        endedAt: startedAt + durationMs,
        durationMs,
        barrierWaitMs: barrierAt - readyAt,
        cpuUserMs: 200 + rand() * 900,
        cpuSystemMs: 20 + rand() * 90,
        peakMemoryBytes: Math.floor(80e6 + rand() * 200e6),
        network: { interface: 'eth0', rxBytes: Math.floor(rand() * 4e6), txBytes: Math.floor(rand() * 4e6) },
        files: ['stats/summary.txt'],
      };
      const files = {
        [nodeFiles.stdout]: stdout.join('\n') + '\n',
        [nodeFiles.stderr]: stderr.join('\n') + '\n',
        'files/stats/summary.txt': summary,
      };
      for (const [name, text] of Object.entries(files)) await put(prefix + name, text);
      await putRecord(prefix + nodeFiles.result, result);
      nodes.push({ rank, result, samples, files });
    }
    repeats.push({ repeat, nodes, start, failures });
  }
  return { runId, manifest, repeats, objects };
}

export async function tempDir(prefix = 'lockstep-results-'): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(process.env.LOCKSTEP_TEST_ROOT ?? tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A store that counts the calls made through it (to check what a download fetched). */
export function countingStore(store: Store): Store & { counts: { get: number; getFile: number; list: number }; fetchedKeys: string[] } {
  const counts = { get: 0, getFile: 0, list: 0 };
  const fetchedKeys: string[] = [];
  return {
    locator: store.locator,
    readsPerSecond: store.readsPerSecond,
    counts,
    fetchedKeys,
    put: (key, body) => store.put(key, body),
    putIfAbsent: (key, body) => store.putIfAbsent(key, body),
    putFile: (key, path) => store.putFile(key, path),
    get: (key) => {
      counts.get++;
      fetchedKeys.push(key);
      return store.get(key);
    },
    getFile: (key, path) => {
      counts.getFile++;
      fetchedKeys.push(key);
      return store.getFile(key, path);
    },
    list: (prefix, options) => {
      counts.list++;
      return store.list(prefix, options);
    },
    delete: (key) => store.delete(key),
    dispose: () => store.dispose(),
  };
}

/** Independent reference statistics for tests (kept apart from src/results/stats.ts on purpose). */
export const reference = {
  sorted: (xs: readonly number[]) => [...xs].sort((a, b) => a - b),
  mean: (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length,
  /** Linear interpolation between closest ranks (numpy's default). */
  quantile(xs: readonly number[], q: number): number {
    const s = reference.sorted(xs);
    const h = (s.length - 1) * q;
    const lo = Math.floor(h);
    return s[lo]! + (h - lo) * ((s[Math.min(lo + 1, s.length - 1)] ?? s[lo]!) - s[lo]!);
  },
  sd(xs: readonly number[]): number {
    const m = reference.mean(xs);
    return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
  },
  /** Two-sided 95% Student's t critical values from a printed table. */
  t975: { 1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 9: 2.2622, 10: 2.2281, 29: 2.0452, 30: 2.0423 } as Record<number, number>,
};

/** A 95% CI is centred on `mean` with half-width `half` (relative 1e-4: the t table has 5 digits). */
export function expectCi(ci: readonly [number, number], mean: number, half: number): void {
  const centre = (ci[0] + ci[1]) / 2;
  const width = (ci[1] - ci[0]) / 2;
  if (Math.abs(centre - mean) > 1e-9 * Math.max(1, Math.abs(mean)) || Math.abs(width - half) > 1e-4 * half) {
    throw new Error(`Expected the CI [${ci[0]}, ${ci[1]}] to be ${mean} ± ${half}`);
  }
}

/** RFC 4180 CSV into records keyed by the header (test's own parser). */
export function parseCsv(text: string): Array<Record<string, string>> {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else field += c;
  }
  const [header, ...rows] = records;
  return rows.map((row) => Object.fromEntries(header!.map((name, i) => [name, row[i] ?? ''])));
}
