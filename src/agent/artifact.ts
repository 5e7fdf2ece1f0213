import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Store } from '../store/store.ts';

export class ArtifactError extends Error {
  override readonly name = 'ArtifactError';
}

/** Downloads the packed artifact, checks its digest and unpacks it into `into`. */
export async function fetchArtifact(
  store: Store,
  artifact: { key: string; sha256: string },
  into: string,
  scratch: string,
): Promise<void> {
  const archive = `${scratch}/artifact.tar.gz`;
  await mkdir(scratch, { recursive: true });
  if (!(await store.getFile(artifact.key, archive))) {
    throw new ArtifactError(`Artifact ${artifact.key} is not in the store: run \`lockstep run\` again to upload it`);
  }
  const digest = await sha256File(archive);
  if (digest !== artifact.sha256) {
    throw new ArtifactError(`Artifact ${artifact.key} is damaged: sha256 ${digest}, expected ${artifact.sha256}`);
  }
  await rm(into, { recursive: true, force: true });
  await mkdir(into, { recursive: true });
  await unpack(archive, into);
}

/**
 * Unpacks with the system's `tar` (on every common image), which keeps a tar library out of the
 * agent. GNU tar drops a leading `/` and refuses members with `..`; owners are not taken from the archive.
 */
async function unpack(archive: string, into: string): Promise<void> {
  try {
    await promisify(execFile)('tar', ['-xzf', archive, '-C', into, '--no-same-owner'], { maxBuffer: 1024 * 1024 });
  } catch (error) {
    const { code, stderr } = error as { code?: string | number; stderr?: string };
    if (code === 'ENOENT') throw new ArtifactError('This machine has no `tar` to unpack the artifact: install it (the `tar` package) in the image');
    throw new ArtifactError(`Could not unpack the artifact: tar says ${String(stderr ?? '').trim() || String(error)}`);
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
