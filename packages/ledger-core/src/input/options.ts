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

/**
 * Refuses, with `InvalidInputError` at `[field]` ("must be <what>"), a collaborator that is not an
 * object with the named methods; `undefined` passes unless `required`. By shape, not `instanceof`:
 * one made by another copy of this package (a registry, a codec, a store) serves as well. A
 * `null` is refused, never taken for "left out" and replaced by a default. @internal
 */
export function checkCollaborator(value: unknown, field: string, methods: readonly string[], what: string, required = false): void {
  if (value === undefined && !required) return;
  const fields = value as Record<string, unknown> | null | undefined;
  if (typeof value !== 'object' || value === null || methods.some((method) => typeof fields?.[method] !== 'function')) {
    throw new InvalidInputError([{ path: [field], message: `must be ${what}` }]);
  }
}
