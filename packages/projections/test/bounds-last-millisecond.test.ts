import { InvalidInputError, type Ledger } from '@ledgerkit/ledger-core';
import { ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, projectToEnd, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// A range's bound finer than a millisecond rounds up to the next one (see read-models-bounds).
// Inside the last millisecond of year 9999 the bound is in range, but the next millisecond is
// not: it must not be refused (an API passes it through, having checked its range), and it
// must answer as the bound says, every recorded time and timeout being before it.

const TENANT = 'last-ms';
const MINUTE = 60_000;
/** In year 9999, past its last whole millisecond. */
const LAST_MS_AND_A_HALF = '9999-12-31T23:59:59.9995Z';
const LAST_MS = '9999-12-31T23:59:59.999Z';

let db: TestDatabase;
let models: ReadModels;
let ledger: Ledger;

beforeAll(async () => {
  db = await openTestDatabase();
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  ledger = await openFixtureLedger(store, TENANT);
  await writeTransfers(ledger, 't', 5);
  for (const [n, timeoutMs] of [10 * MINUTE, undefined].entries()) {
    expect(await ledger.hold({ transferId: `h${n}`, debitAccountId: 'alice', creditAccountId: 'bob', amount: '0.10', currency: 'EUR', ...(timeoutMs === undefined ? {} : { timeoutMs }) })).toMatchObject({ ok: true });
  }
  await projectToEnd(db.app, store, [TENANT]);
});

afterAll(async () => {
  await ledger?.close();
  await db?.close();
});

describe('a bound inside the last millisecond of 9999', () => {
  it("as a statement's to, keeps nothing out: the same pages as no to", async () => {
    const everything = await ledger.history('alice', { limit: 1_000 });
    expect(everything.entries.length).toBeGreaterThan(1);
    for (const to of [LAST_MS_AND_A_HALF, '9999-12-31T23:59:59.999000001Z', '9999-12-31T23:59:59.9999999+00:00']) {
      expect(await models.statement(TENANT, 'eur', 'alice', { to }), to).toEqual(await models.statement(TENANT, 'eur', 'alice'));
      expect(await models.statement(TENANT, 'eur', 'alice', { to, limit: 1_000 }), to).toEqual(everything);
      expect(await models.statement(TENANT, 'eur', 'alice', { from: '0001-01-01T00:00:00Z', to, limit: 1_000 }), to).toEqual(everything);
    }
    // Paging goes on as without a bound.
    const first = await models.statement(TENANT, 'eur', 'alice', { to: LAST_MS_AND_A_HALF, limit: 1 });
    expect(first.nextAfterVersion).not.toBeNull();
    expect(await models.statement(TENANT, 'eur', 'alice', { to: LAST_MS_AND_A_HALF, limit: 1, afterVersion: first.nextAfterVersion as number })).toEqual(
      await models.statement(TENANT, 'eur', 'alice', { limit: 1, afterVersion: first.nextAfterVersion as number }),
    );
  });

  it("as a statement's from, lets nothing in: an empty last page", async () => {
    for (const from of [LAST_MS_AND_A_HALF, '9999-12-31T23:59:59.999000001Z']) {
      expect(await models.statement(TENANT, 'eur', 'alice', { from }), from).toEqual({ accountId: 'alice', entries: [], nextAfterVersion: null });
      expect(await models.statement(TENANT, 'eur', 'alice', { from, to: LAST_MS_AND_A_HALF }), from).toEqual({ accountId: 'alice', entries: [], nextAfterVersion: null });
    }
  });

  it("as openHolds' expiringBefore, every hold with a timeout, and not the hold without one", async () => {
    const held = async (expiringBefore: string): Promise<string[]> => (await models.openHolds(TENANT, 'eur', { expiringBefore })).holds.map((hold) => hold.transferId);
    expect(await held(LAST_MS_AND_A_HALF)).toEqual(['h0']);
    expect(await held(LAST_MS)).toEqual(['h0']);
    expect((await models.openHolds(TENANT, 'eur')).holds.map((hold) => hold.transferId)).toEqual(['h0', 'h1']);
  });

  it('the last whole millisecond answers as before, and a bound past year 9999 is still refused', async () => {
    expect(await models.statement(TENANT, 'eur', 'alice', { to: LAST_MS, limit: 1_000 })).toEqual(await ledger.history('alice', { limit: 1_000 }));
    expect((await models.statement(TENANT, 'eur', 'alice', { from: LAST_MS })).entries).toEqual([]);
    // The same last millisecond a minute later, in an offset: year 10000 in UTC.
    for (const bound of ['9999-12-31T23:59:59.9995-00:01', '+010000-01-01T00:00:00.0005Z']) {
      for (const call of [
        () => models.statement(TENANT, 'eur', 'alice', { to: bound }),
        () => models.statement(TENANT, 'eur', 'alice', { from: bound }),
        () => models.openHolds(TENANT, 'eur', { expiringBefore: bound }),
      ]) {
        await expect(call(), bound).rejects.toBeInstanceOf(InvalidInputError);
      }
    }
  });
});
