import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import type { Writable } from 'node:stream';
import { afterStart, preciseNow, startIsContended } from '../util/clock.ts';

/**
 * The command runs in a shell that is started ahead of time and holds until it reads a line on
 * fd 3: releasing it at T costs one write, and the shell that runs the command is already there
 * (no process starts at T but the command's own). Its parent, the outer wrapper, reports the CPU
 * time of its children (`times`) on fd 4 after the command and exits with the command's status.
 */
const WRAPPER = [
  `/bin/sh -c 'IFS= read -r _ <&3 || exit 125; exec 3<&-; eval "$LOCKSTEP_COMMAND"' 4>&-`,
  'status=$?',
  'times >&4',
  'exit $status',
].join('\n');

export interface ExecRequest {
  readonly command: string;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  readonly timeoutMs: number;
  /** Time between SIGTERM and SIGKILL when the command times out or is aborted. */
  readonly killGraceMs?: number;
  readonly signal?: AbortSignal;
}

/** The same shape on success and on failure: a failure is data. */
export interface ExecResult {
  readonly command: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly aborted: boolean;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly durationMs: number;
  readonly cpuUserMs: number | null;
  readonly cpuSystemMs: number | null;
  readonly peakMemoryBytes: number | null;
  readonly stdoutPath: string;
  readonly stderrPath: string;
}

export interface PreparedCommand {
  /** The held shell's pid: the command's process group (for signals, or a cgroup before release). */
  readonly pid: number | undefined;
  /** Starts the command now; resolves when it has ended. */
  release(): Promise<ExecResult>;
  /** Ends the held wrapper without running the command. */
  cancel(): void;
}

/** Spawns the wrapper and holds it at the gate; the command starts on `release()`. */
export function prepareCommand(request: ExecRequest): PreparedCommand {
  const stdoutFd = openSync(request.stdoutPath, 'a');
  const stderrFd = openSync(request.stderrPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', WRAPPER], {
      cwd: request.cwd,
      env: { ...process.env, ...request.env, LOCKSTEP_COMMAND: request.command },
      stdio: ['ignore', stdoutFd, stderrFd, 'pipe', 'pipe'],
      detached: true,
    });
  } finally {
    closeSync(stdoutFd);
    closeSync(stderrFd);
  }
  const gate = child.stdio[3] as Writable;
  let timesReport = '';
  child.stdio[4]!.on('data', (chunk: Buffer) => (timesReport += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  gate.on('error', () => {});

  return {
    pid: child.pid,
    cancel() {
      killGroup(child, 'SIGKILL');
    },
    async release() {
      let timedOut = false;
      let aborted = false;
      const stopWith = (flag: 'timeout' | 'abort') => {
        if (flag === 'timeout') timedOut = true;
        else aborted = true;
        killGroup(child, 'SIGTERM');
        setTimeout(() => killGroup(child, 'SIGKILL'), request.killGraceMs ?? 5000).unref();
      };
      const startedAt = preciseNow();
      openGate(gate);
      afterStart();
      gate.end();
      const timer = setTimeout(() => stopWith('timeout'), request.timeoutMs);
      const onAbort = () => stopWith('abort');
      request.signal?.addEventListener('abort', onAbort, { once: true });
      const memory = child.pid !== undefined ? sampleGroupMemory(child.pid) : undefined;
      const { code, signal } = await exited;
      const endedAt = preciseNow();
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
      const peakMemoryBytes = memory ? await memory.stop() : null;
      const cpu = parseTimes(timesReport);
      // The wrapper reports a command killed by signal n as status 128 + n.
      const bySignal = code !== null && code > 128 && code < 128 + 65 ? signalName(code - 128) : null;
      return {
        command: request.command,
        exitCode: signal !== null || bySignal !== null ? null : code,
        signal: signal ?? bySignal,
        timedOut,
        aborted,
        startedAt,
        endedAt,
        durationMs: endedAt - startedAt,
        cpuUserMs: cpu?.userMs ?? null,
        cpuSystemMs: cpu?.systemMs ?? null,
        peakMemoryBytes,
        stdoutPath: request.stdoutPath,
        stderrPath: request.stderrPath,
      };
    },
  };
}

/** Runs a command at once (setup): the same result shape. */
export function runCommand(request: ExecRequest): Promise<ExecResult> {
  return prepareCommand(request).release();
}

/** Writes the line the command's shell waits for: one write(2), no stream machinery at T. */
function openGate(gate: Writable): void {
  const fd = (gate as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd === 'number' && fd >= 0) {
    try {
      writeSync(fd, '\n');
      return;
    } catch {
      // Fall back to the stream.
    }
  }
  gate.write('\n');
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function signalName(number: number): string | null {
  return Object.entries(constants.signals).find(([, n]) => n === number)?.[0] ?? null;
}

/** `times` prints the shell's own times, then its children's: `0m0.010000s 0m0.002000s`. */
export function parseTimes(report: string): { userMs: number; systemMs: number } | undefined {
  const lines = report.trim().split('\n');
  const children = lines[lines.length - 1];
  if (lines.length < 2 || !children) return undefined;
  const values = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => (Number(m[1]) * 60 + Number(m[2])) * 1000);
  if (values.length < 2) return undefined;
  return { userMs: values[0]!, systemMs: values[1]! };
}

/**
 * Samples the peak resident memory (VmHWM) of every process in the group but the wrapper. The first
 * sample waits until the start has settled when many processes on this machine start at the same T
 * (a scan of /proc then would delay the ones still waking), else it comes soon, so that short
 * commands are seen too. Linux only (reads /proc); elsewhere the figure is null.
 */
function sampleGroupMemory(groupId: number): { stop(): Promise<number | null> } {
  if (process.platform !== 'linux') return { stop: async () => null };
  let peak = 0;
  let stopped = false;
  let interval = startIsContended() ? 250 + Math.random() * 250 : 20;
  let timer: NodeJS.Timeout | undefined;
  const sample = async () => {
    peak = Math.max(peak, await groupPeakBytes(groupId));
    if (stopped) return;
    interval = Math.min(1000, interval * 2);
    timer = setTimeout(sample, interval);
  };
  timer = setTimeout(sample, interval);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      return peak > 0 ? peak : null;
    },
  };
}

/** The sum of the peak resident memory of the group's processes, the wrapper left out. */
async function groupPeakBytes(groupId: number): Promise<number> {
  let total = 0;
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === groupId) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) start at state; pgrp is the 3rd of them.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== groupId) continue;
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      const kib = /^VmHWM:\s*(\d+) kB/m.exec(status)?.[1] ?? /^VmRSS:\s*(\d+) kB/m.exec(status)?.[1];
      total += Number(kib ?? 0) * 1024;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

/** The last `count` non-empty lines of a file (read from its last 16 KiB), for messages about a failed command. */
export async function lastLines(path: string, count: number): Promise<string[]> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    const { size } = await handle.stat();
    const length = Math.min(size, 16 * 1024);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
    // The first line may have been cut by the 16 KiB window.
    return lines.slice(size > length ? Math.max(1, lines.length - count) : -count).map((l) => (l.length > 240 ? `${l.slice(0, 239)}…` : l));
  } catch {
    return [];
  } finally {
    await handle?.close();
  }
}
