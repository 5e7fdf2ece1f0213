import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { NetemRecord } from '../core/manifest.ts';
import { isEmptyPlan, isNone, type Impairment, type NetemPlan } from '../spec/network-plan.ts';
import { preciseNow } from '../util/clock.ts';
import { interfaceFor } from './netstat.ts';
import { forgetUndo, NOT_INSTALLED, privilegedRunner, recordUndo, refusalOf, type CommandResult, type PrivilegedRunner } from './privileged.ts';

/**
 * Network emulation of the node's egress, by one of two mechanisms (docs/network.md):
 *
 * - `tc` (EC2, any real instance): on the node's own interface, with `tc` (iproute2): netem for
 *   delay, jitter and loss, tbf for bandwidth, and for per-destination delays an htb tree with one
 *   class per destination group, chosen by u32 filters on the destination address.
 * - `relay` (local netns mode): the run's WAN relay, which forwards every packet between the
 *   instances, applies the node's plan in user space; the agent sends it the plan over HTTP. This
 *   works on kernels without sch_netem.
 *
 * Applied before T, removed after the command.
 */

/** How a node's emulation is applied (`result.json` → `netem.mechanism`). */
export type EmulationMechanism = 'tc' | 'relay';

/** The record of `result.json`'s `netem`, with the mechanism that applied it. */
export type EmulationRecord = NetemRecord & {
  readonly mechanism: EmulationMechanism;
  /** The relay's control address (mechanism `relay`). */
  readonly relay?: string;
};

/**
 * The relay to use, or undefined for `tc`: the local provider's netns mode sets
 * `LOCKSTEP_WAN_RELAY` for its agents; `LOCKSTEP_NETEM=tc` makes them use `tc` all the same (on a
 * kernel that has netem, to compare).
 */
export function wanRelayFrom(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.LOCKSTEP_WAN_RELAY && env.LOCKSTEP_NETEM !== 'tc' ? env.LOCKSTEP_WAN_RELAY : undefined;
}

/** An htb class with no limit of its own (bits per second). */
const UNLIMITED = '100gbit';
const HTB_QUANTUM = '65536';
/** How long a packet may wait in tbf's queue before it is dropped. */
const TBF_LATENCY = '100ms';

/** The arguments of every `tc` command that applies `plan` on `device`, in order. */
export function tcCommands(device: string, plan: NetemPlan): string[][] {
  if (isEmptyPlan(plan)) return [];
  const dev = ['dev', device];
  if (plan.rules.length === 0) {
    const own = plan.default;
    const netem = needsNetem(own);
    const steps: string[][] = [];
    if (netem) steps.push(['qdisc', 'replace', ...dev, 'root', 'handle', '1:', ...netemArgs(own)]);
    if (own.rateBitsPerSecond) {
      steps.push(
        netem
          ? ['qdisc', 'add', ...dev, 'parent', '1:1', 'handle', '10:', ...tbfArgs(own.rateBitsPerSecond)]
          : ['qdisc', 'replace', ...dev, 'root', 'handle', '1:', ...tbfArgs(own.rateBitsPerSecond)],
      );
    }
    return steps;
  }
  // An htb tree: 1:1 holds the node's bandwidth; 1:10 is the default; 1:11, 1:12, … one per rule.
  const rate = plan.default.rateBitsPerSecond ? `${plan.default.rateBitsPerSecond}bit` : UNLIMITED;
  const htbClass = (parent: string, id: string) => ['class', 'add', ...dev, 'parent', parent, 'classid', `1:${id}`, 'htb', 'rate', rate, 'ceil', rate, 'quantum', HTB_QUANTUM];
  const steps: string[][] = [
    ['qdisc', 'replace', ...dev, 'root', 'handle', '1:', 'htb', 'default', '10'],
    htbClass('1:', '1'),
    htbClass('1:1', '10'),
  ];
  if (needsNetem(plan.default)) steps.push(['qdisc', 'add', ...dev, 'parent', '1:10', 'handle', '10:', ...netemArgs(plan.default)]);
  plan.rules.forEach((rule, index) => {
    const id = (0x11 + index).toString(16);
    steps.push(htbClass('1:1', id));
    if (needsNetem(rule.impairment)) steps.push(['qdisc', 'add', ...dev, 'parent', `1:${id}`, 'handle', `${id}:`, ...netemArgs(rule.impairment)]);
    for (const address of rule.to) {
      steps.push(['filter', 'add', ...dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', `${address}/32`, 'flowid', `1:${id}`]);
    }
  });
  return steps;
}

function needsNetem(impairment: Impairment): boolean {
  return !isNone({ ...impairment, rateBitsPerSecond: undefined });
}

function netemArgs({ delayMs = 0, jitterMs = 0, lossPercent = 0 }: Impairment): string[] {
  // Room for 100k packets a second during the delay: netem's default (1000) drops at high rates.
  const args = ['netem', 'limit', String(Math.max(1000, Math.ceil((delayMs + jitterMs) * 100)))];
  if (delayMs || jitterMs) args.push('delay', microseconds(delayMs), ...(jitterMs ? [microseconds(jitterMs)] : []));
  if (lossPercent) args.push('loss', `${lossPercent}%`);
  return args;
}

function tbfArgs(bitsPerSecond: number): string[] {
  // A burst of 4 ms at the rate, and never less than a jumbo frame.
  const burst = Math.max(12_000, Math.ceil(bitsPerSecond / 8 / 250));
  return ['tbf', 'rate', `${bitsPerSecond}bit`, 'burst', String(burst), 'latency', TBF_LATENCY];
}

const microseconds = (ms: number) => `${Math.round(ms * 1000)}us`;

/** Longest a packet of `plan` waits in a queue: how long to let queues drain before removal. */
function longestDelayMs(plan: NetemPlan): number {
  return Math.max(...[plan.default, ...plan.rules.map((r) => r.impairment)].map((i) => (i.delayMs ?? 0) + (i.jitterMs ?? 0)));
}

export class NetemError extends Error {
  override readonly name = 'NetemError';
  constructor(
    message: string,
    readonly command?: string,
    readonly stderr?: string,
  ) {
    super(message);
  }
}

type TcRunner = (args: readonly string[], input?: string) => Promise<CommandResult>;

export interface InterfaceChoice {
  /** The node's address (hosts file). */
  readonly address: string;
  /**
   * Where the address is on no interface (EC2 with public addresses), use the interface of the
   * default route. Never for local instances: that is the host's own interface.
   */
  readonly allowDefaultRoute: boolean;
}

/** The interface netem goes on: the one that holds the node's address. */
export async function primaryInterface(choice: InterfaceChoice): Promise<string> {
  if (/^127\./.test(choice.address)) {
    throw new NetemError(
      `The node's address ${choice.address} is a loopback address: every loopback instance shares one interface, so netem cannot be applied per instance; use \`provider: { kind: local, isolation: netns }\``,
    );
  }
  const found = interfaceFor(choice.address);
  if (found) return found;
  if (choice.allowDefaultRoute) {
    const route = await defaultRouteInterface();
    if (route) return route;
  }
  throw new NetemError(`No interface holds the node's address ${choice.address}, so there is no interface to apply netem on`);
}

/** The interface of the IPv4 default route, from /proc/net/route (Linux). */
export async function defaultRouteInterface(): Promise<string | undefined> {
  const table = await readFile('/proc/net/route', 'utf8').catch(() => '');
  for (const line of table.split('\n').slice(1)) {
    const [name, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (name && destination === '00000000' && mask === '00000000') return name;
  }
  return undefined;
}

export interface NetemSession {
  /** What was asked, run and achieved so far; complete after `remove()`. */
  readonly record: EmulationRecord;
  /** Lets queued packets leave, then removes the emulation. Never throws; the record says how it went. */
  remove(): Promise<EmulationRecord>;
}

export interface ApplyOptions {
  readonly plan: NetemPlan;
  readonly choice: InterfaceChoice;
  /** Runs `tc` (default: the agent's privileged runner). */
  readonly privileged?: PrivilegedRunner;
  /**
   * The instance's working folder: the command that removes the emulation is kept in its journal
   * while the emulation is on, so that whoever finds the agent dead can remove it (privileged.ts).
   */
  readonly journal?: string;
}

/**
 * Applies `plan` on the node's interface. Never throws: a failure is in `record.error` (with
 * `applied: false`), after whatever was half-applied has been removed again.
 */
export async function applyNetem(options: ApplyOptions): Promise<NetemSession> {
  const { plan } = options;
  let record: EmulationRecord = { mechanism: 'tc', interface: null, plan, commands: [], applied: false, removed: false };
  let device: string;
  const privileged = options.privileged ?? privilegedRunner();
  const tc: TcRunner = (args, input) => privileged('tc', args, input);
  try {
    device = await primaryInterface(options.choice);
    record = { ...record, interface: device };
  } catch (error) {
    record = { ...record, error: (error as Error).message };
    return { record, remove: async () => record };
  }

  const steps = tcCommands(device, plan);
  record = { ...record, commands: steps.map((args) => ['tc', ...args].join(' ')) };
  if (steps.length === 0) {
    record = { ...record, applied: true, appliedAt: preciseNow(), removed: true };
    return { record, remove: async () => record };
  }

  const removal = ['qdisc', 'del', 'dev', device, 'root'];
  const removeNow = async (): Promise<CommandResult> => tc(removal);
  // Recorded before it is applied: an agent killed in between leaves nothing unrecorded.
  if (options.journal) await recordUndo(options.journal, 'netem', [{ tool: 'tc', args: removal }]).catch(() => {});
  // One tc process for all commands (a matrix over many nodes makes many filters); it stops at
  // the first command that fails and names its line.
  const result = await tc(['-batch', '-'], steps.map((args) => args.join(' ') + '\n').join(''));
  if (result.code !== 0) {
    await removeNow();
    if (options.journal) await forgetUndo(options.journal, 'netem').catch(() => {});
    const line = Number(/Command failed -:(\d+)/.exec(result.stderr)?.[1] ?? 1);
    record = { ...record, error: explain(steps[Math.min(Math.max(line, 1), steps.length) - 1]!, result) };
    return { record, remove: async () => record };
  }
  record = { ...record, applied: true, appliedAt: preciseNow() };

  let removed: Promise<EmulationRecord> | undefined;
  const session: NetemSession = {
    get record() {
      return record;
    },
    remove: () =>
      (removed ??= (async () => {
        await drain(tc, device, longestDelayMs(plan) * 2 + 1000);
        const result = await removeNow();
        if (result.code === 0 && options.journal) await forgetUndo(options.journal, 'netem').catch(() => {});
        record =
          result.code === 0
            ? { ...record, removed: true, removedAt: preciseNow() }
            : { ...record, removed: false, removeError: `tc qdisc del dev ${device} root: ${firstLine(result.stderr) || `exit ${result.code}`}` };
        return record;
      })()),
  };
  return session;
}

/**
 * Waits until the qdiscs on `device` hold no packet, at most `limitMs`: removing a qdisc drops
 * what it holds, and a reply still in netem's queue would be lost (and resent late by TCP).
 */
async function drain(tc: TcRunner, device: string, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const shown = await tc(['-s', '-j', 'qdisc', 'show', 'dev', device]);
    if (shown.code !== 0) return;
    let queued = 0;
    try {
      queued = (JSON.parse(shown.stdout) as Array<{ qlen?: number }>).reduce((sum, q) => sum + (q.qlen ?? 0), 0);
    } catch {
      return;
    }
    if (queued === 0) return;
    await delay(10);
  }
}

/** A tc failure in words a person can act on. */
function explain(args: readonly string[], result: CommandResult): string {
  if (result.code === NOT_INSTALLED) return firstLine(result.stderr);
  const command = ['tc', ...args].join(' ');
  const said = firstLine(result.stderr) || `exit ${result.code}`;
  const kind = args.includes('netem') ? 'netem' : args.includes('htb') ? 'htb' : args.includes('tbf') ? 'tbf' : undefined;
  if (kind && /qdisc kind is unknown|Unknown qdisc/i.test(result.stderr)) {
    const what = kind === 'netem' ? 'delay, jitter and loss' : 'bandwidth limits and per-destination delays';
    return `This kernel has no \`${kind}\` queueing discipline (sch_${kind}), which ${what} need: load it with \`modprobe sch_${kind}\` (some distributions ship it in a separate package such as kernel-modules-extra), or run on a kernel that has it (${command}: ${said})`;
  }
  const refused = refusalOf(result, "tc (changing the interface's queueing)");
  if (refused) return `${refused} (${command}: ${said})`;
  return `${command}: ${said}`;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}

export interface EmulationOptions extends ApplyOptions {
  /** The WAN relay's control URL (`wanRelayFrom`); absent: `tc`. */
  readonly relay?: string;
}

/** Applies `plan` by the relay when there is one, else with `tc`. Never throws (see `applyNetem`). */
export function applyEmulation(options: EmulationOptions): Promise<NetemSession> {
  return options.relay ? applyByRelay({ plan: options.plan, address: options.choice.address, relay: options.relay }) : applyNetem(options);
}

/** How long the agent waits for the relay to answer. */
const RELAY_TIMEOUT_MS = 5000;

/**
 * Gives the node's plan to the run's WAN relay (`PUT <relay>/nodes/<address>`), which applies it
 * to every packet the node sends from then on; removal (`DELETE`) lets packets already queued
 * leave on time. Never throws: a failure is in `record.error`, with `applied: false`.
 */
export async function applyByRelay(options: { plan: NetemPlan; address: string; relay: string; fetch?: typeof fetch }): Promise<NetemSession> {
  const request = options.fetch ?? fetch;
  const { plan, address } = options;
  const url = `${options.relay.replace(/\/+$/, '')}/nodes/${address}`;
  const body = JSON.stringify(plan);
  let record: EmulationRecord = { mechanism: 'relay', relay: options.relay, interface: interfaceFor(address) ?? null, plan, commands: [], applied: false, removed: false };
  if (isEmptyPlan(plan)) {
    record = { ...record, applied: true, appliedAt: preciseNow(), removed: true };
    return { record, remove: async () => record };
  }
  record = { ...record, commands: [`PUT ${url} ${body}`] };
  const put = await relayRequest(request, 'PUT', url, body);
  if (put) {
    record = { ...record, error: `The WAN relay did not apply the emulation (PUT ${url}): ${put}` };
    return { record, remove: async () => record };
  }
  record = { ...record, applied: true, appliedAt: preciseNow() };
  let removal: Promise<EmulationRecord> | undefined;
  return {
    get record() {
      return record;
    },
    remove: () =>
      (removal ??= (async () => {
        const failed = await relayRequest(request, 'DELETE', url);
        record = failed ? { ...record, removed: false, removeError: `DELETE ${url}: ${failed}` } : { ...record, removed: true, removedAt: preciseNow() };
        return record;
      })()),
  };
}

/**
 * Asks the relay something harmless (`GET /counters`): a process's first request loads and
 * connects the HTTP client, which can take hundreds of milliseconds; a fault due at T + offset
 * should not pay for it. Never throws.
 */
export async function warmUpRelay(relay: string, request: typeof fetch = fetch): Promise<void> {
  await request(`${relay.replace(/\/+$/, '')}/counters`, { signal: AbortSignal.timeout(RELAY_TIMEOUT_MS) })
    .then((response) => response.text())
    .catch(() => {});
}

/** Resets the node's emulation at the relay (`DELETE`), whatever it was; returns why that failed, or undefined. */
export function resetAtRelay(relay: string, address: string, request: typeof fetch = fetch): Promise<string | undefined> {
  return relayRequest(request, 'DELETE', `${relay.replace(/\/+$/, '')}/nodes/${address}`);
}

/** One request to the relay, tried twice; returns why it failed, or undefined. */
async function relayRequest(request: typeof fetch, method: 'PUT' | 'DELETE', url: string, body?: string): Promise<string | undefined> {
  let problem = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const response = await request(url, { method, body, headers: body ? { 'content-type': 'application/json' } : {}, signal: AbortSignal.timeout(RELAY_TIMEOUT_MS) });
      const text = await response.text();
      if (response.ok) return undefined;
      let said = text;
      try {
        said = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        // Not JSON: the text as it is.
      }
      // The relay refused the plan: asking again will not help.
      return `${response.status} ${said}`.trim();
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      problem = `${(error as Error).message}${cause ? ` (${cause})` : ''}`;
      if (attempt === 0) await delay(200);
    }
  }
  return `no answer: ${problem}`;
}
