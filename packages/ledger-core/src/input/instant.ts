import { z } from 'zod';
import { InvalidInputError } from '../errors.js';

/** ISO-8601 date-time with seconds and an explicit offset (`Z` or `±hh:mm`); fractions optional. */
const isoDateTimeWithOffset = z.iso.datetime({ offset: true });

/** What {@link parseInstantMs} says when it refuses a value. */
export const INSTANT_MESSAGE = 'must be a valid Date, or an ISO-8601 date-time with seconds and an offset (Z or ±hh:mm), such as 2025-03-01T12:00:00Z';

/**
 * Reads an instant of a query — a point-in-time balance, a statement's range — as epoch ms: a
 * `Date` holding a time, or an ISO-8601 date-time string with an explicit offset. Anything else is
 * refused with `InvalidInputError` at `[field]`, including the strings `Date.parse` would guess
 * at: one without an offset (JavaScript reads it in the machine's time zone, so the same query
 * would answer differently on another machine), a date alone, other formats, and impossible
 * dates (`Date.parse` rolls 2025-02-30 over to 2 March). A `field` that is not a string is
 * refused with `InvalidInputError` at `field`.
 */
export function parseInstantMs(value: unknown, field: string): number {
  // The field names the path of the error: a symbol there would make its message throw a TypeError.
  if (typeof field !== 'string') throw new InvalidInputError([{ path: ['field'], message: `must be the name of the field (a string), got ${typeof field}` }]);
  const ms = instantMsOrNaN(value);
  if (!Number.isFinite(ms)) throw new InvalidInputError([{ path: [field], message: INSTANT_MESSAGE }]);
  return ms;
}

/** What {@link parseInstantMs} reads `value` as, or `NaN` where it refuses it. @internal */
export function instantMsOrNaN(value: unknown): number {
  return value instanceof Date ? value.getTime() : typeof value === 'string' && isoDateTimeWithOffset.safeParse(value).success ? Date.parse(value) : Number.NaN;
}
