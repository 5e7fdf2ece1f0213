import { describe, expect, it } from 'vitest';
import { blockedPeers, eventsOf, type FaultTimeline, type PartitionLayout } from '../../src/core/faults.ts';
import { expandFaults } from '../../src/controller/fault-timeline.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';

/** The spec's faults as loaded (validated, durations in ms), then expanded. */
function timeline(instances: number, faults: string[], options: { repeats?: number; groups?: string[]; drawSeed?: () => number } = {}): FaultTimeline {
  const text = [
    'name: t',
    `instances: ${instances}`,
    `repeats: ${options.repeats ?? 1}`,
    'run: "true"',
    'timeouts: { run: 10m }',
    'provider: { kind: local, isolation: netns }',
    ...(options.groups ? ['groups:', ...options.groups.map((g) => `  - ${g}`)] : []),
    'faults:',
    ...faults.map((f) => `  - ${f}`),
  ].join('\n');
  return expandFaults(parseSpec(text, { file: 'spec.yaml' }).spec, { drawSeed: options.drawSeed ?? (() => 12345) })!;
}

const layoutOf = (instances: number, fault: string) => timeline(instances, [fault]).events[0]!.partition!;
const cut = (layout: PartitionLayout, n: number) => Array.from({ length: n }, (_, rank) => blockedPeers(layout, rank));

describe('expanding the fault schedule', () => {
  it('has no timeline without faults', () => {
    expect(expandFaults({ instances: 3, repeats: 1, groups: [], faults: undefined })).toBeUndefined();
  });

  it('opens each window at its offset, `count` times `every` apart, in time order', () => {
    const { events } = timeline(4, ['{ action: pause, at: 3s, every: 10s, count: 3, duration: 2s, targets: "1" }', '{ action: kill, at: 4s, targets: [3] }']);
    expect(events.map((e) => [e.id, e.action, e.atMs, e.durationMs, e.targets])).toEqual([
      ['0#1', 'pause', 3000, 2000, [1]],
      ['1#1', 'kill', 4000, undefined, [3]],
      ['0#2', 'pause', 13_000, 2000, [1]],
      ['0#3', 'pause', 23_000, 2000, [1]],
    ]);
  });

  it('gives a restart its downtime as the window, and network faults their impairment, on every rank by default', () => {
    const { events } = timeline(3, ['{ action: restart, targets: { groups: [b] }, downtime: 1500ms }', '{ action: network, at: 5s, duration: 1s, delay: 80ms, rate: 1mbit }'], {
      groups: ['{ name: a, ranks: "0" }', '{ name: b, ranks: "1-" }'],
    });
    expect(events[0]).toMatchObject({ action: 'restart', durationMs: 1500, targets: [1, 2] });
    expect(events[1]).toMatchObject({ action: 'network', targets: [0, 1, 2], impairment: { delayMs: 80, rateBitsPerSecond: 1e6 } });
  });

  it('lists the repeats each window applies to, and gives each node its own part', () => {
    const t = timeline(3, ['{ action: kill, targets: "0", repeats: "2-" }', '{ action: pause, targets: "1-2", duration: 1s, repeats: [1, 3] }'], { repeats: 3 });
    expect(t.events.map((e) => e.repeats)).toEqual([[2, 3], [1, 3]]);
    expect(eventsOf(t, 1, 0)).toEqual([]);
    expect(eventsOf(t, 2, 0).map((e) => e.id)).toEqual(['0#1']);
    expect(eventsOf(t, 3, 2).map((e) => e.id)).toEqual(['1#1']);
  });

  // Who cannot reach whom, per rank, for each shape (no seed: by rank order).
  it.each([
    ['halves of 5', 5, 'shape: halves', [[2, 3, 4], [2, 3, 4], [0, 1], [0, 1], [0, 1]]],
    ['majority-minority of 5', 5, 'shape: majority-minority', [[3, 4], [3, 4], [3, 4], [0, 1, 2], [0, 1, 2]]],
    ['majority-minority of 4', 4, 'shape: majority-minority', [[3], [3], [3], [0, 1, 2]]],
    ['a bridge of 5: rank 2 reaches both halves', 5, 'shape: bridge', [[3, 4], [3, 4], [], [0, 1], [0, 1]]],
    ['isolate, each target alone', 5, 'shape: isolate, targets: [0, 4]', [[1, 2, 3, 4], [0, 4], [0, 4], [0, 4], [0, 1, 2, 3]]],
    ['a ring of 5', 5, 'shape: ring', [[2, 3], [3, 4], [0, 4], [0, 1], [1, 2]]],
    ['a ring of 4', 4, 'shape: ring', [[2], [3], [0], [1]]],
    ['sides, rank 4 in none', 5, 'sides: ["0", [1, 2, 3]]', [[1, 2, 3], [0], [0], [0], []]],
  ])('cuts %s', (_name, n, fields, expected) => {
    const layout = layoutOf(n, `{ action: partition, duration: 1s, ${fields} }`);
    expect(cut(layout, n)).toEqual(expected);
  });

  it('records the shape and lists as targets every rank that loses a peer', () => {
    const [event] = timeline(5, ['{ action: partition, duration: 1s, shape: bridge }']).events;
    expect(event!.partition).toMatchObject({ kind: 'sides', shape: 'bridge', sides: [[0, 1], [3, 4]] });
    expect(event!.targets).toEqual([0, 1, 3, 4]);
  });

  it('makes a ring in which every member sees a majority and no two see the same one', () => {
    for (let n = 4; n <= 15; n++) {
      const layout = layoutOf(n, `{ action: partition, duration: 1s, shape: ring, seed: ${n} }`);
      const seen = cut(layout, n).map((blocked, rank) => Array.from({ length: n }, (_, peer) => peer).filter((peer) => !blocked.includes(peer) || peer === rank));
      for (const view of seen) expect(view.length).toBeGreaterThan(n / 2);
      expect(new Set(seen.map((view) => view.join(','))).size).toBe(n);
      // Symmetric: a packet dropped one way is dropped the other.
      cut(layout, n).forEach((blocked, rank) => blocked.forEach((peer) => expect(blockedPeers(layout, peer)).toContain(rank)));
    }
  });

  it('gives the same timeline for the same spec and seeds, and picks anew at each occurrence', () => {
    const faults = ['{ action: restart, every: 10s, count: 6, targets: { random: { fraction: 0.34, seed: 42 } } }', '{ action: partition, every: 10s, count: 4, duration: 2s, shape: halves, seed: 9 }'];
    const once = timeline(9, faults);
    expect(timeline(9, faults)).toEqual(once);
    expect(once.seeds).toEqual([
      { entry: 0, seed: 42, drawn: false },
      { entry: 1, seed: 9, drawn: false },
    ]);
    const restarts = once.events.filter((e) => e.action === 'restart');
    expect(restarts.every((e) => e.targets.length === 3)).toBe(true);
    expect(new Set(restarts.map((e) => e.targets.join(','))).size).toBeGreaterThan(1);
    const halves = once.events.filter((e) => e.action === 'partition').map((e) => JSON.stringify(e.partition));
    expect(new Set(halves).size).toBeGreaterThan(1);
    // A longer schedule keeps the first picks.
    const longer = timeline(9, [faults[0]!.replace('count: 6', 'count: 8')]);
    expect(longer.events.slice(0, 6).map((e) => e.targets)).toEqual(restarts.map((e) => e.targets));
    // Another seed, another choice.
    expect(timeline(9, [faults[0]!.replace('seed: 42', 'seed: 43')]).events.map((e) => e.targets)).not.toEqual(restarts.map((e) => e.targets));
  });

  it('draws a seed where the spec gave none, and records it so that the run can be repeated', () => {
    let draws = 0;
    const t = timeline(6, ['{ action: kill, targets: { random: { count: 2 } } }', '{ action: partition, duration: 1s, shape: halves }'], { drawSeed: () => (draws++, 777) });
    expect(draws).toBe(1);
    expect(t.seeds).toEqual([{ entry: 0, seed: 777, drawn: true }]);
    const again = timeline(6, ['{ action: kill, targets: { random: { count: 2, seed: 777 } } }']);
    expect(again.events[0]!.targets).toEqual(t.events[0]!.targets);
    // Without a seed, a shape cuts by rank order.
    expect(t.events[1]!.partition).toMatchObject({ sides: [[0, 1, 2], [3, 4, 5]] });
  });

  it('gives the example (examples/faults) the timeline the README shows', () => {
    const { events } = expandFaults(loadSpec('examples/faults/lockstep.yaml').spec)!;
    expect(events.map((e) => [e.id, e.action, e.atMs, e.durationMs, e.targets])).toEqual([
      ['0#1', 'partition', 2000, 3000, [0, 1, 3, 4]],
      ['1#1', 'network', 6000, 2000, [0]],
      ['2#1', 'pause', 7000, 1000, [4]],
      ['3#1', 'restart', 9000, 1000, [3]],
    ]);
    expect(events[0]!.partition).toEqual({ kind: 'sides', sides: [[0, 1], [3, 4]], shape: 'bridge' });
  });
});
