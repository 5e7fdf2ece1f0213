import { describe, expect, it } from 'vitest';
import { repeatState, type RepeatFacts, type RepeatState } from '../../src/core/repeat-state.ts';

const base: RepeatFacts = { members: null, outcomes: [], failures: [], readyIds: [], instances: 2, aborted: false, runOver: false };
const failure = (instanceId: string, stage: 'setup' | 'barrier' | 'run') => ({ instanceId, stage });

describe('repeatState', () => {
  const cases: Array<[string, Partial<RepeatFacts>, RepeatState]> = [
    ['nobody ready yet', {}, 'waiting'],
    ['some ready', { readyIds: ['a'] }, 'running'],
    ['started, results coming', { members: 2, outcomes: ['success'] }, 'running'],
    ['every member succeeded', { members: 2, outcomes: ['success', 'success'] }, 'done'],
    ['a member failed', { members: 2, outcomes: ['success', 'failed'] }, 'failed'],
    ['a member timed out', { members: 2, outcomes: ['timeout', 'success'] }, 'failed'],
    ['started, then the run ended with results missing (a lost node)', { members: 2, outcomes: ['success'], runOver: true }, 'failed'],
    ['started, then aborted: the stopped nodes uploaded `aborted`', { members: 2, outcomes: ['aborted', 'aborted'], aborted: true, runOver: true }, 'aborted'],
    ['started, aborted: the nodes are stopping', { members: 2, outcomes: ['aborted'], aborted: true }, 'running'],
    ['started, aborted, every instance ended before any result landed', { members: 2, aborted: true, runOver: true }, 'aborted'],
    ['never started, aborted: the instances are ending', { readyIds: ['a'], aborted: true }, 'running'],
    ['never started, the run was aborted', { readyIds: ['a', 'b'], aborted: true, runOver: true }, 'not run'],
    ['never started, every instance ended (expiry)', { runOver: true }, 'not run'],
    ['setup failed everywhere', { failures: [failure('a', 'setup'), failure('b', 'setup')] }, 'not run'],
    ['setup failed on one, the other is still in setup', { failures: [failure('a', 'setup')] }, 'waiting'],
    ['setup failed on one, the other is still in setup, then the run ended', { failures: [failure('a', 'setup')], runOver: true }, 'not run'],
    ['setup failed on one, the other waits at the barrier', { readyIds: ['b'], failures: [failure('a', 'setup')] }, 'running'],
    ['the barrier timed out for every ready node', { readyIds: ['a', 'b'], failures: [failure('a', 'barrier'), failure('b', 'barrier')] }, 'failed'],
    ['the barrier timed out for one, another still waits', { readyIds: ['a', 'b'], failures: [failure('a', 'barrier')] }, 'running'],
    ['the barrier timed out, then the run ended', { readyIds: ['a', 'b'], failures: [failure('a', 'barrier')], runOver: true }, 'failed'],
  ];
  for (const [name, facts, state] of cases) {
    it(`${name}: ${state}`, () => expect(repeatState({ ...base, ...facts })).toBe(state));
  }
});
