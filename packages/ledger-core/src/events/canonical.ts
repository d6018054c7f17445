import * as nodeCrypto from 'node:crypto';
import type { JsonObject, JsonValue, StoredEvent } from './stored-event.js';

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, integers only. Two encodings
 * of the same event are byte-identical whatever key order a store returns (jsonb reorders).
 *
 * Holds JSON values only, each exactly: a value it cannot write as itself is refused with a
 * `TypeError` (at any depth), never written as something else: a number that is not a safe
 * integer (a fraction, `NaN`, `±Infinity`, beyond ±2^53-1), a bigint, a function, a symbol, a
 * `Date`, `Map` or `Set` (whose content is not in own keys), `undefined` itself, and arrays and
 * objects nested deeper than {@link CANONICAL_DEPTH_MAX}. Inside a value, as in `JSON.stringify`,
 * an object property that is `undefined` is left out and an array item that is `undefined` (or a
 * hole) is written `null`.
 */
export function canonicalJson(value: JsonValue): string {
  if (value === undefined) throw new TypeError('canonical JSON cannot hold undefined');
  return canonicalValue(value, 0);
}

/**
 * Deepest nesting of arrays and objects {@link canonicalJson} writes: 64. An event's content is
 * four deep at most; a row of a damaged or forged log nested thousands deep (PostgreSQL's jsonb
 * takes 10,000) would otherwise overflow the stack with a `RangeError`.
 */
export const CANONICAL_DEPTH_MAX = 64;

/** {@link canonicalJson} of a value or of an item inside one (at `depth`), where `undefined` is written `null`. */
function canonicalValue(value: JsonValue | undefined, depth: number): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return jsonString(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON holds integers only, got ${value}`);
      return String(value);
    case 'object':
      break;
    default:
      // A bigint, function or symbol: Object.keys would make each an empty object.
      throw new TypeError(`canonical JSON holds JSON values only, got a ${typeof value}`);
  }
  if (depth >= CANONICAL_DEPTH_MAX) throw new TypeError(`canonical JSON holds values nested at most ${CANONICAL_DEPTH_MAX} deep`);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + canonicalValue(value[i], depth + 1);
    return `${out}]`;
  }
  // Built-ins whose content is not in own keys: written as `{}`, two different values would hash
  // alike. (Other class instances are written by their own keys, as an encoded event is.)
  if (value instanceof Date || value instanceof Map || value instanceof Set) {
    throw new TypeError(`canonical JSON cannot hold a ${value.constructor.name}: write it as JSON (a string, an object or an array) first`);
  }
  const keys = Object.keys(value);
  if (keys.length > 1) keys.sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const item = (value as Record<string, JsonValue | undefined>)[key];
    if (item === undefined) continue;
    out += `${first ? '' : ','}${jsonString(key)}:${canonicalValue(item, depth + 1)}`;
    first = false;
  }
  return `${out}}`;
}

/**
 * Whether `JSON.stringify(text)` is `text` between two double quotes: no character of it is one
 * that JSON escapes (`"`, `\\`, a control character below U+0020) or a UTF-16 surrogate (a lone
 * one is escaped; a paired one is not, but is left to `JSON.stringify` to keep this test simple).
 * Ids, amounts, currency codes and ISO times always are.
 */
export function isPlainJsonText(text: string): boolean {
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)) return false;
  }
  return true;
}

/**
 * `JSON.stringify(text)`, the same characters. Most strings of an event need no escape, and for
 * them a scan of the characters and a concatenation cost a fraction of a call to `JSON.stringify`
 * (which sets up a serializer and a string builder, and copies the result, for every string).
 */
export function jsonString(text: string): string {
  return isPlainJsonText(text) ? `"${text}"` : JSON.stringify(text);
}

/**
 * {@link canonicalJson} of an event's data, the same bytes (or the same error; but absent data,
 * which `canonicalJson` refuses, is written `null`), faster for the transfer-like shapes
 * the writer encodes most: their keys are written in sorted order as known, and each posting
 * from its four keys, instead of listing and sorting the keys of every object. Any other shape
 * (or an unexpected key) takes the generic walk.
 */
export function canonicalDataJson(data: JsonObject): string {
  // A stored event under verification may hold anything here (tampered, or not an object at all;
  // absent data is written `null`, as it always has been, so that its hash does not change).
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return canonicalValue(data, 0);
  const keys = Object.keys(data);
  const postings = data['postings'];
  if (!Array.isArray(postings) || keys.length > TRANSFER_DATA_KEYS.length) return canonicalJson(data);
  for (const key of keys) if (!TRANSFER_DATA_KEY_SET.has(key)) return canonicalJson(data);
  const written = postingsJson(postings);
  if (written === undefined) return canonicalJson(data);
  let out = '{';
  for (const key of TRANSFER_DATA_KEYS) {
    // Own keys only, as the generic walk: a value a prototype supplies is not part of the data.
    const value = Object.hasOwn(data, key) ? data[key] : undefined;
    if (value === undefined) continue;
    out += `${out.length === 1 ? '' : ','}"${key}":${key === 'postings' ? written : canonicalJson(value)}`;
  }
  return `${out}}`;
}

/** Every key a transfer-like event's data may have, sorted by code unit as canonical JSON sorts them. */
const TRANSFER_DATA_KEYS = ['metadata', 'pendingId', 'postings', 'reference', 'reversalOf', 'timeoutMs', 'transferId'] as const;
const TRANSFER_DATA_KEY_SET: ReadonlySet<string> = new Set(TRANSFER_DATA_KEYS);

/** Canonical JSON of postings that each have exactly string `accountId`, `amount`, `currency` and `side`; else `undefined`. */
function postingsJson(postings: readonly JsonValue[]): string | undefined {
  let out = '[';
  for (let i = 0; i < postings.length; i += 1) {
    const posting = postings[i] as Record<string, JsonValue | undefined>;
    if (posting === null || typeof posting !== 'object' || Array.isArray(posting)) return undefined;
    if (Object.keys(posting).length !== 4 || !Object.hasOwn(posting, 'accountId') || !Object.hasOwn(posting, 'amount') || !Object.hasOwn(posting, 'currency') || !Object.hasOwn(posting, 'side')) return undefined;
    const { accountId, amount, currency, side } = posting;
    if (typeof accountId !== 'string' || typeof amount !== 'string' || typeof currency !== 'string' || typeof side !== 'string') return undefined;
    out += `${i === 0 ? '' : ','}{"accountId":${jsonString(accountId)},"amount":${jsonString(amount)},"currency":${jsonString(currency)},"side":${jsonString(side)}}`;
  }
  return `${out}]`;
}

/** The bytes the hash covers: every envelope field and the data, except the two hashes. */
export function canonicalEncoding(event: Omit<StoredEvent, 'hash'>): string {
  return canonicalEncodingWithData(event, canonicalDataJson(event.data));
}

/**
 * {@link canonicalEncoding} with the data's canonical JSON already at hand (the codec keeps it
 * for the store, so it is built once per event).
 */
export function canonicalEncodingWithData(event: Omit<StoredEvent, 'hash'>, dataJson: string): string {
  return plainEnvelopeEncoding(event, dataJson) ?? envelopeEncoding(event, dataJson);
}

/**
 * {@link canonicalEncodingWithData} of the usual envelope, in one template: every field present,
 * the ids, times and type plain JSON text (see {@link isPlainJsonText}), the two versions safe
 * integers. It saves, per event, a keyed read of each field by name from a key list (a
 * megamorphic load) and a `JSON.stringify` per string; `undefined` for any other envelope, which
 * {@link envelopeEncoding} writes (and refuses) as before. The template's keys are in the order
 * of `ENVELOPE_KEYS_SORTED`; a test holds it to the generic writer.
 */
function plainEnvelopeEncoding(event: Omit<StoredEvent, 'hash'>, dataJson: string): string | undefined {
  const { causationId, correlationId, effectiveAt, eventId, ledgerId, ledgerVersion, metadata, recordedAt, schemaVersion, tenantId, type } = event;
  if (
    !(causationId === null || (typeof causationId === 'string' && isPlainJsonText(causationId))) ||
    !(correlationId === null || (typeof correlationId === 'string' && isPlainJsonText(correlationId))) ||
    !isPlainString(effectiveAt) ||
    !isPlainString(eventId) ||
    !isPlainString(ledgerId) ||
    !Number.isSafeInteger(ledgerVersion) ||
    metadata === undefined ||
    !isPlainString(recordedAt) ||
    !Number.isSafeInteger(schemaVersion) ||
    !isPlainString(tenantId) ||
    !isPlainString(type)
  ) {
    return undefined;
  }
  // Last, as the generic writer reaches it after every field checked above: if it throws, that
  // writer would throw the same error.
  const metadataJson = canonicalJson(metadata);
  const causation = causationId === null ? 'null' : `"${causationId}"`;
  const correlation = correlationId === null ? 'null' : `"${correlationId}"`;
  return `{"causationId":${causation},"correlationId":${correlation},"data":${dataJson},"effectiveAt":"${effectiveAt}","eventId":"${eventId}","ledgerId":"${ledgerId}","ledgerVersion":${ledgerVersion},"metadata":${metadataJson},"recordedAt":"${recordedAt}","schemaVersion":${schemaVersion},"tenantId":"${tenantId}","type":"${type}"}`;
}

/** Whether `value` is a string that {@link isPlainJsonText} accepts. */
export function isPlainString(value: unknown): value is string {
  return typeof value === 'string' && isPlainJsonText(value);
}

/** {@link canonicalEncodingWithData} of any envelope: the generic writer. */
export function envelopeEncoding(event: Omit<StoredEvent, 'hash'>, dataJson: string): string {
  // The same bytes as canonicalJson of the envelope object (absent fields omitted), written from
  // the pre-sorted key list instead of building and sorting an object for every event.
  let out = '{';
  for (const key of ENVELOPE_KEYS_SORTED) {
    const value = event[key];
    if (value === undefined) continue;
    out += `${out.length === 1 ? '' : ','}"${key}":${key === 'data' ? dataJson : canonicalJson(value)}`;
  }
  return `${out}}`;
}

const ENVELOPE_KEYS_SORTED = [
  'causationId',
  'correlationId',
  'data',
  'effectiveAt',
  'eventId',
  'ledgerId',
  'ledgerVersion',
  'metadata',
  'recordedAt',
  'schemaVersion',
  'tenantId',
  'type',
] as const satisfies readonly (keyof StoredEvent)[];

/** `sha256(previousHash ‖ canonicalEncoding(event))` as hex; `previousHash` enters as its 32 raw bytes. */
export function hashEvent(event: Omit<StoredEvent, 'hash'>): string {
  return hashEncoding(event.previousHash, canonicalEncoding(event));
}

/** Bytes of the reused hashing buffer; a longer encoding gets a buffer of its own. */
const HASH_SCRATCH_BYTES = 64 * 1024;
let hashScratch: Buffer | undefined;
// One-shot hashing (Node >= 20.12) skips a Hash object per event; older Nodes take the streaming path.
const oneShotHash = (nodeCrypto as { hash?: (algorithm: string, data: Buffer, encoding: 'hex') => string }).hash;

/** `sha256(previousHash ‖ encoding)` as hex, `previousHash` as its 32 raw bytes and `encoding` as UTF-8. */
export function hashEncoding(previousHash: string, encoding: string): string {
  // Anything but 64 hex digits (a tampered event under verification) takes the streaming path,
  // which reads the same bytes from it as it always has.
  if (oneShotHash === undefined || previousHash.length !== 64 || encoding.length * 3 > HASH_SCRATCH_BYTES - 32) {
    return streamingHash(previousHash, encoding);
  }
  hashScratch ??= Buffer.allocUnsafe(HASH_SCRATCH_BYTES);
  if (hashScratch.write(previousHash, 0, 'hex') !== 32) return streamingHash(previousHash, encoding);
  const length = 32 + hashScratch.write(encoding, 32, 'utf8');
  return oneShotHash('sha256', hashScratch.subarray(0, length), 'hex');
}

function streamingHash(previousHash: string, encoding: string): string {
  return nodeCrypto.createHash('sha256').update(Buffer.from(previousHash, 'hex')).update(encoding).digest('hex');
}
