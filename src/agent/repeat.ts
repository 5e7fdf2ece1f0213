import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { layout, nodeFiles } from '../core/layout.ts';
import type { NodeResult, Outcome, RunManifest, StartRecord } from '../core/manifest.ts';
import { paramsForRank, resolveGroups } from '../spec/groups.ts';
import { planFor } from '../spec/network-plan.ts';
import { environmentFor, renderTemplate, templateValues } from '../spec/template.ts';
import type { Store } from '../store/store.ts';
import { sleepUntil } from '../util/clock.ts';
import { awaitBarrier, type BarrierTuning } from './barrier.ts';
import { prepareCommand } from './exec.ts';
import { followCommand, nodeFaults, type CommandOutcome, type NodeFaults } from './faults/node-faults.ts';
import { writeHostsFiles } from './hosts.ts';
import { storeResult } from './records.ts';
import type { Identity } from './identity.ts';
import { applyEmulation, wanRelayFrom, type NetemSession } from './netem.ts';
import { difference, interfaceFor, readCounters } from './netstat.ts';
import { filesBelow, uploadFile } from './upload.ts';

export interface RepeatContext {
  readonly store: Store;
  readonly manifest: RunManifest;
  readonly identity: Identity;
  /** Where the artifact is unpacked: the command's working folder. */
  readonly appDir: string;
  readonly signal?: AbortSignal;
  readonly tuning?: Partial<BarrierTuning>;
  readonly onState?: (state: 'waiting' | 'running', repeat: number) => void;
  readonly log?: (message: string) => void;
}

/**
 * One repeat on one node: ready, barrier, hosts, network emulation, wait for T, run, remove the
 * emulation, upload. Returns the outcome.
 */
export async function runRepeat(context: RepeatContext, repeat: number): Promise<NodeResult | undefined> {
  const { store, manifest, identity } = context;
  const folder = join(identity.workDir, 'repeats', String(repeat));
  const outputDir = join(folder, 'out');
  await mkdir(outputDir, { recursive: true });

  context.onState?.('waiting', repeat);
  const barrier = await awaitBarrier({
    store,
    runId: manifest.runId,
    repeat,
    self: { instanceId: identity.instanceId, address: identity.address, region: identity.region, zone: identity.zone },
    expected: manifest.instances,
    minMembers: manifest.minInstances,
    timeoutMs: manifest.timeouts.barrierMs,
    startDelayMs: manifest.startDelayMs,
    tuning: context.tuning,
    signal: context.signal,
  });
  if (barrier.rank < 0) return undefined;

  const { start, rank } = barrier;
  const n = start.members.length;
  const hostsFile = join(folder, nodeFiles.hosts);
  const hostsJson = join(folder, nodeFiles.hostsJson);
  await writeHostsFiles(start.members, { hosts: hostsFile, json: hostsJson });
  const { resolvedGroups, subject } = nodeOf(manifest, identity, start, repeat, rank);
  const { params } = subject;
  const variables = {
    rank,
    n,
    runId: manifest.runId,
    repeat,
    address: identity.address,
    hostsFile,
    hostsJson,
    outputDir,
    instanceId: identity.instanceId,
  };
  const command = renderTemplate(manifest.run, templateValues(variables, params));
  const stdoutPath = join(folder, nodeFiles.stdout);
  const stderrPath = join(folder, nodeFiles.stderr);
  await Promise.all([writeFile(stdoutPath, ''), writeFile(stderrPath, '')]);

  // Network emulation goes on before T and comes off after the command, whatever its end. A
  // failure to apply it is this node's error for the repeat: the command does not run. By the
  // run's WAN relay where the local provider started one (netns mode), else with tc.
  const emulationChoice = { address: identity.address, allowDefaultRoute: manifest.provider !== 'local' };
  const netem: NetemSession | undefined = manifest.network
    ? await applyEmulation({
        plan: planFor(manifest.network, resolvedGroups, start.members.map((m) => m.address), rank),
        choice: emulationChoice,
        relay: wanRelayFrom(),
        journal: identity.workDir,
      })
    : undefined;
  const nodePrefix = layout.node(manifest.runId, repeat, rank);
  const base = {
    ...subject,
    command,
    readyAt: barrier.ready.readyAt,
    barrierAt: barrier.knownAt,
    scheduledStartAt: start.startAt,
    barrierWaitMs: barrier.knownAt - barrier.ready.readyAt,
  };
  if (netem && !netem.record.applied) {
    // The command never ran: no start, no figures; the record says what failed.
    const nodeResult: NodeResult = {
      ...base,
      outcome: 'error',
      exitCode: null,
      signal: null,
      timedOut: false,
      startedAt: start.startAt,
      endedAt: start.startAt,
      durationMs: 0,
      cpuUserMs: null,
      cpuSystemMs: null,
      peakMemoryBytes: null,
      network: null,
      netem: netem.record,
      error: `network emulation could not be applied: ${netem.record.error}`,
      files: [],
    };
    await uploadFile(store, nodePrefix + nodeFiles.stdout, stdoutPath);
    await uploadFile(store, nodePrefix + nodeFiles.stderr, stderrPath);
    await storeResult(store, nodeResult, folder);
    return nodeResult;
  }

  const request = {
    command,
    cwd: context.appDir,
    env: environmentFor(variables, params),
    stdoutPath,
    stderrPath,
    timeoutMs: manifest.timeouts.runMs,
    signal: context.signal,
  };
  const prepared = prepareCommand(request);
  const netInterface = interfaceFor(identity.address);
  let counters: Awaited<ReturnType<typeof readCounters>>;
  let faults: NodeFaults | undefined;
  try {
    // This node's part of the fault timeline, armed at T; on the loopback its command gets a cgroup.
    faults = await nodeFaults({ manifest, repeat, startAt: start.startAt, rank, addresses: start.members.map((m) => m.address), instanceId: identity.instanceId, netemPlan: netem?.record.plan, choice: emulationChoice, relay: wanRelayFrom(), journal: identity.workDir, log: context.log });
    await faults?.adopt(prepared.pid);
    counters = await readCounters(netInterface);
    await sleepUntil(start.startAt, { signal: context.signal });
  } catch (error) {
    prepared.cancel();
    await faults?.dispose();
    await netem?.remove();
    throw error;
  }
  const execution = prepared.release();
  context.onState?.('running', repeat);
  let ran: CommandOutcome;
  try {
    // A restart's run has what is left of the time limit, counted from T.
    const prepareRun = () => prepareCommand({ ...request, timeoutMs: Math.max(1, start.startAt + manifest.timeouts.runMs - Date.now()) });
    ran = await followCommand(faults, { pid: prepared.pid, ended: execution }, { prepareRun, signal: context.signal });
  } finally {
    await faults?.dispose();
    await netem?.remove();
  }
  const result = ran.result;
  const network = difference(counters, await readCounters(netInterface));

  const uploaded: string[] = [];
  const sources = [
    ...manifest.collect.map((item) => ({ under: item.replace(/\/+$/, ''), path: join(context.appDir, item) })),
    { under: '', path: outputDir },
  ];
  for (const { under, path } of sources) {
    for (const [relativeName, file] of await filesBelow(path)) {
      const name = nodeFiles.filesPrefix + [under, relativeName].filter(Boolean).join('/');
      await uploadFile(store, nodePrefix + name, file);
      uploaded.push(name);
    }
  }
  await uploadFile(store, nodePrefix + nodeFiles.stdout, stdoutPath);
  await uploadFile(store, nodePrefix + nodeFiles.stderr, stderrPath);

  const outcome: Outcome = result.aborted
    ? 'aborted'
    : result.timedOut
      ? 'timeout'
      : ran.killed
        ? 'killed'
        : result.exitCode === 0
          ? 'success'
          : 'failed';
  const faultTrouble = ran.faults?.find((f) => f.error ?? f.healError);
  const netemRecord = netem?.record;
  const nodeResult: NodeResult = {
    ...base,
    outcome,
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut: result.timedOut,
    startedAt: result.startedAt,
    endedAt: result.endedAt,
    durationMs: result.durationMs,
    cpuUserMs: result.cpuUserMs,
    cpuSystemMs: result.cpuSystemMs,
    peakMemoryBytes: result.peakMemoryBytes,
    network,
    ...(netemRecord ? { netem: netemRecord } : {}),
    ...(ran.faults ? { faults: ran.faults, runs: ran.runs } : {}),
    ...(faultTrouble ? { error: `fault ${faultTrouble.id} (${faultTrouble.action}) ${faultTrouble.error ? `could not be applied: ${faultTrouble.error}` : `could not be healed: ${faultTrouble.healError}`}` } : {}),
    ...(netemRecord?.removeError ? { error: `network emulation could not be removed: ${netemRecord.removeError}` } : {}),
    files: uploaded,
  };
  await storeResult(store, nodeResult, folder);
  return nodeResult;
}

/** The node as its result names it (run, repeat, rank, instance, groups, params), and the run's groups resolved. */
export function nodeOf(manifest: RunManifest, identity: Identity, start: StartRecord, repeat: number, rank: number) {
  const n = start.members.length;
  const resolvedGroups = resolveGroups(manifest.groups, n, start.members.map((m) => m.instanceId));
  const { params, groups } = paramsForRank(manifest.params, resolvedGroups, rank);
  const subject = { runId: manifest.runId, repeat, rank, n, instanceId: identity.instanceId, address: identity.address, groups, params };
  return { resolvedGroups, subject };
}
