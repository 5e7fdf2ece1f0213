// Builds the CLI (dependencies stay in node_modules) and the agent (one self-contained file that is
// shipped to instances through the store).
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const common = {
  platform: 'node',
  target: 'node20',
  format: 'esm',
  bundle: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  define: { __LOCKSTEP_VERSION__: JSON.stringify(version) },
};

await Promise.all([
  build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.mjs', packages: 'external' }),
  // Worker threads that scan logs for metrics in parallel (`lockstep results`).
  build({ ...common, entryPoints: ['src/results/scan-worker.ts'], outfile: 'dist/scan-worker.mjs' }),
  // The WAN relay of netns runs (network emulation in user space), started in the run's hub namespace.
  build({ ...common, entryPoints: ['src/provider/local/wan-relay.ts'], outfile: 'dist/wan-relay.mjs' }),
  build({
    ...common,
    entryPoints: ['src/agent/main.ts'],
    outfile: 'dist/agent.mjs',
    minify: true,
    legalComments: 'none',
    // Some bundled dependencies are CommonJS and call require().
    banner: { js: "import { createRequire as __lockstepRequire } from 'node:module'; const require = __lockstepRequire(import.meta.url);" },
  }),
]);
