/**
 * Behind the digest, `restoreState` checks that a snapshot's state holds together, and
 * `LedgerWriter.open` that it was taken when the event at its version was the last: a state
 * altered by someone who recomputed the digest (anyone can: no secret goes into it), or written
 * wrong by a bug, is still not used when it holds what no log can leave. Each case here is
 * sealed again with the digest `serializeState` would give it, so that only those checks are
 * left to refuse it.
 */
import { describe, expect, it } from 'vitest';
import { watching } from './support/watching-store.js';
import { CurrencyRegistry, InMemoryEventStore, Ledger, restoreState, type JsonObject, type Snapshot } from '@ledgerkit/ledger-core';
import { snapshotDigest, type SnapshotContent } from '../src/domain/snapshot-codec.js';

const currencies = new CurrencyRegistry();
const TENANT = 'acme';
const T0 = Date.parse('2025-06-01T12:00:00.000Z');

/** cash and alice (no overdraft) in EUR, usd-cash in USD; 10.00 to alice; a hold of 3.00 from alice to cash; bob frozen by command id. */
async function seeded(ledgerId: string): Promise<{ store: InMemoryEventStore; snapshot: Snapshot }> {
  const store = new InMemoryEventStore();
  let now = T0;
  const ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0, clock: () => (now += 1_000) });
  for (const result of [
    await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }),
    await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } }),
    await ledger.openAccount({ accountId: 'usd-cash', currency: 'USD', type: 'asset' }),
    await ledger.openAccount({ accountId: 'bob', currency: 'EUR', type: 'liability' }),
    await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' }),
    await ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'cash', amount: '3.00', currency: 'EUR' }),
    await ledger.freezeAccount({ accountId: 'bob', commandId: 'f1' }),
  ]) {
    expect(result.ok, JSON.stringify(result)).toBe(true);
  }
  await ledger.writer.saveSnapshot();
  await ledger.close();
  return { store, snapshot: (await store.loadSnapshot({ tenantId: TENANT, ledgerId })) as Snapshot };
}

/** A copy of the state changed by `edit`, with the digest recomputed over it, as a forger would. */
function forged(snapshot: Snapshot, edit: (state: Record<string, any>) => void): JsonObject {
  const state = JSON.parse(JSON.stringify(snapshot.state)) as Record<string, any>;
  edit(state);
  delete state['digest'];
  return { ...state, digest: snapshotDigest(state as SnapshotContent, snapshot.hash) } as JsonObject;
}

const account = (state: Record<string, any>, id: string): Record<string, any> => state['accounts'].find((a: { id: string }) => a.id === id);
const hold = (state: Record<string, any>): Record<string, any> => state['holds'][0];

describe('restoreState refuses a state that holds what no log can leave, even with a digest that matches', () => {
  const cases: [string, (state: Record<string, any>) => void][] = [
    ['two rows of one account (the second would replace the first)', (s) => {
      s['accounts'].push({ ...account(s, 'alice'), balances: ['0', '100000000', '300', '0'] });
    }],
    ['two rows of one hold', (s) => {
      s['holds'].push(hold(s));
    }],
    ['an open hold posting to an account the state does not hold', (s) => {
      hold(s)['postings'][1][0] = 'nobody';
    }],
    ["an open hold posting in another currency than its account's (one the state knows the scale of)", (s) => {
      hold(s)['postings'][1][3] = 'USD';
    }],
    ['an open hold of a zero amount', (s) => {
      hold(s)['postings'][0][2] = '0';
      account(s, 'alice')['balances'][2] = '0';
    }],
    ["pending debits that are not the open holds' (the hold dropped, the balance kept)", (s) => {
      s['holds'] = [];
    }],
    ['pending credits the open holds do not account for', (s) => {
      account(s, 'bob')['balances'][3] = '500';
    }],
    ['a balance above BALANCE_MINOR_MAX', (s) => {
      account(s, 'cash')['balances'][0] = '9'.repeat(39);
      account(s, 'alice')['balances'][1] = '9'.repeat(39);
    }],
    ['a closed account with a balance', (s) => {
      account(s, 'alice')['status'] = 'closed';
    }],
    ['a no-overdraft account past its limit', (s) => {
      account(s, 'alice')['balances'][0] = '900';
      account(s, 'cash')['balances'][1] = '1900';
    }],
    ["a normal side that is not the account type's", (s) => {
      account(s, 'alice')['normalSide'] = 'debit';
    }],
    ["an account opened after the state's version", (s) => {
      account(s, 'bob')['openedAtVersion'] = 99;
    }],
    ["a hold recorded after the state's last recorded time", (s) => {
      hold(s)['recordedAtMs'] = s['lastRecordedAtMs'] + 1;
    }],
    ["a remembered lifecycle command after the state's version", (s) => {
      account(s, 'bob')['lifecycleCommands'][0][2] = 99;
    }],
  ];

  for (const [name, edit] of cases) {
    it(name, async () => {
      const { snapshot } = await seeded('forged');
      expect(restoreState(forged(snapshot, () => {}), currencies, snapshot.hash), 'resealed as it was').toBeDefined();
      expect(restoreState(forged(snapshot, edit), currencies, snapshot.hash)).toBeUndefined();
    });
  }

  it('(documents the limit) a consistent change sealed again is not detected: the digest stops damage and careless edits, not a forger who can write snapshots', async () => {
    const { snapshot } = await seeded('forged');
    const state = restoreState(
      forged(snapshot, (s) => {
        account(s, 'alice')['metadata'] = { note: 'forged' };
      }),
      currencies,
      snapshot.hash,
    );
    expect(state?.accounts.get('alice')?.metadata).toEqual({ note: 'forged' });
  });
});

describe('LedgerWriter.open', () => {
  it('does not use a snapshot whose last recorded time is not the recorded time of the event at its version (moved ahead, the digest recomputed): it replays the log', async () => {
    const ledgerId = 'time';
    const { store, snapshot } = await seeded(ledgerId);
    const future = Date.parse('2999-01-01T00:00:00.000Z');
    await store.saveSnapshot({ ...snapshot, state: forged(snapshot, (s) => void (s['lastRecordedAtMs'] = future)) });
    // The state alone is consistent: a later last recorded time is what a later event leaves.
    expect(restoreState((await store.loadSnapshot({ tenantId: TENANT, ledgerId }))?.state as JsonObject, currencies, snapshot.hash)?.lastRecordedAtMs).toBe(future);
    const watched = watching(store);
    const now = T0 + 3_600_000;
    const ledger = await Ledger.open({ store: watched.store, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0, clock: () => now });
    try {
      expect(watched.replayed()).toBe(true);
      expect(await ledger.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' })).toMatchObject({ ok: true, recordedAt: new Date(now).toISOString() });
    } finally {
      await ledger.close();
    }
  });
});
