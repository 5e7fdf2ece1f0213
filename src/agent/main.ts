// The agent's entry point, bundled into one file (dist/agent.mjs) that instances fetch from the store.
import { execFile } from 'node:child_process';

import { openLightStore } from '../store/open.ts';
import { runAgent } from './agent.ts';
import { resolveIdentity } from './identity.ts';
import { killProcesses, processesOfInstance } from './leftovers.ts';

const identity = await resolveIdentity();
// The light S3 driver: the agent neither bundles nor loads the AWS SDK's S3 client.
const store = await openLightStore(identity.store);
const terminated = new AbortController();
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => terminated.abort('aborted'));
const end = await runAgent({ identity, store, signal: terminated.signal });
// Ending the instance means ending everything it ran: a command the agent gave up on (at the
// expiry) would otherwise outlive it on the local provider.
killProcesses(processesOfInstance(identity.runId, identity.instanceId));
await Promise.race([store.dispose(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
console.log(`${new Date().toISOString()} agent ${end}`);
if (identity.endInstance === 'poweroff' && process.env.LOCKSTEP_KEEP !== '1') {
  // instance-initiated shutdown = terminate on EC2.
  execFile('shutdown', ['-h', 'now'], () => process.exit(end === 'done' ? 0 : 1));
} else {
  process.exit(end === 'done' ? 0 : 1);
}
