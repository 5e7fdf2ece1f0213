import { defineCommand } from 'citty';
import { specJsonSchema } from '../../spec/json-schema.ts';
import { jsonArg } from '../shared-args.ts';

export default defineCommand({
  meta: { name: 'schema', description: 'Print the JSON Schema of the spec (for editor completion and checks)' },
  // The schema is JSON either way: --json is taken, like every command that prints.
  args: { json: { ...jsonArg, description: 'Print JSON (the schema is JSON either way)' } },
  run() {
    console.log(JSON.stringify(specJsonSchema(), null, 2));
  },
});
