import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Which top-level folders of src/ each folder must never import (see README, Development). */
const FORBIDDEN: Record<string, readonly string[]> = {
  core: ['agent', 'provider', 'controller', 'cli', 'results', 'store'],
  util: ['agent', 'provider', 'controller', 'cli', 'results', 'store', 'spec', 'core'],
  spec: ['results', 'store', 'provider', 'agent', 'controller', 'cli'],
  store: ['agent', 'provider', 'controller', 'cli', 'results', 'spec'],
  // The agent knows nothing of EC2 beyond its identity, and nothing of the controller.
  agent: ['provider', 'controller', 'cli', 'results'],
  // A provider knows nothing of barriers or logs.
  provider: ['agent', 'controller', 'cli', 'results'],
  results: ['agent', 'provider', 'controller', 'cli'],
};

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(folder, entry.name)) : entry.name.endsWith('.ts') ? [join(folder, entry.name)] : [],
  );
}

function crossings(): string[] {
  const found: string[] = [];
  for (const file of sources(SRC)) {
    const layer = relative(SRC, file).split('/')[0]!;
    const text = readFileSync(file, 'utf8');
    for (const [, specifier] of text.matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
      const target = relative(SRC, resolve(dirname(file), specifier!)).split('/')[0]!;
      if (FORBIDDEN[layer]?.includes(target)) found.push(`${relative(SRC, file)} imports ${specifier} (${layer} → ${target})`);
    }
  }
  return found;
}

describe('layers', () => {
  it('no src/ module imports across the layers', () => {
    expect(crossings()).toEqual([]);
  });
});
