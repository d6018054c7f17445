import { InvalidInputError, type HistoryEntry, type Ledger } from '@ledgerkit/ledger-core';
import { BALANCE_READS_PER_STATEMENT_MAX, ReadModels } from '@ledgerkit/projections';
import type { ClientPool } from '@ledgerkit/tenant-rls';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, projectToEnd } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

const TENANT = 'queries';
const T0 = Date.parse('2025-05-01T10:00:00.000Z');
const MINUTE = 60_000;

let db: TestDatabase;
let models: ReadModels;
let ledger: Ledger;
let now = T0;

beforeAll(async () => {
  db = await openTestDatabase();
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  ledger = await openFixtureLedger(store, TENANT, 'eur', () => now);
  // One transfer a minute to alice, then holds expiring at different times.
  for (let n = 1; n <= 12; n += 1) {
    now = T0 + n * MINUTE;
    await ledger.transfer({ transferId: `m${n}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: `${n}.00`, currency: 'EUR', reference: n % 2 === 0 ? 'even' : 'odd' });
  }
  await ledger.hold({ transferId: 'h-late', debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR', timeoutMs: 50 * MINUTE });
  await ledger.hold({ transferId: 'h-soon', debitAccountId: 'alice', creditAccountId: 'bob', amount: '2.00', currency: 'EUR', timeoutMs: 5 * MINUTE });
  await ledger.hold({ transferId: 'h-never', debitAccountId: 'alice', creditAccountId: 'bob', amount: '3.00', currency: 'EUR' });
  await ledger.hold({ transferId: 'h-posted', debitAccountId: 'alice', creditAccountId: 'bob', amount: '4.00', currency: 'EUR' });
  await ledger.postPending({ transferId: 'p-posted', pendingId: 'h-posted', amount: '1.50', currency: 'EUR' });
  await projectToEnd(db.app, store, [TENANT]);
});

afterAll(async () => {
  await ledger?.close();
  await db?.close();
});

describe('ReadModels', () => {
  it('a statement limited to a recorded-time window holds exactly the entries recorded in it, page by page', async () => {
    const all = (await ledger.history('alice', { limit: 1_000 })).entries;
    const from = new Date(T0 + 3 * MINUTE);
    const to = new Date(T0 + 9 * MINUTE).toISOString();
    const expected = all.filter((entry) => Date.parse(entry.recordedAt) >= from.getTime() && Date.parse(entry.recordedAt) < Date.parse(to));
    expect(expected.length).toBe(6);
    const got: HistoryEntry[] = [];
    let afterVersion = 0;
    for (let pages = 0; pages < 10; pages += 1) {
      const page = await models.statement(TENANT, 'eur', 'alice', { from, to, limit: 4, afterVersion });
      got.push(...page.entries);
      if (page.nextAfterVersion === null) break;
      afterVersion = page.nextAfterVersion;
    }
    expect(got).toEqual(expected);
    expect((await models.statement(TENANT, 'eur', 'alice', { from: new Date(T0 + 100 * MINUTE) })).entries).toEqual([]);
  });

  it('transfers by id and by reference, with holds, their resolution and partial posts', async () => {
    expect(await models.transfer(TENANT, 'eur', 'p-posted')).toMatchObject({
      kind: 'postPending',
      pendingId: 'h-posted',
      postings: [
        { accountId: 'alice', side: 'debit', amount: '1.50', currency: 'EUR' },
        { accountId: 'bob', side: 'credit', amount: '1.50', currency: 'EUR' },
      ],
      hold: null,
    });
    expect((await models.transfer(TENANT, 'eur', 'h-posted'))?.hold).toEqual({ status: 'posted', timeoutAt: null, resolvedBy: 'p-posted', resolvedVersion: ledger.version });
    expect((await models.transfersByReference(TENANT, 'eur', 'even')).transfers.map((transfer) => transfer.transferId)).toEqual(['m2', 'm4', 'm6', 'm8', 'm10', 'm12']);
    const firstTwo = await models.transfersByReference(TENANT, 'eur', 'even', { limit: 2 });
    expect(firstTwo.transfers.map((transfer) => transfer.transferId)).toEqual(['m2', 'm4']);
    expect((await models.transfersByReference(TENANT, 'eur', 'even', { limit: 2, after: firstTwo.next })).transfers.map((transfer) => transfer.transferId)).toEqual(['m6', 'm8']);
  });

  it('open holds come soonest expiry first, those without a timeout last, and can be limited to those expiring before an instant', async () => {
    expect((await models.openHolds(TENANT, 'eur')).holds.map((hold) => hold.transferId)).toEqual(['h-soon', 'h-late', 'h-never']);
    const soon = await models.openHolds(TENANT, 'eur', { expiringBefore: new Date(T0 + 30 * MINUTE) });
    expect(soon.holds.map((hold) => [hold.transferId, hold.hold?.timeoutAt])).toEqual([['h-soon', new Date(T0 + 17 * MINUTE).toISOString()]]);
    expect(soon.next).toBeNull();
  });

  it('unknown accounts, and accounts not opened yet at a point, have no balance', async () => {
    expect(await models.balance(TENANT, 'eur', 'nobody')).toBeUndefined();
    expect(await models.balanceAt(TENANT, 'eur', 'alice', { ledgerVersion: 0 })).toBeUndefined();
    expect(await models.balanceAt(TENANT, 'eur', 'alice', { recordedAt: new Date(T0 - 1) })).toBeUndefined();
    expect(await models.statement(TENANT, 'eur', 'nobody')).toEqual({ accountId: 'nobody', entries: [], nextAfterVersion: null });
  });

  it('balance reads asked in one turn share one statement per tenant and answer exactly as each read alone', async () => {
    let connections = 0;
    const counting: ClientPool = {
      connect: () => {
        connections += 1;
        return db.app.connect();
      },
    };
    const batched = new ReadModels({ pool: counting, currencies });
    const alone = new ReadModels({ pool: counting, currencies, batchBalanceReads: false });
    const keys = ['alice', 'bob', 'cash', 'nobody', 'alice'];
    connections = 0;
    const together = await Promise.all(keys.map((account) => batched.balance(TENANT, 'eur', account)));
    expect(connections).toBe(1);
    connections = 0;
    const separately = await Promise.all(keys.map((account) => alone.balance(TENANT, 'eur', account)));
    expect(connections).toBe(keys.length);
    expect(together).toEqual(separately);
    // alice: 1.00 + … + 12.00 received, 1.50 of a hold posted to bob.
    expect(together[0]?.posted).toBe('76.50');
    expect(together[3]).toBeUndefined();

    // Another tenant in the same turn: its own statement, its own rows only; a bad tenant id is
    // refused alone, before any SQL, and spoils nobody else's read.
    connections = 0;
    const [mine, theirs, bad] = await Promise.allSettled([
      batched.balance(TENANT, 'eur', 'alice'),
      batched.balance('someone-else', 'eur', 'alice'),
      batched.balance("x' OR '1'='1", 'eur', 'alice'),
    ]);
    expect(mine).toEqual({ status: 'fulfilled', value: separately[0] });
    expect(theirs).toEqual({ status: 'fulfilled', value: undefined });
    expect(bad.status).toBe('rejected');
    expect(connections).toBe(2);

    // A malformed id (a NUL byte) fails its own read only, before any SQL, not the others of its turn.
    const [good, refused] = await Promise.allSettled([batched.balance(TENANT, 'eur', 'alice'), batched.balance(TENANT, 'eur', 'ali\u0000ce')]);
    expect(good).toEqual({ status: 'fulfilled', value: separately[0] });
    expect(refused).toMatchObject({ status: 'rejected', reason: { code: 'invalid_input' } });

    // More than one statement holds: split, every read answered.
    connections = 0;
    const many = await Promise.all(Array.from({ length: BALANCE_READS_PER_STATEMENT_MAX + 1 }, (_, i) => batched.balance(TENANT, 'eur', i === BALANCE_READS_PER_STATEMENT_MAX ? 'bob' : `none-${i}`)));
    expect(connections).toBe(2);
    expect(many.filter((balance) => balance !== undefined)).toEqual([separately[1]]);
  });

  it('rejects bad input as the replay path does, before any SQL', async () => {
    await expect(models.statement(TENANT, 'eur', 'alice', { limit: 0 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(models.statement(TENANT, 'eur', 'alice', { limit: 1_001 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(models.statement(TENANT, 'eur', 'alice', { afterVersion: -1 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(models.statement(TENANT, 'eur', 'alice', { from: 'yesterday' })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(models.balanceAt(TENANT, 'eur', 'alice', { ledgerVersion: 1.5 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(models.balanceAt(TENANT, 'eur', 'alice', { effectiveAt: 'not a date' })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(models.openHolds(TENANT, 'eur', { after: 'garbage' })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(models.transfersByReference(TENANT, 'eur', 'odd', { limit: 0 })).rejects.toBeInstanceOf(InvalidInputError);
  });
});
