import { InvalidInputError, type Ledger } from '@ledgerkit/ledger-core';
import { ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, projectToEnd } from './support/fixtures.js';
import { recordingClient } from './support/recording-client.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// A range's bounds given finer than the millisecond the ledger records, and a reference no stored
// reference can hold: each must answer as the bound or reference says, not as it looks once the
// driver or Date.parse has rounded it.

const TENANT = 'bounds';
/** When the transfer and the hold are recorded (the ledger's clock is fixed). */
const RECORDED = '2025-01-01T00:00:30.000Z';
/** The hold's timeout: RECORDED plus a minute. */
const TIMES_OUT = '2025-01-01T00:01:30.000Z';

let db: TestDatabase;
let models: ReadModels;
let ledger: Ledger;

beforeAll(async () => {
  db = await openTestDatabase();
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  let now = Date.parse('2025-01-01T00:00:00.000Z');
  ledger = await openFixtureLedger(store, TENANT, 'eur', () => now);
  now = Date.parse(RECORDED);
  await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR', reference: 'inv-\uFFFD' });
  await ledger.hold({ transferId: 'h1', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR', timeoutMs: 60_000 });
  await projectToEnd(db.app, store, [TENANT]);
});

afterAll(async () => {
  await ledger?.close();
  await db?.close();
});

describe('a statement bound finer than a millisecond', () => {
  const recordedTimes = async (range: { from?: string; to?: string }): Promise<string[]> =>
    (await models.statement(TENANT, 'eur', 'alice', range)).entries.map((entry) => entry.recordedAt);

  it('from half a millisecond after an entry leaves it out; from exactly at it, or just before, lets it in', async () => {
    expect(await recordedTimes({ from: '2025-01-01T00:00:30.000500Z' })).toEqual([]);
    expect(await recordedTimes({ from: '2025-01-01T00:00:30.000000001Z' })).toEqual([]);
    expect(await recordedTimes({ from: RECORDED })).toEqual([RECORDED]);
    expect(await recordedTimes({ from: '2025-01-01T00:00:29.999500Z' })).toEqual([RECORDED]);
  });

  it('to half a millisecond after an entry lets it in; to exactly at it leaves it out (the end is open)', async () => {
    expect(await recordedTimes({ to: '2025-01-01T00:00:30.000500Z' })).toEqual([RECORDED]);
    expect(await recordedTimes({ to: '2025-01-01T00:00:30.000000Z' })).toEqual([]);
    expect(await recordedTimes({ to: '2025-01-01T00:00:30.0000000Z' })).toEqual([]);
    // The same instant with an offset, and the fraction after it.
    expect(await recordedTimes({ to: '2025-01-01T01:00:30.0001+01:00' })).toEqual([RECORDED]);
  });
});

describe('openHolds expiringBefore finer than a millisecond', () => {
  it('half a millisecond after the timeout includes the hold; exactly at it does not', async () => {
    const held = async (expiringBefore: string): Promise<string[]> => (await models.openHolds(TENANT, 'eur', { expiringBefore })).holds.map((hold) => hold.transferId);
    expect(await held('2025-01-01T00:01:30.000500Z')).toEqual(['h1']);
    expect(await held(TIMES_OUT)).toEqual([]);
    expect(await held('2025-01-01T00:01:30.000999Z')).toEqual(['h1']);
  });
});

describe('transfersByReference with a reference no stored reference can hold', () => {
  it('an unpaired surrogate is refused at reference, not looked up as the U+FFFD the driver would send', async () => {
    const error = await models.transfersByReference(TENANT, 'eur', 'inv-\uD800').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues).toEqual([expect.objectContaining({ path: ['reference'] })]);
    // The reference that is stored is found.
    expect((await models.transfersByReference(TENANT, 'eur', 'inv-\uFFFD')).transfers.map((transfer) => transfer.transferId)).toEqual(['t1']);
  });
});

describe('a statement read', () => {
  it('reads the account and its entries from one snapshot (repeatable read), while single-statement reads stay read committed', async () => {
    const statements: string[] = [];
    const recorded = new ReadModels({ pool: { connect: async () => recordingClient(await db.app.connect(), statements) }, currencies });
    expect((await recorded.statement(TENANT, 'eur', 'alice')).entries).toHaveLength(1);
    expect(statements.filter((text) => text.startsWith('BEGIN'))).toEqual([expect.stringMatching(/^BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;/)]);
    statements.length = 0;
    await recorded.transfersByReference(TENANT, 'eur', 'inv-\uFFFD');
    expect(statements.filter((text) => text.startsWith('BEGIN'))).toEqual([expect.stringMatching(/^BEGIN READ ONLY;/)]);
  });
});
