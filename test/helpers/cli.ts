import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/lockstep.mjs', import.meta.url));

export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly cwd: string;
  readonly env?: Record<string, string>;
  /** Replaces the environment instead of adding to the test's own. */
  readonly bareEnv?: boolean;
  readonly timeoutMs?: number;
}

/** Runs the built `lockstep` binary as a user would, blocking: only for commands that answer at once. */
export function lockstep(args: readonly string[], options: CliOptions): CliResult {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: options.bareEnv ? options.env : { ...process.env, ...options.env },
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface RunningCli {
  readonly child: ChildProcess;
  /** What it printed so far. */
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves when it has exited. */
  readonly done: Promise<CliResult & { readonly signal: NodeJS.Signals | null }>;
}

/**
 * Starts the built `lockstep` binary without waiting for it (the test's process goes on: servers
 * it runs keep answering), for commands that run long or are signalled. Killed after `timeoutMs`.
 */
export function startLockstep(args: readonly string[], options: CliOptions): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: options.bareEnv ? options.env : { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

/**
 * Runs the built `lockstep` binary without blocking the test's process (a whole run takes seconds;
 * a blocked test worker misses the test runner's calls).
 */
export async function runLockstep(args: readonly string[], options: CliOptions): Promise<CliResult> {
  const { status, stdout, stderr } = await startLockstep(args, options).done;
  return { status, stdout, stderr };
}
