import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FaultEvent } from '../../src/core/faults.ts';
import { prepareCommand } from '../../src/agent/exec.ts';
import { signalGroup } from '../../src/agent/faults/node-faults.ts';
import { FaultSession, type FaultMechanics } from '../../src/agent/faults/session.ts';
import { tempDir } from '../helpers/temp.ts';

/**
 * One node's fault session with real processes and real signals; partitions and network changes
 * are recorded instead of applied (nft.test.ts and the netns runs apply them for real).
 */

/** A command that prints `tick <epoch ms>` every 10 ms, `ms` long (or until killed). */
const TICKER = (ms: number) => `node -e "console.log('start ' + process.pid); const end = Date.now() + ${ms}; const t = setInterval(() => { console.log('tick ' + Date.now()); if (Date.now() > end) { clearInterval(t); } }, 10)"`;

/**
 * Starts `command` (as the agent does at T), waits until it has printed its first line, and takes
 * that moment as T: the windows' offsets count from a command that runs.
 */
async function node(command: string, events: FaultEvent[], options: { signal?: AbortSignal; waitForOutput?: boolean } = {}) {
  const dir = tempDir('fault-session');
  const stdoutPath = join(dir, 'stdout.log');
  writeFileSync(stdoutPath, '');
  const prepare = () => prepareCommand({ command, cwd: dir, env: {}, stdoutPath, stderrPath: join(dir, 'stderr.log'), timeoutMs: 30_000, killGraceMs: 500, signal: options.signal });
  const applied: string[] = [];
  const mechanics: FaultMechanics = {
    partition: async (event, addresses) => (applied.push(`cut ${event.id} ${addresses.join(',')}`), { detail: `cut ${addresses.join(',')}`, heal: async () => void applied.push(`heal ${event.id}`) }),
    network: async (event) => (applied.push(`impair ${event.id}`), { detail: 'impaired', heal: async () => void applied.push(`heal ${event.id}`) }),
    signal: signalGroup,
  };
  const output = () => readFileSync(stdoutPath, 'utf8').split('\n').filter(Boolean);
  const first = prepare();
  const ended = first.release();
  while ((options.waitForOutput ?? true) && output().length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const startAt = Date.now();
  const session = new FaultSession(
    { events, startAt, rank: 0, addresses: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], mechanics, prepareRun: prepare, signal: options.signal },
    { pid: first.pid, ended },
  );
  return { session, applied, startAt, output };
}

const event = (fields: Partial<FaultEvent> & Pick<FaultEvent, 'action' | 'atMs'>): FaultEvent => ({ id: `${fields.action}#1`, entry: 0, occurrence: 1, repeats: [1], targets: [0], ...fields });
const ticks = (lines: string[]) => lines.filter((l) => l.startsWith('tick ')).map((l) => Number(l.slice(5)));

describe('a node\'s fault session', () => {
  it('pauses the command for its window: no progress inside it, progress after', async () => {
    const { session, output } = await node(TICKER(1200), [event({ action: 'pause', atMs: 300, durationMs: 400 })]);
    const { faults, runs } = await session.finished();
    const [pause] = faults;
    expect(pause).toMatchObject({ action: 'pause', healedBy: 'window' });
    expect(pause!.detail).toMatch(/^SIGSTOP to process group \d+$/);
    const times = ticks(output());
    // Stamped in whole ms, a tick just before the stop or just after the continue may round into the
    // window's edges; none is stamped inside it.
    expect(times.filter((t) => t > pause!.appliedAt! + 2 && t < pause!.healDueAt! - 2), JSON.stringify(pause)).toEqual([]);
    expect(times.some((t) => t < pause!.appliedAt!)).toBe(true);
    expect(times.some((t) => t > pause!.healedAt!)).toBe(true);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ exitCode: 0 });
  });

  it('restarts the command after its downtime: two runs, the first killed by the fault', async () => {
    const { session, output } = await node(TICKER(600), [event({ id: '0#1', action: 'restart', atMs: 250, durationMs: 150 })]);
    const { runs, faults, results } = await session.finished();
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatchObject({ signal: 'SIGKILL', exitCode: null, endedBy: '0#1' });
    expect(runs[1]).toMatchObject({ exitCode: 0 });
    // Down from the fault's time until its downtime is over.
    expect(runs[1]!.startedAt).toBeGreaterThanOrEqual(faults[0]!.healDueAt! - 1);
    expect(results).toHaveLength(2);
    expect(faults[0]).toMatchObject({ id: '0#1', healedBy: 'window' });
    expect(faults[0]!.detail).toMatch(/^SIGKILL to process group (\d+); started again as process group (?!\1)\d+$/);
    expect(output().filter((l) => l.startsWith('start '))).toHaveLength(2);
  });

  it('ends a killed command for good, and skips what was still to come', async () => {
    const { session, applied } = await node(TICKER(5000), [
      event({ id: '0#1', action: 'kill', atMs: 200 }),
      event({ id: '1#1', action: 'partition', atMs: 100, durationMs: 3000, partition: { kind: 'sides', sides: [[0], [1, 2]] } }),
      event({ id: '2#1', action: 'network', atMs: 2000, durationMs: 100, impairment: { delayMs: 10 } }),
    ]);
    const started = Date.now();
    const { runs, faults } = await session.finished();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(runs).toEqual([expect.objectContaining({ signal: 'SIGKILL', endedBy: '0#1' })]);
    expect(applied).toEqual(['cut 1#1 10.0.0.2,10.0.0.3', 'heal 1#1']);
    expect(faults.find((f) => f.id === '1#1')).toMatchObject({ healedBy: 'end' });
    expect(faults.find((f) => f.id === '2#1')).toMatchObject({ skipped: 'the command had ended' });
  });

  it('brings a killed command back with a later restart', async () => {
    const { session } = await node(TICKER(400), [event({ id: '0#1', action: 'kill', atMs: 100 }), event({ id: '1#1', action: 'restart', atMs: 300, durationMs: 50 })]);
    const { runs, faults } = await session.finished();
    expect(runs.map((r) => r.endedBy ?? r.exitCode)).toEqual(['0#1', 0]);
    expect(faults.find((f) => f.id === '1#1')!.detail).toMatch(/^the command was down already; started again/);
  });

  it('heals a pause when the run is aborted, so that the command can end', async () => {
    const abort = new AbortController();
    const { session } = await node(TICKER(20_000), [event({ action: 'pause', atMs: 100, durationMs: 20_000 })], { signal: abort.signal });
    setTimeout(() => abort.abort('aborted'), 400);
    const { faults, results } = await session.finished();
    expect(faults[0]).toMatchObject({ healedBy: 'abort' });
    expect(results[0]).toMatchObject({ aborted: true, signal: 'SIGTERM' });
  });

  it('records windows that came after the command ended as skipped', async () => {
    const { session, applied } = await node('true', [event({ action: 'partition', atMs: 500, durationMs: 100, partition: { kind: 'sides', sides: [[0], [1]] } })], { waitForOutput: false });
    const { faults } = await session.finished();
    expect(applied).toEqual([]);
    expect(faults).toEqual([expect.objectContaining({ skipped: 'the command had ended' })]);
  });
});
