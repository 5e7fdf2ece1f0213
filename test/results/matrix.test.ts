import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/spec/load.ts';
import { expandMatrix, matrixPoints, pointLabel } from '../../src/results/matrix.ts';

const SPEC = `name: dkg
instances: 4
run: java -jar run.jar {{rank}} {{hostsFile}} {{params.atSize}} {{runId}} {{params.protocol}}
params:
  atSize: 38
  protocol: normal
metrics:
  - name: commit_ms
    regex: 'committed in (?<value>[0-9.]+) ms'
    unit: ms
  - name: throughput_ops
    json: true
  - name: bytes_out
    regex: '^bytes_out (?<value>\\d+)$'
    file: stats/summary.txt
    perNode: max
matrix:
  instances: [16, 32, 64]
  params.protocol: [normal, adversarial]
`;

describe('matrix', () => {
  it('expands to the cartesian product, first key slowest', () => {
    const lists = expandMatrix({ instances: [16, 32], 'params.protocol': ['normal', 'adversarial'] });
    expect(lists).toEqual([
      ['instances=16', 'params.protocol="normal"'],
      ['instances=16', 'params.protocol="adversarial"'],
      ['instances=32', 'params.protocol="normal"'],
      ['instances=32', 'params.protocol="adversarial"'],
    ]);
    expect(expandMatrix(undefined)).toEqual([[]]);
    expect(expandMatrix({})).toEqual([[]]);
  });

  it('gives overrides that --set reads back to the exact values, and the spec accepts', () => {
    const spec = parseSpec(SPEC, { file: 'lockstep.yaml' }).spec;
    expect(spec.matrix).toEqual({ instances: [16, 32, 64], 'params.protocol': ['normal', 'adversarial'] });
    expect(spec.metrics.map((m) => [m.name, m.file, m.perNode])).toEqual([
      ['commit_ms', undefined, undefined],
      ['throughput_ops', undefined, undefined],
      ['bytes_out', 'stats/summary.txt', 'max'],
    ]);
    const points = matrixPoints(spec.matrix);
    expect(points).toHaveLength(6);
    for (const point of points) {
      const applied = parseSpec(SPEC, { file: 'lockstep.yaml', overrides: point.overrides }).spec;
      expect(applied.instances).toBe(point.values.instances);
      expect(applied.params.protocol).toBe(point.values['params.protocol']);
    }
    expect(pointLabel(points[3]!.values)).toBe('instances=32 protocol=adversarial');
  });

  it('keeps strings that look like numbers or booleans as strings', () => {
    const override = expandMatrix({ 'params.version': ['1.10'] })[0]![0]!;
    const spec = parseSpec('name: x\ninstances: 1\nrun: echo {{params.version}}\nparams:\n  version: "1.9"\n', {
      file: 'lockstep.yaml',
      overrides: [override],
    }).spec;
    expect(spec.params.version).toBe('1.10');
    expect(expandMatrix({ 'params.flag': [true, 'true'] })).toEqual([['params.flag=true'], ['params.flag="true"']]);
  });

  it('refuses a matrix the controller could not run, with the key path', () => {
    const bad = (matrix: string) => () => parseSpec(`name: x\ninstances: 1\nrun: echo\nmatrix:\n${matrix}\n`, { file: 'lockstep.yaml' });
    expect(bad('  instances: []')).toThrow(/matrix\.instances/);
    expect(bad('  "params..x": [1]')).toThrow(/spec key path/);
    expect(bad('  matrix.x: [1]')).toThrow(/spec key path/);
    expect(bad('  instances: [[1]]')).toThrow(/matrix\.instances/);
  });

  it('refuses a metric without a value capture, at its line', () => {
    const text = 'name: x\ninstances: 1\nrun: echo\nmetrics:\n  - name: a\n    regex: "took (\\\\d+) ms"\n';
    expect(() => parseSpec(text, { file: 'lockstep.yaml' })).toThrow(/lockstep\.yaml:6:\d+: metrics\.0\.regex: .*named capture/);
  });
});
