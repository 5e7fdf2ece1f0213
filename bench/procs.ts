/**
 * The benchmark's bare processes (bench/procs/*.ts), bundled once into plain .mjs files so that each
 * process starts as fast as a real agent does (no TypeScript loader in it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { build } from 'esbuild';

export type ProcName = 'floor' | 'seed-barrier' | 'light-agents';

export async function bundleProcs(dir: string): Promise<Record<ProcName, string>> {
  const names: ProcName[] = ['floor', 'seed-barrier', 'light-agents'];
  await build({
    entryPoints: Object.fromEntries(names.map((name) => [name, join(import.meta.dirname, 'procs', `${name}.ts`)])),
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);" },
  });
  return Object.fromEntries(names.map((name) => [name, join(dir, `${name}.mjs`)])) as Record<ProcName, string>;
}

/** Lines a process printed on stdout, once it has exited. Rejects on a non-zero exit. */
export function outputOf(child: ChildProcess, what: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(stdout.split('\n').filter(Boolean));
      else reject(new Error(`${what} ended with ${signal ?? `exit ${code}`}: ${stderr.trim()}`));
    });
  });
}

export function startNode(script: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  return spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
}
