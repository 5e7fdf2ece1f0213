/**
 * Fault 5 of issue 5: the store misbehaves. A fault-injecting proxy on loopback, in front of a real
 * S3 server, fails about 10% of requests (500, 503 SlowDown, dropped connections before and in the
 * middle of answers, slow answers). The run must complete and every log must arrive intact: sizes
 * and sha256 of every object in the store equal those of the files the nodes wrote.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { layout, nodeFiles } from '../../src/core/layout.ts';
import type { NodeResult } from '../../src/core/manifest.ts';
import { openStore } from '../../src/store/open.ts';
import { getJson } from '../../src/store/store.ts';
import { FAULT_KINDS, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { expectNothingLeftRunning, project, startRun, type Project } from './harness.ts';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Each node writes logs of known content, and rank 0 a 9 MiB file (a multipart upload). */
const PROBE = [
  'R=$LOCKSTEP_RANK; P=$LOCKSTEP_REPEAT',
  'awk -v r="$R" -v p="$P" \'BEGIN { for (i = 1; i <= 3000; i++) printf "rank %d repeat %d line %d of the log, with some padding to make it longer\\n", r, p, i }\'',
  'awk -v r="$R" -v p="$P" \'BEGIN { for (i = 1; i <= 500; i++) printf "stderr of rank %d repeat %d line %d\\n", r, p, i > "/dev/stderr" }\'',
  'awk -v r="$R" \'BEGIN { for (i = 1; i <= 20000; i++) printf "%08d,%d\\n", i, (i * 7919 + r) % 100003 }\' > "$LOCKSTEP_OUTPUT_DIR/samples.csv"',
  'if [ "$R" = 0 ]; then yes "rank $R repeat $P big file" | head -c 9437184 > "$LOCKSTEP_OUTPUT_DIR/big.bin"; fi',
].join('\n');

function expectedStdout(rank: number, repeat: number): string {
  let text = '';
  for (let i = 1; i <= 3000; i++) text += `rank ${rank} repeat ${repeat} line ${i} of the log, with some padding to make it longer\n`;
  return text;
}

describe('fault 5: a store that fails 10% of requests', () => {
  let s3: S3Server;
  let proxy: FaultProxy | undefined;
  let current: Project | undefined;
  beforeAll(async () => {
    s3 = await startS3Server();
    // The agents are child processes: they find the server's dummy credentials in the environment.
    Object.assign(process.env, s3.env);
  });
  afterAll(async () => {
    await s3?.stop();
  });
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    if (current) await expectNothingLeftRunning(current.dir);
    current = undefined;
  });

  // Two seeded runs by default; LOCKSTEP_FAULT_SEEDS=1,2,3,… runs more (a soak).
  const seeds = (process.env.LOCKSTEP_FAULT_SEEDS ?? '5,11').split(',').map(Number);
  it.each(seeds)('completes the run and every log arrives intact (sizes and sha256 as the nodes wrote them), seed %i', async (seed) => {
    proxy = await startFaultProxy({ target: s3.endpoint, rate: 0.1, seed });
    const instances = 4;
    const repeats = 3;
    const p = (current = project(
      [
        'name: flaky-store',
        `instances: ${instances}`,
        `repeats: ${repeats}`,
        'run: sh probe.sh',
        'startDelay: 1s',
        'timeouts:',
        '  barrier: 2m',
        '  run: 1m',
        '  instance: 5m',
      ],
      { 'probe.sh': PROBE },
    ));
    const prefix = `flaky-${seed}/`;
    const outcome = await startRun(p, { store: s3.locator(prefix, { endpoint: proxy.url }) }).outcome;
    const injected = { ...proxy.counts };
    proxy.setEnabled(false);

    const agentLogs = readdirSync(join(p.home, 'local', 'work', outcome.runId), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `--- ${e.name}\n${readFileSync(join(p.home, 'local', 'work', outcome.runId, e.name, 'agent.log'), 'utf8').slice(-4000)}`);
    const why = JSON.stringify({
      lost: outcome.lostInstances,
      agentLogs,
      instances: outcome.status.instances.map((i) => [i.instanceId, i.state, i.error]),
      repeats: outcome.status.repeats.map((r) => ({ state: r.state, failures: r.failures, results: r.results.map((x) => [x.rank, x.outcome, x.error]) })),
    });
    expect({ ok: outcome.ok, state: outcome.status.state, lost: outcome.lostInstances }, why).toEqual({ ok: true, state: 'done', lost: [] });
    // Every kind of fault happened, about one request in ten.
    for (const kind of FAULT_KINDS) expect(injected[kind], kind).toBeGreaterThan(0);
    expect(injected.faults / injected.requests).toBeGreaterThan(0.05);
    expect(injected.faults / injected.requests).toBeLessThan(0.15);

    // Read the store back from the server itself, not through the proxy.
    const store = await openStore(s3.locator(prefix));
    let checked = 0;
    let lost = 0;
    try {
      for (let repeat = 1; repeat <= repeats; repeat++) {
        for (let rank = 0; rank < instances; rank++) {
          const node = layout.node(outcome.runId, repeat, rank);
          const result = (await getJson<NodeResult>(store, node + nodeFiles.result))!;
          expect(result.outcome).toBe('success');
          const folder = join(p.home, 'local', 'work', outcome.runId, result.instanceId, 'repeats', String(repeat));
          const written: Array<[key: string, path: string]> = [
            [nodeFiles.stdout, join(folder, nodeFiles.stdout)],
            [nodeFiles.stderr, join(folder, nodeFiles.stderr)],
            ['files/samples.csv', join(folder, 'out', 'samples.csv')],
            ...(rank === 0 ? ([['files/big.bin', join(folder, 'out', 'big.bin')]] as Array<[string, string]>) : []),
          ];
          expect([...result.files].sort()).toEqual(written.filter(([key]) => key.startsWith('files/')).map(([key]) => key).sort());
          for (const [key, path] of written) {
            expect(existsSync(path), path).toBe(true);
            const local = readFileSync(path);
            const stored = await store.get(node + key);
            checked++;
            if (!stored || stored.length !== local.length || sha256(stored) !== sha256(local)) {
              lost++;
              continue;
            }
            if (key === nodeFiles.stdout) expect(Buffer.from(stored).toString('utf8')).toBe(expectedStdout(rank, repeat));
          }
          const big = rank === 0 ? await store.list(node + 'files/big.bin') : [];
          if (rank === 0) expect(big[0]?.size).toBe(9437184);
        }
      }
    } finally {
      await store.dispose();
    }
    expect(checked).toBe(repeats * (instances * 3 + 1));
    expect(lost).toBe(0);
    const kinds = FAULT_KINDS.map((k) => `${k} ${injected[k]}`).join(', ');
    console.log(`figures (seed ${seed}): faults injected ${injected.faults} of ${injected.requests} requests (${kinds}); runs completed 1; logs checked ${checked}; logs lost ${lost}`);
  });
});
