import type { ArgDef, CommandDef } from 'citty';
import { describe, expect, it } from 'vitest';
import { checkArguments, resolveCommand, usageOf, wantsHelp, type ResolvedCommand } from '../../src/cli/command-line.ts';
import { root } from '../../src/cli/root.ts';
import { UsageError } from '../../src/core/errors.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = CommandDef<any>;

async function value<T>(v: T | Promise<T> | (() => T | Promise<T>)): Promise<T> {
  return typeof v === 'function' ? (v as () => T)() : v;
}

/** Every command that runs something (`lockstep run`, `lockstep aws doctor`, …), found from the root. */
async function leafCommands(command: AnyCommand = root, name = 'lockstep'): Promise<Array<{ name: string; command: AnyCommand }>> {
  const subCommands = (await value(command.subCommands)) as Record<string, AnyCommand> | undefined;
  if (!subCommands) return [{ name, command }];
  const leaves = [];
  for (const [word, sub] of Object.entries(subCommands)) leaves.push(...(await leafCommands(await value(sub), `${name} ${word}`)));
  return leaves;
}

async function argsOf(command: AnyCommand): Promise<Array<[string, ArgDef]>> {
  return Object.entries((await value(command.args)) ?? {}) as Array<[string, ArgDef]>;
}

async function refusal(words: string[]): Promise<string> {
  try {
    await checkArguments(await resolveCommand(root, words));
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`\`lockstep ${words.join(' ')}\` was accepted`);
}

async function accepted(words: string[]): Promise<ResolvedCommand> {
  const command = await resolveCommand(root, words);
  await checkArguments(command);
  return command;
}

describe('the command line', () => {
  it('refuses an unknown option in every command', async () => {
    const leaves = await leafCommands();
    expect(leaves.map((l) => l.name)).toEqual(expect.arrayContaining(['lockstep run', 'lockstep ls', 'lockstep logs', 'lockstep aws doctor']));
    for (const { name, command } of leaves) {
      const defs = (await argsOf(command)).filter(([, def]) => def.type === 'positional');
      const words = [...name.split(' ').slice(1), ...defs.map(([n]) => `some-${n}`)];
      await expect(accepted(words), name).resolves.toBeDefined();
      expect(await refusal([...words, '--bogus-option']), name).toMatch(/^Unknown option `--bogus-option`: .* \(see `lockstep .* --help`\)$/);
      // A last positional whose value hint ends in `...` (`lockstep import <folder...>`) takes the rest.
      if ((defs.at(-1)?.[1] as { valueHint?: string } | undefined)?.valueHint?.endsWith('...')) await expect(accepted([...words, 'another']), name).resolves.toBeDefined();
      else expect(await refusal([...words, 'stray-argument']), name).toMatch(/^Unexpected argument `stray-argument`: /);
    }
  });

  it('suggests the nearest option, command or spelling', async () => {
    expect(await refusal(['run', 'ok.yaml', '--dryrun'])).toBe('Unknown option `--dryrun`: did you mean `--dry-run`? (see `lockstep run --help`)');
    expect(await refusal(['run', '--sett', 'instances=3', 'ok.yaml'])).toMatch(/^Unknown option `--sett`: did you mean `--set`\?/);
    expect(await refusal(['ls', '--stor', '/x'])).toMatch(/^Unknown option `--stor`: did you mean `--store`\?/);
    expect(await refusal(['result', 'r1'])).toBe('Unknown command `result`: did you mean `lockstep results`? (see `lockstep --help`)');
    expect(await refusal(['aws', 'doctr'])).toMatch(/^Unknown command `doctr`: did you mean `lockstep aws doctor`\?/);
    expect(await refusal(['frobnicate'])).toMatch(/^Unknown command `frobnicate`: the commands of `lockstep` are run, ls, /);
    expect(await refusal(['ls', 'json'])).toMatch(/^Unexpected argument `json`: did you mean `--json`\? `lockstep ls` takes no arguments/);
  });

  it('refuses a missing argument or value, and a switch given a value', async () => {
    expect(await refusal(['run'])).toBe('Missing <spec.yaml>: `lockstep run <spec.yaml>` (see `lockstep run --help`)');
    expect(await refusal(['run', 'ok.yaml', '--store'])).toMatch(/^`--store` needs a value, e.g. `--store <locator>`/);
    expect(await refusal(['ls', '--json=maybe'])).toMatch(/^`--json` is a switch/);
    expect(await refusal(['--store', 'x', 'ls'])).toMatch(/^Unknown option `--store` of `lockstep`: options go after the command/);
  });

  it('takes every spelling citty reads', async () => {
    await accepted(['run', 'ok.yaml', '--dry-run', '--dryRun', '--no-results', '--json=false', '--set', 'a=1', '--set=b=2', '--store=/x']);
    expect(await refusal(['logs', 'r1', '--', '--not-an-option'])).toMatch(/^Unexpected argument `--not-an-option`/);
    expect(wantsHelp(['x', '--help'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
    expect((await resolveCommand(root, ['aws'])).incomplete).toBe(true);
  });

  it('describes every option, takes --json in every command, and every usage line starts with `lockstep`', async () => {
    for (const { name, command } of await leafCommands()) {
      expect((await argsOf(command)).map(([arg]) => arg), name).toContain('json');
      for (const [arg, def] of await argsOf(command)) expect((def as { description?: string }).description, `${name} ${arg}`).toBeTruthy();
      const usage = await usageOf(await resolveCommand(root, name.split(' ').slice(1)), { colour: false, version: '0' });
      expect(usage, name).toContain(`USAGE ${name} `);
      expect(usage).not.toContain('\u001b[');
    }
  });
});
