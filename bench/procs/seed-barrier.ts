// The seed's barrier as one bare process (see seed/aws-test-framework.md): put a ready record, then
// LIST the ready folder every 0.5 s until N records are there, and start at once. Prints the start.
import { layout } from '../../src/core/layout.ts';
import { openStore } from '../../src/store/open.ts';
import { putJson } from '../../src/store/store.ts';
import { preciseNow } from '../../src/util/clock.ts';

const [locator, runId, id, n] = process.argv.slice(2) as [string, string, string, string];
const expected = Number(n);
const store = await openStore(locator);
await putJson(store, layout.ready(runId, 1, id), { instanceId: id, address: id, readyAt: preciseNow() });
let lists = 0;
for (;;) {
  lists++;
  const listed = await store.list(layout.readyPrefix(runId, 1));
  if (listed.length >= expected) break;
  await new Promise((resolve) => setTimeout(resolve, 500));
}
const startedAt = preciseNow();
await store.dispose();
process.stdout.write(`${JSON.stringify({ startedAt, lists })}\n`);
