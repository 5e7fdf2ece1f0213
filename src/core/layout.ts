/** Where everything of a run lives in the store (keys relative to the store's root). See DESIGN.md. */
export const layout = {
  artifact: (sha256: string) => `artifacts/${sha256}.tar.gz`,
  agentBundle: (version: string) => `agents/${version}/agent.mjs`,
  runsPrefix: () => `runs/`,
  run: (runId: string) => `runs/${runId}/`,
  manifest: (runId: string) => `runs/${runId}/manifest.json`,
  abort: (runId: string) => `runs/${runId}/abort.json`,
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
  nodesPrefix: (runId: string, repeat: number) => `runs/${runId}/repeats/${repeat}/nodes/`,
  node: (runId: string, repeat: number, rank: number) => `runs/${runId}/repeats/${repeat}/nodes/${rank}/`,
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
