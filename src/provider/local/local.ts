import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_NODE_OPTIONS } from '../../core/agent-node.ts';
import { layout } from '../../core/layout.ts';
import type { RunManifest } from '../../core/manifest.ts';
import { openStore } from '../../store/open.ts';
import { getJson } from '../../store/store.ts';
import type { InstanceInfo, LaunchRequest, Provider } from '../provider.ts';
import { LaunchError } from '../provider.ts';
import { allocateAddresses } from './addresses.ts';
import { removeFaultLeftovers } from './fault-leftovers.ts';
import { checkNetnsSupport, createRunNetwork, inNamespace, removeRunNetwork, type RunNetwork } from './netns.ts';
import { endProcessTree } from './processes.ts';
import { startWanRelay } from './wan-relay-launch.ts';
import { isAgentAlive, localWorkDir, lockstepHome, readRunStates, removeRunState, writeRunState, type LocalInstanceState } from './state.ts';

export interface LocalProviderOptions {
  /** Where local state and instance folders live (default `$LOCKSTEP_HOME` or `~/.lockstep`). */
  readonly home?: string;
  /** The Node.js binary that runs agents. */
  readonly node?: string;
}

/**
 * Instances as agent processes on this machine: each in its own process group, with its own
 * address and working folder. Like an EC2 instance, each fetches the agent from the store.
 * `isolation: loopback` (default) gives each a loopback address 127.x.y.z; `isolation: netns` gives
 * each a network namespace of its own with an address from 198.18.0.0/15 (see netns.ts).
 */
export function createLocalProvider(options: LocalProviderOptions = {}): Provider {
  const home = options.home ?? lockstepHome();
  const node = options.node ?? process.execPath;

  return {
    kind: 'local',
    async launch(request: LaunchRequest): Promise<InstanceInfo[]> {
      const netns = request.provider.kind === 'local' && request.provider.isolation === 'netns';
      // Checked before anything is made: what is missing, and loopback mode as the alternative.
      const ip = netns ? checkNetnsSupport({ store: request.boot.store }) : undefined;
      const states = await readRunStates(home);
      const inUse = new Set(states.flatMap((s) => s.instances.map((i) => i.address)));
      const runDir = join(localWorkDir(home), request.runId);
      await mkdir(runDir, { recursive: true });

      const store = await openStore(request.boot.store);
      const agentPath = join(runDir, 'agent.mjs');
      // netns: the WAN relay is needed only when the run emulates a network, or a fault changes it (the manifest says).
      let emulates = true;
      try {
        if (!(await store.getFile(request.boot.agentKey, agentPath))) {
          throw new LaunchError(`The agent bundle ${request.boot.agentKey} is not in the store`, []);
        }
        if (ip) {
          const manifest = await getJson<RunManifest>(store, layout.manifest(request.runId)).catch(() => undefined);
          if (manifest) emulates = manifest.network !== undefined || (manifest.faults?.events.some((e) => e.action === 'network') ?? false);
        }
      } finally {
        await store.dispose();
      }

      let network: RunNetwork | undefined;
      let relayUrl: string | undefined;
      if (ip) {
        network = await createRunNetwork({ runId: request.runId, count: request.count, expiresAt: request.boot.expiresAt, ip, relay: emulates });
        // The WAN relay carries all traffic between the instances and applies their network
        // emulation (no netem needed); it ends with the run's namespaces.
        if (network.relay) {
          try {
            const relay = await startWanRelay({ ip, hub: network.hub, tag: network.tag, count: request.count, expiresAt: request.boot.expiresAt, node, logPath: join(runDir, 'wan-relay.log') });
            relayUrl = relay.url;
          } catch (error) {
            await removeRunNetwork(request.runId).catch(() => {});
            throw new LaunchError(`Could not start the run's WAN relay: ${(error as Error).message}`, [], { cause: error });
          }
        }
        request.onProgress?.(`network: ${network.instances.length} namespaces on bridge ${network.bridge}${relayUrl ? `, WAN relay at ${relayUrl}` : ''}`);
      }
      const addresses = network ? network.instances.map((i) => i.address) : allocateAddresses(request.count, inUse);
      const instances: LocalInstanceState[] = [];
      const save = () =>
        writeRunState(home, {
          runId: request.runId,
          createdAt: new Date().toISOString(),
          expiresAt: request.boot.expiresAt.toISOString(),
          instances,
        });
      try {
        for (const [index, address] of addresses.entries()) {
          const id = `local-${randomBytes(4).toString('hex')}`;
          const workDir = join(runDir, id);
          await mkdir(workDir, { recursive: true });
          const logFd = openSync(join(workDir, 'agent.log'), 'a');
          try {
            const args = [...AGENT_NODE_OPTIONS, agentPath];
            const command = network ? inNamespace(ip!, network.instances[index]!.namespace, [node, ...args]) : { file: node, args };
            const child = spawn(command.file, command.args, {
              cwd: workDir,
              detached: true,
              stdio: ['ignore', logFd, logFd],
              env: {
                ...process.env,
                LOCKSTEP_IDENTITY: 'env',
                LOCKSTEP_RUN_ID: request.runId,
                LOCKSTEP_STORE: request.boot.store,
                LOCKSTEP_INSTANCE_ID: id,
                LOCKSTEP_ADDRESS: address,
                LOCKSTEP_EXPIRES_AT: request.boot.expiresAt.toISOString(),
                LOCKSTEP_WORKDIR: workDir,
                ...(relayUrl ? { LOCKSTEP_WAN_RELAY: relayUrl } : {}),
              },
            });
            if (child.pid === undefined) throw new Error(`could not start ${node}`);
            child.unref();
            instances.push({ id, pid: child.pid, address, workDir });
          } finally {
            closeSync(logFd);
          }
          request.onProgress?.(`started ${index + 1}/${request.count}`);
        }
        await save();
      } catch (error) {
        await Promise.all(instances.map((i) => endProcessTree(i.pid)));
        if (network) await removeRunNetwork(request.runId).catch(() => {});
        await removeRunState(home, request.runId);
        throw new LaunchError(`Could not start local instances: ${(error as Error).message}`, [], { cause: error });
      }
      return instances.map((i) => ({ id: i.id, runId: request.runId, state: 'running', address: i.address, expiresAt: request.boot.expiresAt }));
    },

    async list(runId?: string): Promise<InstanceInfo[]> {
      const found: InstanceInfo[] = [];
      for (const state of await readRunStates(home)) {
        if (runId !== undefined && state.runId !== runId) continue;
        for (const instance of state.instances) {
          found.push({
            id: instance.id,
            runId: state.runId,
            state: (await isAgentAlive(instance.pid)) ? 'running' : 'ended',
            address: instance.address,
            expiresAt: new Date(state.expiresAt),
          });
        }
      }
      return found;
    },

    async terminate(instanceIds: readonly string[]): Promise<void> {
      const wanted = new Set(instanceIds);
      for (const state of await readRunStates(home)) {
        const targets = state.instances.filter((i) => wanted.has(i.id));
        await Promise.all(targets.map(async (i) => ((await isAgentAlive(i.pid)) ? endProcessTree(i.pid) : undefined)));
        const stillListed = await Promise.all(state.instances.map(async (i) => ((await isAgentAlive(i.pid)) ? i : undefined)));
        if (stillListed.every((i) => i === undefined)) {
          // With the last agent gone, its namespaces, veths and bridge go too (netns mode).
          await removeRunNetwork(state.runId);
          await removeFaultLeftovers(state.runId);
          await removeRunState(home, state.runId);
        }
      }
    },
  };
}
