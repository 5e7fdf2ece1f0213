import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFolderStore } from './folder.ts';
import { isS3Locator, parseS3Locator } from './s3-locator.ts';
import { StoreError, type Store } from './store.ts';

export const DEFAULT_STORE = '.lockstep/store';

/** `$LOCKSTEP_STORE`; set but empty is unset (an empty locator would be the working folder itself). */
export function storeFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.LOCKSTEP_STORE || undefined;
}

/**
 * Opens a store from its locator: `s3://bucket/prefix?endpoint=…&region=…&pathStyle=true`, a
 * `file://` URL, or a folder path (relative to `cwd`). The S3 driver is loaded only when used.
 */
export async function openStore(locator: string, options: { cwd?: string } = {}): Promise<Store> {
  if (locator.trim() === '') throw new StoreError('An empty store locator: give a folder path or s3://bucket/prefix', locator);
  if (isS3Locator(locator)) {
    const { createS3Store } = await import('./s3.ts');
    return createS3Store(parseS3Locator(locator));
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(locator) && !locator.startsWith('file://')) {
    throw new StoreError(`Unknown store \`${locator}\`: use a folder path or s3://bucket/prefix`, locator);
  }
  return createFolderStore({ root: folderOf(locator, options.cwd) });
}

/** The absolute folder of a folder store's locator (a path relative to `cwd`, or a `file://` URL). */
export function folderOf(locator: string, cwd: string = process.cwd()): string {
  const path = locator.startsWith('file://') ? fileURLToPath(locator) : locator;
  return isAbsolute(path) ? path : resolve(cwd, path);
}
