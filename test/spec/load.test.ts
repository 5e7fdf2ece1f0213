import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSpec, parseSpec, SpecError } from '../../src/spec/load.ts';
import { specJsonSchema } from '../../src/spec/json-schema.ts';
import { tempDir } from '../helpers/temp.ts';
import { refused } from '../helpers/spec.ts';

const base = 'name: demo\ninstances: 4\nrun: echo {{rank}}\n';

describe('loading a spec', () => {
  it('fills defaults and applies --set overrides as YAML values', () => {
    const { spec } = parseSpec(base + 'params:\n  atSize: 10\n', { file: 'spec.yaml', overrides: ['instances=16', 'params.atSize=38', 'params.protocol=normal'] });
    expect(spec.instances).toBe(16);
    expect(spec.params).toEqual({ atSize: 38, protocol: 'normal' });
    expect(spec.repeats).toBe(1);
    expect(spec.provider).toEqual({ kind: 'local', isolation: 'loopback' });
    expect(spec.timeouts.barrier).toBe(600_000);
  });

  it('reads durations in units', () => {
    const { spec } = parseSpec(base + 'startDelay: 250ms\ntimeouts:\n  barrier: 90s\n  run: 5m\n  instance: 2h\n', { file: 'spec.yaml' });
    expect(spec.startDelay).toBe(250);
    expect(spec.timeouts).toMatchObject({ barrier: 90_000, run: 300_000, instance: 7_200_000 });
  });

  it('refuses malformed YAML with the line', () => {
    const error = refused('name: demo\ninstances: [4\nrun: echo\n');
    expect(error.message).toMatch(/^spec\.yaml:\d+:\d+: Malformed YAML/);
  });

  it('refuses an unknown key, naming it, its line and the likely fix', () => {
    const error = refused(base + 'repeat: 3\n');
    expect(error.keyPath).toBe('repeat');
    expect(error.line).toBe(4);
    expect(error.message).toContain('did you mean `repeats`');
  });

  it('refuses an unknown nested key', () => {
    const error = refused(base + 'timeouts:\n  barier: 10s\n');
    expect(error.keyPath).toBe('timeouts.barier');
    expect(error.line).toBe(5);
  });

  it('refuses instances: 0 with what is expected and what it got', () => {
    const error = refused(base.replace('instances: 4', 'instances: 0'));
    expect(error.keyPath).toBe('instances');
    expect(error.line).toBe(2);
    expect(error.message).toContain('got `0`');
  });

  it('refuses repeats: 0 and a wrong type', () => {
    expect(refused(base + 'repeats: 0\n').keyPath).toBe('repeats');
    expect(refused(base.replace('instances: 4', 'instances: four')).message).toContain('Expected a number, got `"four"`');
  });

  it('says where a bad value came from when --set gave it', () => {
    const error = refused(base, ['instances=0']);
    expect(error.message).toContain('(--set instances=0)');
  });

  it('refuses an unknown template variable, listing the known ones', () => {
    const error = refused(base.replace('{{rank}}', '{{rnak}}'));
    expect(error.keyPath).toBe('run');
    expect(error.message).toContain('{{rnak}}');
    expect(error.message).toContain('{{rank}}');
    expect(refused(base.replace('{{rank}}', '{{params.missing}}')).message).toContain('add `missing` to `params`');
  });

  it('refuses a rank-only variable in setup, which runs before ranks exist', () => {
    expect(refused(base + 'setup: echo {{rank}}\n').keyPath).toBe('setup');
  });

  it('refuses a group range outside 0..N-1', () => {
    const error = refused(base + 'groups:\n  - ranks: 2-5\n    params: { role: adversary }\n');
    expect(error.keyPath).toBe('groups.0.ranks');
    expect(error.message).toContain('outside 0..3');
  });

  it('refuses a missing required key', () => {
    expect(refused('name: demo\ninstances: 2\n').keyPath).toBe('run');
  });

  it('refuses a missing artifact, naming the path', () => {
    const dir = tempDir('spec');
    const file = join(dir, 'spec.yaml');
    writeFileSync(file, base + 'artifact: ./nowhere\n');
    expect(() => loadSpec(file)).toThrow(/artifact: No file or folder at .*nowhere/);
    mkdirSync(join(dir, 'app'));
    writeFileSync(file, base + 'artifact: ./app\n');
    expect(loadSpec(file).artifactPath).toBe(join(dir, 'app'));
  });

  it('refuses a spec file that does not exist', () => {
    expect(() => loadSpec('/nonexistent/spec.yaml')).toThrow(SpecError);
  });

  it('publishes a JSON Schema that is current', () => {
    const committed = JSON.parse(readFileSync(new URL('../../schema/lockstep.schema.json', import.meta.url), 'utf8'));
    expect(committed, 'schema/lockstep.schema.json is stale: run `npm run schema`').toEqual(specJsonSchema());
    expect(Object.keys((committed as { properties: object }).properties)).toEqual(expect.arrayContaining(['name', 'instances', 'run', 'groups', 'timeouts']));
  });
});
