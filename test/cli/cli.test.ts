import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLockstep as lockstep } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp.ts';

function project(spec: string): { cwd: string; env: Record<string, string> } {
  const cwd = tempDir('cli');
  mkdirSync(join(cwd, 'app'));
  writeFileSync(join(cwd, 'app', 'hello.sh'), 'echo "hello from $LOCKSTEP_RANK of $LOCKSTEP_N"\n[ "$LOCKSTEP_RANK" != "$1" ]\n');
  writeFileSync(join(cwd, 'spec.yaml'), spec);
  return { cwd, env: { LOCKSTEP_HOME: join(cwd, 'home') } };
}

const good = 'name: hello\ninstances: 3\nartifact: ./app\nrun: sh hello.sh -1\nstartDelay: 300ms\n';

describe('lockstep CLI: bad specs', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['malformed YAML', 'name: hello\ninstances: [3\nrun: x\n', /spec\.yaml:\d+:\d+: Malformed YAML/],
    ['an unknown key', good + 'instnaces: 4\n', /spec\.yaml:6:1: instnaces: Unknown key `instnaces`: did you mean `instances`\?/],
    ['instances: 0', good.replace('instances: 3', 'instances: 0'), /spec\.yaml:2:1: instances: Expected a number greater than 0, got `0`/],
    ['an unknown template variable', good.replace('-1', '{{rnak}}'), /spec\.yaml:4:1: run: Unknown template variable \{\{rnak\}\}/],
    ['a missing artifact', good.replace('./app', './missing'), /spec\.yaml:3:1: artifact: No file or folder at .*missing: fix the path/],
  ];
  for (const [name, spec, message] of cases) {
    it(`refuses ${name} with one line, exit 2, and starts nothing`, async () => {
      const { cwd, env } = project(spec);
      const result = await lockstep(['run', 'spec.yaml'], { cwd, env });
      expect(result.status).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(message);
      expect(existsSync(join(cwd, '.lockstep'))).toBe(false);
      expect(existsSync(join(cwd, 'home'))).toBe(false);
    });
  }

  it('refuses a bad --set the same way', async () => {
    const { cwd, env } = project(good);
    const result = await lockstep(['run', 'spec.yaml', '--set', 'repeats=0'], { cwd, env });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('repeats: Expected a number greater than 0, got `0`');
    expect(result.stderr).toContain('(--set repeats=0)');
  });

  it('refuses a mistyped option with exit 2 and launches nothing', async () => {
    const { cwd, env } = project(good);
    const result = await lockstep(['run', 'spec.yaml', '--dryrun'], { cwd, env });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe('lockstep: Unknown option `--dryrun`: did you mean `--dry-run`? (see `lockstep run --help`)\n');
    expect(existsSync(join(cwd, '.lockstep'))).toBe(false);
    expect(existsSync(join(cwd, 'home'))).toBe(false);
  });

  it('refuses an unknown command with exit 2', async () => {
    const result = await lockstep(['frobnicate'], { cwd: tempDir('cli') });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('Unknown command');
  });

  it('explains itself with --help', async () => {
    const result = await lockstep(['run', '--help'], { cwd: tempDir('cli') });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('--set');
  });
});

describe('lockstep CLI: runs', () => {
  it('runs, lists, shows status and logs, with --json for scripts', async () => {
    const { cwd, env } = project(good.replace('instances: 3', 'instances: 3\nrepeats: 2'));
    const run = await lockstep(['run', 'spec.yaml', '--json', '--set', 'instances=2'], { cwd, env });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary).toMatchObject({ ok: true, state: 'done' });
    expect(summary.repeats).toHaveLength(2);
    expect(summary.repeats[0]).toMatchObject({ repeat: 1, members: 2, succeeded: 2, failed: [] });
    expect(summary.repeats[0].skewMs).toBeGreaterThanOrEqual(0);

    const ls = JSON.parse((await lockstep(['ls', '--json'], { cwd, env })).stdout);
    expect(ls.items.map((r: { id: string }) => r.id)).toEqual([summary.runId]);

    const status = await lockstep(['status', summary.runId, '--json'], { cwd, env });
    expect(JSON.parse(status.stdout)).toMatchObject({ runId: summary.runId, state: 'done' });

    const log = await lockstep(['logs', summary.runId, '--repeat', '2', '--rank', '1'], { cwd, env });
    expect(log.stdout).toBe('hello from 1 of 2\n');
    const where = JSON.parse((await lockstep(['logs', summary.runId, '--json'], { cwd, env })).stdout);
    expect(where.nodes).toHaveLength(4);
    expect(readdirSync(join(where.location, 'repeats', '1', 'nodes', '0')).sort()).toEqual(['result.json', 'stderr.log', 'stdout.log']);

    expect(await lockstep(['status', 'no-such-run'], { cwd, env })).toMatchObject({ status: 2 });
  });

  it('exits non-zero when a rank fails, and prints the failure', async () => {
    const { cwd, env } = project(good.replace('-1', '2'));
    const run = await lockstep(['run', 'spec.yaml'], { cwd, env });
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/repeat 1 rank 2 \(local-[0-9a-f]+\): failed, exit 1/);
    // Said once: progress on stderr counts the failure, the summary on stdout names it (the results after it count it by rank).
    expect(run.stdout.match(/ rank 2 \(/g)).toHaveLength(1);
    expect(run.stderr).not.toContain('rank 2');
    expect(run.stderr).toMatch(/^Repeat 1: failed \(ready 3\/3 · done 3\/3 · 1 failed\)$/m);
    expect(run.stderr).not.toMatch(/FAILED|\u001b\[/);
  });

  it('runs a sweep: one run per matrix point, recorded under one sweep id', async () => {
    const { cwd, env } = project(good + 'params:\n  mode: a\nmatrix:\n  instances: [1, 2]\n  params.mode: [a, b]\n');
    const run = await lockstep(['run', 'spec.yaml', '--json'], { cwd, env });
    expect(run.status).toBe(0);
    const sweep = JSON.parse(run.stdout);
    expect(sweep.runs.map((r: { values: object }) => r.values)).toEqual([
      { instances: 1, 'params.mode': 'a' },
      { instances: 1, 'params.mode': 'b' },
      { instances: 2, 'params.mode': 'a' },
      { instances: 2, 'params.mode': 'b' },
    ]);
    expect(sweep.runs.every((r: { ok: boolean }) => r.ok)).toBe(true);
    const record = JSON.parse(readFileSync(join(cwd, '.lockstep', 'store', 'sweeps', `${sweep.sweepId}.json`), 'utf8'));
    expect(record.points.map((p: { runId?: string }) => p.runId)).toEqual(sweep.runs.map((r: { runId: string }) => r.runId));
    const status = JSON.parse((await lockstep(['status', sweep.runs[3].runId, '--json'], { cwd, env })).stdout);
    expect(status.repeats[0].members).toBe(2);
  });

  it('refuses a sweep with a bad point before launching anything', async () => {
    const { cwd, env } = project(good + 'matrix:\n  instances: [2, 0]\n');
    const run = await lockstep(['run', 'spec.yaml'], { cwd, env });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('instances');
    expect(existsSync(join(cwd, '.lockstep', 'store', 'runs'))).toBe(false);
  });
});

