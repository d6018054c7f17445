/**
 * A writer on a role with a `statement_timeout` that cancels large appends but not small ones:
 * the server's cancellation (SQLSTATE 57014) reaches the writer as a retriable refusal, and the
 * writer decides the commands again in smaller batches, so callers see no failure. Before, every
 * command of the cancelled batch failed, and callers retrying together formed the same batch again.
 */
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { LedgerWriter, type CommandResult, type LedgerCommand } from '@ledgerkit/ledger-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await openTestDatabase();
  // Each stored event costs 1 ms, so an append of 1,000 events takes over a second and one of a
  // hundred about a tenth of one; the role's statements are cancelled after 400 ms.
  await db.admin.query(`
    CREATE FUNCTION ledgerkit.slow_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$;
    CREATE TRIGGER slow_event BEFORE INSERT ON ledgerkit.events FOR EACH ROW EXECUTE FUNCTION ledgerkit.slow_event();
  `);
  await db.admin.query(`ALTER ROLE ${db.roles.app} IN DATABASE ${db.name} SET statement_timeout = '400ms'`);
});

afterAll(async () => {
  await db?.close();
});

const NO_LIMITS = { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false } as const;
const open = (accountId: string): LedgerCommand => ({ kind: 'openAccount', accountId, currency: 'EUR', type: 'asset', flags: NO_LIMITS, metadata: {} });
const transfer = (transferId: string): LedgerCommand => ({
  kind: 'transfer',
  transferId,
  postings: [
    { accountId: 'bank', side: 'debit', amount: 1n, currency: 'EUR' },
    { accountId: 'bob', side: 'credit', amount: 1n, currency: 'EUR' },
  ],
  pending: undefined,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
});

it('a batch the server cancels for its statement_timeout is appended again in smaller batches: every command is applied once, none fails', async () => {
  // New connections, so that they take the role's setting.
  const pool = db.pool(db.appUrl, 4);
  const { rows } = await pool.query<{ timeout: string }>("SELECT current_setting('statement_timeout') AS timeout");
  expect(rows[0]?.timeout).toBe('400ms');
  const store = await PostgresEventStore.open({ pool });
  const writer = await LedgerWriter.open({ store, tenantId: 'slow', ledgerId: 'main', batchSizeMax: 1_000, appendsInFlightMax: 1 });
  try {
    for (const id of ['bank', 'bob']) expect(await writer.submit(open(id))).toMatchObject({ ok: true });
    const count = 1_500;
    const results = await Promise.all(
      Array.from({ length: count }, (_, i) => writer.submit(transfer(`t${i}`)).catch((error: unknown): CommandResult | { failed: string } => ({ failed: String(error) }))),
    );
    expect(results.filter((r) => !('ok' in r) || !r.ok)).toEqual([]);
    expect(writer.version).toBe(2 + count);
    const stored = await db.admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = 'slow' AND ledger_id = 'main'`);
    expect(stored.rows[0]?.n).toBe(2 + count);
  } finally {
    await writer.close();
  }
}, 120_000);
