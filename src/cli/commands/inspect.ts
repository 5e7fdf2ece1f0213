import { defineCommand } from 'citty';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { layout, nodeFiles } from '../../core/layout.ts';
import { listRuns, loadManifest, runStatus } from '../../controller/status.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/store.ts';
import { UsageError } from '../errors.ts';
import { jsonArg, storeArg, storeLocator } from '../shared-args.ts';
import { formatSummary, summarize } from '../summary.ts';

async function withStore<T>(locator: string | undefined, use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(storeLocator(locator));
  try {
    return await use(store);
  } finally {
    await store.dispose();
  }
}

export const ls = defineCommand({
  meta: { name: 'ls', description: 'List the runs in the store, newest first' },
  args: { store: storeArg, json: jsonArg },
  async run({ args }) {
    const runs = await withStore(args.store, listRuns);
    if (args.json) {
      console.log(JSON.stringify(runs.map((m) => ({ runId: m.runId, name: m.name, createdAt: m.createdAt, instances: m.instances, repeats: m.repeats, provider: m.provider })), null, 2));
      return;
    }
    if (runs.length === 0) {
      console.log(`No runs in ${storeLocator(args.store)}: start one with \`lockstep run <spec.yaml>\``);
      return;
    }
    for (const m of runs) console.log(`${m.runId}  ${m.createdAt}  ${m.provider}  N=${m.instances}  repeats=${m.repeats}`);
  },
});

export const status = defineCommand({
  meta: { name: 'status', description: "A run's state: instances, and per repeat ready / done / failed nodes, duration and start skew" },
  args: { runId: { type: 'positional', description: 'The run id (see `lockstep ls`)', required: true }, store: storeArg, json: jsonArg },
  async run({ args }) {
    const found = await withStore(args.store, (store) => runStatus(store, args.runId));
    const summary = summarize(found);
    if (args.json) {
      console.log(JSON.stringify({ runId: args.runId, state: found.state, instances: found.instances, repeats: summary }, null, 2));
      return;
    }
    const states = new Map<string, number>();
    for (const i of found.instances) states.set(i.state, (states.get(i.state) ?? 0) + 1);
    console.log(`State: ${found.state}; instances: ${[...states].map(([s, n]) => `${n} ${s}`).join(', ') || 'none booted yet'}`);
    console.log(formatSummary(args.runId, summary));
  },
});

export const logs = defineCommand({
  meta: { name: 'logs', description: "Where a run's logs are, or one node's log (--repeat and --rank)" },
  args: {
    runId: { type: 'positional', description: 'The run id (see `lockstep ls`)', required: true },
    repeat: { type: 'string', description: 'Repeat number (from 1)' },
    rank: { type: 'string', description: 'Rank of the node: prints its log' },
    stderr: { type: 'boolean', description: 'Print stderr instead of stdout', default: false },
    store: storeArg,
    json: jsonArg,
  },
  async run({ args }) {
    await withStore(args.store, async (store) => {
      const manifest = await loadManifest(store, args.runId);
      if (args.rank !== undefined) {
        const repeat = Number(args.repeat ?? 1);
        const rank = Number(args.rank);
        if (!Number.isInteger(repeat) || repeat < 1 || repeat > manifest.repeats) throw new UsageError(`--repeat must be 1..${manifest.repeats}`);
        if (!Number.isInteger(rank) || rank < 0) throw new UsageError('--rank must be a rank (0, 1, …)');
        const key = layout.node(args.runId, repeat, rank) + (args.stderr ? nodeFiles.stderr : nodeFiles.stdout);
        const bytes = await store.get(key);
        if (!bytes) throw new UsageError(`No log at ${key}: check --repeat and --rank (lockstep status ${args.runId})`);
        process.stdout.write(bytes);
        return;
      }
      const prefix = layout.run(args.runId);
      const location = store.locator.startsWith('file:') ? join(fileURLToPath(store.locator), prefix) : `${store.locator.replace(/\?.*$/, '').replace(/\/?$/, '/')}${prefix}`;
      const nodes = (await store.list(`${prefix}repeats/`)).filter((o) => o.key.endsWith(`/${nodeFiles.result}`)).map((o) => o.key.slice(0, -nodeFiles.result.length));
      if (args.json) {
        console.log(JSON.stringify({ runId: args.runId, location, nodes }, null, 2));
        return;
      }
      console.log(`Logs of ${args.runId}: ${location}`);
      console.log(`  repeats/<r>/nodes/<rank>/{stdout.log,stderr.log,result.json,files/}; ${nodes.length} node result(s)`);
      console.log(`One node's log: lockstep logs ${args.runId} --repeat 1 --rank 0 [--stderr]`);
    });
  },
});
