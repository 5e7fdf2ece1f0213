// What a provider that has a shell on a host (SSH) runs there beside the agent, bundled into
// dist/host-control.mjs and sent as the script of `node --input-type=module - <command> <json>`
// (nothing of it stays on the host). It starts the agent detached, watches it, stops it with
// whatever it left (processes, privileged rules), and lists what runs left behind. The wire format
// is core/host-control.ts.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AGENT_NODE_OPTIONS } from '../core/agent-node.ts';
import { AGENT_FILE, AGENT_LOG_TAIL, INSTANCE_FILE, type HostInstance, type ScannedInstance, type StartRequest, type StopReport } from '../core/host-control.ts';
import { killProcesses, processesOfInstance } from './leftovers.ts';
import { runUndoJournal } from './privileged.ts';

const LOG_FILE = 'agent.log';

/** Whether `pid` is a live agent (not a zombie, not a reused pid). */
function agentAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(AGENT_FILE);
  } catch {
    return false;
  }
}

function readInstance(dir: string): HostInstance | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, INSTANCE_FILE), 'utf8')) as HostInstance;
  } catch {
    return undefined;
  }
}

/** Fetches `url` (a presigned GET of the agent bundle) into `path`. */
async function download(url: string, path: string): Promise<{ bytes: number }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  if (!response.ok) throw new Error(`GET answered ${response.status} ${response.statusText}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  writeFileSync(`${path}.partial`, bytes);
  renameSync(`${path}.partial`, path);
  return { bytes: bytes.length };
}

/** Starts the agent in a session of its own: a dropped SSH connection does not reach it. */
function start(request: StartRequest): { pid: number } {
  const log = openSync(join(request.dir, LOG_FILE), 'a');
  try {
    const child = spawn(process.execPath, [...AGENT_NODE_OPTIONS, AGENT_FILE], {
      cwd: request.dir,
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, ...request.env },
    });
    if (child.pid === undefined) throw new Error(`could not start ${process.execPath}`);
    child.unref();
    const instance: HostInstance = { ...request.instance, pid: child.pid, startedAt: new Date().toISOString() };
    writeFileSync(join(request.dir, INSTANCE_FILE), JSON.stringify(instance, null, 2));
    return { pid: child.pid };
  } finally {
    closeSync(log);
  }
}

/**
 * Returns once the agent has ended. Prints a line every second meanwhile, so that it ends too
 * (on the broken pipe) when the SSH connection that started it goes away.
 */
async function watch(dir: string): Promise<void> {
  const instance = readInstance(dir);
  process.stdout.on('error', () => process.exit(0));
  while (instance && agentAlive(instance.pid)) {
    process.stdout.write('.');
    await delay(1000);
  }
  process.stdout.write('ended\n');
}

/**
 * Ends the instance: SIGTERM to the agent (it stops its command and uploads its logs), SIGKILL
 * after `graceMs`, then every process that still carries the instance's identity, then what its
 * privileged commands set up (network emulation, fault rules); with `remove`, its folder.
 */
async function stop(dir: string, graceMs: number, remove: boolean): Promise<StopReport> {
  const instance = readInstance(dir);
  let wasRunning = false;
  let stoppedByItself = false;
  let leftoversKilled = 0;
  if (instance) {
    wasRunning = agentAlive(instance.pid);
    if (wasRunning) {
      try {
        process.kill(instance.pid, 'SIGTERM');
      } catch {}
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && agentAlive(instance.pid)) await delay(100);
      stoppedByItself = !agentAlive(instance.pid);
      if (!stoppedByItself) {
        try {
          process.kill(instance.pid, 'SIGKILL');
        } catch {}
      }
    }
    leftoversKilled = killProcesses(processesOfInstance(instance.runId, instance.instanceId));
  }
  const undone = await runUndoJournal(dir);
  const agentLog = tail(join(dir, LOG_FILE), AGENT_LOG_TAIL);
  if (remove && existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    try {
      // The run's folder, once its last instance is gone.
      rmdirSync(dirname(dir));
    } catch {}
  }
  return { wasRunning, stoppedByItself, leftoversKilled, undone, removed: remove, ...(agentLog !== undefined ? { agentLog } : {}) };
}

/** The last `bytes` of a file, or undefined when there is none. */
function tail(path: string, bytes: number): string | undefined {
  try {
    const text = readFileSync(path);
    return text.subarray(Math.max(0, text.length - bytes)).toString('utf8');
  } catch {
    return undefined;
  }
}

/** Every instance folder below `<workDir>/runs/` (`workDir` relative to the home folder), with whether its agent and processes still run. */
function scan(workDir: string): ScannedInstance[] {
  const runs = join(resolve(homedir(), workDir), 'runs');
  const found: ScannedInstance[] = [];
  for (const run of existsSync(runs) ? readdirSync(runs) : []) {
    const runDir = join(runs, run);
    let entries: string[] = [];
    try {
      entries = readdirSync(runDir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const dir = join(runDir, entry);
      const instance = readInstance(dir);
      if (!instance) {
        // A folder whose agent never started (a launch that failed half-way).
        found.push({ dir, runId: run, instanceId: entry, store: '', expiresAt: '', pid: 0, startedAt: '', alive: false, processes: 0 });
        continue;
      }
      found.push({ ...instance, dir, alive: agentAlive(instance.pid), processes: processesOfInstance(instance.runId, instance.instanceId).length });
    }
  }
  return found;
}

async function main(): Promise<void> {
  const [command, json] = process.argv.slice(2);
  const input = JSON.parse(json ?? '{}') as Record<string, unknown>;
  let output: unknown;
  switch (command) {
    case 'start':
      output = start(input as unknown as StartRequest);
      break;
    case 'fetch':
      output = await download(String(input.url), String(input.path));
      break;
    case 'watch':
      return watch(String(input.dir));
    case 'stop':
      output = await stop(String(input.dir), Number(input.graceMs ?? 10_000), input.remove === true);
      break;
    case 'status': {
      const instance = readInstance(String(input.dir));
      output = { alive: instance !== undefined && agentAlive(instance.pid), ...(instance ? { instance } : {}) };
      break;
    }
    case 'scan':
      output = scan(String(input.workDir));
      break;
    default:
      throw new Error(`unknown command ${command}`);
  }
  process.stdout.write(JSON.stringify(output) + '\n');
}

await main();
