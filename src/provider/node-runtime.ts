/**
 * Node.js for instances whose image has none (or one older than 20): an official Linux build from
 * nodejs.org (or `LOCKSTEP_NODE_MIRROR`), checked against the release's SHA256SUMS, cached on this
 * machine and put in the store once per version and architecture. The boot script fetches it from
 * the store with the instance's own role, so an instance needs no internet and no package manager.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { layout } from '../core/layout.ts';
import type { Store } from '../store/store.ts';

/** The release line shipped to instances: the newest release of this major version is taken. */
export const NODE_RUNTIME_MAJOR = 24;
export const DEFAULT_NODE_MIRROR = 'https://nodejs.org/dist';

export type Architecture = 'x86_64' | 'arm64';

export interface NodeRuntime {
  /** e.g. `v24.11.1`. */
  readonly version: string;
  readonly architecture: Architecture;
  /** Store key of the tarball. */
  readonly key: string;
  /** SHA-256 of the tarball (hex), as the release's SHASUMS256.txt gives it. */
  readonly sha256: string;
  /** The folder the tarball unpacks to, e.g. `node-v24.11.1-linux-x64`. */
  readonly dir: string;
  readonly bytes: number;
  /** False when the store had it already. */
  readonly uploaded: boolean;
}

export interface NodeRuntimeOptions {
  /** Where releases are downloaded from. Default: `LOCKSTEP_NODE_MIRROR`, else nodejs.org/dist. */
  readonly mirror?: string;
  /** Folder of downloaded releases. Default: `$XDG_CACHE_HOME/lockstep/node` or `~/.cache/lockstep/node`. */
  readonly cacheDir?: string;
  readonly major?: number;
  readonly onProgress?: (message: string) => void;
}

/** Node.js could not be obtained (no network to the mirror, a damaged download…). */
export class NodeRuntimeError extends Error {
  override readonly name = 'NodeRuntimeError';
}

const PLATFORM: Record<Architecture, string> = { x86_64: 'linux-x64', arm64: 'linux-arm64' };

export function defaultNodeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'lockstep', 'node');
}

/**
 * Makes sure the store holds the newest Node.js release of the major line for `architecture`, and
 * says where. Downloads it only when this machine has no checked copy of it.
 */
export async function publishNodeRuntime(store: Store, architecture: Architecture, options: NodeRuntimeOptions = {}): Promise<NodeRuntime> {
  const mirror = (options.mirror ?? (process.env.LOCKSTEP_NODE_MIRROR || DEFAULT_NODE_MIRROR)).replace(/\/+$/, '');
  const cacheDir = options.cacheDir ?? defaultNodeCacheDir();
  const major = options.major ?? NODE_RUNTIME_MAJOR;
  const platform = PLATFORM[architecture];
  const version = await latestRelease(mirror, major, platform, cacheDir);
  const dir = `node-${version}-${platform}`;
  const file = `${dir}.tar.gz`;
  const sha256 = await expectedSha256(mirror, version, file, cacheDir);
  const cached = join(cacheDir, file);
  if ((await sha256OfFile(cached).catch(() => undefined)) !== sha256) {
    options.onProgress?.(`Downloading Node.js ${version} (${platform}) for the instances from ${mirror}`);
    await download(`${mirror}/${version}/${file}`, cached);
    const got = await sha256OfFile(cached);
    if (got !== sha256) {
      await rm(cached, { force: true });
      throw new NodeRuntimeError(`The download of ${file} from ${mirror} is damaged (SHA-256 ${got}, the release says ${sha256}): try again`);
    }
  }
  const bytes = (await stat(cached)).size;
  const key = layout.runtime(file);
  const existing = (await store.list(key)).find((o) => o.key === key);
  const uploaded = existing?.size !== bytes;
  if (uploaded) {
    options.onProgress?.(`Putting Node.js ${version} (${platform}, ${(bytes / 1024 / 1024).toFixed(0)} MiB) in the store, once`);
    await store.putFile(key, cached);
  }
  return { version, architecture, key, sha256, dir, bytes, uploaded };
}

/** The newest release of a major line that has a build for the platform (the mirror's index.json). */
async function latestRelease(mirror: string, major: number, platform: string, cacheDir: string): Promise<string> {
  const cachedIndex = join(cacheDir, 'index.json');
  let index: unknown;
  try {
    index = JSON.parse(await fetchText(`${mirror}/index.json`));
    await mkdir(cacheDir, { recursive: true });
    await writeFile(cachedIndex, JSON.stringify(index));
  } catch (error) {
    // Offline: the index seen last time still names a release this machine may have.
    index = await readFile(cachedIndex, 'utf8').then(JSON.parse, () => {
      throw error;
    });
  }
  const releases = Array.isArray(index) ? (index as Array<{ version?: unknown; files?: unknown }>) : [];
  const found = releases.find(
    (r) => typeof r.version === 'string' && r.version.startsWith(`v${major}.`) && Array.isArray(r.files) && r.files.includes(platform),
  );
  if (!found) throw new NodeRuntimeError(`${mirror}/index.json lists no Node.js ${major} release for ${platform}`);
  return found.version as string;
}

async function expectedSha256(mirror: string, version: string, file: string, cacheDir: string): Promise<string> {
  const cachedSums = join(cacheDir, `${version}-SHASUMS256.txt`);
  const sums = await readFile(cachedSums, 'utf8').catch(async () => {
    const text = await fetchText(`${mirror}/${version}/SHASUMS256.txt`);
    await mkdir(cacheDir, { recursive: true });
    await writeFile(cachedSums, text);
    return text;
  });
  const line = sums.split('\n').find((l) => l.trim().endsWith(`  ${file}`));
  const sha256 = line?.trim().split(/\s+/)[0];
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) throw new NodeRuntimeError(`${mirror}/${version}/SHASUMS256.txt has no checksum for ${file}`);
  return sha256;
}

async function fetchText(url: string): Promise<string> {
  const response = await get(url);
  return response.text();
}

async function download(url: string, target: string): Promise<void> {
  const response = await get(url);
  if (!response.body) throw new NodeRuntimeError(`${url} answered without a body`);
  await mkdir(join(target, '..'), { recursive: true });
  const partial = `${target}.${process.pid}.partial`;
  try {
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), createWriteStream(partial));
    await rename(partial, target);
  } finally {
    await rm(partial, { force: true });
  }
}

async function get(url: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(300_000) });
  } catch (error) {
    throw new NodeRuntimeError(`Could not reach ${url} (${(error as Error).cause ? String((error as { cause: unknown }).cause) : (error as Error).message})`, {
      cause: error,
    });
  }
  if (!response.ok) throw new NodeRuntimeError(`${url} answered HTTP ${response.status}`);
  return response;
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
