import { describe, expect, it } from 'vitest';
import { ArtifactError } from '../../src/agent/artifact.ts';
import { describeError, EXIT } from '../../src/cli/errors.ts';
import { AgentBundleMissingError } from '../../src/controller/agent-bundle.ts';
import { StoreUnreachableError } from '../../src/controller/reachable.ts';
import { RunNotFoundError } from '../../src/controller/status.ts';
import { UsageError } from '../../src/core/errors.ts';
import { LaunchError } from '../../src/provider/provider.ts';
import { SpecError } from '../../src/spec/load.ts';
import { StoreError } from '../../src/store/store.ts';

describe('describeError', () => {
  it('turns each known error into its exit code (matched by name, so the CLI loads none of their modules to start)', () => {
    const badInput = [
      new SpecError('spec.yaml', 'instances', 'bad'),
      new StoreError('bad store', 'x'),
      new StoreUnreachableError('s3://b', { cause: new Error('down') }),
      new RunNotFoundError('r', 'file:///s'),
      new UsageError('bad'),
      new AgentBundleMissingError('dist/agent.mjs'),
      new ArtifactError('bad artifact'),
      Object.assign(new Error('needs a fix'), { exitCode: 2 }),
    ];
    for (const error of badInput) expect(describeError(error), error.name).toEqual({ message: error.message, exitCode: EXIT.badInput });
    expect(describeError(new LaunchError('no capacity', []))).toEqual({ message: 'no capacity', exitCode: EXIT.failed });
    const unexpected = describeError(new TypeError('x is undefined'));
    expect(unexpected).toMatchObject({ exitCode: EXIT.internal, message: 'Unexpected error: x is undefined (please report it with the stack below)' });
    expect(unexpected.stack).toContain('TypeError');
  });
});
