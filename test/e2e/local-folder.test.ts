import { describe } from 'vitest';
import { localRunSuite } from './local-run.ts';

describe('a local run with a folder store', () => {
  localRunSuite(() => undefined);
});
