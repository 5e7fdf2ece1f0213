import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroup2Mount, cgroupProblem, createCommandGroup } from '../../src/util/cgroup.ts';
import { addTable, deleteTable, deleteTablesWithPrefix, partitionRuleset, tablesWithPrefix, type NftRunner } from '../../src/util/nft.ts';
import { privilegedRunner } from '../../src/agent/privileged.ts';
import { inNamespace, missingFaultSupport, namespacePair, reaches, tcpServer, type Pair } from './namespaces.ts';

const missing = missingFaultSupport();
if (missing) console.log(`nftables partition tests skipped: ${missing}`);

/** nft run inside a namespace, through the agent's runner of privileged commands. */
const nftIn = (namespace: string): NftRunner => {
  const run = privilegedRunner({ env: { ...process.env, LOCKSTEP_NFT: '/usr/bin/nsenter' } });
  return (args, input) => run('nft', inNamespace(namespace, ['nft', ...args]).slice(1), input);
};

describe.skipIf(missing)('partitions with nftables in namespaces', () => {
  let pair: Pair;
  const servers: ChildProcess[] = [];
  beforeAll(async () => {
    pair = namespacePair();
    servers.push(await tcpServer(pair.a, pair.addressA, 7301), await tcpServer(pair.b, pair.addressB, 7301));
  });
  afterAll(() => {
    for (const server of servers) server.kill();
    pair?.remove();
  });

  it('drops both directions from one side, and heals by deleting its table', async () => {
    const nft = nftIn(pair.a);
    expect(reaches(pair.a, pair.addressB, 7301)).toBe(true);
    expect(reaches(pair.b, pair.addressA, 7301)).toBe(true);
    await addTable(nft, partitionRuleset('lockstep_aaaaaa_bbbbbb_0_1', [pair.addressB]));
    expect(reaches(pair.a, pair.addressB, 7301)).toBe(false);
    expect(reaches(pair.b, pair.addressA, 7301)).toBe(false);
    expect(await tablesWithPrefix(nft, 'lockstep_aaaaaa_')).toEqual(['lockstep_aaaaaa_bbbbbb_0_1']);
    await deleteTable(nft, 'lockstep_aaaaaa_bbbbbb_0_1');
    expect(reaches(pair.a, pair.addressB, 7301)).toBe(true);
    expect(reaches(pair.b, pair.addressA, 7301)).toBe(true);
    expect(pair.exec(pair.a, ['nft', 'list', 'ruleset']).trim()).toBe('');
    // Deleting a table that is gone already is no error.
    await deleteTable(nft, 'lockstep_aaaaaa_bbbbbb_0_1');
  });

  it('lets overlapping windows come and go independently, and removes what an earlier agent left by prefix', async () => {
    const nft = nftIn(pair.a);
    await addTable(nft, partitionRuleset('lockstep_aaaaaa_bbbbbb_0_1', [pair.addressB]));
    await addTable(nft, partitionRuleset('lockstep_aaaaaa_bbbbbb_1_1', [pair.addressB]));
    await addTable(nft, partitionRuleset('lockstep_aaaaaa_cccccc_0_1', ['198.18.250.9']));
    await deleteTable(nft, 'lockstep_aaaaaa_bbbbbb_0_1');
    expect(reaches(pair.a, pair.addressB, 7301)).toBe(false);
    expect(await deleteTablesWithPrefix(nft, 'lockstep_aaaaaa_bbbbbb')).toEqual(['lockstep_aaaaaa_bbbbbb_1_1']);
    expect(reaches(pair.a, pair.addressB, 7301)).toBe(true);
    expect(await tablesWithPrefix(nft, 'lockstep_')).toEqual(['lockstep_aaaaaa_cccccc_0_1']);
    await deleteTablesWithPrefix(nft, 'lockstep_');
  });

  it('says what nft said when a ruleset does not load', async () => {
    await expect(addTable(nftIn(pair.a), 'table inet bad { chain x { nonsense } }\n')).rejects.toThrow(/nft -f - \(table inet bad/);
  });
});

describe.skipIf(missing || cgroupProblem())('partitions on a shared loopback by cgroup', () => {
  let pair: Pair;
  let server: ChildProcess;
  const mount = cgroup2Mount()!;
  beforeAll(async () => {
    // One namespace's loopback stands for this machine's: two "nodes" on 127.77.0.1 and 127.77.0.2.
    pair = namespacePair();
    server = await tcpServer(pair.a, '127.77.0.2', 7302);
  });
  afterAll(() => {
    server?.kill();
    pair?.remove();
  });

  it('drops what the partitioned command sends, whatever its source address, and nothing of others', async () => {
    const group = await createCommandGroup(`lockstep_test_${process.pid}`);
    const other = `${mount}/lockstep_test_other_${process.pid}`;
    mkdirSync(other);
    try {
      expect(group).toMatchObject({ level: 1, nftPath: `${mount.replace(/^\/sys\/fs\/cgroup\/?/, '')}${mount === '/sys/fs/cgroup' ? '' : '/'}lockstep_test_${process.pid}` });
      const nft = nftIn(pair.a);
      await addTable(nft, partitionRuleset('lockstep_cg_test', ['127.77.0.2'], group));
      // Unbound (from 127.0.0.1) and bound to its own address: both dropped.
      expect(reaches(pair.a, '127.77.0.2', 7302, { cgroup: group.path })).toBe(false);
      expect(reaches(pair.a, '127.77.0.2', 7302, { cgroup: group.path, bind: '127.77.0.1' })).toBe(false);
      // Another node's command, and the agent itself, still get through.
      expect(reaches(pair.a, '127.77.0.2', 7302, { cgroup: other })).toBe(true);
      expect(reaches(pair.a, '127.77.0.2', 7302)).toBe(true);
      await deleteTable(nft, 'lockstep_cg_test');
      expect(reaches(pair.a, '127.77.0.2', 7302, { cgroup: group.path })).toBe(true);
    } finally {
      await group.remove();
      rmdirSync(other);
    }
    expect(execFileSync('ls', [mount]).toString()).not.toContain(`lockstep_test_${process.pid}`);
  });
});
