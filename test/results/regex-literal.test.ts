import { describe, expect, it } from 'vitest';
import { literalPrefix, requiredLiteral } from '../../src/results/regex-literal.ts';

describe('requiredLiteral', () => {
  it.each([
    ['committed in (?<value>\\d+(?:\\.\\d+)?) ms', 'committed in '],
    ['latency_ms=(?<value>[0-9.]+)', 'latency_ms='],
    ['^bytes_out (?<value>\\d+)$', 'bytes_out '],
    ['took\\.? (?<value>\\d+)', 'took'],
    ['abcd?e (?<value>\\d+)', 'abc'],
    ['x{0,3}yz=(?<value>\\d+)', 'yz='],
    ['round=\\d+ latency=(?<value>\\d+)', ' latency='],
    ['a+bcdef(?<value>\\d+)', 'bcdef'],
    ['\\[stats\\] rtt (?<value>\\d+)', '[stats] rtt '],
    ['[abc]+ value (?<value>\\d+)', ' value '],
  ])('%s needs %j', (source, literal) => {
    expect(requiredLiteral(source)).toBe(literal);
  });

  it.each([
    ['foo (?<value>\\d+)|bar (?<value2>\\d+)'],
    ['(?<value>\\d+)'],
    ['\\d+(?<value>\\d+)'],
  ])('finds nothing it could not prove in %s', (source) => {
    expect(requiredLiteral(source)).toBeUndefined();
  });

  it('never returns a literal that a matching line lacks', () => {
    const cases: Array<[string, string]> = [
      ['colou?r=(?<value>\\d+)', 'color=5'],
      ['(?:ping|pong) (?<value>\\d+) ms', 'pong 7 ms'],
      ['a{0}bc=(?<value>\\d+)', 'bc=1'],
      ['lat(?:ency)?=(?<value>\\d+)', 'lat=3'],
    ];
    for (const [source, line] of cases) {
      expect(new RegExp(source).test(line)).toBe(true);
      const literal = requiredLiteral(source);
      if (literal !== undefined) expect(line).toContain(literal);
    }
  });
});

describe('literalPrefix', () => {
  it.each([
    ['committed in (?<value>\\d+(?:\\.\\d+)?) ms', 'committed in '],
    ['\\[stats\\] rtt (?<value>\\d+)', '[stats] rtt '],
    ['round=\\d+ latency=(?<value>\\d+)', 'round='],
    ['abc+d(?<value>\\d)', 'abc'],
    ['ab?c(?<value>\\d)', 'a'],
  ])('%s starts with %j', (source, prefix) => {
    expect(literalPrefix(source)).toBe(prefix);
  });

  it.each([['^bytes_out (?<value>\\d+)'], ['a?bc(?<value>\\d)'], ['x(?<value>\\d)|y'], ['ab(?<=xab)(?<value>\\d)'], ['\\d+ ms'], ['(?:ab)c']])(
    'gives none for %s',
    (source) => {
      expect(literalPrefix(source)).toBeUndefined();
    },
  );

  it('matching from the first occurrence of the prefix gives what matching the whole line gives', () => {
    const cases: Array<[string, string[]]> = [
      ['took (?<value>\\d+) ms', ['took x; took 5 ms', 'a took 7 ms took 8 ms', 'took took 9 ms', 'took', 'none']],
      ['v=(?<value>\\d+)\\b', ['v=v=12 ', 'xv=3', 'v=4v=5']],
      ['id (?<value>\\d+)(?= ok)', ['id 1 no, id 2 ok', 'id 3 ok']],
    ];
    for (const [source, lines] of cases) {
      const prefix = literalPrefix(source)!;
      expect(prefix).toBeDefined();
      const regex = new RegExp(source);
      for (const line of lines) {
        const at = line.indexOf(prefix);
        const whole = regex.exec(line)?.groups?.value;
        const fromPrefix = at < 0 ? undefined : regex.exec(line.slice(at))?.groups?.value;
        expect(fromPrefix, `${source} on ${line}`).toBe(whole);
      }
    }
  });
});
