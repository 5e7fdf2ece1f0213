import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
// ssh2 is CommonJS: its named exports are read from the default one.
import ssh2, { type AgentAuthMethod, type Client, type ClientChannel, type ConnectConfig, type PublicKeyAuthMethod, type SFTPWrapper } from 'ssh2';
import { retry } from '../../util/retry.ts';
import { addHostKey, checkHostKey, knownHostsName, knownKeyTypes, keyType } from './known-hosts.ts';

/** One host as lockstep reaches it. */
export interface SshTarget {
  /** The inventory name, for messages. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Default: the user running lockstep. */
  readonly user?: string;
  /** Default: ssh-agent and `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`. */
  readonly keyFile?: string;
}

export interface HostKeyPolicy {
  readonly knownHosts: string;
  readonly hostKeys: 'strict' | 'accept-new';
}

export interface ConnectOptions extends HostKeyPolicy {
  /** A bastion to go through (ProxyJump). */
  readonly jump?: SshConnection;
  /** How long one attempt may take until the session is ready. Default 20 s. */
  readonly readyTimeoutMs?: number;
  /** Attempts in all when the host cannot be reached (never for refused keys or host keys). Default 3. */
  readonly attempts?: number;
  readonly signal?: AbortSignal;
  /** Told of each failed attempt that will be tried again (progress for people). */
  readonly onRetry?: (error: SshError, attempt: number) => void;
}

export type SshFailure = 'unreachable' | 'timeout' | 'auth' | 'key-file' | 'host-key-unknown' | 'host-key-changed' | 'host-key-revoked';

/** A host lockstep could not use, with what to do about it. Bad input: nothing was started there. */
export class SshError extends Error {
  override readonly name = 'SshError';
  readonly exitCode = 2;
  constructor(
    /** The inventory name. */
    readonly host: string,
    readonly reason: SshFailure | 'setup' | 'node' | 'sudo' | 'store' | 'start' | 'lost',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ExecResult {
  readonly code: number | null;
  readonly signal?: string;
  readonly stdout: string;
  readonly stderr: string;
}

const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
/** ssh2's host key algorithms, in its order; those of the types known for the host go first. */
const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
const ALGORITHMS_OF_TYPE: Record<string, readonly string[]> = { 'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] };

/** `user@host:port`, as people write it. */
export function describeTarget(target: SshTarget): string {
  const host = target.host.includes(':') && !target.host.startsWith('[') ? `[${target.host}]` : target.host;
  return `${target.user ?? userInfo().username}@${host}${target.port === 22 ? '' : `:${target.port}`}`;
}

/** OpenSSH's fingerprint of a host key: `SHA256:` and unpadded base64. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** One SSH connection to one host: commands, file uploads, and notice when it drops. */
export class SshConnection {
  readonly closed: Promise<void>;
  #open = true;

  constructor(
    readonly target: SshTarget,
    private readonly client: Client,
  ) {
    this.closed = new Promise((resolve) => client.once('close', () => {
      this.#open = false;
      resolve();
    }));
    // After `ready`, an error ends the connection ('close' follows); it must not crash the process.
    client.on('error', () => {});
  }

  get open(): boolean {
    return this.#open;
  }

  /** Runs `command` in the login shell; `input` goes to its stdin. A failing command is data, never an exception. */
  exec(command: string, options: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      if (!this.#open) return reject(this.lost(new Error('the connection is closed')));
      this.client.exec(command, (error, stream) => {
        if (error) return reject(this.lost(error));
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let timer: NodeJS.Timeout | undefined;
        if (options.timeoutMs) {
          timer = setTimeout(() => {
            stream.close();
            reject(this.lost(new Error(`no answer within ${Math.round(options.timeoutMs! / 1000)} s to \`${command.slice(0, 60)}\``)));
          }, options.timeoutMs);
        }
        stream.on('data', (chunk: Buffer) => stdout.push(chunk));
        stream.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
        stream.on('close', (code: number | null, signal?: string) => {
          clearTimeout(timer);
          resolve({ code: code ?? null, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
        });
        stream.end(options.input ?? '');
      });
    });
  }

  /** Writes `data` to `remotePath` over SFTP (atomically: a temporary name, then a rename; OpenSSH's sftp server). */
  async put(data: Buffer, remotePath: string, mode = 0o644): Promise<void> {
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => this.client.sftp((error, s) => (error ? reject(this.lost(error)) : resolve(s))));
    try {
      const temporary = `${remotePath}.${process.pid}.tmp`;
      await new Promise<void>((resolve, reject) => sftp.writeFile(temporary, data, { mode }, (error) => (error ? reject(error) : resolve())));
      // OpenSSH's rename replaces the target, as rename(2) does; plain SFTP rename refuses to.
      await new Promise<void>((resolve, reject) => sftp.ext_openssh_rename(temporary, remotePath, (error) => (error ? reject(error) : resolve())));
    } finally {
      sftp.end();
    }
  }

  /** A TCP stream to `host:port` as seen from this host (a bastion's use). */
  forward(host: string, port: number): Promise<ClientChannel> {
    return new Promise((resolve, reject) => this.client.forwardOut('127.0.0.1', 0, host, port, (error, stream) => (error ? reject(error) : resolve(stream))));
  }

  close(): void {
    this.client.end();
  }

  private lost(cause: unknown): SshError {
    return new SshError(this.target.name, 'lost', `${this.target.name} (${describeTarget(this.target)}): the SSH connection failed: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Connects to `target` and logs in, checking its host key. Hosts that cannot be reached are tried
 * again with backoff; a refused key or a host key that is unknown or changed fails at once.
 */
export async function connect(target: SshTarget, options: ConnectOptions): Promise<SshConnection> {
  const attempts = options.attempts ?? 3;
  return retry(() => connectOnce(target, options), {
    attempts,
    baseDelayMs: 500,
    maxDelayMs: 5000,
    signal: options.signal,
    retryable: (error) => error instanceof SshError && (error.reason === 'unreachable' || error.reason === 'timeout'),
    onRetry: (error, attempt) => options.onRetry?.(error as SshError, attempt),
  });
}

async function connectOnce(target: SshTarget, options: ConnectOptions): Promise<SshConnection> {
  const where = `${target.name} (${describeTarget(target)})`;
  const username = target.user ?? userInfo().username;
  const auth = authMethods(target, username);
  const knownName = knownHostsName(target.host, target.port);
  let keyProblem: SshError | undefined;
  const hostVerifier = (key: Buffer): boolean => {
    const verdict = checkHostKey(options.knownHosts, knownName, key);
    if (verdict.kind === 'known') return true;
    const shown = `${keyType(key) ?? 'unknown type'} ${fingerprint(key)}`;
    if (verdict.kind === 'unknown' && options.hostKeys === 'accept-new') {
      addHostKey(options.knownHosts, knownName, key);
      return true;
    }
    keyProblem =
      verdict.kind === 'unknown'
        ? new SshError(
            target.name,
            'host-key-unknown',
            `${where}: its host key (${shown}) is not in ${options.knownHosts}: check it and add it (connect once with \`ssh ${target.port === 22 ? '' : `-p ${target.port} `}${username}@${target.host}\`, or \`ssh-keyscan\`), or set \`provider.hostKeys: accept-new\` to add the keys of new hosts`,
          )
        : verdict.kind === 'changed'
          ? new SshError(
              target.name,
              'host-key-changed',
              `${where}: the host key changed (it shows ${shown}, not the ${verdict.knownTypes.join('/')} key in ${options.knownHosts}): if the host was reinstalled, remove the old key (\`ssh-keygen -R '${knownName}' -f ${options.knownHosts}\`) and connect again; otherwise someone may be intercepting the connection`,
            )
          : new SshError(target.name, 'host-key-revoked', `${where}: its host key (${shown}) is marked @revoked in ${options.knownHosts}: the host cannot be trusted; remove it from the inventory`);
    return false;
  };
  const known = knownKeyTypes(options.knownHosts, knownName).flatMap((type) => ALGORITHMS_OF_TYPE[type] ?? [type]);
  const serverHostKey = [...new Set([...known.filter((a) => HOST_KEY_ALGORITHMS.includes(a)), ...HOST_KEY_ALGORITHMS])];

  let sock: Duplex | undefined;
  if (options.jump) {
    try {
      sock = await options.jump.forward(target.host, target.port);
    } catch (error) {
      throw new SshError(
        target.name,
        'unreachable',
        `${where}: unreachable through the bastion ${describeTarget(options.jump.target)} (${(error as Error).message}): check that the host is up and that the bastion can reach it, or fix \`ansible_host\`/\`ansible_port\``,
        { cause: error },
      );
    }
  }
  const client = new ssh2.Client();
  const config: ConnectConfig = {
    host: target.host.replace(/^\[(.*)\]$/, '$1'),
    port: target.port,
    username,
    readyTimeout: options.readyTimeoutMs ?? 20_000,
    keepaliveInterval: 5000,
    keepaliveCountMax: 3,
    hostVerifier,
    algorithms: { serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
    authHandler: auth.methods,
    ...(sock ? { sock } : {}),
  };
  return new Promise<SshConnection>((resolve, reject) => {
    const onError = (error: Error & { level?: string }) => {
      client.end();
      if (keyProblem) return reject(keyProblem);
      if (error.level === 'client-authentication') {
        return reject(
          new SshError(
            target.name,
            'auth',
            `${where}: authentication refused (tried ${auth.tried.join(', ') || 'no key'}): add the public key to ~${username}/.ssh/authorized_keys there (\`ssh-copy-id ${target.keyFile ? `-i ${target.keyFile} ` : ''}${target.port === 22 ? '' : `-p ${target.port} `}${username}@${target.host}\`), or set \`ansible_user\`/\`ansible_ssh_private_key_file\` in the inventory`,
            { cause: error },
          ),
        );
      }
      if (error.level === 'client-timeout') {
        return reject(
          new SshError(target.name, 'timeout', `${where}: no SSH answer within ${Math.round((options.readyTimeoutMs ?? 20_000) / 1000)} s: check that the host is up and sshd listens on port ${target.port}`, { cause: error }),
        );
      }
      reject(
        new SshError(
          target.name,
          'unreachable',
          `${where}: unreachable (${error.message}): check that the host is up and sshd listens on port ${target.port}, or fix \`ansible_host\`/\`ansible_port\` in the inventory`,
          { cause: error },
        ),
      );
    };
    client.once('error', onError);
    client.once('ready', () => {
      client.off('error', onError);
      resolve(new SshConnection(target, client));
    });
    if (options.signal?.aborted) return onError(new Error('aborted'));
    try {
      client.connect(config);
    } catch (error) {
      onError(error as Error);
    }
  });
}

interface AuthMethods {
  readonly methods: Array<PublicKeyAuthMethod | AgentAuthMethod>;
  /** For the message when every method is refused. */
  readonly tried: readonly string[];
}

/** The key file (or the default keys), then ssh-agent, as OpenSSH tries them. */
function authMethods(target: SshTarget, username: string): AuthMethods {
  const methods: Array<PublicKeyAuthMethod | AgentAuthMethod> = [];
  const tried: string[] = [];
  const where = `${target.name} (${describeTarget(target)})`;
  const files = target.keyFile ? [target.keyFile] : DEFAULT_KEYS.map((name) => join(homedir(), '.ssh', name)).filter((file) => existsSync(file));
  for (const file of files) {
    let text: Buffer;
    try {
      text = readFileSync(file);
    } catch (error) {
      throw new SshError(target.name, 'key-file', `${where}: cannot read the private key ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): fix \`ansible_ssh_private_key_file\` in the inventory`, { cause: error });
    }
    const parsed = ssh2.utils.parseKey(text);
    if (parsed instanceof Error) {
      if (!target.keyFile) continue;
      const encrypted = /passphrase|encrypted/i.test(parsed.message);
      throw new SshError(
        target.name,
        'key-file',
        encrypted
          ? `${where}: the private key ${file} is protected by a passphrase: load it into ssh-agent (\`ssh-add ${file}\`) and leave \`ansible_ssh_private_key_file\` out`
          : `${where}: ${file} is not a private key lockstep can read (${parsed.message}): fix \`ansible_ssh_private_key_file\``,
      );
    }
    methods.push({ type: 'publickey', username, key: text });
    tried.push(`key ${file}`);
  }
  if (process.env.SSH_AUTH_SOCK) {
    methods.push({ type: 'agent', username, agent: process.env.SSH_AUTH_SOCK });
    tried.push('ssh-agent');
  }
  return { methods, tried };
}
