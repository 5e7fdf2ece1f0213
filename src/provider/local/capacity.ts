import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { LOOPBACK_ADDRESSES } from './addresses.ts';
import { MAX_NETNS_INSTANCES } from './netns.ts';

/**
 * What one agent needs on this machine while it waits and runs (its peak resident memory, rounded
 * up; `npm run bench` measures it), before the user's command's own memory.
 */
export const AGENT_FOOTPRINT_BYTES = 64 * 2 ** 20;

export interface LocalCapacity {
  /** Bytes of memory available now (Linux: MemAvailable). */
  readonly availableBytes: number;
  /** Distinct addresses the chosen isolation can give. */
  readonly addresses: number;
}

/** This machine's capacity for local instances. */
export function localCapacity(isolation: 'loopback' | 'netns'): LocalCapacity {
  return { availableBytes: availableMemory(), addresses: isolation === 'netns' ? MAX_NETNS_INSTANCES : LOOPBACK_ADDRESSES };
}

/**
 * Why `count` local instances do not fit on a machine of this capacity, or undefined when they do:
 * every instance needs an address of its own and about one agent's footprint of memory.
 */
export function localCapacityProblem(count: number, capacity: LocalCapacity): string | undefined {
  const n = count.toLocaleString('en-US');
  if (count > capacity.addresses) {
    return `${n} local instances do not fit on this machine: the local provider has ${capacity.addresses.toLocaleString('en-US')} ${capacity.addresses === MAX_NETNS_INSTANCES ? 'network namespace' : 'loopback'} addresses; lower \`instances\`, or use the aws provider`;
  }
  const needed = count * AGENT_FOOTPRINT_BYTES;
  if (needed > capacity.availableBytes) {
    const most = Math.floor(capacity.availableBytes / AGENT_FOOTPRINT_BYTES).toLocaleString('en-US');
    return (
      `${n} local instances need about ${Math.ceil(needed / 2 ** 30).toLocaleString('en-US')} GiB (${AGENT_FOOTPRINT_BYTES / 2 ** 20} MiB per agent, before the command's own), ` +
      `and this machine has ${(capacity.availableBytes / 2 ** 30).toFixed(1)} GiB available: lower \`instances\` (at most ${most} here), or use the aws provider`
    );
  }
  return undefined;
}

function availableMemory(): number {
  try {
    const kib = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {
    // Not Linux: the OS's own figure.
  }
  return freemem();
}
