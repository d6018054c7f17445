import { describe, expect, it } from 'vitest';
import {
  CurrencyRegistry,
  EventCodec,
  hashEvent,
  InMemoryEventStore,
  Ledger,
  LedgerWriter,
  replayLedger,
  UpcasterRegistry,
  type JsonObject,
  type StoredEvent,
} from '@ledgerkit/ledger-core';

// Every reader takes an upcaster registry; one the caller built for steps of their own must not
// cost them the library's built-in steps (TransferPosted v1 → v2), or old events become unreadable.

const where = { tenantId: 'acme', ledgerId: 'legacy' } as const;
const currencies = new CurrencyRegistry([{ code: 'POINTS', scale: 0 }]);

/** A caller's registry: one step of their own, none of the library's. */
function callersRegistry(): UpcasterRegistry {
  return new UpcasterRegistry().register('AccountFrozen', 1, (data: JsonObject) => ({ ...data, reason: data['reason'] ?? 'unspecified' }));
}

/** A store holding two accounts and, after them, a TransferPosted written at schema version 1. */
async function storeWithV1Transfer(): Promise<InMemoryEventStore> {
  const store = new InMemoryEventStore({ codec: new EventCodec({ currencies }) });
  const ledger = await Ledger.open({ store, ...where, currencies });
  await ledger.openAccount({ accountId: 'promo', currency: 'POINTS', type: 'expense' });
  await ledger.openAccount({ accountId: 'alice', currency: 'POINTS', type: 'liability' });
  await ledger.close();
  const [head] = await store.readStream({ ...where, direction: 'backward', limit: 1 });
  if (head === undefined) throw new Error('empty ledger');
  // Recorded with the event before it: recorded times never decrease along a stream.
  const at = head.recordedAt;
  const v1: Omit<StoredEvent, 'hash'> = {
    eventId: 'legacy-1',
    ...where,
    ledgerVersion: head.ledgerVersion + 1,
    type: 'TransferPosted',
    schemaVersion: 1,
    data: { transferId: 'legacy-t1', debitAccountId: 'promo', creditAccountId: 'alice', amount: '500', currency: 'POINTS', metadata: {} },
    recordedAt: at,
    effectiveAt: at,
    correlationId: null,
    causationId: null,
    metadata: {},
    previousHash: head.hash,
  };
  await store.append({ ...where, expectedVersion: head.ledgerVersion, events: [{ ...v1, hash: hashEvent(v1) }] });
  return store;
}

describe("readers given a caller's upcaster registry still read v1 TransferPosted events", () => {
  it('LedgerWriter.open and Ledger.open replay them, and the writer goes on writing after them', async () => {
    const store = await storeWithV1Transfer();
    const writer = await LedgerWriter.open({ store, ...where, currencies, upcasters: callersRegistry() });
    expect(writer.version).toBe(3);
    await writer.close();
    const ledger = await Ledger.open({ store, ...where, currencies, upcasters: callersRegistry() });
    expect(ledger.balance('alice')?.posted).toBe('500');
    await ledger.transfer({ transferId: 't2', debitAccountId: 'promo', creditAccountId: 'alice', amount: '20', currency: 'POINTS' });
    expect(ledger.balance('alice')?.posted).toBe('520');
    await ledger.close();
  });

  it('replayLedger, with a codec built on the registry, replays them', async () => {
    const store = await storeWithV1Transfer();
    const state = await replayLedger({ store, codec: new EventCodec({ currencies, upcasters: callersRegistry() }), ...where });
    expect(state.version).toBe(3);
    expect(state.accounts.get('alice')).toMatchObject({ creditsPosted: 500n });
  });

  it("a store whose codec holds the caller's registry takes a copied v1 event (it checks appended events as a reader would)", async () => {
    const source = await storeWithV1Transfer();
    const events: StoredEvent[] = await source.readStream({ ...where, direction: 'forward', limit: 10 });
    const target = new InMemoryEventStore({ codec: new EventCodec({ currencies, upcasters: callersRegistry() }) });
    await expect(target.append({ ...where, expectedVersion: 0, events })).resolves.toEqual({ ledgerVersion: 3 });
  });
});
