import { UsageError } from '../core/errors.ts';

/** Exit codes: 0 ok, 1 the experiment failed, 2 bad input (nothing was started), 3 internal error, 130 interrupted. */
export const EXIT = { ok: 0, failed: 1, badInput: 2, internal: 3, interrupted: 130 } as const;

export { UsageError };

/**
 * Errors that mean bad input, by name: matching names keeps the CLI's start from loading every
 * module that defines one (a typo's message comes back at once). Errors may instead carry `exitCode`.
 */
const BAD_INPUT = new Set([
  'SpecError',
  'StoreError',
  'StoreUnreachableError',
  'RunNotFoundError',
  'UsageError',
  'AgentBundleMissingError',
  'ArtifactError',
  'CLIError',
]);
const FAILED = new Set(['LaunchError', 'AwsLaunchError']);

/** Known errors become one line and an exit code; anything else prints its stack. */
export function describeError(error: unknown): { message: string; exitCode: number; stack?: string } {
  const named = error as { name?: string; message?: string; exitCode?: unknown };
  if (BAD_INPUT.has(named?.name ?? '') || named?.exitCode === EXIT.badInput) return { message: named.message ?? String(error), exitCode: EXIT.badInput };
  if (FAILED.has(named?.name ?? '')) return { message: named.message ?? String(error), exitCode: EXIT.failed };
  if (typeof named?.exitCode === 'number' && named.message) return { message: named.message, exitCode: named.exitCode };
  return {
    message: `Unexpected error: ${named?.message ?? String(error)} (please report it with the stack below)`,
    exitCode: EXIT.internal,
    stack: (error as Error)?.stack,
  };
}
