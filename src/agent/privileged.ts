import { execFile, spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.ts';
import { findSystemBinary, NOT_INSTALLED } from '../util/system-binary.ts';

/**
 * The one way the agent runs a privileged system command (`tc` for network emulation, `nft` for
 * partitions). On EC2 and locally the agent is root and runs them as they are; an agent that is
 * not root (an SSH host's login) runs them through `sudo -n` here, and nowhere else: never a
 * password prompt, a refusal instead, which the caller reports (`refusalOf`).
 *
 * What such a command sets up outlives the agent if the agent dies, so the commands that undo it
 * are kept in a journal in the instance's working folder until they have run: whoever finds the
 * instance dead (`lockstep gc`, the SSH provider ending it) runs them (`runUndoJournal`).
 */

/** The system tools the agent runs as root. */
export type PrivilegedTool = 'tc' | 'nft';

/** What a command did; a failing command is data, never an exception. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `tool` with `args` (and `input` on stdin) as root. Never throws. */
export type PrivilegedRunner = (tool: PrivilegedTool, args: readonly string[], input?: string) => Promise<CommandResult>;

export { NOT_INSTALLED };

const PACKAGE: Record<PrivilegedTool, string> = { tc: 'iproute2 (`iproute-tc` on Fedora-family systems)', nft: 'nftables' };

export interface PrivilegedOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Longest a command may take (default 10 s). */
  readonly timeoutMs?: number;
  /** Whose rights the agent has (default: this process's uid): any but root goes through `sudo -n`. */
  readonly uid?: number;
}

/** The runner of this agent. */
export function privilegedRunner(options: PrivilegedOptions = {}): PrivilegedRunner {
  const env = options.env ?? process.env;
  const uid = options.uid ?? process.getuid?.();
  return async (tool, args, input) => {
    const binary = findSystemBinary(tool, env);
    if (!binary) return { code: NOT_INSTALLED, stdout: '', stderr: `The \`${tool}\` command is not installed: install ${PACKAGE[tool]} on the instance` };
    const [file, ...rest] = privilegedArgv([binary, ...args], uid);
    return runFile(file!, rest, input, options.timeoutMs ?? 10_000);
  };
}

/** A privileged command started ahead of time, waiting for its input on stdin. */
export interface HeldPrivileged {
  /** Gives it its input (and end of input): it runs now, without a process to start. Never throws. */
  run(input: string): Promise<CommandResult>;
  /** Ends it unused. */
  cancel(): void;
}

/**
 * Starts `tool args` now, to read its input later (`nft -f -`): what must happen at a set time
 * (a partition at T + offset) then costs a write, not a process start (tens of ms on a busy machine).
 * Unused, it ends when this process does (its stdin closes).
 */
export function holdPrivileged(tool: PrivilegedTool, args: readonly string[], options: PrivilegedOptions = {}): HeldPrivileged {
  const binary = findSystemBinary(tool, options.env ?? process.env);
  if (!binary) {
    const missing = { code: NOT_INSTALLED, stdout: '', stderr: `The \`${tool}\` command is not installed: install ${PACKAGE[tool]} on the instance` };
    return { run: async () => missing, cancel: () => {} };
  }
  const [file, ...rest] = privilegedArgv([binary, ...args], options.uid ?? process.getuid?.());
  const child = spawn(file!, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.on('error', () => {});
  const exited = new Promise<CommandResult>((resolve) => {
    child.once('error', (error) => resolve({ code: -1, stdout, stderr: error.message }));
    child.once('close', (code, signal) => resolve({ code: code ?? -1, stdout, stderr: stderr || (signal ? `ended by ${signal}` : '') }));
  });
  return {
    run(input) {
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 10_000);
      child.stdin.end(input);
      return exited.finally(() => clearTimeout(timer));
    },
    cancel: () => void child.kill('SIGKILL'),
  };
}

/** Keeps one `tool args` held ready: each `run` takes it and holds the next. */
export function warmPrivileged(tool: PrivilegedTool, args: readonly string[], options: PrivilegedOptions = {}): HeldPrivileged {
  let ready = holdPrivileged(tool, args, options);
  return {
    run(input) {
      const taken = ready;
      ready = holdPrivileged(tool, args, options);
      return taken.run(input);
    },
    cancel: () => ready.cancel(),
  };
}

/** The command line that runs `argv` with root's rights: as it is for root, else through `sudo -n`. */
export function privilegedArgv(argv: readonly string[], uid = process.getuid?.()): string[] {
  return uid === 0 || uid === undefined ? [...argv] : ['sudo', '-n', '--', ...argv];
}

/** Why a privileged command was refused, in words a person can act on; undefined when it was not a refusal. */
export function refusalOf(result: CommandResult, what: string, uid = process.getuid?.()): string | undefined {
  if (uid !== 0 && uid !== undefined && /a password is required|not allowed to execute|may not run sudo|spawn sudo ENOENT/i.test(result.stderr)) {
    return `${what} needs root, and this agent runs as uid ${uid} without passwordless sudo for it: allow it (a sudoers rule with NOPASSWD), or log in as root`;
  }
  if (/Operation not permitted|permission denied/i.test(result.stderr)) {
    return `${what} needs root (CAP_NET_ADMIN): run the agent as root, or as a user with passwordless sudo`;
  }
  return undefined;
}

function runFile(binary: string, args: readonly string[], input: string | undefined, timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(binary, [...args], { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (error && code === -1 ? error.message : '') });
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/** One command of the undo journal. */
export interface UndoCommand {
  readonly tool: PrivilegedTool;
  readonly args: readonly string[];
}

const JOURNAL = 'privileged-undo.json';

type Journal = Record<string, readonly UndoCommand[]>;

async function readJournal(workDir: string): Promise<Journal> {
  try {
    return JSON.parse(await readFile(join(workDir, JOURNAL), 'utf8')) as Journal;
  } catch {
    return {};
  }
}

async function writeJournal(workDir: string, journal: Journal): Promise<void> {
  if (Object.keys(journal).length === 0) await rm(join(workDir, JOURNAL), { force: true });
  else await writeFileAtomic(join(workDir, JOURNAL), JSON.stringify(journal, null, 2));
}

// Changes to the journal are chained: two appliers (netem and a fault) never lose each other's entry.
let pending: Promise<unknown> = Promise.resolve();
const serialized = <T>(work: () => Promise<T>): Promise<T> => {
  const next = pending.then(work, work);
  pending = next.catch(() => {});
  return next;
};

/** Records how to undo what `key` set up (each command in order); record it before setting it up. */
export function recordUndo(workDir: string, key: string, commands: readonly UndoCommand[]): Promise<void> {
  return serialized(async () => writeJournal(workDir, { ...(await readJournal(workDir)), [key]: commands }));
}

/** Forgets `key`'s entry: its caller undid it (or never set it up). */
export function forgetUndo(workDir: string, key: string): Promise<void> {
  return serialized(async () => {
    const journal = await readJournal(workDir);
    if (!(key in journal)) return;
    delete journal[key];
    await writeJournal(workDir, journal);
  });
}

/** Runs every undo command of a dead instance's journal, then removes the journal. Returns how many entries there were. */
export async function runUndoJournal(workDir: string, run: PrivilegedRunner = privilegedRunner()): Promise<number> {
  return serialized(async () => {
    const journal = await readJournal(workDir);
    const entries = Object.values(journal);
    for (const commands of entries) for (const { tool, args } of commands) await run(tool, args);
    await writeJournal(workDir, {});
    return entries.length;
  });
}
