/**
 * One agent's footprint: its peak resident memory (VmHWM of the agent process, sampled until it
 * exits) and the time from its process start to its ready record, in a real local run with the
 * folder store and with the S3 store (s3rver on loopback; the agent's own S3 driver, as on EC2).
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_NODE_OPTIONS } from '../src/core/agent-node.ts';
import { runExperiment } from '../src/controller/run.ts';
import { layout } from '../src/core/layout.ts';
import type { ReadyRecord } from '../src/core/manifest.ts';
import { readRunStates } from '../src/provider/local/state.ts';
import { loadSpec } from '../src/spec/load.ts';
import { openStore } from '../src/store/open.ts';
import { getJson } from '../src/store/store.ts';
import { startS3Server } from '../test/helpers/s3-server.ts';
import { median } from './stats.ts';

export interface Footprint {
  /** Peak resident memory of one agent process (the largest of the run's agents). */
  readonly peakBytes: number;
  /** Agent process start → its ready record's readyAt (median over the agents), ms; /proc start times have 10 ms steps. */
  readonly startToReadyMs: number;
}

export interface FootprintResult {
  /** dist/agent.mjs: what every instance downloads and loads. */
  readonly bundleBytes: number;
  readonly folder: Footprint;
  readonly s3: Footprint;
}

export async function benchFootprint(options: { readonly dir: string; readonly log: (line: string) => void }): Promise<FootprintResult> {
  const bundleBytes = statSync(new URL('../dist/agent.mjs', import.meta.url)).size;
  options.log(`footprint, agent bundle: ${(bundleBytes / 1000).toFixed(0)} KB; agent Node.js options: ${AGENT_NODE_OPTIONS.join(' ')}`);
  const folder = await measure(join(options.dir, 'footprint-folder'), undefined);
  options.log(`footprint, folder store: peak ${(folder.peakBytes / 2 ** 20).toFixed(1)} MiB, start → ready ${folder.startToReadyMs.toFixed(0)} ms`);
  const s3 = await startS3Server({ bucket: 'lockstep-footprint' });
  const saved = { ...process.env };
  try {
    Object.assign(process.env, s3.env);
    const onS3 = await measure(join(options.dir, 'footprint-s3'), s3.locator('footprint/'));
    options.log(`footprint, S3 store: peak ${(onS3.peakBytes / 2 ** 20).toFixed(1)} MiB, start → ready ${onS3.startToReadyMs.toFixed(0)} ms`);
    return { bundleBytes, folder, s3: onS3 };
  } finally {
    for (const key of Object.keys(s3.env)) if (!(key in saved)) delete process.env[key];
    await s3.stop();
  }
}

async function measure(dir: string, storeLocator: string | undefined): Promise<Footprint> {
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'app', 'data.txt'), 'x'.repeat(4096));
  writeFileSync(
    join(dir, 'spec.yaml'),
    ['name: bench-footprint', 'instances: 2', 'repeats: 2', 'artifact: ./app', 'run: cat data.txt > /dev/null', 'startDelay: 1s'].join('\n'),
  );
  const home = join(dir, 'home');
  const store = storeLocator ?? join(dir, 'store');
  const peaks = new Map<number, number>();
  const started = new Map<number, number>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const state of await readRunStates(home).catch(() => [])) {
        for (const instance of state.instances) {
          const peak = peakOf(instance.pid);
          if (peak !== undefined) peaks.set(instance.pid, Math.max(peaks.get(instance.pid) ?? 0, peak));
          if (!started.has(instance.pid)) {
            const at = startTimeOf(instance.pid);
            if (at !== undefined) started.set(instance.pid, at);
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  try {
    const outcome = await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), store, home, pollIntervalMs: 250 });
    if (!outcome.ok) throw new Error(`the footprint run ended ${outcome.status.state}`);
    const states = outcome.status.instances;
    const opened = await openStore(outcome.store);
    const delays: number[] = [];
    try {
      // The state files are gone once the run is over; match processes to instances by start order.
      const ready = await Promise.all(states.map((i) => getJson<ReadyRecord>(opened, layout.ready(outcome.runId, 1, i.instanceId))));
      const readyAts = ready.filter((r): r is ReadyRecord => r !== undefined).map((r) => r.readyAt).sort((a, b) => a - b);
      const starts = [...started.values()].sort((a, b) => a - b);
      for (let i = 0; i < Math.min(readyAts.length, starts.length); i++) delays.push(readyAts[i]! - starts[i]!);
    } finally {
      await opened.dispose();
    }
    return { peakBytes: Math.max(0, ...peaks.values()), startToReadyMs: median(delays) };
  } finally {
    watching = false;
    await watcher;
    await rm(dir, { recursive: true, force: true });
  }
}

function peakOf(pid: number): number | undefined {
  try {
    const kib = /^VmHWM:\s*(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

/** A process's start (epoch ms, 10 ms steps): its age from /proc/<pid>/stat and /proc/uptime. */
function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return Date.now() - (uptimeS - ticks / 100) * 1000;
  } catch {
    return undefined;
  }
}
