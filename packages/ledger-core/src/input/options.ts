import { InvalidInputError } from '../errors.js';

/**
 * Checks that a caller's options argument is an object, and returns it: JavaScript callers can
 * pass `null` (or a string), which a default parameter does not replace and whose properties
 * cannot be read. Refused with `InvalidInputError` at `['options']`. @internal
 */
export function checkOptions<T>(options: T): T {
  if (typeof options !== 'object' || options === null) throw new InvalidInputError([{ path: ['options'], message: 'must be an options object' }]);
  return options;
}
