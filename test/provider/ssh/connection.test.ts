import { once } from 'node:events';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, SshError, type SshTarget } from '../../../src/provider/ssh/connection.ts';
import { placeAgent } from '../../../src/provider/ssh/host.ts';
import { forEachHost, SshPool } from '../../../src/provider/ssh/pool.ts';
import { keysFor } from '../../../src/provider/ssh/known-hosts.ts';
import { tempDir } from '../../helpers/temp.ts';
import { missingSshSupport, startTestHosts, type TestHosts } from './hosts.ts';

const missing = missingSshSupport();

describe.skipIf(missing)('SSH connections to real sshd', () => {
  let lab: TestHosts;
  beforeAll(async () => {
    lab = await startTestHosts(2);
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const target = (index: number, extra: Partial<SshTarget> = {}): SshTarget => ({
    name: lab.hosts[index]!.name,
    host: lab.hosts[index]!.address,
    port: 22,
    user: 'root',
    keyFile: lab.keyFile,
    ...extra,
  });

  it('logs in with a key, checks the host key, runs commands and writes files', async () => {
    const connection = await connect(target(0), { knownHosts: lab.knownHosts, hostKeys: 'strict' });
    try {
      const result = await connection.exec('echo "$SSH_CONNECTION"; cat; exit 3', { input: 'from stdin' });
      expect(result.code).toBe(3);
      expect(result.stdout).toContain(` ${lab.hosts[0]!.address} 22`);
      expect(result.stdout).toContain('from stdin');
      const file = join(lab.hosts[0]!.workDir, '..', 'put.txt');
      await connection.put(Buffer.from('hello'), file, 0o600);
      expect(readFileSync(file, 'utf8')).toBe('hello');
    } finally {
      connection.close();
    }
    await connection.closed;
    expect(connection.open).toBe(false);
  });

  it('refuses a host whose key is not known, and adds it with accept-new', async () => {
    const knownHosts = join(tempDir('known'), 'known_hosts');
    const error = await connect(target(1), { knownHosts, hostKeys: 'strict' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SshError);
    expect((error as SshError).reason).toBe('host-key-unknown');
    expect((error as SshError).message).toMatch(/^h1 \(root@198\.18\.\d+\.11\): its host key \(ssh-ed25519 SHA256:.+\) is not in .*known_hosts: .*hostKeys: accept-new/);

    const connection = await connect(target(1), { knownHosts, hostKeys: 'accept-new' });
    connection.close();
    expect(keysFor(knownHosts, lab.hosts[1]!.address)).toHaveLength(1);
    // Known now: strict accepts it.
    (await connect(target(1), { knownHosts, hostKeys: 'strict' })).close();
  });

  it('refuses a changed host key even with accept-new, and says how to fix it', async () => {
    const knownHosts = join(tempDir('known'), 'known_hosts');
    // h0's address with h1's key: the key h0 shows is not the one on record.
    const h1Key = readFileSync(lab.knownHosts, 'utf8').split('\n').find((l) => l.startsWith(`${lab.hosts[1]!.address} `))!;
    writeFileSync(knownHosts, h1Key.replace(lab.hosts[1]!.address, lab.hosts[0]!.address) + '\n');
    const error = (await connect(target(0), { knownHosts, hostKeys: 'accept-new' }).catch((e: unknown) => e)) as SshError;
    expect(error.reason).toBe('host-key-changed');
    expect(error.message).toContain(`ssh-keygen -R '${lab.hosts[0]!.address}'`);
    expect(readFileSync(knownHosts, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('names the host and the fix when the key is refused', async () => {
    const error = (await connect(target(0, { keyFile: lab.strangerKeyFile }), { knownHosts: lab.knownHosts, hostKeys: 'strict' }).catch((e: unknown) => e)) as SshError;
    expect(error.reason).toBe('auth');
    expect(error.message).toMatch(/^h0 \(root@.+\): authentication refused \(tried key .*id_stranger.*\): add the public key to ~root\/\.ssh\/authorized_keys/);
  });

  it('names the host and the fix when it cannot be reached, after retrying', async () => {
    const retried: number[] = [];
    const options = { knownHosts: lab.knownHosts, hostKeys: 'strict' as const, attempts: 3, onRetry: (_: SshError, attempt: number) => retried.push(attempt) };
    const error = (await connect(target(0, { port: 2 }), options).catch((e: unknown) => e)) as SshError;
    expect(retried).toEqual([1, 2]);
    expect(error.reason).toBe('unreachable');
    expect(error.message).toMatch(/^h0 \(root@198\.18\.\d+\.10:2\): unreachable \(.*ECONNREFUSED.*\): check that the host is up and sshd listens on port 2/);
    // A refused key is not tried again.
    retried.length = 0;
    await connect(target(0, { keyFile: lab.strangerKeyFile }), options).catch(() => {});
    expect(retried).toEqual([]);
  });

  it('puts the agent bundle on a host from a URL it can fetch, else over SFTP', async () => {
    const bundle = Buffer.from('// an agent bundle\n'.repeat(1000));
    const server = createServer((request, response) => (request.url === '/agent.mjs' ? response.end(bundle) : response.writeHead(404).end())).listen(0, lab.gateway);
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const connection = await connect(target(0), { knownHosts: lab.knownHosts, hostKeys: 'strict' });
    try {
      const dir = join(lab.hosts[0]!.workDir, 'bundle-test');
      expect(await placeAgent(connection, 'node', join(dir, 'a'), { url: `http://${lab.gateway}:${port}/agent.mjs`, bytes: bundle })).toBe('store');
      // A URL the host cannot fetch (nothing listens there), or that answers something else: SFTP.
      expect(await placeAgent(connection, 'node', join(dir, 'b'), { url: `http://${lab.gateway}:1/agent.mjs`, bytes: bundle })).toBe('sftp');
      expect(await placeAgent(connection, 'node', join(dir, 'c'), { url: `http://${lab.gateway}:${port}/other`, bytes: bundle })).toBe('sftp');
      for (const name of ['a', 'b', 'c']) expect(readFileSync(join(dir, name, 'agent.mjs')).equals(bundle)).toBe(true);
    } finally {
      connection.close();
      server.close();
    }
  });

  it('says what to do with a key file that is missing or protected by a passphrase', async () => {
    const dir = tempDir('keys');
    const missingKey = (await connect(target(0, { keyFile: join(dir, 'nope') }), { knownHosts: lab.knownHosts, hostKeys: 'strict' }).catch((e: unknown) => e)) as SshError;
    expect(missingKey.reason).toBe('key-file');
    expect(missingKey.message).toContain('ENOENT');
    const protectedKey = join(dir, 'protected');
    copyFileSync(lab.keyFile, protectedKey);
    const { execFileSync } = await import('node:child_process');
    execFileSync('ssh-keygen', ['-q', '-p', '-N', 'secret', '-P', '', '-f', protectedKey], { stdio: 'ignore' });
    const encrypted = (await connect(target(0, { keyFile: protectedKey }), { knownHosts: lab.knownHosts, hostKeys: 'strict' }).catch((e: unknown) => e)) as SshError;
    expect(encrypted.reason).toBe('key-file');
    expect(encrypted.message).toContain(`ssh-add ${protectedKey}`);
  });
});

describe('the pool of SSH connections', () => {
  it('opens at most `concurrency` connections at once, retries included', async () => {
    let open = 0;
    let most = 0;
    let accepted = 0;
    // A server that takes connections and drops them after a moment, without a word of SSH.
    const server = createNetServer((socket) => {
      accepted++;
      most = Math.max(most, ++open);
      socket.on('close', () => open--);
      setTimeout(() => socket.destroy(), 100);
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const pool = new SshPool({ knownHosts: join(tempDir('pool'), 'known_hosts'), hostKeys: 'strict', concurrency: 2 });
    try {
      const targets = [1, 2, 3, 4, 5].map((i) => ({ name: `t${i}`, host: '127.0.0.1', port, user: `u${i}` }));
      const results = await forEachHost(targets, 5, async (target) => void (await pool.connection(target)));
      expect(results.map((r) => (r.error as SshError).reason)).toEqual(['unreachable', 'unreachable', 'unreachable', 'unreachable', 'unreachable']);
      expect(accepted).toBe(15);
      expect(most).toBe(2);
    } finally {
      await pool.close();
      server.close();
    }
  });
});
