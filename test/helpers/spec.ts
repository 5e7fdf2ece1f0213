import { expect } from 'vitest';
import { parseSpec, SpecError } from '../../src/spec/load.ts';

/** The error a spec is refused with (one line, a SpecError); fails the test if it is accepted. */
export function refused(text: string, overrides: string[] = []): SpecError {
  try {
    parseSpec(text, { file: 'spec.yaml', overrides });
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    expect((error as Error).message).not.toContain('\n');
    return error as SpecError;
  }
  throw new Error('the spec was accepted');
}
