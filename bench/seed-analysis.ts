import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { importFolders } from '../src/controller/import.ts';
import type { SweepReport } from '../src/results/report.ts';
import { collectResults } from '../src/results/results.ts';
import { createFolderStore } from '../src/store/folder.ts';
import { writeSeedFolder, type SeedFolder } from '../test/helpers/seed-logs.ts';

/**
 * The seed's analysis at the seed's full scale: 10 folders (N = 16, 32, 64, 128, 256 DKG nodes and
 * a relay, protocols normal and corrupted) × 8 repeats, about 8,000 logs in the seed's format.
 * lockstep (`results` with examples/seed-analysis/lockstep.yaml on the imported sweep) and the
 * seed's method (a `grep -A1` per figure per file, as its analysis.sh does) run on the same logs
 * in the same run, and must print the same figures. Goal: lockstep ≥ 20× faster.
 */

export interface BenchSeedOptions {
  readonly nodes?: readonly number[];
  readonly repeats?: number;
  readonly log?: (line: string) => void;
}

export interface BenchSeedResult {
  readonly folders: number;
  readonly logs: number;
  /** `lockstep import` of every folder into a folder store (once). */
  readonly importSeconds: number;
  /** `lockstep results <sweep>`: download from the store and analyse. */
  readonly resultsSeconds: number;
  /** The analysis alone, on the downloaded logs (what the seed's method does on its folders). */
  readonly analysisSeconds: number;
  readonly seedSeconds: number;
  /** seedSeconds ÷ analysisSeconds (goal ≥ 20). */
  readonly ratio: number;
  /** Every folder's figures agree between lockstep, the seed's method and the generator. */
  readonly agree: boolean;
}

const SPEC = new URL('../examples/seed-analysis/lockstep.yaml', import.meta.url);

/** The seed's analysis.sh, as it works: per file, `grep -A1 <label> | tail -n1` for each figure; relays skipped. */
const SEED_SCRIPT = String.raw`
for dir in "$@"; do
  worst=-1; line=; bandwidth=0
  for repeat in "$dir"/Repeat*; do
    for f in "$repeat"/logs/stdout/*.log; do
      if grep -q broadcastBlockchainRelay "$f"; then continue; fi
      send=$(grep -A1 "time to send multicast complaint" "$f" | tail -n1)
      receive=$(grep -A1 "time to receive multicast complaint" "$f" | tail -n1)
      computation=$(grep -A1 "total computation cost:" "$f" | tail -n1)
      data=$(grep -A1 "total data:" "$f" | tail -n1)
      multicast=$((send + receive)); adjusted=$((multicast + computation))
      if [ "$adjusted" -gt "$worst" ]; then worst=$adjusted; line="$adjusted,$multicast,$computation"; fi
      if [ "$data" -gt "$bandwidth" ]; then bandwidth=$data; fi
    done
  done
  echo "$dir $line $bandwidth"
done`;

export async function benchSeedAnalysis(options: BenchSeedOptions = {}): Promise<BenchSeedResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const root = await mkdtemp(join(tmpdir(), 'lockstep-bench-seed-'));
  try {
    const folders: SeedFolder[] = [];
    for (const nodes of options.nodes ?? [16, 32, 64, 128, 256]) {
      for (const protocol of ['normal', 'corrupted']) folders.push(await writeSeedFolder(join(root, 'logs'), { nodes, protocol, repeats: options.repeats ?? 8 }));
    }
    const logs = folders.reduce((total, f) => total + f.logs, 0);
    log(`seed analysis: ${folders.length} folders, ${logs} logs in the seed's format`);

    const store = createFolderStore({ root: join(root, 'store') });
    const imported = await timed(() =>
      importFolders({ store, folders: folders.map((f) => f.folder), specSource: '', sweepName: 'anytrust-dkg' }),
    );
    const sweepId = imported.value.sweep!.sweepId;
    const specText = await readFile(SPEC, 'utf8');
    const { parseSpec } = await import('../src/spec/load.ts');
    const { analysisOfSpec } = await import('../src/spec/metrics.ts');
    const analysis = analysisOfSpec(parseSpec(specText, { file: SPEC.pathname }).spec);
    const outDir = join(root, 'out');
    const results = await timed(() => collectResults({ id: sweepId, store, outDir, analysis }));

    // lockstep's best of three, around one run of the seed's method (which takes minutes): the
    // machine may be busy.
    let analysisSeconds = Infinity;
    let report = results.value.report as SweepReport;
    const analyse = async () => {
      const again = await timed(() => collectResults({ id: sweepId, outDir, download: false, analysis }));
      analysisSeconds = Math.min(analysisSeconds, again.seconds);
      report = again.value.report as SweepReport;
    };
    await analyse();
    const seed = await timed(() => bash(SEED_SCRIPT, folders.map((f) => f.folder)));
    const seedSeconds = seed.seconds;
    const seedLines = seed.value;
    await analyse();
    await analyse();

    let agree = true;
    for (const folder of folders) {
      const run = report.points.find((p) => p.run?.imported?.from === folder.folder)?.run;
      const worst = run?.extremes.find((e) => e.metric === 'adjusted')?.overall?.metrics;
      const bandwidth = run?.extremes.find((e) => e.metric === 'bandwidth')?.overall?.value;
      const lockstepLine = `${worst?.adjusted},${worst?.multicast},${worst?.computation} ${bandwidth}`;
      const seedLine = seedLines.split('\n').find((l) => l.startsWith(`${folder.folder} `))?.slice(folder.folder.length + 1);
      const expected = `${folder.expected.worst.adjusted},${folder.expected.worst.multicast},${folder.expected.worst.computation} ${folder.expected.bandwidth}`;
      if (lockstepLine !== expected || seedLine !== expected) {
        agree = false;
        log(`seed analysis: WARNING ${folder.name}: lockstep ${lockstepLine}, seed's method ${seedLine}, generated ${expected}`);
      }
    }
    const ratio = seedSeconds / analysisSeconds;
    log(`seed analysis: lockstep import ${imported.seconds.toFixed(2)} s; results (download + analysis) ${results.seconds.toFixed(2)} s`);
    log(`seed analysis: lockstep ${analysisSeconds.toFixed(2)} s, the seed's method (grep -A1 per figure per file) ${seedSeconds.toFixed(2)} s`);
    log(`seed analysis: ratio ${ratio.toFixed(1)} × (goal ≥ 20)${ratio >= 20 ? '' : '  BELOW GOAL'}; figures ${agree ? 'the same from both, and as generated' : 'DIFFER'}`);
    return { folders: folders.length, logs, importSeconds: imported.seconds, resultsSeconds: results.seconds, analysisSeconds, seedSeconds, ratio, agree };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function bash(script: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'analysis', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`the seed's analysis failed (${code}): ${err}`))));
  });
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const start = process.hrtime.bigint();
  const value = await work();
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

// `node --import tsx bench/seed-analysis.ts`
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchSeedAnalysis();
}
