import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaultRecord } from '../../../src/core/faults.ts';
import { layout, nodeFiles } from '../../../src/core/layout.ts';
import type { NodeResult } from '../../../src/core/manifest.ts';
import { runExperiment } from '../../../src/controller/run.ts';
import { SshLaunchError } from '../../../src/provider/ssh/provider.ts';
import { loadSpec } from '../../../src/spec/load.ts';
import { openStore } from '../../../src/store/open.ts';
import { getJson } from '../../../src/store/store.ts';
import { startS3Server, type S3Server } from '../../helpers/s3-server.ts';
import { tempDir } from '../../helpers/temp.ts';
import { missingSshSupport, startTestHosts, type TestHost, type TestHosts } from './hosts.ts';

const missing = missingSshSupport() ?? (existsSync('/usr/bin/sudo') ? undefined : 'needs sudo: run scripts/test-deps.sh (apt-get install sudo)');

/** The credentials s3rver takes; the hosts have them in their sessions' environment, as hosts with their own access to a bucket do. */
const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' };

describe.skipIf(missing)('SSH hosts where the login is not root, with an S3 store', () => {
  const tag = randomBytes(3).toString('hex');
  const user = `lsu${tag}`;
  const sudoers = `/etc/sudoers.d/lockstep-test-${tag}`;
  let lab: TestHosts;
  let s3: S3Server;
  let base: string;
  const workDir = (host: TestHost) => join(base, host.name);

  beforeAll(async () => {
    lab = await startTestHosts(2, { env: S3_ENV });
    s3 = await startS3Server({ address: lab.gateway });
    expect(s3.env).toMatchObject(S3_ENV);
    Object.assign(process.env, s3.env);
    // Outside the suite's temporary root, which only root may enter.
    base = mkdtempSync(join(tmpdir(), 'lockstep-ssh-user-'));
    chmodSync(base, 0o755);
    // No password, but not a locked account (sshd refuses those): it logs in with the test's key.
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', join(base, 'home'), '--shell', '/bin/sh', '--password', '*', user]);
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }));
    for (const dir of [join(base, 'home'), join(base, 'home', '.ssh'), ...lab.hosts.map(workDir)]) {
      mkdirSync(dir);
      chownSync(dir, uid, uid);
    }
    writeFileSync(join(base, 'home', '.ssh', 'authorized_keys'), readFileSync(`${lab.keyFile}.pub`));
  });
  afterAll(async () => {
    await lab?.stop();
    await s3?.stop();
    rmSync(sudoers, { force: true });
    try {
      execFileSync('userdel', [user], { stdio: 'ignore' });
    } catch {}
    if (base) rmSync(base, { recursive: true, force: true });
  });

  const experiment = () => {
    const dir = tempDir('ssh-sudo');
    mkdirSync(join(dir, 'app'));
    writeFileSync(join(dir, 'app', 'hello.sh'), 'echo "hello from $(id -un) at $LOCKSTEP_ADDRESS"\n');
    writeFileSync(join(dir, 'hosts.yaml'), lab.inventory({ hostVars: (host) => ({ ansible_user: user, lockstep_work_dir: workDir(host) }) }));
    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'name: ssh-sudo',
        'instances: 2',
        'artifact: app',
        'run: sh hello.sh',
        'network: { rate: 100mbit }',
        'startDelay: 500ms',
        'timeouts: { barrier: 60s, run: 60s, instance: 5m }',
        `provider: { kind: ssh, inventory: hosts.yaml, knownHosts: ${lab.knownHosts} }`,
        `store: ${s3.locator(`sudo-${tag}/`)}`,
      ].join('\n') + '\n',
    );
    return dir;
  };
  const nothingOnHosts = () => {
    for (const host of lab.hosts) {
      expect(lab.processesOn(host), `processes on ${host.name}`).toEqual([]);
      const runs = join(workDir(host), 'runs');
      expect(existsSync(runs) ? readdirSync(runs) : []).toEqual([]);
      expect(execFileSync('ip', ['netns', 'exec', host.namespace, 'tc', 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' })).not.toContain('tbf');
      expect(execFileSync('ip', ['netns', 'exec', host.namespace, 'nft', 'list', 'tables'], { encoding: 'utf8' }), `nft tables on ${host.name}`).toBe('');
    }
  };

  it('refuses a spec with network emulation when the login has no passwordless sudo for tc, saying why, and starts nothing', async () => {
    const dir = experiment();
    const error = await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), home: join(dir, 'home'), cwd: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SshLaunchError);
    expect((error as SshLaunchError).exitCode).toBe(2);
    expect((error as SshLaunchError).message).toMatch(
      new RegExp(`h0 \\(${user}@[\\d.]+\\): network emulation \\(\`network\`, or a \`network\` fault, in the spec\\) needs root for \`/usr/sbin/tc\`, and the login \\(uid \\d+\\) has no passwordless sudo for it: allow it \\(a sudoers rule \`${user} ALL=\\(root\\) NOPASSWD: /usr/sbin/tc\`\\)`),
    );
    nothingOnHosts();
  });

  it('refuses a folder store the hosts do not see (as when it is not shared), naming the fix', async () => {
    const dir = experiment();
    // Below the suite's temporary root, which this login cannot enter: as a folder not shared by NFS.
    const store = join(dir, 'store');
    writeFileSync(join(dir, 'spec.yaml'), readFileSync(join(dir, 'spec.yaml'), 'utf8').replace(/^network: .*\n/m, '').replace(/^store: .*$/m, `store: ${store}`));
    const error = (await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), home: join(dir, 'home'), cwd: dir }).catch((e: unknown) => e)) as SshLaunchError;
    expect(error).toBeInstanceOf(SshLaunchError);
    expect(error.message).toContain(`h0 (${user}@${lab.hosts[0]!.address}): the store folder ${store} is not there: share it with every host at the same path (NFS), or use an S3 store`);
    nothingOnHosts();
  });

  it('runs through `sudo -n` once the login may run tc, with the store on S3 and the emulation removed after', async () => {
    writeFileSync(sudoers, `${user} ALL=(root) NOPASSWD: /usr/sbin/tc\n`, { mode: 0o440 });
    const dir = experiment();
    const progress: string[] = [];
    const outcome = await runExperiment({
      loaded: loadSpec(join(dir, 'spec.yaml')),
      home: join(dir, 'home'),
      cwd: dir,
      pollIntervalMs: 200,
      onEvent: (event) => event.type === 'phase' && event.phase === 'launch' && progress.push(event.detail),
    });
    expect({ ok: outcome.ok, lost: outcome.lostInstances }).toEqual({ ok: true, lost: [] });
    // Each host fetched the agent from the bucket itself (a presigned URL).
    expect(progress).toContain('agent bundle: 2 host(s) from the store');
    const store = await openStore(outcome.store);
    try {
      for (const rank of [0, 1]) {
        const prefix = layout.node(outcome.runId, 1, rank);
        const result = await getJson<NodeResult>(store, prefix + nodeFiles.result);
        expect(result?.netem).toMatchObject({ applied: true, removed: true, interface: 'eth0', commands: [expect.stringMatching(/^tc qdisc replace dev eth0 root handle 1: tbf rate 100000000bit/)] });
        expect(Buffer.from((await store.get(prefix + nodeFiles.stdout))!).toString()).toBe(`hello from ${user} at ${lab.hosts[rank]!.address}\n`);
      }
    } finally {
      await store.dispose();
    }
    nothingOnHosts();
  });

  it('applies a partition and a kill as on EC2, `nft` through `sudo -n`, and leaves no rule behind', async () => {
    writeFileSync(sudoers, `${user} ALL=(root) NOPASSWD: /usr/sbin/tc, /usr/sbin/nft\n`, { mode: 0o440 });
    const dir = experiment();
    // The faults example's app: UDP pings between the nodes every 50 ms, one line per answer.
    cpSync(resolve('examples/faults/app'), join(dir, 'app'), { recursive: true });
    const spec = readFileSync(join(dir, 'spec.yaml'), 'utf8')
      .replace(/^network: .*\n/m, '')
      .replace(/^run: .*$/m, 'run: node heartbeat.mjs --hosts {{hostsFile}} --rank {{rank}} --duration 7 --interval 50 --state {{outputDir}}');
    writeFileSync(
      join(dir, 'spec.yaml'),
      // The cut comes late enough after T for both heartbeats to be up and pinging on a busy machine.
      spec + ['faults:', '  - { action: partition, at: 2500ms, duration: 1500ms, sides: ["0", "1"] }', '  - { action: kill, at: 5s, targets: "1" }'].join('\n') + '\n',
    );
    const outcome = await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), home: join(dir, 'home'), cwd: dir, pollIntervalMs: 200 });
    expect({ ok: outcome.ok, lost: outcome.lostInstances }).toEqual({ ok: true, lost: [] });
    const store = await openStore(outcome.store);
    try {
      const [zero, one] = await Promise.all([0, 1].map((rank) => getJson<NodeResult>(store, layout.node(outcome.runId, 1, rank) + nodeFiles.result)));
      const cut = [zero, one].map((r) => r?.faults?.find((f) => f.id === '0#1')) as FaultRecord[];
      for (const record of cut) expect(record).toMatchObject({ appliedAt: expect.any(Number), healedBy: 'window' });
      for (const record of cut) expect(record.error).toBeUndefined();
      expect(one).toMatchObject({ outcome: 'killed', runs: [expect.objectContaining({ signal: 'SIGKILL', endedBy: '1#1' })] });
      // Rank 0's pings to rank 1 answered: sent before the cut and after it, none while both rules held.
      const stdout = Buffer.from((await store.get(layout.node(outcome.runId, 1, 0) + nodeFiles.stdout))!).toString();
      const sent = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { metric?: string; peer?: number; value?: number; time?: number })
        .filter((l) => l.metric === 'rtt_ms' && l.peer === 1)
        .map((l) => l.time! - l.value!);
      const [from, to] = [Math.max(...cut.map((r) => r.appliedAt!)), Math.min(...cut.map((r) => r.healDueAt!))];
      expect(sent.filter((t) => t > from + 50 && t < to - 50)).toEqual([]);
      expect(sent.some((t) => t < from)).toBe(true);
      expect(sent.some((t) => t > to)).toBe(true);
    } finally {
      await store.dispose();
    }
    nothingOnHosts();
  });
});
