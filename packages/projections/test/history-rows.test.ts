import type { Ledger } from '@ledgerkit/ledger-core';
import { historyProjection, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, projectToEnd } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// The history projection writes its insert parameters as array literals it builds from text made
// once per account and per event, and the postings' JSON without escaping it character by
// character: text that needs quoting or escaping must come back exactly as written.

const TENANT = 'history-rows';
/** Quotes, backslashes, braces, commas, a NULL that is a string, non-ASCII and an astral character. */
const AWKWARD = 'say "hi" \\ {a,b} NULL é 😀';

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
let ledger: Ledger;

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  ledger = await openFixtureLedger(store, TENANT, 'eur');
  const results = await Promise.all([
    ledger.transfer({ transferId: 'plain', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' }),
    ledger.transfer({ transferId: 'awkward', debitAccountId: 'cash', creditAccountId: 'bob', amount: '2.50', currency: 'EUR', reference: AWKWARD, metadata: { note: AWKWARD, 'k"e\\y': 'NULL' } }),
    ledger.hold({ transferId: 'held', debitAccountId: 'cash', creditAccountId: 'carol', amount: '3.00', currency: 'EUR', reference: 'NULL', metadata: { note: AWKWARD } }),
  ]);
  for (const result of results) expect(result).toMatchObject({ ok: true });
  await projectToEnd(db.app, store, [TENANT], { projections: [historyProjection()] });
});

afterAll(async () => {
  await ledger?.close();
  await db?.close();
});

describe('history rows', () => {
  it('keep references, metadata and postings as written, the postings as JSON.stringify writes them', async () => {
    expect(await models.transfer(TENANT, 'eur', 'plain')).toMatchObject({ reference: null, metadata: {} });
    expect(await models.transfer(TENANT, 'eur', 'awkward')).toMatchObject({
      reference: AWKWARD,
      metadata: { note: AWKWARD, 'k"e\\y': 'NULL' },
      postings: [
        { accountId: 'cash', side: 'debit', amount: '2.50', currency: 'EUR' },
        { accountId: 'bob', side: 'credit', amount: '2.50', currency: 'EUR' },
      ],
    });
    expect(await models.transfer(TENANT, 'eur', 'held')).toMatchObject({ reference: 'NULL', metadata: { note: AWKWARD }, hold: { status: 'pending' } });
    const { rows } = await db.admin.query<{ postings: string }>(
      `SELECT postings::text AS postings FROM ledgerkit.rm_transfers WHERE tenant_id = $1 AND transfer_id = 'awkward'`,
      [TENANT],
    );
    expect(rows.map((row) => row.postings)).toEqual([
      JSON.stringify([
        { accountId: 'cash', side: 'debit', amountMinor: '250', currency: 'EUR' },
        { accountId: 'bob', side: 'credit', amountMinor: '250', currency: 'EUR' },
      ]),
    ]);
  });

  it('write each entry with its event’s times and the running totals', async () => {
    const { rows } = await db.admin.query<{ account_id: string; transfer_id: string; same_times: boolean; debits_pending: string; credits_posted: string; effective: boolean }>(
      `SELECT e.account_id, e.transfer_id, e.recorded_at = t.recorded_at AND e.effective_at = t.effective_at AS same_times,
          e.debits_pending::text AS debits_pending, e.credits_posted::text AS credits_posted, e.eff_debits_posted IS NOT NULL AS effective
        FROM ledgerkit.rm_account_entries e JOIN ledgerkit.rm_transfers t USING (tenant_id, ledger_id, transfer_id)
        WHERE e.tenant_id = $1 ORDER BY e.ledger_version, e.account_id`,
      [TENANT],
    );
    expect(rows).toHaveLength(6);
    for (const row of rows) expect(row).toMatchObject({ same_times: true, effective: false });
    expect(rows.find((row) => row.account_id === 'cash' && row.transfer_id === 'held')).toMatchObject({ debits_pending: '300' });
    expect(rows.find((row) => row.account_id === 'bob')).toMatchObject({ credits_posted: '250' });
  });
});
