import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where lockstep keeps what it knows of local instances: `$LOCKSTEP_HOME` or `~/.lockstep`. */
export function lockstepHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.LOCKSTEP_HOME || join(homedir(), '.lockstep');
}

export interface LocalInstanceState {
  readonly id: string;
  readonly pid: number;
  readonly address: string;
  readonly workDir: string;
}

export interface LocalRunState {
  readonly runId: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly instances: readonly LocalInstanceState[];
}

export function localRunsDir(home: string): string {
  return join(home, 'local', 'runs');
}

/** `<home>/local/work/<runId>/<instanceId>/`: the instances' working folders, one folder per run. */
export function localWorkDir(home: string): string {
  return join(home, 'local', 'work');
}

/** Written beside the runs folder first and renamed into it, so a reader never sees half a file. */
export async function writeRunState(home: string, state: LocalRunState): Promise<void> {
  const scratch = join(home, 'local', 'tmp');
  await Promise.all([mkdir(localRunsDir(home), { recursive: true }), mkdir(scratch, { recursive: true })]);
  const tmp = join(scratch, `${state.runId}.${process.pid}.json`);
  await writeFile(tmp, JSON.stringify(state, null, 2));
  await rename(tmp, join(localRunsDir(home), `${state.runId}.json`));
}

export async function readRunStates(home: string): Promise<LocalRunState[]> {
  const dir = localRunsDir(home);
  const names = await readdir(dir).catch(() => [] as string[]);
  const states: LocalRunState[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    try {
      states.push(JSON.parse(await readFile(join(dir, name), 'utf8')) as LocalRunState);
    } catch {
      // Half-written or removed meanwhile.
    }
  }
  return states;
}

export async function removeRunState(home: string, runId: string): Promise<void> {
  await rm(join(localRunsDir(home), `${runId}.json`), { force: true });
}

/** True while `pid` is a live lockstep agent (not a reused pid). */
export async function isAgentAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform !== 'linux') return true;
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return cmdline.includes('agent.mjs') && state !== 'Z';
  } catch {
    return false;
  }
}
