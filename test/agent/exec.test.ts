import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTimes, prepareCommand, runCommand } from '../../src/agent/exec.ts';
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
