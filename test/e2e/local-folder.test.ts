import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { layout } from '../../src/core/layout.ts';
import { createLocalProvider } from '../../src/provider/local/local.ts';
import { localRunsDir } from '../../src/provider/local/state.ts';
import { openStore } from '../../src/store/open.ts';
import { runProbe } from '../helpers/local-run.ts';
import { localRunSuite } from './local-run.ts';

describe('a local run with a folder store', () => {
  localRunSuite(() => undefined);
});

describe('a `setup` that fails', () => {
  const cases = [
    // The failure names the exit code and the last line of output (stderr's, else stdout's); `lockstep logs --setup` shows the rest.
    { what: 'exits non-zero', setup: 'setup: "echo preparing; echo broken >&2; exit 4"', error: /^setup failed \(exit 4\): broken$/, exitCode: 4, output: ['broken'], stderr: 'broken\n' },
    { what: 'outlives `timeouts.setup`', setup: 'setup: "echo preparing; sleep 60"', error: /^setup timed out after 2(\.00)? s: preparing$/, exitCode: null, output: ['preparing'], stderr: '' },
  ];
  for (const c of cases) {
    it(`${c.what}: every repeat of every instance is recorded as failed at setup, the command never runs, the setup logs are stored, the instances end`, async () => {
      const { outcome, home } = await runProbe({ instances: 2, repeats: 2, extra: ['  setup: 2s', c.setup] });
      expect(outcome.ok).toBe(false);
      expect(outcome.status.state).toBe('failed');
      const ids = outcome.status.instances.map((i) => i.instanceId).sort();
      expect(ids).toHaveLength(2);
      for (const repeat of outcome.status.repeats) {
        expect(repeat.state).toBe('not run');
        expect(repeat.results).toEqual([]);
        expect(repeat.failures.map((f) => f.instanceId).sort()).toEqual(ids);
        for (const failure of repeat.failures) {
          expect(failure.stage).toBe('setup');
          expect(failure.error).toMatch(c.error);
          expect(failure).toMatchObject({ exitCode: c.exitCode, output: c.output });
        }
      }
      const store = await openStore(outcome.store);
      try {
        for (const id of ids) {
          expect(Buffer.from((await store.get(layout.setupLog(outcome.runId, id, 'stdout')))!).toString()).toBe('preparing\n');
          expect(Buffer.from((await store.get(layout.setupLog(outcome.runId, id, 'stderr')))!).toString()).toBe(c.stderr);
        }
        expect(await store.list(layout.readyPrefix(outcome.runId, 1))).toEqual([]);
      } finally {
        await store.dispose();
      }
      expect((await createLocalProvider({ home }).list(outcome.runId)).filter((i) => i.state === 'running')).toEqual([]);
      expect(readdirSync(localRunsDir(home))).toEqual([]);
    });
  }
});
