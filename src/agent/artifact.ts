import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { extract } from 'tar';
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
  await extract({ file: archive, cwd: into });
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
