// Regenerates schema/lockstep.schema.json from the spec's zod schema (a test checks it is current).
import { writeFileSync } from 'node:fs';
import { specJsonSchema } from '../src/spec/json-schema.ts';

writeFileSync(new URL('../schema/lockstep.schema.json', import.meta.url), JSON.stringify(specJsonSchema(), null, 2) + '\n');
