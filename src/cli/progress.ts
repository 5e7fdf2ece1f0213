import type { ListrTaskWrapper } from 'listr2';
import type { RunEvent, RunOutcome } from '../controller/run.ts';
import { progressOf, type RepeatProgress } from '../controller/progress.ts';

interface Deferred {
  promise: Promise<void>;
  settled: boolean;
  resolve(): void;
  reject(error: unknown): void;
}

/** Rejects the tasks a failed run never reached: they show as skipped, not failed. */
class NotReached extends Error {}

/** Marks a task failed without a message of its own: the summary (or the error line) says why, once. */
const FAILED = (): Error => new Error('');

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

type Start = (onEvent: (event: RunEvent) => void, stopDisplay: () => Promise<void>) => Promise<RunOutcome>;

/**
 * Shows a run's progress on stderr (beside the failures; stdout keeps the summary and results): a
 * live task list on a terminal, else one plain line per step.
 */
export function runWithProgress(instances: number, repeats: number, start: Start): Promise<RunOutcome> {
  // A terminal that says it has no columns (a bare pseudo-terminal) would get the list one character a line.
  return process.stderr.isTTY && (process.stderr.columns ?? 0) > 0 ? runWithTaskList(instances, repeats, start) : runWithLines(instances, start);
}

function counts(r: RepeatProgress, instances: number): string {
  return `ready ${r.ready}/${instances} · done ${r.succeeded + r.failed}/${r.members ?? instances}${r.failed ? ` · ${r.failed} failed` : ''}`;
}

/** The repeats as the event tells them: aggregates while the run is followed, the whole status at the end. */
function repeatsOf(event: RunEvent & { type: 'progress' | 'status' }): readonly RepeatProgress[] {
  return (event.type === 'progress' ? event.progress : progressOf(event.status)).repeats;
}

/** Plain lines, without colour or cursor movement: for a log file or a pipe. */
async function runWithLines(instances: number, start: Start): Promise<RunOutcome> {
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const shown = new Map<number, string>();
  return start((event) => {
    if (event.type === 'phase') {
      if (event.phase !== 'manifest') say(`${event.phase[0]!.toUpperCase()}${event.phase.slice(1)}: ${event.detail}`);
    } else if (event.type === 'launched') {
      say(`Launched ${event.instances.length} instances: run ${event.runId}`);
    } else if (event.type === 'boot-failed') {
      // The summary shows their boot logs.
      for (const f of event.failures) say(`Did not boot: ${f.instanceId}${f.region ? ` (${f.region})` : ''}: ${f.reason}; ended`);
    } else {
      for (const r of repeatsOf(event)) {
        const state = r.state === 'waiting' ? undefined : r.state;
        if (!state || shown.get(r.repeat) === state) continue;
        shown.set(r.repeat, state);
        say(`Repeat ${r.repeat}: ${state}${state === 'not run' ? '' : ` (${counts(r, instances)})`}`);
      }
    }
  }, async () => {});
}

/** A live task list: store, artifact, agent, launch, then each repeat with live counts. */
async function runWithTaskList(instances: number, repeats: number, start: Start): Promise<RunOutcome> {
  const phases = { store: deferred(), agent: deferred(), launch: deferred() };
  const repeatDone = Array.from({ length: repeats }, deferred);
  const repeatTasks: Array<ListrTaskWrapper<unknown, never, never> | undefined> = [];
  const details: Record<string, string> = {};
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
    } else if (event.type === 'boot-failed') {
      // The summary names them, with their boot logs.
    } else {
      for (const r of repeatsOf(event)) {
        const task = repeatTasks[r.repeat - 1];
        if (task) task.title = `Repeat ${r.repeat}: ${counts(r, instances)}`;
        if (r.state === 'done') repeatDone[r.repeat - 1]!.resolve();
        if (r.state === 'failed') repeatDone[r.repeat - 1]!.reject(FAILED());
        if (r.state === 'aborted' || r.state === 'not run') repeatDone[r.repeat - 1]!.reject(new NotReached(r.state));
      }
    }
  };
  // colorette (listr2's colours) leaves them out with NO_COLOR.
  const { Listr, ListrLogger, ProcessOutput, LISTR_DEFAULT_RENDERER_STYLE } = await import('listr2');
  const logger = new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr), ...LISTR_DEFAULT_RENDERER_STYLE });
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
      rendererOptions: { collapseErrors: false, logger },
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
    // The first task still open shows that it failed (the error line says why); the ones after it were not reached.
    const all = [...Object.values(phases), ...repeatDone];
    all.find((d) => !d.settled)?.reject(FAILED());
    for (const d of all) if (!d.settled) d.reject(new NotReached('not reached'));
    throw error;
  } finally {
    for (const d of [...Object.values(phases), ...repeatDone]) if (!d.settled) d.reject(new NotReached('not reached'));
    await shown;
  }
}
