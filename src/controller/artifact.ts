import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { create } from 'tar';
import { sha256File } from '../agent/artifact.ts';
import { layout } from '../core/layout.ts';
import type { Store } from '../store/store.ts';

export interface PackedArtifact {
  readonly key: string;
  readonly sha256: string;
  readonly bytes: number;
  /** False when the store already held this exact artifact. */
  readonly uploaded: boolean;
}

/**
 * Packs a file or folder as a reproducible tar.gz (fixed mtimes, portable headers) and
 * uploads it under its sha256, unless the store has it already.
 */
export async function publishArtifact(store: Store, path: string): Promise<PackedArtifact> {
  const scratch = await mkdtemp(join(tmpdir(), 'lockstep-pack-'));
  try {
    const archive = join(scratch, 'artifact.tar.gz');
    const isFile = (await stat(path)).isFile();
    await create(
      { gzip: { level: 6 }, file: archive, cwd: isFile ? dirname(path) : path, portable: true, mtime: new Date(0) },
      [isFile ? basename(path) : '.'],
    );
    const sha256 = await sha256File(archive);
    const bytes = (await stat(archive)).size;
    const key = layout.artifact(sha256);
    const existing = (await store.list(key)).find((o) => o.key === key);
    if (existing?.size === bytes) return { key, sha256, bytes, uploaded: false };
    await store.putFile(key, archive);
    return { key, sha256, bytes, uploaded: true };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
