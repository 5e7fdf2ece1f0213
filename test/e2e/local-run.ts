import { readdirSync } from 'node:fs';
import { expect, it } from 'vitest';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import type { NodeResult } from '../../src/core/manifest.ts';
import { createLocalProvider } from '../../src/provider/local/local.ts';
import { localRunsDir } from '../../src/provider/local/state.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson } from '../../src/store/store.ts';
import { runProbe } from '../helpers/local-run.ts';

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));

/** The end-to-end checks of a local run, for any store (a folder, or S3 on loopback). */
export function localRunSuite(storeFor: () => string | undefined): void {
  it('runs N=8 twice: distinct ranks, identical sorted hosts files, params by group, every log stored', async () => {
    const n = 8;
    const { outcome, home } = await runProbe({ instances: n, repeats: 2, store: storeFor() });
    expect({ state: outcome.status.state, lost: outcome.lostInstances, failures: outcome.status.repeats.flatMap((r) => r.failures) }).toEqual({ state: 'done', lost: [], failures: [] });
    expect(outcome.ok).toBe(true);
    const store = await openStore(outcome.store);
    try {
      for (const repeat of [1, 2]) {
        const summary = outcome.status.repeats[repeat - 1]!;
        expect(summary.members).toBe(n);
        expect(summary.skewMs).toBeGreaterThanOrEqual(0);
        expect(Number.isFinite(summary.skewMs)).toBe(true);
        const hostsFiles = new Set<string>();
        const hostsJsons = new Set<string>();
        const seenRanks: number[] = [];
        for (let rank = 0; rank < n; rank++) {
          const prefix = layout.node(outcome.runId, repeat, rank);
          const result = await getJson<NodeResult>(store, prefix + nodeFiles.result);
          const stdout = text(await store.get(prefix + nodeFiles.stdout))!;
          const stderr = text(await store.get(prefix + nodeFiles.stderr))!;
          const hosts = text(await store.get(`${prefix}files/hosts.copy`))!;
          expect(result, `result.json of repeat ${repeat} rank ${rank}`).toBeDefined();
          expect(result!.outcome).toBe('success');
          expect(result!.rank).toBe(rank);
          expect(result!.startedAt).toBeGreaterThanOrEqual(result!.scheduledStartAt);
          expect(stderr).toBe(`stderr of rank ${rank}\n`);
          expect(text(await store.get(`${prefix}files/notes.txt`))).toBe(`note from rank ${rank}\n`);
          // What the program itself saw:
          const seen = Object.fromEntries(stdout.trim().split(' ').map((kv) => kv.split('=')));
          seenRanks.push(Number(seen.rank));
          expect(seen).toMatchObject({ rank: String(rank), n: String(n), repeat: String(repeat), argrank: String(rank) });
          const role = rank >= n / 2 ? 'adversary' : 'honest';
          expect(seen.role).toBe(role);
          expect(seen.env_role).toBe(role);
          const lines = hosts.trim().split('\n');
          expect(lines[rank]).toBe(seen.address);
          expect(lines).toHaveLength(n);
          hostsFiles.add(hosts);
          hostsJsons.add(text(await store.get(`${prefix}files/hosts-json.copy`))!);
        }
        expect(seenRanks.sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
        expect(hostsFiles.size).toBe(1);
        const lines = [...hostsFiles][0]!.trim().split('\n');
        expect(new Set(lines).size).toBe(n);
        const numeric = (a: string) => a.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
        expect([...lines].sort((a, b) => numeric(a) - numeric(b))).toEqual(lines);
        // hosts.json: the same order, with each rank's instance (the one that ran it, by its result).
        expect(hostsJsons.size).toBe(1);
        const entries = JSON.parse([...hostsJsons][0]!) as Array<{ rank: number; address: string; instanceId: string }>;
        expect(entries.map((e) => e.rank)).toEqual([...Array(n).keys()]);
        expect(entries.map((e) => e.address)).toEqual(lines);
        const ranOn = Object.fromEntries(summary.results.map((r) => [r.rank, r.instanceId]));
        expect(entries.map((e) => e.instanceId)).toEqual(entries.map((e) => ranOn[e.rank]));
      }
    } finally {
      await store.dispose();
    }
    // Every instance has ended and the provider forgot the run.
    expect((await createLocalProvider({ home }).list(outcome.runId)).filter((i) => i.state === 'running')).toEqual([]);
    expect(readdirSync(localRunsDir(home))).toEqual([]);
  });

  it('uploads the logs and exit code of a failing rank and reports the run as failed', async () => {
    const { outcome } = await runProbe({ instances: 4, repeats: 1, failRank: 1, store: storeFor() });
    expect(outcome.ok).toBe(false);
    expect(outcome.status.state).toBe('failed');
    const results = outcome.status.repeats[0]!.results;
    expect(results).toHaveLength(4);
    expect(results.find((r) => r.rank === 1)).toMatchObject({ outcome: 'failed', exitCode: 3 });
    expect(results.filter((r) => r.outcome === 'success')).toHaveLength(3);
    const store = await openStore(outcome.store);
    try {
      const prefix = layout.node(outcome.runId, 1, 1);
      expect(text(await store.get(prefix + nodeFiles.stderr))).toBe('stderr of rank 1\n');
      expect(text(await store.get(prefix + nodeFiles.stdout))).toContain('rank=1');
    } finally {
      await store.dispose();
    }
  });
}
