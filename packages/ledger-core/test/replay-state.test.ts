import { describe, expect, it } from 'vitest';
import { balanceOf, CurrencyRegistry, EventCodec, hashEvent, InMemoryEventStore, Ledger, replayLedger, trialBalanceOf, type AccountState, type ReplayedState, type StoredEvent } from '@ledgerkit/ledger-core';

// What replayLedger returns is typed so that a caller can list its accounts: no cast (this file
// does not compile if `accounts` is only the get/set table the writer's state promises).

describe('replayLedger: the replayed state lists its accounts', () => {
  it('as a Map of every account opened by the point, which a caller iterates, counts and reads as it is', async () => {
    const currencies = new CurrencyRegistry();
    const store = new InMemoryEventStore();
    const where = { tenantId: 'acme', ledgerId: 'eur' };
    const ledger = await Ledger.open({ store, ...where });
    for (const accountId of ['cash', 'alice', 'bob']) await ledger.openAccount({ accountId, currency: 'EUR', type: accountId === 'cash' ? 'asset' : 'liability' });
    await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '12.50', currency: 'EUR' });
    await ledger.close();

    const source = { store, codec: new EventCodec({ currencies }), ...where };
    const state: ReplayedState = await replayLedger(source);
    const ids: string[] = [...state.accounts.keys()].sort();
    expect(ids).toEqual(['alice', 'bob', 'cash']);
    expect(state.accounts.size).toBe(3);
    const listed: AccountState[] = [...state.accounts.values()];
    expect(trialBalanceOf(listed, currencies).totals).toEqual([{ currency: 'EUR', debits: '12.50', credits: '12.50', balanced: true }]);
    const balances = [...state.accounts].map(([id, account]) => [id, balanceOf(account, currencies).posted]);
    expect(Object.fromEntries(balances)).toEqual({ cash: '12.50', alice: '12.50', bob: '0.00' });

    const before = await replayLedger(source, { ledgerVersion: 2 });
    expect([...before.accounts.keys()]).toEqual(['cash', 'alice']);
  });
});

describe('replayLedger: an event that breaks the ledger\'s invariants', () => {
  it('readable and correctly hashed (no writer decides it, a client of the store can append it), is a CorruptEventError naming its version and type, with the invariant as its cause', async () => {
    const store = new InMemoryEventStore();
    const where = { tenantId: 'acme', ledgerId: 'eur' };
    const ledger = await Ledger.open({ store, ...where });
    await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
    await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '12.50', currency: 'EUR' });
    await ledger.close();
    const [head] = await store.readStream({ ...where, direction: 'backward', limit: 1 });
    if (head === undefined) throw new Error('empty');
    const { hash: previousHash, ...envelope } = head;
    const forged: Omit<StoredEvent, 'hash'> = {
      ...envelope,
      eventId: 'forged-4',
      ledgerVersion: 4,
      type: 'TransferPosted',
      data: { transferId: 'x1', postings: [{ accountId: 'ghost', side: 'debit', amount: '5.00', currency: 'EUR' }, { accountId: 'alice', side: 'credit', amount: '5.00', currency: 'EUR' }], metadata: {} },
      previousHash,
    };
    await store.append({ ...where, expectedVersion: 3, events: [{ ...forged, hash: hashEvent(forged) }] });

    const source = { store, codec: new EventCodec({ currencies: new CurrencyRegistry() }), ...where };
    for (const asOf of [undefined, { ledgerVersion: 4 }, { effectiveAt: new Date(Date.now() + 60_000) }]) {
      const replay = replayLedger(source, asOf);
      await expect(replay, JSON.stringify(asOf)).rejects.toMatchObject({
        name: 'CorruptEventError',
        code: 'corrupt_event',
        ledgerVersion: 4,
        ...where,
        reason: "the TransferPosted event breaks the ledger's invariants (invariant violated: account ghost does not exist)",
        cause: { name: 'InvariantViolationError', code: 'invariant_violated' },
      });
      await expect(replay).rejects.toThrow(/^corrupt event at ledger version 4 of ledger "eur" \(tenant "acme"\): the TransferPosted event/);
    }
    // Up to the event before it, the ledger replays.
    expect((await replayLedger(source, { ledgerVersion: 3 })).version).toBe(3);
  });
});
