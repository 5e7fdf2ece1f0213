import { relative, resolve } from 'node:path';
import { instanceIds, InventoryError, inventoryMembers, loadInventory, selectHosts } from './inventory.ts';
import type { Spec } from './schema.ts';
import { editDistance } from '../util/edit-distance.ts';

export interface SshSpecProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
  /** `inventory.yaml:LINE:COL` when the problem is in the inventory. */
  readonly origin?: string;
}

/**
 * What only the inventory can tell about a spec (`provider: { kind: ssh }`), checked when the spec
 * is loaded: the inventory itself (with its line), enough hosts for `instances`, and the groups
 * that name inventory hosts. Makes the provider's paths absolute (they are relative to the spec)
 * and gives each `hosts` group the instance ids of its hosts. Returns the first problem.
 */
export function resolveSshSpec(spec: Spec, specDir: string, cwd = process.cwd()): SshSpecProblem | undefined {
  const provider = spec.provider;
  if (provider.kind !== 'ssh') {
    const index = spec.groups.findIndex((g) => g.hosts !== undefined);
    if (index < 0) return undefined;
    return { path: ['groups', index, 'hosts'], message: '`hosts` picks hosts of an SSH inventory: it needs `provider: { kind: ssh, inventory: … }`; use `ranks`, `count` or `fraction`' };
  }
  provider.inventory = resolve(specDir, provider.inventory);
  if (provider.knownHosts) provider.knownHosts = resolve(specDir, provider.knownHosts);
  const shown = relative(cwd, provider.inventory) || provider.inventory;
  let chosen;
  let inventory;
  try {
    inventory = loadInventory(provider.inventory);
    chosen = selectHosts(inventory, provider.hosts);
  } catch (error) {
    if (!(error instanceof InventoryError)) throw error;
    const where = error.line === undefined ? shown : `${shown}:${error.line}:${error.column ?? 1}`;
    return { path: error.problem.startsWith('No group or host') ? ['provider', 'hosts'] : ['provider', 'inventory'], message: error.problem, ...(error.problem.startsWith('No group or host') ? {} : { origin: where }) };
  }
  if (chosen.length < spec.instances) {
    return {
      path: ['instances'],
      message: `${spec.instances} instances, but the inventory ${shown} has ${chosen.length} host(s)${provider.hosts ? ` in \`${provider.hosts}\`` : ''}: lower \`instances\` or add hosts (each host runs one instance)`,
    };
  }
  const used = chosen.slice(0, spec.instances);
  const ids = instanceIds(used);
  const names = [...inventory.groups.keys(), ...inventory.hosts.map((h) => h.name)];
  for (const [index, group] of spec.groups.entries()) {
    if (group.hosts === undefined) continue;
    const members = inventoryMembers(inventory, group.hosts);
    if (!members) {
      const close = names.find((n) => editDistance(n, group.hosts!) <= 2);
      return { path: ['groups', index, 'hosts'], message: `No group or host \`${group.hosts}\` in the inventory ${shown}: ${close ? `did you mean \`${close}\`?` : `use one of ${names.slice(0, 12).map((n) => `\`${n}\``).join(', ')}`}` };
    }
    const named = new Set(members);
    const instances = used.flatMap((host, i) => (named.has(host.name) ? [ids[i]!] : []));
    if (instances.length === 0) {
      return { path: ['groups', index, 'hosts'], message: `None of the ${spec.instances} hosts this run uses is in \`${group.hosts}\` (hosts are taken in inventory order): raise \`instances\`, or pick another group` };
    }
    spec.groups[index] = { ...group, instances };
  }
  return undefined;
}
