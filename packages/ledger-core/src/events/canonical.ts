import { createHash } from 'node:crypto';
import type { JsonValue, StoredEvent } from './stored-event.js';

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, integers only. Two encodings
 * of the same event are byte-identical whatever key order a store returns (jsonb reorders).
 */
export function canonicalJson(value: JsonValue | undefined): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON holds integers only, got ${value}`);
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const item = (value as Record<string, JsonValue | undefined>)[key];
    if (item !== undefined) parts.push(`${JSON.stringify(key)}:${canonicalJson(item)}`);
  }
  return `{${parts.join(',')}}`;
}

/** The bytes the hash covers: every envelope field and the data, except the two hashes. */
export function canonicalEncoding(event: Omit<StoredEvent, 'hash'>): string {
  return canonicalJson({
    eventId: event.eventId,
    tenantId: event.tenantId,
    ledgerId: event.ledgerId,
    ledgerVersion: event.ledgerVersion,
    type: event.type,
    schemaVersion: event.schemaVersion,
    data: event.data,
    recordedAt: event.recordedAt,
    effectiveAt: event.effectiveAt,
    correlationId: event.correlationId,
    causationId: event.causationId,
    metadata: event.metadata,
  });
}

/** `sha256(previousHash ‖ canonicalEncoding(event))` as hex; `previousHash` enters as its 32 raw bytes. */
export function hashEvent(event: Omit<StoredEvent, 'hash'>): string {
  return createHash('sha256').update(Buffer.from(event.previousHash, 'hex')).update(canonicalEncoding(event)).digest('hex');
}
