import {
  ID_PATTERN,
  METADATA_BYTES_MAX,
  METADATA_KEY_LENGTH_MAX,
  METADATA_KEYS_MAX,
  METADATA_VALUE_LENGTH_MAX,
  POSTINGS_MAX,
  REFERENCE_LENGTH_MAX,
} from '../domain/limits.js';
import {
  CORRELATION_ID_LENGTH_MAX,
  CURRENCY_CODE_PATTERN,
  DECIMAL_STRING_LENGTH_MAX,
  DECIMAL_STRING_PATTERN,
  EVENT_ID_LENGTH_MAX,
  EVENT_TYPE_LENGTH_MAX,
  isIsoUtcMsTime,
} from './schemas.js';

// Checks of the commonest stored shapes that let the decoder skip a zod schema. Each is stricter
// than its schema, never looser: `false` means "not decided here" (the schema then judges, and
// words the error), never "invalid", so skipping the schema when a check says `true` changes no
// outcome. `test/fast-checks.test.ts` holds them to that with randomly changed inputs.

/** A value of this module's own, equal to nothing an envelope can hold (see `accepted`). */
const NOTHING_YET: unique symbol = Symbol('nothing accepted yet');

/** The stored envelope's keys, each required (see `storedEventSchema`). */
const ENVELOPE_KEYS = new Set([
  'eventId',
  'tenantId',
  'ledgerId',
  'ledgerVersion',
  'type',
  'schemaVersion',
  'data',
  'recordedAt',
  'effectiveAt',
  'correlationId',
  'causationId',
  'metadata',
  'previousHash',
  'hash',
]);

/**
 * Whether `value` is an envelope `storedEventSchema` accepts, decided without it for the common
 * shape: a plain object with exactly the envelope's keys and plain metadata (see
 * {@link isPlainMetadata}). The schema costs about 4 µs an event; this, a few hundred nanoseconds.
 */
export function isPlainEnvelope(value: unknown): boolean {
  if (!isPlainObject(value)) return false;
  const v = value as Record<string, unknown>;
  let keys = 0;
  // `for…in` sees inherited enumerable keys too, as a strict object schema does.
  for (const key in v) {
    if (!ENVELOPE_KEYS.has(key) || !Object.hasOwn(v, key)) return false;
    keys += 1;
  }
  if (keys !== ENVELOPE_KEYS.size) return false;
  const { tenantId, ledgerId, recordedAt, effectiveAt, previousHash, hash } = v;
  const plain =
    boundedString(v['eventId'], 1, EVENT_ID_LENGTH_MAX) &&
    (tenantId === accepted.tenantId || isId(tenantId)) &&
    (ledgerId === accepted.ledgerId || isId(ledgerId)) &&
    isPositiveSafeInteger(v['ledgerVersion']) &&
    boundedString(v['type'], 1, EVENT_TYPE_LENGTH_MAX) &&
    isPositiveSafeInteger(v['schemaVersion']) &&
    isPlainObject(v['data']) &&
    (recordedAt === accepted.recordedAt || isIsoTime(recordedAt)) &&
    (effectiveAt === accepted.effectiveAt || isIsoTime(effectiveAt)) &&
    isNullOrBoundedString(v['correlationId']) &&
    isNullOrBoundedString(v['causationId']) &&
    isPlainMetadata(v['metadata']) &&
    // Along a stream, an event's previousHash is the hash of the event before it.
    (previousHash === accepted.hash || isHex64(previousHash)) &&
    isHex64(hash);
  if (plain) {
    accepted.tenantId = tenantId;
    accepted.ledgerId = ledgerId;
    accepted.recordedAt = recordedAt;
    accepted.effectiveAt = effectiveAt;
    accepted.hash = hash;
  }
  return plain;
}

/**
 * The last envelope {@link isPlainEnvelope} accepted: its values that the next envelope most
 * likely repeats (a page of the log is mostly one tenant's, one ledger's, appended in batches that
 * share a recorded time), and its hash, which the next event of its stream holds as
 * `previousHash`. A value equal to the one remembered passed its check already, so it is not
 * checked again: a string comparison instead of a regular expression or a scan, about 0.6 µs an
 * event for the two hashes, the two ids and the two times. A memo of pure checks: what it
 * remembers only ever passed them, so no answer changes. {@link NOTHING_YET}, which no envelope
 * can hold, stands for "nothing accepted yet" (an empty string would let an empty id through).
 */
const accepted: { tenantId: unknown; ledgerId: unknown; recordedAt: unknown; effectiveAt: unknown; hash: unknown } = {
  tenantId: NOTHING_YET,
  ledgerId: NOTHING_YET,
  recordedAt: NOTHING_YET,
  effectiveAt: NOTHING_YET,
  hash: NOTHING_YET,
};

function isPlainObject(value: unknown): value is object {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/**
 * Whether `value` is metadata `metadataSchema` accepts, in the shape a parsed JSON row has: a
 * plain object whose keys are all its own, enumerable strings (no `__proto__`, nothing inherited),
 * at most `METADATA_KEYS_MAX` of them, each 1..`METADATA_KEY_LENGTH_MAX` long with a string value
 * of at most `METADATA_VALUE_LENGTH_MAX`, encoding to at most `METADATA_BYTES_MAX` bytes.
 */
export function isPlainMetadata(value: unknown): boolean {
  if (!isPlainObject(value)) return false;
  const own = Reflect.ownKeys(value);
  if (own.length > METADATA_KEYS_MAX) return false;
  const v = value as Record<string, unknown>;
  // Most bytes the entries could encode to: each UTF-16 unit of a key or value becomes at most 6
  // bytes of JSON (an escape such as \u001f; else 1 to 3 bytes of UTF-8), and each entry adds
  // two pairs of quotes, a colon and a comma.
  let bytesMax = 2;
  for (const key of own) {
    if (typeof key !== 'string' || key === '__proto__' || key.length < 1 || key.length > METADATA_KEY_LENGTH_MAX) return false;
    if (!Object.prototype.propertyIsEnumerable.call(v, key)) return false;
    const entry = v[key];
    if (typeof entry !== 'string' || entry.length > METADATA_VALUE_LENGTH_MAX) return false;
    bytesMax += 6 * (key.length + entry.length) + 6;
  }
  // Nothing inherited: a record schema would see an inherited enumerable key too.
  for (const key in v) if (!Object.hasOwn(v, key)) return false;
  // Only metadata that could be over the byte limit is encoded to find out.
  return bytesMax <= METADATA_BYTES_MAX || Buffer.byteLength(JSON.stringify(v)) <= METADATA_BYTES_MAX;
}

function boundedString(value: unknown, min: number, max: number): boolean {
  return typeof value === 'string' && value.length >= min && value.length <= max;
}

function isNullOrBoundedString(value: unknown): boolean {
  return value === null || boundedString(value, 0, CORRELATION_ID_LENGTH_MAX);
}

function isId(value: unknown): boolean {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

function isPositiveSafeInteger(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isIsoTime(value: unknown): boolean {
  return typeof value === 'string' && isIsoUtcMsTime(value);
}

/**
 * Whether `value` is 64 lowercase hex digits: `HEX_64_PATTERN`, read through a table of the
 * digits instead (about 130 ns for a hash instead of 280 ns for the regular expression).
 */
function isHex64(value: unknown): boolean {
  if (typeof value !== 'string' || value.length !== 64) return false;
  for (let i = 0; i < 64; i += 1) {
    const code = value.charCodeAt(i);
    if (code >= HEX_DIGIT.length || HEX_DIGIT[code] === 0) return false;
  }
  return true;
}

/** 1 at the char code of each lowercase hex digit (`0-9`, `a-f`), 0 at every other code below 128. */
const HEX_DIGIT = new Uint8Array(128);
for (const digit of '0123456789abcdef') HEX_DIGIT[digit.charCodeAt(0)] = 1;

const TRANSFER_POSTED_KEYS = new Set(['transferId', 'postings', 'metadata', 'reference', 'reversalOf']);
const POSTING_KEYS = new Set(['accountId', 'side', 'amount', 'currency']);

/**
 * Whether `value` is `TransferPosted` data (current version) that its schema accepts, decided
 * without it for the common shape: plain metadata, optional fields absent or strings.
 */
export function isPlainTransferPostedData(value: unknown): boolean {
  if (!hasOnlyOwnKeys(value, TRANSFER_POSTED_KEYS)) return false;
  const v = value as Record<string, unknown>;
  const postings = v['postings'];
  if (!isId(v['transferId']) || !isPlainMetadata(v['metadata']) || !Array.isArray(postings)) return false;
  if (postings.length < 1 || postings.length > POSTINGS_MAX) return false;
  for (let i = 0; i < postings.length; i += 1) if (!isPlainPosting(postings[i])) return false;
  if (!Object.hasOwn(v, 'transferId') || !Object.hasOwn(v, 'postings') || !Object.hasOwn(v, 'metadata')) return false;
  if ('reference' in v && (!Object.hasOwn(v, 'reference') || !boundedString(v['reference'], 0, REFERENCE_LENGTH_MAX))) return false;
  if ('reversalOf' in v && (!Object.hasOwn(v, 'reversalOf') || !isId(v['reversalOf']))) return false;
  return true;
}

function isPlainPosting(value: unknown): boolean {
  // Every key allowed and own, and as many as there are allowed keys: each of them is there.
  if (ownAllowedKeyCount(value, POSTING_KEYS) !== POSTING_KEYS.size) return false;
  const v = value as Record<string, unknown>;
  const amount = v['amount'];
  const side = v['side'];
  const currency = v['currency'];
  return (
    isId(v['accountId']) &&
    (side === 'debit' || side === 'credit') &&
    typeof amount === 'string' &&
    amount.length <= DECIMAL_STRING_LENGTH_MAX &&
    DECIMAL_STRING_PATTERN.test(amount) &&
    typeof currency === 'string' &&
    CURRENCY_CODE_PATTERN.test(currency)
  );
}

/** A plain object whose keys (inherited enumerable ones included) are all its own and all in `allowed`. */
function hasOnlyOwnKeys(value: unknown, allowed: ReadonlySet<string>): boolean {
  return ownAllowedKeyCount(value, allowed) >= 0;
}

/** How many keys `value` has when {@link hasOnlyOwnKeys} holds (the keys `for…in` lists: distinct), else -1. */
function ownAllowedKeyCount(value: unknown, allowed: ReadonlySet<string>): number {
  if (!isPlainObject(value)) return -1;
  let count = 0;
  for (const key in value) {
    if (!allowed.has(key) || !Object.hasOwn(value, key)) return -1;
    count += 1;
  }
  return count;
}
