import { EventCodec, InvalidInputError, LimitExceededError, replayLedger, type Ledger } from '@ledgerkit/ledger-core';
import { ReadModels, reconcileLedger, ResultTooLargeError } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, projectToEnd, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// reconcileLedger: the history read model against a replay of the log, account by account.

const TENANT = 'reconciled';
const MINUTE = 60_000;
const T0 = Date.parse('2025-06-01T09:00:00.000Z');

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
let ledger: Ledger;
let now = T0;

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  ledger = await openFixtureLedger(store, TENANT, 'eur', () => now);
  // Every kind of balance change: transfers, a back-dated one, holds posted, voided and left
  // open, a reversal, a frozen and a closed account.
  now += MINUTE;
  await writeTransfers(ledger, 't', 12, 4);
  now += MINUTE;
  await ledger.transfer({ transferId: 'late', debitAccountId: 'cash', creditAccountId: 'bob', amount: '7.00', currency: 'EUR', effectiveAt: new Date(T0 - 10 * MINUTE).toISOString() });
  await ledger.hold({ transferId: 'h-post', debitAccountId: 'alice', creditAccountId: 'bob', amount: '5.00', currency: 'EUR' });
  await ledger.hold({ transferId: 'h-void', debitAccountId: 'alice', creditAccountId: 'carol', amount: '2.00', currency: 'EUR' });
  await ledger.hold({ transferId: 'h-open', debitAccountId: 'bob', creditAccountId: 'carol', amount: '1.25', currency: 'EUR' });
  await ledger.postPending({ transferId: 'p-post', pendingId: 'h-post', amount: '3.50', currency: 'EUR' });
  await ledger.voidPending({ transferId: 'v-void', pendingId: 'h-void' });
  await ledger.reverse({ transferId: 'r-t-1', reversalOf: 't-1' });
  await ledger.openAccount({ accountId: 'dormant', currency: 'EUR', type: 'liability' });
  await ledger.closeAccount({ accountId: 'dormant' });
  await ledger.freezeAccount({ accountId: 'carol' });
  await projectToEnd(db.app, store, [TENANT]);
});

afterAll(async () => {
  await ledger?.close();
  await db?.close();
});

describe('reconcileLedger', () => {
  it('a read model that followed the log agrees with replay at its last version and at every earlier one', async () => {
    const result = await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies });
    expect(result).toEqual({ tenantId: TENANT, ledgerId: 'eur', ledgerVersion: ledger.version, accountsCompared: 5, mismatchCount: 0, mismatches: [], agrees: true });
    // Agreeing says nothing about which version was compared (the head agrees too): the accounts
    // compared must be those open at that version, none at version 0.
    const source = { store, codec: new EventCodec({ currencies }), tenantId: TENANT, ledgerId: 'eur' };
    const opened: number[] = [];
    for (let ledgerVersion = 0; ledgerVersion <= ledger.version; ledgerVersion += 1) {
      const earlier = await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, ledgerVersion });
      expect(earlier.agrees, `version ${ledgerVersion}`).toBe(true);
      expect(earlier.ledgerVersion).toBe(ledgerVersion);
      const accounts = (await replayLedger(source, { ledgerVersion })).accounts.size;
      expect(earlier.accountsCompared, `accounts compared at version ${ledgerVersion}`).toBe(accounts);
      opened.push(accounts);
    }
    expect(opened[0]).toBe(0);
    expect(opened.at(-1)).toBe(5);

    // The read model's answer at an old version only: alice's first entry off by a cent (her later
    // entries carry their own running totals, so the head still agrees). Reconciling at that
    // version must find it, which it cannot if it compared the head's balances instead.
    const owner = db.admin;
    const where = `tenant_id = $1 AND ledger_id = 'eur' AND account_id = 'alice'`;
    const firstAlice = Number((await owner.query(`SELECT min(ledger_version) AS v FROM ledgerkit.rm_account_entries WHERE ${where}`, [TENANT])).rows[0].v);
    expect(firstAlice).toBeLessThan(ledger.version);
    const changed = await owner.query(`UPDATE ledgerkit.rm_account_entries SET credits_posted = credits_posted + 1 WHERE ${where} AND ledger_version = $2`, [TENANT, firstAlice]);
    expect(changed.rowCount).toBe(1);
    try {
      const atHead = await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies });
      expect(atHead.agrees, 'the head is untouched').toBe(true);
      const old = await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, ledgerVersion: firstAlice });
      expect(old).toMatchObject({ ledgerVersion: firstAlice, agrees: false, mismatchCount: 1 });
      expect(old.mismatches[0]?.accountId).toBe('alice');
      expect(old.mismatches[0]?.readModel?.creditsPosted).not.toBe(old.mismatches[0]?.replay?.creditsPosted);
    } finally {
      await owner.query(`UPDATE ledgerkit.rm_account_entries SET credits_posted = credits_posted - 1 WHERE ${where} AND ledger_version = $2`, [TENANT, firstAlice]);
    }
    expect((await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, ledgerVersion: firstAlice })).agrees).toBe(true);
  });

  it('balancesAt answers what replay computes for every account, status and pending totals included', async () => {
    const balances = await models.balancesAt(TENANT, 'eur', { ledgerVersion: ledger.version });
    const expected = ['alice', 'bob', 'carol', 'cash', 'dormant'].map((id) => ledger.balance(id));
    expect(balances).toEqual(expected);
    expect(balances.find((balance) => balance.accountId === 'carol')).toMatchObject({ status: 'frozen', debitsPending: '0.00' });
    expect(balances.find((balance) => balance.accountId === 'bob')).toMatchObject({ debitsPending: '1.25' });
    expect(await models.historyVersion(TENANT, 'eur')).toBe(ledger.version);
    expect(await models.historyVersion(TENANT, 'no-such-ledger')).toBe(0);
  });

  it('a read model changed behind the log is found: the account, both answers, the count', async () => {
    const owner = db.admin;
    const where = `tenant_id = $1 AND ledger_id = 'eur'`;
    const lastAlice = `(SELECT max(ledger_version) FROM ledgerkit.rm_account_entries WHERE ${where} AND account_id = 'alice')`;
    const dormantStates = (await owner.query(`SELECT * FROM ledgerkit.rm_account_states WHERE ${where} AND account_id = 'dormant'`, [TENANT])).rows;
    expect(dormantStates.length).toBeGreaterThan(0);
    // An entry's running totals off by one cent, and an account the read model lost.
    const changed = await owner.query(`UPDATE ledgerkit.rm_account_entries SET credits_posted = credits_posted + 1 WHERE ${where} AND account_id = 'alice' AND ledger_version = ${lastAlice}`, [TENANT]);
    expect(changed.rowCount).toBeGreaterThan(0);
    await owner.query(`DELETE FROM ledgerkit.rm_account_states WHERE ${where} AND account_id = 'dormant'`, [TENANT]);
    try {
      const found = await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies });
      expect(found.agrees).toBe(false);
      expect(found.mismatchCount).toBe(2);
      expect(found.mismatches.map((mismatch) => mismatch.accountId)).toEqual(['alice', 'dormant']);
      const [alice, dormant] = found.mismatches;
      expect(alice?.replay).toEqual(ledger.balance('alice'));
      expect(alice?.readModel).toMatchObject({ accountId: 'alice' });
      expect(alice?.readModel?.creditsPosted).not.toBe(ledger.balance('alice')?.creditsPosted);
      expect(dormant).toEqual({ accountId: 'dormant', readModel: null, replay: ledger.balance('dormant') });
      // Listed up to the bound, counted in full.
      const listedOne = await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, mismatchesListedMax: 1 });
      expect(listedOne.mismatchCount).toBe(2);
      expect(listedOne.mismatches.map((mismatch) => mismatch.accountId)).toEqual(['alice']);
    } finally {
      await owner.query(`UPDATE ledgerkit.rm_account_entries SET credits_posted = credits_posted - 1 WHERE ${where} AND account_id = 'alice' AND ledger_version = ${lastAlice}`, [TENANT]);
      for (const row of dormantStates) {
        const columns = Object.keys(row);
        await owner.query(`INSERT INTO ledgerkit.rm_account_states (${columns.join(', ')}) VALUES (${columns.map((_, n) => `$${n + 1}`).join(', ')})`, Object.values(row));
      }
    }
    expect((await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies })).agrees).toBe(true);
  });

  it('a version past what the read model applied, bad bounds and bad ids are refused before the log is read', async () => {
    await expect(reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, ledgerVersion: ledger.version + 1 })).rejects.toThrow(/last the history read model has applied/);
    for (const options of [{ ledgerVersion: -1 }, { ledgerVersion: 1.5 }, { accountsMax: 0 }, { accountsMax: 1_000_001 }, { mismatchesListedMax: -1 }, { mismatchesListedMax: 1_001 }]) {
      await expect(reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, ...options }), JSON.stringify(options)).rejects.toBeInstanceOf(InvalidInputError);
    }
    await expect(reconcileLedger({ store, models, tenantId: 'bad tenant!', ledgerId: 'eur' })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'e\u0000ur' })).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('a ledger with more accounts than accountsMax is refused, not loaded', async () => {
    await expect(reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, accountsMax: 4 })).rejects.toBeInstanceOf(LimitExceededError);
    await expect(models.balancesAt(TENANT, 'eur', { ledgerVersion: ledger.version }, { linesMax: 4 })).rejects.toBeInstanceOf(ResultTooLargeError);
    expect((await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur', currencies, accountsMax: 5 })).agrees).toBe(true);
  });
});
