import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { BlockList, isIPv4 } from 'node:net';

export interface InterfaceCounters {
  readonly interface: string;
  readonly rxBytes: number;
  readonly txBytes: number;
}

/**
 * The interface that holds `address`, found by subnet. Loopback is left out: every local instance
 * shares it, so its counters say nothing about one node.
 */
export function interfaceFor(address: string): string | undefined {
  if (!isIPv4(address)) return undefined;
  for (const [name, entries] of Object.entries(networkInterfaces())) {
    for (const entry of entries ?? []) {
      if (entry.family !== 'IPv4' || !entry.cidr || entry.internal) continue;
      const [network, bits] = entry.cidr.split('/');
      const subnet = new BlockList();
      subnet.addSubnet(network!, Number(bits), 'ipv4');
      if (subnet.check(address, 'ipv4')) return name;
    }
  }
  return undefined;
}

/** Byte counters of an interface (Linux sysfs); undefined where they cannot be read. */
export async function readCounters(name: string | undefined): Promise<InterfaceCounters | undefined> {
  if (!name) return undefined;
  try {
    const [rx, tx] = await Promise.all([
      readFile(`/sys/class/net/${name}/statistics/rx_bytes`, 'utf8'),
      readFile(`/sys/class/net/${name}/statistics/tx_bytes`, 'utf8'),
    ]);
    return { interface: name, rxBytes: Number(rx), txBytes: Number(tx) };
  } catch {
    return undefined;
  }
}

export function difference(before: InterfaceCounters | undefined, after: InterfaceCounters | undefined): InterfaceCounters | null {
  if (!before || !after) return null;
  return { interface: after.interface, rxBytes: after.rxBytes - before.rxBytes, txBytes: after.txBytes - before.txBytes };
}
