// A probe for the network tests, run by every node inside its namespace: it prints the queueing it
// finds on its own interface (as JSON lines), and rank 0 sends `--bytes` to rank `--to` and prints
// how long that took, then the per-class counters of its interface.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { hosts: { type: 'string' }, rank: { type: 'string' }, to: { type: 'string', default: '1' }, bytes: { type: 'string', default: '1000000' } } });
const hosts = readFileSync(values.hosts, 'utf8').split('\n').filter(Boolean);
const rank = Number(values.rank);
const me = hosts[rank];
const device = Object.entries(networkInterfaces()).find(([, entries]) => entries?.some((e) => e.address === me))?.[0];
const tc = (...args) => execFileSync('tc', [...args, 'dev', device], { encoding: 'utf8' });
const print = (record) => console.log(JSON.stringify(record));
print({ device, qdisc: tc('qdisc', 'show'), filter: tc('filter', 'show') });

const port = 7200;
const others = hosts.length - 1;
let finished = 0;
const server = createServer((socket) => {
  let received = 0;
  socket.on('data', (chunk) => (received += chunk.length));
  socket.on('end', () => socket.end(`${received}\n`));
  socket.on('close', () => ++finished);
  socket.on('error', () => {});
});
await new Promise((resolve, reject) => server.listen(port, me, resolve).once('error', reject));

// Everyone says hello to everyone (so that no node quits before its peers have connected); rank 0
// also sends the payload to `--to`.
async function send(address, bytes) {
  for (const deadline = Date.now() + 10_000; ; ) {
    try {
      return await new Promise((resolve, reject) => {
        const started = performance.now();
        const socket = connect({ host: address, port, localAddress: me }, () => socket.end(Buffer.alloc(bytes)));
        let reply = '';
        socket.on('data', (chunk) => (reply += chunk));
        socket.on('end', () => resolve({ ms: performance.now() - started, received: Number(reply.trim()) }));
        socket.on('error', reject);
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
const target = Number(values.to);
await Promise.all(
  hosts.map(async (address, peer) => {
    if (peer === rank) return;
    const bytes = rank === 0 && peer === target ? Number(values.bytes) : 1;
    const { ms, received } = await send(address, bytes);
    if (bytes > 1) print({ metric: 'transfer_ms', value: ms, bytes: received, peer });
  }),
);
if (rank === 0) print({ classes: tc('-s', 'class', 'show') });
while (finished < others) await new Promise((r) => setTimeout(r, 10));
server.close();
