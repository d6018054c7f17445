/** A JSON value as stored: no floats are ever written, only strings, integers, booleans and null. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { readonly [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { readonly [key: string]: JsonValue };

/**
 * An event exactly as a store persists it: the envelope plus the event's data in its wire shape
 * (amounts as decimal strings, times as ISO-8601 UTC strings). This is what the hash chain
 * covers and what an auditor replays.
 */
export interface StoredEvent {
  /** Unique id of this event (UUID). */
  readonly eventId: string;
  readonly tenantId: string;
  readonly ledgerId: string;
  /** Position in the ledger stream, 1-based and gap-free. */
  readonly ledgerVersion: number;
  /** Event type name, e.g. `TransferPosted`. */
  readonly type: string;
  /** Version of the data shape; older versions are upcast when read. */
  readonly schemaVersion: number;
  /** Event data in its wire shape. */
  readonly data: JsonObject;
  /** When the ledger recorded it, ISO-8601 UTC with milliseconds. Non-decreasing along the stream. */
  readonly recordedAt: string;
  /** Business time it takes effect, ISO-8601 UTC; never after `recordedAt`. */
  readonly effectiveAt: string;
  readonly correlationId: string | null;
  readonly causationId: string | null;
  /** Request context (actor, channel, ...): bounded like all metadata. */
  readonly metadata: Readonly<Record<string, string>>;
  /** `hash` of the previous event of the stream; 64 zeros for the first. */
  readonly previousHash: string;
  /** `sha256(previousHash ‖ canonicalEncoding(this event without hash))`, hex. */
  readonly hash: string;
}

/** An event read from a store's global log, with the position to resume after it. */
export interface GlobalEvent {
  /** Opaque, store-defined cursor; pass it back as `after` to read the events that follow. */
  readonly position: string;
  readonly event: StoredEvent;
}

/** The `previousHash` of a stream's first event. */
export const GENESIS_HASH = '0'.repeat(64);
