import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(folder, entry.name)) : entry.name.endsWith('.ts') ? [join(folder, entry.name)] : [],
  );
}

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

describe('what an installed lockstep needs', () => {
  it('the README asks for the Node.js version package.json declares', () => {
    const declared = /^>=\s*(\d+(?:\.\d+)*)$/.exec(pkg.engines.node)?.[1];
    expect(declared, `engines.node is ${pkg.engines.node}`).toBeDefined();
    const asked = /Node\.js ≥ (\d+(?:\.\d+)*)/.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'))?.[1];
    expect(asked).toBe(declared);
  });

  it('src/ imports only dependencies and Node built-ins, never a development dependency', () => {
    const found: string[] = [];
    for (const file of sources(join(ROOT, 'src'))) {
      // TypeScript's own scanner: a string that merely contains "from '…'" is no import.
      const imports = ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((i) => i.fileName);
      for (const specifier of imports.filter((s) => !s.startsWith('.'))) {
        const name = packageOf(specifier);
        if (name.startsWith('node:') || builtinModules.includes(name) || name in pkg.dependencies) continue;
        found.push(`${file.slice(ROOT.length)} imports ${specifier}${name in pkg.devDependencies ? ' (a development dependency)' : ''}`);
      }
    }
    expect(found).toEqual([]);
  });
});
