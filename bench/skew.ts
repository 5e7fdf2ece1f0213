/**
 * Start skew on this machine: lockstep (a real local run: agents as processes, the folder store,
 * the barrier, the gate at T), the seed's barrier (bare processes that LIST every 0.5 s and start
 * when they see N), and the floor (bare processes that only sleep until one common time).
 * Skew = latest recorded start − earliest, per repeat; the median over the repeats counts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runExperiment } from '../src/controller/run.ts';
import { loadSpec } from '../src/spec/load.ts';
import { outputOf, startNode, type ProcName } from './procs.ts';
import { median, type Sampled } from './stats.ts';

export interface SkewOptions {
  readonly ns: readonly number[];
  readonly repeats: number;
  readonly dir: string;
  readonly procs: Record<ProcName, string>;
  readonly startDelayMs: number;
  readonly log: (line: string) => void;
}

export interface SkewRow {
  readonly n: number;
  /** Recorded start skew, ms. */
  readonly lockstep: Sampled;
  readonly baseline: Sampled;
  /** The floor as the issue defines it: N bare processes that sleep on a plain timer until T. */
  readonly floor: Sampled;
  /** A stricter floor: N bare processes that wait for T as the agent does (`sleepUntil`), nothing else. */
  readonly strictFloor: Sampled;
  readonly baselineOverLockstep: number;
  readonly lockstepOverFloor: number;
  readonly lockstepOverStrictFloor: number;
}


export async function benchSkew(options: SkewOptions): Promise<SkewRow[]> {
  const rows: SkewRow[] = [];
  for (const n of options.ns) {
    // Interleaved, so that the load other work puts on the machine falls on all three alike.
    const lockstep: number[] = [];
    const baseline: number[] = [];
    const timerFloor: number[] = [];
    const strictFloor: number[] = [];
    lockstep.push(...(await lockstepSkews(n, options)));
    for (let r = 0; r < options.repeats; r++) {
      timerFloor.push(await floorSkew(n, 'timer', options));
      strictFloor.push(await floorSkew(n, 'lockstep', options));
      baseline.push(await seedSkew(n, r, options));
    }
    const row: SkewRow = {
      n,
      lockstep: sampled(lockstep),
      baseline: sampled(baseline),
      floor: sampled(timerFloor),
      strictFloor: sampled(strictFloor),
      baselineOverLockstep: median(baseline) / median(lockstep),
      lockstepOverFloor: median(lockstep) / median(timerFloor),
      lockstepOverStrictFloor: median(lockstep) / median(strictFloor),
    };
    options.log(
      `skew N=${n}: lockstep ${fmt(row.lockstep.median)} ms, seed-like ${fmt(row.baseline.median)} ms, floor ${fmt(row.floor.median)} ms (strict ${fmt(row.strictFloor.median)} ms)`,
    );
    rows.push(row);
  }
  return rows;
}

function sampled(values: readonly number[]): Sampled {
  return { median: median(values), samples: [...values] };
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

/** One local run of N nodes with `repeats` repeats: the skew of each repeat from the nodes' result records. */
async function lockstepSkews(n: number, options: SkewOptions): Promise<number[]> {
  const dir = join(options.dir, `lockstep-${n}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'spec.yaml'),
    [
      'name: bench-skew',
      `instances: ${n}`,
      `repeats: ${options.repeats}`,
      // A program that outlives the start, as experiments do: only starting falls in the skew window
      // (with /bin/true the commands' ends and the agents' uploads would land in it too).
      'run: sleep 1',
      `startDelay: ${options.startDelayMs}ms`,
      'timeouts:',
      '  barrier: 5m',
      '  run: 1m',
      '  instance: 30m',
    ].join('\n'),
  );
  try {
    const outcome = await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), store: join(dir, 'store'), home: join(dir, 'home'), pollIntervalMs: 3000 });
    if (!outcome.ok) {
      const failures = outcome.status.repeats.flatMap((r) => r.failures.map((f) => `repeat ${r.repeat} ${f.instanceId}: ${f.error}`));
      throw new Error(`the local run of ${n} nodes ended ${outcome.status.state} (${outcome.lostInstances.length} instances lost) ${failures.join('; ')}`);
    }
    return outcome.status.repeats.map((r) => {
      const starts = r.results.map((x) => x.startedAt);
      if (starts.length !== n) throw new Error(`repeat ${r.repeat} of N=${n} has ${starts.length} results`);
      return Math.max(...starts) - Math.min(...starts);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** N bare processes sleep until one common time; the skew of their wake-ups. */
async function floorSkew(n: number, mode: 'timer' | 'lockstep', options: SkewOptions): Promise<number> {
  const children = Array.from({ length: n }, () => startNode(options.procs.floor, [mode, String(n)]));
  const outputs = children.map((child) => outputOf(child, 'a floor process'));
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve, reject) => {
          let seen = '';
          const onData = (chunk: Buffer) => {
            seen += chunk.toString();
            if (seen.includes('ready')) {
              child.stdout?.off('data', onData);
              resolve();
            }
          };
          child.stdout?.on('data', onData);
          child.once('error', reject);
        }),
    ),
  );
  // Every process waits on its own timer from well before T: telling them T costs nothing at T.
  const at = performance.timeOrigin + performance.now() + Math.max(500, options.startDelayMs);
  for (const child of children) child.stdin?.end(`${at}\n`);
  const woke = (await Promise.all(outputs)).map((lines) => (JSON.parse(lines.find((l) => l.startsWith('{'))!) as { woke: number }).woke);
  return Math.max(...woke) - Math.min(...woke);
}

/** The seed's barrier: N bare processes against one folder store; the skew of their starts. */
async function seedSkew(n: number, repeat: number, options: SkewOptions): Promise<number> {
  const store = join(options.dir, `seed-${n}-${repeat}`);
  try {
    const runId = `seed-${n}-${repeat}`;
    const children = Array.from({ length: n }, (_, i) => startNode(options.procs['seed-barrier'], [store, runId, `node-${i}`, String(n)]));
    const starts = (await Promise.all(children.map((c) => outputOf(c, 'a seed-like node')))).map(
      (lines) => (JSON.parse(lines.find((l) => l.startsWith('{'))!) as { startedAt: number }).startedAt,
    );
    return Math.max(...starts) - Math.min(...starts);
  } finally {
    await rm(store, { recursive: true, force: true });
  }
}
