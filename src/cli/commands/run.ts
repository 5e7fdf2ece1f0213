import { defineCommand } from 'citty';
import { createInterface } from 'node:readline';
import { formatBootFailures } from '../../controller/boot-watch.ts';
import { runExperiment, type RunEvent, type RunOptions, type RunOutcome } from '../../controller/run.ts';
import { isSweep, planSweep, runSweep, type SweepOutcome } from '../../controller/sweep.ts';
import { pointLabel } from '../../results/matrix.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/store.ts';
import { loadSpec } from '../../spec/load.ts';
import { EXIT } from '../errors.ts';
import { jsonArg, repeatedOption, storeArg } from '../shared-args.ts';
import { runWithProgress } from '../progress.ts';
import { describeEnded, formatSummary, summarize } from '../summary.ts';

export default defineCommand({
  meta: { name: 'run', description: 'Run an experiment: launch N instances, run every repeat in lockstep, collect the logs' },
  args: {
    spec: { type: 'positional', description: 'The experiment spec (YAML)', required: true, valueHint: 'spec.yaml' },
    set: { type: 'string', description: 'Override a spec key, e.g. --set instances=16 --set params.atSize=38 (repeatable)', valueHint: 'key=value' },
    store: storeArg,
    'dry-run': { type: 'boolean', description: 'Check everything run checks (every sweep point, the store, the provider) and print the plan: provider, network, the groups and params of each rank, the sweep points (on AWS also the hourly cost and a permission check); launch nothing', default: false },
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
      const { printDryRun } = await import('../dry-run.ts');
      await printDryRun(loaded, plan, { store: args.store, json: args.json });
      return;
    }
    if (!plan) {
      const { outcome, exitCode } = await interruptible(args, (control) => runShown({ loaded, store: args.store, signal: control.signal, confirmEnd: control.confirmEnd }, args, control));
      // A run none of whose repeats ran (setup failed everywhere) has no figures: its summary said it all.
      const ran = outcome?.status.repeats.some((r) => r.state !== 'not run');
      if (outcome && ran && args.results && !args.json && exitCode !== EXIT.interrupted) await showResults(outcome.runId, outcome.store);
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
 * so (or at once with --yes or without a terminal). SIGTERM (a scheduler, `kill`) ends them
 * without asking. The exit code says how it went.
 */
async function interruptible<T extends RunOutcome | SweepOutcome>(
  args: { readonly yes: boolean },
  work: (interruption: Interruption) => Promise<T>,
): Promise<{ outcome: T; exitCode: number }> {
  const interrupt = new AbortController();
  let terminated = false;
  const onSigint = () => {
    if (!interrupt.signal.aborted) interrupt.abort('interrupted');
  };
  const onSigterm = () => {
    terminated = true;
    onSigint();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  let stopDisplay = async () => {};
  const confirmEnd = async ({ runId, instances }: { runId: string; instances: number }): Promise<boolean> => {
    await stopDisplay();
    if (args.yes || terminated || !process.stdin.isTTY) {
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
    process.off('SIGTERM', onSigterm);
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
        { ...summary, store: outcome.store, ok: outcome.ok, lostInstances: outcome.lostInstances, bootFailures: outcome.bootFailures, leftRunning: outcome.leftRunning ?? [], ...(outcome.ended ? { ended: outcome.ended } : {}) },
        null,
        2,
      ),
    );
  } else {
    console.log(formatSummary(summary));
    if (outcome.bootFailures.length > 0) console.log(formatBootFailures(outcome.bootFailures));
    if (outcome.endedForBootFailures) {
      const { instances, minInstances } = outcome.status.manifest;
      console.log(
        `Ended the run: ${outcome.bootFailures.length} of ${instances} instances did not boot, and it needs ${minInstances}${minInstances < instances ? ' (minInstances)' : ''}; every instance was ended.`,
      );
    }
    if (outcome.lostInstances.length > 0) console.log(`Instances that ended before the run was over: ${outcome.lostInstances.join(', ')}`);
    if (outcome.ended) console.log(`Ended: ${describeEnded(outcome.ended)}.`);
    if (outcome.leftRunning?.length && !summary.kept) console.log(`Left running: ${outcome.leftRunning.join(', ')}; end them with \`lockstep down ${outcome.runId}\``);
    console.log(`Logs and results: lockstep logs ${outcome.runId}${args.store ? ` --store ${args.store}` : ''}`);
  }
  return outcome;
}

/** Downloads the run (or sweep) and prints its figures and metrics; a failure here never hides the run's own outcome. */
async function showResults(id: string, locator: string): Promise<void> {
  try {
    const { printSummary } = await import('../../results/results.ts');
    const { DEFAULT_RESULTS_DIR } = await import('../../results/download.ts');
    const report = await withStore(locator, (store) => printSummary({ id, store, failuresListedAbove: true }));
    // A sweep is its record plus one folder per run.
    const where = report.kind === 'sweep' ? `${DEFAULT_RESULTS_DIR}/sweeps/${id}.json and one folder per run in ${DEFAULT_RESULTS_DIR}/` : `${DEFAULT_RESULTS_DIR}/${id}/`;
    console.log(`Results: ${where} (charts: lockstep results ${id} --html report.html)`);
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
