import { forEachLimited } from '../../util/pool.ts';
import { connect, type HostKeyPolicy, type SshConnection, type SshError, type SshTarget } from './connection.ts';

export interface PoolOptions extends HostKeyPolicy {
  /** A bastion every connection goes through. */
  readonly jump?: SshTarget;
  /** At most this many hosts are connected to at once. */
  readonly concurrency: number;
  readonly onRetry?: (error: SshError, attempt: number) => void;
}

/**
 * One SSH connection per host, opened when first needed and opened again after it dropped; the
 * bastion's connection is shared by all.
 */
export class SshPool {
  readonly #connections = new Map<string, Promise<SshConnection>>();
  #jump: Promise<SshConnection> | undefined;
  #closed = false;
  /** Connections being opened, and those waiting for a turn: at most `concurrency` connect at once (reconnects too). */
  #connecting = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(readonly options: PoolOptions) {}

  connection(target: SshTarget): Promise<SshConnection> {
    if (this.#closed) return Promise.reject(new Error('the SSH connections are closed'));
    const key = `${target.user ?? ''}@${target.host}:${target.port}`;
    const existing = this.#connections.get(key);
    if (existing) {
      // A failed or dropped connection is made again.
      const reused = existing.then((c) => (c.open ? c : this.#open(key, target)));
      this.#connections.set(key, reused);
      return reused;
    }
    return this.#open(key, target);
  }

  #connect(target: SshTarget, jump?: SshConnection): Promise<SshConnection> {
    const { knownHosts, hostKeys, onRetry } = this.options;
    return connect(target, { knownHosts, hostKeys, onRetry, jump });
  }

  #open(key: string, target: SshTarget): Promise<SshConnection> {
    const opening = this.#limited(async () => this.#connect(target, this.options.jump ? await this.#bastion() : undefined));
    this.#connections.set(key, opening);
    // A failure is not kept: the next caller tries again.
    opening.catch(() => {
      if (this.#connections.get(key) === opening) this.#connections.delete(key);
    });
    return opening;
  }

  async #limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.#connecting >= this.options.concurrency) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#connecting++;
    try {
      return await work();
    } finally {
      // The turn passes to the next in line, or is given back.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#connecting--;
    }
  }

  #bastion(): Promise<SshConnection> {
    const jump = this.options.jump!;
    const previous = this.#jump;
    const next = previous ? previous.then((c) => (c.open ? c : this.#connect(jump)), () => this.#connect(jump)) : this.#connect(jump);
    this.#jump = next;
    next.catch(() => {
      if (this.#jump === next) this.#jump = undefined;
    });
    return next;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#connections.values(), ...(this.#jump ? [this.#jump] : [])];
    this.#connections.clear();
    await Promise.all(
      all.map(async (opening) => {
        const connection = await opening.catch(() => undefined);
        if (!connection) return;
        connection.close();
        await connection.closed;
      }),
    );
  }
}

/** Runs `task` for each host's item, at most `limit` at once; unlike `forEachLimited`, every item runs, and the failures are returned. */
export async function forEachHost<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<Array<{ item: T; error: unknown }>> {
  const failures: Array<{ item: T; error: unknown }> = [];
  await forEachLimited(items, limit, async (item) => {
    try {
      await task(item);
    } catch (error) {
      failures.push({ item, error });
    }
  });
  return failures;
}
