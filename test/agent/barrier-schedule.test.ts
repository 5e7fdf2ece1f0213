import { describe, expect, it } from 'vitest';
import {
  approachUntil,
  arrivalHorizon,
  defaultTuning,
  effectiveStartDelayMs,
  freshListAt,
  likelyCompletion,
  lullHorizon,
  nextPollAt,
  pollPeriodMs,
  progressCopiesFor,
  sharingThisMachine,
  spreadOf,
  staleAfter,
  startRecord,
  startTime,
  watcherCycle,
  type BarrierProgress,
} from '../../src/agent/barrier-schedule.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';

const tuning = defaultTuning(1000);
const at = (...offsets: number[]) => offsets.map((o) => 1_000_000 + o);
const evenly = (n: number, gapMs: number) => Array.from({ length: n }, (_, i) => 1_000_000 + i * gapMs);

function node(i: number) {
  return { instanceId: `i-${i.toString().padStart(3, '0')}`, address: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}` };
}

describe('barrier schedule: the start time T', () => {
  const cases: Array<{ name: string; readyAts: number[]; expected: number; delay: number; t: number }> = [
    { name: 'one node: its readyAt + the delay', readyAts: at(0), expected: 1, delay: 1000, t: 1_001_000 },
    { name: 'arrivals as expected: the latest + the delay', readyAts: evenly(50, 30), expected: 50, delay: 1000, t: 1_000_000 + 49 * 30 + 1000 },
    { name: 'order does not matter', readyAts: at(60, 0, 30), expected: 3, delay: 500, t: 1_000_560 },
    {
      name: 'a lull moves T later by lullFraction of the lull beyond the delay',
      readyAts: [...evenly(9, 30), 1_000_000 + 8 * 30 + 60_000],
      expected: 10,
      delay: 1000,
      t: 1_000_000 + 8 * 30 + 60_000 + 1000 + 0.5 * (60_000 - 1000),
    },
    { name: 'a gap shorter than the delay moves nothing', readyAts: at(0, 900), expected: 2, delay: 1000, t: 1_001_900 },
  ];
  for (const c of cases) {
    it(c.name, () => expect(startTime(c.readyAts, c.expected, c.delay, defaultTuning(c.delay))).toBe(c.t));
  }

  it('is never earlier than the start delay after any horizon a waiting node may have slept to', () => {
    // 500 nodes trickle in over 30 s, then the other 500 arrive within one second: a surprise.
    const random = seededRandom(7);
    const readyAts = [...Array.from({ length: 500 }, () => random() * 30_000), ...Array.from({ length: 500 }, () => 30_000 + random() * 1000)].sort((a, b) => a - b);
    const t = startTime(readyAts, 1000, 1000, tuning);
    for (let k = 2; k < 999; k++) expect(t).toBeGreaterThanOrEqual(arrivalHorizon(readyAts, k, 1000, tuning) + 1000);
    expect(t).toBeGreaterThan(readyAts[999]! + 1000);
  });

  it('is the same whoever computes it, from the records in any order', () => {
    const records = Array.from({ length: 20 }, (_, i) => ({ ...node(i), readyAt: 5_000 + ((i * 7919) % 20) * 13.5 }));
    const a = startRecord(records, 300, 'i-001', false, { expected: 20 });
    const b = startRecord([...records].reverse(), 300, 'i-019', false, { expected: 20 });
    expect(b.startAt).toBe(a.startAt);
    expect(b.members).toEqual(a.members);
    // Numerically by address: 10.0.0.2 before 10.0.0.10.
    expect(a.members.map((m) => m.address)).toEqual(Array.from({ length: 20 }, (_, i) => node(i).address));
  });
});

describe('barrier schedule: the start delay for many nodes', () => {
  const cases: Array<{ expected: number; rate: number; delay: number; more: boolean }> = [
    { expected: 100, rate: 4000, delay: 1000, more: false },
    { expected: 1000, rate: 4000, delay: 1000, more: false },
    // 4,999 waiting nodes at 4,000 GET/s look every 1.25 s, and the LIST takes 5 pages.
    { expected: 5000, rate: 4000, delay: 1000, more: true },
    // 2 waiting nodes at 10 GET/s look every 200 ms: 100 ms beyond a third of 300 ms.
    { expected: 3, rate: 10, delay: 300, more: true },
  ];
  for (const c of cases) {
    it(`N=${c.expected} at ${c.rate} GET/s ${c.more ? 'gets more room' : 'keeps the delay'}`, () => {
      const delay = effectiveStartDelayMs(c.delay, c.expected, { ...defaultTuning(c.delay), maxPollsPerSecond: c.rate });
      if (c.more) expect(delay).toBeGreaterThan(c.delay);
      else expect(delay).toBe(c.delay);
    });
  }

  it('copies the progress record under as many prefixes as keep every node looking every pollEveryMs, where the rate is per prefix', () => {
    const t = { ...defaultTuning(1000), maxPollsPerSecond: 4000 };
    expect(progressCopiesFor(1000, t, true)).toBe(1);
    const copies = progressCopiesFor(10_000, t, true);
    expect(copies).toBe(10);
    expect(pollPeriodMs(10_000, { ...t, progressCopies: copies })).toBe(t.pollEveryMs);
    expect(effectiveStartDelayMs(1000, 10_000, { ...t, progressCopies: copies })).toBe(1000 + (9 * t.listPageMs) / t.listDuty);
    // One server's rate in all: copies would not help, and the nodes look less often instead.
    expect(progressCopiesFor(10_000, t, false)).toBe(1);
    expect(pollPeriodMs(10_000, t)).toBeCloseTo(2499.75, 6);
  });

  it('adds exactly what slower looks need', () => {
    expect(effectiveStartDelayMs(300, 3, { ...defaultTuning(300), maxPollsPerSecond: 10 })).toBeCloseTo(400, 6);
  });
});

describe('barrier schedule: horizons', () => {
  const cases: Array<{ name: string; sorted: number[]; k: number; expected: number; horizon: number }> = [
    { name: 'nobody yet', sorted: [], k: 0, expected: 5, horizon: -Infinity },
    { name: 'one missing: any moment', sorted: evenly(4, 100), k: 4, expected: 5, horizon: 1_000_300 },
    { name: 'a single arrival tells nothing', sorted: at(0), k: 1, expected: 10, horizon: 1_000_000 },
  ];
  for (const c of cases) {
    it(c.name, () => expect(arrivalHorizon(c.sorted, c.k, c.expected, tuning)).toBe(c.horizon));
  }

  it('with many missing, reaches further ahead but never past spanFraction of the span', () => {
    const sorted = evenly(100, 100);
    const horizon = arrivalHorizon(sorted, 100, 1000, tuning);
    expect(horizon).toBeGreaterThan(sorted[99]!);
    expect(horizon - sorted[99]!).toBeLessThanOrEqual(tuning.spanFraction * (sorted[99]! - sorted[0]!));
  });

  it('no prefix of uniform arrivals puts its horizon past the last arrival (sleepers would learn T late)', () => {
    // Seed 1000 is the bench's: counting overlapping runs as independent put one horizon 0.87 s past it.
    for (let seed = 1000; seed < 1012; seed++) {
      const random = seededRandom(seed);
      const sorted = Array.from({ length: 1000 }, () => random() * 30_000).sort((a, b) => a - b);
      let worst = -Infinity;
      for (let k = 2; k < 1000; k++) worst = Math.max(worst, arrivalHorizon(sorted, k, 1000, tuning));
      expect(worst, `seed ${seed}`).toBeLessThanOrEqual(sorted[999]!);
    }
  });

  it('never sleeps further than maxSleepMs', () => {
    const sorted = evenly(500, 1000);
    expect(arrivalHorizon(sorted, 500, 100_000, tuning) - sorted[499]!).toBe(tuning.maxSleepMs);
  });

  const lulls: Array<{ last: number | undefined; proven: number; horizon: number }> = [
    { last: undefined, proven: 5000, horizon: -Infinity },
    { last: 4500, proven: 5000, horizon: 5000 },
    { last: 0, proven: 11_000, horizon: 11_000 + 0.5 * 10_000 },
  ];
  for (const l of lulls) {
    it(`lull horizon: last ${l.last}, nothing new until ${l.proven}`, () => expect(lullHorizon(l.last, l.proven, 1000, tuning)).toBe(l.horizon));
  }
});

describe('barrier schedule: the watcher and the waiting nodes', () => {
  const progress = (over: Partial<BarrierProgress>): BarrierProgress => ({
    expected: 10,
    count: 5,
    watcher: 'i-000',
    updatedAt: 0,
    listedAt: 0,
    writeLagMs: 20,
    cycleMs: 100,
    nextListAt: 100,
    quietUntil: 0,
    ...over,
  });

  it('a waiting node sleeps to the quiet horizon when it is far, the nodes spread over one poll period after it', () => {
    expect(nextPollAt(progress({ quietUntil: 5000 }), { now: 0, tuning, slot: 0, expected: 10, startDelayMs: 1000 })).toBe(5000);
    expect(nextPollAt(progress({ quietUntil: 5000 }), { now: 0, tuning, slot: 0.5, expected: 10, startDelayMs: 1000 })).toBe(5000 + 0.5 * tuning.pollEveryMs);
    expect(nextPollAt(progress({ quietUntil: 60_000 }), { now: 0, tuning, slot: 0.5, expected: 10, startDelayMs: 1000 })).toBe(tuning.maxSleepMs);
  });

  it('near completion, every node looks once a poll period, at its own point of the period', () => {
    const period = pollPeriodMs(10, tuning);
    for (const slot of [0, 0.25, 0.5, 0.99]) {
      let now = 50;
      const looks: number[] = [];
      for (let i = 0; i < 5; i++) {
        now = nextPollAt(progress({}), { now: now + 15, tuning, slot, expected: 10, startDelayMs: 1000 });
        looks.push(now);
      }
      expect(looks[0]).toBeGreaterThan(50);
      for (let i = 1; i < looks.length; i++) expect(looks[i]! - looks[i - 1]!).toBeCloseTo(period, 6);
      expect(looks[0]! % period).toBeCloseTo(slot * period, 6);
    }
  });

  it('near completion, a node looks no more often than the watcher writes', () => {
    const first = nextPollAt(progress({ cycleMs: 600 }), { now: 50, tuning, slot: 0.3, expected: 10, startDelayMs: 1000 });
    const second = nextPollAt(progress({ cycleMs: 600 }), { now: first + 15, tuning, slot: 0.3, expected: 10, startDelayMs: 1000 });
    expect(second - first).toBeCloseTo(600, 6);
  });

  it('near completion, whenever the start record is written, every node reads it within one poll period', () => {
    const period = pollPeriodMs(1000, tuning);
    const writtenAt = 7_777;
    const next = Array.from({ length: 999 }, (_, i) => nextPollAt(progress({ expected: 1000 }), { now: writtenAt, tuning, slot: i / 999, expected: 1000, startDelayMs: 1000 }));
    expect(Math.max(...next) - writtenAt).toBeLessThanOrEqual(period + 1);
  });

  it('near completion, a node sleeps part of the way to when the set likely completes, never past what lets it learn T in time', () => {
    const context = { now: 1000, tuning, slot: 0, expected: 10, startDelayMs: 1000 };
    // Likely complete in 400 ms: the node looks 0.7 of the way there.
    expect(approachUntil(progress({ listedAt: 950, likelyAt: 1400 }), context)).toBeCloseTo(1000 + tuning.approachFraction * 400, 6);
    // Likely far off: no later than the earliest T (the LIST found the set incomplete, so a missing
    // record is stamped after listedAt - putWindowMs) less one poll period.
    const capped = approachUntil(progress({ listedAt: 950, likelyAt: 60_000 }), context);
    expect(capped).toBe(950 - tuning.putWindowMs + 1000 - pollPeriodMs(10, tuning));
    // The node looks at its last point of the shared grid before that.
    expect(nextPollAt(progress({ listedAt: 950, likelyAt: 60_000 }), context)).toBeLessThanOrEqual(capped);
    expect(nextPollAt(progress({ listedAt: 950, likelyAt: 60_000 }), context)).toBeGreaterThan(capped - pollPeriodMs(10, tuning));
    // No guess, or one already past: nothing to approach.
    expect(approachUntil(progress({ listedAt: 950 }), context)).toBe(-Infinity);
    expect(approachUntil(progress({ listedAt: 950, likelyAt: 900 }), context)).toBe(-Infinity);
  });

  it('guesses when the set likely completes from the recent arrival rate', () => {
    const t = { rateWindow: 50 };
    expect(likelyCompletion(evenly(90, 30), 100, t)).toBe(1_000_000 + 89 * 30 + 10 * 30);
    // Arrivals that sped up: the latest rate counts, not the first ones'.
    const faster = [...evenly(100, 300), ...evenly(100, 10).map((r) => r + 100 * 300)];
    expect(likelyCompletion(faster, 210, t)).toBe(faster[199]! + 10 * 10);
    // Complete, or too few to tell: no guess.
    expect(likelyCompletion(evenly(10, 30), 10, t)).toBeUndefined();
    expect(likelyCompletion(at(0), 10, t)).toBeUndefined();
  });

  it('the watcher LISTs early so that its record is fresh when the nodes asleep to a horizon it published wake', () => {
    expect(freshListAt(5000, [3000], 100, 1000)).toBe(2900);
    expect(freshListAt(5000, [8000], 100, 1000)).toBe(5000);
    // A horizon too close to LIST for in time: the cycle goes on.
    expect(freshListAt(5000, [1050], 100, 1000)).toBe(5000);
  });

  it('near completion, many nodes together stay within the read rate', () => {
    const slow = { ...tuning, maxPollsPerSecond: 1000 };
    const polls = Array.from({ length: 999 }, (_, i) => nextPollAt(progress({ expected: 1000 }), { now: 0, tuning: slow, slot: i / 999, expected: 1000, startDelayMs: 1000 }));
    const perSecond = polls.filter((p) => p < 1000).length;
    expect(perSecond).toBeLessThanOrEqual(1000);
  });

  const cycles: Array<{ name: string; readyAts: number[]; listMs: number; near: boolean }> = [
    { name: 'one node missing, the last just arrived: the watcher LISTs at its fastest', readyAts: evenly(9, 30).map((r) => r - 800), listMs: 20, near: true },
    { name: 'one node missing after a long lull: it may LIST less often', readyAts: evenly(9, 30).map((r) => r - 10_000), listMs: 20, near: false },
    { name: 'many missing and slow arrivals: it LISTs less often', readyAts: evenly(20, 1000).map((r) => r - 20_000), listMs: 20, near: false },
  ];
  for (const c of cycles) {
    it(c.name, () => {
      const now = 1_000_000;
      const cycle = watcherCycle(c.readyAts, { now, listedAt: now - c.listMs, listMs: c.listMs }, c.name.startsWith('one node') ? 10 : 100, 1000, tuning);
      if (c.near) expect(cycle.cycleMs).toBe(tuning.minCycleMs);
      else expect(cycle.cycleMs).toBeGreaterThan(tuning.minCycleMs);
      expect(cycle.nextListAt).toBeGreaterThan(now);
    });
  }

  it('a progress record is stale after staleMs, or after three slow cycles', () => {
    expect(staleAfter(progress({ cycleMs: 100 }), tuning)).toBe(tuning.staleMs);
    expect(staleAfter(progress({ cycleMs: 5000, writeLagMs: 100 }), tuning)).toBe(15_200);
  });

  it('spreads nodes over [0, 1) by their id, the same every time', () => {
    const slots = Array.from({ length: 1000 }, (_, i) => spreadOf(`i-${i}`));
    expect(slots.every((s) => s >= 0 && s < 1)).toBe(true);
    expect(spreadOf('i-7')).toBe(spreadOf('i-7'));
    // Roughly even: every tenth of the range holds some.
    for (let d = 0; d < 10; d++) expect(slots.filter((s) => Math.floor(s * 10) === d).length).toBeGreaterThan(50);
  });

  const sharing: Array<{ members: string[]; address: string; n: number }> = [
    { members: ['127.1.0.1', '127.1.0.2', '10.0.0.3'], address: '127.1.0.1', n: 2 },
    { members: ['127.1.0.1', '127.1.0.2', '10.0.0.3'], address: '10.0.0.3', n: 1 },
    { members: ['198.18.0.1', '198.18.0.2'], address: '198.18.0.2', n: 2 },
  ];
  for (const s of sharing) {
    it(`counts ${s.n} member(s) waking on the machine of ${s.address}`, () => {
      expect(sharingThisMachine(s.members.map((address) => ({ address })), s.address)).toBe(s.n);
    });
  }
});
