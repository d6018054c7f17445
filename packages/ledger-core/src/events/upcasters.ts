import { InvalidInputError } from '../errors.js';
import type { JsonObject } from './stored-event.js';

/** Turns an event's data at one schema version into its data at the next version. */
export type Upcaster = (data: JsonObject) => JsonObject;

/** Most upcasting steps one read may take; guards against a cycle in a registry. */
export const UPCAST_STEPS_MAX = 32;

/** Longest event type a step may be registered for: the stored envelope's bound on `type`. */
const UPCASTER_TYPE_LENGTH_MAX = 64;

/**
 * `TransferPosted` v1 carried one debit and one credit account (`debitAccountId`,
 * `creditAccountId`, `amount`, `currency`); v2 carries a list of postings.
 */
const transferPostedV1: Upcaster = (data) => {
  const { debitAccountId, creditAccountId, amount, currency, ...rest } = data;
  return {
    ...rest,
    postings: [
      { accountId: debitAccountId ?? null, side: 'debit', amount: amount ?? null, currency: currency ?? null },
      { accountId: creditAccountId ?? null, side: 'credit', amount: amount ?? null, currency: currency ?? null },
    ],
    metadata: rest['metadata'] ?? {},
  };
};

const stepKey = (type: string, fromVersion: number): string => `${type}@${fromVersion}`;

/** The library's own steps, by `type@fromVersion`: part of every registry. */
const BUILT_IN_STEPS: ReadonlyMap<string, Upcaster> = new Map([[stepKey('TransferPosted', 1), transferPostedV1]]);

/**
 * Upcasters keyed by event type and the version they read: an old event is read as the current
 * shape by applying `fromVersion → fromVersion + 1` steps until it reaches the current version.
 * Stored events are never rewritten; the hash chain covers the bytes as they were written.
 *
 * Every registry holds the library's built-in steps (see {@link builtInUpcasters}) besides the
 * ones registered on it, so a registry built for steps of your own, `new UpcasterRegistry()`
 * included, still reads the events the library's steps read; each release's new built-in steps
 * apply without any change on your side.
 */
export class UpcasterRegistry {
  readonly #steps = new Map<string, Upcaster>();

  /**
   * Registers the step that reads `type` at `fromVersion` and returns it at `fromVersion + 1`;
   * returns the registry, for chaining. Throws `InvalidInputError`, registering nothing, at
   * `type` for a type that is not a string of 1..64 characters, at `fromVersion` for a version
   * that is not a non-negative safe integer, for a step already registered on this registry, or
   * for a step the library already owns (a built-in step always applies and cannot be replaced),
   * and at `upcast` for a step that is not a function.
   */
  register(type: string, fromVersion: number, upcast: Upcaster): this {
    if (typeof type !== 'string' || type.length < 1 || type.length > UPCASTER_TYPE_LENGTH_MAX) {
      throw new InvalidInputError([{ path: ['type'], message: `must be an event type of 1..${UPCASTER_TYPE_LENGTH_MAX} characters` }]);
    }
    if (!Number.isSafeInteger(fromVersion) || fromVersion < 0) throw new InvalidInputError([{ path: ['fromVersion'], message: 'must be a non-negative integer' }]);
    if (typeof upcast !== 'function') throw new InvalidInputError([{ path: ['upcast'], message: 'must be a function from the data at fromVersion to the data at the next version' }]);
    const key = stepKey(type, fromVersion);
    const step = `${type} v${fromVersion} → v${fromVersion + 1}`;
    if (BUILT_IN_STEPS.has(key)) {
      throw new InvalidInputError([{ path: ['fromVersion'], message: `${step} is a built-in step: it always applies and cannot be replaced` }]);
    }
    if (this.#steps.has(key)) throw new InvalidInputError([{ path: ['fromVersion'], message: `an upcaster for ${step} is already registered` }]);
    this.#steps.set(key, upcast);
    return this;
  }

  /**
   * Upcasts `data` from `version` to `targetVersion` with this registry's steps and the built-in
   * ones. Returns `undefined` when a step is missing: the caller treats that as a corrupt or
   * unknown event.
   */
  upcast(type: string, version: number, targetVersion: number, data: JsonObject): JsonObject | undefined {
    let current = data;
    if (version > targetVersion || targetVersion - version > UPCAST_STEPS_MAX) return undefined;
    for (let at = version; at < targetVersion; at += 1) {
      const key = stepKey(type, at);
      const step = BUILT_IN_STEPS.get(key) ?? this.#steps.get(key);
      if (step === undefined) return undefined;
      current = step(current);
    }
    return current;
  }
}

/**
 * A registry with the library's own steps only; today one, `TransferPosted` v1 → v2 (v1 carried
 * one debit and one credit account, v2 a list of postings). Every registry holds these steps,
 * so this is the same as `new UpcasterRegistry()`: register your own on either.
 */
export function builtInUpcasters(): UpcasterRegistry {
  return new UpcasterRegistry();
}
