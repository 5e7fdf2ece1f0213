import type { SshProviderSpec } from '../../spec/provider-ssh.ts';
import type { Spec } from '../../spec/schema.ts';
import { instanceIds, loadInventory, selectHosts } from '../../spec/inventory.ts';
import { describeTarget } from './connection.ts';

export interface SshPlan {
  readonly provider: 'ssh';
  readonly instances: number;
  readonly repeats: number;
  readonly inventory: string;
  readonly hosts: ReadonlyArray<{ readonly instanceId: string; readonly name: string; readonly target: string }>;
  readonly jump?: string;
  readonly store: string;
}

/** What `lockstep run --dry-run` shows for SSH: the hosts the run would use, in order. Connects to none. */
export function describeSshPlan(spec: Spec, provider: SshProviderSpec, store: string | undefined): { plan: SshPlan; text: string } {
  const chosen = selectHosts(loadInventory(provider.inventory), provider.hosts).slice(0, spec.instances);
  const ids = instanceIds(chosen);
  const plan: SshPlan = {
    provider: 'ssh',
    instances: spec.instances,
    repeats: spec.repeats,
    inventory: provider.inventory,
    hosts: chosen.map((host, i) => ({ instanceId: ids[i]!, name: host.name, target: describeTarget({ name: host.name, host: host.host, port: host.port, user: host.user }) })),
    ...(provider.jump ? { jump: provider.jump } : {}),
    store: store ?? spec.store ?? '.lockstep/store',
  };
  const text = [
    `SSH plan: ${spec.instances} agent(s) on these hosts of ${plan.inventory}${plan.jump ? ` (through ${plan.jump})` : ''}; ${spec.repeats} repeat(s); store ${plan.store}:`,
    ...plan.hosts.map((h) => `  ${h.name}  ${h.target}`),
    'Nothing was started.',
  ].join('\n');
  return { plan, text };
}
