import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inNamespace } from './netns.ts';
import { RELAY_CONTROL_PORT, RELAY_UNDERLAY } from './wan-relay-core.ts';

/** dist/wan-relay.mjs, beside the built CLI or at the package root when running from source. */
export function wanRelayBundlePath(): string {
  const candidates = [new URL('./wan-relay.mjs', import.meta.url), new URL('../../../dist/wan-relay.mjs', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p) && p.endsWith('dist/wan-relay.mjs'));
  if (!found) throw new Error(`The WAN relay bundle ${candidates[candidates.length - 1]} is missing: run \`npm run build\` first`);
  return found;
}

/** Where agents reach the relay's control (env LOCKSTEP_WAN_RELAY). */
export const WAN_RELAY_URL = `http://${RELAY_UNDERLAY}:${RELAY_CONTROL_PORT}`;

export interface StartRelayOptions {
  readonly ip: string;
  /** The run's hub namespace. */
  readonly hub: string;
  readonly tag: string;
  readonly count: number;
  /** The run's expiry: the relay ends then at the latest. */
  readonly expiresAt: Date;
  /** The Node.js binary. */
  readonly node: string;
  /** Its stderr goes here. */
  readonly logPath: string;
  readonly timeoutMs?: number;
}

/**
 * Starts the relay in the hub namespace and waits until it listens. It is ended with the run's
 * namespaces (removeRunNetwork ends every process inside them).
 */
export async function startWanRelay(options: StartRelayOptions): Promise<{ pid: number; url: string }> {
  const logFd = openSync(options.logPath, 'a');
  const command = inNamespace(options.ip, options.hub, [options.node, wanRelayBundlePath(), '--tag', options.tag, '--count', String(options.count), '--expires-at', options.expiresAt.toISOString()]);
  const child = spawn(command.file, command.args, { detached: true, stdio: ['ignore', 'pipe', logFd] });
  closeSync(logFd);
  try {
    await new Promise<void>((resolve, reject) => {
      let said = '';
      const timer = setTimeout(() => reject(new Error(`the WAN relay did not start within ${options.timeoutMs ?? 10_000} ms (see ${options.logPath})`)), options.timeoutMs ?? 10_000);
      child.stdout!.on('data', (chunk) => {
        said += chunk;
        if (said.includes('ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the WAN relay ended at start (${signal ?? `exit ${code}`}; see ${options.logPath})`));
      });
    });
  } catch (error) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw error;
  }
  child.removeAllListeners('exit');
  child.stdout!.destroy();
  child.unref();
  return { pid: child.pid!, url: WAN_RELAY_URL };
}
