/** Options several commands share. */
export const storeArg = {
  type: 'string',
  description: 'Store locator: a folder or s3://bucket/prefix (default: $LOCKSTEP_STORE, else .lockstep/store)',
  valueHint: 'locator',
} as const;

/** `--store` of a command that works on an existing run: by default the run's own store is found. */
export const runStoreArg = {
  ...storeArg,
  description: 'Store locator of the run (default: the store it ran with, found among the stores lockstep knows; see `lockstep ls`)',
} as const;

export const jsonArg = { type: 'boolean', description: 'Print JSON instead of text', default: false } as const;

/** Every `--set key=value` given (citty keeps only the last of a repeated option). */
export function repeatedOption(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === `--${name}` && i + 1 < rawArgs.length) values.push(rawArgs[++i]!);
    else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
  }
  return values;
}
