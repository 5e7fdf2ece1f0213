import { describe, expect, it } from 'vitest';
import { localCapacityProblem } from '../../../src/provider/local/capacity.ts';

const GiB = 2 ** 30;

describe('what this machine can hold of local instances', () => {
  const cases: Array<{ count: number; availableBytes: number; addresses: number; problem: RegExp | undefined }> = [
    { count: 8, availableBytes: 16 * GiB, addresses: 16_711_678, problem: undefined },
    { count: 256, availableBytes: 16 * GiB, addresses: 16_711_678, problem: undefined },
    { count: 257, availableBytes: 16 * GiB, addresses: 16_711_678, problem: /^257 local instances need about 17 GiB .* 16\.0 GiB available: lower `instances` \(at most 256 here\)/ },
    { count: 10_001, availableBytes: 10_000 * GiB, addresses: 10_000, problem: /^10,001 local instances do not fit on this machine: the local provider has 10,000 network namespace addresses/ },
    { count: 100_000_000, availableBytes: 16 * GiB, addresses: 16_711_678, problem: /16,711,678 loopback addresses; lower `instances`, or use the aws provider$/ },
  ];
  for (const c of cases) {
    it(`${c.count} instances, ${c.availableBytes / GiB} GiB, ${c.addresses} addresses: ${c.problem ? 'refused' : 'fits'}`, () => {
      const problem = localCapacityProblem(c.count, { availableBytes: c.availableBytes, addresses: c.addresses });
      if (c.problem) expect(problem).toMatch(c.problem);
      else expect(problem).toBeUndefined();
    });
  }
});
