import { writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { instanceIds, InventoryError, parseInventory, selectHosts } from '../../src/spec/inventory.ts';
import { loadSpec, SpecError } from '../../src/spec/load.ts';
import { tempDir } from '../helpers/temp.ts';

const parse = (text: string) => parseInventory(text, '/lab/hosts.yaml');
const problem = (text: string) => {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof InventoryError) return error.message;
    throw error;
  }
  throw new Error('no error');
};

describe('Ansible YAML inventory', () => {
  it('reads hosts in file order with variables from all, parent and child groups and the host', () => {
    const inventory = parse(`
all:
  vars:
    ansible_user: lab
    ansible_port: 2200
  hosts:
    node[1:3].lab:
    db-[a:b]:
      ansible_port: "2222"
  children:
    eu:
      vars: { ansible_user: eu-user }
      hosts:
        node2.lab:
        eu1: { ansible_host: 10.0.0.5, ansible_ssh_private_key_file: keys/eu, lockstep_address: 10.1.0.5 }
      children:
        eu_west:
          vars: { ansible_user: west-user }
          hosts:
            eu1:
ungrouped:
  hosts:
    solo: { ansible_ssh_host: 192.0.2.9, ansible_ssh_user: me, ansible_ssh_port: 23 }
`);
    expect(inventory.hosts.map((h) => h.name)).toEqual(['node1.lab', 'node2.lab', 'node3.lab', 'db-a', 'db-b', 'eu1', 'solo']);
    const byName = new Map(inventory.hosts.map((h) => [h.name, h]));
    expect(byName.get('node1.lab')).toMatchObject({ host: 'node1.lab', port: 2200, user: 'lab', line: 7 });
    expect(byName.get('node2.lab')).toMatchObject({ user: 'eu-user', groups: ['all', 'eu'] });
    expect(byName.get('db-b')).toMatchObject({ port: 2222, user: 'lab' });
    // The deepest group wins over its parent; the host's own variables over both.
    expect(byName.get('eu1')).toMatchObject({ host: '10.0.0.5', user: 'west-user', keyFile: '/lab/keys/eu', address: '10.1.0.5', groups: ['all', 'eu', 'eu_west'] });
    expect(byName.get('solo')).toMatchObject({ host: '192.0.2.9', user: 'me', port: 23 });
    expect(inventory.groups.get('eu')).toEqual(['node2.lab', 'eu1']);
    expect(inventory.groups.get('eu_west')).toEqual(['eu1']);
    expect(selectHosts(inventory, 'eu').map((h) => h.name)).toEqual(['node2.lab', 'eu1']);
    expect(selectHosts(inventory, 'solo').map((h) => h.name)).toEqual(['solo']);
    expect(() => selectHosts(inventory, 'ue')).toThrow(/No group or host `ue`.*did you mean `eu`\?/);
  });

  it('keeps the width of zero-padded ranges, takes steps, and expands ~ in key paths', () => {
    const inventory = parse('all:\n  hosts:\n    web[08:12:2]:\n      ansible_ssh_private_key_file: ~/.ssh/lab\n');
    expect(inventory.hosts.map((h) => h.name)).toEqual(['web08', 'web10', 'web12']);
    expect(inventory.hosts[0]!.keyFile).toBe(join(homedir(), '.ssh/lab'));
  });

  it('refuses what it cannot use, with the line and the fix', () => {
    expect(problem('all:\n  hosts:\n    a:\n      ansible_port: ssh\n')).toBe('/lab/hosts.yaml:4:21: `ansible_port` of host `a` must be a port number (1-65535), got `ssh`');
    expect(problem('all:\n  host:\n    a:\n')).toBe('/lab/hosts.yaml:2:3: Unknown key `host` in group `all`: did you mean `hosts`?');
    expect(problem('all:\n  hosts:\n    - a\n    - b\n')).toMatch(/^\/lab\/hosts\.yaml:2:3: `hosts` of `all` must be a mapping: write each host as `name:` on its own line/);
    expect(problem('all:\n  hosts:\n    a: { ansible_password: x }\n')).toMatch(/^\/lab\/hosts\.yaml:3:10: `ansible_password` is not supported: lockstep logs in with keys only/);
    expect(problem('all:\n  hosts:\n    a: { ansible_host: "{{ ip }}" }\n')).toMatch(/:3:24: `ansible_host`: Jinja templates are not evaluated/);
    expect(problem('all:\n  hosts:\n    a: { ansible_connection: local }\n')).toMatch(/:3:30: Host `a` has `ansible_connection: local`: lockstep reaches hosts over SSH only/);
    expect(problem('all:\n  hosts:\n    n[3:1]:\n')).toMatch(/:3:5: The range `\[3:1\]` in `n\[3:1\]` is empty/);
    expect(problem('all:\n  children:\n    eu:\n')).toMatch(/^\/lab\/hosts\.yaml:1:1: The inventory lists no host/);
    expect(problem('all:\n  hosts:\n    a:\n  hosts:\n    b:\n')).toMatch(/^\/lab\/hosts\.yaml:3:7: Malformed YAML: Map keys must be unique/);
    expect(problem('[web]\nnode1\n')).toMatch(/Expected a YAML inventory.*INI inventories are not read/);
  });

  it('gives instances ids from host names, safe for store keys and unique', () => {
    expect(instanceIds([{ name: 'node1.lab' }, { name: '10.0.0.5' }, { name: 'a b' }, { name: 'a/b' }, { name: '[::1]' }])).toEqual(['node1.lab', '10.0.0.5', 'a-b', 'a-b-2', '1-']);
  });
});

describe('a spec with provider ssh', () => {
  const write = (files: Record<string, string>) => {
    const dir = tempDir('ssh-spec');
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };
  const inventory = 'all:\n  hosts:\n    n1:\n    n2:\n    n3:\n  children:\n    leaders:\n      hosts:\n        n3:\n        n1:\n    last:\n      hosts:\n        n3:\n';
  const spec = (extra: string) => `name: ssh-spec\ninstances: 3\nrun: echo hi\nprovider: { kind: ssh, inventory: hosts.yaml, knownHosts: known }\n${extra}`;
  const refused = (dir: string) => {
    try {
      loadSpec(join(dir, 'spec.yaml'), { cwd: dir });
    } catch (error) {
      if (error instanceof SpecError) return error.message;
      throw error;
    }
    throw new Error('loaded');
  };

  it('resolves the inventory and known-hosts paths, and inventory groups into the instances they name', () => {
    const dir = write({ 'hosts.yaml': inventory, 'spec.yaml': spec('groups:\n  - hosts: leaders\n    params: { role: leader }\n') });
    const { spec: loaded } = loadSpec(join(dir, 'spec.yaml'), { cwd: dir });
    expect(loaded.provider).toMatchObject({ kind: 'ssh', inventory: join(dir, 'hosts.yaml'), knownHosts: join(dir, 'known'), concurrency: 32, hostKeys: 'strict' });
    // In inventory order of the run's hosts, whatever the group's own order.
    expect(loaded.groups[0]).toMatchObject({ name: 'leaders', hosts: 'leaders', instances: ['n1', 'n3'] });
  });

  it('refuses a bad inventory with its own line, too few hosts, and unknown groups', () => {
    expect(refused(write({ 'hosts.yaml': 'all:\n  hosts:\n    n1: { ansible_port: 0 }\n', 'spec.yaml': spec('') }))).toBe(
      'hosts.yaml:3:25: provider.inventory: `ansible_port` of host `n1` must be a port number (1-65535), got `0`',
    );
    expect(refused(write({ 'spec.yaml': spec('') }))).toMatch(/^hosts\.yaml: provider\.inventory: No inventory file here/);
    expect(refused(write({ 'hosts.yaml': inventory, 'spec.yaml': spec('').replace('instances: 3', 'instances: 4') }))).toBe(
      'spec.yaml:2:1: instances: 4 instances, but the inventory hosts.yaml has 3 host(s): lower `instances` or add hosts (each host runs one instance)',
    );
    expect(refused(write({ 'hosts.yaml': inventory, 'spec.yaml': spec('groups:\n  - hosts: leader\n') }))).toBe(
      'spec.yaml:6:5: groups.0.hosts: No group or host `leader` in the inventory hosts.yaml: did you mean `leaders`?',
    );
    expect(refused(write({ 'hosts.yaml': inventory, 'spec.yaml': spec('').replace('instances: 3', 'instances: 1') + 'groups:\n  - hosts: last\n' }))).toMatch(
      /groups\.0\.hosts: None of the 1 hosts this run uses is in `last`/,
    );
    expect(refused(write({ 'spec.yaml': 'name: x\ninstances: 1\nrun: echo\ngroups:\n  - hosts: leaders\n' }))).toMatch(/groups\.0\.hosts: `hosts` picks hosts of an SSH inventory: it needs `provider: \{ kind: ssh/);
    expect(refused(write({ 'hosts.yaml': inventory, 'spec.yaml': spec('').replace('knownHosts: known', 'jump: "a@b@c"') }))).toMatch(/provider\.jump: Expected a bastion as `user@host`/);
  });
});
