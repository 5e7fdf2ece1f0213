import { describe, expect, it } from 'vitest';
import { compareAddresses, rankOrder } from '../../src/agent/hosts.ts';

describe('hosts', () => {
  it('sorts IPv4 addresses numerically, like sort -V in the seed', () => {
    const sorted = ['10.0.0.10', '10.0.0.9', '9.255.255.255', '10.0.1.1', '10.0.0.100'].sort(compareAddresses);
    expect(sorted).toEqual(['9.255.255.255', '10.0.0.9', '10.0.0.10', '10.0.0.100', '10.0.1.1']);
  });

  it('breaks ties between instances that share an address by instance id', () => {
    const members = rankOrder([
      { instanceId: 'b', address: '127.0.0.1', readyAt: 1 },
      { instanceId: 'a', address: '127.0.0.1', readyAt: 2 },
    ]);
    expect(members.map((m) => m.instanceId)).toEqual(['a', 'b']);
  });
});
