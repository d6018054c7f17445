import { CurrencyRegistry, InvalidInputError } from '@ledgerkit/ledger-core';

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

/**
 * Refuses, with `InvalidInputError` at `[field]`, a required option that is not an object with the
 * named methods (a pool's `connect`, a store's `readStream`): checked up front, so that a missing
 * or wrong one is reported as the caller's input rather than as a `TypeError` from deep inside
 * the first call that uses it.
 */
export function requireObjectWith(value: unknown, field: string, methods: readonly string[]): void {
  if (!hasMethods(value, methods)) {
    throw new InvalidInputError([{ path: [field], message: methods.length === 0 ? 'must be an object' : `must be an object with ${methods.join(', ')}` }]);
  }
}

/** Whether `value` is an object with every one of `methods` a function. */
export function hasMethods(value: unknown, methods: readonly string[]): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const fields = value as Record<string, unknown>;
  return methods.every((method) => typeof fields[method] === 'function');
}

/**
 * The `currencies` option: ISO 4217 when left out, else what was given once it is checked to be
 * a registry (an object with `get`), with `InvalidInputError` at `currencies`. A `null` is refused,
 * not taken for "left out". Checked up front: otherwise the first amount formatted (the first
 * read that finds a row) would be a `TypeError`.
 */
export function currenciesOf(currencies: CurrencyRegistry | undefined): CurrencyRegistry {
  if (currencies === undefined) return new CurrencyRegistry();
  if (!hasMethods(currencies, ['get'])) throw new InvalidInputError([{ path: ['currencies'], message: 'must be a CurrencyRegistry (an object with get)' }]);
  return currencies;
}
