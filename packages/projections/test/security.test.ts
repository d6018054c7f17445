import { balancesProjection, historyProjection, migrateReadModels, ProjectionRunner, READ_MODEL_SCHEMA_VERSION, READ_MODEL_TABLES, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSeenTable, currencies, openFixtureLedger, seenProjection } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// Every statement here runs as the application role with raw SQL, not through the library: the
// database itself must keep the tenants apart in the read models as it does in the events.
const A = 'tenant-a';
const B = 'tenant-b';

let db: TestDatabase;

beforeAll(async () => {
  db = await openTestDatabase();
  await createSeenTable(db);
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  for (const tenantId of [A, B]) {
    const ledger = await openFixtureLedger(store, tenantId);
    await ledger.transfer({ transferId: `t-${tenantId}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR', reference: 'shared-ref' });
    await ledger.hold({ transferId: `h-${tenantId}`, debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR', timeoutMs: 60_000 });
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'carol', amount: '1.00', currency: 'EUR' });
    await ledger.close();
  }
  // The poison transfer of each tenant fails the seen-projection, so projection_failures has rows of both.
  const runner = new ProjectionRunner({
    pool: db.app,
    store,
    tenantIds: [A, B],
    projections: [balancesProjection(), historyProjection(), seenProjection('seen', () => true)],
    currencies,
    errorPolicy: 'skip-with-record',
  });
  runner.start();
  try {
    await runner.whenCaughtUp();
  } finally {
    await runner.stop();
  }
});

afterAll(async () => {
  await db?.close();
});

async function sqlstateOf(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

/** SQLSTATE of a failed statement, and whether it is row-level security's (42501 is also a missing privilege). */
async function violation(call: Promise<unknown>): Promise<{ code: string | undefined; rls: boolean } | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    const { code, message } = error as { code?: string; message?: string };
    return { code, rls: /violates row-level security policy/.test(message ?? '') };
  }
}

/**
 * An INSERT of `table` taking one row as JSON (`$1`), over every column that can be written
 * (generated and always-identity columns left out), and one of `from`'s rows (read as the
 * superuser) as JSON with `tenant_id` set to `to`. The row picked is one whose unique keys are free
 * under `to` where there is one, so that without the policy the copy would be inserted rather than
 * refused as a duplicate. Where there is none (both tenants have the same ledgers, accounts and
 * projections) the key does not decide the outcome: PostgreSQL applies a policy's WITH CHECK
 * before any other constraint, and without the check the copy fails as 23505, not 42501.
 */
async function ownRowAs(table: string, from: string, to: string): Promise<{ insert: string; row: string }> {
  const { rows: columns } = await db.admin.query<{ name: string }>(
    `SELECT column_name AS name FROM information_schema.columns
      WHERE table_schema = 'ledgerkit' AND table_name = $1 AND is_generated = 'NEVER' AND coalesce(identity_generation, '') <> 'ALWAYS'
      ORDER BY ordinal_position`,
    [table],
  );
  const { rows: keys } = await db.admin.query<{ columns: string[] }>(
    `SELECT array_agg(a.attname::text ORDER BY a.attnum) AS columns
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL
      GROUP BY i.indexrelid`,
    [`ledgerkit.${table}`],
  );
  expect(columns.map((column) => column.name)).toContain('tenant_id');
  const taken = keys.map(
    (key) => `EXISTS (SELECT 1 FROM ledgerkit.${table} o WHERE ${key.columns.map((column) => (column === 'tenant_id' ? 'o.tenant_id = $2' : `o.${column} = r.${column}`)).join(' AND ')})`,
  );
  const { rows } = await db.admin.query<{ row: Record<string, unknown> }>(
    `SELECT to_json(r) AS row FROM ledgerkit.${table} r WHERE r.tenant_id = $1 ORDER BY ${taken.length === 0 ? 'true' : taken.join(' OR ')} LIMIT 1`,
    [from, to],
  );
  expect(rows, `a row of ${from} in ${table}`).toHaveLength(1);
  const list = columns.map((column) => column.name).join(', ');
  return {
    insert: `INSERT INTO ledgerkit.${table} (${list}) SELECT ${list} FROM json_populate_record(NULL::ledgerkit.${table}, $1::json)`,
    row: JSON.stringify({ ...rows[0]?.row, tenant_id: to }),
  };
}

/** One statement as the application role, in its own transaction, with `tenant` set (or none). */
async function asApp<T = unknown>(tenant: string | null, text: string, values: unknown[] = []): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
  const client = await db.app.connect();
  try {
    await client.query('BEGIN');
    if (tenant !== null) await client.query(`SELECT set_config('ledgerkit.tenant_id', $1, true)`, [tenant]);
    return await client.query<T & pg.QueryResultRow>(text, values);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

describe('tenant isolation of the read models, as the application role with raw SQL', () => {
  it('every read-model table holds rows of both tenants (so the checks below check something)', async () => {
    for (const table of READ_MODEL_TABLES) {
      const { rows } = await db.admin.query<{ tenant_id: string }>(`SELECT DISTINCT tenant_id FROM ledgerkit.${table} ORDER BY 1`);
      expect(rows.map((row) => row.tenant_id), table).toEqual([A, B]);
    }
  });

  for (const table of READ_MODEL_TABLES) {
    it(`with no tenant set, ${table} shows zero rows (fail closed)`, async () => {
      expect((await asApp<{ n: number }>(null, `SELECT count(*)::int AS n FROM ledgerkit.${table}`)).rows).toEqual([{ n: 0 }]);
    });

    it(`tenant A sees only its own rows of ${table}`, async () => {
      expect((await asApp(A, `SELECT DISTINCT tenant_id FROM ledgerkit.${table}`)).rows).toEqual([{ tenant_id: A }]);
      expect((await asApp(A, `SELECT count(*)::int AS n FROM ledgerkit.${table} WHERE tenant_id = $1`, [B])).rows).toEqual([{ n: 0 }]);
    });

    it(`tenant A can neither update nor delete tenant B's rows of ${table}, nor insert rows as B`, async () => {
      expect((await asApp(A, `UPDATE ledgerkit.${table} SET tenant_id = tenant_id WHERE tenant_id = $1`, [B])).rowCount).toBe(0);
      expect((await asApp(A, `DELETE FROM ledgerkit.${table} WHERE tenant_id = $1`, [B])).rowCount).toBe(0);
      // Moving one's own rows to the other tenant fails the policy's check.
      expect(await sqlstateOf(asApp(A, `UPDATE ledgerkit.${table} SET tenant_id = $1`, [B]))).toBe('42501');
      // A real row as B: one of A's own, every writable column copied, the tenant id B's; only the
      // policy's check refuses it. The message tells RLS from a missing privilege (also 42501).
      const { insert, row } = await ownRowAs(table, A, B);
      expect(await violation(asApp(A, insert, [row]))).toEqual({ code: '42501', rls: true });
      expect((await db.admin.query(`SELECT count(*)::int AS n FROM ledgerkit.${table} WHERE tenant_id = $1`, [B])).rows[0]).not.toEqual({ n: 0 });
    });
  }

  it('a row of tenant B cannot be inserted by tenant A, in any read-model table', async () => {
    const forged: Record<(typeof READ_MODEL_TABLES)[number], string> = {
      projection_checkpoints: `INSERT INTO ledgerkit.projection_checkpoints (tenant_id, projection) VALUES ('${B}', 'forged')`,
      projection_failures: `INSERT INTO ledgerkit.projection_failures (tenant_id, projection, position, ledger_id, ledger_version, event_type, error) VALUES ('${B}', 'x', 'p', 'l', 1, 't', 'e')`,
      projection_ledger_versions: `INSERT INTO ledgerkit.projection_ledger_versions VALUES ('${B}', 'forged', 'l', 1)`,
      rm_balances: `INSERT INTO ledgerkit.rm_balances SELECT '${B}', 'forged', account_id, currency, account_type, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, opened_version, opened_at, status, debits_posted, credits_posted, debits_pending, credits_pending, ledger_version FROM ledgerkit.rm_balances LIMIT 1`,
      rm_balance_ledgers: `INSERT INTO ledgerkit.rm_balance_ledgers VALUES ('${B}', 'forged', 1)`,
      rm_balance_holds: `INSERT INTO ledgerkit.rm_balance_holds VALUES ('${B}', 'forged', 'h', '[]')`,
      rm_accounts: `INSERT INTO ledgerkit.rm_accounts SELECT '${B}', 'forged', account_id, currency, account_type, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, opened_version, opened_recorded_at, opened_effective_at, status FROM ledgerkit.rm_accounts LIMIT 1`,
      rm_ledger_times: `INSERT INTO ledgerkit.rm_ledger_times VALUES ('${B}', 'forged', now(), 1)`,
      rm_account_states: `INSERT INTO ledgerkit.rm_account_states VALUES ('${B}', 'forged', 'a', 1, now(), now(), 'open')`,
      rm_account_entries: `INSERT INTO ledgerkit.rm_account_entries (tenant_id, ledger_id, account_id, ledger_version, seq, event_type, transfer_id, side, bucket, amount, recorded_at, effective_at, debits_posted, credits_posted, debits_pending, credits_pending) VALUES ('${B}', 'forged', 'a', 1, 0, 'x', 't', 'debit', 'posted', 1, now(), now(), 1, 0, 0, 0)`,
      rm_transfers: `INSERT INTO ledgerkit.rm_transfers (tenant_id, ledger_id, transfer_id, kind, postings, metadata, ledger_version, recorded_at, effective_at) VALUES ('${B}', 'forged', 't', 'transfer', '[]', '{}', 1, now(), now())`,
    };
    for (const table of READ_MODEL_TABLES) expect(await sqlstateOf(asApp(A, forged[table])), table).toBe('42501');
  });

  it('the query API answers each tenant from its own rows only', async () => {
    const models = new ReadModels({ pool: db.app, currencies });
    expect((await models.transfersByReference(A, 'eur', 'shared-ref')).transfers.map((transfer) => transfer.transferId)).toEqual([`t-${A}`]);
    expect(await models.transfer(A, 'eur', `t-${B}`)).toBeUndefined();
    expect((await models.openHolds(B, 'eur')).holds.map((hold) => hold.transferId)).toEqual([`h-${B}`]);
    expect((await models.balance(A, 'eur', 'alice'))?.posted).toBe('10.00');
    await expect(models.balance("x' OR '1'='1", 'eur', 'alice')).rejects.toThrow(/tenantId/);
  });

  it('read_balance scopes the tenant to the call: afterwards the transaction has no tenant again', async () => {
    const client = await db.app.connect();
    try {
      await client.query('BEGIN');
      expect((await client.query(`SELECT account_id FROM ledgerkit.read_balance($1, 'eur', 'alice')`, [A])).rowCount).toBe(1);
      expect((await client.query(`SELECT coalesce(current_setting('ledgerkit.tenant_id', true), '') AS t`)).rows).toEqual([{ t: '' }]);
      expect((await client.query('SELECT count(*)::int AS n FROM ledgerkit.rm_balances')).rows).toEqual([{ n: 0 }]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });

  it("read_balances answers from the named tenant's rows only, scopes the tenant to the call, and refuses another tenant than the caller's (42501)", async () => {
    const readSql = `SELECT tenant_id, account_id FROM ledgerkit.read_balances($1, ARRAY['eur', 'eur'], ARRAY['alice', 'nobody'])`;
    const client = await db.app.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ tenant_id: string; account_id: string }>(readSql, [A]);
      expect(rows).toEqual([{ tenant_id: A, account_id: 'alice' }]);
      expect((await client.query(`SELECT coalesce(current_setting('ledgerkit.tenant_id', true), '') AS t`)).rows).toEqual([{ t: '' }]);
      expect((await client.query('SELECT count(*)::int AS n FROM ledgerkit.rm_balances')).rows).toEqual([{ n: 0 }]);
      await client.query(`SELECT set_config('ledgerkit.tenant_id', $1, true)`, [B]);
      expect((await client.query<{ tenant_id: string }>(readSql, [B])).rows).toEqual([{ tenant_id: B, account_id: 'alice' }]);
      await expect(client.query(readSql, [A])).rejects.toMatchObject({ code: '42501', message: `read_balances: tenant ${A} is not the tenant set for this transaction` });
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });
});

describe('the read-model schema as deployed', () => {
  it('every read-model table has row-level security enabled and forced', async () => {
    const { rows } = await db.admin.query<{ table: string; enabled: boolean; forced: boolean }>(
      `SELECT c.relname AS table, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'ledgerkit' AND c.relkind = 'r' AND c.relname = ANY($1::text[])`,
      [[...READ_MODEL_TABLES]],
    );
    expect(rows.map((row) => row.table).sort()).toEqual([...READ_MODEL_TABLES].sort());
    for (const row of rows) expect(row, row.table).toMatchObject({ enabled: true, forced: true });
  });

  it('tenant_id leads every index of the read models', async () => {
    const { rows } = await db.admin.query<{ index: string; first: string }>(
      `SELECT i.indexrelid::regclass::text AS index, a.attname AS first
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE n.nspname = 'ledgerkit' AND c.relname = ANY($1::text[])`,
      [[...READ_MODEL_TABLES]],
    );
    expect(rows.length).toBeGreaterThanOrEqual(READ_MODEL_TABLES.length + 3);
    for (const row of rows) expect(row.first, row.index).toBe('tenant_id');
  });

  it('the application role owns none of them and bypasses nothing', async () => {
    const { rows } = await db.admin.query(
      `SELECT r.rolsuper, r.rolbypassrls, EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid) AS owns FROM pg_roles r WHERE r.rolname = $1`,
      [db.roles.app],
    );
    expect(rows).toEqual([{ rolsuper: false, rolbypassrls: false, owns: false }]);
  });

  it('migrating again is a no-op', async () => {
    expect(await migrateReadModels({ pool: db.admin, roles: db.roles })).toEqual({ applied: [], schemaVersion: READ_MODEL_SCHEMA_VERSION });
  });

  it('upgrades read models at version 1 to json payloads, keeping every row as it read', async () => {
    const payloads = `SELECT t.tenant_id, t.transfer_id, t.postings::jsonb AS postings, t.metadata::jsonb AS metadata FROM ledgerkit.rm_transfers t
      UNION ALL SELECT h.tenant_id, h.transfer_id, h.postings::jsonb, NULL FROM ledgerkit.rm_balance_holds h ORDER BY 1, 2, 4`;
    const types = `SELECT table_name, column_name, data_type FROM information_schema.columns
      WHERE table_schema = 'ledgerkit' AND table_name IN ('rm_transfers', 'rm_balance_holds') AND column_name IN ('postings', 'metadata') ORDER BY 1, 2`;
    const before = (await db.admin.query(payloads)).rows;
    expect(before.length).toBeGreaterThan(0);
    // Back to what version 1 left: jsonb columns, no record of version 2.
    await db.admin.query(`ALTER TABLE ledgerkit.rm_transfers ALTER COLUMN postings TYPE jsonb USING postings::jsonb, ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb`);
    await db.admin.query(`ALTER TABLE ledgerkit.rm_balance_holds ALTER COLUMN postings TYPE jsonb USING postings::jsonb`);
    // Migration 5 stays recorded: it is about the checkpoints, which this reversal leaves alone.
    await db.admin.query('DELETE FROM ledgerkit.projection_migrations WHERE version BETWEEN 2 AND 4');
    expect((await db.admin.query(types)).rows.map((row) => row.data_type)).toEqual(['jsonb', 'jsonb', 'jsonb']);

    expect(await migrateReadModels({ pool: db.admin, roles: db.roles })).toEqual({ applied: [2, 3, 4], schemaVersion: READ_MODEL_SCHEMA_VERSION });
    expect((await db.admin.query(types)).rows.map((row) => row.data_type)).toEqual(['json', 'json', 'json']);
    expect((await db.admin.query(payloads)).rows).toEqual(before);
    const models = new ReadModels({ pool: db.app, currencies });
    expect((await models.transfer(A, 'eur', `h-${A}`))?.postings.length).toBeGreaterThan(0);
  });
});
