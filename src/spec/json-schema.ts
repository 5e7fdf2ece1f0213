import { z } from 'zod';
import { specSchema } from './schema.ts';

/** The spec as JSON Schema, for editors (`# yaml-language-server: $schema=…`). */
export function specJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(specSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://lockstep.dev/schema/lockstep.schema.json',
    title: 'lockstep experiment spec',
  };
}
