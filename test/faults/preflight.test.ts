import { describe, expect, it } from 'vitest';
import { checkFaultSupport, FaultSupportError, type FaultSupportFacts } from '../../src/controller/fault-preflight.ts';
import type { Spec } from '../../src/spec/schema.ts';

type Checked = Parameters<typeof checkFaultSupport>[0];
const partition = { action: 'partition', at: 1000, duration: 1000, shape: 'halves' } as unknown as NonNullable<Spec['faults']>[number];
const kill = { action: 'kill', at: 1000 } as unknown as NonNullable<Spec['faults']>[number];
const local = (isolation: 'loopback' | 'netns', faults: Checked['faults']): Checked => ({ provider: { kind: 'local', isolation } as Spec['provider'], faults });
const able: FaultSupportFacts = { platform: 'linux', uid: 0, nft: '/usr/sbin/nft', cgroup: null };

function refusal(spec: Checked, facts: FaultSupportFacts): FaultSupportError {
  try {
    checkFaultSupport(spec, facts);
  } catch (error) {
    expect(error).toBeInstanceOf(FaultSupportError);
    expect((error as FaultSupportError).exitCode).toBe(2);
    return error as FaultSupportError;
  }
  throw new Error('the spec was accepted');
}

describe('checking that this machine can apply the partitions, before launch', () => {
  it('accepts a machine that can, specs without a partition anywhere, and leaves other providers to their agents', () => {
    expect(() => checkFaultSupport(local('loopback', [kill, partition]), able)).not.toThrow();
    expect(() => checkFaultSupport(local('netns', [partition]), { ...able, uid: 1000, cgroup: 'no cgroup2' })).not.toThrow();
    const unable: FaultSupportFacts = { platform: 'darwin', uid: 501, nft: null, cgroup: 'none' };
    expect(() => checkFaultSupport(local('loopback', [kill]), unable)).not.toThrow();
    expect(() => checkFaultSupport(local('loopback', undefined), unable)).not.toThrow();
    expect(() => checkFaultSupport({ provider: { kind: 'aws' } as Spec['provider'], faults: [partition] }, unable)).not.toThrow();
  });

  it('refuses a loopback partition, naming the entry, everything missing and the way out', () => {
    const error = refusal(local('loopback', [kill, partition]), { ...able, uid: 1000, nft: null, cgroup: '/sys/fs/cgroup is cgroup v1' });
    expect(error.message).toMatch(/^`faults\.1` \(a partition\) on the loopback cuts nodes apart by the cgroup of each node's command/);
    expect(error.message).toContain('which needs root, nftables (`nft`), cgroup v2 (/sys/fs/cgroup is cgroup v1)');
    expect(error.message).toContain('use `provider: { kind: local, isolation: netns }`');
    expect(refusal(local('loopback', [partition]), { ...able, platform: 'darwin' }).message).toContain('needs Linux (this is darwin):');
  });

  it('refuses a netns partition without nft, saying what to install', () => {
    expect(refusal(local('netns', [partition]), { ...able, nft: null }).message).toBe(
      "`faults.0` (a partition) needs nftables in the instances' namespaces, and `nft` is not installed: install nftables (`apt-get install nftables`, `dnf install nftables`)",
    );
  });
});
