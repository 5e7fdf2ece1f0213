import { describe, expect, it } from 'vitest';
import { applyNetem, primaryInterface, tcCommands } from '../../src/agent/netem.ts';
import type { CommandResult } from '../../src/agent/privileged.ts';
import { resolveGroups } from '../../src/spec/groups.ts';
import { planFor, type NetworkSpec } from '../../src/spec/network-plan.ts';
import type { GroupSpec } from '../../src/spec/schema.ts';

const addresses = ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4', '198.18.0.5', '198.18.0.6'];
const groups = resolveGroups(
  [
    { name: 'eu', ranks: '0-2', params: {} },
    { name: 'us', ranks: '3-', params: {} },
  ] as GroupSpec[],
  addresses.length,
);
const network = (fields: Partial<NetworkSpec>): NetworkSpec => ({ overrides: [], latency: {}, ...fields });
const tc = (steps: string[][]) => steps.map((args) => args.join(' '));

describe('what each node applies', () => {
  it('gives every node the spec values, then overrides by group and by rank, field by field', () => {
    const spec = network({
      delayMs: 50,
      rateBitsPerSecond: 1e8,
      overrides: [
        { group: 'us', delayMs: 200 },
        { ranks: '5', lossPercent: 2 },
        { ranks: [0], rateBitsPerSecond: 1e6 },
      ],
    });
    expect(planFor(spec, groups, addresses, 0)).toEqual({ default: { delayMs: 50, rateBitsPerSecond: 1e6 }, rules: [] });
    expect(planFor(spec, groups, addresses, 1)).toEqual({ default: { delayMs: 50, rateBitsPerSecond: 1e8 }, rules: [] });
    expect(planFor(spec, groups, addresses, 3).default).toEqual({ delayMs: 200, rateBitsPerSecond: 1e8 });
    expect(planFor(spec, groups, addresses, 5).default).toEqual({ delayMs: 200, rateBitsPerSecond: 1e8, lossPercent: 2 });
  });

  it('turns the latency matrix into per-destination rules by the receivers\' addresses', () => {
    const spec = network({ jitterMs: 1, latency: { eu: { us: 40, eu: 2 }, us: { eu: 40 } } });
    expect(planFor(spec, groups, addresses, 1)).toEqual({
      default: { jitterMs: 1 },
      rules: [
        { group: 'eu', to: ['198.18.0.1', '198.18.0.3'], impairment: { jitterMs: 1, delayMs: 2 } },
        { group: 'us', to: ['198.18.0.4', '198.18.0.5', '198.18.0.6'], impairment: { jitterMs: 1, delayMs: 40 } },
      ],
    });
    // us → us has no cell: those destinations get the default.
    expect(planFor(spec, groups, addresses, 4).rules).toEqual([{ group: 'eu', to: ['198.18.0.1', '198.18.0.2', '198.18.0.3'], impairment: { jitterMs: 1, delayMs: 40 } }]);
  });
});

describe('the tc commands', () => {
  it('puts netem alone at the root for delay, jitter and loss', () => {
    expect(tc(tcCommands('veth0', { default: { delayMs: 50, jitterMs: 5, lossPercent: 0.5 }, rules: [] }))).toEqual([
      'qdisc replace dev veth0 root handle 1: netem limit 5500 delay 50000us 5000us loss 0.5%',
    ]);
  });

  it('uses tbf for bandwidth, below netem when both are asked', () => {
    expect(tc(tcCommands('veth0', { default: { rateBitsPerSecond: 1e7 }, rules: [] }))).toEqual([
      'qdisc replace dev veth0 root handle 1: tbf rate 10000000bit burst 12000 latency 100ms',
    ]);
    expect(tc(tcCommands('veth0', { default: { delayMs: 20, rateBitsPerSecond: 1e9 }, rules: [] }))).toEqual([
      'qdisc replace dev veth0 root handle 1: netem limit 2000 delay 20000us',
      'qdisc add dev veth0 parent 1:1 handle 10: tbf rate 1000000000bit burst 500000 latency 100ms',
    ]);
  });

  it('builds an htb tree with a class and netem per destination group, chosen by destination address', () => {
    const plan = planFor(network({ rateBitsPerSecond: 1e8, latency: { eu: { us: 40 } } }), groups, addresses, 0);
    expect(tc(tcCommands('eth1', plan))).toEqual([
      'qdisc replace dev eth1 root handle 1: htb default 10',
      'class add dev eth1 parent 1: classid 1:1 htb rate 100000000bit ceil 100000000bit quantum 65536',
      'class add dev eth1 parent 1:1 classid 1:10 htb rate 100000000bit ceil 100000000bit quantum 65536',
      'class add dev eth1 parent 1:1 classid 1:11 htb rate 100000000bit ceil 100000000bit quantum 65536',
      'qdisc add dev eth1 parent 1:11 handle 11: netem limit 4000 delay 40000us',
      'filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip dst 198.18.0.4/32 flowid 1:11',
      'filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip dst 198.18.0.5/32 flowid 1:11',
      'filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip dst 198.18.0.6/32 flowid 1:11',
    ]);
  });

  it('runs nothing for a node whose plan asks for nothing', () => {
    expect(tcCommands('veth0', { default: {}, rules: [] })).toEqual([]);
    expect(tcCommands('veth0', { default: { delayMs: 0 }, rules: [] })).toEqual([]);
  });
});

describe('applying and removing', () => {
  const fakeTc = (failOn?: string) => {
    const calls: string[] = [];
    // Like tc: `-batch -` runs the lines on stdin and stops at the first that fails.
    const run = async (args: readonly string[], input?: string): Promise<CommandResult> => {
      const lines = args[0] === '-batch' ? input!.trim().split('\n') : [args.join(' ')];
      for (const [index, line] of lines.entries()) {
        calls.push(line);
        if (line.includes('-j qdisc show')) return { code: 0, stdout: '[{"kind":"netem","qlen":0}]', stderr: '' };
        if (failOn && line.split(' ').includes(failOn)) return { code: 1, stdout: '', stderr: `Error: Specified qdisc kind is unknown.\nCommand failed -:${index + 1}\n` };
      }
      return { code: 0, stdout: '', stderr: '' };
    };
    return { calls, run };
  };
  // A public address is on no interface of this machine: with the default route allowed (EC2), the
  // agent takes the default route's interface; the fake tc touches nothing.
  const choice = { address: '203.0.113.7', allowDefaultRoute: true };

  it('records the commands, applies before and removes after, and says both succeeded', async (context) => {
    const { calls, run } = fakeTc();
    const device = await primaryInterface(choice).catch(() => undefined);
    if (!device) return context.skip();
    const session = await applyNetem({ plan: { default: { delayMs: 50 }, rules: [] }, choice, privileged: (_tool, args, input) => run(args, input) });
    expect(session.record).toMatchObject({ interface: device, applied: true, removed: false, commands: [`tc qdisc replace dev ${device} root handle 1: netem limit 5000 delay 50000us`] });
    const done = await session.remove();
    expect(done).toMatchObject({ applied: true, removed: true });
    expect(calls.at(-1)).toBe(`qdisc del dev ${device} root`);
    // remove() runs once however often it is called.
    await session.remove();
    expect(calls.filter((c) => c.startsWith('qdisc del'))).toHaveLength(1);
  });

  it('reports a failure to apply in words, after removing what was half-applied', async (context) => {
    const { calls, run } = fakeTc('netem');
    if (!(await primaryInterface(choice).catch(() => undefined))) return context.skip();
    const plan = planFor(network({ rateBitsPerSecond: 1e8, latency: { eu: { us: 40 } } }), groups, addresses, 0);
    const session = await applyNetem({ plan, choice, privileged: (_tool, args, input) => run(args, input) });
    expect(session.record.applied).toBe(false);
    expect(session.record.error).toContain('This kernel has no `netem` queueing discipline (sch_netem)');
    // The batch stopped at the first netem (its 5th command), and that command is named.
    expect(session.record.error).toContain(`(tc ${session.record.commands[4]!.slice(3)}: Error: Specified qdisc kind is unknown.)`);
    expect(session.record.commands[4]).toContain('netem');
    expect(calls).toHaveLength(6);
    expect(calls.at(-1)).toMatch(/^qdisc del dev \S+ root$/);
  });

  it('never applies netem on a loopback address, and finds no interface for an unknown local address', async () => {
    const { calls, run } = fakeTc();
    const loopback = await applyNetem({ plan: { default: { delayMs: 50 }, rules: [] }, choice: { address: '127.42.0.1', allowDefaultRoute: true }, privileged: (_tool, args, input) => run(args, input) });
    expect(loopback.record).toMatchObject({ applied: false, interface: null });
    expect(loopback.record.error).toContain('isolation: netns');
    const unknown = await applyNetem({ plan: { default: { delayMs: 50 }, rules: [] }, choice: { address: '198.18.255.254', allowDefaultRoute: false }, privileged: (_tool, args, input) => run(args, input) });
    expect(unknown.record).toMatchObject({ applied: false, interface: null });
    expect(unknown.record.error).toContain('No interface holds');
    expect(calls).toEqual([]);
  });
});
