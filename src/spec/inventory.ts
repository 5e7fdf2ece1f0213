import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { editDistance } from '../util/edit-distance.ts';

/**
 * Ansible's YAML inventory, the part lockstep uses:
 *
 * ```yaml
 * all:
 *   vars: { ansible_user: lab }
 *   hosts:
 *     node[1:3].lab.example:            # node1, node2, node3 (ranges as in Ansible)
 *   children:
 *     eu:
 *       hosts:
 *         eu1: { ansible_host: 10.0.0.5, ansible_port: 2222, ansible_ssh_private_key_file: ~/.ssh/lab }
 * ```
 *
 * Top-level keys are groups (`all` holds every host); a group has `hosts` (name → variables),
 * `vars` and `children` (groups). Variables apply from `all`, then from parent to child groups
 * (siblings by name, as Ansible does), then the host's own. Hosts keep the order in which the file
 * first names them.
 */

export interface InventoryHost {
  /** The inventory name. */
  readonly name: string;
  /** Where to connect: `ansible_host`, else the name. */
  readonly host: string;
  readonly port: number;
  /** `ansible_user`; absent: the user running lockstep. */
  readonly user?: string;
  /** `ansible_ssh_private_key_file`, absolute. */
  readonly keyFile?: string;
  /** `lockstep_address`: the address peers use; absent: the one the host was reached at. */
  readonly address?: string;
  /** `lockstep_work_dir`, `lockstep_node`: per-host overrides of the provider's settings. */
  readonly workDir?: string;
  readonly node?: string;
  /** Every group the host is in (`all` included). */
  readonly groups: readonly string[];
  /** Where the file first names the host. */
  readonly line: number;
}

export interface Inventory {
  readonly file: string;
  /** In inventory order. */
  readonly hosts: readonly InventoryHost[];
  /** Group name → its hosts' names (its children's included), in inventory order. */
  readonly groups: ReadonlyMap<string, readonly string[]>;
}

export class InventoryError extends Error {
  override readonly name = 'InventoryError';
  readonly exitCode = 2;
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(`${line === undefined ? file : `${file}:${line}:${column ?? 1}`}: ${problem}`);
  }
}

const GROUP_KEYS = ['hosts', 'vars', 'children'];
const GROUP_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
/** `[01:50]`, `[a:f]`, `[1:10:2]` in a host name. */
const RANGE = /\[([0-9a-z]+):([0-9a-z]+)(?::(\d+))?\]/i;
const MAX_EXPANDED = 100_000;

/** Ansible's older names for a setting: the same variable, so a host's own wins over a group's either way. */
const ALIASES: Record<string, string> = {
  ansible_ssh_host: 'ansible_host',
  ansible_ssh_port: 'ansible_port',
  ansible_ssh_user: 'ansible_user',
  ansible_private_key_file: 'ansible_ssh_private_key_file',
};
/** Variables that ask for what lockstep does not do, with the way it does it instead. */
const REFUSED: Record<string, string> = {
  ansible_password: 'lockstep logs in with keys only: give the host a key (`ansible_ssh_private_key_file`) or load one into ssh-agent',
  ansible_ssh_pass: 'lockstep logs in with keys only: give the host a key (`ansible_ssh_private_key_file`) or load one into ssh-agent',
  ansible_ssh_common_args: 'lockstep does not pass options to ssh: for a bastion set `provider.jump`',
  ansible_ssh_extra_args: 'lockstep does not pass options to ssh: for a bastion set `provider.jump`',
};

interface GroupState {
  readonly name: string;
  depth: number;
  vars: Record<string, VarValue>;
  readonly hosts: string[];
  readonly children: string[];
}

interface VarValue {
  readonly value: unknown;
  readonly node: Node;
}

export function loadInventory(path: string): Inventory {
  if (!existsSync(path)) throw new InventoryError(path, 'No inventory file here: check `provider.inventory` (it is relative to the spec)');
  return parseInventory(readFileSync(path, 'utf8'), path);
}

const INI_NOTE = 'INI inventories are not read: convert it (`ansible-inventory -i hosts.ini --list -y > hosts.yaml`)';

export function parseInventory(text: string, file: string): Inventory {
  const firstLine = text.split('\n').findIndex((l) => l.trim() !== '' && !/^\s*[#;]/.test(l));
  if (firstLine >= 0 && /^\s*\[[^\]]+\]\s*$/.test(text.split('\n')[firstLine]!)) {
    throw new InventoryError(file, `Expected a YAML inventory (\`all: { hosts: … }\`), and this looks like an INI one: ${INI_NOTE}`, firstLine + 1, 1);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (node: { range?: [number, number, number] | null } | null | undefined) => {
    const pos = node?.range ? lines.linePos(node.range[0]) : undefined;
    return { line: pos?.line, column: pos?.col };
  };
  const fail = (node: Node | null | undefined, problem: string): never => {
    const { line, column } = at(node);
    throw new InventoryError(file, problem, line, column);
  };
  if (doc.errors[0]) {
    const pos = lines.linePos(doc.errors[0].pos[0]);
    const detail = doc.errors[0].message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new InventoryError(file, `Malformed YAML: ${detail}`, pos.line, pos.col);
  }
  if (!isMap(doc.contents)) {
    fail(doc.contents, `Expected a YAML inventory: a mapping of groups, starting with \`all:\` (\`all: { hosts: { node1: … } }\`); ${INI_NOTE}`);
  }

  const groups = new Map<string, GroupState>();
  const hostVars = new Map<string, Record<string, VarValue>>();
  const hostLines = new Map<string, number>();
  const hostOrder: string[] = [];
  const group = (name: string, depth: number): GroupState => {
    const found = groups.get(name);
    if (found) {
      found.depth = Math.max(found.depth, depth);
      return found;
    }
    const made: GroupState = { name, depth, vars: {}, hosts: [], children: [] };
    groups.set(name, made);
    return made;
  };
  group('all', 0);

  const readVars = (map: unknown, where: Node): Record<string, VarValue> => {
    if (map === null || (isScalar(map) && map.value === null)) return {};
    if (!isMap(map)) fail(where, 'Expected variables as a mapping (`name: value` lines)');
    const vars: Record<string, VarValue> = {};
    for (const pair of (map as YAMLMap).items) {
      const key = keyOf(pair, fail);
      const value = (pair.value ?? pair.key) as Node;
      const plain = isScalar(pair.value) ? pair.value.value : (pair.value as { toJSON?: () => unknown } | null)?.toJSON?.();
      if (key in REFUSED) fail(pair.key as Node, `\`${key}\` is not supported: ${REFUSED[key]}`);
      if (typeof plain === 'string' && plain.includes('{{')) {
        fail(value, `\`${key}\`: Jinja templates are not evaluated here: write the value itself`);
      }
      vars[ALIASES[key] ?? key] = { value: plain, node: value };
    }
    return vars;
  };

  const readGroup = (name: string, body: unknown, keyNode: Node, depth: number, parent?: GroupState) => {
    if (!GROUP_NAME.test(name)) fail(keyNode, `\`${name}\` is not a group name: use letters, digits, \`_\`, \`.\` and \`-\``);
    const state = group(name, depth);
    if (parent && !parent.children.includes(name)) parent.children.push(name);
    if (body === null || (isScalar(body) && body.value === null)) return;
    if (!isMap(body)) fail(keyNode, `Group \`${name}\` must be a mapping with \`hosts\`, \`vars\` or \`children\``);
    for (const pair of (body as YAMLMap).items) {
      const key = keyOf(pair, fail);
      const valueNode = pair.value as Node | null;
      if (!GROUP_KEYS.includes(key)) {
        const close = GROUP_KEYS.find((k) => editDistance(k, key) <= 2);
        fail(pair.key as Node, `Unknown key \`${key}\` in group \`${name}\`: ${close ? `did you mean \`${close}\`?` : 'a group has `hosts`, `vars` and `children`'}`);
      }
      if (valueNode === null || (isScalar(valueNode) && valueNode.value === null)) continue;
      if (key === 'vars') {
        state.vars = { ...state.vars, ...readVars(valueNode, pair.key as Node) };
      } else if (key === 'children') {
        if (!isMap(valueNode)) fail(pair.key as Node, `\`children\` of \`${name}\` must be a mapping of group names (\`child:\` on its own line)`);
        for (const child of (valueNode as YAMLMap).items) readGroup(keyOf(child, fail), child.value, child.key as Node, depth + 1, state);
      } else {
        if (!isMap(valueNode)) {
          fail(pair.key as Node, `\`hosts\` of \`${name}\` must be a mapping: write each host as \`name:\` on its own line (with its variables below it, if any)`);
        }
        for (const entry of (valueNode as YAMLMap).items) {
          const pattern = keyOf(entry, fail);
          const names = expandHostPattern(pattern, (problem) => fail(entry.key as Node, problem));
          const vars = readVars(entry.value, entry.key as Node);
          for (const host of names) {
            if (!hostLines.has(host)) {
              hostLines.set(host, at(entry.key as Node).line ?? 1);
              hostOrder.push(host);
            }
            hostVars.set(host, { ...(hostVars.get(host) ?? {}), ...vars });
            if (!state.hosts.includes(host)) state.hosts.push(host);
          }
        }
      }
    }
  };

  for (const pair of (doc.contents as YAMLMap).items) readGroup(keyOf(pair, fail), pair.value, pair.key as Node, pair.key && keyOf(pair, fail) === 'all' ? 0 : 1);
  if (hostOrder.length === 0) fail(doc.contents, 'The inventory lists no host: add some under `all: { hosts: … }`');

  // Members of a group: its own hosts and its children's, in inventory order.
  const membersOf = (name: string, seen = new Set<string>()): Set<string> => {
    const found = new Set<string>();
    if (seen.has(name)) return found;
    seen.add(name);
    const state = groups.get(name)!;
    for (const host of state.hosts) found.add(host);
    for (const child of state.children) for (const host of membersOf(child, seen)) found.add(host);
    return found;
  };
  const members = new Map<string, readonly string[]>();
  for (const name of groups.keys()) {
    const set = name === 'all' ? new Set(hostOrder) : membersOf(name);
    members.set(name, hostOrder.filter((h) => set.has(h)));
  }

  const hosts = hostOrder.map((name): InventoryHost => {
    const inGroups = [...groups.values()].filter((g) => members.get(g.name)!.includes(name));
    // Ansible's order: by depth, then by name; the host's own variables last.
    inGroups.sort((a, b) => a.depth - b.depth || a.name.localeCompare(b.name));
    const vars: Record<string, VarValue> = {};
    for (const g of inGroups) Object.assign(vars, g.vars);
    Object.assign(vars, hostVars.get(name));
    const pick = (key: string) => (vars[key]?.value === null || vars[key]?.value === undefined ? undefined : vars[key]);
    const text = (key: string, what: string): string | undefined => {
      const found = pick(key);
      if (!found) return undefined;
      if (typeof found.value !== 'string' && typeof found.value !== 'number') fail(found.node, `\`${key}\` of host \`${name}\` must be ${what}`);
      const value = String(found.value).trim();
      if (value === '') fail(found.node, `\`${key}\` of host \`${name}\` is empty: give ${what}, or remove it`);
      return value;
    };
    const portVar = pick('ansible_port');
    let port = 22;
    if (portVar) {
      port = Number(portVar.value);
      if (!Number.isInteger(port) || port < 1 || port > 65535) fail(portVar.node, `\`ansible_port\` of host \`${name}\` must be a port number (1-65535), got \`${String(portVar.value)}\``);
    }
    const connection = pick('ansible_connection');
    if (connection && !['ssh', 'paramiko', 'smart'].includes(String(connection.value))) {
      fail(connection.node, `Host \`${name}\` has \`ansible_connection: ${String(connection.value)}\`: lockstep reaches hosts over SSH only; remove it, or leave the host out (\`provider.hosts\`)`);
    }
    const keyFile = text('ansible_ssh_private_key_file', 'a path');
    return {
      name,
      host: text('ansible_host', 'a host name or address') ?? name,
      port,
      user: text('ansible_user', 'a user name'),
      keyFile: keyFile === undefined ? undefined : expandPath(keyFile, dirname(file)),
      address: text('lockstep_address', 'an address'),
      workDir: text('lockstep_work_dir', 'a path'),
      node: text('lockstep_node', 'a path'),
      groups: inGroups.map((g) => g.name),
      line: hostLines.get(name)!,
    };
  });
  return { file, hosts, groups: members };
}

function keyOf(pair: Pair, fail: (node: Node | null | undefined, problem: string) => never): string {
  if (!isScalar(pair.key) || pair.key.value === null || typeof pair.key.value === 'object') fail(pair.key as Node, 'Expected a name here');
  return String((pair.key as { value: unknown }).value);
}

/** Ansible's host ranges: `node[1:3]` → node1, node2, node3; `db[01:02]` keeps the width; `[a:c]`; `[0:10:5]`. */
export function expandHostPattern(pattern: string, fail: (problem: string) => never): string[] {
  const match = RANGE.exec(pattern);
  if (!match) {
    if (/[[\]]/.test(pattern) && !/^\[[0-9a-f:.]+\]$/i.test(pattern)) fail(`\`${pattern}\` is not a host name or range: write a range as \`name[1:3]\``);
    return [pattern];
  }
  const [whole, from, to, stepText] = match;
  const step = stepText === undefined ? 1 : Number(stepText);
  const before = pattern.slice(0, match.index);
  const after = pattern.slice(match.index + whole!.length);
  const numeric = /^\d+$/.test(from!) && /^\d+$/.test(to!);
  const alphabetic = /^[a-z]$/i.test(from!) && /^[a-z]$/i.test(to!);
  if ((!numeric && !alphabetic) || step < 1) fail(`\`${whole}\` in \`${pattern}\` is not a range: write \`[1:3]\`, \`[01:10]\`, \`[a:f]\` or \`[1:9:2]\``);
  const values: string[] = [];
  if (numeric) {
    const first = Number(from);
    const last = Number(to);
    const width = from!.startsWith('0') && from!.length > 1 ? from!.length : 0;
    if (first > last) fail(`The range \`${whole}\` in \`${pattern}\` is empty: write it as [first:last]`);
    if ((last - first) / step > MAX_EXPANDED) fail(`The range \`${whole}\` in \`${pattern}\` makes too many hosts`);
    for (let i = first; i <= last; i += step) values.push(String(i).padStart(width, '0'));
  } else {
    const first = from!.charCodeAt(0);
    const last = to!.charCodeAt(0);
    if (first > last) fail(`The range \`${whole}\` in \`${pattern}\` is empty: write it as [first:last]`);
    for (let c = first; c <= last; c += step) values.push(String.fromCharCode(c));
  }
  return values.flatMap((value) => expandHostPattern(`${before}${value}${after}`, fail));
}

function expandPath(path: string, base: string): string {
  if (path === '~' || path.startsWith('~/')) return resolve(homedir(), path.slice(2));
  return isAbsolute(path) ? path : resolve(base, path);
}

/**
 * The hosts a run uses: those of `selection` (a group or a host; default every host), in inventory
 * order. Throws an `InventoryError` naming the groups there are when `selection` names none.
 */
export function selectHosts(inventory: Inventory, selection = 'all'): readonly InventoryHost[] {
  const byName = new Map(inventory.hosts.map((h) => [h.name, h]));
  const names = inventory.groups.get(selection) ?? (byName.has(selection) ? [selection] : undefined);
  if (!names) {
    const known = [...inventory.groups.keys()];
    const close = known.find((g) => editDistance(g, selection) <= 2);
    throw new InventoryError(inventory.file, `No group or host \`${selection}\` in the inventory: ${close ? `did you mean \`${close}\`?` : `its groups are ${known.map((g) => `\`${g}\``).join(', ')}`}`);
  }
  return names.map((n) => byName.get(n)!);
}

/** The names `hosts: name` may take in a lockstep group: every inventory group and host. */
export function inventoryMembers(inventory: Inventory, name: string): readonly string[] | undefined {
  return inventory.groups.get(name) ?? (inventory.hosts.some((h) => h.name === name) ? [name] : undefined);
}

/**
 * The instance id of each host: its inventory name, made safe for store keys and file names
 * (`[A-Za-z0-9._-]`), and made unique with a suffix where two names become the same.
 */
export function instanceIds(hosts: readonly Pick<InventoryHost, 'name'>[]): string[] {
  const used = new Set<string>();
  return hosts.map((host) => {
    const base = host.name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+/, '') || 'host';
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
    used.add(id);
    return id;
  });
}
