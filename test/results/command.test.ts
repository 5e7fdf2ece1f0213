import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from 'citty';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { progressBar, resultsCommand, runResultsCommand } from '../../src/cli/commands/results.ts';
import { UsageError } from '../../src/cli/errors.ts';
import { RunNotFoundError } from '../../src/controller/status.ts';
import { LocalResultsMissingError } from '../../src/results/errors.ts';
import type { RunReport } from '../../src/results/report.ts';
import { printSummary } from '../../src/results/results.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import { parseCsv, tempDir, writeFakeRun, type FakeRun } from './fixture.ts';

let dir: { path: string; remove: () => Promise<void> };
let fake: FakeRun;

beforeAll(async () => {
  dir = await tempDir();
  fake = await writeFakeRun(createFolderStore({ root: join(dir.path, 'store') }), { instances: 3, repeats: 2 });
});
afterAll(() => dir.remove());

function capture() {
  const chunks: string[] = [];
  return { write: (text: string) => chunks.push(text), text: () => chunks.join('') };
}

describe('lockstep results', () => {
  it('downloads into lockstep-results/ below cwd and prints the table', async () => {
    const out = capture();
    const report = (await runResultsCommand({ id: fake.runId, store: 'store', cwd: dir.path, write: out.write, progress: false })) as RunReport;
    expect(existsSync(join(dir.path, 'lockstep-results', fake.runId, 'repeat-2', 'rank-2', 'stdout.log'))).toBe(true);
    expect(out.text()).toContain(`run ${fake.runId} · N=3 · 2 repeats`);
    expect(report.figures.repeats).toHaveLength(2);
  });

  it('prints --json and --csv with the same numbers, without touching the store when --no-download', async () => {
    const json = capture();
    await runResultsCommand({ id: fake.runId, json: true, download: false, cwd: dir.path, write: json.write });
    const report = JSON.parse(json.text()) as RunReport;
    const csv = capture();
    await runResultsCommand({ id: fake.runId, csv: true, download: false, cwd: dir.path, write: csv.write });
    const skew = parseCsv(csv.text()).find((r) => r.kind === 'figure' && r.name === 'startSkewMs' && r.repeat === '2')!;
    expect(Number(skew.value)).toBe(report.figures.repeats[1]!.values.startSkewMs);
  });

  it('writes the HTML report to --html', async () => {
    await runResultsCommand({ id: fake.runId, download: false, cwd: dir.path, html: 'report/index.html', write: () => {} });
    const html = await readFile(join(dir.path, 'report', 'index.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain(fake.runId);
  });

  it('takes metrics from --spec instead of the run’s own', async () => {
    await writeFile(
      join(dir.path, 'other.yaml'),
      'name: x\ninstances: 1\nrun: echo\nmetrics:\n  - name: sent_bytes\n    regex: "\\\\((?<value>\\\\d+) bytes\\\\)"\n',
    );
    const out = capture();
    const report = (await runResultsCommand({ id: fake.runId, download: false, cwd: dir.path, spec: 'other.yaml', json: true, write: out.write })) as RunReport;
    expect(report.metrics.map((m) => m.name)).toEqual(['sent_bytes']);
    expect(report.metrics[0]!.repeats[0]!.samples).toBe(3 * 40 * 4);
  });

  it('prints every node’s values as `run,repeat,rank,metric,value` with --csv --per-node, and refuses --per-node alone', async () => {
    const out = capture();
    await runResultsCommand({ id: fake.runId, download: false, cwd: dir.path, csv: true, perNode: true, write: out.write });
    const lines = out.text().trim().split('\n');
    expect(lines[0]).toBe('run,repeat,rank,metric,value');
    const rows = parseCsv(out.text());
    // Per node: the framework's figures and each metric the node had.
    const node = fake.repeats[1]!.nodes[2]!;
    const of = (metric: string) => rows.find((r) => r.repeat === '2' && r.rank === '2' && r.metric === metric)?.value;
    expect(Number(of('durationMs'))).toBe(node.result!.durationMs);
    expect(Number(of('bytes_out'))).toBe(node.samples.bytes_out![0]);
    expect(Number(of('retransmits'))).toBe(node.samples.retransmits!.at(-1));
    expect(rows.every((r) => r.value !== '')).toBe(true);
    await expect(runResultsCommand({ id: fake.runId, download: false, cwd: dir.path, perNode: true, write: () => {} })).rejects.toThrow(
      /`--per-node` prints rows for a script: add --csv \(or --json\)/,
    );
  });

  it('parses its arguments with citty, --no-download included', async () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const cwd = vi.spyOn(process, 'cwd').mockReturnValue(dir.path);
    try {
      await runCommand(resultsCommand, { rawArgs: [fake.runId, '--no-download', '--json'] });
      const printed = write.mock.calls.map((c) => String(c[0])).join('');
      expect((JSON.parse(printed) as RunReport).runId).toBe(fake.runId);
    } finally {
      write.mockRestore();
      cwd.mockRestore();
    }
  });

  it('fails with typed errors that name the fix', async () => {
    await expect(runResultsCommand({ id: 'r-missing', store: 'store', cwd: dir.path, write: () => {}, progress: false })).rejects.toThrow(
      RunNotFoundError,
    );
    await expect(runResultsCommand({ id: 'r-missing', download: false, cwd: dir.path, write: () => {} })).rejects.toThrow(
      LocalResultsMissingError,
    );
    await expect(runResultsCommand({ id: fake.runId, csv: true, json: true, cwd: dir.path })).rejects.toThrow(UsageError);
    await expect(runResultsCommand({ id: fake.runId, concurrency: 0, cwd: dir.path })).rejects.toThrow(/positive integer/);
  });

  it('printSummary (the end of lockstep run) prints the table', async () => {
    const out = capture();
    const store = createFolderStore({ root: join(dir.path, 'store') });
    await printSummary({ id: fake.runId, store, cwd: dir.path, write: out.write });
    expect(out.text()).toMatch(/^start skew\s/m);
  });

  it('draws a progress bar', () => {
    expect(progressBar({ filesDone: 5, filesTotal: 10, bytesDone: 512, bytesTotal: 1024, fetched: 3, skipped: 2 }, 10)).toBe(
      '[█████░░░░░] 50% 5/10 files 512 B/1 KiB (2 up to date)',
    );
  });
});
