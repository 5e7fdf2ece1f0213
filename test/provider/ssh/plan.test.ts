import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FaultAction } from '../../../src/core/faults.ts';
import { privilegedToolsFor } from '../../../src/core/privileged-tools.ts';
import { describeSshPlan } from '../../../src/provider/ssh/plan.ts';
import { loadSpec } from '../../../src/spec/load.ts';
import { tempDir } from '../../helpers/temp.ts';

describe('the plan of an SSH run (--dry-run)', () => {
  it('lists the hosts the run would use, in inventory order, and connects to none', () => {
    const dir = tempDir('ssh-plan');
    writeFileSync(join(dir, 'hosts.yaml'), 'all:\n  vars: { ansible_user: lab }\n  hosts:\n    n[1:3]:\n    far: { ansible_host: 192.0.2.7, ansible_port: 2222 }\n');
    writeFileSync(join(dir, 'spec.yaml'), 'name: p\ninstances: 2\nrepeats: 3\nrun: echo\nprovider: { kind: ssh, inventory: hosts.yaml, jump: me@bastion }\n');
    const loaded = loadSpec(join(dir, 'spec.yaml'));
    const { plan, text } = describeSshPlan(loaded.spec, loaded.spec.provider as never, undefined);
    expect(plan.hosts).toEqual([
      { instanceId: 'n1', name: 'n1', target: 'lab@n1' },
      { instanceId: 'n2', name: 'n2', target: 'lab@n2' },
    ]);
    expect(text).toContain('SSH plan: 2 agent(s) on these hosts of');
    expect(text).toContain('(through me@bastion); 3 repeat(s)');
    expect(text.split('\n').at(-1)).toBe('Nothing was started.');
  });
});

describe('the privileged tools a run needs on its hosts', () => {
  it('are tc for network emulation (of the spec or a fault) and nft for partitions', () => {
    const event = (action: FaultAction) => ({ id: '0#1', entry: 0, occurrence: 1, action, atMs: 0, repeats: [1], targets: [0] });
    const timeline = (...actions: FaultAction[]) => ({ seeds: [], events: actions.map(event) });
    expect(privilegedToolsFor({})).toEqual([]);
    expect(privilegedToolsFor({ network: { overrides: [], latency: {}, delayMs: 10 } })).toEqual(['tc']);
    expect(privilegedToolsFor({ faults: timeline('kill', 'pause', 'restart') })).toEqual([]);
    expect(privilegedToolsFor({ faults: timeline('network', 'partition') })).toEqual(['tc', 'nft']);
  });
});
