// Builds the CLI (dependencies stay in node_modules) and the agent (one self-contained file that is
// shipped to instances through the store).
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';

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

// Chunks of an earlier build would pile up under new hashes.
for (const name of existsSync('dist') ? readdirSync('dist') : []) if (name.startsWith('cli-')) rmSync(`dist/${name}`);
// The EC2 boot script is read at run time beside the bundled CLI (src/provider/aws/user-data.ts).
mkdirSync('dist', { recursive: true });
copyFileSync('src/provider/aws/boot.sh', 'dist/boot.sh');

await Promise.all([
  // Split at dynamic imports: a command loads its own modules and dependencies (the AWS SDK, tar,
  // zod) only when it runs, so that `lockstep --version` or a typo's message comes back at once.
  // Chunks sit beside the entry: modules find dist/agent.mjs and the workers relative to themselves.
  build({
    ...common,
    entryPoints: { cli: 'src/cli/main.ts' },
    outdir: 'dist',
    outExtension: { '.js': '.mjs' },
    splitting: true,
    chunkNames: 'cli-[name]-[hash]',
    packages: 'external',
  }),
  // Worker threads that scan logs for metrics in parallel (`lockstep results`).
  build({ ...common, entryPoints: ['src/results/scan-worker.ts'], outfile: 'dist/scan-worker.mjs' }),
  // The WAN relay of netns runs (network emulation in user space), started in the run's hub namespace.
  build({ ...common, entryPoints: ['src/provider/local/wan-relay.ts'], outfile: 'dist/wan-relay.mjs' }),
  // What the SSH provider runs on a host beside the agent (start, watch, stop it; gc), sent each time.
  build({ ...common, entryPoints: ['src/agent/host-control.ts'], outfile: 'dist/host-control.mjs', minify: true, legalComments: 'none', sourcemap: false }),
  build({
    ...common,
    entryPoints: ['src/agent/main.ts'],
    outfile: 'dist/agent.mjs',
    minify: true,
    legalComments: 'none',
    // Some bundled dependencies are CommonJS and call require().
    banner: { js: "import { createRequire as __lockstepRequire } from 'node:module'; const require = __lockstepRequire(import.meta.url);" },
    metafile: true,
  }).then(checkAgentBundle),
]);

/**
 * Every instance downloads and loads the agent: it talks to S3 with its own light driver
 * (src/store/s3-http.ts). An import that pulls the AWS SDK into it again fails the build.
 */
function checkAgentBundle({ metafile }) {
  // What is in the output (esbuild reads, then drops, the modules only unused functions import).
  const bundled = Object.entries(metafile.outputs['dist/agent.mjs'].inputs).filter(([, { bytesInOutput }]) => bytesInOutput > 0);
  const heavy = bundled.map(([input]) => input).filter((input) => /node_modules\/@(aws-sdk|smithy)\//.test(input));
  if (heavy.length > 0) {
    const packages = [...new Set(heavy.map((input) => input.split('/').slice(1, 3).join('/')))];
    throw new Error(`dist/agent.mjs bundles the AWS SDK (${packages.join(', ')}): the agent opens stores with openLightStore and imports no SDK module`);
  }
}
