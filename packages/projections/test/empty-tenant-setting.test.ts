import { migrateReadModels, READ_MODEL_SCHEMA_VERSION } from '@ledgerkit/projections';
import { TENANT_SETTING, withTenant } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// A pooled connection whose transaction-local tenant has ended holds the setting '' (not NULL):
// the read models' tenant policies must take that for "no tenant", on a fresh install and on
// read models migrated from the previous version that already hold rows with tenant_id ''. And
// the balance reads must not run as another tenant than the one the caller set.

let fresh: TestDatabase;
let upgraded: TestDatabase;

const INSERT_EMPTY_TENANT_TIME = `INSERT INTO ledgerkit.rm_ledger_times VALUES ('', $1, now(), 42)`;

beforeAll(async () => {
  fresh = await openTestDatabase();
  // Migrated to the version before migration 7 (the one under test), then to this release's.
  upgraded = await openTestDatabase({ readModelsTo: 6 });
  await upgraded.admin.query(INSERT_EMPTY_TENANT_TIME, ['left-before-upgrade']);
  expect(await migrateReadModels({ pool: upgraded.admin, roles: upgraded.roles })).toEqual({
    applied: Array.from({ length: READ_MODEL_SCHEMA_VERSION - 6 }, (_, index) => 7 + index),
    schemaVersion: READ_MODEL_SCHEMA_VERSION,
  });
  await fresh.admin.query(INSERT_EMPTY_TENANT_TIME, ['left-on-fresh-install']);
});

afterAll(async () => {
  await Promise.all([fresh?.close(), upgraded?.close()]);
});

describe.each([
  ['a fresh install', () => fresh],
  ['read models migrated from the previous version', () => upgraded],
])('no tenant set on a reused pooled connection, on %s', (_, dbOf) => {
  it('the application role sees no read-model row with tenant_id "" and cannot insert one', async () => {
    const db = dbOf();
    const pool = db.pool(db.appUrl, 1);
    await withTenant(pool, 'tenant-a', (client) => client.query('SELECT 1'));
    const { rows } = await pool.query<{ setting: string | null; n: number }>(
      `SELECT current_setting($1, true) AS setting, (SELECT count(*)::int FROM ledgerkit.rm_ledger_times) AS n`,
      [TENANT_SETTING],
    );
    expect(rows[0]).toEqual({ setting: '', n: 0 });
    await expect(pool.query(INSERT_EMPTY_TENANT_TIME, ['written-without-tenant'])).rejects.toMatchObject({ code: '42501' });
    const left = await db.admin.query<{ ledger_id: string }>(`SELECT ledger_id FROM ledgerkit.rm_ledger_times WHERE tenant_id = ''`);
    expect(left.rows.map((row) => row.ledger_id)).toEqual([db === fresh ? 'left-on-fresh-install' : 'left-before-upgrade']);
  });
});

describe('read_balance and read_balances and the caller’s tenant', () => {
  const calls = [
    [`SELECT account_id FROM ledgerkit.read_balance($1, 'eur', 'cash')`, 'read_balance'],
    [`SELECT account_id FROM ledgerkit.read_balances($1, ARRAY['eur'], ARRAY['cash'])`, 'read_balances'],
  ] as const;

  beforeAll(async () => {
    await fresh.admin.query(`INSERT INTO ledgerkit.rm_balances VALUES ('tenant-b', 'eur', 'cash', 'EUR', 'asset', false, false, '{}', 1, now(), 'open', 0, 0, 0, 0, 1)`);
  });

  it.each(calls)('%s refuses a tenant other than the one the caller set (42501), and reads as the one set or, with none set, as its argument', async (sql, name) => {
    const refusal = await withTenant(fresh.app, 'tenant-a', (client) => client.query(sql, ['tenant-b'])).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toMatchObject({ code: '42501', message: `${name}: tenant tenant-b is not the tenant set for this transaction` });
    expect((await withTenant(fresh.app, 'tenant-b', (client) => client.query(sql, ['tenant-b']))).rows).toEqual([{ account_id: 'cash' }]);
    expect((await fresh.app.query(sql, ['tenant-b'])).rows).toEqual([{ account_id: 'cash' }]);
  });
});
