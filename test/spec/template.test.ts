import { describe, expect, it } from 'vitest';
import { paramsForRank, resolveGroups } from '../../src/spec/groups.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { environmentFor, renderTemplate, shellQuote, templateValues } from '../../src/spec/template.ts';

describe('templates', () => {
  it("renders the seed's own invocation from a spec with no code", () => {
    const { spec } = parseSpec(
      [
        'name: anytrust-dkg',
        'instances: 4',
        'run: java -jar run.jar {{rank}} {{hostsFile}} {{params.atSize}} {{runId}} {{params.protocol}}',
        'params:',
        '  atSize: 38',
        '  protocol: normal',
      ].join('\n'),
      { file: 'spec.yaml' },
    );
    const values = templateValues({ rank: 3, hostsFile: '/work/repeats/1/hosts.config', runId: 'dkg-20260101-000000-abcd' }, spec.params);
    expect(renderTemplate(spec.run, values)).toBe('java -jar run.jar 3 /work/repeats/1/hosts.config 38 dkg-20260101-000000-abcd normal');
  });

  it('quotes values for the shell', () => {
    expect(shellQuote('plain-word_1.2')).toBe('plain-word_1.2');
    expect(shellQuote("it's a test")).toBe(`'it'\\''s a test'`);
    expect(shellQuote('')).toBe("''");
    expect(renderTemplate('echo {{params.msg}}', { 'params.msg': '$(rm -rf /)' })).toBe("echo '$(rm -rf /)'");
  });

  it('gives the same values as environment variables', () => {
    const env = environmentFor({ rank: 2, n: 8, address: '127.1.2.3' }, { atSize: 38, protocol: 'adversarial' });
    expect(env).toEqual({
      LOCKSTEP_RANK: '2',
      LOCKSTEP_N: '8',
      LOCKSTEP_ADDRESS: '127.1.2.3',
      LOCKSTEP_PARAM_ATSIZE: '38',
      LOCKSTEP_PARAM_PROTOCOL: 'adversarial',
    });
  });
});

describe('groups', () => {
  it('gives params by rank range, list, count and fraction; later groups win', () => {
    const groups = resolveGroups(
      [
        { name: 'honest', fraction: 0.5, params: {} },
        { name: 'adversary', fraction: 0.5, params: { role: 'adversary' } },
        { name: 'slow', ranks: '6-', params: { delay: 50 } },
        { name: 'leader', ranks: [0], params: { role: 'leader' } },
      ],
      8,
    );
    expect(groups.map((g) => g.ranks)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [6, 7], [0]]);
    expect(paramsForRank({ role: 'honest' }, groups, 0)).toEqual({ params: { role: 'leader' }, groups: ['honest', 'leader'] });
    expect(paramsForRank({ role: 'honest' }, groups, 3).params).toEqual({ role: 'honest' });
    expect(paramsForRank({ role: 'honest' }, groups, 7)).toEqual({ params: { role: 'adversary', delay: 50 }, groups: ['adversary', 'slow'] });
  });

  it('refuses counted groups that need more ranks than there are', () => {
    expect(() => resolveGroups([{ count: 3, params: {} }, { count: 3, params: {} }], 4)).toThrow(
      'Group `group1` (count: 3) takes the ranks after the groups before it, 3..5: outside 0..3 for 4 instances; lower it, move it before the groups that end at rank 2, or raise `instances`',
    );
  });

  it('gives a `count` or `fraction` group the ranks after every group before it, `ranks` groups too', () => {
    const after = (groups: Parameters<typeof resolveGroups>[0], n: number) => resolveGroups(groups, n).map((g) => g.ranks);
    expect(after([{ ranks: '0', params: {} }, { count: 2, params: {} }, { fraction: 0.25, params: {} }], 8)).toEqual([[0], [1, 2], [3, 4]]);
    expect(after([{ ranks: [5, 1], params: {} }, { count: 1, params: {} }], 8)).toEqual([[5, 1], [6]]);
    // `count` after a group that reaches the last rank has no rank left (it once landed on rank 0).
    expect(() => after([{ ranks: '2-', params: {} }, { count: 1, params: {} }], 4)).toThrow(/^Group `group1` \(count: 1\) takes the ranks after the groups before it, 4\.\.4: outside 0\.\.3/);
  });
});
