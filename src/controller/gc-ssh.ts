/**
 * The SSH half of `lockstep gc`: on every host of an inventory, what ended runs left behind. Loads
 * ssh2: `gc.ts` imports this module only when asked to look at SSH hosts.
 */
import { resolve } from 'node:path';
import type { SshError } from '../provider/ssh/connection.ts';
import { scanHost, stopInstance } from '../provider/ssh/host.ts';
import { jumpTarget } from '../provider/ssh/provider.ts';
import { forEachHost, SshPool } from '../provider/ssh/pool.ts';
import { defaultKnownHostsFile } from '../provider/ssh/known-hosts.ts';
import { agentLogPath, readSshRunStates, removeSshRunState } from '../provider/ssh/state.ts';
import type { StopReport } from '../core/host-control.ts';
import { writeFileAtomic } from '../util/atomic-write.ts';
import { loadInventory, selectHosts } from '../spec/inventory.ts';
import { runOverInStore, type LocalEndReason } from './gc.ts';

export interface SshGcOptions {
  /** An Ansible YAML inventory of the hosts to look at. */
  readonly inventory: string;
  /** Only the hosts of this inventory group (or this host). Default: every host. */
  readonly hosts?: string;
  /** Default `~/.ssh/known_hosts`. */
  readonly knownHosts?: string;
  readonly hostKeys?: 'strict' | 'accept-new';
  /** A bastion, `user@host[:port]`. */
  readonly jump?: string;
  /** Where runs live on the hosts, as in the provider (default `.lockstep`; per host `lockstep_work_dir`). */
  readonly workDir?: string;
  readonly node?: string;
  readonly concurrency?: number;
  /** This machine's record of SSH runs (default `$LOCKSTEP_HOME` or `~/.lockstep`): runs with nothing left are forgotten. */
  readonly home: string;
  readonly cwd?: string;
  readonly now: Date;
  readonly dryRun: boolean;
}

export interface SshGcInstance {
  readonly host: string;
  readonly runId: string;
  readonly instanceId: string;
}

export interface SshGcReport {
  readonly hosts: number;
  /** Agents still running whose run is over or past its expiry: ended (their folders removed). */
  readonly ended: ReadonlyArray<SshGcInstance & { readonly reason: LocalEndReason }>;
  /** Folders of instances whose agent is gone, removed with the processes and privileged rules it left. */
  readonly removed: ReadonlyArray<SshGcInstance & { readonly processes: number; readonly undone: number }>;
  /** Agents still running in runs that are not over: left alone. */
  readonly running: number;
  readonly unreachable: ReadonlyArray<{ readonly host: string; readonly error: string }>;
}

/**
 * Looks at every host of the inventory: ends agents whose run is over (its store says so) or past
 * its expiry, and removes what instances whose agent is gone left: processes that still carry
 * their identity, network emulation or fault rules (the journal of undo commands), and the folder.
 * A host that cannot be reached is reported, not fatal.
 */
export async function collectSshGarbage(options: SshGcOptions): Promise<SshGcReport> {
  const cwd = options.cwd ?? process.cwd();
  const hosts = selectHosts(loadInventory(resolve(cwd, options.inventory)), options.hosts);
  const pool = new SshPool({
    knownHosts: options.knownHosts ? resolve(cwd, options.knownHosts) : defaultKnownHostsFile(),
    hostKeys: options.hostKeys ?? 'strict',
    ...(options.jump ? { jump: jumpTarget(options.jump, hosts.find((h) => h.keyFile)?.keyFile) } : {}),
    concurrency: options.concurrency ?? 32,
  });
  const ended: Array<SshGcInstance & { reason: LocalEndReason }> = [];
  const removed: Array<SshGcInstance & { processes: number; undone: number }> = [];
  let running = 0;
  const overByRun = new Map<string, Promise<LocalEndReason | undefined>>();
  try {
    const failures = await forEachHost(hosts, options.concurrency ?? 32, async (host) => {
      const target = { name: host.name, host: host.host, port: host.port, ...(host.user ? { user: host.user } : {}), ...(host.keyFile ? { keyFile: host.keyFile } : {}) };
      const node = host.node ?? options.node ?? 'node';
      const connection = await pool.connection(target);
      for (const instance of await scanHost(connection, node, host.workDir ?? options.workDir ?? '.lockstep')) {
        const which = { host: host.name, runId: instance.runId, instanceId: instance.instanceId };
        const keepLog = async (report: StopReport) => {
          if (report.agentLog !== undefined) await writeFileAtomic(agentLogPath(options.home, instance.runId, instance.instanceId), report.agentLog);
          return report;
        };
        if (instance.alive) {
          const expired = instance.expiresAt !== '' && Date.parse(instance.expiresAt) <= options.now.getTime();
          if (!overByRun.has(instance.runId)) overByRun.set(instance.runId, instance.store ? runOverInStore(instance.store, instance.runId) : Promise.resolve(undefined));
          const reason: LocalEndReason | undefined = expired ? 'expired' : await overByRun.get(instance.runId);
          if (!reason) {
            running++;
            continue;
          }
          if (!options.dryRun) await keepLog(await stopInstance(connection, node, instance.dir, { graceMs: 10_000, remove: true }));
          ended.push({ ...which, reason });
          continue;
        }
        const report = options.dryRun ? { leftoversKilled: instance.processes, undone: 0 } : await keepLog(await stopInstance(connection, node, instance.dir, { graceMs: 0, remove: true }));
        removed.push({ ...which, processes: report.leftoversKilled, undone: report.undone });
      }
    });
    // Runs this machine still remembers whose every instance is gone from the hosts looked at.
    if (!options.dryRun) {
      const cleared = new Set([...ended, ...removed].map((i) => `${i.runId}/${i.instanceId}`));
      for (const state of await readSshRunStates(options.home)) {
        if (state.instances.length > 0 && state.instances.every((i) => cleared.has(`${state.runId}/${i.id}`))) await removeSshRunState(options.home, state.runId);
      }
    }
    return {
      hosts: hosts.length,
      ended,
      removed,
      running,
      unreachable: failures.map(({ item, error }) => ({ host: item.name, error: (error as SshError).message })),
    };
  } finally {
    await pool.close();
  }
}
