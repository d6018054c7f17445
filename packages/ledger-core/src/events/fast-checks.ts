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
  HEX_64_PATTERN,
  isIsoUtcMsTime,
} from './schemas.js';

// Checks of the commonest stored shapes that let the decoder skip a zod schema. Each is stricter
// than its schema, never looser: `false` means "not decided here" (the schema then judges, and
// words the error), never "invalid", so skipping the schema when a check says `true` changes no
// outcome. `test/fast-checks.test.ts` holds them to that with randomly changed inputs.

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
  return (
    boundedString(v['eventId'], 1, EVENT_ID_LENGTH_MAX) &&
    isId(v['tenantId']) &&
    isId(v['ledgerId']) &&
    isPositiveSafeInteger(v['ledgerVersion']) &&
    boundedString(v['type'], 1, EVENT_TYPE_LENGTH_MAX) &&
    isPositiveSafeInteger(v['schemaVersion']) &&
    isPlainObject(v['data']) &&
    isIsoTime(v['recordedAt']) &&
    isIsoTime(v['effectiveAt']) &&
    isNullOrBoundedString(v['correlationId']) &&
    isNullOrBoundedString(v['causationId']) &&
    isPlainMetadata(v['metadata']) &&
    isHex64(v['previousHash']) &&
    isHex64(v['hash'])
  );
}

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

function isHex64(value: unknown): boolean {
  return typeof value === 'string' && value.length === 64 && HEX_64_PATTERN.test(value);
}

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
  if (!hasOnlyOwnKeys(value, POSTING_KEYS)) return false;
  const v = value as Record<string, unknown>;
  for (const key of POSTING_KEYS) if (!Object.hasOwn(v, key)) return false;
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
  if (!isPlainObject(value)) return false;
  for (const key in value) if (!allowed.has(key) || !Object.hasOwn(value, key)) return false;
  return true;
}
