import { EventCodec, type Ledger } from '@ledgerkit/ledger-core';
import { ReadModels, type Projection, type ProjectionEvent } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { withTenant } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balancesProjectionWithCache } from '../src/read-models/balances.js';
import { historyProjectionWithCache } from '../src/read-models/history.js';
import { currencies, expectBalancesAgree, FIXTURE_ACCOUNTS, globalLog, openFixtureLedger, writeTransfers } from './support/fixtures.js';
import { recordingClient } from './support/recording-client.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// The balances and history projections keep rows in memory between batches, per tenant, so that
// the next batch of a tenant need not read them back. The bound on what they keep is one for all
// the tenants of a projection object, not one per tenant: a runner serves up to 1,000 tenants.
// Whether a batch found its tenant's rows in memory shows in what it asks the database: a batch
// whose rows were dropped reads them back by key.

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
const ledgers = new Map<string, Ledger>();
const codec = new EventCodec({ currencies });

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
});

afterAll(async () => {
  for (const ledger of ledgers.values()) await ledger.close();
  await db?.close();
});

/** A tenant with the 4 fixture accounts and 6 transfers, its log split in two: the account openings and 2 transfers, then 4 transfers. */
async function tenantLog(tenantId: string): Promise<{ ledger: Ledger; first: ProjectionEvent[]; second: ProjectionEvent[] }> {
  const ledger = await openFixtureLedger(store, tenantId);
  ledgers.set(tenantId, ledger);
  await writeTransfers(ledger, 'c', 6);
  const events = (await globalLog(store, tenantId)).map((entry): ProjectionEvent => ({ position: entry.position, stored: entry.event, ...codec.decode(entry.event) }));
  const cut = FIXTURE_ACCOUNTS.length + 2;
  return { ledger, first: events.slice(0, cut), second: events.slice(cut) };
}

/** Applies one batch as the runner does (one transaction, tenant set) and returns the statements it sent. */
async function applyBatch(projection: Projection, tenantId: string, after: string | null, events: readonly ProjectionEvent[]): Promise<string[]> {
  const statements: string[] = [];
  await withTenant(db.app, tenantId, async (client) => {
    const recording = recordingClient(client, statements);
    await projection.apply({ client: recording, tenantId, after }, events);
  });
  return statements;
}

const lastPosition = (events: readonly ProjectionEvent[]): string => (events[events.length - 1] as ProjectionEvent).position;

/**
 * Two tenants of 4 accounts each through one projection object that keeps at most `max` rows:
 * A's first batch, B's first batch, then B's second and A's second. Returns whether each second
 * batch had to read its tenant's rows back.
 */
async function secondBatchesRead(make: (max: number) => Projection, max: number, prefix: string, rowRead: RegExp): Promise<{ a: boolean; b: boolean }> {
  const projection = make(max);
  const a = await tenantLog(`${prefix}-a`);
  const b = await tenantLog(`${prefix}-b`);
  await applyBatch(projection, `${prefix}-a`, null, a.first);
  await applyBatch(projection, `${prefix}-b`, null, b.first);
  const bSecond = await applyBatch(projection, `${prefix}-b`, lastPosition(b.first), b.second);
  const aSecond = await applyBatch(projection, `${prefix}-a`, lastPosition(a.first), a.second);
  return { a: aSecond.some((text) => rowRead.test(text)), b: bSecond.some((text) => rowRead.test(text)) };
}

// The statements that read rows back by key: balances' rows, history's account heads.
const BALANCE_ROWS_READ = /FROM ledgerkit\.rm_balances x\b/;
const ACCOUNT_HEADS_READ = /FROM ledgerkit\.rm_accounts x\b/;

describe('the in-memory rows of the projections are bounded over all tenants', () => {
  it('balances: when both tenants fit the bound, neither second batch reads its rows back', async () => {
    expect(await secondBatchesRead(balancesProjectionWithCache, 8, 'bal-fit', BALANCE_ROWS_READ)).toEqual({ a: false, b: false });
  });

  it('balances: when the second tenant would go over the bound, the least recently used tenant is dropped, and its rows are read back', async () => {
    // 4 + 4 rows over a bound of 6: A's rows go when B's come in; B's stay.
    expect(await secondBatchesRead(balancesProjectionWithCache, 6, 'bal-over', BALANCE_ROWS_READ)).toEqual({ a: true, b: false });
    // Read back or kept, the balances are right.
    for (const tenantId of ['bal-over-a', 'bal-over-b']) {
      const ledger = ledgers.get(tenantId) as Ledger;
      await expectBalancesAgree(models, ledger, tenantId);
    }
  });

  it('balances: a tenant with more rows than the whole bound keeps none, and drops no other tenant', async () => {
    // With a bound of 3, neither tenant's 4 rows are kept: both second batches read them back.
    expect(await secondBatchesRead(balancesProjectionWithCache, 3, 'bal-tiny', BALANCE_ROWS_READ)).toEqual({ a: true, b: true });
  });

  it('history: when both tenants fit the bound, neither second batch reads its account heads back', async () => {
    expect(await secondBatchesRead(historyProjectionWithCache, 8, 'his-fit', ACCOUNT_HEADS_READ)).toEqual({ a: false, b: false });
  });

  it('history: when the second tenant would go over the bound, the least recently used tenant is dropped, and its heads are read back', async () => {
    expect(await secondBatchesRead(historyProjectionWithCache, 6, 'his-over', ACCOUNT_HEADS_READ)).toEqual({ a: true, b: false });
    for (const tenantId of ['his-over-a', 'his-over-b']) {
      const ledger = ledgers.get(tenantId) as Ledger;
      for (const accountId of FIXTURE_ACCOUNTS) {
        expect(await models.balanceAt(tenantId, 'eur', accountId, { ledgerVersion: ledger.version }), `${tenantId} ${accountId}`).toEqual(ledger.balance(accountId));
      }
    }
  });
});
