import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunManifest } from '../../src/core/manifest.ts';
import { loadLocalRun, type LocalRun } from '../../src/results/local-run.ts';
import { extractMetrics, MetricSpecError, type AnalysisInput } from '../../src/results/metrics.ts';
import { analyseRun } from '../../src/results/report.ts';
import { formatReport } from '../../src/results/results.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { tempDir } from './fixture.ts';

/**
 * The metric kinds beyond one regex per line: `after` (the value on a line after a label), `expr`
 * (derived per node), `exclude`, `worst`/`best`, and what a metric that found nothing says.
 */

let dir: { path: string; remove: () => Promise<void> };
beforeAll(async () => {
  dir = await tempDir('lockstep-metric-kinds-');
});
afterAll(() => dir.remove());

interface HandNode {
  readonly stdout?: string;
  readonly files?: Record<string, string>;
  readonly groups?: string[];
}

/** A downloaded run written by hand: repeats → ranks → files. */
async function handRun(name: string, repeats: HandNode[][], manifest: Partial<RunManifest> = {}): Promise<LocalRun> {
  const root = join(dir.path, name);
  const n = Math.max(...repeats.map((r) => r.length));
  await mkdir(root, { recursive: true });
  const full = { formatVersion: 1, runId: name, name, createdAt: '2025-01-01T00:00:00.000Z', instances: n, repeats: repeats.length, params: {}, groups: [], collect: [], specSource: '', ...manifest };
  await writeFile(join(root, 'manifest.json'), JSON.stringify(full));
  for (const [r, nodes] of repeats.entries()) {
    for (const [rank, node] of nodes.entries()) {
      const nodeDir = join(root, `repeat-${r + 1}`, `rank-${rank}`);
      await mkdir(nodeDir, { recursive: true });
      if (node.stdout !== undefined) await writeFile(join(nodeDir, 'stdout.log'), node.stdout);
      for (const [file, text] of Object.entries(node.files ?? {})) {
        await mkdir(join(nodeDir, 'files', ...file.split('/').slice(0, -1)), { recursive: true });
        await writeFile(join(nodeDir, 'files', ...file.split('/')), text);
      }
      if (node.groups) await writeFile(join(nodeDir, 'result.json'), JSON.stringify({ rank, groups: node.groups }));
    }
  }
  return loadLocalRun(root);
}

/** A node's log in the seed's style: label line, value line. */
const seedLog = (send: number, receive: number, computation: number, data: number, relay = false) =>
  [
    ...(relay ? ['blockchain took # ms to receive the first packet broadcastBlockchainRelay', '106'] : []),
    'time to send multicast complaint',
    String(send),
    'time to receive multicast complaint',
    String(receive),
    'total computation cost:',
    String(computation),
    'total data:',
    String(data),
    String(Math.floor(data * 0.9)),
    '34',
  ].join('\n') + '\n';

const SEED_METRICS = {
  metrics: [
    { name: 'adjusted', expr: 'multicast + computation', unit: 'ms' },
    { name: 'multicast', expr: 'multicast_send + multicast_receive', unit: 'ms' },
    { name: 'computation', after: 'total computation cost:', unit: 'ms' },
    { name: 'multicast_send', after: 'time to send multicast complaint' },
    { name: 'multicast_receive', after: '^time to receive multicast complaint$' },
    { name: 'total_data', after: 'total data:', unit: 'B' },
    { name: 'data_rounds', after: 'total data:', skip: 3 },
  ],
  analysis: { exclude: { match: 'broadcastBlockchainRelay' }, worst: ['adjusted', 'total_data'], best: 'adjusted' },
} satisfies AnalysisInput;

describe('after, expr, exclude, worst and best', () => {
  let run: LocalRun;
  beforeAll(async () => {
    run = await handRun('seedlike', [
      [{ stdout: seedLog(10, 100, 300, 1000) }, { stdout: seedLog(20, 200, 100, 3000) }, { stdout: seedLog(1, 1, 1, 99_999, true) }],
      [{ stdout: seedLog(50, 300, 255, 2000) }, { stdout: seedLog(5, 100, 50, 500) }, { stdout: seedLog(1, 1, 1, 99_999, true) }],
    ]);
  });

  it('reads the value on the line after a label (and the n-th line with skip), per node', async () => {
    const { metrics } = await extractMetrics(run, SEED_METRICS);
    const byRank = (name: string, repeat: number) => metrics.find((m) => m.name === name)!.repeats[repeat - 1]!.byRank.map((n) => [n.rank, n.value]);
    expect(byRank('multicast_send', 1)).toEqual([[0, 10], [1, 20]]);
    expect(byRank('total_data', 2)).toEqual([[0, 2000], [1, 500]]);
    expect(byRank('data_rounds', 1)).toEqual([[0, 34], [1, 34]]);
    expect(byRank('computation', 2)).toEqual([[0, 255], [1, 50]]);
  });

  it('derives per node from the same node’s other metrics, in dependency order', async () => {
    const { metrics } = await extractMetrics(run, SEED_METRICS);
    const adjusted = metrics.find((m) => m.name === 'adjusted')!;
    expect(adjusted.source).toBe('expr');
    expect(adjusted.repeats.map((r) => r.byRank.map((n) => n.value))).toEqual([
      [410, 320],
      [605, 155],
    ]);
    expect(adjusted.repeats[1]!.stats!.max).toBe(605);
  });

  it('leaves out the nodes whose log matches `analysis.exclude`', async () => {
    const { metrics } = await extractMetrics(run, SEED_METRICS);
    for (const metric of metrics) {
      expect(metric.repeats.map((r) => r.excludedRanks)).toEqual([[2], [2]]);
      expect(metric.repeats.every((r) => r.byRank.every((n) => n.rank !== 2))).toBe(true);
    }
  });

  it('finds the worst (and best) node per repeat with its other metrics, then over repeats', async () => {
    const { extremes } = await extractMetrics(run, SEED_METRICS);
    const worst = extremes.find((e) => e.kind === 'worst' && e.metric === 'adjusted')!;
    expect(worst.repeats.map((n) => [n.repeat, n.rank, n.value])).toEqual([
      [1, 0, 410],
      [2, 0, 605],
    ]);
    expect(worst.overall).toMatchObject({ repeat: 2, rank: 0, value: 605, metrics: { adjusted: 605, multicast: 350, computation: 255 } });
    expect(extremes.find((e) => e.metric === 'total_data')!.overall).toMatchObject({ repeat: 1, rank: 1, value: 3000 });
    expect(extremes.find((e) => e.kind === 'best')!.overall).toMatchObject({ repeat: 2, rank: 1, value: 155 });
  });

  it('excludes by rank and by group, for all metrics or for one', async () => {
    const grouped = await handRun('grouped', [
      [{ stdout: 'v=1\n', groups: [] }, { stdout: 'v=2\n', groups: ['relay'] }, { stdout: 'v=3\n', groups: [] }, { stdout: 'v=4\n', groups: [] }],
    ], { groups: [{ name: 'relay', ranks: '1', params: {} }] });
    const { metrics } = await extractMetrics(grouped, {
      metrics: [
        { name: 'all', regex: 'v=(?<value>\\d+)' },
        { name: 'some', regex: 'v=(?<value>\\d+)', exclude: { ranks: '3-' } },
        { name: 'doubled', expr: 'some * 2' },
      ],
      analysis: { exclude: { groups: ['relay'] } },
    });
    const values = (name: string) => metrics.find((m) => m.name === name)!.repeats[0]!.byRank.map((n) => n.value);
    expect(values('all')).toEqual([1, 3, 4]);
    expect(values('some')).toEqual([1, 3]);
    expect(values('doubled')).toEqual([2, 6]);
    await expect(extractMetrics(grouped, { metrics: [{ name: 'all', regex: 'v=(?<value>\\d+)' }], analysis: { exclude: { groups: ['relays'] } } })).rejects.toThrow(
      /no group `relays` in this run \(its groups: relay\)/,
    );
  });

  it('a derived value needs every operand and a finite result', async () => {
    const partial = await handRun('partial', [[{ stdout: 'a=4\nb=2\n' }, { stdout: 'a=4\n' }, { stdout: 'a=4\nb=0\n' }]]);
    const { metrics } = await extractMetrics(partial, [
      { name: 'a', regex: 'a=(?<value>\\d+)' },
      { name: 'b', regex: 'b=(?<value>\\d+)' },
      { name: 'ratio', expr: '(a - 1) / b' },
    ]);
    expect(metrics[2]!.repeats[0]!.byRank).toEqual([{ rank: 0, count: 1, value: 1.5 }]);
  });
});

describe('a metric that found nothing says so', () => {
  it('names the collected file it looked for and that `collect` does not list it', async () => {
    const run = await handRun('uncollected', [[{ stdout: 'x\n' }, { stdout: 'x\n' }]], { collect: ['results/'] });
    const { metrics } = await extractMetrics(run, [{ name: 'bytes_out', regex: '^bytes_out (?<value>\\d+)$', file: 'stats/summary.txt' }]);
    expect(metrics[0]!.nothingFound).toBe(
      'looked for files/stats/summary.txt: no node has it, and `collect` does not list it: add `stats/summary.txt` (or its folder) to `collect`, or have the command write it to {{outputDir}}',
    );
  });

  it('shows one row, "found nothing", and the reason under the table, instead of rows of dashes', async () => {
    await handRun('summary', [[{ stdout: 'x\n' }, { stdout: 'y\n' }]], {
      collect: [],
      specSource: 'metrics:\n  - name: bytes_out\n    regex: "^bytes_out (?<value>[0-9]+)$"\n    file: stats/summary.txt\n',
    });
    const report = await analyseRun(join(dir.path, 'summary'));
    const table = formatReport(report, 'table').replaceAll('\n  ', ' ');
    expect(table).toMatch(/^bytes_out\s+found nothing\s*$/m);
    expect(table).not.toMatch(/^bytes_out (min|samples)/m);
    expect(table).toContain('bytes_out found nothing: looked for files/stats/summary.txt: no node has it, and `collect` does not list it');
  });

  it('says when `collect` lists the file but no node uploaded it', async () => {
    const run = await handRun('listed', [[{ stdout: 'x\n' }]], { collect: ['stats'] });
    const { metrics } = await extractMetrics(run, [{ name: 'bytes_out', regex: '^bytes_out (?<value>\\d+)$', file: 'stats/summary.txt' }]);
    expect(metrics[0]!.nothingFound).toMatch(/^looked for files\/stats\/summary\.txt: no node has it, although `collect` lists `stats`/);
  });

  it('says that `collect` brought the file home, and what did not match', async () => {
    const run = await handRun('nomatch', [[{ files: { 'stats/summary.txt': 'bytes_in 5\n' } }, { files: { 'stats/summary.txt': 'bytes_out x\n' } }]], { collect: ['stats/summary.txt'] });
    const { metrics } = await extractMetrics(run, [
      { name: 'bytes_out', regex: '^bytes_out (?<value>\\d+)$', file: 'stats/summary.txt' },
      { name: 'bytes_word', regex: '^bytes_out (?<value>\\w+)$', file: 'stats/summary.txt' },
    ]);
    expect(metrics[0]!.nothingFound).toBe(
      'looked in files/stats/summary.txt (`collect` brought it home from 2 of 2 nodes): no line matched `^bytes_out (?<value>\\d+)$`',
    );
    expect(metrics[1]!.nothingFound).toMatch(/matched 1 line\(s\), but its `value` was never a number$/);
  });

  it('says when a label was found but the line after held no number, and which operands of an expr were empty', async () => {
    const run = await handRun('nonumber', [[{ stdout: 'total data:\nnone\n' }]]);
    const { metrics } = await extractMetrics(run, [
      { name: 'data', after: 'total data:' },
      { name: 'twice', expr: 'data * 2' },
    ]);
    expect(metrics[0]!.nothingFound).toBe('looked in stdout.log (1 of 1 node have it): `total data:` matched 1 line(s), but the next line held no number');
    expect(metrics[1]!.nothingFound).toBe('no node had a value of every metric in `data * 2` (`data` found nothing)');
  });
});

describe('declarations refused when the spec is loaded, one line each', () => {
  const spec = (metrics: string, analysis = '') => `name: x\ninstances: 2\nrun: echo\nmetrics:\n${metrics}${analysis}`;
  const problem = (text: string) => {
    try {
      parseSpec(text, { file: 'spec.yaml' });
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error('the spec was accepted');
  };

  it.each([
    [
      'an unknown name in expr',
      spec('  - name: send\n    after: "send"\n  - name: total\n    expr: "send + recieve"\n'),
      'spec.yaml:8:5: metrics.1.expr: Unknown metric `recieve` in `send + recieve`: declared metrics: send, total',
    ],
    [
      'a near miss in expr',
      spec('  - name: receive\n    after: "r"\n  - name: total\n    expr: "recieve * 2"\n'),
      'spec.yaml:8:5: metrics.1.expr: Unknown metric `recieve` in `recieve * 2`: did you mean `receive`?',
    ],
    [
      'a cycle between derived metrics',
      spec('  - name: a\n    expr: "b + 1"\n  - name: b\n    expr: "c * 2"\n  - name: c\n    expr: "a"\n'),
      'spec.yaml:6:5: metrics.0.expr: Derived metrics depend on each other in a cycle: a → b → c → a; one of them must read its value from the logs',
    ],
    [
      'a malformed expr',
      spec('  - name: a\n    after: "x"\n  - name: b\n    expr: "a + * 2"\n'),
      'spec.yaml:8:5: metrics.1.expr: Expected a metric name, a number or `(`, got `*` at column 5 of `a + * 2`',
    ],
    [
      '`number` with no capture of the number',
      spec('  - name: a\n    after: "total data:"\n    number: "bytes [0-9]+"\n'),
      'spec.yaml:7:5: metrics.0.number: Expected a named capture `(?<value>…)` that captures the number, e.g. `sent (?<value>[0-9]+) bytes`, got `"bytes [0-9]+"`',
    ],
    [
      'a value capture in the label',
      spec('  - name: a\n    after: "total (?<value>[0-9]+)"\n'),
      'spec.yaml:6:5: metrics.0.after: The value is on a line after the one `after` matches: remove `(?<value>…)` here, and pick the number with `number` if the first one is not it, got `"total (?<value>[0-9]+)"`',
    ],
    [
      '`skip` without `after`',
      spec('  - name: a\n    regex: "a=(?<value>[0-9]+)"\n    skip: 2\n'),
      'spec.yaml:7:5: metrics.0.skip: `skip` counts lines after the line `after` matches: add `after`, or remove `skip`',
    ],
    [
      'a label that matches every line',
      spec('  - name: a\n    after: ".*"\n'),
      'spec.yaml:6:5: metrics.0.after: This regular expression matches every line: make it more specific, got `".*"`',
    ],
    [
      'an expr that names a file',
      spec('  - name: a\n    after: "x"\n  - name: b\n    expr: "a"\n    file: stderr.log\n'),
      'spec.yaml:9:5: metrics.1.file: A derived metric (`expr`) reads no file and has one value per node: remove `file`',
    ],
    [
      'two kinds at once',
      spec('  - name: a\n    after: "x"\n    json: true\n'),
      'spec.yaml:5:5: metrics.0: A metric needs exactly one of `regex`, `json: true`, `after` or `expr`; this one has `json` and `after`',
    ],
    [
      'an unknown worst metric',
      spec('  - name: adjusted\n    after: "x"\n', 'analysis:\n  worst: ajdusted\n'),
      'spec.yaml:8:3: analysis.worst: Unknown metric `ajdusted`: did you mean `adjusted`?',
    ],
    [
      'an exclude with nothing to exclude',
      spec('  - name: a\n    after: "x"\n', 'analysis:\n  exclude: {}\n'),
      'spec.yaml:8:3: analysis.exclude: An `exclude` needs at least one of `match`, `ranks` or `groups`, got `{}`',
    ],
  ])('%s', (_, text, message) => {
    const got = problem(text);
    expect(got).toBe(message);
    expect(got).not.toContain('\n');
  });

  it('a metric name with `-` used in expr is explained', () => {
    expect(problem(spec('  - name: multicast-send\n    after: "x"\n  - name: b\n    expr: "multicast-send * 2"\n'))).toMatch(
      /Unknown metric `multicast` in `multicast-send \* 2`: `multicast-send` reads as a subtraction in `expr`: rename it without `-`$/,
    );
  });

  it('the same refusals come from a recorded spec, as a MetricSpecError (exit 2)', async () => {
    const run = await handRun('bad', [[{ stdout: 'x\n' }]]);
    const error = await extractMetrics(run, [{ name: 'a', expr: 'a + 1' }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MetricSpecError);
    expect((error as MetricSpecError).exitCode).toBe(2);
    expect((error as Error).message).toMatch(/metrics\.0\.expr: Derived metrics depend on each other in a cycle: a → a/);
  });
});
