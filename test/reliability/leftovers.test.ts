/**
 * The suite's end-of-run check for stray processes (test/global-setup.ts) is real: it finds a
 * process lockstep would have started, by its command line or by its environment, and does not
 * count processes that merely run under vitest.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesMentioning } from '../global-setup.ts';
import { tempDir } from '../helpers/temp.ts';
import { alive, waitFor } from './harness.ts';

function sleeper(env: Record<string, string>, args: string[] = []): number {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', ...args], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH ?? '', ...env } });
  child.unref();
  return child.pid!;
}

describe('the check for processes left running', () => {
  it('finds an agent-like process by LOCKSTEP_WORKDIR, a controller by LOCKSTEP_HOME, a server by its command line', async () => {
    const dir = tempDir('leftover');
    const pids = [
      sleeper({ LOCKSTEP_WORKDIR: join(dir, 'home', 'local', 'work', 'r', 'i') }),
      sleeper({ LOCKSTEP_HOME: join(dir, 'home') }),
      sleeper({}, [join(dir, 's3rver-data')]),
    ];
    const unrelated = sleeper({ LOCKSTEP_TEST_ROOT: dir });
    try {
      await waitFor('the processes to start', () => [...pids, unrelated].every(alive));
      const found = processesMentioning(dir).map((p) => p.pid);
      expect(found.sort()).toEqual([...pids].sort());
    } finally {
      for (const pid of [...pids, unrelated]) process.kill(pid, 'SIGKILL');
    }
    await waitFor('them to end', () => processesMentioning(dir).length === 0);
  });
});
