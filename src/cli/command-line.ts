/**
 * The command line before any command runs: which command the words name, and whether every
 * option and argument given is one that command takes. citty ignores what it does not know; a
 * typo such as `--dryrun` must never start a run, so everything unknown is refused here, once for
 * every command, with the nearest spelling.
 */
import { renderUsage, type ArgDef, type CommandDef } from 'citty';
import { stripVTControlCharacters } from 'node:util';
import { UsageError } from '../core/errors.ts';
import { closestMatch } from '../util/edit-distance.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = CommandDef<any>;

export interface ResolvedCommand {
  readonly command: AnyCommand;
  /** The words that name it: `lockstep aws bootstrap`. */
  readonly name: string;
  /** The arguments after its name. */
  readonly args: readonly string[];
  /** It has sub-commands and none was named (`lockstep aws`): show its usage. */
  readonly incomplete: boolean;
}

const HELP = ['--help', '-h'];

async function resolved<T>(value: T | Promise<T> | (() => T | Promise<T>)): Promise<T> {
  return typeof value === 'function' ? (value as () => T | Promise<T>)() : value;
}

/** Follows the command words (`aws`, `bootstrap`) from the root; an unknown word is refused with the nearest command. */
export async function resolveCommand(root: AnyCommand, rawArgs: readonly string[]): Promise<ResolvedCommand> {
  let command = root;
  let name = 'lockstep';
  let args = [...rawArgs];
  for (;;) {
    const subCommands = (await resolved(command.subCommands)) as Record<string, AnyCommand | (() => Promise<AnyCommand>)> | undefined;
    if (!subCommands || Object.keys(subCommands).length === 0) return { command, name, args, incomplete: false };
    const index = args.findIndex((arg) => !arg.startsWith('-'));
    const before = args.slice(0, index === -1 ? args.length : index).filter((arg) => !HELP.includes(arg));
    if (before.length > 0) {
      throw new UsageError(`Unknown option \`${before[0]}\` of \`${name}\`: options go after the command, as in \`${name} <command> ${before[0]}\` (see \`${name} --help\`)`);
    }
    if (index === -1) return { command, name, args, incomplete: true };
    const word = args[index]!;
    if (!Object.hasOwn(subCommands, word)) {
      const near = closestMatch(word, Object.keys(subCommands));
      const commands = Object.keys(subCommands).join(', ');
      throw new UsageError(`Unknown command \`${word}\`: ${near ? `did you mean \`${name} ${near}\`?` : `the commands of \`${name}\` are ${commands}`} (see \`${name} --help\`)`);
    }
    command = await resolved(subCommands[word]!);
    name = `${name} ${word}`;
    args = args.slice(index + 1);
  }
}

export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => HELP.includes(arg));
}

type NamedArg = ArgDef & { readonly name: string };

/**
 * Refuses any option the command does not take, a boolean given a value other than true/false, a
 * string option without its value, a value outside an enum's choices, a missing positional
 * argument and any argument beyond the command's positionals.
 */
export async function checkArguments(resolvedCommand: ResolvedCommand): Promise<void> {
  const { command, name, args } = resolvedCommand;
  const defs = Object.entries((await resolved(command.args)) ?? {}).map(([argName, def]) => ({ ...(def as ArgDef), name: argName }) as NamedArg);
  const options = defs.filter((d) => d.type !== 'positional');
  const positionals = defs.filter((d) => d.type === 'positional');
  const seeHelp = `see \`${name} --help\``;
  const spellings = new Map<string, NamedArg>();
  for (const def of options) {
    for (const spelling of [def.name, kebab(def.name), camel(def.name), ...aliases(def)]) spellings.set(spelling, def);
  }
  const given: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      given.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      given.push(arg);
      continue;
    }
    if (HELP.includes(arg)) continue;
    const eq = arg.indexOf('=');
    const flag = (eq === -1 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    let def = spellings.get(flag);
    if (!def && flag.startsWith('no-') && spellings.get(flag.slice(3))?.type === 'boolean' && inline === undefined) continue;
    if (!def || (!arg.startsWith('--') && !aliases(def).includes(flag))) {
      const known = options.map((d) => `--${d.name}`);
      const near = closestMatch(`--${flag}`, known);
      const hint = near ? `did you mean \`${near}\`?` : known.length > 0 ? `\`${name}\` takes ${known.join(', ')}` : `\`${name}\` takes no options`;
      throw new UsageError(`Unknown option \`${arg.startsWith('--') ? `--${flag}` : arg}\`: ${hint} (${seeHelp})`);
    }
    def = def!;
    if (def.type === 'boolean') {
      if (inline !== undefined && !['true', 'false'].includes(inline)) throw new UsageError(`\`--${def.name}\` is a switch: give it alone, or as \`--${def.name}=false\` (${seeHelp})`);
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`\`--${def.name}\` needs a value, e.g. \`--${def.name} ${valueHint(def)}\` (${seeHelp})`);
    if (def.type === 'enum' && def.options && !def.options.includes(value)) {
      throw new UsageError(`\`--${def.name}\` takes one of ${def.options.map((o) => `\`${o}\``).join(', ')}, not \`${value}\` (${seeHelp})`);
    }
  }
  for (const [index, def] of positionals.entries()) {
    if (given[index] === undefined && def.required !== false && def.default === undefined) {
      throw new UsageError(`Missing ${placeholder(def)}: \`${usageLine(name, positionals)}\` (${seeHelp})`);
    }
  }
  // A last positional whose value hint ends in `...` (`<folder...>`) takes every argument left.
  const takesRest = positionals.at(-1)?.valueHint?.endsWith('...') === true;
  if (!takesRest && given.length > positionals.length) {
    const extra = given[positionals.length]!;
    const takes = positionals.length === 0 ? 'takes no arguments' : `takes ${positionals.map(placeholder).join(' ')} only`;
    const asOption = closestMatch(`--${extra.replace(/^-+/, '')}`, options.map((d) => `--${d.name}`), 1);
    throw new UsageError(`Unexpected argument \`${extra}\`: ${asOption ? `did you mean \`${asOption}\`? ` : ''}\`${name}\` ${takes} (${seeHelp})`);
  }
}

/** `--help` text; usage lines start with the whole command (`lockstep aws bootstrap`); no colour off a terminal. */
export async function usageOf(resolvedCommand: ResolvedCommand, options: { readonly colour: boolean; readonly version: string }): Promise<string> {
  const words = resolvedCommand.name.split(' ');
  const parent = words.length > 1 ? { meta: { name: words.slice(0, -1).join(' '), version: options.version } } : undefined;
  const text = await renderUsage(resolvedCommand.command, parent);
  return options.colour ? text : stripVTControlCharacters(text);
}

function usageLine(name: string, positionals: readonly NamedArg[]): string {
  return [name, ...positionals.map((d) => (d.required === false || d.default !== undefined ? `[${placeholder(d)}]` : placeholder(d)))].join(' ');
}

function placeholder(def: NamedArg): string {
  return `<${def.valueHint ?? def.name}>`;
}

function valueHint(def: NamedArg): string {
  return `<${def.valueHint ?? kebab(def.name)}>`;
}

function aliases(def: NamedArg): string[] {
  const alias = (def as { alias?: string | string[] }).alias;
  return alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
