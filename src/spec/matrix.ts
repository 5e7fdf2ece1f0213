import { z } from 'zod';

/** The spec's `matrix` field: a parameter sweep, one run per combination of values. */

const scalar = z.union([z.string(), z.number(), z.boolean()]);

/** `instances`, `params.protocol`, `groups.0.params.role`: a spec key path as for `--set`. */
export const MATRIX_KEY = /^(?!matrix(?:\.|$))[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$/;

export const matrixField = z
  .record(z.string(), z.array(scalar).min(1))
  .superRefine((matrix, context) => {
    for (const key of Object.keys(matrix)) {
      if (!MATRIX_KEY.test(key)) {
        context.addIssue({
          code: 'custom',
          path: [key],
          message: 'Expected a spec key path such as `instances` or `params.protocol` (not `matrix`)',
        });
      }
    }
  })
  .optional()
  .describe('A parameter sweep: one run per combination of these values; keys are spec key paths as for `--set`');

export type Matrix = NonNullable<z.output<typeof matrixField>>;
export type MatrixValue = z.output<typeof scalar>;
