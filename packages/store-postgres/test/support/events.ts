import { randomUUID } from 'node:crypto';
import { CurrencyRegistry, EventCodec, GENESIS_HASH, hashEvent, indexIdsOf, type LedgerEvent, type StoredEvent } from '@ledgerkit/ledger-core';

const codec = new EventCodec({ currencies: new CurrencyRegistry() });

/** Where a stream stands: the next event gets `version + 1` and chains to `hash`. */
export interface Head {
  readonly tenantId: string;
  readonly ledgerId: string;
  readonly version: number;
  readonly hash: string;
}

/** The head of a stream that has no event yet. */
export function emptyHead(tenantId: string, ledgerId: string): Head {
  return { tenantId, ledgerId, version: 0, hash: GENESIS_HASH };
}

/** Encodes events that continue the stream at `head`, hash-chained. */
export function encodeAfter(head: Head, events: readonly LedgerEvent[]): StoredEvent[] {
  let previousHash = head.hash;
  return events.map((event, offset) => {
    const stored = codec.encode(
      { event, effectiveAtMs: Date.UTC(2025, 0, 1) },
      {
        eventId: randomUUID(),
        tenantId: head.tenantId,
        ledgerId: head.ledgerId,
        ledgerVersion: head.version + offset + 1,
        recordedAtMs: Date.UTC(2025, 0, 1) + head.version + offset,
        correlationId: null,
        causationId: null,
        metadata: {},
        previousHash,
      },
    );
    previousHash = stored.hash;
    return stored;
  });
}

/** The head after `events`. */
/**
 * Plain copies of `events` (not built by the codec, as copies read from another store would be),
 * each with `change` applied and the chain from `head` hashed again, so that they are as valid
 * as the codec's own: what a store must take and give back exactly.
 */
export function rechained(head: Head, events: readonly StoredEvent[], change: (event: StoredEvent, index: number) => Partial<StoredEvent>): StoredEvent[] {
  let previousHash = head.hash;
  return events.map((event, index) => {
    const { hash: _hash, ...unhashed } = { ...(JSON.parse(JSON.stringify(event)) as StoredEvent), ...change(event, index), previousHash };
    const hash = hashEvent(unhashed);
    previousHash = hash;
    return { ...unhashed, hash };
  });
}

export function headAfter(head: Head, events: readonly StoredEvent[]): Head {
  const last = events[events.length - 1];
  return last === undefined ? head : { ...head, version: last.ledgerVersion, hash: last.hash };
}

export function accountOpened(accountId: string): LedgerEvent {
  return { type: 'AccountOpened', accountId, currency: 'EUR', accountType: 'asset', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: {} };
}

export function transferPosted(transferId: string, amountMinor = 100n): LedgerEvent {
  return {
    type: 'TransferPosted',
    transferId,
    postings: [
      { accountId: 'cash', side: 'debit', amount: amountMinor, currency: 'EUR' },
      { accountId: 'revenue', side: 'credit', amount: amountMinor, currency: 'EUR' },
    ],
    reference: undefined,
    reversalOf: undefined,
    metadata: {},
  };
}

/** The SQL and parameters `PostgresEventStore` sends for an append, for tests that drive it by hand. */
export function appendCall(tenantId: string, ledgerId: string, expectedVersion: number, events: readonly StoredEvent[]): { text: string; values: unknown[] } {
  const ids = events.map((event) => indexIdsOf(event));
  return {
    text: `SELECT ledgerkit.append_events($1, $2, $3, $4::text[], $5::text[], $6::integer[], $7::json[], $8::text[],
      $9::text[], $10::text[], $11::text[], $12::json[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[]) AS version`,
    values: [
      tenantId,
      ledgerId,
      expectedVersion,
      events.map((e) => e.eventId),
      events.map((e) => e.type),
      events.map((e) => e.schemaVersion),
      events.map((e) => JSON.stringify(e.data)),
      events.map((e) => e.recordedAt),
      events.map((e) => e.effectiveAt),
      events.map((e) => e.correlationId),
      events.map((e) => e.causationId),
      events.map((e) => JSON.stringify(e.metadata)),
      events.map((e) => e.previousHash),
      events.map((e) => e.hash),
      ids.map((id) => id.transfer),
      ids.map((id) => id.resolution),
      ids.map((id) => id.reversal),
    ],
  };
}
