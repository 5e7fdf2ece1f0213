// ping-mesh: every node listens on its own address, connects to every peer in the hosts file,
// exchanges `rounds` ping/pong messages with each, and prints its round-trip figures.
// Metrics are printed as JSON lines ({"metric": …, "value": …}) that `lockstep results` picks up.
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string' },
    rank: { type: 'string' },
    rounds: { type: 'string', default: '20' },
    size: { type: 'string', default: '64' },
    port: { type: 'string', default: '7100' },
  },
});
const hosts = readFileSync(values.hosts, 'utf8').split('\n').filter(Boolean);
const rank = Number(values.rank);
const rounds = Number(values.rounds);
const port = Number(values.port);
const payload = 'x'.repeat(Number(values.size));
const me = hosts[rank];
const peers = hosts.map((address, peerRank) => ({ address, peerRank })).filter((p) => p.peerRank !== rank);
const expectedPings = peers.length * rounds;
let pingsAnswered = 0;

// Messages are newline-delimited: "ping <seq> <payload>" answered by "pong <seq> <payload>".
const server = createServer((socket) => {
  let buffered = '';
  socket.setNoDelay(true);
  socket.on('data', (chunk) => {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.startsWith('ping ')) {
        socket.write(`pong ${line.slice(5)}\n`);
        pingsAnswered++;
      }
    }
  });
  socket.on('error', () => {});
});
await new Promise((resolve, reject) => server.listen(port, me, resolve).once('error', reject));

function connectWithRetry(address, deadline) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = connect({ host: address, port, localAddress: me }, () => resolve(socket));
      socket.setNoDelay(true);
      socket.once('error', (error) => {
        socket.destroy();
        if (Date.now() > deadline) reject(error);
        else setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

async function pingPeer({ address, peerRank }) {
  const socket = await connectWithRetry(address, Date.now() + 10_000);
  const rtts = [];
  let buffered = '';
  let waiting;
  socket.on('data', (chunk) => {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      buffered = buffered.slice(newline + 1);
      waiting?.();
    }
  });
  for (let seq = 0; seq < rounds; seq++) {
    const sent = performance.now();
    await new Promise((resolve) => {
      waiting = resolve;
      socket.write(`ping ${seq} ${payload}\n`);
    });
    rtts.push(performance.now() - sent);
  }
  socket.end();
  return { peerRank, rtts };
}

const started = performance.now();
const results = await Promise.all(peers.map(pingPeer));
const all = results.flatMap((r) => r.rtts).sort((a, b) => a - b);
const quantile = (q) => all[Math.min(all.length - 1, Math.floor(q * all.length))] ?? 0;
for (const { peerRank, rtts } of results) {
  const mean = rtts.reduce((a, b) => a + b, 0) / rtts.length;
  console.log(JSON.stringify({ metric: 'rtt_ms', value: Number(mean.toFixed(3)), peer: peerRank }));
  const sorted = [...rtts].sort((a, b) => a - b);
  for (const [metric, value] of [['rtt_min_ms', sorted[0]], ['rtt_median_ms', sorted[Math.floor(sorted.length / 2)]], ['rtt_max_ms', sorted.at(-1)]]) {
    console.log(JSON.stringify({ metric, value: Number(value.toFixed(3)), peer: peerRank }));
  }
}
console.log(JSON.stringify({ metric: 'rtt_p50_ms', value: Number(quantile(0.5).toFixed(3)) }));
console.log(JSON.stringify({ metric: 'rtt_p99_ms', value: Number(quantile(0.99).toFixed(3)) }));
console.log(`rank ${rank} at ${me}: ${all.length} round trips to ${peers.length} peers in ${(performance.now() - started).toFixed(1)} ms, median ${quantile(0.5).toFixed(3)} ms`);

// Keep answering until every peer has had all its pings answered, so no peer is left hanging.
const deadline = Date.now() + 15_000;
while (pingsAnswered < expectedPings && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
server.close();
process.exit(pingsAnswered < expectedPings ? 1 : 0);
