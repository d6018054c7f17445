import { describe, expect, it } from 'vitest';
import { balanceOf, CurrencyRegistry, EventCodec, InMemoryEventStore, Ledger, replayLedger, trialBalanceOf, type AccountState, type ReplayedState } from '@ledgerkit/ledger-core';

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
