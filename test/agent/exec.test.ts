import { readFileSync } from 'node:fs';
import { availableParallelism, getPriority } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTimes, prepareCommand, runCommand } from '../../src/agent/exec.ts';
import { afterStart, expectWakers, parseChronyOffset, preciseNow, sleepUntil } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp.ts';

function request(command: string, timeoutMs = 10_000) {
  const dir = tempDir('exec');
  return { command, cwd: dir, env: { LOCKSTEP_RANK: '5' }, stdoutPath: join(dir, 'out.log'), stderrPath: join(dir, 'err.log'), timeoutMs, killGraceMs: 500 };
}

describe('running a command', () => {
  it('captures stdout, stderr, the exit code and the environment', async () => {
    const r = request('echo "rank $LOCKSTEP_RANK"; echo oops >&2; exit 3');
    const result = await runCommand(r);
    expect(result).toMatchObject({ exitCode: 3, signal: null, timedOut: false });
    expect(readFileSync(r.stdoutPath, 'utf8')).toBe('rank 5\n');
    expect(readFileSync(r.stderrPath, 'utf8')).toBe('oops\n');
    expect(result.endedAt).toBeGreaterThanOrEqual(result.startedAt);
  });

  it('holds the command until released', async () => {
    const r = request('date +%s%N');
    const prepared = prepareCommand(r);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(readFileSync(r.stdoutPath, 'utf8')).toBe('');
    const result = await prepared.release();
    const ranAtMs = Number(readFileSync(r.stdoutPath, 'utf8').trim()) / 1e6;
    expect(ranAtMs).toBeGreaterThanOrEqual(result.startedAt - 5);
  });

  it('reports a command killed by a signal', async () => {
    const result = await runCommand(request('kill -KILL $$'));
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe('SIGKILL');
  });

  it('kills the whole process group on timeout', async () => {
    const r = request('sleep 30 & sleep 30; echo never', 300);
    const result = await runCommand(r);
    expect(result.timedOut).toBe(true);
    expect(result.durationMs).toBeLessThan(10_000);
    expect(readFileSync(r.stdoutPath, 'utf8')).toBe('');
  });

  it('measures CPU time and peak memory of the command', async () => {
    const result = await runCommand(request(`${process.execPath} -e "const a = Buffer.alloc(64 * 1024 * 1024, 1); let x = 0; for (let i = 0; i < 3e7; i++) x += i; setTimeout(() => console.log(a[5] + x), 200)"`));
    expect(result.exitCode).toBe(0);
    expect(result.cpuUserMs).toBeGreaterThan(0);
    expect(result.peakMemoryBytes).toBeGreaterThan(64 * 1024 * 1024);
  });

  it('parses the shell `times` report', () => {
    expect(parseTimes('0m0.001000s 0m0.002000s\n1m2.500000s 0m0.250000s\n')).toEqual({ userMs: 62_500, systemMs: 250 });
    expect(parseTimes('')).toBeUndefined();
  });
});

describe('the command at T', () => {
  it('runs a command of several statements in the waiting shell, with its exit code', async () => {
    const r = request('x=4; echo "x=$x"; exit $x');
    const result = await runCommand(r);
    expect(result.exitCode).toBe(4);
    expect(readFileSync(r.stdoutPath, 'utf8')).toBe('x=4\n');
  });

  it('never runs a cancelled command', async () => {
    const r = request('echo ran');
    prepareCommand(r).cancel();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(readFileSync(r.stdoutPath, 'utf8')).toBe('');
  });

  it('still measures peak memory when many processes here start at the same T', async () => {
    expectWakers(availableParallelism() * 8);
    try {
      const result = await runCommand(request(`${process.execPath} -e "const a = Buffer.alloc(64 * 1024 * 1024, 1); setTimeout(() => console.log(a[5]), 1200)"`));
      expect(result.peakMemoryBytes).toBeGreaterThan(64 * 1024 * 1024);
    } finally {
      expectWakers(1);
    }
  });
});

describe('waiting for T', () => {
  it('wakes at T, not before, and leaves the process priority as it found it', async () => {
    const before = getPriority();
    const at = preciseNow() + 50;
    const woke = await sleepUntil(at);
    afterStart();
    // How soon after T it wakes is the bench's start-skew figure, not a test's.
    expect(woke).toBeGreaterThanOrEqual(at);
    expect(getPriority()).toBe(before);
  });

  it('reads the clock offset chrony reports', () => {
    expect(parseChronyOffset('Reference ID    : A9FEA97B (169.254.169.123)\nSystem time     : 0.000012345 seconds slow of NTP time\n')).toBeCloseTo(-0.012345, 9);
    expect(parseChronyOffset('System time     : 0.001500000 seconds fast of NTP time')).toBeCloseTo(1.5, 9);
    expect(parseChronyOffset('506 Cannot talk to daemon')).toBeUndefined();
  });
});
