import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import type { NodeResult } from '../../src/core/manifest.ts';
import { runExperiment, type RunOutcome } from '../../src/controller/run.ts';
import { checkNetnsSupport, findIp, networkTag, removeRunNetwork } from '../../src/provider/local/netns.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson } from '../../src/store/store.ts';
import { tempDir } from '../helpers/temp.ts';

export const PING_MESH = resolve('examples/ping-mesh/app');
export const PROBE = resolve('test/network/app');

/**
 * Why this machine cannot run the namespace tests, or undefined when it can: it tries to make a
 * namespace of its own (and, for `qdisc`, that queueing discipline on the namespace's loopback).
 */
export function missingSupport(qdisc?: 'netem' | 'tbf' | 'htb'): string | undefined {
  let ip: string;
  try {
    ip = checkNetnsSupport();
  } catch (error) {
    return (error as Error).message;
  }
  const scratch = `ls-${randomBytes(3).toString('hex')}-0`;
  try {
    execFileSync(ip, ['netns', 'add', scratch], { stdio: 'pipe' });
  } catch (error) {
    return `cannot make a network namespace here: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
  try {
    if (!qdisc) return undefined;
    const args = { netem: ['netem', 'delay', '1ms'], tbf: ['tbf', 'rate', '1mbit', 'burst', '12000', 'latency', '50ms'], htb: ['htb'] }[qdisc];
    try {
      execFileSync(ip, ['netns', 'exec', scratch, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', ...args], { stdio: 'pipe' });
      return undefined;
    } catch (error) {
      const said = String((error as { stderr?: Buffer }).stderr ?? error).trim();
      return `this kernel has no \`${qdisc}\` queueing discipline (tc: ${said}): kernel config CONFIG_NET_SCH_${qdisc.toUpperCase()} is off or its module sch_${qdisc} is not loadable`;
    }
  } finally {
    execFileSync(ip, ['netns', 'delete', scratch], { stdio: 'pipe' });
  }
}

export interface NetnsRun {
  readonly outcome: RunOutcome;
  readonly results: NodeResult[];
  /** stdout of each rank, as JSON lines parsed (other lines left out). */
  readonly lines: Map<number, Array<Record<string, unknown>>>;
}

const started: string[] = [];

/** Runs `run` on N instances in netns mode with the given extra spec lines; reads every node back. */
export async function runInNamespaces(options: { instances: number; app: string; run: string; spec?: readonly string[]; store?: string }): Promise<NetnsRun> {
  const dir = tempDir('netns');
  writeFileSync(
    join(dir, 'spec.yaml'),
    [
      'name: netns-test',
      `instances: ${options.instances}`,
      `artifact: ${options.app}`,
      `run: ${options.run}`,
      'startDelay: 500ms',
      'timeouts: { barrier: 60s, run: 60s, instance: 5m }',
      'provider: { kind: local, isolation: netns }',
      ...(options.spec ?? []),
    ].join('\n'),
  );
  const outcome = await runExperiment({
    loaded: loadSpec(join(dir, 'spec.yaml')),
    store: options.store ?? join(dir, 'store'),
    home: join(dir, 'home'),
    pollIntervalMs: 200,
    onEvent: (event) => {
      if (event.type === 'launched') started.push(event.runId);
    },
  });
  const store = await openStore(outcome.store);
  const results: NodeResult[] = [];
  const lines = new Map<number, Array<Record<string, unknown>>>();
  try {
    for (let rank = 0; rank < options.instances; rank++) {
      const prefix = layout.node(outcome.runId, 1, rank);
      const result = await getJson<NodeResult>(store, prefix + nodeFiles.result);
      if (result) results.push(result);
      const stdout = Buffer.from((await store.get(prefix + nodeFiles.stdout)) ?? new Uint8Array()).toString('utf8');
      lines.set(
        rank,
        stdout
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as Record<string, unknown>),
      );
    }
  } finally {
    await store.dispose();
  }
  return { outcome, results, lines };
}

/** Namespaces, links and the WAN relay of a run still on this machine (its own network namespace included). */
export function leftovers(runId: string): string[] {
  const ip = findIp()!;
  const prefix = `ls-${networkTag(runId)}-`;
  const relays = relayProcesses(networkTag(runId)).map((pid) => `wan-relay pid ${pid}`);
  const namespaces = execFileSync(ip, ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name.startsWith(prefix));
  const links = execFileSync(ip, ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(': ')[1]?.split('@')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
  return [...namespaces, ...links, ...relays];
}

/** Live WAN relay processes of the network `tag` (`wan-relay.mjs --tag <tag>`). */
export function relayProcesses(tag: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.endsWith('wan-relay.mjs')) && argv[argv.indexOf('--tag') + 1] === tag) pids.push(Number(entry));
    } catch {
      // Gone already.
    }
  }
  return pids;
}

/** Runs `work` with these environment variables set (as the agents inherit them), then restores them. */
export async function withEnv<T>(vars: Record<string, string>, work: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]));
  Object.assign(process.env, vars);
  try {
    return await work();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

/** Removes whatever the runs of this file left, should a test have failed half-way. */
export async function removeStartedNetworks(): Promise<void> {
  for (const runId of started.splice(0)) await removeRunNetwork(runId).catch(() => {});
}

/** `{"metric": name, "value": v, "peer": p}` lines of one rank, by peer. */
export function metricByPeer(lines: Array<Record<string, unknown>>, metric: string): Map<number, number> {
  return new Map(lines.filter((l) => l.metric === metric).map((l) => [Number(l.peer), Number(l.value)]));
}
