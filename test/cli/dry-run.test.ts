import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLockstep } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp.ts';

const base = 'name: plan\ninstances: 2\nrun: echo hi\n';

async function dryRun(spec: string, args: string[] = []) {
  const cwd = tempDir('dry');
  writeFileSync(join(cwd, 'spec.yaml'), spec);
  const result = await runLockstep(['run', 'spec.yaml', '--dry-run', ...args], { cwd, env: { LOCKSTEP_HOME: join(cwd, 'home') } });
  // Nothing launched, nothing written.
  expect(existsSync(join(cwd, 'home')), 'launched').toBe(false);
  expect(existsSync(join(cwd, '.lockstep')), 'wrote the store').toBe(false);
  return result;
}

describe('lockstep run --dry-run', () => {
  it('refuses what run refuses: a bad sweep point (at its matrix line) or store, exit 2', async () => {
    const cases: Array<[string, RegExp]> = [
      [`${base}matrix:\n  instance: [2, 3]\n`, /^lockstep: spec\.yaml:5:3 \(matrix point instance=2\): instance: Unknown key `instance`: did you mean `instances`\?\n$/],
      [`${base}matrix:\n  instances: [2, 0]\n`, /^lockstep: spec\.yaml:5:3 \(matrix point instances=0\): instances: Expected a number greater than 0, got `0`\n$/],
      [`${base}store: ftp://x/y\n`, /^lockstep: Unknown store `ftp:\/\/x\/y`: use a folder path or s3:\/\/bucket\/prefix\n$/],
    ];
    for (const [spec, message] of cases) {
      const result = await dryRun(spec);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });

  it('shows the sweep’s points, the isolation, the network, and each rank’s groups and params', async () => {
    const spec = `${base}params:\n  role: honest\ngroups:\n  - name: leader\n    ranks: "0"\n    params: { role: leader }\n  - name: adversaries\n    count: 2\n    params: { role: adversary }\nmatrix:\n  instances: [3, 5]\n`;
    const result = await dryRun(spec);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('each with its own loopback address (isolation: loopback)');
    expect(result.stdout).toContain('Network emulation: none');
    expect(result.stdout).toMatch(/Sweep of 2 points, one run each \(every point checked\):\n +POINT +VALUES +INSTANCES\n +1 +instances=3 +3\n +2 +instances=5 +5\n/);
    expect(result.stdout).toMatch(/Ranks at point 2 \(instances=5\):\n +RANKS +GROUPS +PARAMS\n +0 +leader +role=leader\n +1-2 +adversaries +role=adversary\n +3-4 +- +role=honest\n/);
    expect(result.stdout).toMatch(/Nothing was launched\.\n$/);
    const json = JSON.parse((await dryRun(spec, ['--json'])).stdout);
    expect(json.points.map((p: { ranks: unknown[] }) => p.ranks.length)).toEqual([2, 3]);
    expect(json.points[1].ranks[1]).toEqual({ ranks: '1-2', groups: ['adversaries'], params: { role: 'adversary' } });
  });
});
