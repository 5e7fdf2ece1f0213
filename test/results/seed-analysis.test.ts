import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importFolders } from '../../src/controller/import.ts';
import type { RunReport, SweepReport } from '../../src/results/report.ts';
import { collectResults, formatReport } from '../../src/results/results.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { runLockstep } from '../helpers/cli.ts';
import { writeSeedFolder, type SeedFolder } from '../helpers/seed-logs.ts';
import { parseCsv, tempDir } from './fixture.ts';

/**
 * The seed's own results, analysed by lockstep: `lockstep import` of its folders, and
 * `lockstep results` with `examples/seed-analysis/lockstep.yaml`, give the figures the seed's
 * analysis printed (its README), for the real sample and for generated folders of other N and
 * protocols.
 */

// A copy of the seed's sample (shared/seed/results-sample), so that the test reads the same logs wherever it runs.
const SAMPLE = fileURLToPath(new URL('../fixtures/seed-results-sample/', import.meta.url));
const SPEC = fileURLToPath(new URL('../../examples/seed-analysis/lockstep.yaml', import.meta.url));
const CORRUPTED = join(SAMPLE, 'GroupSize17-ExpIdcorrupted-0428-atSize38');
const NORMAL = join(SAMPLE, 'GroupSize17-ExpIdnormal-0428-atSize38');

let dir: { path: string; remove: () => Promise<void> };
/** The index of known runs the imports write (never the user's). */
const home = () => join(dir.path, 'home');
beforeAll(async () => {
  dir = await tempDir('lockstep-seed-analysis-');
});
afterAll(() => dir.remove());

type Worst = { adjusted: number; multicast: number; computation: number };
/** The seed's `adjusted,multicast,computation` line and the worst bandwidth, from a run report. */
function seedFigures(run: RunReport): { worst: Worst; bandwidth: number } {
  const worst = run.extremes.find((e) => e.kind === 'worst' && e.metric === 'adjusted')!.overall!;
  const bandwidth = run.extremes.find((e) => e.kind === 'worst' && e.metric === 'bandwidth')!.overall!;
  return {
    worst: { adjusted: worst.metrics.adjusted!, multicast: worst.metrics.multicast!, computation: worst.metrics.computation! },
    bandwidth: bandwidth.value,
  };
}

describe('the seed’s sample, imported and analysed with the example spec', () => {
  it('prints the seed’s figures: 605,243,362 for the worst node, 47520 and 19928 as the worst bandwidth', async () => {
    const cwd = join(dir.path, 'sample');
    await mkdir(cwd);
    const imported = await runLockstep(['import', CORRUPTED, NORMAL, '--store', 'store'], { cwd, env: { LOCKSTEP_HOME: home() } });
    expect(imported.status, imported.stderr).toBe(0);
    const lines = imported.stdout.trim().split('\n').map((line) => line.split('\t'));
    expect(lines.map(([, folder]) => folder)).toEqual([CORRUPTED, NORMAL]);
    const sweepId = /Sweep (\S+) \(2 folders/.exec(imported.stderr)![1]!;

    const results = await runLockstep(['results', sweepId, '--store', 'store', '--spec', SPEC, '--json'], { cwd, env: { LOCKSTEP_HOME: home() } });
    expect(results.status, results.stderr).toBe(0);
    const sweep = JSON.parse(results.stdout) as SweepReport;
    const byRun = new Map(sweep.points.map((p) => [p.runId, p.run!]));
    const corrupted = seedFigures(byRun.get(lines[0]![0]!)!);
    expect(`${corrupted.worst.adjusted},${corrupted.worst.multicast},${corrupted.worst.computation}`).toBe('605,243,362');
    expect(corrupted.bandwidth).toBe(47520);
    expect(seedFigures(byRun.get(lines[1]![0]!)!).bandwidth).toBe(19928);

    // A bad declaration in --spec: one line, exit 2.
    await writeFile(join(cwd, 'bad.yaml'), (await readFile(SPEC, 'utf8')).replace('expr: multicast + computation', 'expr: multicast + computaton'));
    const bad = await runLockstep(['results', sweepId, '--store', 'store', '--spec', 'bad.yaml'], { cwd, env: { LOCKSTEP_HOME: home() } });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^lockstep: bad\.yaml:\d+:5: metrics\.0\.expr: Unknown metric `computaton` in `multicast \+ computaton`: did you mean `computation`\?$/),
    ]);

    // The table prints the seed's line, and the relay is left out of every metric.
    expect(formatReport(byRun.get(lines[0]![0]!)!, 'table')).toMatch(/^worst over 8 repeats: repeat \d, rank \d+:\n\s+adjusted,multicast,computation,[a-z_,]+ = 605,243,362,/m);
    expect(byRun.get(lines[0]![0]!)!.metrics.every((m) => m.repeats.every((r) => r.excludedRanks.join() === '16'))).toBe(true);
  });

  it('imports a folder once, says so the second time, and refuses a folder in no known layout with nothing imported', async () => {
    const cwd = join(dir.path, 'twice');
    await mkdir(cwd);
    const first = await importFolders({ store: createFolderStore({ root: join(cwd, 'store') }), home: home(), folders: [CORRUPTED] });
    const runId = first.runs[0]!.runId;
    const again = await runLockstep(['import', CORRUPTED, '--store', 'store'], { cwd, env: { LOCKSTEP_HOME: home() } });
    expect(again.status).toBe(0);
    expect(again.stdout).toBe(`${runId}\t${CORRUPTED}\n`);
    expect(again.stderr).toContain(`already imported as ${runId}; nothing written`);
    // `status` finds it without --store (the import recorded where it went), and says what it is.
    const status = await runLockstep(['status', runId], { cwd: dir.path, env: { LOCKSTEP_HOME: home() } });
    expect(status.stdout.split('\n')[0]).toMatch(new RegExp(`^Imported \\S+ from ${CORRUPTED} \\(seed layout\\): no instances; \`lockstep results ${runId}\` analyses its logs$`));
    const json = await importFolders({ store: createFolderStore({ root: join(cwd, 'store') }), home: home(), folders: [CORRUPTED] });
    expect(json.runs).toEqual([{ runId, folder: CORRUPTED, layout: 'seed', created: false }]);
    expect(await readdir(join(cwd, 'store', 'runs'))).toEqual([runId]);

    // A good folder and a bad one: exit 2, one line, and the good one is not imported either.
    const bad = join(dir.path, 'not-an-experiment');
    await mkdir(join(bad, 'stuff'), { recursive: true });
    const refused = await runLockstep(['import', NORMAL, bad, '--store', 'other'], { cwd, env: { LOCKSTEP_HOME: home() } });
    expect(refused.status).toBe(2);
    expect(refused.stderr.trim().split('\n')).toEqual([
      `lockstep: ${bad}: Not a layout lockstep can import: expected the seed's (\`configuration.txt\` and \`Repeat<r>/logs/stdout/<i>.log\`) or a run downloaded by \`lockstep results\` (\`manifest.json\`)`,
    ]);
    expect(await readdir(join(cwd, 'other')).catch(() => [])).toEqual([]);
  });

  it('refuses a seed folder with a stray log name, an empty repeat or a bad configuration line, one line each (exit 2)', async () => {
    const cwd = join(dir.path, 'stray');
    const folder = join(cwd, 'GroupSize3-ExpIdnormal-0101-atSize2');
    const store = createFolderStore({ root: join(cwd, 'store') });
    const refusal = async () => {
      const error = (await importFolders({ store, home: home(), folders: [folder] }).catch((e: unknown) => e)) as Error & { exitCode?: number };
      expect(error.exitCode).toBe(2);
      return error.message;
    };
    await mkdir(join(folder, 'Repeat1', 'logs', 'stdout'), { recursive: true });
    await writeFile(join(folder, 'configuration.txt'), 'network_size: 2\nprotocol: normal\n');
    await writeFile(join(folder, 'Repeat1', 'logs', 'stdout', 'node-0.log'), 'x\n');
    expect(await refusal()).toBe(`${folder}/Repeat1/logs/stdout/node-0.log: Expected a node log named \`<rank>.log\` (0.log, 1.log, …): move other files out of this folder`);
    await rm(join(folder, 'Repeat1', 'logs', 'stdout', 'node-0.log'));
    expect(await refusal()).toBe(`${folder}/Repeat1/logs/stdout: No \`<i>.log\` file: nothing to import for this repeat`);
    await writeFile(join(folder, 'Repeat1', 'logs', 'stdout', '0.log'), 'x\n');
    await mkdir(join(folder, 'Repeat2'));
    expect(await refusal()).toBe(`${folder}/Repeat2: No \`logs/stdout/\` folder: the seed's layout keeps the logs in \`Repeat<r>/logs/stdout/<i>.log\``);
    await rm(join(folder, 'Repeat2'), { recursive: true });
    await writeFile(join(folder, 'configuration.txt'), 'network_size 2\n');
    expect(await refusal()).toBe(`${folder}/configuration.txt:1: Expected a \`key: value\` line, got \`network_size 2\``);
    expect(await readdir(join(cwd, 'store')).catch(() => [])).toEqual([]);
  });
});

describe('generated folders of the same experiment (other N and protocols)', () => {
  const folders: SeedFolder[] = [];
  let sweep: SweepReport;
  let sweepId: string;
  const store = () => createFolderStore({ root: join(dir.path, 'generated-store') });

  beforeAll(async () => {
    for (const nodes of [16, 32, 64]) {
      for (const protocol of ['normal', 'corrupted']) folders.push(await writeSeedFolder(join(dir.path, 'generated'), { nodes, protocol, repeats: 4 }));
    }
    const outcome = await importFolders({ store: store(), home: home(), folders: folders.map((f) => f.folder), specSource: await readFile(SPEC, 'utf8'), sweepName: 'anytrust-dkg' });
    sweepId = outcome.sweep!.sweepId;
    expect(outcome.sweep!.keys).toEqual(['instances', 'params.network_size', 'params.protocol', 'params.groupSize', 'params.expId']);
    sweep = (await collectResults({ id: sweepId, store: store(), outDir: join(dir.path, 'generated-out') })).report as SweepReport;
  }, 120_000);

  it('give the seed’s figures for every folder', () => {
    for (const folder of folders) {
      const point = sweep.points.find((p) => p.run?.imported?.from === folder.folder)!;
      expect(seedFigures(point.run!), folder.name).toEqual(folder.expected);
    }
  });

  it('chart against N with one line per protocol (the spec’s `analysis.sweep`)', () => {
    expect(sweep.axes).toEqual({ x: 'instances', lines: ['params.protocol'] });
  });

  it('print every node’s values as tidy CSV, derived metrics included, for the whole sweep', () => {
    const text = formatReport(sweep, 'per-node-csv');
    const rows = parseCsv(text);
    expect(text.split('\n')[0]).toBe('point,instances,params.network_size,params.protocol,params.groupSize,params.expId,run,repeat,rank,metric,value');
    // 6 folders × 4 repeats × N DKG nodes × 6 metrics (the relays are left out).
    expect(rows.length).toBe(4 * 6 * (16 + 32 + 64) * 2);
    const worst = folders[5]!; // 64 nodes, corrupted
    const point = sweep.points.find((p) => p.run?.imported?.from === worst.folder)!;
    const adjusted = rows.filter((r) => r.run === point.runId && r.metric === 'adjusted').map((r) => Number(r.value));
    expect(Math.max(...adjusted)).toBe(worst.expected.worst.adjusted);
    expect(rows.filter((r) => r.run === point.runId && r.rank === '64')).toEqual([]);
  });

  it('a run downloaded by `lockstep results` moves to another store as the same run', async () => {
    const point = sweep.points[0]!;
    const copy = join(dir.path, 'moved', point.runId!);
    await cp(point.run!.dir, copy, { recursive: true });
    const other = createFolderStore({ root: join(dir.path, 'other-store') });
    const moved = await importFolders({ store: other, home: home(), folders: [copy] });
    expect(moved.runs).toEqual([{ runId: point.runId, folder: copy, layout: 'lockstep', created: true }]);
    const again = (await collectResults({ id: point.runId!, store: other, outDir: join(dir.path, 'moved-out') })).report as RunReport;
    expect(seedFigures(again)).toEqual(seedFigures(point.run!));
    expect((await importFolders({ store: other, home: home(), folders: [copy] })).runs[0]!.created).toBe(false);
  });
});
