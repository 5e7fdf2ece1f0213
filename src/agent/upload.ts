import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Store } from '../store/store.ts';
import { retry } from '../util/retry.ts';

/** Uploads one file, retrying: a lost log is a lost run. */
export async function uploadFile(store: Store, key: string, path: string): Promise<void> {
  await retry(() => store.putFile(key, path), { attempts: 8, baseDelayMs: 250, maxDelayMs: 8000 });
}

/** Every file below `folder` as [relative name, path]; `folder` itself as ['', path] when it is a file. */
export async function filesBelow(folder: string): Promise<Array<[string, string]>> {
  const info = await stat(folder).catch(() => undefined);
  if (!info) return [];
  if (info.isFile()) return [['', folder]];
  const found: Array<[string, string]> = [];
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    found.push([relative(folder, path).split(sep).join('/'), path]);
  }
  return found;
}
