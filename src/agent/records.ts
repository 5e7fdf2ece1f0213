import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { layout, nodeFiles } from '../core/layout.ts';
import type { FailureRecord, NodeResult } from '../core/manifest.ts';
import { putJson, type Store } from '../store/store.ts';
import { isoNow } from '../util/clock.ts';
import { retry } from '../util/retry.ts';

/**
 * A node's result record, after its logs: its presence means they are all in the store. Then its
 * done marker (how the controller counts finished nodes with one LIST), and a copy in `folder`.
 */
export async function storeResult(store: Store, result: NodeResult, folder: string): Promise<void> {
  await putJson(store, layout.node(result.runId, result.repeat, result.rank) + nodeFiles.result, result);
  await store.put(layout.done(result.runId, result.repeat, result.instanceId, result.outcome), '');
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, nodeFiles.result), JSON.stringify(result, null, 2));
}

/** An instance could not take part in a repeat: its failure record and done marker, best effort. */
export async function recordFailure(
  store: Store,
  runId: string,
  repeat: number,
  instanceId: string,
  stage: FailureRecord['stage'],
  error: string,
  details: Pick<FailureRecord, 'missing' | 'exitCode' | 'output'> = {},
): Promise<void> {
  const failure: FailureRecord = { instanceId, repeat, stage, error, ...details, at: isoNow() };
  await retry(
    async () => {
      await putJson(store, layout.failure(runId, repeat, instanceId), failure);
      await store.put(layout.done(runId, repeat, instanceId, `${stage}-failure`), '');
    },
    { attempts: 4, baseDelayMs: 250 },
  ).catch(() => {});
}
