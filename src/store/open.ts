import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFolderStore } from './folder.ts';
import { isS3Locator, parseS3Locator, type S3Locator } from './s3-locator.ts';
import { StoreError, type Store } from './store.ts';

export const DEFAULT_STORE = '.lockstep/store';

/** `$LOCKSTEP_STORE`; set but empty is unset (an empty locator would be the working folder itself). */
export function storeFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.LOCKSTEP_STORE || undefined;
}

export interface OpenStoreOptions {
  /** Folder paths are relative to this. Default: the working folder. */
  readonly cwd?: string;
}

/** How an S3 store is made from its parsed locator: which driver. */
type S3Driver = (locator: S3Locator) => Promise<Store>;

/**
 * Opens a store from its locator: `s3://bucket/prefix?endpoint=…&region=…&pathStyle=true`, a
 * `file://` URL, or a folder path (relative to `cwd`). S3 stores use the AWS SDK's driver (presigned
 * URLs, every credential source: the controller's), loaded only when used.
 */
export function openStore(locator: string, options: OpenStoreOptions = {}): Promise<Store> {
  return openWith(locator, options, async (parsed) => (await import('./s3.ts')).createS3Store(parsed));
}

/**
 * `openStore`, with S3 stores on the light driver (node:http and a SigV4 signer, no AWS SDK: a
 * fraction of its size and memory; the agent's). A second entry rather than an option, so that a
 * bundle that uses only this one leaves the SDK's driver out (esbuild drops unused functions with
 * their dynamic imports).
 */
export function openLightStore(locator: string, options: OpenStoreOptions = {}): Promise<Store> {
  return openWith(locator, options, async (parsed) => (await import('./s3-http.ts')).createS3HttpStore(parsed));
}

async function openWith(locator: string, options: OpenStoreOptions, s3Driver: S3Driver): Promise<Store> {
  if (locator.trim() === '') throw new StoreError('An empty store locator: give a folder path or s3://bucket/prefix', locator);
  if (isS3Locator(locator)) return await s3Driver(parseS3Locator(locator));
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
