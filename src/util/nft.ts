import { NOT_INSTALLED } from './system-binary.ts';


/**
 * Partitions with nftables: one table per fault window, dropping the packets between this node and
 * the peers it must not reach, in both directions. Loading a table is atomic (`nft -f -`), and
 * healing is deleting it, so windows that overlap come and go independently.
 *
 * - Where the node's address is its own (EC2, a namespace per node): `ip daddr` on output and
 *   `ip saddr` on input.
 * - On the loopback, where every node shares the interface and a process that connects without
 *   binding sends from 127.0.0.1, addresses do not tell who sent a packet: the rule matches the
 *   sending socket's cgroup (the node's command runs in a cgroup of its own) and the destination
 *   address, on output. Each partitioned node drops what its own command sends to the other side,
 *   so the two nodes' rules together cut both directions.
 */

/** Runs `nft` with arguments (and `input` on stdin); a failure is data (exit 127: not installed). */
export type NftRunner = (args: readonly string[], input?: string) => Promise<{ readonly code: number; readonly stdout: string; readonly stderr: string }>;

/** The cgroup (v2) the node's command runs in, as nft names it (relative to /sys/fs/cgroup). */
export interface SocketGroup {
  readonly nftPath: string;
  /** Its depth below the cgroup2 root (1 for a group at the top). */
  readonly level: number;
}

/** The ruleset of one window: a table that drops the node's traffic with `blocked`. */
export function partitionRuleset(table: string, blocked: readonly string[], group?: SocketGroup): string {
  const set = `{ ${blocked.join(', ')} }`;
  const chain = (name: 'input' | 'output', rule: string) =>
    `  chain ${name} {\n    type filter hook ${name} priority -10; policy accept;\n    ${rule}\n  }\n`;
  const chains = group
    ? chain('output', `socket cgroupv2 level ${group.level} ${JSON.stringify(group.nftPath)} ip daddr ${set} drop`)
    : chain('output', `ip daddr ${set} drop`) + chain('input', `ip saddr ${set} drop`);
  return `table inet ${table} {\n${chains}}\n`;
}

export class NftError extends Error {
  override readonly name = 'NftError';
}

/** Loads the table; throws `NftError` with what nft said. */
export async function addTable(run: NftRunner, ruleset: string): Promise<void> {
  const result = await run(['-f', '-'], ruleset);
  if (result.code !== 0) throw new NftError(explain(`nft -f - (${firstLine(ruleset)} …)`, result.stderr, result.code));
}

/** Deletes the table; one that is gone already counts as deleted. */
export async function deleteTable(run: NftRunner, table: string): Promise<void> {
  // Through `nft -f -` like a table's loading, so that a runner that keeps one ready serves both.
  const result = await run(['-f', '-'], `delete table inet ${table}\n`);
  if (result.code !== 0 && !/No such file or directory/i.test(result.stderr)) throw new NftError(explain(`nft delete table inet ${table}`, result.stderr, result.code));
}

/** Tables of the `inet` family whose name starts with `prefix`. */
export async function tablesWithPrefix(run: NftRunner, prefix: string): Promise<string[]> {
  const result = await run(['list', 'tables', 'inet']);
  if (result.code !== 0) return [];
  return result.stdout
    .split('\n')
    .map((line) => /^table inet (\S+)/.exec(line.trim())?.[1])
    .filter((name): name is string => name !== undefined && name.startsWith(prefix));
}

/** Deletes every table whose name starts with `prefix` (what an earlier agent left); returns them. */
export async function deleteTablesWithPrefix(run: NftRunner, prefix: string): Promise<string[]> {
  const tables = await tablesWithPrefix(run, prefix);
  for (const table of tables) await deleteTable(run, table);
  return tables;
}

function explain(command: string, stderr: string, code: number): string {
  const said = firstLine(stderr) || `exit ${code}`;
  if (/Operation not permitted|Permission denied/i.test(stderr)) return `nft needs root (CAP_NET_ADMIN) to change the firewall: run the agent as root (${command}: ${said})`;
  return code === NOT_INSTALLED ? said : `${command}: ${said}`;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}
