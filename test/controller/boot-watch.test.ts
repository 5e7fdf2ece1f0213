import { describe, expect, it } from 'vitest';
import { bootVerdict, BootWatch, formatBootFailures } from '../../src/controller/boot-watch.ts';
import { layout } from '../../src/core/layout.ts';
import type { Provider } from '../../src/provider/provider.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { tempDir } from '../helpers/temp.ts';


describe('bootVerdict', () => {
  const launched = ['i-a', 'i-b', 'i-c'];
  it.each([
    { name: 'all reported before the deadline', reported: ['i-a', 'i-b', 'i-c'], logs: [], failed: [], now: 5, want: [] },
    { name: 'still booting before the deadline', reported: ['i-a'], logs: [], failed: [], now: 5, want: [] },
    { name: 'a boot log before the deadline fails that one at once', reported: ['i-a'], logs: ['i-b'], failed: [], now: 5, want: [['i-b', 'boot-log']] },
    { name: 'at the deadline the rest time out', reported: ['i-a'], logs: ['i-b'], failed: [], now: 10, want: [['i-b', 'boot-log'], ['i-c', 'timeout']] },
    { name: 'an instance already failed is not failed again', reported: ['i-a'], logs: ['i-b'], failed: ['i-b'], now: 10, want: [['i-c', 'timeout']] },
    { name: 'a boot log of an instance that reported (its agent crashed later) is no boot failure', reported: ['i-a', 'i-b', 'i-c'], logs: ['i-b'], failed: [], now: 10, want: [] },
  ])('$name', ({ reported, logs, failed, now, want }) => {
    const verdict = bootVerdict({ launched, reported: new Set(reported), withBootLog: new Set(logs), failed: new Set(failed), now, deadline: 10 });
    expect(verdict.map((v) => [v.instanceId, v.because])).toEqual(want);
  });
});

describe('BootWatch', () => {
  it('fails an instance as soon as its boot log is in the store, the others at the deadline with their console output, and says why', async () => {
    const store = createFolderStore({ root: tempDir('boot-watch') });
    const provider = {
      kind: 'test',
      launch: async () => [],
      list: async () => [],
      terminate: async () => {},
      consoleOutput: async (id: string) => (id === 'i-c' ? 'kernel: booting\ncloud-init: no datasource' : undefined),
    } satisfies Provider & { consoleOutput(id: string): Promise<string | undefined> };
    const launched = [
      { id: 'i-a', region: 'eu-west-1' },
      { id: 'i-b', region: 'eu-west-1' },
      { id: 'i-c', region: 'us-east-1' },
      { id: 'i-d' },
    ];
    const watch = new BootWatch(store, provider, 'r-1', launched, 30_000, 1_000);
    expect(await watch.check(2_000)).toEqual([]);
    expect(watch.pending).toBe(true);

    await store.put(
      layout.bootLog('r-1', 'i-b'),
      '2030-01-01T00:00:00.000Z lockstep-boot: [node] looking for Node.js >= 20\n2030-01-01T00:00:01.000Z lockstep-boot: FAILED at step node: no tar\n',
    );
    await store.put(layout.instance('r-1', 'i-a'), '{}');
    const early = await watch.check(3_000);
    expect(early).toEqual([
      {
        instanceId: 'i-b',
        region: 'eu-west-1',
        source: 'boot-log',
        reason: 'boot failed at step node: no tar',
        log: '2030-01-01T00:00:00.000Z lockstep-boot: [node] looking for Node.js >= 20\n2030-01-01T00:00:01.000Z lockstep-boot: FAILED at step node: no tar',
      },
    ]);
    expect(watch.healthy).toBe(3);

    const late = await watch.check(31_000);
    expect(late).toEqual([
      { instanceId: 'i-c', region: 'us-east-1', source: 'console', reason: 'did not report within timeouts.boot (30.0 s)', log: 'kernel: booting\ncloud-init: no datasource' },
      { instanceId: 'i-d', source: 'none', reason: 'did not report within timeouts.boot (30.0 s)', log: '' },
    ]);
    expect(watch.pending).toBe(false);
    expect(watch.healthy).toBe(1);
    expect(watch.failed.map((f) => f.instanceId)).toEqual(['i-b', 'i-c', 'i-d']);
    // Nothing more to look at: no store request.
    expect(await watch.check(40_000)).toEqual([]);

    expect(formatBootFailures(watch.failed)).toBe(
      [
        '3 instance(s) did not boot:',
        '  i-b (eu-west-1): boot failed at step node: no tar',
        '    its boot log (last lines):',
        '      2030-01-01T00:00:00.000Z lockstep-boot: [node] looking for Node.js >= 20',
        '      2030-01-01T00:00:01.000Z lockstep-boot: FAILED at step node: no tar',
        '  i-c (us-east-1): did not report within timeouts.boot (30.0 s)',
        '    no boot log in the store; its console output (last lines):',
        '      kernel: booting',
        '      cloud-init: no datasource',
        '  i-d: did not report within timeouts.boot (30.0 s)',
        '    no boot log in the store, and no console output',
      ].join('\n'),
    );
  });
});
