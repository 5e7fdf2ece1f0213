import { setTimeout as delay } from 'node:timers/promises';
import { blockedPeers, type CommandRun, type FaultEvent, type FaultRecord } from '../../core/faults.ts';
import { preciseNow } from '../../util/clock.ts';
import type { ExecResult } from '../exec.ts';

/**
 * One node's faults in one repeat, from T until its command is over for good: each window opens at
 * T + offset on this machine's clock and is healed at its end, or earlier when the command has
 * ended (`end`) or the run is aborted (`abort`). No controller in the loop.
 *
 * The command may have several runs: a `restart` kills the running one and starts the next after
 * its downtime; a `kill` ends it, for good unless a restart is still to come. The command is over
 * when a run ends by itself (exit, timeout, abort), or when a killed run has no restart left.
 */

/** How the faults are done on this machine (nftables, signals, netem): the session decides when. */
export interface FaultMechanics {
  /** Cuts this node from the peers at `addresses` until `heal`. */
  partition(event: FaultEvent, addresses: readonly string[]): Promise<AppliedWindow>;
  /** Changes this node's egress until `heal`. */
  network(event: FaultEvent): Promise<AppliedWindow>;
  /** Sends a signal to a process group. */
  signal(group: number, signal: NodeJS.Signals): void;
  /** Called with each run's process before the run starts (loopback: into the node's cgroup). */
  adopt?(pid: number): Promise<void>;
}

export interface AppliedWindow {
  readonly detail: string;
  heal(): Promise<void>;
}

/** A run of the command that has started. */
export interface RunningCommand {
  /** Its process group (the wrapper's pid). */
  readonly pid: number | undefined;
  readonly ended: Promise<ExecResult>;
}

/** A run of the command held at its gate (`prepareCommand`). */
export interface HeldCommand {
  readonly pid: number | undefined;
  release(): Promise<ExecResult>;
  cancel(): void;
}

export interface FaultSessionOptions {
  /** This node's events in this repeat (`eventsOf`). */
  readonly events: readonly FaultEvent[];
  /** The start time T (epoch ms). */
  readonly startAt: number;
  readonly rank: number;
  /** The members' addresses in rank order. */
  readonly addresses: readonly string[];
  readonly mechanics: FaultMechanics;
  /** Prepares the next run of the command (a restart), with what is left of its time limit. */
  readonly prepareRun: () => HeldCommand;
  readonly signal?: AbortSignal;
  readonly log?: (message: string) => void;
}

export interface FaultOutcome {
  /** Every run of the command, in order (one unless it was restarted). */
  readonly results: readonly ExecResult[];
  readonly runs: readonly CommandRun[];
  /** What this node did about each of its fault windows. */
  readonly faults: readonly FaultRecord[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type HealReason = NonNullable<FaultRecord['healedBy']>;

interface Run extends RunningCommand {
  /** The event that killed it, if one did. */
  killedBy?: string;
}

const SKIPPED: Record<'end' | 'abort', string> = { end: 'the command had ended', abort: 'the run was aborted' };

export class FaultSession {
  private readonly records: Mutable<FaultRecord>[] = [];
  private readonly results: ExecResult[] = [];
  private readonly runs: CommandRun[] = [];
  private readonly open = new Map<string, { heal: () => Promise<void>; record: Mutable<FaultRecord> }>();
  /** Heals under way, by event id: whoever asks for the same one again waits for it. */
  private readonly healing = new Map<string, Promise<void>>();
  private readonly done = new AbortController();
  private current: Run | undefined;
  private ending: 'end' | 'abort' | undefined;
  private restartsLeft: number;
  private readonly tasks: Promise<void>[];
  private readonly over: Promise<void>;
  private settle!: () => void;
  private readonly log: (message: string) => void;

  /** Starts following `first` (released at T) and arms every window. */
  constructor(
    private readonly options: FaultSessionOptions,
    first: RunningCommand,
  ) {
    this.log = options.log ?? (() => {});
    this.over = new Promise((resolve) => (this.settle = resolve));
    this.restartsLeft = options.events.filter((e) => e.action === 'restart').length;
    this.follow(first);
    const onAbort = () => void this.end('abort');
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    this.done.signal.addEventListener('abort', () => options.signal?.removeEventListener('abort', onAbort), { once: true });
    this.tasks = options.events.map((event) => this.play(event));
  }

  /** Resolves once the command is over for good and every window is healed. */
  async finished(): Promise<FaultOutcome> {
    await this.over;
    await Promise.allSettled(this.tasks);
    await Promise.allSettled(this.healing.values());
    return { results: [...this.results], runs: [...this.runs], faults: this.records.map((r) => ({ ...r })) };
  }

  /** Ends the session now: heals what is applied and skips what is to come. Idempotent. */
  async end(reason: 'end' | 'abort'): Promise<void> {
    if (this.ending) return;
    this.ending = reason;
    this.done.abort(reason);
    await Promise.all([...this.open.keys()].map((id) => this.heal(id, reason)));
    if (!this.current) this.settle();
  }

  private follow(run: Run): void {
    this.current = run;
    void run.ended.then(
      (result) => this.ended(run, result),
      (error: unknown) => {
        this.log(`the command could not run: ${String(error)}`);
        if (this.current === run) this.current = undefined;
        void this.end('end');
        if (this.ending) this.settle();
      },
    );
  }

  private ended(run: Run, result: ExecResult): void {
    this.results.push(result);
    this.runs.push({
      startedAt: result.startedAt,
      endedAt: result.endedAt,
      exitCode: result.exitCode,
      signal: result.signal,
      ...(run.killedBy ? { endedBy: run.killedBy } : {}),
    });
    if (this.current === run) this.current = undefined;
    if (this.ending) return this.settle();
    // Killed by a fault, with a restart still to come: the node is down, not done.
    if (run.killedBy && this.restartsLeft > 0) return;
    void this.end('end');
  }

  private async play(event: FaultEvent): Promise<void> {
    const dueAt = this.options.startAt + event.atMs;
    const record: Mutable<FaultRecord> = { id: event.id, action: event.action, dueAt, ...(event.durationMs !== undefined ? { healDueAt: dueAt + event.durationMs } : {}) };
    this.records.push(record);
    try {
      if (!(await this.until(dueAt))) {
        record.skipped = SKIPPED[this.ending ?? 'end'];
        return;
      }
      switch (event.action) {
        case 'kill':
          return await this.kill(event, record);
        case 'restart':
          return await this.restart(event, record);
        case 'pause':
          return await this.window(event, record, async () => {
            const run = this.current;
            if (run?.pid === undefined) return undefined;
            const group = run.pid;
            this.options.mechanics.signal(group, 'SIGSTOP');
            return { detail: `SIGSTOP to process group ${group}`, heal: async () => this.options.mechanics.signal(group, 'SIGCONT') };
          });
        case 'partition': {
          const peers = blockedPeers(event.partition!, this.options.rank).filter((rank) => rank < this.options.addresses.length);
          return await this.window(event, record, async () =>
            peers.length === 0 ? undefined : this.options.mechanics.partition(event, peers.map((rank) => this.options.addresses[rank]!)),
          );
        }
        case 'network':
          return await this.window(event, record, () => this.options.mechanics.network(event));
      }
    } catch (error) {
      record.error = error instanceof Error ? error.message : String(error);
      this.log(`fault ${event.id} (${event.action}): ${record.error}`);
    } finally {
      if (event.action === 'restart') this.restartDone();
    }
  }

  /** A fault with a window: apply, hold until the window's end (or the session's), heal. */
  private async window(event: FaultEvent, record: Mutable<FaultRecord>, apply: () => Promise<AppliedWindow | undefined>): Promise<void> {
    const applied = await apply();
    if (!applied) {
      record.skipped = event.action === 'partition' ? 'no peer of this node is on another side in this repeat' : 'the command was not running';
      return;
    }
    record.appliedAt = preciseNow();
    record.detail = applied.detail;
    this.log(`fault ${event.id}: ${event.action} applied (${applied.detail})`);
    this.open.set(event.id, { heal: applied.heal, record });
    const inTime = await this.until(record.healDueAt!);
    await this.heal(event.id, inTime ? 'window' : (this.ending ?? 'end'));
  }

  private heal(id: string, reason: HealReason): Promise<void> {
    const window = this.open.get(id);
    if (!window) return this.healing.get(id) ?? Promise.resolve();
    this.open.delete(id);
    const healing = this.healNow(id, window, reason);
    this.healing.set(id, healing);
    return healing;
  }

  private async healNow(id: string, window: { heal: () => Promise<void>; record: Mutable<FaultRecord> }, reason: HealReason): Promise<void> {
    try {
      await window.heal();
      window.record.healedAt = preciseNow();
      window.record.healedBy = reason;
      this.log(`fault ${id}: healed (${reason})`);
    } catch (error) {
      window.record.healError = error instanceof Error ? error.message : String(error);
      this.log(`fault ${id}: could not heal: ${window.record.healError}`);
    }
  }

  private async kill(event: FaultEvent, record: Mutable<FaultRecord>): Promise<void> {
    const run = this.current;
    if (run?.pid === undefined) {
      record.skipped = 'the command was not running';
      return;
    }
    run.killedBy = event.id;
    this.options.mechanics.signal(run.pid, 'SIGKILL');
    record.appliedAt = preciseNow();
    record.detail = `SIGKILL to process group ${run.pid}`;
    this.log(`fault ${event.id}: killed the command (process group ${run.pid})`);
    await run.ended.catch(() => {});
  }

  private async restart(event: FaultEvent, record: Mutable<FaultRecord>): Promise<void> {
    const run = this.current;
    const words: string[] = [];
    if (run?.pid !== undefined) {
      run.killedBy = event.id;
      this.options.mechanics.signal(run.pid, 'SIGKILL');
      words.push(`SIGKILL to process group ${run.pid}`);
      await run.ended.catch(() => {});
    } else {
      words.push('the command was down already');
    }
    record.appliedAt = preciseNow();
    if (!(await this.until(record.healDueAt!))) {
      record.detail = `${words.join('; ')}; not started again: ${SKIPPED[this.ending ?? 'end']}`;
      return;
    }
    const held = this.options.prepareRun();
    if (held.pid !== undefined) await this.options.mechanics.adopt?.(held.pid);
    if (this.ending) {
      held.cancel();
      record.detail = `${words.join('; ')}; not started again: ${SKIPPED[this.ending]}`;
      return;
    }
    this.follow({ pid: held.pid, ended: held.release() });
    record.healedAt = preciseNow();
    record.healedBy = 'window';
    record.detail = `${words.join('; ')}; started again as process group ${held.pid}`;
    this.log(`fault ${event.id}: the command started again (process group ${held.pid})`);
  }

  private restartDone(): void {
    this.restartsLeft--;
    if (this.restartsLeft === 0 && !this.current && !this.ending) void this.end('end');
  }

  /** Waits until `at` (epoch ms); false when the session ended first. */
  private async until(at: number): Promise<boolean> {
    if (this.ending) return false;
    const wait = at - Date.now();
    if (wait > 0) {
      try {
        await delay(wait, undefined, { signal: this.done.signal });
      } catch {
        return false;
      }
    }
    return !this.ending;
  }
}
