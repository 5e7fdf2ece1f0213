import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layout, nodeFiles } from '../../../src/core/layout.ts';
import type { InstanceRecord, NodeResult } from '../../../src/core/manifest.ts';
import { downRun } from '../../../src/controller/down.ts';
import { localPathOf } from '../../../src/results/download.ts';
import type { RunReport } from '../../../src/results/report.ts';
import { runExperiment, type RunEvent } from '../../../src/controller/run.ts';
import { SshLaunchError } from '../../../src/provider/ssh/provider.ts';
import { loadSpec } from '../../../src/spec/load.ts';
import { openStore } from '../../../src/store/open.ts';
import { getJson } from '../../../src/store/store.ts';
import { runLockstep } from '../../helpers/cli.ts';
import { tempDir } from '../../helpers/temp.ts';
import { missingSshSupport, startTestHosts, type TestHosts } from './hosts.ts';
import { PROBE } from './probe.ts';

const missing = missingSshSupport();

describe.skipIf(missing)('SSH provider against real sshd in network namespaces', () => {
  let lab: TestHosts;
  beforeAll(async () => {
    lab = await startTestHosts(4);
  });
  afterAll(async () => {
    await lab?.stop();
  });

  /** A spec folder with the probe app, an inventory of the lab and a known-hosts file. */
  const experiment = (options: { inventory?: string; spec?: readonly string[]; repeats?: number; instances?: number } = {}) => {
    const dir = tempDir('ssh-run');
    mkdirSync(join(dir, 'app'));
    writeFileSync(join(dir, 'app', 'probe.mjs'), PROBE);
    writeFileSync(join(dir, 'hosts.yaml'), options.inventory ?? lab.inventory());
    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'name: ssh-e2e',
        `instances: ${options.instances ?? 4}`,
        `repeats: ${options.repeats ?? 1}`,
        'artifact: app',
        'run: node probe.mjs',
        'startDelay: 500ms',
        'timeouts: { barrier: 60s, run: 60s, instance: 5m }',
        `provider: { kind: ssh, inventory: hosts.yaml, knownHosts: ${lab.knownHosts} }`,
        'store: store',
        ...(options.spec ?? []),
      ].join('\n') + '\n',
    );
    return dir;
  };

  /** Nothing of any run on any host: no process but sshd, no run folder. */
  const expectHostsClean = () => {
    for (const host of lab.hosts) {
      expect(lab.processesOn(host), `processes on ${host.name}`).toEqual([]);
      const runs = join(host.workDir, 'runs');
      expect(existsSync(runs) ? readdirSync(runs) : [], `run folders on ${host.name}`).toEqual([]);
    }
  };

  it('runs N=4 × 2 repeats over SSH from the command line, downloads logs and results (the same figures and report as anywhere), and leaves nothing on the hosts', async () => {
    // Node.js is not where the hosts' `lockstep_node` says until `provider.setup` puts it there.
    const installed = join(tempDir('ssh-node'), 'bin');
    const inventory = lab
      .inventory({ hostVars: () => ({ lockstep_node: join(installed, 'node') }) })
      .replace('  hosts:\n', '  children:\n    leaders:\n      hosts:\n        h3:\n        h1:\n  hosts:\n');
    const dir = experiment({ inventory, repeats: 2, spec: ['groups:', '  - hosts: leaders', '    params: { role: leader }'] });
    const setup = `mkdir -p ${installed} && ln -sf ${process.execPath} ${installed}/node`;
    writeFileSync(join(dir, 'spec.yaml'), readFileSync(join(dir, 'spec.yaml'), 'utf8').replace('knownHosts:', `setup: "${setup}", knownHosts:`));
    const home = join(dir, 'home');
    const result = await runLockstep(['run', 'spec.yaml'], { cwd: dir, env: { LOCKSTEP_HOME: home } });
    expect(result.stderr).not.toMatch(/Unexpected error/);
    expect(result.status, result.stdout + result.stderr).toBe(0);
    const runId = /Results: lockstep-results\/(\S+)\//.exec(result.stdout)?.[1];
    expect(runId, result.stdout).toBeDefined();

    const addresses = lab.hosts.map((h) => h.address);
    for (const repeat of [1, 2]) {
      for (let rank = 0; rank < 4; rank++) {
        const downloaded = (name: string) => join(dir, 'lockstep-results', runId!, localPathOf(runId!, layout.node(runId!, repeat, rank) + name));
        const seen = JSON.parse(readFileSync(downloaded(nodeFiles.stdout), 'utf8')) as { rank: number; address: string; role?: string; interfaces: string[]; hosts: string[] };
        const recorded = JSON.parse(readFileSync(downloaded(nodeFiles.result), 'utf8')) as NodeResult;
        // Ranks follow the addresses; each node ran on its own host (its namespace holds the address).
        expect(seen).toMatchObject({ rank, address: addresses[rank], interfaces: [addresses[rank]], hosts: addresses });
        expect(seen.role).toBe(rank === 1 || rank === 3 ? 'leader' : undefined);
        expect(recorded).toMatchObject({ outcome: 'success', instanceId: lab.hosts[rank]!.name, address: addresses[rank] });
        expect(recorded.groups).toEqual(rank === 1 || rank === 3 ? ['leaders'] : []);
      }
    }
    expectHostsClean();
    expect(readdirSync(join(home, 'ssh', 'runs'))).toEqual([]);
    // The agents' own logs came home before their folders went.
    for (const host of lab.hosts) expect(readFileSync(join(home, 'ssh', 'logs', runId!, `${host.name}.log`), 'utf8')).toMatch(/agent done/);
    // The same figures and report as from any other provider.
    const report = await runLockstep(['results', runId!, '--json', '--html', 'report.html'], { cwd: dir, env: { LOCKSTEP_HOME: home } });
    expect(report.status, report.stderr).toBe(0);
    const figures = (JSON.parse(report.stdout) as RunReport).figures;
    expect({ recorded: figures.recorded, repeats: figures.repeats.length, failures: figures.failuresByRank }).toEqual({ recorded: true, repeats: 2, failures: [] });
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain(runId!);
  });

  it('refuses an unreachable host, one that refuses the key, one without Node.js and one whose `provider.setup` fails, naming each with its fix, and starts nothing anywhere', async () => {
    const inventory = lab.inventory({
      hostVars: (host) =>
        ({ h1: { ansible_port: 2 }, h2: { ansible_ssh_private_key_file: lab.strangerKeyFile }, h3: { lockstep_node: '/opt/none/bin/node' } })[host.name] ?? {},
    });
    const dir = experiment({ inventory });
    // The setup fails on h0 only (known by the address sshd was reached at).
    const setup = `case \\"$SSH_CONNECTION\\" in *' ${lab.hosts[0]!.address} '*) echo step one; echo no package manager here >&2; exit 3;; esac`;
    writeFileSync(join(dir, 'spec.yaml'), readFileSync(join(dir, 'spec.yaml'), 'utf8').replace('knownHosts:', `setup: "${setup}", knownHosts:`));
    const error = await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), home: join(dir, 'home'), cwd: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SshLaunchError);
    const message = (error as SshLaunchError).message;
    expect(message).toMatch(/^4 hosts cannot be used; nothing was started:/);
    expect(message).toContain(`h0 (root@${lab.hosts[0]!.address}): \`provider.setup\` failed (exit 3): no package manager here: run it there by hand to see why`);
    expect(message).toMatch(/h1 \(root@198\.18\.\d+\.11:2\): unreachable \(.*ECONNREFUSED.*\): check that the host is up and sshd listens on port 2/);
    expect(message).toMatch(/h2 \(root@198\.18\.\d+\.12\): authentication refused \(tried key .*id_stranger\): add the public key/);
    expect(message).toMatch(/h3 \(root@198\.18\.\d+\.13\): no Node\.js ≥ 20: `\/opt\/none\/bin\/node` is not there: install Node\.js 20 or later there .*, or point `lockstep_node` in the inventory/);
    expect((error as SshLaunchError).exitCode).toBe(2);
    expectHostsClean();

    // From the command line: exit code 2 and the same message.
    const cli = await runLockstep(['run', 'spec.yaml'], { cwd: dir, env: { LOCKSTEP_HOME: join(dir, 'home') } });
    expect(cli.status).toBe(2);
    expect(cli.stderr).toMatch(/h2 \(root@.+\): authentication refused/);
    expectHostsClean();
  });

  it('reaches the hosts through a bastion (`jump`), and uses only the hosts of `provider.hosts`', async () => {
    const inventory = lab.inventory().replace('  hosts:\n', '  children:\n    pair:\n      hosts:\n        h2:\n        h1:\n  hosts:\n');
    const dir = experiment({ inventory, instances: 2 });
    const spec = readFileSync(join(dir, 'spec.yaml'), 'utf8').replace('inventory: hosts.yaml', `inventory: hosts.yaml, hosts: pair, jump: root@${lab.hosts[0]!.address}`);
    writeFileSync(join(dir, 'spec.yaml'), spec.replace('run: node probe.mjs', 'run: node probe.mjs && echo "$SSH_CONNECTION"'));
    const outcome = await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), home: join(dir, 'home'), cwd: dir, pollIntervalMs: 200 });
    expect(outcome.ok).toBe(true);
    const store = await openStore(outcome.store);
    try {
      for (const rank of [0, 1]) {
        const [seen, connection] = Buffer.from((await store.get(layout.node(outcome.runId, 1, rank) + nodeFiles.stdout))!).toString().trim().split('\n');
        // h1 and h2 in inventory order of the group (h2 first) are instances h2, h1; ranks follow the addresses.
        expect(JSON.parse(seen!)).toMatchObject({ address: lab.hosts[rank + 1]!.address });
        // sshd on the host saw the connection come from the bastion.
        expect(connection!.split(' ')[0]).toBe(lab.hosts[0]!.address);
      }
    } finally {
      await store.dispose();
    }
    expectHostsClean();
  });

  it('keeps a node running when its SSH connection is killed mid-run: it finishes and uploads', async () => {
    const dir = experiment({ instances: 2, spec: ['params: { sleep: 3 }'] });
    let dropped = 0;
    const events: RunEvent[] = [];
    const outcome = await runExperiment({
      loaded: loadSpec(join(dir, 'spec.yaml')),
      home: join(dir, 'home'),
      cwd: dir,
      pollIntervalMs: 200,
      onEvent: (event) => {
        events.push(event);
        // The commands run once the first repeat's start time has passed.
        const first = event.type === 'progress' ? event.progress.repeats[0] : undefined;
        const running = first?.startAt != null && Date.now() >= first.startAt;
        if (running && dropped === 0) dropped = lab.dropConnections(lab.hosts[0]!) + lab.dropConnections(lab.hosts[1]!);
      },
    });
    expect(dropped).toBeGreaterThanOrEqual(2);
    expect({ ok: outcome.ok, lost: outcome.lostInstances }).toEqual({ ok: true, lost: [] });
    const store = await openStore(outcome.store);
    try {
      for (const rank of [0, 1]) {
        const result = await getJson<NodeResult>(store, layout.node(outcome.runId, 1, rank) + nodeFiles.result);
        expect(result).toMatchObject({ outcome: 'success' });
      }
    } finally {
      await store.dispose();
    }
    expectHostsClean();
  });

  it('ends the agent and its command at the expiry, never the host; Ctrl-C ends the nodes on every host', async () => {
    const dir = experiment({ instances: 2, spec: ['params: { sleep: 120 }'] });
    writeFileSync(join(dir, 'spec.yaml'), readFileSync(join(dir, 'spec.yaml'), 'utf8').replace('instance: 5m', 'instance: 10s'));
    const expired = await runExperiment({ loaded: loadSpec(join(dir, 'spec.yaml')), home: join(dir, 'home'), cwd: dir, pollIntervalMs: 200 });
    // What each agent recorded last (the summary may be read before the second one had).
    const store = await openStore(expired.store);
    try {
      for (const id of ['h0', 'h1']) expect((await getJson<InstanceRecord>(store, layout.instance(expired.runId, id)))?.state).toBe('expired');
    } finally {
      await store.dispose();
    }
    // Whatever command had started by then was ended (and its logs uploaded).
    for (const result of expired.status.repeats[0]?.results ?? []) expect(result.outcome).toBe('aborted');
    expectHostsClean();
    // The hosts are as they were: their sshd still answers.
    expect(lab.hosts.map((h) => h.sshd.exitCode)).toEqual([null, null, null, null]);

    const interrupt = new AbortController();
    const interrupted = await runExperiment({
      loaded: loadSpec(join(experiment({ instances: 2, spec: ['params: { sleep: 120 }'] }), 'spec.yaml')),
      home: join(dir, 'home'),
      cwd: dir,
      pollIntervalMs: 200,
      signal: interrupt.signal,
      onEvent: (event) => {
        const first = event.type === 'progress' ? event.progress.repeats[0] : undefined;
        if (first?.members === 2 && first.startAt !== null && Date.now() >= first.startAt) interrupt.abort();
      },
    });
    expect(interrupted.status.repeats[0]?.results.map((r) => r.outcome) ?? []).not.toContain('success');
    expectHostsClean();
  });

  it('`lockstep down` mid-run stops the node on every host, with its logs uploaded', async () => {
    const dir = experiment({ spec: ['params: { sleep: 120 }'] });
    const home = join(dir, 'home');
    let runId: string | undefined;
    let downed: Promise<unknown> | undefined;
    const outcome = await runExperiment({
      loaded: loadSpec(join(dir, 'spec.yaml')),
      home,
      cwd: dir,
      pollIntervalMs: 200,
      onEvent: (event) => {
        if (event.type === 'launched') runId = event.runId;
        const first = event.type === 'progress' ? event.progress.repeats[0] : undefined;
        const running = first?.members === 4 && first.startAt !== null && Date.now() >= first.startAt;
        // Another process's view: only the store and this machine's record of the run.
        if (running && !downed) downed = downRun({ runId: runId!, store: join(dir, 'store'), home, graceMs: 20_000 });
      },
    });
    const down = (await downed) as { ended: string[]; alreadyEnded: string[] };
    // An agent that saw the abort record before `down` looked is ended already.
    expect([...down.ended, ...down.alreadyEnded].sort()).toEqual(['h0', 'h1', 'h2', 'h3']);
    expect(outcome.ok).toBe(false);
    const store = await openStore(outcome.store);
    try {
      for (let rank = 0; rank < 4; rank++) {
        const result = await getJson<NodeResult>(store, layout.node(outcome.runId, 1, rank) + nodeFiles.result);
        expect(result?.outcome, `rank ${rank}`).toBe('aborted');
      }
    } finally {
      await store.dispose();
    }
    expectHostsClean();
  });
});
