/**
 * Which instances failed to boot, and why. An instance has booted once its agent has reported (its
 * instance record is in the store). One that has not reported has failed:
 *
 * - as soon as its boot script uploaded a boot log (it does that when a boot step fails, and says
 *   which step);
 * - or at `timeouts.boot` after the launch: then the provider's console output, when it has one,
 *   shows what the machine did (EC2's serial console).
 *
 * The decision is a pure function (`bootVerdict`); `BootWatch` reads the store and the provider.
 */
import { layout } from '../core/layout.ts';
import { hasConsoleOutput, type Provider } from '../provider/provider.ts';
import type { Store } from '../store/store.ts';
import { formatDuration } from '../util/duration.ts';

export interface BootFailure {
  readonly instanceId: string;
  readonly region?: string;
  /** Where `log` comes from: the boot script's log in the store, the provider's console output, or nothing. */
  readonly source: 'boot-log' | 'console' | 'none';
  /** Why, in one line: the failed boot step, or that it did not report in time. */
  readonly reason: string;
  /** The last lines of the boot log or console output ('' for none). */
  readonly log: string;
}

export interface BootState {
  readonly launched: readonly string[];
  readonly reported: ReadonlySet<string>;
  /** Instances whose boot log is in the store. */
  readonly withBootLog: ReadonlySet<string>;
  /** Instances already declared failed. */
  readonly failed: ReadonlySet<string>;
  readonly now: number;
  readonly deadline: number;
}

/** The instances that failed to boot since the last verdict, and why. */
export function bootVerdict(state: BootState): Array<{ instanceId: string; because: 'boot-log' | 'timeout' }> {
  const verdict: Array<{ instanceId: string; because: 'boot-log' | 'timeout' }> = [];
  for (const instanceId of state.launched) {
    if (state.reported.has(instanceId) || state.failed.has(instanceId)) continue;
    if (state.withBootLog.has(instanceId)) verdict.push({ instanceId, because: 'boot-log' });
    else if (state.now >= state.deadline) verdict.push({ instanceId, because: 'timeout' });
  }
  return verdict;
}

const LOG_LINES = 25;

export class BootWatch {
  private readonly failures = new Map<string, BootFailure>();
  private readonly reported = new Set<string>();
  private readonly deadline: number;

  constructor(
    private readonly store: Store,
    private readonly provider: Provider,
    private readonly runId: string,
    private readonly launched: ReadonlyArray<{ readonly id: string; readonly region?: string }>,
    private readonly timeoutMs: number,
    startedAt = Date.now(),
  ) {
    this.deadline = startedAt + timeoutMs;
  }

  /** True while some instance has neither reported nor failed. */
  get pending(): boolean {
    return this.booting.length > 0;
  }

  /** Every instance that failed to boot so far. */
  get failed(): readonly BootFailure[] {
    return [...this.failures.values()];
  }

  /** Launched instances that have neither reported nor failed yet. */
  get booting(): string[] {
    return this.launched.filter((i) => !this.reported.has(i.id) && !this.failures.has(i.id)).map((i) => i.id);
  }

  /** Launched instances that have not failed to boot (reported, or still may). */
  get healthy(): number {
    return this.launched.length - this.failures.size;
  }

  /**
   * Looks at the instances still booting (a LIST of the instance records, one of the boot logs);
   * returns those that failed since the last call. Reads nothing once none is booting.
   */
  async check(now = Date.now()): Promise<BootFailure[]> {
    if (!this.pending) return [];
    for (const object of await this.store.list(layout.instancesPrefix(this.runId))) {
      this.reported.add(object.key.slice(object.key.lastIndexOf('/') + 1).replace(/\.json$/, ''));
    }
    if (!this.pending) return [];
    const prefix = layout.bootLogsPrefix(this.runId);
    const withBootLog = new Set(
      (await this.store.list(prefix)).map((o) => o.key.slice(prefix.length)).filter((name) => name.endsWith('.log')).map((name) => name.slice(0, -4)),
    );
    const verdict = bootVerdict({
      launched: this.launched.map((i) => i.id),
      reported: this.reported,
      withBootLog,
      failed: new Set(this.failures.keys()),
      now,
      deadline: this.deadline,
    });
    const found = await Promise.all(verdict.map(({ instanceId, because }) => this.explain(instanceId, because)));
    for (const failure of found) this.failures.set(failure.instanceId, failure);
    return found;
  }

  private async explain(instanceId: string, because: 'boot-log' | 'timeout'): Promise<BootFailure> {
    const region = this.launched.find((i) => i.id === instanceId)?.region;
    const base = { instanceId, ...(region ? { region } : {}) };
    if (because === 'boot-log') {
      const text = Buffer.from((await this.store.get(layout.bootLog(this.runId, instanceId))) ?? new Uint8Array()).toString('utf8');
      const failedLine = text
        .split('\n')
        .reverse()
        .find((line) => line.includes('FAILED at step'));
      return {
        ...base,
        source: 'boot-log',
        reason: failedLine ? failedLine.slice(failedLine.indexOf('FAILED at step')).replace(/^FAILED at/, 'boot failed at') : 'its boot script reported a failure',
        log: lastLines(text),
      };
    }
    const reason = `did not report within timeouts.boot (${formatDuration(this.timeoutMs)})`;
    const output = hasConsoleOutput(this.provider) ? await this.provider.consoleOutput(instanceId).catch(() => undefined) : undefined;
    return output ? { ...base, source: 'console', reason, log: lastLines(output) } : { ...base, source: 'none', reason, log: '' };
  }
}

function lastLines(text: string): string {
  return text.replace(/\s+$/, '').split('\n').slice(-LOG_LINES).join('\n');
}

/** Boot failures for people: one line per instance, then its log, indented. */
export function formatBootFailures(failures: readonly BootFailure[]): string {
  const lines = [`${failures.length} instance(s) did not boot:`];
  for (const f of failures) {
    lines.push(`  ${f.instanceId}${f.region ? ` (${f.region})` : ''}: ${f.reason}`);
    if (f.source === 'none') {
      lines.push('    no boot log in the store, and no console output');
      continue;
    }
    lines.push(f.source === 'boot-log' ? '    its boot log (last lines):' : '    no boot log in the store; its console output (last lines):');
    lines.push(...(f.log ? f.log.split('\n') : ['(empty)']).map((line) => `      ${line}`));
  }
  return lines.join('\n');
}
