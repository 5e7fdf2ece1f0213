import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planSweep, runSweep } from '../../src/controller/sweep.ts';
import { createLocalProvider } from '../../src/provider/local/local.ts';
import type { Provider } from '../../src/provider/provider.ts';
import { readSweepRecord } from '../../src/results/sweep-layout.ts';
import { loadSpec, SpecError } from '../../src/spec/load.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { tempDir } from '../helpers/temp.ts';

function sweepSpec(matrix: string): { dir: string; file: string } {
  const dir = tempDir('sweep');
  mkdirSync(join(dir, 'app'));
  writeFileSync(join(dir, 'app', 'hello.sh'), 'echo "mode $1 of $LOCKSTEP_N"\n');
  const file = join(dir, 'spec.yaml');
  writeFileSync(file, `name: sw\ninstances: 1\nartifact: ./app\nrun: sh hello.sh {{params.mode}}\nstartDelay: 200ms\nparams:\n  mode: a\nmatrix:\n${matrix}`);
  return { dir, file };
}

describe('runSweep', () => {
  it('records each point’s run in the sweep record before its instances launch', async () => {
    const { dir, file } = sweepSpec('  params.mode: [a, b]\n');
    const storePath = join(dir, 'store');
    const local = createLocalProvider({ home: join(dir, 'home') });
    const recordedAtLaunch: Array<string | undefined> = [];
    let sweepId = '';
    // The provider reads the sweep record when asked to launch: the run must be in it already.
    const provider: Provider = {
      ...local,
      async launch(request) {
        const store = createFolderStore({ root: storePath });
        const record = await readSweepRecord(store, sweepId);
        recordedAtLaunch.push(record?.points.find((p) => p.runId === request.runId)?.runId);
        return local.launch(request);
      },
    };
    const plan = planSweep(loadSpec(file));
    const outcome = await runSweep({
      plan,
      store: storePath,
      provider,
      pollIntervalMs: 100,
      onSweepEvent: (event) => {
        if (event.type === 'sweep') sweepId = event.sweepId;
      },
    });
    expect(outcome.ok).toBe(true);
    expect(outcome.runs.map((r) => r.values)).toEqual([{ 'params.mode': 'a' }, { 'params.mode': 'b' }]);
    expect(recordedAtLaunch).toEqual(outcome.runs.map((r) => r.runId));
    const record = await readSweepRecord(createFolderStore({ root: storePath }), outcome.sweepId);
    expect(record?.points.map((p) => p.runId)).toEqual(outcome.runs.map((r) => r.runId));
  });

  it('stops after the point that was interrupted; the points after it have no run', async () => {
    const { dir, file } = sweepSpec('  params.mode: [a, b, c]\n');
    const interrupt = new AbortController();
    const outcome = await runSweep({
      plan: planSweep(loadSpec(file)),
      store: join(dir, 'store'),
      home: join(dir, 'home'),
      pollIntervalMs: 100,
      signal: interrupt.signal,
      runPoint: async (options) => {
        const { runExperiment } = await import('../../src/controller/run.ts');
        const outcome = await runExperiment(options);
        interrupt.abort();
        return outcome;
      },
    });
    expect(outcome.interrupted).toBe(true);
    expect(outcome.ok).toBe(false);
    expect(outcome.runs.map((r) => r.runId !== undefined)).toEqual([true, false, false]);
  });

  it('refuses a bad point before anything starts, pointing at its matrix line', () => {
    const { dir, file } = sweepSpec('  instances: [2, 0]\n');
    const refused = (() => {
      try {
        planSweep(loadSpec(file, { cwd: dir }), { cwd: dir });
      } catch (error) {
        return error as SpecError;
      }
    })();
    expect(refused).toBeInstanceOf(SpecError);
    expect(refused!.message).toBe('spec.yaml:9:3 (matrix point instances=0): instances: Expected a number greater than 0, got `0`');
  });
});
