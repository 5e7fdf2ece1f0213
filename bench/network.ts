/**
 * How close network emulation in namespaces comes to what the spec asks (the figures the netns tests
 * do not assert, since a busy machine moves them): ping-mesh's round trips between 4 local instances
 * without delay and with `delay: 50ms` (the WAN relay), medians over every pair.
 */
import { metricByPeer, missingSupport, PING_MESH, removeStartedNetworks, runInNamespaces } from '../test/network/netns-run.ts';
import { median } from './stats.ts';

export interface NetworkFigures {
  /** Median round trip (ms) over every pair, no emulation. */
  readonly undelayedMs: number;
  /** The same with `delay: 50ms` on every node (100 ms asked). */
  readonly delayedMs: number;
}

export type NetworkResult = NetworkFigures | { readonly skipped: string };

const PING = 'node ping-mesh.mjs --hosts {{hostsFile}} --rank {{rank}} --rounds 20 --size 64';

export async function benchNetwork(options: { readonly log: (line: string) => void }): Promise<NetworkResult> {
  const missing = missingSupport();
  if (missing) {
    options.log(`skipped: ${missing}`);
    return { skipped: missing };
  }
  try {
    const roundTrip = async (spec: readonly string[]) => {
      const run = await runInNamespaces({ instances: 4, app: PING_MESH, run: PING, spec });
      if (!run.outcome.ok) throw new Error(`the network run ended ${run.outcome.status.state}`);
      return median([...run.lines.values()].flatMap((lines) => [...metricByPeer(lines, 'rtt_median_ms').values()]));
    };
    const undelayedMs = await roundTrip([]);
    options.log(`round trip without delay: ${undelayedMs.toFixed(2)} ms (median of 12 pairs)`);
    const delayedMs = await roundTrip(['network:', '  delay: 50ms']);
    options.log(`round trip with delay: 50ms on each node: ${delayedMs.toFixed(1)} ms (100 ms asked)`);
    return { undelayedMs, delayedMs };
  } finally {
    await removeStartedNetworks();
  }
}
