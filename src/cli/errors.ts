import { ArtifactError } from '../agent/artifact.ts';
import { AgentBundleMissingError } from '../controller/agent-bundle.ts';
import { StoreUnreachableError } from '../controller/run.ts';
import { RunNotFoundError } from '../controller/status.ts';
import { LaunchError } from '../provider/provider.ts';
import { SpecError } from '../spec/load.ts';
import { StoreError } from '../store/store.ts';
import { UsageError } from '../core/errors.ts';

/** Exit codes: 0 ok, 1 the experiment failed, 2 bad input (nothing was started), 3 internal error, 130 interrupted. */
export const EXIT = { ok: 0, failed: 1, badInput: 2, internal: 3, interrupted: 130 } as const;

export { UsageError };

const BAD_INPUT = [SpecError, StoreError, StoreUnreachableError, RunNotFoundError, UsageError, AgentBundleMissingError, ArtifactError];

/** Known errors become one line and an exit code; anything else prints its stack. */
export function describeError(error: unknown): { message: string; exitCode: number; stack?: string } {
  const named = error as { name?: string; message?: string; exitCode?: number };
  if (BAD_INPUT.some((type) => error instanceof type) || named?.name === 'CLIError' || named?.exitCode === EXIT.badInput) {
    return { message: named.message ?? String(error), exitCode: EXIT.badInput };
  }
  if (error instanceof LaunchError) return { message: error.message, exitCode: EXIT.failed };
  if (typeof named?.exitCode === 'number' && named.message) return { message: named.message, exitCode: named.exitCode };
  return {
    message: `Unexpected error: ${named?.message ?? String(error)} (please report it with the stack below)`,
    exitCode: EXIT.internal,
    stack: (error as Error)?.stack,
  };
}
