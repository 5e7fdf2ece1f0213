import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh folder below the suite's temporary root (removed with it at the end). */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(process.env.LOCKSTEP_TEST_ROOT ?? tmpdir(), `${prefix}-`));
}
