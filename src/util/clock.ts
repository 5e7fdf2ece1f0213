import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, constants, getPriority, setPriority } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';

/** Wall-clock epoch milliseconds with sub-millisecond precision. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

export function isoNow(): string {
  return new Date().toISOString();
}

/**
 * How many processes on this machine wake at the coming start time, this one included (1 on a
 * fleet of machines; N when N local instances share one). The barrier sets it when it learns the
 * members; `sleepUntil` and the command's memory sampler keep out of each other's way by it.
 */
let wakers = 1;

export function expectWakers(count: number): void {
  wakers = Math.max(1, Math.floor(count));
}

export function expectedWakers(): number {
  return wakers;
}

/** Whether this machine has a core free for every process that wakes at T. */
export function startIsContended(): boolean {
  return wakers > availableParallelism();
}

const gate = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` (sub-millisecond precision, no CPU spent): the kernel's futex timeout. */
function blockFor(ms: number): void {
  if (ms > 0) Atomics.wait(gate, 0, 0, ms);
}

export interface SleepOptions {
  /**
   * The last this many ms are spent polling the clock. Default: 0.2 when a core is free for every
   * process waking at T, else 0 (spinners would only take the CPU from each other).
   */
  readonly spinMs?: number;
  /** Raise this process's priority while it waits for T, where allowed (root). Default true. */
  readonly boost?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * Waits until the wall-clock time `at` (epoch ms) and returns the time it woke. The event loop's
 * timers (1 ms granularity) sleep until 3 ms before (20 ms when many processes here wake at T); a futex wait with a sub-millisecond timeout
 * does the rest without spending CPU, then a short spin takes out the kernel's timer slack. Where
 * the process may (root), it raises its priority for the wait, so that other work on the machine
 * does not delay its wake-up; `afterStart` puts it back.
 */
export async function sleepUntil(at: number, options: SleepOptions = {}): Promise<number> {
  const spinMs = options.spinMs ?? (startIsContended() ? 0 : 0.2);
  if (options.boost !== false) boostPriority();
  // Many processes waking together on a few cores: be in the futex wait well before T.
  const coarse = at - preciseNow() - (startIsContended() ? 20 : 3);
  if (coarse > 0) await delay(coarse, undefined, { signal: options.signal });
  options.signal?.throwIfAborted();
  blockFor(at - spinMs - preciseNow());
  let now = preciseNow();
  while (now < at) now = preciseNow();
  return now;
}

/** The priorities to go back to after T, when `sleepUntil` raised them. */
let normal: { task: number; group: number | undefined } | undefined;
let restoreTimer: NodeJS.Timeout | undefined;
const BOOSTED = -20;

/**
 * With autogroup scheduling (Linux, most desktops and many servers) every session (an agent, each
 * command wrapper) gets a share of the CPU as a group, and a process's own nice value counts only
 * within its group: the group's nice (`/proc/self/autogroup`) is the one that counts between them.
 */
function autogroupNice(): number | undefined {
  try {
    const match = / nice (-?\d+)/.exec(readFileSync('/proc/self/autogroup', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function setAutogroupNice(value: number): void {
  try {
    writeFileSync('/proc/self/autogroup', String(value));
  } catch {
    // No autogroups here, or not allowed.
  }
}

function boostPriority(): void {
  if (process.platform !== 'linux') return;
  try {
    clearTimeout(restoreTimer);
    const task = getPriority();
    normal ??= { task, group: autogroupNice() };
    if (task > BOOSTED) setPriority(BOOSTED);
    if (normal.group !== undefined) setAutogroupNice(BOOSTED);
  } catch {
    // Not allowed (not root): the wait works all the same.
    normal = undefined;
  }
}

function setPriorities(task: number, group: number | undefined): void {
  try {
    setPriority(task);
  } catch {
    // Nothing more to do.
  }
  if (group !== undefined) setAutogroupNice(group);
}

/**
 * Call right after the command is released at T. A process that raised its priority for the wait
 * now drops below normal for `settleMs`, so that whatever it does after T (records, uploads) yields
 * to the processes on this machine still waking for the same T, then goes back to normal.
 */
export function afterStart(settleMs = startIsContended() ? 1000 : 0): void {
  if (normal === undefined) return;
  const { task, group } = normal;
  const restore = () => {
    setPriorities(task, group);
    normal = undefined;
  };
  if (settleMs <= 0) return restore();
  const low = Math.min(constants.priority.PRIORITY_LOW, task + 10);
  setPriorities(low, group === undefined ? undefined : Math.min(19, group + 10));
  restoreTimer = setTimeout(restore, settleMs);
  restoreTimer.unref();
  // Give up the CPU now: a process that keeps running after T keeps the rest of its time slice, and
  // the peers that wake for the same T wait for it.
  blockFor(Math.min(100, (2 * wakers) / availableParallelism()));
}

let chronyMissing = false;

/**
 * This machine's clock offset from its time reference as chrony reports it (`chronyc tracking`,
 * "System time"), in ms, positive when the clock is ahead; `undefined` without chrony. A machine
 * without chronyc is asked once.
 */
export async function clockOffsetMs(): Promise<number | undefined> {
  if (chronyMissing) return undefined;
  const report = await new Promise<string | undefined>((resolve) => {
    execFile('chronyc', ['tracking'], { timeout: 1000 }, (error, stdout) => {
      if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT') chronyMissing = true;
      resolve(error ? undefined : stdout);
    });
  });
  return report === undefined ? undefined : parseChronyOffset(report);
}

/** "System time     : 0.000012345 seconds slow of NTP time" → -0.012345 (ms). */
export function parseChronyOffset(report: string): number | undefined {
  const match = /^System time\s*:\s*([\d.]+) seconds (fast|slow)/m.exec(report);
  if (!match) return undefined;
  const ms = Number(match[1]) * 1000;
  return match[2] === 'fast' ? ms : -ms;
}
