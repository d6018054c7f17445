import { InvalidInputError } from '@ledgerkit/ledger-core';

/**
 * The options object of a `ReadModels` call, `{}` when left out. Anything else that is not a
 * plain object (`null`, a number, a string, an array: what JavaScript or a parsed request body may
 * pass) is refused with `InvalidInputError` at `options`, before any option is read: reading one
 * from `null` was a `TypeError`, and from a string or an array silently meant "no options".
 * With `required`, left out is refused too (the constructor's options name the pool).
 */
export function optionsOf<T extends object>(options: T | undefined, required = false): T {
  if (options === undefined && !required) return {} as T;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidInputError([{ path: ['options'], message: 'must be an object (or left out)' }]);
  }
  return options;
}
