import type { FailureRecord, Outcome } from './manifest.ts';

/** How an instance is through with a repeat: its command's outcome, or the stage that failed. */
export type DoneKind = Outcome | `${FailureRecord['stage']}-failure`;

/** The instance and kind of a done marker's key, or undefined for another key. */
export function parseDoneKey(key: string): { instanceId: string; kind: DoneKind } | undefined {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return undefined;
  return { instanceId: name.slice(0, dot), kind: name.slice(dot + 1) as DoneKind };
}

/** Where everything of a run lives in the store (keys relative to the store's root). See DESIGN.md. */
export const layout = {
  artifact: (sha256: string) => `artifacts/${sha256}.tar.gz`,
  agentBundle: (version: string) => `agents/${version}/agent.mjs`,
  /** A language runtime for instances whose image lacks it (`node-v24.1.0-linux-x64.tar.gz`). */
  runtime: (file: string) => `runtimes/${file}`,
  runsPrefix: () => `runs/`,
  run: (runId: string) => `runs/${runId}/`,
  manifest: (runId: string) => `runs/${runId}/manifest.json`,
  abort: (runId: string) => `runs/${runId}/abort.json`,
  /** Written by an instance's boot script when a boot step failed (before the agent could report). */
  bootLogsPrefix: (runId: string) => `runs/${runId}/boot/`,
  bootLog: (runId: string, instanceId: string) => `runs/${runId}/boot/${instanceId}.log`,
  instancesPrefix: (runId: string) => `runs/${runId}/instances/`,
  instance: (runId: string, instanceId: string) => `runs/${runId}/instances/${instanceId}.json`,
  /** An agent's own log (what it printed), uploaded when it ends. */
  agentLog: (runId: string, instanceId: string) => `runs/${runId}/agents/${instanceId}.log`,
  /** The output of `setup` on one instance. */
  setupLog: (runId: string, instanceId: string, stream: 'stdout' | 'stderr') => `runs/${runId}/agents/${instanceId}.setup.${stream}.log`,
  repeat: (runId: string, repeat: number) => `runs/${runId}/repeats/${repeat}/`,
  readyPrefix: (runId: string, repeat: number) => `runs/${runId}/repeats/${repeat}/ready/`,
  ready: (runId: string, repeat: number, instanceId: string) =>
    `runs/${runId}/repeats/${repeat}/ready/${instanceId}.json`,
  start: (runId: string, repeat: number) => `runs/${runId}/repeats/${repeat}/start.json`,
  /** The barrier's progress record (`BarrierProgress`): what its watcher saw, and the start record once closed. */
  barrier: (runId: string, repeat: number) => `runs/${runId}/repeats/${repeat}/barrier.json`,
  /** Copy `copy` (1, 2, …) of the barrier's progress record, each under a prefix of its own. */
  barrierCopy: (runId: string, repeat: number, copy: number) => `runs/${runId}/repeats/${repeat}/barrier-${copy}/progress.json`,
  nodesPrefix: (runId: string, repeat: number) => `runs/${runId}/repeats/${repeat}/nodes/`,
  node: (runId: string, repeat: number, rank: number) => `runs/${runId}/repeats/${repeat}/nodes/${rank}/`,
  /**
   * One empty object per instance that is through with repeat r, its outcome in the key
   * (`<instanceId>.<kind>`, see `DoneKind`): one LIST of this prefix tells how a repeat stands.
   */
  donePrefix: (runId: string, repeat: number) => `runs/${runId}/repeats/${repeat}/done/`,
  done: (runId: string, repeat: number, instanceId: string, kind: DoneKind) => `runs/${runId}/repeats/${repeat}/done/${instanceId}.${kind}`,
  /** Written by an instance that could not take part in a repeat (barrier timeout, setup failure). */
  failure: (runId: string, repeat: number, instanceId: string) =>
    `runs/${runId}/repeats/${repeat}/failures/${instanceId}.json`,
} as const;

/** File names inside a node's folder. */
export const nodeFiles = {
  stdout: 'stdout.log',
  stderr: 'stderr.log',
  result: 'result.json',
  hosts: 'hosts.config',
  hostsJson: 'hosts.json',
  filesPrefix: 'files/',
} as const;
