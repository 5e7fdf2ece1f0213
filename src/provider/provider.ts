import type { ProviderSpec } from '../spec/schema.ts';

/** What an agent on an instance needs to find its run: passed by the provider, never a credential. */
export interface AgentBoot {
  readonly runId: string;
  /** Store locator the agent opens (folder path or s3://bucket/prefix?…). */
  readonly store: string;
  /** Store key of the agent bundle (`agents/<version>/agent.mjs`). */
  readonly agentKey: string;
  /** Wall-clock time after which the instance must end itself. */
  readonly expiresAt: Date;
}

export interface LaunchRequest {
  readonly runId: string;
  readonly specName: string;
  readonly count: number;
  /** Fewer than `count` is acceptable down to this many (a quorum). */
  readonly minCount: number;
  readonly boot: AgentBoot;
  readonly provider: ProviderSpec;
  /** Progress for people: called as instances come up. */
  readonly onProgress?: (message: string) => void;
}

export interface InstanceInfo {
  readonly id: string;
  readonly runId: string;
  readonly state: 'pending' | 'running' | 'ended';
  readonly address?: string;
  readonly region?: string;
  readonly expiresAt?: Date;
}

/**
 * Launches and ends instances. Knows nothing of barriers, repeats or logs: the agent does all that
 * through the store.
 */
export interface Provider {
  readonly kind: string;
  launch(request: LaunchRequest): Promise<InstanceInfo[]>;
  /** Instances of one run, or of every run when `runId` is omitted. */
  list(runId?: string): Promise<InstanceInfo[]>;
  terminate(instanceIds: readonly string[]): Promise<void>;
  dispose?(): Promise<void>;
}

/** An optional ability: what an instance's machine printed (EC2: its serial console), to show why it did not boot. */
export interface ConsoleOutputProvider {
  consoleOutput(instanceId: string): Promise<string | undefined>;
}

export function hasConsoleOutput(provider: Provider): provider is Provider & ConsoleOutputProvider {
  return typeof (provider as Partial<ConsoleOutputProvider>).consoleOutput === 'function';
}

export class LaunchError extends Error {
  override readonly name = 'LaunchError';
  constructor(
    message: string,
    readonly launched: readonly InstanceInfo[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
