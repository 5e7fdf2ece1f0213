import { randomInt } from 'node:crypto';

/**
 * Every local instance gets its own loopback address, so hosts files hold N distinct addresses as
 * on a real fleet. A run takes a block of consecutive addresses in 127.0.0.0/8 that no live local
 * run uses; 127.0.0.0/16 is left alone (127.0.0.1 and friends).
 */
const FIRST = 1 << 16;
const LAST = (1 << 24) - 2;

/** How many local instances can have loopback addresses at once. */
export const LOOPBACK_ADDRESSES = LAST - FIRST;

export function allocateAddresses(count: number, inUse: ReadonlySet<string>): string[] {
  const first = FIRST;
  const last = LAST;
  if (count > last - first) throw new Error(`Cannot give ${count} local instances distinct loopback addresses`);
  for (let attempt = 0; attempt < 100; attempt++) {
    // Start on a /24 boundary + 1 so that small runs get tidy addresses like 127.42.7.1.
    const base = (randomInt(first >> 8, (last - count) >> 8) << 8) + 1;
    const block = Array.from({ length: count }, (_, i) => toAddress(base + i));
    if (!block.some((address) => inUse.has(address))) return block;
  }
  throw new Error('Could not find a free block of loopback addresses: end old local runs with `lockstep gc`');
}

function toAddress(offset: number): string {
  return `127.${(offset >> 16) & 255}.${(offset >> 8) & 255}.${offset & 255}`;
}
