import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { checkObjectKey, StoreError, type ListOptions, type ObjectInfo, type Store } from './store.ts';

export interface FolderStoreOptions {
  /** The folder that holds the objects; created when missing. */
  readonly root: string;
}

/** Objects as files below one folder: the default store of the local provider. */
export function createFolderStore(options: FolderStoreOptions): Store {
  if (!options.root) throw new StoreError('Folder store needs `root`', 'file:');
  const root = resolve(options.root);
  const locator = pathToFileURL(root).href;

  const pathOf = (key: string): string => join(root, ...checkObjectKey(key, locator).split('/'));
  // Writes land in a temporary file first so that a reader never sees half an object.
  const temporary = (path: string) => `${path}.${randomBytes(6).toString('hex')}.partial`;

  return {
    locator,
    // Files on this machine: the nodes that read them share its cores with the readers' own work.
    readsPerSecond: 4000,
    async put(key, body) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const tmp = temporary(path);
      await writeFile(tmp, body);
      await rename(tmp, path);
    },
    async putIfAbsent(key, body) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const tmp = temporary(path);
      await writeFile(tmp, body);
      try {
        // A hard link is created whole or not at all, and never replaces a file.
        await link(tmp, path);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      } finally {
        await rm(tmp, { force: true });
      }
    },
    async putFile(key, source) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const tmp = temporary(path);
      await copyFile(source, tmp);
      await rename(tmp, path);
    },
    async get(key) {
      try {
        return new Uint8Array(await readFile(pathOf(key)));
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
    },
    async getFile(key, target) {
      await mkdir(dirname(target), { recursive: true });
      const tmp = temporary(target);
      try {
        await pipeline(createReadStream(pathOf(key)), createWriteStream(tmp));
        await rename(tmp, target);
        return true;
      } catch (error) {
        await rm(tmp, { force: true });
        if (isMissing(error)) {
          await rm(target, { force: true });
          return false;
        }
        throw error;
      }
    },
    async list(prefix, listOptions?: ListOptions) {
      const slash = prefix.lastIndexOf('/');
      const base = slash >= 0 ? prefix.slice(0, slash + 1) : '';
      const start = base ? pathOf(base.slice(0, -1)) : root;
      const objects: ObjectInfo[] = [];
      await walk(start, base, async (key, path) => {
        if (!key.startsWith(prefix) || key.endsWith('.partial')) return;
        if (listOptions?.startAfter !== undefined && key <= listOptions.startAfter) return;
        try {
          const info = await stat(path);
          objects.push({ key, size: info.size, lastModified: info.mtime });
        } catch (error) {
          if (!isMissing(error)) throw error;
        }
      });
      return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, listOptions?.maxKeys);
    },
    async delete(key) {
      await rm(pathOf(key), { force: true });
    },
    async dispose() {},
  };
}

async function walk(folder: string, keyPrefix: string, visit: (key: string, path: string) => Promise<void>): Promise<void> {
  let entries;
  try {
    entries = await readdir(folder, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return;
    throw error;
  }
  for (const entry of entries) {
    const path = folder + sep + entry.name;
    if (entry.isDirectory()) await walk(path, `${keyPrefix}${entry.name}/`, visit);
    else if (entry.isFile()) await visit(keyPrefix + entry.name, path);
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT';
}
