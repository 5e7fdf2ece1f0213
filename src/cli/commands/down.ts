import { defineCommand } from 'citty';
import { downRun } from '../../controller/down.ts';
import { parseDuration } from '../../util/duration.ts';
import { UsageError } from '../errors.ts';
import { jsonArg, runStoreArg } from '../shared-args.ts';
import { describeEnded } from '../summary.ts';

export default defineCommand({
  meta: { name: 'down', description: "End a run: tell its agents to stop (abort record in the store) and end its instances" },
  args: {
    runId: { type: 'positional', description: 'The run id (see `lockstep ls`)', required: true },
    grace: {
      type: 'string',
      description: 'How long the agents get to stop by themselves and upload the logs of the command they end, before their instances are ended (default 15s)',
      valueHint: 'duration',
    },
    store: runStoreArg,
    json: jsonArg,
  },
  async run({ args }) {
    const graceMs = args.grace === undefined ? undefined : parseDuration(/^\d+(\.\d+)?$/.test(args.grace) ? Number(args.grace) : args.grace);
    if (graceMs === undefined && args.grace !== undefined) throw new UsageError(`Expected --grace to be a duration such as \`15s\` or \`0\`, got \`${args.grace}\``);
    const outcome = await downRun({
      runId: args.runId,
      store: args.store,
      graceMs,
      onProgress: args.json ? undefined : (message) => console.error(message),
    });
    if (args.json) {
      console.log(JSON.stringify(outcome, null, 2));
      return;
    }
    console.log(`Run ${outcome.runId} is down: ${describeEnded(outcome)}.`);
  },
});
