import { runCommand } from 'citty';
import { VERSION } from '../version.ts';
import { checkArguments, resolveCommand, usageOf, wantsHelp } from './command-line.ts';
import { describeError, EXIT } from './errors.ts';
import { useColour } from './output.ts';
import { root } from './root.ts';

// The AWS SDK warns on Node 20 at its first client; lockstep pins SDK versions that support it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const given = process.argv.slice(2);
// `lockstep help [command]` is `lockstep [command] --help`.
const rawArgs = given[0] === 'help' ? [...given.slice(1), '--help'] : given;
try {
  if (rawArgs.length === 1 && ['--version', '-v'].includes(rawArgs[0]!)) {
    console.log(VERSION);
  } else {
    const command = await resolveCommand(root, rawArgs);
    if (command.incomplete || wantsHelp(command.args)) {
      console.log(`${await usageOf(command, { colour: useColour(process.stdout), version: VERSION })}\n`);
    } else {
      await checkArguments(command);
      await runCommand(command.command, { rawArgs: [...command.args] });
    }
  }
} catch (error) {
  const { message, exitCode, stack } = describeError(error);
  console.error(`lockstep: ${message}`);
  if (stack) console.error(stack);
  process.exitCode = exitCode;
}
// Exiting drops what a pipe has not taken yet (a large `--json`): let stdout and stderr drain first.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))));
// Agents run on their own; nothing of the CLI's should keep it alive.
process.exit(process.exitCode ?? EXIT.ok);
