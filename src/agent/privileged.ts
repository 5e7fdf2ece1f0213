import { execFile } from 'node:child_process';
import { findSystemBinary } from '../util/system-binary.ts';

/**
 * The one way the agent runs a privileged system command (`tc` for network emulation, `nft` for
 * partitions). On EC2 and locally the agent is root and runs them as they are; a provider whose
 * agent is not root (SSH hosts) makes them go through `sudo -n` here, and nowhere else.
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

/** Exit code of a tool that is not installed (as a shell reports it). */
export const NOT_INSTALLED = 127;

const PACKAGE: Record<PrivilegedTool, string> = { tc: 'iproute2 (`iproute-tc` on Fedora-family systems)', nft: 'nftables' };

export interface PrivilegedOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Longest a command may take (default 10 s). */
  readonly timeoutMs?: number;
}

/** The runner of this agent. */
export function privilegedRunner(options: PrivilegedOptions = {}): PrivilegedRunner {
  const env = options.env ?? process.env;
  return async (tool, args, input) => {
    const binary = findSystemBinary(tool, env);
    if (!binary) return { code: NOT_INSTALLED, stdout: '', stderr: `The \`${tool}\` command is not installed: install ${PACKAGE[tool]} on the instance` };
    return runFile(binary, args, input, options.timeoutMs ?? 10_000);
  };
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
