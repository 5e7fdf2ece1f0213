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

/** The packages a module and everything it imports at run time (type-only imports aside) import. */
function packagesReachedFrom(entry: string): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, staticImport, dynamicImport] of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/gm)) {
      const specifier = staticImport ?? dynamicImport;
      if (!specifier) continue;
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
      else if (!specifier.startsWith('node:')) packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);
    }
  };
  visit(entry);
  return packages;
}

describe('layers', () => {
  it('no src/ module imports across the layers', () => {
    expect(crossings()).toEqual([]);
  });

  it('the agent carries no spec validation (zod) and no tar library: the spec was checked before launch, the system unpacks', () => {
    const packages = packagesReachedFrom(join(SRC, 'agent/main.ts'));
    expect(packages.has('@aws-sdk/client-s3')).toBe(true);
    expect([...packages].filter((p) => p === 'zod' || p === 'tar')).toEqual([]);
  });
});
