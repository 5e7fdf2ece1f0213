import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLockstep as lockstep } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp.ts';

const spec = [
  'name: planned',
  'instances: 5',
  'repeats: 2',
  'artifact: ./app',
  'run: sh run.sh',
  'faults:',
  '  - { action: pause, at: 1s, duration: 2s, targets: "4", repeats: "2" }',
  '  - { action: kill, at: 3s, targets: { random: { count: 1 } } }',
].join('\n');

describe('lockstep run --dry-run with faults', () => {
  it('prints the planned timeline, says which random choice has no seed, and launches nothing', async () => {
    const cwd = tempDir('faults-dry-run');
    mkdirSync(join(cwd, 'app'));
    writeFileSync(join(cwd, 'app', 'run.sh'), 'true\n');
    writeFileSync(join(cwd, 'spec.yaml'), `${spec}\n`);
    const result = await lockstep(['run', 'spec.yaml', '--dry-run'], { cwd, env: { LOCKSTEP_HOME: join(cwd, 'home') } });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Faults planned');
    expect(result.stdout).toMatch(/faults\.0 #1\s+pause\s+rank 4\s+T\+1\.00 s → T\+3\.00 s\s+2\n/);
    expect(result.stdout).toMatch(/faults\.1 #1\s+kill\s+rank \d\s+T\+3\.00 s → end\s+1-2\n/);
    expect(result.stdout).toContain('faults.1: no seed in the spec');
    expect(existsSync(join(cwd, '.lockstep', 'store', 'runs'))).toBe(false);

    const json = await lockstep(['run', 'spec.yaml', '--dry-run', '--json'], { cwd, env: { LOCKSTEP_HOME: join(cwd, 'home') } });
    expect(json.status).toBe(0);
    const { faults } = JSON.parse(json.stdout);
    expect(faults.events.map((e: { id: string; action: string; repeats: number[] }) => [e.id, e.action, e.repeats])).toEqual([
      ['0#1', 'pause', [2]],
      ['1#1', 'kill', [1, 2]],
    ]);
    expect(faults.seeds).toEqual([expect.objectContaining({ entry: 1, drawn: true })]);
  });
});
