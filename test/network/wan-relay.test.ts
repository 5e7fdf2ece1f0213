import { describe, expect, it } from 'vitest';
import { applyByRelay } from '../../src/agent/netem.ts';
import {
  completeChecksum,
  DelayQueue,
  instanceMac,
  relayNodes,
  TokenBucket,
  WanRelay,
} from '../../src/provider/local/wan-relay-core.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';

/** A VXLAN datagram from one instance to another: VXLAN header, Ethernet, IPv4, UDP, payload. */
function datagram(toMac: number, fromMac: number, payload = 64, tag = 0): Buffer {
  const ip = 20;
  const udp = 8;
  const data = Buffer.alloc(8 + 14 + ip + udp + payload);
  data[0] = 0x08;
  data.writeUIntBE(42, 4, 3);
  data.writeUIntBE(toMac, 8, 6);
  data.writeUIntBE(fromMac, 14, 6);
  data.writeUInt16BE(0x0800, 20);
  const at = 22;
  data[at] = 0x45;
  data.writeUInt16BE(ip + udp + payload, at + 2);
  data.writeUInt16BE(0x4000, at + 6);
  data[at + 8] = 64;
  data[at + 9] = 17;
  data.set([198, 18, 0, 1], at + 12);
  data.set([198, 18, 0, 2], at + 16);
  data.writeUInt16BE(5000, at + 20);
  data.writeUInt16BE(6000, at + 22);
  data.writeUInt16BE(udp + payload, at + 24);
  data.writeUInt16BE(0x1234, at + 26); // an unfinished checksum, as checksum offload leaves it
  data.writeUInt32BE(tag, at + 28);
  return data;
}

function relayWith(count: number, seed = 1) {
  const nodes = relayNodes(count);
  const sent: Array<{ to: string; tag: number; at: number }> = [];
  let clock = 0;
  const relay = new WanRelay({ nodes, random: seededRandom(seed), send: (data, to) => sent.push({ to, tag: data.length >= 54 ? data.readUInt32BE(50) : -1, at: clock }) });
  const step = (now: number) => {
    clock = now;
    relay.flush(now);
  };
  const receive = (from: number, to: number, now: number, tag = 0, payload = 64) => {
    clock = now;
    relay.receive(datagram(instanceMac(to), instanceMac(from), payload, tag), nodes[from]!.underlay, now);
  };
  return { relay, nodes, sent, step, receive };
}

describe('WAN relay', () => {
  it('queues by due time, and packets due at the same time leave in arrival order', () => {
    const queue = new DelayQueue();
    const dues = [50, 10, 30, 10, 70, 30, 10, 0.5, 69.9];
    dues.forEach((due, i) => queue.push(due, Buffer.from([i]), `to${i}`));
    expect(queue.nextDue()).toBe(0.5);
    expect(queue.popDue(10).map((q) => q.data[0])).toEqual([7, 1, 3, 6]);
    expect(queue.popDue(29.99)).toEqual([]);
    expect(queue.popDue(100).map((q) => q.due)).toEqual([30, 30, 50, 69.9, 70]);
    expect(queue.size).toBe(0);
    expect(queue.bytes).toBe(0);
  });

  it("forwards after the sender's delay (to the destination's underlay address), by the latency rule for that destination, and at once without a plan", () => {
    const { relay, nodes, sent, step, receive } = relayWith(3);
    relay.setPlan(nodes[0]!.overlay, { default: { delayMs: 50 }, rules: [{ group: 'far', to: [nodes[2]!.overlay], impairment: { delayMs: 90 } }] });
    receive(0, 1, 0, 1);
    receive(0, 2, 0, 2);
    receive(1, 0, 0, 3);
    expect(sent).toEqual([{ to: nodes[0]!.underlay, tag: 3, at: 0 }]);
    step(49.9);
    expect(sent).toHaveLength(1);
    step(50);
    step(89.9);
    step(90);
    expect(sent.slice(1)).toEqual([
      { to: nodes[1]!.underlay, tag: 1, at: 50 },
      { to: nodes[2]!.underlay, tag: 2, at: 90 },
    ]);
    // Removed: new packets go at once, one already queued still waits its time.
    receive(0, 1, 100, 4);
    relay.clearPlan(nodes[0]!.overlay);
    receive(0, 1, 101, 5);
    expect(sent.at(-1)).toEqual({ to: nodes[1]!.underlay, tag: 5, at: 101 });
    step(150);
    expect(sent.at(-1)).toEqual({ to: nodes[1]!.underlay, tag: 4, at: 150 });
  });

  it('floods broadcasts (ARP) to every other instance at once, and drops frames to unknown addresses', () => {
    const { relay, nodes, sent } = relayWith(4);
    relay.setPlan(nodes[0]!.overlay, { default: { delayMs: 50 }, rules: [] });
    relay.receive(datagram(0xffffffffffff, instanceMac(0)), nodes[0]!.underlay, 0);
    expect(sent.map((s) => s.to)).toEqual([nodes[1]!.underlay, nodes[2]!.underlay, nodes[3]!.underlay]);
    relay.receive(datagram(0x0200000000ff, instanceMac(0)), nodes[0]!.underlay, 0);
    relay.receive(datagram(instanceMac(1), instanceMac(0)), '10.0.0.1', 0);
    expect(relay.counters).toMatchObject({ flooded: 1, unknown: 2 });
  });

  it('drops the share `loss` says, the same packets for the same seed', () => {
    const lost = (seed: number) => {
      const { relay, nodes, receive } = relayWith(2, seed);
      relay.setPlan(nodes[0]!.overlay, { default: { lossPercent: 10 }, rules: [] });
      for (let i = 0; i < 100_000; i++) receive(0, 1, i / 100);
      return relay.counters.lost;
    };
    const first = lost(42);
    expect(first / 100_000).toBeGreaterThan(0.097);
    expect(first / 100_000).toBeLessThan(0.103);
    expect(lost(42)).toBe(first);
    expect(lost(43)).not.toBe(first);
  });

  it('spreads the delay by ± jitter', () => {
    const { relay, nodes, sent, step, receive } = relayWith(2, 7);
    relay.setPlan(nodes[0]!.overlay, { default: { delayMs: 50, jitterMs: 10 }, rules: [] });
    for (let i = 0; i < 1000; i++) receive(0, 1, 0, i);
    for (let t = 0; t <= 61; t += 0.25) step(t);
    const at = sent.map((s) => s.at);
    expect(at).toHaveLength(1000);
    expect(Math.min(...at)).toBeGreaterThanOrEqual(40);
    expect(Math.min(...at)).toBeLessThan(41);
    expect(Math.max(...at)).toBeGreaterThan(59);
    expect(Math.max(...at)).toBeLessThanOrEqual(60.25);
  });

  it('limits the rate with a token bucket: a burst, then the rate, and drops what would wait more than 100 ms', () => {
    // 8 Mbit/s: one byte per microsecond; 1000-byte packets take 1 ms each; the burst is 12 000 bytes.
    const bucket = new TokenBucket(8_000_000, 12, Infinity);
    const leave = Array.from({ length: 1000 }, () => bucket.take(1000, 0)!);
    expect(leave.slice(0, 12)).toEqual(Array(12).fill(0));
    expect(leave[12]).toBeCloseTo(1, 9);
    expect(leave[999]).toBeCloseTo(988, 9);
    // After a pause long enough, a full burst again.
    expect(bucket.take(1000, 2000)).toBe(2000);

    const limited = new TokenBucket(8_000_000);
    const accepted = Array.from({ length: 1000 }, () => limited.take(1000, 0)).filter((t) => t !== undefined);
    expect(accepted.length).toBe(112);

    // Through the relay: offered 16 Mbit/s for one second, 8 Mbit/s leave (and the rest is dropped).
    const { relay, nodes, sent, step, receive } = relayWith(2);
    relay.setPlan(nodes[0]!.overlay, { default: { rateBitsPerSecond: 8_000_000 }, rules: [] });
    for (let t = 0; t < 1000; t += 0.5) {
      receive(0, 1, t, 0, 1000 - 50);
      step(t);
    }
    // Inner frames of 992 bytes: in the first second, the burst and one second at the rate.
    const bytes = sent.filter((s) => s.at < 1000).length * 992;
    expect(bytes).toBeGreaterThan(0.98 * 1_000_000 + 12_000);
    expect(bytes).toBeLessThan(1.02 * 1_000_000 + 12_000);
    // What was queued leaves within the queue's 100 ms; the rest was dropped.
    step(1100);
    expect(relay.queue.size).toBe(0);
    expect(relay.counters.overflow).toBe(2000 - sent.length);
    expect(sent.length * 992).toBeLessThan(1.02 * 1_100_000 + 12_000);
  });

  it('refuses a plan for an address or destination that is not of the run', () => {
    const { relay, nodes } = relayWith(2);
    expect(() => relay.setPlan('198.18.0.9', { default: { delayMs: 1 }, rules: [] })).toThrow('No instance of this run has the address 198.18.0.9');
    expect(() => relay.setPlan(nodes[0]!.overlay, { default: {}, rules: [{ group: 'x', to: ['10.1.1.1'], impairment: { delayMs: 1 } }] })).toThrow('names 10.1.1.1');
    expect(() => relay.setPlan(nodes[0]!.overlay, { default: { delayMs: -1 }, rules: [] })).toThrow('must be a number');
  });

  it('completes the TCP or UDP checksum that checksum offload left unfinished', () => {
    const data = datagram(instanceMac(1), instanceMac(0), 33);
    completeChecksum(data, 22);
    // The one's-complement sum over pseudo-header and segment, checksum included, is 0xffff.
    const segment = data.subarray(42);
    let sum = 17 + segment.length;
    for (let i = 34; i < 42; i += 2) sum += data.readUInt16BE(i);
    for (let i = 0; i < segment.length; i += 2) sum += (segment[i]! << 8) | (segment[i + 1] ?? 0);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect(sum).toBe(0xffff);
  });
});

describe('applying emulation by the relay (agent side)', () => {
  const plan = { default: { delayMs: 50 }, rules: [] };
  const relay = 'http://198.19.0.1:4790';

  it('puts the plan, records mechanism `relay`, and deletes it on removal', async () => {
    const calls: string[] = [];
    const fake = (async (url: string, init: RequestInit) => {
      calls.push(`${init.method} ${url} ${init.body ?? ''}`.trim());
      return new Response(JSON.stringify({ applied: true }), { status: 200 });
    }) as unknown as typeof fetch;
    const session = await applyByRelay({ plan, address: '198.18.0.1', relay, fetch: fake });
    expect(session.record).toMatchObject({ mechanism: 'relay', relay, applied: true, removed: false, commands: [`PUT ${relay}/nodes/198.18.0.1 {"default":{"delayMs":50},"rules":[]}`] });
    expect(await session.remove()).toMatchObject({ applied: true, removed: true });
    expect(calls).toEqual([`PUT ${relay}/nodes/198.18.0.1 {"default":{"delayMs":50},"rules":[]}`, `DELETE ${relay}/nodes/198.18.0.1`]);
  });

  it('records a refusal or no answer as the error, with applied false', async () => {
    const refusing = (async () => new Response(JSON.stringify({ error: 'No instance of this run has the address 198.18.0.1' }), { status: 400 })) as unknown as typeof fetch;
    const refused = await applyByRelay({ plan, address: '198.18.0.1', relay, fetch: refusing });
    expect(refused.record).toMatchObject({ mechanism: 'relay', applied: false, error: expect.stringContaining('400 No instance of this run has the address 198.18.0.1') });
    const silent = (async () => {
      throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 198.19.0.1:4790') });
    }) as unknown as typeof fetch;
    const unanswered = await applyByRelay({ plan, address: '198.18.0.1', relay, fetch: silent });
    expect(unanswered.record.error).toContain('no answer: fetch failed (connect ECONNREFUSED 198.19.0.1:4790)');
    // Nothing to do: nothing asked of the relay.
    const none = await applyByRelay({ plan: { default: {}, rules: [] }, address: '198.18.0.1', relay, fetch: silent });
    expect(none.record).toMatchObject({ applied: true, removed: true, commands: [] });
  });
});
