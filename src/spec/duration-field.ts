import { z } from 'zod';
import { parseDuration } from '../util/duration.ts';

/** A spec duration: `250ms`, `90s`, `5m`, `2h`, `1d` or a number of seconds; milliseconds after parsing. */
export const duration = z
  .union([z.string(), z.number()])
  .refine((value) => parseDuration(value) !== undefined, {
    message: 'Expected a duration such as `90s`, `5m`, `2h` or a number of seconds',
  })
  .transform((value) => parseDuration(value)!);

/** A duration that must be longer than zero (a timeout of 0 would end everything at once). */
export const positiveDuration = duration.refine((ms) => ms > 0, {
  message: 'Expected a duration longer than 0, such as `90s` or `5m`',
});
