import { defineCommand } from 'citty';
import { specJsonSchema } from '../../spec/json-schema.ts';

export default defineCommand({
  meta: { name: 'schema', description: 'Print the JSON Schema of the spec (for editor completion and checks)' },
  run() {
    console.log(JSON.stringify(specJsonSchema(), null, 2));
  },
});
