import { readdirSync, readFileSync } from 'node:fs';

/**
 * Processes found by their environment (Linux /proc; elsewhere none are found). Every process an
 * agent starts (setup, the command and whatever it starts) inherits `LOCKSTEP_RUN_ID` and
 * `LOCKSTEP_INSTANCE_ID`, so the processes an agent left behind when it died can be found again by
 * the agent that replaces it, or by `lockstep gc`.
 */
export interface FoundProcess {
  readonly pid: number;
  /** Process group id. */
  readonly group: number;
  readonly env: ReadonlyMap<string, string>;
}

/** Live processes (not zombies, not this one) whose environment satisfies `match`. */
export function processesWhere(match: (env: ReadonlyMap<string, string>) => boolean): FoundProcess[] {
  if (process.platform !== 'linux') return [];
  const found: FoundProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const env = parseEnviron(readFileSync(`/proc/${entry}/environ`, 'utf8'));
      if (match(env)) found.push({ pid: Number(entry), group: Number(fields[2]), env });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** Live processes of process group `group` (Linux /proc; elsewhere none). */
export function groupMembers(group: number): number[] {
  if (process.platform !== 'linux') return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z' && Number(fields[2]) === group) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** The processes of one instance of one run: setup, commands and what they started. */
export function processesOfInstance(runId: string, instanceId: string): FoundProcess[] {
  return processesWhere((env) => env.get('LOCKSTEP_RUN_ID') === runId && env.get('LOCKSTEP_INSTANCE_ID') === instanceId);
}

/**
 * SIGKILLs each process and its process group (commands run in groups of their own), except this
 * process and its own group. Returns how many processes were signalled.
 */
export function killProcesses(processes: readonly FoundProcess[]): number {
  const ownGroup = safeGroupOfSelf();
  let killed = 0;
  for (const { pid, group } of processes) {
    if (pid === process.pid) continue;
    if (group > 1 && group !== ownGroup) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    }
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // Gone already.
    }
  }
  return killed;
}

function parseEnviron(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

function safeGroupOfSelf(): number {
  try {
    const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return -1;
  }
}
