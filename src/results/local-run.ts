import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFiles } from '../core/layout.ts';
import type { AbortRecord, FailureRecord, NodeResult, RunManifest, StartRecord } from '../core/manifest.ts';
import { LocalResultsMissingError } from './errors.ts';

/** A run as downloaded: `<dir>/manifest.json`, `<dir>/repeat-<r>/rank-<k>/…`. */
export interface LocalRun {
  readonly runId: string;
  readonly dir: string;
  readonly manifest: RunManifest;
  /** Repeats 1…manifest.repeats (and any other found), in order. */
  readonly repeats: readonly LocalRepeat[];
  /** The run's abort record: `lockstep down` or an interrupted `lockstep run` stopped it. */
  readonly aborted?: AbortRecord;
}

export interface LocalRepeat {
  readonly repeat: number;
  readonly dir: string;
  readonly start?: StartRecord;
  /** Instances that wrote a ready record (`ready/<instanceId>.json`). */
  readonly readyIds?: readonly string[];
  /** Ranks with a folder, in rank order. */
  readonly nodes: readonly LocalNode[];
  /** Instances that could not take part (`failures/<instanceId>.json`). */
  readonly failures: readonly FailureRecord[];
}

export interface LocalNode {
  readonly rank: number;
  readonly dir: string;
  /** Absent when the node uploaded no (readable) result.json. */
  readonly result?: NodeResult;
}

/** Reads a downloaded run's records (not its logs: those are streamed by the metrics). */
export async function loadLocalRun(dir: string): Promise<LocalRun> {
  const manifest = await readJson<RunManifest>(join(dir, 'manifest.json'));
  if (!manifest) throw new LocalResultsMissingError(dir);

  const found = new Set<number>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const match = /^repeat-(\d+)$/.exec(entry.name);
    if (entry.isDirectory() && match) found.add(Number(match[1]));
  }
  for (let r = 1; r <= manifest.repeats; r++) found.add(r);

  const repeats: LocalRepeat[] = [];
  for (const repeat of [...found].sort((a, b) => a - b)) repeats.push(await loadRepeat(join(dir, `repeat-${repeat}`), repeat));
  const aborted = await readJson<AbortRecord>(join(dir, 'abort.json'));
  return { runId: manifest.runId, dir, manifest, repeats, ...(aborted ? { aborted } : {}) };
}

async function loadRepeat(dir: string, repeat: number): Promise<LocalRepeat> {
  if (!existsSync(dir)) return { repeat, dir, readyIds: [], nodes: [], failures: [] };
  const nodes: LocalNode[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const match = /^rank-(\d+)$/.exec(entry.name);
    if (!entry.isDirectory() || !match) continue;
    const nodeDir = join(dir, entry.name);
    // Checked first: logs without records (an import) have none, and a failed read costs more.
    const resultPath = join(nodeDir, nodeFiles.result);
    nodes.push({ rank: Number(match[1]), dir: nodeDir, result: existsSync(resultPath) ? await readJson<NodeResult>(resultPath) : undefined });
  }
  nodes.sort((a, b) => a.rank - b.rank);

  const failures: FailureRecord[] = [];
  const failureDir = join(dir, 'failures');
  if (existsSync(failureDir)) {
    for (const name of (await readdir(failureDir)).sort()) {
      if (!name.endsWith('.json')) continue;
      const record = await readJson<FailureRecord>(join(failureDir, name));
      if (record) failures.push(record);
    }
  }
  const readyIds = (await readdir(join(dir, 'ready')).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
  return { repeat, dir, start: await readJson<StartRecord>(join(dir, 'start.json')), readyIds, nodes, failures };
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
