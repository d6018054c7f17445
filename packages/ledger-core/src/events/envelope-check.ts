import { ID_PATTERN } from '../domain/limits.js';

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
const ISO_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const HEX_64 = /^[0-9a-f]{64}$/;
const CORRELATION_LENGTH_MAX = 128;
const EVENT_ID_LENGTH_MAX = 64;
const TYPE_LENGTH_MAX = 64;

/**
 * Whether `value` is an envelope `storedEventSchema` accepts, decided without it for the common
 * shape: a plain object with exactly the envelope's keys and empty metadata. `false` means "not
 * decided here" (the schema then judges, and words the error), never "invalid": the check is
 * stricter than the schema, never looser, so skipping the schema when it says `true` changes no
 * outcome. The schema costs about 4 µs an event; this, a few hundred nanoseconds.
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
    boundedString(v['type'], 1, TYPE_LENGTH_MAX) &&
    isPositiveSafeInteger(v['schemaVersion']) &&
    isPlainObject(v['data']) &&
    isIsoTime(v['recordedAt']) &&
    isIsoTime(v['effectiveAt']) &&
    isNullOrBoundedString(v['correlationId']) &&
    isNullOrBoundedString(v['causationId']) &&
    isEmptyPlainObject(v['metadata']) &&
    isHex64(v['previousHash']) &&
    isHex64(v['hash'])
  );
}

function isPlainObject(value: unknown): value is object {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function isEmptyPlainObject(value: unknown): boolean {
  if (!isPlainObject(value)) return false;
  if (Reflect.ownKeys(value).length > 0) return false;
  // Nothing inherited either (an enumerable key on Object.prototype would be seen by a record schema).
  for (const _ in value) return false;
  return true;
}

function boundedString(value: unknown, min: number, max: number): boolean {
  return typeof value === 'string' && value.length >= min && value.length <= max;
}

function isNullOrBoundedString(value: unknown): boolean {
  return value === null || boundedString(value, 0, CORRELATION_LENGTH_MAX);
}

function isId(value: unknown): boolean {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

function isPositiveSafeInteger(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isIsoTime(value: unknown): boolean {
  return typeof value === 'string' && ISO_UTC_MS.test(value) && Number.isFinite(Date.parse(value));
}

function isHex64(value: unknown): boolean {
  return typeof value === 'string' && value.length === 64 && HEX_64.test(value);
}
