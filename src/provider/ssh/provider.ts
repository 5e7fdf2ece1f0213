import { userInfo } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { layout } from '../../core/layout.ts';
import type { RunManifest } from '../../core/manifest.ts';
import { PRIVILEGED_TOOLS, privilegedToolsFor } from '../../core/privileged-tools.ts';
import { JUMP, type SshProviderSpec } from '../../spec/provider-ssh.ts';
import { openStore } from '../../store/open.ts';
import { getJson } from '../../store/store.ts';
import { lockstepHome } from '../local/state.ts';
import type { InstanceInfo, LaunchRequest, Provider } from '../provider.ts';
import { LaunchError } from '../provider.ts';
import { describeTarget, SshError, type SshTarget } from './connection.ts';
import { defaultKnownHostsFile } from './known-hosts.ts';
import { instanceDir, instanceStatus, placeAgent, probeHost, runHostSetup, startAgent, stopInstance, watchAgent, type BundleRoute, type BundleSource, type HostFacts } from './host.ts';
import { instanceIds, loadInventory, selectHosts, type InventoryHost } from '../../spec/inventory.ts';
import { forEachHost, SshPool } from './pool.ts';
import { writeFileAtomic } from '../../util/atomic-write.ts';
import { agentLogPath, readSshRunStates, removeSshRunState, writeSshRunState, type SshInstanceState, type SshRunState } from './state.ts';

export interface SshProviderOptions {
  /** Where this machine keeps what it knows of SSH runs (default `$LOCKSTEP_HOME` or `~/.lockstep`). */
  readonly home?: string;
  /** Relative paths of the provider spec (inventory, knownHosts) are relative to this. Default: the current folder. */
  readonly cwd?: string;
  /** How long an agent gets to stop by itself (and upload its command's logs) when its instance is ended. Default 10 s. */
  readonly stopGraceMs?: number;
}

/** Hosts that cannot be used as they are: each named with what to do. Bad input: nothing was started on any host. */
export class SshLaunchError extends LaunchError {
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly problems: readonly SshError[],
  ) {
    super(message, []);
  }
}

/** The bastion of `provider.jump` (`user@host:port`). */
export function jumpTarget(jump: string, keyFile?: string): SshTarget {
  const match = JUMP.exec(jump);
  if (!match) throw new SshError('bastion', 'unreachable', `\`provider.jump\`: expected \`user@host\` or \`user@host:port\`, got \`${jump}\``);
  return { name: `bastion ${jump}`, host: match[2]!, port: match[3] ? Number(match[3]) : 22, ...(match[1] ? { user: match[1] } : {}), ...(keyFile ? { keyFile } : {}) };
}

function targetOf(host: InventoryHost): SshTarget {
  return { name: host.name, host: host.host, port: host.port, ...(host.user ? { user: host.user } : {}), ...(host.keyFile ? { keyFile: host.keyFile } : {}) };
}

/** What the provider follows of an instance it started or was asked about. */
interface Tracked extends SshInstanceState {
  readonly runId: string;
  readonly expiresAt: Date;
  /** The connections of its run (host keys, bastion). */
  readonly pool: SshPool;
  ended: boolean;
}

/** How a run's hosts are reached; recorded with the run, so that another process reaches them the same way. */
type ConnectionSettings = Pick<SshRunState, 'hostKeys' | 'jump' | 'concurrency'>;

/**
 * Instances as agents on existing hosts, reached over SSH (one connection per host, at most
 * `concurrency` connecting at once). An instance is the agent started detached on its host; ending
 * it ends the agent and whatever it started, never the host. See README "Bring your own machines".
 */
export function createSshProvider(spec: SshProviderSpec, options: SshProviderOptions = {}): Provider {
  const home = options.home ?? lockstepHome();
  const cwd = options.cwd ?? process.cwd();
  const stopGraceMs = options.stopGraceMs ?? 10_000;
  const hostKeys = { knownHosts: spec.knownHosts ? resolve(cwd, spec.knownHosts) : defaultKnownHostsFile(), hostKeys: spec.hostKeys };
  let progress: ((message: string) => void) | undefined;
  /** One pool of connections per way of reaching hosts: this spec's, and those of runs started elsewhere. */
  const pools = new Map<string, SshPool>();
  const poolFor = (settings: ConnectionSettings): SshPool => {
    const key = JSON.stringify([settings.hostKeys, settings.jump, settings.concurrency]);
    let pool = pools.get(key);
    if (!pool) {
      pool = new SshPool({
        ...settings.hostKeys,
        ...(settings.jump ? { jump: settings.jump } : {}),
        concurrency: settings.concurrency,
        onRetry: (error, attempt) => progress?.(`${error.host}: ${error.reason}, trying again (${attempt})`),
      });
      pools.set(key, pool);
    }
    return pool;
  };
  const tracked = new Map<string, Tracked>();
  const eachHost = <T,>(items: readonly T[], task: (item: T) => Promise<void>) => forEachHost(items, spec.concurrency, task);
  const watchers: Promise<void>[] = [];
  const disposed = new AbortController();

  /** Follows an instance's agent until it ends, connecting again whenever the connection drops. */
  const watch = async (instance: Tracked) => {
    for (let failures = 0; !instance.ended && !disposed.signal.aborted; failures++) {
      try {
        const connection = await instance.pool.connection(instance.target);
        if (await watchAgent(connection, instance.node, instance.dir!)) instance.ended = true;
        else if (connection.open) failures = 0;
      } catch {
        // Unreachable for now: the agent goes on by itself; try again.
      }
      if (!instance.ended) await delay(Math.min(10_000, 500 * 2 ** Math.min(failures, 5)), undefined, { signal: disposed.signal }).catch(() => {});
    }
  };

  /** The instances of `runId` (or of every run this machine knows), tracked or from the state files. */
  const instancesOf = async (runId?: string): Promise<Tracked[]> => {
    const found = [...tracked.values()].filter((i) => runId === undefined || i.runId === runId);
    const known = new Set(found.map((i) => `${i.runId}/${i.id}`));
    for (const state of await readSshRunStates(home, runId)) {
      for (const instance of state.instances) {
        if (known.has(`${state.runId}/${instance.id}`) || !instance.dir) continue;
        found.push({ ...instance, runId: state.runId, expiresAt: new Date(state.expiresAt), pool: poolFor(state), ended: false });
      }
    }
    return found;
  };

  return {
    kind: 'ssh',

    async launch(request: LaunchRequest): Promise<InstanceInfo[]> {
      progress = request.onProgress;
      const inventoryPath = isAbsolute(spec.inventory) ? spec.inventory : resolve(cwd, spec.inventory);
      const hosts = selectHosts(loadInventory(inventoryPath), spec.hosts);
      if (hosts.length < request.count) {
        throw new SshLaunchError(`The inventory ${inventoryPath} has ${hosts.length} host(s)${spec.hosts ? ` in \`${spec.hosts}\`` : ''}, fewer than the ${request.count} instances: add hosts or lower \`instances\``, []);
      }
      const chosen = hosts.slice(0, request.count);
      const ids = instanceIds(chosen);
      // The bastion logs in with the hosts' key when it has none of its own (then ssh-agent and the default keys).
      const bastion = spec.jump ? jumpTarget(spec.jump, chosen.find((h) => h.keyFile)?.keyFile) : undefined;
      const settings: ConnectionSettings = { hostKeys, ...(bastion ? { jump: bastion } : {}), concurrency: spec.concurrency };
      const pool = poolFor(settings);

      // What the hosts need: the tools the run runs as root, and the store (a shared folder, or the agent sent over SFTP).
      const store = await openStore(request.boot.store);
      let manifest: RunManifest | undefined;
      let bundle: BundleSource;
      try {
        manifest = await getJson<RunManifest>(store, layout.manifest(request.runId));
        if (store.locator.startsWith('file:')) {
          bundle = { sharedPath: `${fileURLToPath(store.locator)}/${request.boot.agentKey}` };
        } else {
          const bytes = await store.get(request.boot.agentKey);
          if (!bytes) throw new LaunchError(`The agent bundle ${request.boot.agentKey} is not in the store`, []);
          // Each host fetches it from the store where it can; over SFTP from here where it cannot.
          bundle = { bytes: Buffer.from(bytes), ...(store.urlFor ? { url: await store.urlFor(request.boot.agentKey, 3600) } : {}) };
        }
      } finally {
        await store.dispose();
      }
      const tools = manifest ? privilegedToolsFor(manifest) : [];
      const storePath = 'sharedPath' in bundle ? fileURLToPath(store.locator) : undefined;

      const instances: Tracked[] = chosen.map((host, index) => ({
        id: ids[index]!,
        runId: request.runId,
        target: targetOf(host),
        node: host.node ?? spec.node,
        expiresAt: request.boot.expiresAt,
        pool,
        ended: false,
      }));
      const state = (): SshRunState => ({
        runId: request.runId,
        createdAt: new Date().toISOString(),
        expiresAt: request.boot.expiresAt.toISOString(),
        ...settings,
        instances: instances.map(({ id, target, node, dir, address }) => ({ id, target, node, ...(dir ? { dir } : {}), ...(address ? { address } : {}) })),
      });

      // 1. Every host is reached and checked before anything is started on any.
      const facts = new Map<string, HostFacts>();
      let connected = 0;
      const unusable = await eachHost(instances, async (instance) => {
        const host = chosen[instances.indexOf(instance)]!;
        const connection = await pool.connection(instance.target);
        if (spec.setup) await runHostSetup(connection, spec.setup, manifest?.timeouts.setupMs || 1_800_000);
        const found = await probeHost(connection, { node: instance.node, tools, ...(storePath ? { storePath } : {}) });
        checkHost(instance.target, found, tools, storePath);
        facts.set(instance.id, found);
        Object.assign(instance, {
          dir: instanceDir(found.home, host.workDir ?? spec.workDir, request.runId, instance.id),
          address: host.address ?? found.reachedAt ?? host.host,
        });
        request.onProgress?.(`reached ${++connected}/${instances.length} hosts`);
      });
      const problems = unusable.map(({ error }) => (error instanceof SshError ? error : new SshError('?', 'start', (error as Error).message, { cause: error })));
      const seen = new Map<string, string>();
      for (const instance of instances) {
        if (!instance.address) continue;
        const other = seen.get(instance.address);
        if (other) problems.push(new SshError(instance.target.name, 'start', `${instance.target.name} and ${other} have the same address ${instance.address}: ranks are given by address, so each instance needs its own; remove one from the inventory, or give each its \`lockstep_address\``));
        seen.set(instance.address, instance.target.name);
      }
      if (problems.length > 0) {
        const lines = problems.map((p) => p.message);
        throw new SshLaunchError(
          lines.length === 1 ? `${lines[0]}; nothing was started` : `${lines.length} hosts cannot be used; nothing was started:\n  ${lines.join('\n  ')}`,
          problems,
        );
      }

      // 2. The agents start; if one cannot, those started are ended and their folders removed.
      await writeSshRunState(home, state());
      let started = 0;
      const routes = new Map<BundleRoute, number>();
      const failedStarts = await eachHost(instances, async (instance) => {
        const connection = await pool.connection(instance.target);
        const route = await placeAgent(connection, instance.node, instance.dir!, bundle);
        routes.set(route, (routes.get(route) ?? 0) + 1);
        await startAgent(
          connection,
          instance.node,
          {
            dir: instance.dir!,
            env: {
              LOCKSTEP_IDENTITY: 'env',
              LOCKSTEP_RUN_ID: request.runId,
              LOCKSTEP_STORE: request.boot.store,
              LOCKSTEP_INSTANCE_ID: instance.id,
              LOCKSTEP_ADDRESS: instance.address!,
              LOCKSTEP_EXPIRES_AT: request.boot.expiresAt.toISOString(),
              LOCKSTEP_WORKDIR: instance.dir!,
            },
            instance: { runId: request.runId, instanceId: instance.id, store: request.boot.store, expiresAt: request.boot.expiresAt.toISOString() },
          },
        );
        request.onProgress?.(`started ${++started}/${instances.length} agents`);
      });
      if (failedStarts.length > 0) {
        await eachHost(instances, async (instance) => {
          const connection = await pool.connection(instance.target);
          await stopInstance(connection, instance.node, instance.dir!, { graceMs: 0, remove: true });
        });
        await removeSshRunState(home, request.runId);
        const lines = failedStarts.map(({ item, error }) => `${item.target.name} (${describeTarget(item.target)}): ${(error as Error).message}`);
        throw new LaunchError(`Could not start the agent on ${lines.length} host(s); the others were stopped:\n  ${lines.join('\n  ')}`, []);
      }
      request.onProgress?.(`agent bundle: ${[...routes].map(([route, count]) => `${count} host(s) from the ${route === 'sftp' ? 'controller over SFTP' : route}`).join(', ')}`);
      for (const instance of instances) {
        tracked.set(`${instance.runId}/${instance.id}`, instance);
        watchers.push(watch(instance));
      }
      return instances.map((i) => ({ id: i.id, runId: i.runId, state: 'running', address: i.address, expiresAt: i.expiresAt }));
    },

    async list(runId?: string): Promise<InstanceInfo[]> {
      const instances = await instancesOf(runId);
      // Instances this provider does not follow (another process started them) are asked about.
      const unknown = instances.filter((i) => !tracked.has(`${i.runId}/${i.id}`));
      if (unknown.length > 0) {
        await eachHost(unknown, async (instance) => {
          const connection = await instance.pool.connection(instance.target);
          instance.ended = !(await instanceStatus(connection, instance.node, instance.dir!)).alive;
        });
      }
      return instances.map((i) => ({ id: i.id, runId: i.runId, state: i.ended ? 'ended' : 'running', address: i.address, expiresAt: i.expiresAt }));
    },

    async terminate(instanceIds: readonly string[]): Promise<void> {
      const wanted = new Set(instanceIds);
      const targets = (await instancesOf()).filter((i) => wanted.has(i.id));
      const failures = await eachHost(targets, async (instance) => {
        const connection = await instance.pool.connection(instance.target);
        const report = await stopInstance(connection, instance.node, instance.dir!, { graceMs: stopGraceMs, remove: true });
        // The host keeps nothing: the agent's own log comes here (it tells why an agent that could
        // not reach the store ended early, which the store cannot).
        if (report.agentLog !== undefined) await writeFileAtomic(agentLogPath(home, instance.runId, instance.id), report.agentLog);
        instance.ended = true;
      });
      // A run is forgotten once every instance of it has been ended.
      const endedNow = new Set(targets.filter((t) => t.ended).map((t) => `${t.runId}/${t.id}`));
      for (const runId of new Set(targets.map((t) => t.runId))) {
        const remaining = (await instancesOf(runId)).filter((i) => !i.ended && !endedNow.has(`${i.runId}/${i.id}`));
        if (remaining.length === 0) await removeSshRunState(home, runId);
      }
      if (failures.length > 0) {
        const lines = failures.map(({ item, error }) => `${item.target.name}: ${(error as Error).message}`);
        throw new Error(
          `Could not end the agents on ${failures.length} host(s); they end by themselves at their expiry (${targets[0]!.expiresAt.toISOString()}), and \`lockstep gc --ssh <inventory>\` removes what is left:\n  ${lines.join('\n  ')}`,
        );
      }
    },

    async dispose(): Promise<void> {
      disposed.abort();
      await Promise.all([...pools.values()].map((pool) => pool.close()));
      await Promise.all(watchers);
    },
  };
}

/** Refuses a host that lacks what the run needs, saying what to do. */
function checkHost(target: SshTarget, facts: HostFacts, tools: readonly string[], storePath: string | undefined): void {
  const where = `${target.name} (${describeTarget(target)})`;
  for (const tool of tools) {
    const { purpose, feature, install } = PRIVILEGED_TOOLS[tool] ?? { purpose: tool, feature: tool, install: tool };
    const path = facts.tools[tool];
    if (!path) throw new SshError(target.name, 'sudo', `${where}: ${purpose} needs \`${tool}\`, which is not installed there: install ${install}`);
    if (!facts.sudo[tool]) {
      throw new SshError(
        target.name,
        'sudo',
        `${where}: ${purpose} needs root for \`${path}\`, and the login (uid ${facts.uid}) has no passwordless sudo for it: allow it (a sudoers rule \`${target.user ?? userInfo().username} ALL=(root) NOPASSWD: ${path}\`), log in as root (\`ansible_user\`), or leave ${feature} out of the spec`,
      );
    }
  }
  if (storePath && !facts.storeVisible) {
    throw new SshError(
      target.name,
      'store',
      `${where}: the store folder ${storePath} is not there: share it with every host at the same path (NFS), or use an S3 store (\`store: s3://bucket/prefix\`)`,
    );
  }
}
