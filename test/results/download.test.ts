import { existsSync } from 'node:fs';
import { readFile, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { layout } from '../../src/core/layout.ts';
import { downloadRuns, INDEX_FILE, localPathOf, type DownloadProgress } from '../../src/results/download.ts';
import { ResultsNotFoundError } from '../../src/results/errors.ts';
import { createFolderStore } from '../../src/store/folder.ts';
import type { Store } from '../../src/store/store.ts';
import { countingStore, tempDir, writeFakeRun, type FakeRun } from './fixture.ts';

let dir: { path: string; remove: () => Promise<void> };
let store: Store;
let run: FakeRun;
let out: string;

beforeEach(async () => {
  dir = await tempDir();
  store = createFolderStore({ root: join(dir.path, 'store') });
  run = await writeFakeRun(store, { instances: 3, repeats: 2 });
  out = join(dir.path, 'lockstep-results');
});
afterEach(() => dir.remove());

const localFile = (key: string) => join(out, run.runId, ...localPathOf(run.runId, key).split('/'));

describe('downloadRuns', () => {
  it('lays a run out as <runId>/repeat-<r>/rank-<k>/ with every object, byte for byte', async () => {
    const progress: DownloadProgress[] = [];
    const result = await downloadRuns({ store, runIds: [run.runId], outDir: out, concurrency: 3, onProgress: (p) => progress.push(p) });

    expect(result.fetched).toBe(run.objects.size);
    expect(result.skipped).toBe(0);
    expect(result.runs).toEqual([{ runId: run.runId, dir: join(out, run.runId) }]);
    for (const [key, text] of run.objects) expect(await readFile(localFile(key), 'utf8')).toBe(text);
    expect(existsSync(join(out, run.runId, 'manifest.json'))).toBe(true);
    expect(existsSync(join(out, run.runId, 'repeat-2', 'rank-1', 'stdout.log'))).toBe(true);
    expect(existsSync(join(out, run.runId, 'repeat-2', 'rank-1', 'files', 'stats', 'summary.txt'))).toBe(true);
    expect(existsSync(join(out, run.runId, 'repeat-1', 'start.json'))).toBe(true);
    expect(existsSync(join(out, run.runId, INDEX_FILE))).toBe(true);

    // Progress: starts at 0, never goes back, ends complete.
    expect(progress[0]!.filesDone).toBe(0);
    const last = progress.at(-1)!;
    expect(last.filesDone).toBe(last.filesTotal);
    expect(last.bytesDone).toBe(last.bytesTotal);
    expect(last.filesTotal).toBe(run.objects.size);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.filesDone).toBeGreaterThanOrEqual(progress[i - 1]!.filesDone);
  });

  it('resumes: a second call fetches nothing; after deleting local files it fetches exactly those again', async () => {
    await downloadRuns({ store, runIds: [run.runId], outDir: out });

    const again = countingStore(store);
    const second = await downloadRuns({ store: again, runIds: [run.runId], outDir: out });
    expect(second.fetched).toBe(0);
    expect(second.skipped).toBe(run.objects.size);
    expect(again.counts.get + again.counts.getFile).toBe(0);

    const deleted = [
      layout.node(run.runId, 1, 0) + 'stdout.log',
      layout.node(run.runId, 2, 2) + 'result.json',
      layout.node(run.runId, 2, 1) + 'files/stats/summary.txt',
      layout.manifest(run.runId),
    ];
    for (const key of deleted) await unlink(localFile(key));
    const counting = countingStore(store);
    const third = await downloadRuns({ store: counting, runIds: [run.runId], outDir: out, concurrency: 2 });
    expect(counting.counts.get + counting.counts.getFile).toBe(deleted.length);
    expect([...counting.fetchedKeys].sort()).toEqual([...deleted].sort());
    expect(third.fetched).toBe(deleted.length);
    for (const key of deleted) expect(await readFile(localFile(key), 'utf8')).toBe(run.objects.get(key));
  });

  it('fetches an object again when it changed in the store', async () => {
    await downloadRuns({ store, runIds: [run.runId], outDir: out });
    const key = layout.node(run.runId, 1, 1) + 'stdout.log';
    await store.put(key, 'a longer, rewritten log\nwith two lines\n');
    const counting = countingStore(store);
    await downloadRuns({ store: counting, runIds: [run.runId], outDir: out });
    expect(counting.fetchedKeys).toEqual([key]);
    expect(await readFile(localFile(key), 'utf8')).toBe('a longer, rewritten log\nwith two lines\n');
  });

  it('fetches everything again when the index is lost', async () => {
    await downloadRuns({ store, runIds: [run.runId], outDir: out });
    await rm(join(out, run.runId, INDEX_FILE));
    const counting = countingStore(store);
    await downloadRuns({ store: counting, runIds: [run.runId], outDir: out });
    expect(counting.counts.getFile).toBe(run.objects.size);
  });

  it('downloads several runs into their own folders', async () => {
    const other = await writeFakeRun(store, { runId: 'r-other', instances: 2, repeats: 1, seed: 7 });
    const result = await downloadRuns({ store, runIds: [run.runId, other.runId], outDir: out });
    expect(result.fetched).toBe(run.objects.size + other.objects.size);
    expect(existsSync(join(out, 'r-other', 'repeat-1', 'rank-1', 'result.json'))).toBe(true);
  });

  it('says so when the run is not in the store', async () => {
    await expect(downloadRuns({ store, runIds: ['r-nope'], outDir: out })).rejects.toBeInstanceOf(ResultsNotFoundError);
  });

  it('keeps what it fetched when some objects fail, and a new call fetches only the rest', async () => {
    const failing: Store = {
      ...store,
      locator: store.locator,
      getFile: async (key, path) => {
        if (key.endsWith('stderr.log')) throw new Error('connection reset');
        return store.getFile(key, path);
      },
    };
    await expect(downloadRuns({ store: failing, runIds: [run.runId], outDir: out, concurrency: 1 })).rejects.toThrow(/run `lockstep results` again/);
    const counting = countingStore(store);
    const resumed = await downloadRuns({ store: counting, runIds: [run.runId], outDir: out });
    expect(resumed.skipped).toBeGreaterThan(0);
    expect(resumed.fetched + resumed.skipped).toBe(run.objects.size);
    expect(counting.counts.getFile).toBe(resumed.fetched);
    for (const [key, text] of run.objects) expect(await readFile(localFile(key), 'utf8')).toBe(text);
  });
});
