/**
 * Content nested deeper than canonical JSON writes (a forged or damaged row: PostgreSQL's jsonb
 * takes 10,000 levels) is refused with the ledger's own errors, never a stack overflow.
 */
import { describe, expect, it } from 'vitest';
import {
  CANONICAL_DEPTH_MAX,
  ChainBrokenError,
  CorruptEventError,
  CurrencyRegistry,
  EventCodec,
  GENESIS_HASH,
  InMemoryEventStore,
  canonicalJson,
  readLedger,
  verifyChain,
  type EventStore,
  type JsonValue,
  type StoredEvent,
} from '@ledgerkit/ledger-core';

/** Arrays nested `depth` deep around a string. */
function nested(depth: number): JsonValue {
  let value: JsonValue = 'core';
  for (let i = 0; i < depth; i += 1) value = [value];
  return value;
}

const codec = new EventCodec({ currencies: new CurrencyRegistry() });

/** A well-formed event of the codec's, then the same with its data's metadata replaced by `deep` (its hash left as it was). */
function forged(deep: JsonValue): StoredEvent {
  const event = codec.encode(
    { event: { type: 'AccountOpened', accountId: 'cash', currency: 'EUR', accountType: 'asset', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: {} }, effectiveAtMs: Date.UTC(2025, 0, 1) },
    { eventId: 'e1', tenantId: 't', ledgerId: 'l', ledgerVersion: 1, recordedAtMs: Date.UTC(2025, 0, 1), correlationId: null, causationId: null, metadata: {}, previousHash: GENESIS_HASH },
  );
  const plain = JSON.parse(JSON.stringify(event)) as StoredEvent;
  return { ...plain, data: { ...plain.data, metadata: deep } };
}

describe('content nested too deep', () => {
  it(`canonicalJson writes values nested ${CANONICAL_DEPTH_MAX} deep and refuses one level more with a TypeError`, () => {
    expect(canonicalJson(nested(CANONICAL_DEPTH_MAX))).toBe(`${'['.repeat(CANONICAL_DEPTH_MAX)}"core"${']'.repeat(CANONICAL_DEPTH_MAX)}`);
    expect(() => canonicalJson(nested(CANONICAL_DEPTH_MAX + 1))).toThrow(TypeError);
    expect(() => canonicalJson({ a: nested(CANONICAL_DEPTH_MAX) })).toThrow(TypeError);
  });

  it('a stored event nested 10,000 deep is a broken chain to readLedger, corrupt to the codec and a hash mismatch to verifyChain, not a RangeError', async () => {
    const event = forged(nested(10_000));
    const store = { readStream: async () => [event] } as unknown as EventStore;
    const read = async (): Promise<unknown> => {
      for await (const _ of readLedger({ store, tenantId: 't', ledgerId: 'l' })) return undefined;
      return undefined;
    };
    await expect(read()).rejects.toBeInstanceOf(ChainBrokenError);
    expect(() => codec.verify(event)).toThrow(CorruptEventError);
    // A store refuses to append it, as unreadable, with its own error.
    await expect(new InMemoryEventStore().append({ tenantId: 't', ledgerId: 'l', expectedVersion: 0, events: [event] })).rejects.toMatchObject({ code: 'invalid_input' });
    expect(await verifyChain([event])).toMatchObject({ ok: false, brokenAt: { reason: 'hash_mismatch' } });
  });
});
