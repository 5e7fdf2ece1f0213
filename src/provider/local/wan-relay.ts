import { createSocket } from 'node:dgram';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomInt } from 'node:crypto';
import { setPriority } from 'node:os';
import { parseArgs } from 'node:util';
import type { NetemPlan } from '../../spec/network-plan.ts';
import { PlanError, RELAY_CONTROL_PORT, RELAY_UNDERLAY, relayNodes, VXLAN_PORT, WanRelay } from './wan-relay-core.ts';
import { seededRandom } from '../../util/seeded-random.ts';

/**
 * The WAN relay of a netns run (bundled as dist/wan-relay.mjs): started by the local provider in
 * the run's hub namespace, it receives every instance's VXLAN datagrams on its underlay address
 * and forwards them after the sender's emulation (see wan-relay-core.ts). Agents set and reset
 * their emulation over HTTP on the same address:
 *
 *   PUT    /nodes/<address>   body: the node's NetemPlan   → 200 {"applied": true}
 *   DELETE /nodes/<address>                               → 200 {"removed": true}
 *   GET    /counters
 *
 * It writes `ready` on stdout once both sockets listen, and ends on SIGTERM, when the run's cleanup
 * ends every process inside its namespaces (removeRunNetwork), or at the run's expiry.
 */

const { values } = parseArgs({
  options: {
    tag: { type: 'string' },
    count: { type: 'string' },
    listen: { type: 'string', default: RELAY_UNDERLAY },
    seed: { type: 'string' },
    'expires-at': { type: 'string' },
  },
});
const count = Number(values.count);
if (!Number.isInteger(count) || count < 1) {
  console.error('wan-relay: --count <instances> is required');
  process.exit(2);
}
const listen = values.listen!;
const socket = createSocket({ type: 'udp4', recvBufferSize: 8 * 2 ** 20, sendBufferSize: 8 * 2 ** 20 });
const relay = new WanRelay({
  nodes: relayNodes(count),
  send: (data, to) => socket.send(data, VXLAN_PORT, to),
  random: seededRandom(values.seed !== undefined ? Number(values.seed) : randomInt(2 ** 31)),
});

// One timer for the whole queue, set for its first packet (never a timer per packet). Timers count
// whole milliseconds, from a clock read at the start of the event loop's turn, so one may fire a
// little early: then it is set again for the rest. A packet never leaves before its time.
const now = () => performance.now();
let timer: NodeJS.Timeout | undefined;
let timerDue = Infinity;
function schedule(): void {
  const due = relay.queue.nextDue();
  if (due === undefined || due >= timerDue) return;
  if (timer) clearTimeout(timer);
  timerDue = due;
  timer = setTimeout(fire, Math.max(0, Math.ceil(due - now())));
}
function fire(): void {
  timer = undefined;
  timerDue = Infinity;
  relay.flush(now());
  schedule();
}

socket.on('message', (data, from) => {
  relay.receive(data, from.address, now());
  schedule();
});

const server = createServer((request, response) => {
  handle(request, response).catch((error) => reply(response, 500, { error: (error as Error).message }));
});

async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://relay').pathname;
  if (request.method === 'GET' && path === '/counters') return reply(response, 200, { ...relay.counters, queued: relay.queue.size });
  const match = /^\/nodes\/([0-9.]+)$/.exec(path);
  if (!match) return reply(response, 404, { error: `no such resource: ${request.method} ${path}` });
  const address = match[1]!;
  try {
    if (request.method === 'PUT') {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      let plan: NetemPlan;
      try {
        plan = JSON.parse(Buffer.concat(chunks).toString('utf8')) as NetemPlan;
        if (typeof plan !== 'object' || plan === null || typeof plan.default !== 'object' || !Array.isArray(plan.rules)) throw new Error('not a plan');
      } catch (error) {
        return reply(response, 400, { error: `The body is not a NetemPlan: ${(error as Error).message}` });
      }
      relay.setPlan(address, plan);
      console.error(`wan-relay: ${address}: ${JSON.stringify(plan)}`);
      return reply(response, 200, { applied: true });
    }
    if (request.method === 'DELETE') {
      const removed = relay.clearPlan(address);
      console.error(`wan-relay: ${address}: removed`);
      return reply(response, 200, { removed });
    }
  } catch (error) {
    if (error instanceof PlanError) return reply(response, 400, { error: error.message });
    throw error;
  }
  return reply(response, 405, { error: `${request.method} is not allowed here` });
}

function reply(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

await new Promise<void>((resolve, reject) => socket.once('error', reject).bind(VXLAN_PORT, listen, () => resolve()));
await new Promise<void>((resolve, reject) => server.once('error', reject).listen(RELAY_CONTROL_PORT, listen, () => resolve()));
socket.on('error', (error) => console.error(`wan-relay: ${error.message}`));
// Every packet between the instances waits for this process: ahead of the instances' own work if
// allowed (root), which keeps the added latency low on a busy machine.
try {
  setPriority(-10);
} catch {
  // Not allowed: normal priority.
}
process.stdout.write('ready\n');
console.error(`wan-relay ${values.tag ?? ''}: ${count} instances, VXLAN on ${listen}:${VXLAN_PORT}, control on ${listen}:${RELAY_CONTROL_PORT}`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(0));
// A safety net: should the run's cleanup never come, the relay ends at the run's expiry.
const expiresAt = values['expires-at'] ? Date.parse(values['expires-at']) : NaN;
if (Number.isFinite(expiresAt)) {
  const check = () => {
    if (Date.now() >= expiresAt) {
      console.error('wan-relay: the run has expired');
      process.exit(0);
    }
    setTimeout(check, Math.min(60_000, Math.max(1000, expiresAt - Date.now()))).unref();
  };
  check();
}
