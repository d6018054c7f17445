import { InvalidInputError, Ledger } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { APPEND_ONLY_SQLSTATE, InvalidTenantIdError, withRetention, withTenant } from '@ledgerkit/tenant-rls';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOpened, appendCall, emptyHead, encodeAfter } from './support/events.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// Every statement here runs as the application role (or, where said, the owner or a
// superuser) with raw SQL, not through the store: the database itself must hold the line.
const TABLES = ['events', 'ledger_streams', 'snapshots'] as const;
const A = 'tenant-a';
const B = 'tenant-b';

let db: TestDatabase;
let store: PostgresEventStore;

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  for (const tenantId of [A, B]) {
    const ledger = await Ledger.open({ store, tenantId, ledgerId: 'eur', snapshotEveryEvents: 0 });
    await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
    await ledger.transfer({ transferId: `t-${tenantId}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' });
    await ledger.writer.saveSnapshot();
    await ledger.close();
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

/** One statement as the owner role (`SET ROLE`) or as the superuser, with tenant A set. */
async function asPrivileged(who: 'owner' | 'superuser', text: string): Promise<unknown> {
  const client = await db.admin.connect();
  try {
    await client.query('BEGIN');
    if (who === 'owner') await client.query(`SET LOCAL ROLE ${db.roles.owner}`);
    await client.query(`SELECT set_config('ledgerkit.tenant_id', $1, true)`, [A]);
    return await client.query(text);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

const forgedRow: Record<(typeof TABLES)[number], string> = {
  events: `INSERT INTO ledgerkit.events (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data, recorded_at, effective_at, metadata, previous_hash, hash)
           VALUES ('${B}', 'eur', 99, 'forged', 'AccountOpened', 1, '{}', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', '{}', '', '')`,
  ledger_streams: `INSERT INTO ledgerkit.ledger_streams (tenant_id, ledger_id, version, last_txid) VALUES ('${B}', 'forged', 1, '1')`,
  snapshots: `INSERT INTO ledgerkit.snapshots (tenant_id, ledger_id, ledger_version, hash, schema_version, state) VALUES ('${B}', 'forged', 1, '', 1, '{}')`,
};

describe('tenant isolation, as the application role with raw SQL', () => {
  for (const table of TABLES) {
    it(`with no tenant set, ${table} shows zero rows (fail closed)`, async () => {
      expect((await asApp<{ n: number }>(null, `SELECT count(*)::int AS n FROM ledgerkit.${table}`)).rows).toEqual([{ n: 0 }]);
    });

    it(`tenant A reads and counts only its own rows of ${table}, none of tenant B's`, async () => {
      expect((await asApp(A, `SELECT DISTINCT tenant_id FROM ledgerkit.${table}`)).rows).toEqual([{ tenant_id: A }]);
      expect((await asApp(A, `SELECT count(*)::int AS n FROM ledgerkit.${table} WHERE tenant_id = $1`, [B])).rows).toEqual([{ n: 0 }]);
    });

    it(`tenant A can neither update nor delete tenant B's rows of ${table}`, async () => {
      const update = table === 'snapshots' ? `UPDATE ledgerkit.snapshots SET hash = 'x' WHERE tenant_id = '${B}'` : `UPDATE ledgerkit.${table} SET ledger_id = 'x' WHERE tenant_id = '${B}'`;
      if (table === 'snapshots') expect((await asApp(A, update)).rowCount).toBe(0);
      else expect(await sqlstateOf(asApp(A, update))).toBe('42501');
      expect(await sqlstateOf(asApp(A, `DELETE FROM ledgerkit.${table} WHERE tenant_id = '${B}'`))).toBe('42501');
    });

    it(`tenant A cannot insert a row of tenant B into ${table}`, async () => {
      expect(await sqlstateOf(asApp(A, forgedRow[table]))).toBe('42501');
    });
  }

  it('tenant A cannot append to tenant B through the append function', async () => {
    const call = appendCall(B, 'eur-2', 0, encodeAfter(emptyHead(B, 'eur-2'), [accountOpened('cash')]));
    expect(await sqlstateOf(asApp(A, call.text, call.values))).toBe('42501');
  });

  it('the append function refuses a tenant argument that is not a tenant id, before writing anything', async () => {
    for (const bad of ["bad tenant!", '', "x' OR '1'='1", 'a'.repeat(129)]) {
      const call = appendCall(bad, 'eur-bad', 0, encodeAfter(emptyHead(bad, 'eur-bad'), [accountOpened('cash')]));
      const client = await db.app.connect();
      try {
        expect(await sqlstateOf(client.query(call.text, call.values)), JSON.stringify(bad)).toBe('23514');
      } finally {
        client.release();
      }
    }
    const { rows } = await db.admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledgerkit.events WHERE ledger_id = 'eur-bad'`);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('called with no tenant set (one autocommitted statement), the append function writes for its own tenant argument only, for its own transaction', async () => {
    const call = appendCall(B, 'eur-3', 0, encodeAfter(emptyHead(B, 'eur-3'), [accountOpened('cash')]));
    const client = await db.app.connect();
    try {
      expect((await client.query<{ version: string }>(call.text, call.values)).rows).toEqual([{ version: '1' }]);
      // The tenant it set ended with that statement's transaction: this session sees no rows.
      expect((await client.query<{ n: number }>('SELECT count(*)::int AS n FROM ledgerkit.events')).rows).toEqual([{ n: 0 }]);
      expect((await client.query<{ t: string | null }>(`SELECT current_setting('ledgerkit.tenant_id', true) AS t`)).rows[0]?.t ?? '').toBe('');
    } finally {
      client.release();
    }
    const rows = await asApp<{ tenant_id: string; ledger_id: string }>(B, `SELECT tenant_id, ledger_id FROM ledgerkit.events WHERE ledger_id = 'eur-3'`);
    expect(rows.rows).toEqual([{ tenant_id: B, ledger_id: 'eur-3' }]);
    expect((await asApp(A, `SELECT 1 FROM ledgerkit.events WHERE ledger_id = 'eur-3'`)).rowCount).toBe(0);
  });

  it("after every attempt, tenant B's data is whole and its hash chain verifies", async () => {
    const ledger = await Ledger.open({ store, tenantId: B, ledgerId: 'eur' });
    expect(ledger.version).toBe(3);
    expect(ledger.balance('alice')?.posted).toBe('10.00');
    expect(await ledger.verifyChain()).toMatchObject({ ok: true, eventCount: 3 });
    await ledger.close();
    expect(await store.loadSnapshot({ tenantId: B, ledgerId: 'eur' })).toMatchObject({ ledgerVersion: 3 });
  });
});

describe('tenant ids reaching SQL', () => {
  const injection = "tenant-a' OR '1'='1";

  it('the store and withTenant reject an injection attempt in the tenant id before any SQL', async () => {
    await expect(store.readAll({ tenantId: injection, after: null, limit: 10 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(store.append({ tenantId: "x'; DROP TABLE ledgerkit.events; --", ledgerId: 'eur', expectedVersion: 0, events: [] })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(withTenant(db.app, injection, async () => undefined)).rejects.toBeInstanceOf(InvalidTenantIdError);
  });

  it('a tenant setting that is not a real tenant id (injection text, empty, a pattern) matches no row', async () => {
    for (const setting of [injection, '', '%', '*', ' tenant-a', 'TENANT-A']) {
      for (const table of TABLES) {
        expect((await asApp(setting, `SELECT count(*)::int AS n FROM ledgerkit.${table}`)).rows, `${table} with ${JSON.stringify(setting)}`).toEqual([{ n: 0 }]);
      }
    }
  });
});

describe('events cannot be altered after the fact', () => {
  for (const table of ['events'] as const) {
    it(`the application role has no UPDATE, DELETE or TRUNCATE on ${table}`, async () => {
      for (const statement of [`UPDATE ledgerkit.${table} SET ledger_id = ledger_id`, `DELETE FROM ledgerkit.${table}`, `TRUNCATE ledgerkit.${table}`]) {
        expect(await sqlstateOf(asApp(A, statement)), statement).toBe('42501');
      }
    });

    for (const who of ['owner', 'superuser'] as const) {
      it(`the trigger rejects UPDATE, DELETE and TRUNCATE of ${table} even for the ${who}`, async () => {
        for (const statement of [`UPDATE ledgerkit.${table} SET ledger_id = ledger_id`, `DELETE FROM ledgerkit.${table}`, `TRUNCATE ledgerkit.${table}`]) {
          expect(await sqlstateOf(asPrivileged(who, statement)), `${who}: ${statement}`).toBe(APPEND_ONLY_SQLSTATE);
        }
      });
    }
  }

  for (const who of ['owner', 'superuser'] as const) {
    it(`a stream's recorded version cannot be lowered, even by the ${who}; raising or keeping it is not refused`, async () => {
      for (const statement of [`UPDATE ledgerkit.ledger_streams SET version = version - 1`, `UPDATE ledgerkit.ledger_streams SET version = 0`]) {
        expect(await sqlstateOf(asPrivileged(who, statement)), `${who}: ${statement}`).toBe(APPEND_ONLY_SQLSTATE);
      }
      expect(await sqlstateOf(asPrivileged(who, `UPDATE ledgerkit.ledger_streams SET version = version, updated_at = now()`))).toBeUndefined();
    });

    it(`a stream's row cannot be deleted or truncated by the ${who} (the audit would find no recorded head)`, async () => {
      for (const statement of [`DELETE FROM ledgerkit.ledger_streams`, `TRUNCATE ledgerkit.ledger_streams`]) {
        expect(await sqlstateOf(asPrivileged(who, statement)), `${who}: ${statement}`).toBe(APPEND_ONLY_SQLSTATE);
      }
    });
  }

  it('after retention deleted a stream’s last events, its recorded version still cannot be lowered to hide them', async () => {
    const tenantId = 'tenant-lowered';
    const events = encodeAfter(emptyHead(tenantId, 'cut'), [accountOpened('cash'), accountOpened('bank'), accountOpened('fees')]);
    await store.append({ tenantId, ledgerId: 'cut', expectedVersion: 0, events });
    const options = { tenantId, ownerRole: db.roles.owner };
    const deleted = await withRetention(db.admin, options, async (client) => (await client.query(`DELETE FROM ledgerkit.events WHERE ledger_id = 'cut' AND ledger_version > 1`)).rowCount);
    expect(deleted).toBe(2);
    const lowered = withRetention(db.admin, options, (client) => client.query(`UPDATE ledgerkit.ledger_streams SET version = 1 WHERE ledger_id = 'cut'`));
    await expect(lowered).rejects.toMatchObject({ code: APPEND_ONLY_SQLSTATE, message: expect.stringMatching(/version of ledger cut cannot go down \(from 3 to 1\)/) });
    expect((await asApp(tenantId, `SELECT version::int AS version FROM ledgerkit.ledger_streams WHERE ledger_id = 'cut'`)).rows).toEqual([{ version: 3 }]);
  });

  it('retention is the one maintenance path: the owner may delete a tenant’s events with ledgerkit.retention on, never update them', async () => {
    const tenantId = 'tenant-retention';
    const events = encodeAfter(emptyHead(tenantId, 'archive'), [accountOpened('cash'), accountOpened('bank')]);
    await store.append({ tenantId, ledgerId: 'archive', expectedVersion: 0, events });
    const options = { tenantId, ownerRole: db.roles.owner };
    expect(await sqlstateOf(withRetention(db.admin, options, (client) => client.query(`UPDATE ledgerkit.events SET type = 'x'`)))).toBe(APPEND_ONLY_SQLSTATE);
    const deleted = await withRetention(db.admin, options, async (client) => (await client.query(`DELETE FROM ledgerkit.events WHERE ledger_id = 'archive'`)).rowCount);
    expect(deleted).toBe(2);
    expect(await store.readStream({ tenantId, ledgerId: 'archive', direction: 'forward', limit: 10 })).toEqual([]);
    // A tenant's erasure takes its stream rows too, through the same path.
    const streams = await withRetention(db.admin, options, async (client) => (await client.query(`DELETE FROM ledgerkit.ledger_streams WHERE ledger_id = 'archive'`)).rowCount);
    expect(streams).toBe(1);
    // The retention transaction saw only its tenant.
    expect((await asApp(A, 'SELECT count(*)::int AS n FROM ledgerkit.events')).rows).toEqual([{ n: 3 }]);
  });
});

describe('the schema as deployed', () => {
  it('every table holding tenant data has row-level security enabled and forced', async () => {
    const { rows } = await db.admin.query<{ table: string; enabled: boolean; forced: boolean }>(
      `SELECT c.relname AS table, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'ledgerkit' AND c.relkind = 'r'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
        ORDER BY 1`,
    );
    expect(rows.map((row) => row.table).sort()).toEqual([...TABLES].sort());
    for (const row of rows) expect(row, row.table).toMatchObject({ enabled: true, forced: true });
  });

  it('tenant_id leads every primary and unique key', async () => {
    const { rows } = await db.admin.query<{ index: string; first: string }>(
      `SELECT i.indexrelid::regclass::text AS index, a.attname AS first
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE n.nspname = 'ledgerkit' AND i.indisunique AND c.relname <> 'schema_migrations'`,
    );
    expect(rows.length).toBeGreaterThanOrEqual(4);
    for (const row of rows) expect(row.first, row.index).toBe('tenant_id');
  });

  it('the application role owns nothing, bypasses nothing and may only read the tables the append function writes', async () => {
    const { rows } = await db.admin.query(
      `SELECT r.rolsuper, r.rolbypassrls,
              EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid) AS owns,
              pg_has_role(r.oid, $2, 'MEMBER') AS owner_member,
              has_table_privilege(r.oid, 'ledgerkit.events', 'INSERT, UPDATE, DELETE, TRUNCATE') AS writes_events
         FROM pg_roles r WHERE r.rolname = $1`,
      [db.roles.app, db.roles.owner],
    );
    expect(rows).toEqual([{ rolsuper: false, rolbypassrls: false, owns: false, owner_member: false, writes_events: false }]);
  });
});
