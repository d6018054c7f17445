import { createHash } from 'node:crypto';
import type { JsonValue, StoredEvent } from './stored-event.js';

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, integers only. Two encodings
 * of the same event are byte-identical whatever key order a store returns (jsonb reorders).
 */
export function canonicalJson(value: JsonValue | undefined): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON holds integers only, got ${value}`);
      return String(value);
    default:
      break;
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + canonicalJson(value[i]);
    return `${out}]`;
  }
  const keys = Object.keys(value);
  if (keys.length > 1) keys.sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const item = (value as Record<string, JsonValue | undefined>)[key];
    if (item === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${canonicalJson(item)}`;
    first = false;
  }
  return `${out}}`;
}

/** The bytes the hash covers: every envelope field and the data, except the two hashes. */
export function canonicalEncoding(event: Omit<StoredEvent, 'hash'>): string {
  // The same bytes as canonicalJson of the envelope object (absent fields omitted), written from
  // the pre-sorted key list instead of building and sorting an object for every event.
  let out = '{';
  for (const key of ENVELOPE_KEYS_SORTED) {
    const value = event[key];
    if (value === undefined) continue;
    out += `${out.length === 1 ? '' : ','}"${key}":${canonicalJson(value)}`;
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
  return createHash('sha256').update(Buffer.from(event.previousHash, 'hex')).update(canonicalEncoding(event)).digest('hex');
}
