import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * A system binary (`ip`, `tc`, `nft`): from `$LOCKSTEP_<NAME>` when set (tests point it elsewhere; a path that does not exist: none), else the
 * PATH, else the sbin folders (a user's PATH may lack them).
 */
export function findSystemBinary(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = env[`LOCKSTEP_${name.toUpperCase()}`];
  if (override) return existsSync(override) ? override : undefined;
  const folders = [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/sbin'];
  return folders.map((folder) => join(folder, name)).find((path) => existsSync(path));
}

/** Exit code of a tool that is not installed (as a shell reports it). */
export const NOT_INSTALLED = 127;
