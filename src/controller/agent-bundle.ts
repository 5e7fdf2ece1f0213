import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { layout } from '../core/layout.ts';
import type { Store } from '../store/store.ts';
import { VERSION } from '../version.ts';

export class AgentBundleMissingError extends Error {
  override readonly name = 'AgentBundleMissingError';
  constructor(readonly path: string) {
    super(`The agent bundle ${path} is missing: run \`npm run build\` first`);
  }
}

/** dist/agent.mjs, beside the built CLI or at the package root when running from source. */
export function agentBundlePath(): string {
  const candidates = [new URL('./agent.mjs', import.meta.url), new URL('../../dist/agent.mjs', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p) && p.endsWith('dist/agent.mjs'));
  if (!found) throw new AgentBundleMissingError(candidates[candidates.length - 1]!);
  return found;
}

/** Uploads the agent under its version and digest, unless the store has it already. */
export async function publishAgent(store: Store, path = agentBundlePath()): Promise<string> {
  const bytes = readFileSync(path);
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const key = layout.agentBundle(`${VERSION}-${digest}`);
  const existing = (await store.list(key)).find((o) => o.key === key);
  if (existing?.size !== bytes.length) await store.put(key, bytes);
  return key;
}
