import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Builds the agent bundle when a source is newer than it, gives the whole suite one temporary root (tests put their
 * LOCKSTEP_HOME and stores below it), and at the end checks that no process lockstep started is
 * still running.
 */
export default function setup() {
  if (bundleIsStale()) execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  const root = mkdtempSync(join(tmpdir(), 'lockstep-test-'));
  process.env.LOCKSTEP_TEST_ROOT = root;
  return () => {
    const leftovers = processesMentioning(root);
    rmSync(root, { recursive: true, force: true });
    if (leftovers.length > 0) {
      for (const { pid } of leftovers) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
      throw new Error(`Processes started by the tests were still running at the end:\n${leftovers.map((p) => `${p.pid} ${p.cmdline}`).join('\n')}`);
    }
  };
}

/**
 * Live processes that name `root` in their command line or in the value of an environment variable:
 * agents and the commands they run (LOCKSTEP_WORKDIR), controllers run as child processes
 * (LOCKSTEP_HOME, a store path), S3 servers (their folder). Vitest's own processes, which carry
 * LOCKSTEP_TEST_ROOT, are not counted.
 */
export function processesMentioning(root: string): Array<{ pid: number; cmdline: string }> {
  const found: Array<{ pid: number; cmdline: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (/[/\\]vitest[/\\]/.test(cmdline)) continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const namesRoot = environ.some((variable) => {
        const eq = variable.indexOf('=');
        return eq > 0 && variable.slice(0, eq) !== 'LOCKSTEP_TEST_ROOT' && variable.slice(eq + 1).includes(root);
      });
      if (cmdline.includes(root) || namesRoot) found.push({ pid: Number(entry), cmdline });
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

function bundleIsStale(): boolean {
  const bundle = 'dist/agent.mjs';
  if (!existsSync(bundle)) return true;
  const built = statSync(bundle).mtimeMs;
  const sources = readdirSync('src', { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  return sources.some((e) => statSync(join(e.parentPath, e.name)).mtimeMs > built);
}
