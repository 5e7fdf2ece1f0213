// Many lightweight agents in one process: each runs the barrier code (lockstep's, or the seed's
// LIST-every-0.5-s loop) against one store, arriving at its own time over `spreadMs`, as booting
// instances would. Prints one JSON line: per node readyAt / knownAt / startAt, and the process's
// peak memory.
import { awaitBarrier } from '../../src/agent/barrier.ts';
import { layout } from '../../src/core/layout.ts';
import { openStore } from '../../src/store/open.ts';
import { putJson, type Store } from '../../src/store/store.ts';
import { preciseNow } from '../../src/util/clock.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';

interface Args {
  readonly locator: string;
  readonly runId: string;
  readonly n: number;
  readonly spreadMs: number;
  readonly mode: 'lockstep' | 'seed';
  readonly startDelayMs: number;
  readonly seed: number;
}

const args = JSON.parse(process.argv[2]!) as Args;
const random = seededRandom(args.seed);
const offsets = Array.from({ length: args.n }, () => random() * args.spreadMs);
const t0 = preciseNow() + 200;

const nodes = await Promise.all(
  offsets.map(async (offset, i) => {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, t0 + offset - preciseNow())));
    const self = { instanceId: `i-${i.toString(16).padStart(8, '0')}`, address: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` };
    // Each agent has its own client (its own connections), as each instance would.
    const own = await openStore(args.locator);
    if (args.mode === 'seed') {
      const outcome = await seedBarrier(own, self.instanceId, self.address);
      await own.dispose();
      return outcome;
    }
    const outcome = await awaitBarrier({
      store: own,
      runId: args.runId,
      repeat: 1,
      self,
      expected: args.n,
      timeoutMs: 600_000,
      startDelayMs: args.startDelayMs,
      measureClockOffset: false,
    });
    await own.dispose();
    return { readyAt: outcome.ready.readyAt, knownAt: outcome.knownAt, startAt: outcome.start.startAt, watched: outcome.watched };
  }),
);
process.stdout.write(`${JSON.stringify({ nodes, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);

/** The seed's barrier: ready record, then LIST every 0.5 s until N are there; it starts when it sees them. */
async function seedBarrier(store: Store, id: string, address: string) {
  const readyAt = preciseNow();
  await putJson(store, layout.ready(args.runId, 1, id), { instanceId: id, address, readyAt });
  for (;;) {
    const listed = await store.list(layout.readyPrefix(args.runId, 1));
    if (listed.length >= args.n) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const knownAt = preciseNow();
  return { readyAt, knownAt, startAt: knownAt, watched: true };
}

