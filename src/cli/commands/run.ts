import { defineCommand } from 'citty';
import { Listr, type ListrTaskWrapper } from 'listr2';
import { createInterface } from 'node:readline';
import { runExperiment, type RunEvent, type RunOptions, type RunOutcome } from '../../controller/run.ts';
import { isSweep, planSweep, runSweep, type SweepOutcome } from '../../controller/sweep.ts';
import { pointLabel } from '../../results/matrix.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/store.ts';
import { progressOf, type RepeatProgress } from '../../controller/progress.ts';
import { loadSpec } from '../../spec/load.ts';
import type { Spec } from '../../spec/schema.ts';
import { EXIT } from '../errors.ts';
import { jsonArg, repeatedOption, storeArg } from '../shared-args.ts';
import { formatSummary, summarize } from '../summary.ts';

export default defineCommand({
  meta: { name: 'run', description: 'Run an experiment: launch N instances, run every repeat in lockstep, collect the logs' },
  args: {
    spec: { type: 'positional', description: 'The experiment spec (YAML)', required: true, valueHint: 'spec.yaml' },
    set: { type: 'string', description: 'Override a spec key, e.g. --set instances=16 --set params.atSize=38 (repeatable)', valueHint: 'key=value' },
    store: storeArg,
    'dry-run': { type: 'boolean', description: 'Print the launch plan (and on AWS an hourly cost estimate and a permission check); launch nothing', default: false },
    results: { type: 'boolean', description: 'Download and analyse the results at the end (--no-results to skip)', default: true },
    yes: { type: 'boolean', description: 'On Ctrl-C, end the run\'s instances without asking (the default with no terminal)', default: false },
    json: jsonArg,
  },
  async run({ args, rawArgs }) {
    const overrides = repeatedOption(rawArgs, 'set');
    const loaded = loadSpec(args.spec, { overrides });
    // Every point of a sweep is checked before anything is launched (and by the dry run).
    const plan = isSweep(loaded) ? planSweep(loaded, { overrides }) : undefined;
    if (args['dry-run']) {
      await printPlan(loaded.spec, args.store, args.json);
      return;
    }
    if (!plan) {
      const { outcome, exitCode } = await interruptible(args, (control) => runShown({ loaded, store: args.store, signal: control.signal, confirmEnd: control.confirmEnd }, args, control));
      if (outcome && args.results && !args.json && exitCode !== EXIT.interrupted) await showResults(outcome.runId, outcome.store);
      process.exitCode = exitCode;
      return;
    }
    const { outcome, exitCode } = await interruptible(args, (control) =>
      runSweep({
        plan,
        store: args.store,
        signal: control.signal,
        confirmEnd: control.confirmEnd,
        onSweepEvent: (event) => {
          if (args.json) return;
          if (event.type === 'sweep') console.log(`Sweep ${event.sweepId}: ${event.points} points`);
          else console.log(`\nPoint ${event.point.index + 1}/${event.total}: ${pointLabel(event.point.values)}`);
        },
        runPoint: (options) => runShown(options, { ...args, quiet: args.json }, control),
      }),
    );
    if (args.json) {
      const runs = outcome.runs.map(({ point, values, runId, ok }) => ({ point, values, runId, ok }));
      console.log(JSON.stringify({ sweepId: outcome.sweepId, store: outcome.store, runs }, null, 2));
    } else if (args.results && exitCode !== EXIT.interrupted) await showResults(outcome.sweepId, outcome.store);
    process.exitCode = exitCode;
  },
});

interface ShowArgs {
  readonly store?: string;
  readonly json: boolean;
  /** Print nothing (a sweep with --json prints one document at the end). */
  readonly quiet?: boolean;
}

/** What `interruptible` gives the work it wraps. */
interface Interruption {
  readonly signal: AbortSignal;
  readonly confirmEnd: NonNullable<RunOptions['confirmEnd']>;
  /** Registers how to stop the progress display before asking the user a question. */
  readonly onStopDisplay: (stop: () => Promise<void>) => void;
}

/**
 * Ctrl-C stops following the run (or sweep); the run's instances are then ended, if the user says
 * so (or at once with --yes or without a terminal). The exit code says how it went.
 */
async function interruptible<T extends RunOutcome | SweepOutcome>(
  args: { readonly yes: boolean },
  work: (interruption: Interruption) => Promise<T>,
): Promise<{ outcome: T; exitCode: number }> {
  const interrupt = new AbortController();
  const onSigint = () => {
    if (!interrupt.signal.aborted) interrupt.abort('interrupted');
  };
  process.on('SIGINT', onSigint);
  let stopDisplay = async () => {};
  const confirmEnd = async ({ runId, instances }: { runId: string; instances: number }): Promise<boolean> => {
    await stopDisplay();
    if (args.yes || !process.stdin.isTTY) {
      console.error(`Interrupted: ending the ${instances} instance(s) of ${runId}`);
      return true;
    }
    return askYesNo(`Interrupted. End the ${instances} instance(s) of ${runId}? [Y/n] `);
  };
  try {
    const outcome = await work({ signal: interrupt.signal, confirmEnd, onStopDisplay: (stop) => (stopDisplay = stop) });
    return { outcome, exitCode: interrupt.signal.aborted ? EXIT.interrupted : outcome.ok ? EXIT.ok : EXIT.failed };
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** One run with progress (or quietly with --json), then its summary. */
async function runShown(options: RunOptions, args: ShowArgs, interruption: Interruption): Promise<RunOutcome> {
  const { spec } = options.loaded;
  const outcome =
    args.json || args.quiet
      ? await runExperiment(options)
      : await runWithProgress(spec.instances, spec.repeats, (onEvent, stop) => {
          interruption.onStopDisplay(stop);
          return runExperiment({ ...options, onEvent: (event) => (onEvent(event), options.onEvent?.(event)) });
        });
  const summary = summarize(outcome.status);
  if (args.quiet) {
    // The caller reports.
  } else if (args.json) {
    console.log(
      JSON.stringify(
        { runId: outcome.runId, store: outcome.store, ok: outcome.ok, state: outcome.status.state, lostInstances: outcome.lostInstances, leftRunning: outcome.leftRunning ?? [], repeats: summary },
        null,
        2,
      ),
    );
  } else {
    console.log(formatSummary(outcome.runId, summary));
    if (outcome.lostInstances.length > 0) console.log(`Instances that ended before the run was over: ${outcome.lostInstances.join(', ')}`);
    if (outcome.leftRunning?.length) console.log(`Left running: ${outcome.leftRunning.join(', ')}; end them with \`lockstep down ${outcome.runId}\``);
    console.log(`Logs and results: lockstep logs ${outcome.runId}${args.store ? ` --store ${args.store}` : ''}`);
  }
  return outcome;
}

/** Downloads the run (or sweep) and prints its figures and metrics; a failure here never hides the run's own outcome. */
async function showResults(id: string, locator: string): Promise<void> {
  try {
    const { printSummary } = await import('../../results/results.ts');
    await withStore(locator, (store) => printSummary({ id, store }));
    console.log(`Results: lockstep-results/${id}/ (lockstep results ${id} --html report.html for charts)`);
  } catch (error) {
    console.error(`Could not analyse the results: ${(error as Error).message} (try \`lockstep results ${id}\`)`);
  }
}

async function withStore<T>(locator: string, use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(locator);
  try {
    return await use(store);
  } finally {
    await store.dispose();
  }
}

async function printPlan(spec: Spec, store: string | undefined, json: boolean): Promise<void> {
  if (spec.provider.kind === 'aws') {
    const { describeLaunchPlan } = await import('./aws.ts');
    const described = await describeLaunchPlan(spec, { store });
    console.log(json ? JSON.stringify(described, null, 2) : described.text);
    if (described.plan.problems.length > 0) process.exitCode = EXIT.badInput;
    return;
  }
  if (spec.provider.kind === 'ssh') {
    const { describeSshPlan } = await import('../../provider/ssh/plan.ts');
    const described = describeSshPlan(spec, spec.provider, store);
    console.log(json ? JSON.stringify(described.plan, null, 2) : described.text);
    return;
  }
  const plan = { provider: 'local', instances: spec.instances, repeats: spec.repeats, isolation: spec.provider.isolation, store: store ?? spec.store ?? '.lockstep/store' };
  console.log(
    json
      ? JSON.stringify(plan, null, 2)
      : `Local plan: ${spec.instances} agent processes on this machine, each with its own loopback address; ${spec.repeats} repeat(s); store ${plan.store}. Nothing was launched.`,
  );
}

interface Deferred {
  promise: Promise<void>;
  settled: boolean;
  resolve(): void;
  reject(error: unknown): void;
}

/** Rejects the tasks a failed run never reached: they show as skipped, not failed. */
class NotReached extends Error {}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => {});
  const d: Deferred = {
    promise,
    settled: false,
    resolve: () => ((d.settled = true), resolve()),
    reject: (error) => ((d.settled = true), reject(error)),
  };
  return d;
}

/** Waits for a step; a step the run never reached is shown as skipped. */
async function step(d: Deferred, task: { skip(message?: string): void }, done: () => void = () => {}): Promise<void> {
  try {
    await d.promise;
    done();
  } catch (error) {
    if (error instanceof NotReached) task.skip(error.message);
    else throw error;
  }
}

/** Asks on the terminal; Enter, or Ctrl-C again, means yes. */
function askYesNo(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    let answered = false;
    const answer = (yes: boolean) => {
      if (answered) return;
      answered = true;
      prompt.close();
      resolve(yes);
    };
    prompt.on('SIGINT', () => answer(true));
    prompt.on('close', () => answer(true));
    prompt.question(question, (text) => answer(!/^\s*no?\s*$/i.test(text)));
  });
}

/** Shows the run as a task list: store, artifact, agent, launch, then each repeat with live counts. */
async function runWithProgress(
  instances: number,
  repeats: number,
  start: (onEvent: (event: RunEvent) => void, stopDisplay: () => Promise<void>) => Promise<RunOutcome>,
): Promise<RunOutcome> {
  const phases = { store: deferred(), agent: deferred(), launch: deferred() };
  const repeatDone = Array.from({ length: repeats }, deferred);
  const repeatTasks: Array<ListrTaskWrapper<unknown, never, never> | undefined> = [];
  const details: Record<string, string> = {};
  const describe = (r: RepeatProgress) => {
    const done = r.succeeded + r.failed;
    return `Repeat ${r.repeat}: ready ${r.ready}/${instances} · done ${done}/${r.members ?? instances}${r.failed ? ` · failed ${r.failed}` : ''}`;
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
      const progress = event.type === 'progress' ? event.progress : progressOf(event.status);
      for (const r of progress.repeats) {
        const task = repeatTasks[r.repeat - 1];
        if (task) task.title = describe(r);
        if (r.state === 'done') repeatDone[r.repeat - 1]!.resolve();
        if (r.state === 'failed') repeatDone[r.repeat - 1]!.reject(new Error(`${describe(r)}: some nodes failed`));
      }
    }
  };
  const list = new Listr(
    [
      { title: 'Store and artifact', task: (_, task) => step(phases.store, task, () => (task.title = `Store ${details.store ?? ''}${details.artifact ? `, artifact ${details.artifact}` : ''}`)) },
      { title: 'Agent bundle', task: (_, task) => step(phases.agent, task, () => (task.title = `Agent ${details.agent ?? ''}`)) },
      { title: `Launch ${instances} instances`, task: (_, task) => step(phases.launch, task, () => (task.title = `Launched ${details.launch ?? ''}`)) },
      ...repeatDone.map((done, i) => ({
        title: `Repeat ${i + 1}: waiting`,
        task: async (_: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
          repeatTasks[i] = task;
          await step(done, task);
        },
      })),
    ],
    {
      exitOnError: false,
      concurrent: false,
      fallbackRendererCondition: () => !process.stdout.isTTY,
      rendererOptions: { collapseErrors: false },
      // Ctrl-C is the run command's to handle: listr2's own handler would exit at once and leave the instances running.
      registerSignalListeners: false,
    },
  );
  // The list appears with the run's first step: input refused before that stays one line.
  let shown: Promise<void> | undefined;
  const show = () => (shown ??= list.run().then(() => {}, () => {}));
  const stopDisplay = async () => {
    for (const d of [...Object.values(phases), ...repeatDone]) if (!d.settled) d.reject(new NotReached('interrupted'));
    await shown;
  };
  try {
    return await start((event) => {
      show();
      onEvent(event);
    }, stopDisplay);
  } catch (error) {
    // The first task still open shows the error; the ones after it were not reached.
    const all = [...Object.values(phases), ...repeatDone];
    all.find((d) => !d.settled)?.reject(error);
    for (const d of all) if (!d.settled) d.reject(new NotReached('not reached'));
    throw error;
  } finally {
    for (const d of [...Object.values(phases), ...repeatDone]) if (!d.settled) d.reject(new NotReached('not reached'));
    await shown;
  }
}
