/**
 * What a provider that reaches hosts by a shell (SSH) and the host-control script it runs there
 * (agent/host-control.ts) say to each other, as JSON, and the files of an instance's folder on its
 * host.
 */

/** `<instance folder>/instance.json`: what the provider and `gc --ssh` know of an instance on its host. */
export interface HostInstance {
  readonly runId: string;
  readonly instanceId: string;
  readonly store: string;
  readonly expiresAt: string;
  readonly pid: number;
  readonly startedAt: string;
}

export interface StartRequest {
  readonly dir: string;
  /** The agent's identity, as environment variables. */
  readonly env: Readonly<Record<string, string>>;
  readonly instance: Omit<HostInstance, 'pid' | 'startedAt'>;
}

export interface StopReport {
  readonly wasRunning: boolean;
  /** The agent ended within the grace period after SIGTERM (it uploaded its command's logs). */
  readonly stoppedByItself: boolean;
  readonly leftoversKilled: number;
  readonly undone: number;
  readonly removed: boolean;
  /** The end of the agent's own log (at most `AGENT_LOG_TAIL` bytes), read before its folder went. */
  readonly agentLog?: string;
}

export const AGENT_LOG_TAIL = 64 * 1024;

export interface ScannedInstance extends HostInstance {
  readonly dir: string;
  readonly alive: boolean;
  /** Processes of the instance still running (the agent's included). */
  readonly processes: number;
}

/** The agent bundle, in the instance's folder. */
export const AGENT_FILE = 'agent.mjs';
/** What the host knows of its instance, in the instance's folder. */
export const INSTANCE_FILE = 'instance.json';
