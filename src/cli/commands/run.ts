import { defineCommand } from 'citty';
import { Listr, type ListrTaskWrapper } from 'listr2';
import { runExperiment, type RunEvent, type RunOutcome } from '../../controller/run.ts';
import type { RepeatStatus } from '../../controller/status.ts';
import { loadSpec } from '../../spec/load.ts';
import { EXIT } from '../errors.ts';
import { jsonArg, repeatedOption, storeArg } from '../shared-args.ts';
import { formatSummary, summarize } from '../summary.ts';

export default defineCommand({
  meta: { name: 'run', description: 'Run an experiment: launch N instances, run every repeat in lockstep, collect the logs' },
  args: {
    spec: { type: 'positional', description: 'The experiment spec (YAML)', required: true, valueHint: 'spec.yaml' },
    set: { type: 'string', description: 'Override a spec key, e.g. --set instances=16 --set params.atSize=38 (repeatable)', valueHint: 'key=value' },
    store: storeArg,
    json: jsonArg,
  },
  async run({ args, rawArgs }) {
    const loaded = loadSpec(args.spec, { overrides: repeatedOption(rawArgs, 'set') });
    const interrupt = new AbortController();
    const onSigint = () => interrupt.abort('interrupted');
    process.once('SIGINT', onSigint);
    try {
      const outcome = args.json
        ? await runExperiment({ loaded, store: args.store, signal: interrupt.signal })
        : await runWithProgress(loaded.spec.instances, loaded.spec.repeats, (onEvent) => runExperiment({ loaded, store: args.store, signal: interrupt.signal, onEvent }));
      const summary = summarize(outcome.status);
      if (args.json) {
        console.log(JSON.stringify({ runId: outcome.runId, store: outcome.store, ok: outcome.ok, state: outcome.status.state, lostInstances: outcome.lostInstances, repeats: summary }, null, 2));
      } else {
        console.log(formatSummary(outcome.runId, summary));
        if (outcome.lostInstances.length > 0) console.log(`Instances that ended before the run was over: ${outcome.lostInstances.join(', ')}`);
        console.log(`Logs and results: lockstep logs ${outcome.runId}${args.store ? ` --store ${args.store}` : ''}`);
      }
      process.exitCode = interrupt.signal.aborted ? EXIT.interrupted : outcome.ok ? EXIT.ok : EXIT.failed;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
});

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Shows the run as a task list: store, artifact, agent, launch, then each repeat with live counts. */
async function runWithProgress(
  instances: number,
  repeats: number,
  start: (onEvent: (event: RunEvent) => void) => Promise<RunOutcome>,
): Promise<RunOutcome> {
  const phases = { store: deferred(), agent: deferred(), launch: deferred() };
  const repeatDone = Array.from({ length: repeats }, deferred);
  const repeatTasks: Array<ListrTaskWrapper<unknown, never, never> | undefined> = [];
  const details: Record<string, string> = {};
  const describe = (r: RepeatStatus) => {
    const done = r.results.length;
    const failed = r.results.filter((x) => x.outcome !== 'success').length + r.failures.length;
    return `Repeat ${r.repeat}: ready ${r.ready}/${instances} · done ${done}/${r.members ?? instances}${failed ? ` · failed ${failed}` : ''}`;
  };
  const onEvent = (event: RunEvent) => {
    if (event.type === 'phase') {
      details[event.phase] = event.detail;
      if (event.phase === 'agent') {
        phases.store.resolve();
        phases.agent.resolve();
      }
    } else if (event.type === 'launched') {
      details.launch = `${event.instances.length} instances, run ${event.runId}`;
      phases.launch.resolve();
    } else {
      for (const r of event.status.repeats) {
        const task = repeatTasks[r.repeat - 1];
        if (task) task.title = describe(r);
        if (r.state === 'done') repeatDone[r.repeat - 1]!.resolve();
        if (r.state === 'failed') repeatDone[r.repeat - 1]!.reject(new Error(`${describe(r)}: some nodes failed`));
      }
    }
  };
  const list = new Listr(
    [
      { title: 'Store and artifact', task: async (_, task) => { await phases.store.promise; task.title = `Store ${details.store ?? ''}${details.artifact ? `, artifact ${details.artifact}` : ''}`; } },
      { title: 'Agent bundle', task: async (_, task) => { await phases.agent.promise; task.title = `Agent ${details.agent ?? ''}`; } },
      { title: `Launch ${instances} instances`, task: async (_, task) => { await phases.launch.promise; task.title = `Launched ${details.launch ?? ''}`; } },
      ...repeatDone.map((done, i) => ({
        title: `Repeat ${i + 1}: waiting`,
        task: async (_: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
          repeatTasks[i] = task;
          await done.promise;
        },
      })),
    ],
    { exitOnError: false, concurrent: false, fallbackRendererCondition: () => !process.stdout.isTTY, rendererOptions: { collapseErrors: false } },
  );
  const shown = list.run().catch(() => {});
  try {
    return await start(onEvent);
  } catch (error) {
    for (const d of [...Object.values(phases), ...repeatDone]) d.reject(error);
    throw error;
  } finally {
    for (const d of [...Object.values(phases), ...repeatDone]) d.reject(new Error('run ended'));
    await shown;
  }
}
