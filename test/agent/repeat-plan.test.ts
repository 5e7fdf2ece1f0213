import { describe, expect, it } from 'vitest';
import type { FailureRecord, NodeResult, StartRecord } from '../../src/core/manifest.ts';
import { decideRepeat, type RepeatAction, type RepeatFacts } from '../../src/agent/repeat-plan.ts';

const me = 'i-me';
const member = (instanceId: string, address: string) => ({ instanceId, address, readyAt: 1000 });
const start: StartRecord = { members: [member('i-a', '10.0.0.1'), member(me, '10.0.0.2')], startAt: 5000, writtenBy: 'i-a', quorum: false };
const without: StartRecord = { ...start, members: [member('i-a', '10.0.0.1'), member('i-b', '10.0.0.3')], quorum: true };
const failure: FailureRecord = { instanceId: me, repeat: 1, stage: 'barrier', error: 'timed out', at: '2026-12-01T00:00:00Z' };
const result = (instanceId: string, outcome: NodeResult['outcome']) => ({ instanceId, outcome }) as NodeResult;
const facts = (over: Partial<RepeatFacts>): RepeatFacts => ({ instanceId: me, now: 4000, ...over });

describe('what a (restarted) agent does with a repeat', () => {
  const cases: Array<{ name: string; facts: RepeatFacts | undefined; action: RepeatAction }> = [
    { name: 'a first life runs it', facts: undefined, action: { kind: 'run', keepReady: false } },
    { name: 'no barrier closed yet: run it, keeping the earlier ready record', facts: facts({}), action: { kind: 'run', keepReady: true } },
    { name: 'a failure recorded: over', facts: facts({ failure, start }), action: { kind: 'recorded', outcome: 'failed at barrier', failed: true } },
    { name: 'closed without this instance: left out', facts: facts({ start: without }), action: { kind: 'left-out' } },
    { name: 'its result is stored: over', facts: facts({ start, result: result(me, 'success'), now: 9000 }), action: { kind: 'recorded', outcome: 'success', failed: false } },
    { name: 'a failed result is stored: over, failed', facts: facts({ start, result: result(me, 'timeout') }), action: { kind: 'recorded', outcome: 'timeout', failed: true } },
    { name: 'closed, before T: still in time', facts: facts({ start, now: 4999 }), action: { kind: 'run', keepReady: true } },
    { name: 'closed, past T, no result: missed', facts: facts({ start, now: 5000 }), action: { kind: 'missed', start, rank: 1 } },
    {
      name: 'another instance\'s result at this rank does not count',
      facts: facts({ start, result: result('i-other', 'success'), now: 6000 }),
      action: { kind: 'missed', start, rank: 1 },
    },
  ];
  for (const c of cases) it(c.name, () => expect(decideRepeat(c.facts)).toEqual(c.action));
});
