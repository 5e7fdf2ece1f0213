import { describe, expect, it } from 'vitest';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { refused } from '../helpers/spec.ts';

const netns = 'name: demo\ninstances: 4\nrun: echo {{rank}}\nprovider: { kind: local, isolation: netns }\ngroups:\n  - name: slow\n    ranks: "2-"\n';

describe('the spec field `network`', () => {
  it('reads delay, jitter, loss, rate, overrides and a latency matrix into numbers with units in their names', () => {
    const { spec } = parseSpec(
      netns +
        'network:\n  delay: 50ms\n  jitter: 5ms\n  loss: 1%\n  rate: 100mbit\n  overrides:\n    - group: slow\n      delay: 0.2s\n    - ranks: [0]\n      loss: 0.5%\n  latency:\n    slow: { slow: 10ms }\n',
      { file: 'spec.yaml' },
    );
    expect(spec.network).toEqual({
      delayMs: 50,
      jitterMs: 5,
      lossPercent: 1,
      rateBitsPerSecond: 100_000_000,
      overrides: [
        { group: 'slow', delayMs: 200 },
        { ranks: [0], lossPercent: 0.5 },
      ],
      latency: { slow: { slow: 10 } },
    });
    expect(spec.provider).toEqual({ kind: 'local', isolation: 'netns' });
  });

  it('loads the WAN example of ping-mesh', () => {
    const { spec } = loadSpec('examples/ping-mesh/wan.yaml');
    expect(spec.provider).toEqual({ kind: 'local', isolation: 'netns' });
    expect(spec.network).toEqual({ delayMs: 50, overrides: [], latency: {} });
  });

  it('is optional, and `isolation: netns` alone is a valid provider', () => {
    const { spec } = parseSpec(netns, { file: 'spec.yaml' });
    expect(spec.network).toBeUndefined();
  });

  it('refuses `network` with loopback isolation, naming `isolation: netns`', () => {
    const error = refused('name: demo\ninstances: 4\nrun: echo\nnetwork:\n  delay: 50ms\n');
    expect(error.keyPath).toBe('network');
    expect(error.line).toBe(4);
    expect(error.message).toContain('isolation: netns');
    expect(refused('name: demo\ninstances: 4\nrun: echo\nprovider: { kind: local, isolation: loopback }\nnetwork:\n  rate: 1mbit\n').keyPath).toBe('network');
  });

  it('accepts `network` on AWS, where the agent owns the instance', () => {
    const { spec } = parseSpec('name: demo\ninstances: 4\nrun: echo\nstore: s3://b/p\nprovider: { kind: aws }\nnetwork:\n  delay: 50ms\n', { file: 'spec.yaml' });
    expect(spec.network?.delayMs).toBe(50);
  });

  it('refuses netns isolation with an S3 store in the spec', () => {
    const error = refused(netns + 'store: s3://bucket/prefix\n');
    expect(error.keyPath).toBe('store');
    expect(error.message).toContain('needs a folder store');
  });

  it.each([
    ['delay: fast', 'network.delay', 'Expected a delay such as `50ms`'],
    ['delay: 50', 'network.delay', 'a bare number is seconds'],
    ['jitter: 11s', 'network.jitter', 'at most 10s'],
    ['loss: 0.5', 'network.loss', 'Expected a percentage'],
    ['loss: 101%', 'network.loss', 'Expected a percentage'],
    ['rate: 100mbps', 'network.rate', 'in `kbit`, `mbit` or `gbit`'],
    ['rate: 1kbit', 'network.rate', 'at least `8kbit`'],
    ['dealy: 5ms', 'network.dealy', 'did you mean `delay`'],
    ['overrides:\n    - group: fast\n      delay: 1ms', 'network.overrides.0.group', 'No group named `fast` in `groups`: name one of `slow`'],
    ['overrides:\n    - ranks: "3-9"\n      delay: 1ms', 'network.overrides.0.ranks', 'Rank 4 is outside 0..3'],
    ['overrides:\n    - ranks: "3-1"\n      delay: 1ms', 'network.overrides.0.ranks', 'empty'],
    ['overrides:\n    - delay: 1ms', 'network.overrides.0', 'exactly one of `group` or `ranks`'],
    ['latency:\n    slow: { fast: 1ms }', 'network.latency.slow.fast', 'No group named `fast`'],
    ['latency:\n    fast: { slow: 1ms }', 'network.latency.fast', 'No group named `fast`'],
    ['latency:\n    slow: { slow: soon }', 'network.latency.slow.slow', 'Expected a delay'],
  ])('refuses `%s` at %s', (field, keyPath, problem) => {
    const error = refused(`${netns}network:\n  ${field}\n`);
    expect(error.keyPath).toBe(keyPath);
    expect(error.message).toContain(problem);
    expect(error.line).toBeGreaterThanOrEqual(9);
  });
});
