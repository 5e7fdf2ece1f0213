/**
 * Shared pieces of the reliability tests: a project on disk (spec + artifact), a local run started
 * in this process with hooks into its life, and the tools to hurt it (kill an agent, restart it)
 * and to check that nothing it started is left running.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'vitest';
import { runExperiment, type RunEvent, type RunOptions, type RunOutcome } from '../../src/controller/run.ts';
import { descendants } from '../../src/provider/local/processes.ts';
import { readRunStates, writeRunState, type LocalRunState } from '../../src/provider/local/state.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { processesMentioning } from '../global-setup.ts';
import { tempDir } from '../helpers/temp.ts';

export interface Project {
  readonly dir: string;
  /** LOCKSTEP_HOME of this project's local provider. */
  readonly home: string;
  readonly spec: string;
  /** A folder store inside `dir`. */
  readonly store: string;
}

/** Writes `spec.yaml` (the lines given) and `app/` (the files given) into a fresh folder. */
export function project(specLines: readonly string[], files: Readonly<Record<string, string>> = {}): Project {
  const dir = tempDir('rel');
  mkdirSync(join(dir, 'app'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'app', name), text);
  writeFileSync(join(dir, 'spec.yaml'), ['artifact: ./app', ...specLines].join('\n') + '\n');
  return { dir, home: join(dir, 'home'), spec: join(dir, 'spec.yaml'), store: join(dir, 'store') };
}

export interface StartedRun {
  readonly runId: Promise<string>;
  readonly outcome: Promise<RunOutcome>;
}

/** Starts a local run of the project in this process; `runId` resolves once the instances are up. */
export function startRun(p: Project, options: Partial<RunOptions> & { onEvent?: (event: RunEvent) => void } = {}): StartedRun {
  let resolveRunId!: (id: string) => void;
  let rejectRunId!: (error: unknown) => void;
  const runId = new Promise<string>((resolve, reject) => ((resolveRunId = resolve), (rejectRunId = reject)));
  runId.catch(() => {});
  const outcome = runExperiment({
    loaded: loadSpec(p.spec),
    store: p.store,
    home: p.home,
    pollIntervalMs: 200,
    ...options,
    onEvent: (event) => {
      if (event.type === 'launched') resolveRunId(event.runId);
      options.onEvent?.(event);
    },
  });
  outcome.then(
    (o) => resolveRunId(o.runId),
    (error) => rejectRunId(error),
  );
  return { runId, outcome };
}

export function localState(home: string, runId: string): Promise<LocalRunState | undefined> {
  return readRunStates(home).then((states) => states.find((s) => s.runId === runId));
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

/** Kills a process and everything below it with SIGKILL, as a machine that dies would. */
export async function killHard(pid: number): Promise<void> {
  const tree = [pid, ...(await descendants(pid))];
  for (const member of tree) {
    try {
      process.kill(member, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

export function environmentOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/**
 * Kills an agent (SIGKILL, the agent alone: what it runs is left, as after a crash of the agent)
 * and starts the same agent again with the same environment and working folder, as a supervisor
 * would. The provider's state is updated to the new process. Returns the new pid.
 */
export async function restartAgent(home: string, runId: string, instanceId: string): Promise<number> {
  const state = (await localState(home, runId))!;
  const instance = state.instances.find((i) => i.id === instanceId)!;
  const env = environmentOf(instance.pid);
  const argv = readFileSync(`/proc/${instance.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  process.kill(instance.pid, 'SIGKILL');
  await waitFor('the agent to die', () => !alive(instance.pid));
  const log = openSync(join(instance.workDir, 'agent.log'), 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: instance.workDir, env, detached: true, stdio: ['ignore', log, log] });
    child.unref();
    await writeRunState(home, { ...state, instances: state.instances.map((i) => (i.id === instanceId ? { ...i, pid: child.pid! } : i)) });
    return child.pid!;
  } finally {
    closeSync(log);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Every test's last check: nothing it started (agents, commands, controllers, servers under its
 * folder) is still running, within `timeoutMs`. What is left is killed, and the test fails.
 */
export async function expectNothingLeftRunning(dir: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let left = processesMentioning(dir);
  while (left.length > 0 && Date.now() < deadline) {
    await delay(100);
    left = processesMentioning(dir);
  }
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  expect(left, `processes left running under ${dir}`).toEqual([]);
}
