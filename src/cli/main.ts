import { defineCommand, runCommand, runMain } from 'citty';
import { VERSION } from '../version.ts';
import { describeError, EXIT } from './errors.ts';

const main = defineCommand({
  meta: {
    name: 'lockstep',
    version: VERSION,
    description: 'Run a distributed-protocol experiment on N machines at once, in lockstep, and bring the results home',
  },
  subCommands: {
    run: () => import('./commands/run.ts').then((m) => m.default),
    ls: () => import('./commands/inspect.ts').then((m) => m.ls),
    status: () => import('./commands/inspect.ts').then((m) => m.status),
    logs: () => import('./commands/inspect.ts').then((m) => m.logs),
    down: () => import('./commands/down.ts').then((m) => m.default),
    gc: () => import('./commands/gc.ts').then((m) => m.default),
    schema: () => import('./commands/schema.ts').then((m) => m.default),
    results: () => import('./commands/results.ts').then((m) => m.default),
    aws: () => import('./commands/aws.ts').then((m) => m.default),
  },
});

// The AWS SDK warns on Node 20 at its first client; lockstep pins SDK versions that support it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const rawArgs = process.argv.slice(2);
if (rawArgs.length === 0 || rawArgs.some((arg) => arg === '--help' || arg === '-h') || (rawArgs.length === 1 && ['--version', '-v'].includes(rawArgs[0]!))) {
  await runMain(main, { rawArgs: rawArgs.length === 0 ? ['--help'] : rawArgs });
} else {
  try {
    await runCommand(main, { rawArgs });
  } catch (error) {
    const { message, exitCode, stack } = describeError(error);
    console.error(`lockstep: ${message}`);
    if ((error as { name?: string }).name === 'CLIError') console.error('See `lockstep --help`, or `lockstep <command> --help`.');
    if (stack) console.error(stack);
    process.exitCode = exitCode;
  }
}
// Agents run on their own; nothing of the CLI's should keep it alive.
process.exit(process.exitCode ?? EXIT.ok);
