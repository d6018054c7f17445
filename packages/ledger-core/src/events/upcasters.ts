import { LimitExceededError } from '../errors.js';
import type { JsonObject } from './stored-event.js';

/** Turns an event's data at one schema version into its data at the next version. */
export type Upcaster = (data: JsonObject) => JsonObject;

/** Most upcasting steps one read may take; guards against a cycle in a registry. */
export const UPCAST_STEPS_MAX = 32;

/**
 * Upcasters keyed by event type and the version they read: an old event is read as the current
 * shape by applying `fromVersion → fromVersion + 1` steps until it reaches the current version.
 * Stored events are never rewritten; the hash chain covers the bytes as they were written.
 */
export class UpcasterRegistry {
  readonly #steps = new Map<string, Upcaster>();

  /** Registers the step that reads `type` at `fromVersion` and returns it at `fromVersion + 1`. */
  register(type: string, fromVersion: number, upcast: Upcaster): this {
    const key = `${type}@${fromVersion}`;
    if (this.#steps.has(key)) throw new LimitExceededError(`an upcaster for ${key} is already registered`);
    this.#steps.set(key, upcast);
    return this;
  }

  /**
   * Upcasts `data` from `version` to `targetVersion`. Returns `undefined` when a step is
   * missing: the caller treats that as a corrupt or unknown event.
   */
  upcast(type: string, version: number, targetVersion: number, data: JsonObject): JsonObject | undefined {
    let current = data;
    if (version > targetVersion || targetVersion - version > UPCAST_STEPS_MAX) return undefined;
    for (let at = version; at < targetVersion; at += 1) {
      const step = this.#steps.get(`${type}@${at}`);
      if (step === undefined) return undefined;
      current = step(current);
    }
    return current;
  }
}

/**
 * The library's own upcasters. `TransferPosted` v1 carried one debit and one credit account
 * (`debitAccountId`, `creditAccountId`, `amount`, `currency`); v2 carries a list of postings.
 */
export function builtInUpcasters(): UpcasterRegistry {
  return new UpcasterRegistry().register('TransferPosted', 1, (data) => {
    const { debitAccountId, creditAccountId, amount, currency, ...rest } = data;
    return {
      ...rest,
      postings: [
        { accountId: debitAccountId ?? null, side: 'debit', amount: amount ?? null, currency: currency ?? null },
        { accountId: creditAccountId ?? null, side: 'credit', amount: amount ?? null, currency: currency ?? null },
      ],
      metadata: rest['metadata'] ?? {},
    };
  });
}
