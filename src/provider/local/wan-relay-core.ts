import type { Impairment, NetemPlan } from '../../spec/network-plan.ts';

/**
 * The WAN relay's logic, without sockets or timers (see wan-relay.ts for the process): every VXLAN
 * datagram an instance of a netns run sends arrives here; the relay finds the destination instance
 * by the inner Ethernet destination address, applies the sender's emulation for that destination
 * (loss, rate, delay, jitter: like netem and tbf on the sender's egress) and forwards the datagram
 * unchanged to the destination's underlay address when its time has come. See docs/network.md.
 */

/** Byte length of the VXLAN header before the inner Ethernet frame. */
const VXLAN_HEADER = 8;
/** How long a packet may wait for the rate (bandwidth) before it is dropped, like tbf's `latency`. */
export const RATE_QUEUE_LIMIT_MS = 100;
/** A burst of 4 ms at the rate, at least a jumbo frame (as the tc path's tbf). */
export function burstMs(bitsPerSecond: number): number {
  const bytes = Math.max(12_000, bitsPerSecond / 8 / 250);
  return (bytes * 8 * 1000) / bitsPerSecond;
}
/** Most bytes the relay holds in its delay queue; beyond, packets are dropped (counted). */
export const MAX_QUEUED_BYTES = 256 * 2 ** 20;

export interface RelayNode {
  /** The instance's address (hosts file), on its VXLAN interface. */
  readonly overlay: string;
  /** Where its VXLAN endpoint listens (its veth in its namespace). */
  readonly underlay: string;
  /** The MAC address of its VXLAN interface, as a 48-bit number. */
  readonly mac: number;
}

/**
 * A token bucket as a virtual clock (GCRA): a packet leaves once the bucket holds its bytes, or
 * is dropped when it would wait longer than the limit (like tbf).
 */
export class TokenBucket {
  /** Theoretical arrival time: when the bucket would be full again (ms). */
  private tat = -Infinity;
  constructor(
    readonly bitsPerSecond: number,
    readonly burst = burstMs(bitsPerSecond),
    readonly limitMs = RATE_QUEUE_LIMIT_MS,
  ) {}

  /** When a packet of `bytes` arriving at `now` (ms) leaves; undefined: dropped. */
  take(bytes: number, now: number): number | undefined {
    const tat = Math.max(this.tat, now) + (bytes * 8 * 1000) / this.bitsPerSecond;
    const leave = Math.max(now, tat - this.burst);
    if (leave - now > this.limitMs) return undefined;
    this.tat = tat;
    return leave;
  }
}

interface Queued {
  readonly due: number;
  readonly seq: number;
  readonly data: Buffer;
  readonly to: string;
}

/** A binary min-heap by (due, seq): packets due at the same time leave in arrival order. */
export class DelayQueue {
  private readonly items: Queued[] = [];
  private seq = 0;
  bytes = 0;

  get size(): number {
    return this.items.length;
  }

  push(due: number, data: Buffer, to: string): void {
    const item = { due, seq: this.seq++, data, to };
    this.bytes += data.length;
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  /** When the first packet is due (ms), or undefined when empty. */
  nextDue(): number | undefined {
    return this.items[0]?.due;
  }

  /** Removes and returns every packet due at or before `now`, in order. */
  popDue(now: number): Queued[] {
    const out: Queued[] = [];
    const items = this.items;
    while (items.length > 0 && items[0]!.due <= now) {
      const top = items[0]!;
      const last = items.pop()!;
      if (items.length > 0) {
        items[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < items.length && before(items[l]!, items[m]!)) m = l;
          if (r < items.length && before(items[r]!, items[m]!)) m = r;
          if (m === i) break;
          [items[i], items[m]] = [items[m]!, items[i]!];
          i = m;
        }
      }
      this.bytes -= top.data.length;
      out.push(top);
    }
    return out;
  }
}

const before = (a: Queued, b: Queued) => a.due < b.due || (a.due === b.due && a.seq < b.seq);

/** One sender's emulation, ready for lookups. */
interface SenderState {
  readonly plan: NetemPlan;
  /** Destination node index → its impairment, where a rule names it. */
  readonly byDestination: Map<number, Impairment>;
  /** The sender's egress bandwidth (tc: tbf or the htb class 1:1), shared by all destinations. */
  readonly bucket?: TokenBucket;
}

export interface RelayCounters {
  received: number;
  forwarded: number;
  flooded: number;
  lost: number;
  /** Dropped because the rate queue was longer than its limit, or the relay's queue full. */
  overflow: number;
  /** Not VXLAN, from no known instance, or to no known MAC. */
  unknown: number;
}

export interface WanRelayOptions {
  readonly nodes: readonly RelayNode[];
  /** Sends a datagram (unchanged) to an underlay address. */
  readonly send: (data: Buffer, underlay: string) => void;
  /** Uniform in [0, 1): loss and jitter (default Math.random). */
  readonly random?: () => number;
}

export class PlanError extends Error {
  override readonly name = 'PlanError';
}

export class WanRelay {
  readonly queue = new DelayQueue();
  readonly counters: RelayCounters = { received: 0, forwarded: 0, flooded: 0, lost: 0, overflow: 0, unknown: 0 };
  private readonly byUnderlay = new Map<string, number>();
  private readonly byOverlay = new Map<string, number>();
  private readonly byMac = new Map<number, number>();
  private readonly senders = new Map<number, SenderState>();
  private readonly random: () => number;

  constructor(private readonly options: WanRelayOptions) {
    options.nodes.forEach((node, index) => {
      this.byUnderlay.set(node.underlay, index);
      this.byOverlay.set(node.overlay, index);
      this.byMac.set(node.mac, index);
    });
    this.random = options.random ?? Math.random;
  }

  /** Gives the instance with address `overlay` this emulation (replacing any before). */
  setPlan(overlay: string, plan: NetemPlan): void {
    const index = this.byOverlay.get(overlay);
    if (index === undefined) throw new PlanError(`No instance of this run has the address ${overlay}`);
    checkImpairment(plan.default, 'default');
    const byDestination = new Map<number, Impairment>();
    for (const rule of plan.rules) {
      checkImpairment(rule.impairment, `rule ${rule.group}`);
      for (const to of rule.to) {
        const destination = this.byOverlay.get(to);
        if (destination === undefined) throw new PlanError(`The rule for ${rule.group} names ${to}, which no instance of this run has`);
        byDestination.set(destination, rule.impairment);
      }
    }
    const rate = plan.default.rateBitsPerSecond;
    this.senders.set(index, { plan, byDestination, ...(rate ? { bucket: new TokenBucket(rate) } : {}) });
  }

  /** Removes the emulation of `overlay`: its next packets go straight through (queued ones still leave on time). */
  clearPlan(overlay: string): boolean {
    const index = this.byOverlay.get(overlay);
    if (index === undefined) throw new PlanError(`No instance of this run has the address ${overlay}`);
    return this.senders.delete(index);
  }

  planOf(overlay: string): NetemPlan | undefined {
    const index = this.byOverlay.get(overlay);
    return index === undefined ? undefined : this.senders.get(index)?.plan;
  }

  /** One VXLAN datagram from `fromUnderlay`, at `now` (ms, any monotonic clock). */
  receive(data: Buffer, fromUnderlay: string, now: number): void {
    this.counters.received++;
    const source = this.byUnderlay.get(fromUnderlay);
    if (source === undefined || data.length < VXLAN_HEADER + 14 || (data[0]! & 0x08) === 0) {
      this.counters.unknown++;
      return;
    }
    if (data[VXLAN_HEADER]! & 1) {
      // Broadcast or multicast (ARP): to every other instance at once, without emulation.
      this.options.nodes.forEach((node, index) => {
        if (index !== source) this.options.send(data, node.underlay);
      });
      this.counters.flooded++;
      return;
    }
    const destination = this.byMac.get(data.readUIntBE(VXLAN_HEADER, 6));
    if (destination === undefined || destination === source) {
      this.counters.unknown++;
      return;
    }
    const to = this.options.nodes[destination]!.underlay;
    completeChecksum(data, VXLAN_HEADER + 14);
    const sender = this.senders.get(source);
    if (!sender) {
      this.forward(data, to);
      return;
    }
    const impairment = sender.byDestination.get(destination) ?? sender.plan.default;
    if (impairment.lossPercent && this.random() * 100 < impairment.lossPercent) {
      this.counters.lost++;
      return;
    }
    // The inner frame's length: what the sender's interface would have sent.
    let due = sender.bucket ? sender.bucket.take(data.length - VXLAN_HEADER, now) : now;
    if (due === undefined || this.queue.bytes + data.length > MAX_QUEUED_BYTES) {
      this.counters.overflow++;
      return;
    }
    const jitter = impairment.jitterMs ? (2 * this.random() - 1) * impairment.jitterMs : 0;
    due += Math.max(0, (impairment.delayMs ?? 0) + jitter);
    if (due <= now) this.forward(data, to);
    else this.queue.push(due, data, to);
  }

  /** Sends every queued packet due at `now`; returns when the next one is due. */
  flush(now: number): number | undefined {
    for (const item of this.queue.popDue(now)) this.forward(item.data, item.to);
    return this.queue.nextDue();
  }

  private forward(data: Buffer, to: string): void {
    this.counters.forwarded++;
    this.options.send(data, to);
  }
}

/**
 * Writes the TCP or UDP checksum of the IPv4 packet in the Ethernet frame at `offset`. The sender's
 * kernel leaves it to the "hardware" (checksum offload on the VXLAN and veth devices), and a frame
 * that passes through user space arrives with it unfinished: the receiver would drop it.
 */
export function completeChecksum(data: Buffer, ipStart: number): void {
  if (data.length < ipStart + 20 || data.readUInt16BE(ipStart - 2) !== 0x0800) return;
  const headerLength = (data[ipStart]! & 0x0f) * 4;
  const protocol = data[ipStart + 9]!;
  // Fragments but the first whole packet: their checksum spans fragments; leave them alone.
  if ((data.readUInt16BE(ipStart + 6) & 0x3fff) !== 0) return;
  const end = Math.min(data.length, ipStart + data.readUInt16BE(ipStart + 2));
  const l4 = ipStart + headerLength;
  const field = protocol === 6 ? l4 + 16 : protocol === 17 ? l4 + 6 : -1;
  if (field < 0 || field + 2 > end) return;
  if (protocol === 17 && data.readUInt16BE(field) === 0) return; // UDP without checksum
  data.writeUInt16BE(0, field);
  const length = end - l4;
  let sum = protocol + length;
  for (let i = ipStart + 12; i < ipStart + 20; i += 2) sum += data.readUInt16BE(i);
  let i = l4;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  const checksum = ~sum & 0xffff;
  data.writeUInt16BE(protocol === 17 && checksum === 0 ? 0xffff : checksum, field);
}

function checkImpairment(impairment: Impairment, where: string): void {
  for (const [key, value] of Object.entries(impairment)) {
    if (!['delayMs', 'jitterMs', 'lossPercent', 'rateBitsPerSecond'].includes(key)) throw new PlanError(`${where}: unknown field ${key}`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new PlanError(`${where}: ${key} must be a number ≥ 0`);
  }
  if ((impairment.lossPercent ?? 0) > 100) throw new PlanError(`${where}: lossPercent above 100`);
}

/** 32-bit value → dotted quad. */
const dotted = (value: number) => [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');

/** Instance `index`'s address (hosts file): 198.18.0.1, 198.18.0.2, … (198.18.0.0/15). */
export function overlayAddress(index: number): string {
  return dotted(198 * 2 ** 24 + 18 * 2 ** 16 + 1 + index);
}

/** The relay's underlay address, on the bridge in the run's hub namespace. */
export const RELAY_UNDERLAY = '198.19.0.1';
export const UNDERLAY_PREFIX_LENGTH = 16;
/** UDP port of VXLAN (IANA) and of the relay's control (HTTP). */
export const VXLAN_PORT = 4789;
export const RELAY_CONTROL_PORT = 4790;
export const VXLAN_ID = 42;
/** MTU of the instances' VXLAN interfaces: the veth's 1500 less VXLAN's 50 bytes. */
export const OVERLAY_MTU = 1450;

/** Instance `index`'s underlay address: 198.19.0.2, 198.19.0.3, … (198.19.0.0/16, at most 65 000). */
export function underlayAddress(index: number): string {
  return dotted(198 * 2 ** 24 + 19 * 2 ** 16 + 2 + index);
}

/** Instance `index`'s MAC: locally administered 02:6c:73 (`ls`), then the index. */
export function instanceMac(index: number): number {
  return 0x02_6c_73 * 2 ** 24 + index;
}

export function macText(mac: number): string {
  return mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}

export function relayNodes(count: number): RelayNode[] {
  return Array.from({ length: count }, (_, i) => ({ overlay: overlayAddress(i), underlay: underlayAddress(i), mac: instanceMac(i) }));
}
