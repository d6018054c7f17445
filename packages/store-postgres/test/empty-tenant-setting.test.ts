import { migrate, PostgresEventStore, SCHEMA_VERSION } from '@ledgerkit/store-postgres';
import { RoleRefusedError, TENANT_SETTING, withTenant } from '@ledgerkit/tenant-rls';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOpened, appendCall, emptyHead, encodeAfter, headAfter } from './support/events.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// A pooled connection whose transaction-local tenant has ended holds the setting '' (not NULL):
// the tenant policies must take that for "no tenant", on a fresh install and on a database
// migrated from the previous store schema version that already holds rows with tenant_id ''.
// And the store's functions must neither leave their tenant set for the caller's transaction
// nor run as another tenant than the one the caller set.

let fresh: TestDatabase;
let upgraded: TestDatabase;

/** An event row with tenant_id '' as a superuser (no policy binds it) may insert one. */
const INSERT_EMPTY_TENANT_EVENT = `INSERT INTO ledgerkit.events (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data,
    recorded_at, effective_at, metadata, previous_hash, hash)
  VALUES ('', $1, 1, $1, 'AccountOpened', 1, '{}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '{}', 'x', 'y')`;

beforeAll(async () => {
  fresh = await openTestDatabase();
  upgraded = await openTestDatabase({ migrateTo: SCHEMA_VERSION - 1 });
  await upgraded.admin.query(INSERT_EMPTY_TENANT_EVENT, ['left-before-upgrade']);
  expect(await migrate({ pool: upgraded.admin, roles: upgraded.roles })).toEqual({ applied: [SCHEMA_VERSION], schemaVersion: SCHEMA_VERSION });
  await fresh.admin.query(INSERT_EMPTY_TENANT_EVENT, ['left-on-fresh-install']);
});

afterAll(async () => {
  await Promise.all([fresh?.close(), upgraded?.close()]);
});

/** A pool of one connection, as the owner role (subject to the policies: FORCE). */
function ownerPool(db: TestDatabase): pg.Pool {
  const pool = db.pool(db.adminUrl, 1);
  pool.on('connect', (client) => {
    void client.query(`SET ROLE ${db.roles.owner}`);
  });
  return pool;
}

async function sqlstateOf(call: Promise<unknown>): Promise<string | undefined> {
  return call.then(
    () => undefined,
    (error: unknown) => (error as { code?: string }).code,
  );
}

describe.each([
  ['a fresh install', () => fresh],
  ['a database migrated from the previous store schema version', () => upgraded],
])('no tenant set on a reused pooled connection, on %s', (_, dbOf) => {
  it('sees no events with tenant_id "", as the application role and as the owner, and the owner cannot insert one', async () => {
    const db = dbOf();
    for (const pool of [db.pool(db.appUrl, 1), ownerPool(db)]) {
      await withTenant(pool, 'tenant-a', (client) => client.query('SELECT 1'));
      // The same connection, no tenant: the setting is '' now, not NULL.
      const { rows } = await pool.query<{ setting: string | null; n: number }>(
        `SELECT current_setting($1, true) AS setting, (SELECT count(*)::int FROM ledgerkit.events WHERE tenant_id = '') AS n`,
        [TENANT_SETTING],
      );
      expect(rows[0]).toEqual({ setting: '', n: 0 });
      expect((await pool.query('SELECT count(*)::int AS n FROM ledgerkit.events')).rows[0]).toEqual({ n: 0 });
    }
    const owner = ownerPool(db);
    await withTenant(owner, 'tenant-a', (client) => client.query('SELECT 1'));
    expect(await sqlstateOf(owner.query(INSERT_EMPTY_TENANT_EVENT, ['written-without-tenant']))).toBe('42501');
    // A superuser still sees the row written before, and no other.
    const { rows } = await db.admin.query<{ ledger_id: string }>(`SELECT ledger_id FROM ledgerkit.events WHERE tenant_id = ''`);
    expect(rows.map((row) => row.ledger_id)).toEqual([db === fresh ? 'left-on-fresh-install' : 'left-before-upgrade']);
  });
});

describe('the store functions and the caller’s tenant', () => {
  beforeAll(async () => {
    const store = await PostgresEventStore.open({ pool: fresh.app });
    const events = encodeAfter(emptyHead('tenant-b', 'eur'), [accountOpened('cash')]);
    await store.append({ tenantId: 'tenant-b', ledgerId: 'eur', expectedVersion: 0, events });
  });

  /** Runs `fn` as the application role in a transaction with no tenant set, then rolls it back. */
  async function inBareTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await fresh.app.connect();
    try {
      await client.query('BEGIN');
      return await fn(client);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  const visible = async (client: pg.PoolClient): Promise<{ setting: string; events: number }> => {
    const { rows } = await client.query<{ setting: string; events: number }>(
      `SELECT coalesce(current_setting($1, true), '') AS setting, (SELECT count(*)::int FROM ledgerkit.events) AS events`,
      [TENANT_SETTING],
    );
    return rows[0] as { setting: string; events: number };
  };

  it('append_events called in a transaction with no tenant puts the setting back before it returns: an empty append, and one that writes, leave no tenant to read as', async () => {
    const seen = await inBareTransaction(async (client) => {
      const empty = appendCall('tenant-b', 'eur', 1, []);
      const version = (await client.query<{ version: string }>(empty.text, empty.values)).rows[0]?.version;
      const afterEmpty = await visible(client);
      const head = headAfter(emptyHead('tenant-b', 'fresh-ledger'), []);
      const write = appendCall('tenant-b', 'fresh-ledger', 0, encodeAfter(head, [accountOpened('bank')]));
      const written = (await client.query<{ version: string }>(write.text, write.values)).rows[0]?.version;
      return { version, afterEmpty, written, afterWrite: await visible(client) };
    });
    expect(seen).toEqual({ version: '1', afterEmpty: { setting: '', events: 0 }, written: '1', afterWrite: { setting: '', events: 0 } });
    // In a transaction that set the tenant, it stays set.
    const kept = await withTenant(fresh.app, 'tenant-b', async (client) => {
      const empty = appendCall('tenant-b', 'eur', 1, []);
      await client.query(empty.text, empty.values);
      return visible(client);
    });
    expect(kept).toEqual({ setting: 'tenant-b', events: 1 });
  });

  it('read_global_events refuses a tenant other than the one the caller set (42501), and reads as the one it set or, with none set, as its argument', async () => {
    const read = `SELECT ledger_id FROM ledgerkit.read_global_events($1, '0'::xid8, 0, 10)`;
    const refusal = await withTenant(fresh.app, 'tenant-a', (client) => client.query(read, ['tenant-b'])).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toMatchObject({ code: '42501', message: 'read_global_events: tenant tenant-b is not the tenant set for this transaction' });
    expect((await withTenant(fresh.app, 'tenant-b', (client) => client.query(read, ['tenant-b']))).rows).toEqual([{ ledger_id: 'eur' }]);
    expect((await fresh.app.query(read, ['tenant-b'])).rows).toEqual([{ ledger_id: 'eur' }]);
    expect(await inBareTransaction(async (client) => ({ rows: (await client.query(read, ['tenant-b'])).rows, after: await visible(client) }))).toEqual({
      rows: [{ ledger_id: 'eur' }],
      after: { setting: '', events: 0 },
    });
  });
});

describe('PostgresEventStore.open refuses a role with RoleRefusedError', () => {
  it('a superuser (bypasses_rls) and the owner (owns_tables), with the messages as before', async () => {
    const superuser = await PostgresEventStore.open({ pool: fresh.admin }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(superuser).toBeInstanceOf(RoleRefusedError);
    expect(superuser).toMatchObject({
      name: 'RoleRefusedError',
      code: 'role_refused',
      reason: 'bypasses_rls',
      message: 'the store must connect as the application role: this role is a superuser or has BYPASSRLS',
    });
    const owner = await PostgresEventStore.open({ pool: ownerPool(fresh) }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(owner).toBeInstanceOf(RoleRefusedError);
    expect(owner).toMatchObject({
      code: 'role_refused',
      reason: 'owns_tables',
      message: 'the store must connect as the application role: this role owns the tables or is a member of their owner',
    });
  });
});
