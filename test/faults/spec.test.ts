import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/spec/load.ts';
import { refused } from '../helpers/spec.ts';

const base = [
  'name: demo',
  'instances: 5',
  'repeats: 2',
  'run: echo {{rank}}',
  'timeouts: { run: 60s }',
  'provider: { kind: local, isolation: netns }',
  'groups:',
  '  - { name: left, ranks: "0-1" }',
  '  - { name: right, ranks: "2-4" }',
  '  - { name: nobody, fraction: 0.05 }',
].join('\n');

const withFaults = (...lines: string[]) => `${base}\nfaults:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
const load = (text: string) => parseSpec(text, { file: 'spec.yaml' }).spec;

describe('faults in the spec', () => {
  it('reads every action with its timing, targets and shorthands', () => {
    const spec = load(
      withFaults(
        '- { action: kill, at: 5s, targets: "0" }',
        '- { action: restart, at: 2s, every: 10s, count: 3, downtime: 1s, targets: { random: { fraction: 0.34, seed: 7 } } }',
        '- { action: pause, at: 1s, duration: 2s, targets: { groups: [left] }, repeats: 2 }',
        '- { action: partition, at: 3s, duration: 4s, sides: ["0-1", { groups: [right] }] }',
        '- { action: partition, at: 10s, duration: 4s, shape: isolate, targets: [4] }',
        '- { action: partition, at: 20s, duration: 4s, shape: halves, seed: 3, repeats: "1-" }',
        '- { action: network, at: 30s, duration: 5s, delay: 100ms, loss: 5%, targets: all }',
      ),
    );
    expect(spec.faults).toEqual([
      { action: 'kill', at: 5000, targets: { ranks: '0' } },
      { action: 'restart', at: 2000, every: 10_000, count: 3, downtime: 1000, targets: { random: { fraction: 0.34, seed: 7 } } },
      { action: 'pause', at: 1000, duration: 2000, targets: { groups: ['left'] }, repeats: 2 },
      { action: 'partition', at: 3000, duration: 4000, sides: [{ ranks: '0-1' }, { groups: ['right'] }] },
      { action: 'partition', at: 10_000, duration: 4000, shape: 'isolate', targets: { ranks: [4] } },
      { action: 'partition', at: 20_000, duration: 4000, shape: 'halves', seed: 3, repeats: '1-' },
      { action: 'network', at: 30_000, duration: 5000, targets: { ranks: '0-' }, impairment: { delayMs: 100, lossPercent: 5 } },
    ]);
  });

  // Each bad entry gets one error naming the key path, the line, what is wrong and the fix.
  it.each([
    ['an unknown action', '- { action: crash, targets: "0" }', 'faults.0.action', /Expected one of `kill`, `restart`/],
    ['an unknown key, with a suggestion', '- { action: kill, targets: "0", atr: 5s }', 'faults.0.atr', /Unknown key `atr`: did you mean `at`\?/],
    ['an unknown key in targets, with the keys it takes', '- { action: kill, targets: { rnd: 1 } }', 'faults.0.targets.rnd', /Unknown key `rnd`: remove it, or use one of: ranks, groups, random$/],
    ['a target rank ≥ N', '- { action: kill, targets: "3-7" }', 'faults.0.targets.ranks', /Target rank 5 is outside 0..4 for 5 instances/],
    ['a target list with a rank ≥ N', '- { action: pause, duration: 1s, targets: [1, 9] }', 'faults.0.targets.ranks', /Target rank 9 is outside 0..4/],
    ['an unknown group', '- { action: kill, targets: { groups: [middle] } }', 'faults.0.targets.groups.0', /No group named `middle` in `groups`: name one of `left`, `right`, `nobody`/],
    ['targets that name no rank', '- { action: kill, targets: { groups: [nobody] } }', 'faults.0.targets', /name no rank/],
    ['a random count above N', '- { action: kill, targets: { random: { count: 6 } } }', 'faults.0.targets.random.count', /Cannot pick 6 of 5 instances/],
    ['a random choice with both count and fraction', '- { action: kill, targets: { random: { count: 1, fraction: 0.5 } } }', 'faults.0.targets.random', /exactly one of `count` or `fraction`/],
    ['targets with two kinds', '- { action: kill, targets: { ranks: "0", groups: [left] } }', 'faults.0.targets', /exactly one of `ranks`, `groups` or `random`/],
    ['a kill without targets', '- { action: kill, at: 1s }', 'faults.0.targets', /`action: kill` needs `targets`/],
    ['a pause without duration', '- { action: pause, targets: "0" }', 'faults.0.duration', /needs a `duration`/],
    ['a key of another action', '- { action: kill, targets: "0", duration: 5s }', 'faults.0.duration', /`duration` does not apply to `action: kill` \(only to `pause`, `partition`, `network`\)/],
    ['downtime on a pause', '- { action: pause, targets: "0", duration: 1s, downtime: 1s }', 'faults.0.downtime', /only to `restart`/],
    ['a network fault with nothing to change', '- { action: network, duration: 5s }', 'faults.0.action', /at least one of `delay`, `jitter`, `loss` or `rate`/],
    ['a network loss without its %', '- { action: network, duration: 5s, loss: 0.5 }', 'faults.0.loss', /Expected a percentage/],
    ['a window past timeouts.run', '- { action: pause, targets: "0", at: 50s, duration: 15s }', 'faults.0.at', /The last window ends 1m05s after T, past `timeouts.run` \(1m00s\)/],
    ['periodic windows past timeouts.run', '- { action: restart, targets: "0", every: 20s, count: 4, downtime: 1s }', 'faults.0.count', /The last window ends 1m01s after T, past `timeouts.run`/],
    ['a kill after timeouts.run', '- { action: kill, targets: "0", at: 60s }', 'faults.0.at', /The last kill comes 1m00s after T/],
    ['every without count', '- { action: kill, targets: "0", every: 5s }', 'faults.0.every', /needs both `every` \(the period\) and `count`/],
    ['windows that overlap their period', '- { action: pause, targets: "0", every: 5s, count: 2, duration: 5s }', 'faults.0.duration', /must end before the next opens/],
    ['a partition with neither sides nor shape', '- { action: partition, duration: 5s }', 'faults.0.sides', /exactly one of `sides`/],
    ['a partition with an empty side', '- { action: partition, duration: 5s, sides: ["0-1", { groups: [nobody] }] }', 'faults.0.sides.1', /This side of the partition is empty/],
    ['a partition with one side', '- { action: partition, duration: 5s, sides: ["0-1"] }', 'faults.0.sides', /at least 2/],
    ['a rank on two sides', '- { action: partition, duration: 5s, sides: ["0-2", { groups: [right] }] }', 'faults.0.sides.1', /Rank 2 is on side 0 already/],
    ['a side rank ≥ N', '- { action: partition, duration: 5s, sides: ["0-1", "2-5"] }', 'faults.0.sides.1.ranks', /Target rank 5 is outside/],
    ['isolating everyone', '- { action: partition, duration: 5s, shape: isolate, targets: all }', 'faults.0.targets', /leaves no one on the other side/],
    ['isolate without targets', '- { action: partition, duration: 5s, shape: isolate }', 'faults.0.targets', /`shape: isolate` needs `targets`/],
    ['targets on a halves partition', '- { action: partition, duration: 5s, shape: halves, targets: "0" }', 'faults.0.targets', /other shapes and `sides` cut every rank/],
    ['an unknown shape', '- { action: partition, duration: 5s, shape: triangle }', 'faults.0.shape', /Expected one of `isolate`, `majority-minority`, `halves`, `bridge`, `ring`/],
    ['a repeat the run does not have', '- { action: kill, targets: "0", repeats: [2, 3] }', 'faults.0.repeats', /Repeat 3 is outside 1..2/],
    ['network windows that may meet', '- { action: network, duration: 5s, delay: 1ms, targets: "0-2" }\n  - { action: network, at: 4s, duration: 5s, loss: 1%, targets: { random: { count: 1 } } }', 'faults.1.at', /may overlap that of `faults.0`/],
  ])('refuses %s', (_what, entries, keyPath, message) => {
    const error = refused(withFaults(...entries.split('\n  ')));
    expect(error.keyPath).toBe(keyPath);
    expect(error.problem).toMatch(message);
    expect(error.line).toBeGreaterThan(10);
  });

  it('accepts network windows on targets that cannot meet, or at other times', () => {
    expect(() =>
      load(withFaults('- { action: network, duration: 5s, delay: 1ms, targets: "0-1" }', '- { action: network, duration: 5s, loss: 1%, targets: { groups: [right] } }', '- { action: network, at: 5s, duration: 5s, loss: 1%, targets: all }')),
    ).not.toThrow();
  });

  it('refuses shapes the run is too small for, and network faults in loopback mode', () => {
    const ring = refused(withFaults('- { action: partition, duration: 5s, shape: ring }').replace('instances: 5', 'instances: 3').replace(/groups:[^]*?faults:/, 'faults:'));
    expect(ring.problem).toContain('`shape: ring` needs at least 4 instances to cut anything, and the run has 3');
    const loopback = refused(withFaults('- { action: network, duration: 5s, delay: 50ms }').replace('isolation: netns', 'isolation: loopback'));
    expect(loopback).toMatchObject({ keyPath: 'faults.0.action' });
    expect(loopback.problem).toContain('isolation: netns');
  });
});
