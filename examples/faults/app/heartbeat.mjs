// heartbeat: every node pings every other node over UDP every `interval` ms for `duration` seconds,
// answers the pings it gets, and prints one JSON line per answer it receives, with the time it
// arrived: {"metric": "rtt_ms", "value": <round trip>, "peer": <rank>, "time": <epoch ms>}. During
// a partition the answers from the other side stop and come back after it; a pause stops the
// paused node's lines; a restart shows as a second `start` line. `lockstep results` reads the lines
// as the metric `rtt_ms` and splits it into samples during and outside the fault windows.
//
// With `--state <folder>` (the node's output folder), the first run writes its end time there and a
// restarted run finds it, as a real node finds its state on disk: it runs until the same end.
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string' },
    rank: { type: 'string' },
    duration: { type: 'string', default: '10' },
    interval: { type: 'string', default: '50' },
    port: { type: 'string', default: '7200' },
    state: { type: 'string' },
  },
});
const hosts = readFileSync(values.hosts, 'utf8').split('\n').filter(Boolean);
const rank = Number(values.rank);
const port = Number(values.port);
const peers = hosts.map((address, peer) => ({ address, peer })).filter((p) => p.peer !== rank);
const sent = new Map(peers.map((p) => [p.peer, 0]));
const answered = new Map(peers.map((p) => [p.peer, 0]));
const print = (record) => process.stdout.write(JSON.stringify(record) + '\n');

const socket = createSocket('udp4');
socket.on('message', (message, from) => {
  const [kind, peer, seq, sentAt] = message.toString().split(' ');
  if (kind === 'ping') socket.send(`pong ${rank} ${seq} ${sentAt}`, from.port, from.address);
  else if (kind === 'pong') {
    answered.set(Number(peer), answered.get(Number(peer)) + 1);
    print({ metric: 'rtt_ms', value: Number((performance.now() - Number(sentAt)).toFixed(3)), peer: Number(peer), time: Date.now() });
  }
});
await new Promise((resolve) => socket.bind(port, hosts[rank], resolve));
print({ event: 'start', rank, time: Date.now() });
const stateFile = values.state ? join(values.state, 'heartbeat-end') : undefined;
const end = stateFile && existsSync(stateFile) ? Number(readFileSync(stateFile, 'utf8')) : Date.now() + Number(values.duration) * 1000;
if (stateFile) writeFileSync(stateFile, String(end));

let seq = 0;
const timer = setInterval(() => {
  seq++;
  for (const { address, peer } of peers) {
    sent.set(peer, sent.get(peer) + 1);
    socket.send(`ping ${rank} ${seq} ${performance.now()}`, port, address);
  }
}, Number(values.interval));

setTimeout(() => {
  clearInterval(timer);
  // A moment for the last answers, then the totals.
  setTimeout(() => {
    for (const { peer } of peers) print({ metric: 'lost', value: sent.get(peer) - answered.get(peer), peer });
    socket.close();
  }, 1000);
}, Math.max(0, end - Date.now()));
