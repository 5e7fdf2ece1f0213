import { defineCommand } from 'citty';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { layout, nodeFiles } from '../../core/layout.ts';
import { listKnown } from '../../controller/list.ts';
import { openRunStore } from '../../controller/locate.ts';
import { loadManifest, runStatus } from '../../controller/status.ts';
import { sweepStatus } from '../../controller/sweep.ts';
import { pointLabel } from '../../results/matrix.ts';
import type { Store } from '../../store/store.ts';
import { UsageError } from '../errors.ts';
import { alignColumns, shownStore } from '../output.ts';
import { jsonArg, runStoreArg, storeArg } from '../shared-args.ts';
import { formatSummary, instanceStates, runState, summarize } from '../summary.ts';
import { formatDuration } from '../../util/duration.ts';

const idArg = { type: 'positional', description: 'The run id or sweep id (see `lockstep ls`)', required: true, valueHint: 'id' } as const;
const runIdArg = { type: 'positional', description: 'The run id (see `lockstep ls`)', required: true, valueHint: 'runId' } as const;

/** Finds the store of `id` (see controller/locate.ts), uses it, closes it. */
export async function withRunStore<T>(id: string, store: string | undefined, use: (store: Store, kind: 'run' | 'sweep') => Promise<T>): Promise<T> {
  const found = await openRunStore(id, { store });
  try {
    return await use(found.store, found.kind);
  } finally {
    await found.store.dispose();
  }
}

export const ls = defineCommand({
  meta: { name: 'ls', description: 'List the runs and sweeps of every store lockstep knows (or of --store), newest first, with the store of each' },
  args: {
    store: { ...storeArg, description: 'Only this store (default: every store lockstep knows: runs started here, $LOCKSTEP_STORE, .lockstep/store, the AWS bootstrap bucket)' },
    json: jsonArg,
  },
  async run({ args }) {
    const listing = await listKnown({ store: args.store });
    for (const { store, reason } of listing.unreadable) console.error(`Could not read the store ${shownStore(store)}: ${reason}`);
    if (args.json) {
      console.log(JSON.stringify(listing, null, 2));
      return;
    }
    if (listing.items.length === 0) {
      const where = listing.stores.length > 0 ? listing.stores.map((s) => shownStore(s)).join(', ') : 'any store lockstep knows';
      console.log(`No runs in ${where}: start one with \`lockstep run <spec.yaml>\``);
      return;
    }
    const rows = listing.items.map((item) => [
      item.id,
      item.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      item.kind === 'sweep'
        ? `sweep of ${item.points} points${item.started < item.points ? ` (${item.started} started)` : ''}`
        : `${item.provider} N=${item.instances} repeats=${item.repeats}${item.sweep ? ` (point ${item.sweep.point} of ${item.sweep.id})` : ''}`,
      shownStore(item.store),
    ]);
    for (const line of alignColumns([['ID', 'CREATED', 'WHAT', 'STORE'], ...rows])) console.log(line);
  },
});

export const status = defineCommand({
  meta: { name: 'status', description: "A run's state (instances, and per repeat ready / done / failed nodes, duration and start skew), or a sweep's points and their runs" },
  args: { id: idArg, store: runStoreArg, json: jsonArg },
  async run({ args }) {
    await withRunStore(args.id, args.store, async (store, kind) => {
      if (kind === 'sweep') {
        const sweep = await sweepStatus(store, args.id);
        if (args.json) {
          console.log(JSON.stringify({ sweepId: args.id, name: sweep.record.name, createdAt: sweep.record.createdAt, store: store.locator, points: sweep.points }, null, 2));
          return;
        }
        console.log(`Sweep ${args.id} (${sweep.points.length} points) in ${shownStore(store.locator)}`);
        const rows = sweep.points.map((p) => [String(p.index + 1), pointLabel(p.values), p.runId ?? '-', p.state]);
        for (const line of alignColumns([['POINT', 'VALUES', 'RUN', 'STATE'], ...rows])) console.log(line);
        return;
      }
      const found = await runStatus(store, args.id);
      const summary = summarize(found);
      if (args.json) {
        const stale = found.stale.map((i) => ({ instanceId: i.instanceId, heartbeatAt: i.heartbeatAt }));
        console.log(JSON.stringify({ ...summary, store: store.locator, instances: found.instances, stale }, null, 2));
        return;
      }
      const imported = found.manifest.imported;
      if (imported) console.log(`Imported ${imported.at} from ${imported.from} (${imported.layout} layout): no instances; \`lockstep results ${args.id}\` analyses its logs`);
      else console.log(`State: ${runState(summary)}; instances: ${instanceStates(found, summary)}; store ${shownStore(store.locator)}`);
      for (const i of found.stale) {
        console.log(`Stale: ${i.instanceId} (${i.state}${i.repeat ? `, repeat ${i.repeat}` : ''}) has not written a heartbeat for ${formatDuration(Date.now() - Date.parse(i.heartbeatAt))}: its agent is stuck or its instance is gone`);
      }
      console.log(formatSummary(summary));
    });
  },
});

interface NodeLog {
  readonly repeat: number;
  readonly rank: number;
  readonly stream: 'stdout' | 'stderr';
  readonly key: string;
}

export const logs = defineCommand({
  meta: {
    name: 'logs',
    description: "Where a run's logs are; with --repeat and/or --rank the nodes' logs (every rank of a repeat, every repeat of a rank, or one); with --setup the output of setup",
  },
  args: {
    runId: runIdArg,
    repeat: { type: 'string', description: 'Only this repeat (from 1); alone, every rank of it', valueHint: 'r' },
    rank: { type: 'string', description: 'Only this rank (from 0); alone, every repeat of it', valueHint: 'k' },
    stderr: { type: 'boolean', description: 'stderr instead of stdout', default: false },
    setup: { type: 'boolean', description: "The output of `setup` on every instance (or on --instance)", default: false },
    instance: { type: 'string', description: 'With --setup: only this instance', valueHint: 'id' },
    store: runStoreArg,
    json: jsonArg,
  },
  async run({ args }) {
    const stream = args.stderr ? 'stderr' : 'stdout';
    if (args.instance !== undefined && !args.setup) throw new UsageError('`--instance` goes with `--setup`: `lockstep logs <runId> --setup --instance <id>`');
    if (args.setup && (args.repeat !== undefined || args.rank !== undefined)) throw new UsageError('`--setup` shows the output of setup, which has no repeat or rank: drop `--repeat` and `--rank`');
    await withRunStore(args.runId, args.store, async (store, kind) => {
      if (kind === 'sweep') throw new UsageError(`\`${args.runId}\` is a sweep: its runs are listed by \`lockstep status ${args.runId}\`; show one run's logs with \`lockstep logs <runId>\``);
      const manifest = await loadManifest(store, args.runId);
      if (args.setup) return printSetupLogs(store, args.runId, args.instance, args.json);
      const repeat = args.repeat === undefined ? undefined : Number(args.repeat);
      const rank = args.rank === undefined ? undefined : Number(args.rank);
      if (repeat !== undefined && !(Number.isInteger(repeat) && repeat >= 1 && repeat <= manifest.repeats)) {
        throw new UsageError(`Expected \`--repeat\` to be a repeat of this run, 1..${manifest.repeats}, got \`${args.repeat}\``);
      }
      if (rank !== undefined && !(Number.isInteger(rank) && rank >= 0)) throw new UsageError(`Expected \`--rank\` to be a rank (0, 1, …), got \`${args.rank}\``);
      const logs = await nodeLogs(store, args.runId);
      if (repeat === undefined && rank === undefined) return printLocation(store, args.runId, logs, args.json);
      const chosen = logs.filter((l) => l.stream === stream && (repeat === undefined || l.repeat === repeat) && (rank === undefined || l.rank === rank));
      if (chosen.length === 0) {
        const what = [repeat !== undefined ? `repeat ${repeat}` : '', rank !== undefined ? `rank ${rank}` : ''].filter(Boolean).join(' ');
        throw new UsageError(`No ${stream} log of ${what} in ${args.runId}: the node never ran there (see \`lockstep status ${args.runId}\`)`);
      }
      const texts = await Promise.all(chosen.map(async (l) => ({ ...l, text: Buffer.from((await store.get(l.key)) ?? []).toString('utf8') })));
      if (args.json) {
        console.log(JSON.stringify(texts.map(({ repeat: r, rank: k, stream: s, text }) => ({ repeat: r, rank: k, stream: s, text })), null, 2));
      } else if (texts.length === 1) {
        process.stdout.write(texts[0]!.text);
      } else {
        for (const t of texts) process.stdout.write(`==> repeat ${t.repeat} rank ${t.rank} ${t.stream} <==\n${t.text}${t.text.endsWith('\n') || !t.text ? '' : '\n'}`);
      }
    });
  },
});

async function nodeLogs(store: Store, runId: string): Promise<NodeLog[]> {
  const logs: NodeLog[] = [];
  const prefix = `${layout.run(runId)}repeats/`;
  for (const { key } of await store.list(prefix)) {
    const match = /^(\d+)\/nodes\/(\d+)\/(stdout|stderr)\.log$/.exec(key.slice(prefix.length));
    if (match) logs.push({ repeat: Number(match[1]), rank: Number(match[2]), stream: match[3] as NodeLog['stream'], key });
  }
  return logs.sort((a, b) => a.repeat - b.repeat || a.rank - b.rank);
}

async function printLocation(store: Store, runId: string, logs: readonly NodeLog[], json: boolean): Promise<void> {
  const prefix = layout.run(runId);
  const location = store.locator.startsWith('file:') ? join(fileURLToPath(store.locator), prefix) : `${store.locator.replace(/\?.*$/, '').replace(/\/?$/, '/')}${prefix}`;
  const nodes = [...new Set(logs.map((l) => layout.node(runId, l.repeat, l.rank)))];
  if (json) {
    console.log(JSON.stringify({ runId, location, nodes }, null, 2));
    return;
  }
  console.log(`Logs of ${runId}: ${location}`);
  console.log(`  repeats/<r>/nodes/<rank>/{${nodeFiles.stdout},${nodeFiles.stderr},${nodeFiles.result},files/}; ${nodes.length} node(s) with logs`);
  console.log(`Nodes' logs: lockstep logs ${runId} --repeat 1 [--rank 0] [--stderr]; setup's output: lockstep logs ${runId} --setup`);
}

async function printSetupLogs(store: Store, runId: string, instance: string | undefined, json: boolean): Promise<void> {
  const prefix = `${layout.run(runId)}agents/`;
  const found = new Map<string, { stdout?: string; stderr?: string }>();
  for (const { key } of await store.list(prefix)) {
    const match = /^(.+)\.setup\.(stdout|stderr)\.log$/.exec(key.slice(prefix.length));
    if (!match || (instance !== undefined && match[1] !== instance)) continue;
    const entry = found.get(match[1]!) ?? {};
    entry[match[2] as 'stdout' | 'stderr'] = Buffer.from((await store.get(key)) ?? []).toString('utf8');
    found.set(match[1]!, entry);
  }
  if (found.size === 0) {
    throw new UsageError(
      instance !== undefined
        ? `No setup output of instance \`${instance}\` in ${runId}: see the instances with \`lockstep status ${runId}\``
        : `No setup output in ${runId}: its spec has no \`setup\`, or no instance got to run it`,
    );
  }
  const entries = [...found].sort(([a], [b]) => a.localeCompare(b)).map(([instanceId, out]) => ({ instanceId, stdout: out.stdout ?? '', stderr: out.stderr ?? '' }));
  if (json) {
    console.log(JSON.stringify(entries, null, 2));
    return;
  }
  for (const e of entries) {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (!e[stream]) continue;
      process.stdout.write(`==> ${e.instanceId} setup ${stream} <==\n${e[stream]}${e[stream].endsWith('\n') ? '' : '\n'}`);
    }
  }
}
