import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadLocalRun } from '../src/results/local-run.ts';
import { extractMetrics } from '../src/results/metrics.ts';
import type { MetricSpecInput } from '../src/spec/metrics.ts';

/**
 * Analysis throughput: generates a run's worth of logs (default ~1 GB over 16 nodes), extracts a
 * regex metric and a JSON-line metric from them with lockstep, and runs `grep -c` for the same two
 * patterns over the same files in the same run. Goal: lockstep at least half of grep's MB/s.
 */

export interface BenchAnalysisOptions {
  /** Total bytes of logs to generate; default 1 GB. */
  readonly bytes?: number;
  /** Nodes (files) the bytes are spread over; default 16. */
  readonly nodes?: number;
  /** Timed runs of each tool, alternating; the best of each counts. Default 3. */
  readonly rounds?: number;
  readonly log?: (line: string) => void;
}

export interface BenchAnalysisResult {
  /** lockstep as `lockstep results` runs it (worker threads when there is much to read). */
  readonly lockstepMBps: number;
  /** lockstep scanning on one thread only. */
  readonly singleThreadMBps: number;
  readonly grepMBps: number;
  /** lockstep ÷ grep, wall clock (the goal: ≥ 0.5). */
  readonly ratio: number;
  /** lockstep (1 thread) ÷ grep in MB per CPU second: steadier than `ratio` on a busy machine. */
  readonly cpuRatio: number;
}

const METRICS: MetricSpecInput[] = [
  { name: 'commit_ms', regex: 'committed in (?<value>\\d+(?:\\.\\d+)?) ms', unit: 'ms' },
  { name: 'throughput_ops', json: true },
];
const GREP_PATTERNS = ['committed in [0-9]+(\\.[0-9]+)? ms', '"throughput_ops"'];

export async function benchAnalysis(options: BenchAnalysisOptions = {}): Promise<BenchAnalysisResult> {
  const totalBytes = options.bytes ?? 1e9;
  const nodes = options.nodes ?? 16;
  const rounds = options.rounds ?? 3;
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-bench-analysis-'));
  try {
    const files = await generateRun(dir, totalBytes, nodes);
    const bytes = totalBytes;
    log(`analysis: ${(bytes / 1e6).toFixed(0)} MB of logs in ${nodes} files`);

    let grepSeconds = Infinity;
    let grepCpu = Infinity;
    let grepLines = 0;
    let lockstepSeconds = Infinity;
    let singleSeconds = Infinity;
    let singleCpu = Infinity;
    let lockstepSamples = 0;
    const extract = async (workers?: number) => {
      const { metrics } = await extractMetrics(await loadLocalRun(dir), METRICS, { workers });
      return metrics.reduce((total, m) => total + m.repeats.reduce((t, r) => t + r.samples, 0), 0);
    };
    for (let round = 0; round < rounds; round++) {
      const g = await timed(() => grepCount(files));
      grepSeconds = Math.min(grepSeconds, g.seconds);
      grepCpu = Math.min(grepCpu, g.value.cpuSeconds);
      grepLines = g.value.lines;
      const l = await timed(() => extract());
      lockstepSeconds = Math.min(lockstepSeconds, l.seconds);
      lockstepSamples = l.value;
      const one = await timed(() => extract(0));
      singleSeconds = Math.min(singleSeconds, one.seconds);
      singleCpu = Math.min(singleCpu, one.cpuSeconds);
    }
    const lockstepMBps = bytes / 1e6 / lockstepSeconds;
    const singleThreadMBps = bytes / 1e6 / singleSeconds;
    const grepMBps = bytes / 1e6 / grepSeconds;
    const ratio = lockstepMBps / grepMBps;
    log(`analysis: lockstep            ${lockstepMBps.toFixed(0)} MB/s (${lockstepSamples} samples, ${lockstepSeconds.toFixed(2)} s)`);
    log(`analysis: lockstep (1 thread) ${singleThreadMBps.toFixed(0)} MB/s (${singleSeconds.toFixed(2)} s; ${(bytes / 1e6 / singleCpu).toFixed(0)} MB per CPU second)`);
    log(`analysis: grep -c             ${grepMBps.toFixed(0)} MB/s (${grepLines} lines, ${grepSeconds.toFixed(2)} s; ${(bytes / 1e6 / grepCpu).toFixed(0)} MB per CPU second)`);
    log(`analysis: load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} CPUs (wall-clock figures are only comparable on a quiet machine)`);
    const cpuRatio = grepCpu / singleCpu;
    log(`analysis: ratio ${ratio.toFixed(2)} (goal ≥ 0.50)${ratio >= 0.5 ? '' : '  BELOW GOAL'}; per CPU second ${cpuRatio.toFixed(2)}`);
    if (lockstepSamples !== grepLines) log(`analysis: WARNING lockstep found ${lockstepSamples} samples, grep ${grepLines} lines`);
    return { lockstepMBps, singleThreadMBps, grepMBps, ratio, cpuRatio };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A downloaded run's layout with one stdout.log per node, `totalBytes` in all. */
async function generateRun(dir: string, totalBytes: number, nodes: number): Promise<string[]> {
  await writeFile(
    join(dir, 'manifest.json'),
    JSON.stringify({ formatVersion: 1, runId: 'bench', name: 'bench', instances: nodes, repeats: 1, params: {}, specSource: '' }),
  );
  const perNode = Math.ceil(totalBytes / nodes);
  const blocks = Array.from({ length: 8 }, (_, i) => Buffer.from(logBlock(i, 1 << 20)));
  const files: string[] = [];
  for (let rank = 0; rank < nodes; rank++) {
    const nodeDir = join(dir, 'repeat-1', `rank-${rank}`);
    await mkdir(nodeDir, { recursive: true });
    const file = join(nodeDir, 'stdout.log');
    const out = createWriteStream(file);
    let written = 0;
    for (let b = rank; written < perNode; b++) {
      const block = blocks[b % blocks.length]!;
      written += block.length;
      if (!out.write(block)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    files.push(file);
  }
  return files;
}

/** About `size` bytes of whole log lines like a replica's: mostly debug noise, some metric lines. */
function logBlock(seed: number, size: number): string {
  let state = seed * 7919 + 1;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const time = `2025-01-01T00:${String(Math.floor(i / 600) % 60).padStart(2, '0')}:${String(Math.floor(i / 10) % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z`;
    let line: string;
    const kind = next();
    if (kind < 0.15) line = `${time} INFO  [pool-1-thread-2] Replica 3: round ${i} committed in ${(5 + next() * 20).toFixed(3)} ms (batch=64)`;
    else if (kind < 0.17) line = JSON.stringify({ metric: 'throughput_ops', value: Math.round(next() * 50000) / 10, round: i });
    else if (kind < 0.2) line = `${time} WARN  [netty-1] peer 127.0.1.${Math.floor(next() * 64)} slow, retransmissions=${Math.floor(next() * 40)}`;
    else line = `${time} DEBUG [netty-${Math.floor(next() * 4)}] Replica 3: sent ECHO(round=${i}) to 127.0.1.${Math.floor(next() * 64)}:7000 (${Math.floor(next() * 900 + 100)} bytes)`;
    lines.push(line);
    length += line.length + 1;
  }
  return lines.join('\n') + '\n';
}

/** `grep -c` over the files (run by bash, whose `times` tells grep's CPU time): matching lines and CPU seconds. */
async function grepCount(files: readonly string[]): Promise<{ lines: number; cpuSeconds: number }> {
  const args = ['-c', '-E', ...GREP_PATTERNS.flatMap((p) => ['-e', p]), ...files];
  const script = 'grep "$@"; status=$?; times >&2; [ $status -le 1 ]';
  const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'grep', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ stdout: out, stderr: err }) : reject(new Error(`grep failed (${code}): ${err}`))));
  });
  const lines = stdout
    .trim()
    .split('\n')
    .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(':') + 1)), 0);
  // `times`: the shell's user and system time, then its children's: `0m0.812s 0m0.200s`.
  const children = stderr.trim().split('\n').at(-1) ?? '';
  const cpuSeconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce((total, m) => total + Number(m[1]) * 60 + Number(m[2]), 0);
  return { lines, cpuSeconds };
}

/** Wall-clock seconds of `work`, and this process's CPU seconds (every thread, so workers too). */
async function timed<T>(work: () => Promise<T>): Promise<{ value: T; seconds: number; cpuSeconds: number }> {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const value = await work();
  const used = process.cpuUsage(cpu);
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9, cpuSeconds: (used.user + used.system) / 1e6 };
}

// `node --import tsx bench/analysis.ts [megabytes]`
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const megabytes = Number(process.argv[2] ?? 1000);
  await benchAnalysis({ bytes: megabytes * 1e6 });
}
