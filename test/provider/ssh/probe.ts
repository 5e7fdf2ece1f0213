/** The SSH tests' node command (probe.mjs): its identity, its params, and the interfaces of the host it ran on. */
export const PROBE = `
import { networkInterfaces } from 'node:os';
import { readFileSync } from 'node:fs';
const seconds = Number(process.env.LOCKSTEP_PARAM_SLEEP ?? 0);
if (seconds > 0) await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const interfaces = Object.values(networkInterfaces()).flat().filter((i) => i.family === 'IPv4' && !i.internal).map((i) => i.address);
console.log(JSON.stringify({
  rank: Number(process.env.LOCKSTEP_RANK),
  address: process.env.LOCKSTEP_ADDRESS,
  role: process.env.LOCKSTEP_PARAM_ROLE,
  interfaces,
  hosts: readFileSync(process.env.LOCKSTEP_HOSTS_FILE, 'utf8').trim().split('\\n'),
}));
`;
