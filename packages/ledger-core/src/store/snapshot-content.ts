import { InvalidInputError, LimitExceededError } from '../errors.js';
import { isStorableText, STORABLE_TEXT_MESSAGE } from '../events/schemas.js';
import type { Snapshot } from './event-store.js';

/**
 * Largest snapshot `schemaVersion` a store must hold: 2,147,483,647, PostgreSQL's `integer`, the
 * column `PostgresEventStore` keeps it in.
 */
export const SNAPSHOT_SCHEMA_VERSION_STORED_MAX = 2 ** 31 - 1;

/**
 * Most bytes of a snapshot's `state` as UTF-8 JSON text: 2^27 (128 MiB). PostgreSQL's `jsonb`
 * holds at most 256 MiB in one array, and a state that large takes seconds to serialize and to
 * write; a ledger past it is opened from an older snapshot and the events after it, as without one.
 */
export const SNAPSHOT_STATE_BYTES_MAX = 2 ** 27;

/**
 * A JSON escape a store cannot hold: `\u0000`, or a lone surrogate (`JSON.stringify` escapes only
 * lone ones). Its backslash must follow an even number of backslashes: after an odd number it is
 * itself escaped, and `u0000` is plain text.
 */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/;

/**
 * For store authors: checks a snapshot's content as the port requires every store to (the
 * conformance suite holds them to it), after the store has checked its tenant and ledger ids, and
 * returns its `state` as the JSON text to keep. Refused with `InvalidInputError` at the field, in
 * this order: a `ledgerVersion` that is not a non-negative integer; a `hash` that is not a string
 * without NUL or unpaired surrogates; a `schemaVersion` that is not an integer in
 * 0..{@link SNAPSHOT_SCHEMA_VERSION_STORED_MAX}; a `state` that is not a JSON object (an array, a
 * value `JSON.stringify` cannot write, a BigInt in it) or that holds a NUL character or a lone
 * UTF-16 surrogate in a key or string; and with `LimitExceededError` a `state` over
 * {@link SNAPSHOT_STATE_BYTES_MAX} bytes of JSON. What the store keeps is that text:
 * `loadSnapshot` gives back what `JSON.stringify` kept (no `undefined` members; a `Date` as its
 * ISO string).
 */
export function snapshotStateJson(snapshot: Snapshot): string {
  const ledgerVersion: unknown = snapshot.ledgerVersion;
  if (!Number.isSafeInteger(ledgerVersion) || (ledgerVersion as number) < 0) {
    throw new InvalidInputError([{ path: ['ledgerVersion'], message: 'must be a non-negative integer' }]);
  }
  const hash: unknown = snapshot.hash;
  if (typeof hash !== 'string' || !isStorableText(hash)) throw new InvalidInputError([{ path: ['hash'], message: `must be a string that ${STORABLE_TEXT_MESSAGE}` }]);
  const schemaVersion: unknown = snapshot.schemaVersion;
  if (!Number.isInteger(schemaVersion) || (schemaVersion as number) < 0 || (schemaVersion as number) > SNAPSHOT_SCHEMA_VERSION_STORED_MAX) {
    throw new InvalidInputError([{ path: ['schemaVersion'], message: `must be an integer in 0..${SNAPSHOT_SCHEMA_VERSION_STORED_MAX}` }]);
  }
  const state: unknown = snapshot.state;
  const issue = (message: string): InvalidInputError => new InvalidInputError([{ path: ['state'], message }]);
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw issue('must be a JSON object');
  let json: string | undefined;
  try {
    json = JSON.stringify(state);
  } catch (error) {
    throw issue(`cannot be written as JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof json !== 'string' || !json.startsWith('{')) throw issue('must be a JSON object');
  // A UTF-16 unit is 1 to 3 bytes of UTF-8 (a surrogate pair, two units, is 4): count the bytes
  // only where the length alone does not decide.
  if (json.length > SNAPSHOT_STATE_BYTES_MAX || (json.length > SNAPSHOT_STATE_BYTES_MAX / 3 && Buffer.byteLength(json) > SNAPSHOT_STATE_BYTES_MAX)) {
    throw new LimitExceededError(`a snapshot's state must be at most ${SNAPSHOT_STATE_BYTES_MAX} bytes of JSON`);
  }
  if (UNSTORABLE_ESCAPE.test(json)) throw issue('must not hold NUL characters or lone UTF-16 surrogates');
  return json;
}
