/**
 * `npm run bench`: lockstep's timing and cost figures on this machine, each beside its baseline,
 * printed as tables and written to bench/results.json. Not part of `npm test`.
 *
 *   1. start skew at N = 2, 8, 32, 64 (local provider) vs the seed's barrier and the machine's floor
 *   2. store requests per node per barrier at N = 100, 1,000, 5,000 (arrivals over 30 s)
 *   3. barrier latency: last arrival → every node knows the members and T
 *   4. agent footprint: peak memory, agent start → ready record
 *   5. the barrier under other arrival patterns (simulated)
 *   6. results analysis throughput (bench/analysis.ts)
 *   7. the seed's analysis at its full scale, lockstep vs the seed's grep -A1 (bench/seed-analysis.ts)
 *   8. following a run: the controller's store requests per minute at N=1,000 (bench/follow.ts)
 *   9. barrier latency at scale: N = 1,000 and 10,000, simulated with S3's request times and rates
 *  10. network emulation in namespaces: round trips without and with `delay: 50ms` (bench/network.ts)
 *
 * Environment: LOCKSTEP_BENCH_ONLY=skew,requests,footprint,patterns,analysis,seed,follow,scale,network (default all),
 * LOCKSTEP_BENCH_SKEW_N=2,8,32,64, LOCKSTEP_BENCH_REPEATS=5, LOCKSTEP_BENCH_REQUEST_N=100,1000,5000,
 * LOCKSTEP_BENCH_SPREAD_MS=30000 (a shorter spread for quick runs), LOCKSTEP_BENCH_START_DELAY_MS,
 * LOCKSTEP_BENCH_LIVE_RUNS=3 (live runs per N up to 1,000; the median latency counts),
 * LOCKSTEP_BENCH_SCALE_SEEDS=8,3 (section 9: simulated runs at N=1,000 and at N=10,000; the median
 * and the worst count. One run at N=10,000 takes minutes on 2 cores: every node parses the 1 MB start record).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { benchAnalysis, type BenchAnalysisResult } from './analysis.ts';
import { benchSeedAnalysis, type BenchSeedResult } from './seed-analysis.ts';
import { patterns, simulateBarrier, type SimulationResult } from '../test/helpers/barrier-sim.ts';
import { benchFollow, type FollowResult } from './follow.ts';
import { benchFootprint, type FootprintResult } from './footprint.ts';
import { benchNetwork, type NetworkResult } from './network.ts';
import { bundleProcs } from './procs.ts';
import { benchRequests, type BarrierFigures, type RequestsRow } from './requests.ts';
import { benchSkew, type SkewRow } from './skew.ts';
import { median } from './stats.ts';

const env = process.env;
const only = new Set((env.LOCKSTEP_BENCH_ONLY ?? 'skew,requests,footprint,patterns,analysis,seed,follow,scale,network').split(',').map((s) => s.trim()));
const numbers = (value: string | undefined, fallback: number[]) => (value ? value.split(',').map(Number) : fallback);
const skewNs = numbers(env.LOCKSTEP_BENCH_SKEW_N, [2, 8, 32, 64]);
const repeats = Number(env.LOCKSTEP_BENCH_REPEATS ?? 5);
const requestNs = numbers(env.LOCKSTEP_BENCH_REQUEST_N, [100, 1000, 5000]);
const spreadMs = Number(env.LOCKSTEP_BENCH_SPREAD_MS ?? 30_000);
const skewStartDelayMs = Number(env.LOCKSTEP_BENCH_START_DELAY_MS ?? 2000);
const requestStartDelayMs = 1000;
const liveRuns = Number(env.LOCKSTEP_BENCH_LIVE_RUNS ?? 3);
const [scaleSeeds1k = 8, scaleSeeds10k = 3] = numbers(env.LOCKSTEP_BENCH_SCALE_SEEDS, [8, 3]);

const log = (line: string) => console.log(`  ${line}`);
const dir = mkdtempSync(join(tmpdir(), 'lockstep-bench-'));
const machine = {
  cores: availableParallelism(),
  cpu: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  loadAtStart: loadavg().map((l) => Number(l.toFixed(2))),
};
console.log(`lockstep bench: ${machine.cores} cores (${machine.cpu}), load ${machine.loadAtStart.join(' ')}; figures are medians, the machine may be shared\n`);

const results: {
  machine: typeof machine & { loadAtEnd?: number[] };
  startedAt: string;
  skew?: { startDelayMs: number; repeats: number; rows: SkewRow[] };
  requests?: { spreadMs: number; startDelayMs: number; rows: RequestsRow[] };
  footprint?: FootprintResult;
  patterns?: SimulationResult[];
  analysis?: BenchAnalysisResult;
  seed?: BenchSeedResult;
  follow?: FollowResult;
  scale?: ScaleRow[];
  network?: NetworkResult;
  goals?: Array<{ goal: string; value: string; met: boolean }>;
} = { machine, startedAt: new Date().toISOString() };

try {
  const procs = await bundleProcs(join(dir, 'procs'));
  if (only.has('skew')) {
    console.log(`1. start skew (local provider, ${repeats} repeats, start delay ${skewStartDelayMs} ms)`);
    results.skew = { startDelayMs: skewStartDelayMs, repeats, rows: await benchSkew({ ns: skewNs, repeats, dir, procs, startDelayMs: skewStartDelayMs, log }) };
  }
  if (only.has('requests')) {
    console.log(`\n2-3. store requests and latency per barrier (arrivals over ${spreadMs / 1000} s, start delay ${requestStartDelayMs} ms)`);
    results.requests = {
      spreadMs,
      startDelayMs: requestStartDelayMs,
      rows: await benchRequests({ ns: requestNs, spreadMs, startDelayMs: requestStartDelayMs, seedLiveMaxN: 100, liveRuns: liveRuns, liveRepeatMaxN: 1000, procs, log }),
    };
  }
  if (only.has('footprint')) {
    console.log('\n4. agent footprint');
    results.footprint = await benchFootprint({ dir, log });
  }
  if (only.has('patterns')) {
    console.log('\n5. other arrival patterns (simulated, N=1,000, S3 request times)');
    results.patterns = [];
    for (const pattern of Object.keys(patterns)) results.patterns.push(await simulateBarrier({ n: 1000, pattern }));
  }
  if (only.has('follow')) {
    console.log('\n8. following a run (N=1,000, 2 repeats, the fleet simulated in a folder store)');
    results.follow = await benchFollow({ n: 1000, repeats: 2, log });
  }
  if (only.has('scale')) {
    console.log('\n9. barrier latency at scale (simulated: S3 request times, 5,500 GET/s per prefix; arrivals over 30 s, start delay 1 s)');
    results.scale = [];
    for (const [n, seeds] of [[1000, scaleSeeds1k], [10_000, scaleSeeds10k]] as const) {
      if (seeds < 1) continue;
      const runs: SimulationResult[] = [];
      for (let seed = n; seed < n + seeds; seed++) {
        const result = await simulateBarrier({ n, spreadMs: 30_000, startDelayMs: 1000, seed });
        log(`N=${n} seed ${seed}: last arrival → all know ${sec(result.latencyMs)}, ${result.requestsPerNode.toFixed(2)} requests per node, ${result.late} late, agree ${result.agree}`);
        runs.push(result);
      }
      results.scale.push(scaleRow(n, runs));
    }
  }
  if (only.has('network')) {
    console.log('\n10. network emulation in namespaces (N=4, ping-mesh, local provider with isolation: netns)');
    results.network = await benchNetwork({ log });
  }
  if (only.has('analysis')) {
    console.log('\n6. results analysis');
    results.analysis = await benchAnalysis({ log });
  }
  if (only.has('seed')) {
    console.log("\n7. the seed's analysis (10 folders × 8 repeats × 17 to 257 nodes)");
    results.seed = await benchSeedAnalysis({ log });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

results.machine.loadAtEnd = loadavg().map((l) => Number(l.toFixed(2)));
results.goals = goals();
printTables();
writeFileSync(new URL('./results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
console.log('\nwritten: bench/results.json');

function goals(): Array<{ goal: string; value: string; met: boolean }> {
  const out: Array<{ goal: string; value: string; met: boolean }> = [];
  for (const row of results.skew?.rows ?? []) {
    if (row.n === 2) out.push({ goal: 'skew ≤ 1 ms at N=2', value: `${ms(row.lockstep.median)} ms`, met: row.lockstep.median <= 1 });
    out.push({ goal: `skew ≤ 1.5 × floor at N=${row.n}`, value: `${row.lockstepOverFloor.toFixed(2)} ×`, met: row.lockstepOverFloor <= 1.5 });
    out.push({
      goal: `  (stricter, not asked) skew ≤ 1.5 × strict floor at N=${row.n}`,
      value: `${row.lockstepOverStrictFloor.toFixed(2)} ×`,
      met: row.lockstepOverStrictFloor <= 1.5,
    });
    if (row.n === 8) out.push({ goal: 'seed-like / lockstep ≥ 10 at N=8', value: `${row.baselineOverLockstep.toFixed(0)} ×`, met: row.baselineOverLockstep >= 10 });
  }
  for (const row of results.requests?.rows ?? []) {
    const f = row.live.lockstep;
    if (row.n === 1000 && row.spreadMs === 30_000) {
      out.push({ goal: '≤ 10 requests per node at N=1,000 (live)', value: f.requestsPerNode.toFixed(2), met: f.requestsPerNode <= 10 });
      out.push({ goal: 'LISTs the minority at N=1,000 (live)', value: `${(100 * f.listShare).toFixed(1)} %`, met: f.listShare < 0.5 });
    }
    out.push({ goal: `≤ 3 s last arrival → all know, N=${row.n} (live)`, value: `${(f.latencyMs / 1000).toFixed(2)} s`, met: f.latencyMs <= 3000 });
    out.push({ goal: `≤ 3 s last arrival → all know, N=${row.n} (sim., S3 times)`, value: `${(row.simulated.lockstep.latencyMs / 1000).toFixed(2)} s`, met: row.simulated.lockstep.latencyMs <= 3000 });
  }
  if (results.seed) {
    out.push({ goal: "seed's analysis: lockstep ≥ 20 × the seed's method", value: `${results.seed.ratio.toFixed(1)} ×`, met: results.seed.ratio >= 20 });
    out.push({ goal: "seed's analysis: the same figures from both", value: results.seed.agree ? 'yes' : 'no', met: results.seed.agree });
  }
  for (const row of results.scale ?? []) {
    const goalMs = row.n >= 10_000 ? 1000 : 500;
    const over = `N=${row.n.toLocaleString('en-US')} (sim., S3 rates, ${row.seeds} seeds: median, worst)`;
    const { latencyMs: latency, requestsPerNode: requests } = row;
    out.push({
      goal: `≤ ${goalMs / 1000} s last arrival → all know, ${over}`,
      value: `${sec(latency.median)}, ${sec(latency.max)}`,
      met: latency.max <= goalMs && row.late === 0 && row.agree,
    });
    out.push({ goal: `≤ 10 requests per node, ${over}`, value: `${requests.median.toFixed(2)}, ${requests.max.toFixed(2)}`, met: requests.max <= 10 });
  }
  if (results.network && 'delayedMs' in results.network) {
    const { undelayedMs, delayedMs } = results.network;
    out.push({ goal: 'round trip < 10 ms without emulation (N=4, netns)', value: `${undelayedMs.toFixed(2)} ms`, met: undelayedMs < 10 });
    out.push({ goal: 'round trip 100–150 ms with delay: 50ms (N=4, netns)', value: `${delayedMs.toFixed(1)} ms`, met: delayedMs >= 100 && delayedMs < 150 });
  }
  if (results.follow) {
    out.push({ goal: '≤ 120 controller requests/min following N=1,000', value: results.follow.requestsPerMinute.toFixed(0), met: results.follow.requestsPerMinute <= 120 });
  }
  if (results.footprint) {
    const peak = Math.max(results.footprint.folder.peakBytes, results.footprint.s3.peakBytes);
    out.push({ goal: 'agent peak memory ≤ 60 MB (folder and S3 stores)', value: `${(peak / 1e6).toFixed(1)} MB`, met: peak <= 60e6 });
    out.push({ goal: 'agent bundle ≤ 400 KB', value: `${(results.footprint.bundleBytes / 1000).toFixed(0)} KB`, met: results.footprint.bundleBytes <= 400e3 });
  }
  return out;
}

function printTables(): void {
  if (results.skew) {
    console.log('\n1. Start skew (ms; median of repeats)');
    table(
      ['N', 'lockstep', 'seed-like', 'floor', 'strict floor', 'seed-like / lockstep', 'lockstep / floor', 'lockstep / strict floor'],
      results.skew.rows.map((r) => [
        r.n,
        ms(r.lockstep.median),
        ms(r.baseline.median),
        ms(r.floor.median),
        ms(r.strictFloor.median),
        `${r.baselineOverLockstep.toFixed(0)} ×`,
        `${r.lockstepOverFloor.toFixed(2)} ×`,
        `${r.lockstepOverStrictFloor.toFixed(2)} ×`,
      ]),
    );
    console.log('   floor: N bare processes sleeping on a timer until T; strict floor: N bare processes waiting for T as the agent does (sleepUntil)');
  }
  if (results.requests) {
    console.log(`\n2. Store requests per node per barrier (arrivals over ${results.requests.spreadMs / 1000} s)`);
    const line = (f: BarrierFigures | undefined) => (f ? `${f.requestsPerNode.toFixed(2)} (${(100 * f.listShare).toFixed(1)} % LIST)` : '—');
    table(
      ['N', 'lockstep live', 'seed-like live', 'lockstep sim.', 'seed-like sim.', 'seed / lockstep (sim.)', '$ lockstep / seed (sim.)'],
      results.requests.rows.map((r) => [
        r.n,
        line(r.live.lockstep),
        line(r.live.seed),
        line(r.simulated.lockstep),
        line(r.simulated.seed),
        `${(r.simulated.seed.requestsPerNode / r.simulated.lockstep.requestsPerNode).toFixed(1)} ×`,
        `${r.simulated.lockstep.dollars.toFixed(4)} / ${r.simulated.seed.dollars.toFixed(4)}`,
      ]),
    );
    console.log(
      "   live: s3rver, a counting proxy and all N agents (one S3 client each) share this machine's cores; the nodes pace their polls by the\n" +
        "   store's readsPerSecond (500 for an S3-compatible endpoint). sim.: the same barrier code in virtual time against S3's request times and rate (4,000 GET/s).",
    );
    console.log('\n3. Barrier latency: last arrival → every node knows members and T (s)');
    table(
      ['N', 'lockstep live', 'live runs', 'seed-like live', 'lockstep sim.', 'seed-like sim.', 'late nodes (live)', 'T after last + delay (live)', 's3rver retries (live)'],
      results.requests.rows.map((r) => [
        r.n,
        sec(r.live.lockstep.latencyMs),
        (r.live.lockstep.latencySamplesMs ?? [r.live.lockstep.latencyMs]).map((x) => (x / 1000).toFixed(2)).join(' '),
        r.live.seed ? sec(r.live.seed.latencyMs) : '—',
        sec(r.simulated.lockstep.latencyMs),
        sec(r.simulated.seed.latencyMs),
        r.live.lockstep.lateNodes,
        `${r.live.lockstep.extraDelayMs.toFixed(0)} ms`,
        r.live.lockstep.s3rverRetries ?? 0,
      ]),
    );
  }
  if (results.footprint) {
    console.log('\n4. Agent footprint');
    table(
      ['store', 'peak memory', 'agent start → ready record'],
      [
        ['(bundle)', `${(results.footprint.bundleBytes / 1000).toFixed(0)} KB`, ''],
        ['folder', `${(results.footprint.folder.peakBytes / 2 ** 20).toFixed(1)} MiB`, `${results.footprint.folder.startToReadyMs.toFixed(0)} ms`],
        ['S3 (s3rver)', `${(results.footprint.s3.peakBytes / 2 ** 20).toFixed(1)} MiB`, `${results.footprint.s3.startToReadyMs.toFixed(0)} ms`],
      ],
    );
  }
  if (results.patterns) {
    console.log('\n5. Other arrival patterns (simulated, N=1,000, start delay 1 s)');
    table(
      ['pattern', 'requests/node', 'LIST %', 'latency', 'T after last + delay', 'late nodes'],
      results.patterns.map((p) => [`${p.pattern}: ${patterns[p.pattern]?.describe ?? ''}`, p.requestsPerNode.toFixed(1), (100 * p.listShare).toFixed(1), sec(p.latencyMs), sec(Math.max(0, p.extraDelayMs)), p.late]),
    );
  }
  if (results.analysis) {
    console.log('\n6. Results analysis');
    table(['lockstep MB/s', 'grep MB/s', 'lockstep / grep'], [[results.analysis.lockstepMBps.toFixed(0), results.analysis.grepMBps.toFixed(0), `${results.analysis.ratio.toFixed(2)} ×`]]);
  }
  if (results.seed) {
    const r = results.seed;
    console.log(`\n7. The seed's analysis: ${r.folders} folders, ${r.logs} logs (s)`);
    table(
      ['lockstep', "seed's method (grep -A1)", 'seed / lockstep', 'same figures', 'lockstep import', 'lockstep results (download + analysis)'],
      [[r.analysisSeconds.toFixed(2), r.seedSeconds.toFixed(2), `${r.ratio.toFixed(1)} ×`, r.agree ? 'yes' : 'NO', r.importSeconds.toFixed(2), r.resultsSeconds.toFixed(2)]],
    );
  }
  if (results.follow) {
    const f = results.follow;
    console.log(`\n8. Following a run (N=${f.n}, ${f.repeats} repeats, ${f.followedSeconds.toFixed(0)} s)`);
    table(
      ['', 'store requests / min'],
      [
        ['lockstep (aggregates, paced)', f.requestsPerMinute.toFixed(0)],
        ['every record every 0.5 s (before)', f.fullReadPerMinute.toLocaleString('en-US')],
      ],
    );
    console.log(`   plus one full read at the end for the summary: ${f.finalReadRequests.toLocaleString('en-US')} requests`);
  }
  if (results.scale) {
    console.log('\n9. Barrier at scale (simulated: S3 request times and per-prefix rates, arrivals over 30 s, start delay 1 s)');
    console.log('   median (range) over the seeds');
    const secs = (r: Spread) => `${sec(r.median)} (${(r.min / 1000).toFixed(2)}–${(r.max / 1000).toFixed(2)})`;
    table(
      ['N', 'seeds', 'last arrival → all know', 'requests/node', 'LIST %', 'T after last + delay', 'late nodes', 'same members and T'],
      results.scale.map((r) => [
        r.n,
        r.seeds,
        secs(r.latencyMs),
        `${r.requestsPerNode.median.toFixed(2)} (${r.requestsPerNode.min.toFixed(2)}–${r.requestsPerNode.max.toFixed(2)})`,
        (100 * r.listShare).toFixed(1),
        secs(r.extraDelayMs),
        r.late,
        r.agree ? 'yes' : 'NO',
      ]),
    );
  }
  if (results.goals && results.goals.length > 0) {
    console.log('\nGoals');
    table(['goal', 'figure', 'met'], results.goals.map((g) => [g.goal, g.value, g.met ? 'yes' : 'NO']));
  }
  console.log(`\nload average at start ${machine.loadAtStart.join(' ')}, at end ${results.machine.loadAtEnd?.join(' ')}`);
}

interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** Section 9: one N over several seeds (arrival draws and request times). */
interface ScaleRow {
  readonly n: number;
  readonly seeds: number;
  readonly latencyMs: Spread;
  readonly requestsPerNode: Spread;
  readonly extraDelayMs: Spread;
  /** Median share of LISTs among the requests. */
  readonly listShare: number;
  /** Late nodes over all seeds. */
  readonly late: number;
  readonly agree: boolean;
  readonly runs: ReadonlyArray<Pick<SimulationResult, 'latencyMs' | 'requestsPerNode' | 'late' | 'extraDelayMs'>>;
}

function scaleRow(n: number, runs: readonly SimulationResult[]): ScaleRow {
  const spread = (values: number[]): Spread => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) });
  return {
    n,
    seeds: runs.length,
    latencyMs: spread(runs.map((r) => r.latencyMs)),
    requestsPerNode: spread(runs.map((r) => r.requestsPerNode)),
    extraDelayMs: spread(runs.map((r) => Math.max(0, r.extraDelayMs))),
    listShare: median(runs.map((r) => r.listShare)),
    late: runs.reduce((sum, r) => sum + r.late, 0),
    agree: runs.every((r) => r.agree),
    runs: runs.map(({ latencyMs, requestsPerNode, late, extraDelayMs }) => ({ latencyMs, requestsPerNode, late, extraDelayMs })),
  };
}

function ms(value: number): string {
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function sec(value: number): string {
  return `${(value / 1000).toFixed(2)} s`;
}

function table(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const format = (r: readonly string[]) => `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}`;
  console.log(format(cells[0]!));
  console.log(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of cells.slice(1)) console.log(format(r));
}
