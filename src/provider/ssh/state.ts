import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../util/atomic-write.ts';
import type { HostKeyPolicy, SshTarget } from './connection.ts';

/**
 * What this machine knows of an SSH run (`<home>/ssh/runs/<runId>.json`): how to reach each of its
 * hosts and where its instance lives there, so that `lockstep down` (another process) and a
 * controller that comes back can end it. Written before anything is started on a host.
 */
export interface SshRunState {
  readonly runId: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly hostKeys: HostKeyPolicy;
  readonly jump?: SshTarget;
  readonly concurrency: number;
  readonly instances: readonly SshInstanceState[];
}

export interface SshInstanceState {
  readonly id: string;
  readonly target: SshTarget;
  /** Node.js on the host. */
  readonly node: string;
  /** The instance's folder on the host; absent until the host's home folder is known. */
  readonly dir?: string;
  readonly address?: string;
}

const runsDir = (home: string) => join(home, 'ssh', 'runs');

/** Where the end of an agent's own log is kept once its host's folder is removed: `<home>/ssh/logs/<runId>/<instanceId>.log`. */
export const agentLogPath = (home: string, runId: string, instanceId: string) => join(home, 'ssh', 'logs', runId, `${instanceId}.log`);

export async function writeSshRunState(home: string, state: SshRunState): Promise<void> {
  await writeFileAtomic(join(runsDir(home), `${state.runId}.json`), JSON.stringify(state, null, 2));
}

export async function readSshRunStates(home: string, runId?: string): Promise<SshRunState[]> {
  const names = (await readdir(runsDir(home)).catch(() => [] as string[])).filter((n) => n.endsWith('.json') && (runId === undefined || n === `${runId}.json`));
  const states: SshRunState[] = [];
  for (const name of names) {
    try {
      states.push(JSON.parse(await readFile(join(runsDir(home), name), 'utf8')) as SshRunState);
    } catch {
      // Half-written or removed meanwhile.
    }
  }
  return states;
}

export async function removeSshRunState(home: string, runId: string): Promise<void> {
  await rm(join(runsDir(home), `${runId}.json`), { force: true });
}
