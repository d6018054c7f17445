import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APPEND_ONLY_SQLSTATE,
  appendOnlyFunctionSql,
  appendOnlySql,
  ensureRoles,
  tenantIsolationSql,
  tenantScopedFunctionSql,
  TENANT_SETTING,
  withRetention,
  withTenant,
  type RoleNames,
} from '@ledgerkit/tenant-rls';
import { asUser, openScratchDatabase, type ScratchDatabase } from './support/scratch-database.js';

// A scratch schema shaped like a Ledgerkit one: `notes` is an ordinary tenant table, `entries`
// a tenant table that is also append-only. The application role gets every table privilege,
// so what stops it below is row-level security and the trigger, not missing grants.
let db: ScratchDatabase;
let roles: RoleNames;
let admin: pg.Pool;
let app: pg.Pool;
let appSingle: pg.Pool;
const appPassword = 'app-secret';

beforeAll(async () => {
  db = await openScratchDatabase();
  roles = { owner: `lk_${db.suffix}_owner`, app: `lk_${db.suffix}_app` };
  admin = db.pool(db.adminUrl);
  const client = await admin.connect();
  try {
    await ensureRoles(client, { roles, appPassword });
    await client.query(`CREATE SCHEMA scratch AUTHORIZATION ${roles.owner}`);
    await client.query(`SET ROLE ${roles.owner}`);
    await client.query(`
      CREATE TABLE scratch.notes (tenant_id text NOT NULL, id integer NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id));
      CREATE TABLE scratch.entries (tenant_id text NOT NULL, id integer NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id));
      ${tenantIsolationSql({ schema: 'scratch', table: 'notes' })}
      ${tenantIsolationSql({ schema: 'scratch', table: 'entries' })}
      ${appendOnlyFunctionSql('scratch')}
      ${appendOnlySql({ schema: 'scratch', table: 'entries' })}
      ${tenantScopedFunctionSql({
        schema: 'scratch',
        name: 'count_notes',
        args: 'p_min_id integer',
        returns: 'TABLE (n bigint, plan_setting text)',
        settings: { enable_bitmapscan: 'off' },
        body: `RETURN QUERY SELECT count(*), current_setting('enable_bitmapscan') FROM scratch.notes WHERE id >= p_min_id;`,
      })}
      GRANT USAGE ON SCHEMA scratch TO ${roles.app};
      GRANT EXECUTE ON FUNCTION scratch.count_notes(text, integer) TO ${roles.app};
      GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON scratch.notes, scratch.entries TO ${roles.app};
    `);
    await client.query('RESET ROLE');
  } finally {
    client.release();
  }
  app = db.pool(asUser(db.adminUrl, roles.app, appPassword));
  appSingle = db.pool(asUser(db.adminUrl, roles.app, appPassword), 1);
  for (const tenant of ['tenant-a', 'tenant-b']) {
    await withTenant(app, tenant, async (c) => {
      await c.query(`INSERT INTO scratch.notes VALUES ($1, 1, 'first'), ($1, 2, 'second')`, [tenant]);
      await c.query(`INSERT INTO scratch.entries VALUES ($1, 1, 'entry')`, [tenant]);
    });
  }
});

afterAll(async () => {
  await db?.close(roles === undefined ? [] : [roles.app, roles.owner]);
});

/** Runs `fn` on one app-role connection with no tenant set, in a transaction that is rolled back. */
async function asAppWithoutTenant<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await app.connect();
  try {
    await client.query('BEGIN');
    return await fn(client);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

async function sqlstateOf(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

describe('roles', () => {
  it('the owner cannot log in, the application role can, and neither is a superuser or bypasses RLS', async () => {
    const { rows } = await admin.query<{ rolname: string; rolcanlogin: boolean; rolsuper: boolean; rolbypassrls: boolean }>(
      'SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname',
      [[roles.owner, roles.app]],
    );
    expect(rows).toEqual([
      { rolname: roles.app, rolcanlogin: true, rolsuper: false, rolbypassrls: false },
      { rolname: roles.owner, rolcanlogin: false, rolsuper: false, rolbypassrls: false },
    ]);
  });

  it('the application role owns no table and is not a member of the owner', async () => {
    const { rows } = await admin.query<{ owner: string }>(`SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE schemaname = 'scratch'`);
    expect(rows).toEqual([{ owner: roles.owner }]);
    const member = await admin.query<{ member: boolean }>(`SELECT pg_has_role($1, $2, 'MEMBER') AS member`, [roles.app, roles.owner]);
    expect(member.rows[0]?.member).toBe(false);
  });

  it('ensureRoles is idempotent and safe to run from several connections at once', async () => {
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        const client = await admin.connect();
        try {
          await ensureRoles(client, { roles, appPassword });
        } finally {
          client.release();
        }
      }),
    );
  });

  it('ensureRoles refuses an existing application role that bypasses row-level security', async () => {
    const risky = { owner: roles.owner, app: `lk_${db.suffix}_risky` };
    await admin.query(`CREATE ROLE ${risky.app} LOGIN BYPASSRLS`);
    const client = await admin.connect();
    try {
      await expect(ensureRoles(client, { roles: risky })).rejects.toThrow(/BYPASSRLS/);
    } finally {
      client.release();
      await admin.query(`DROP ROLE ${risky.app}`);
    }
  });
});

describe('withTenant', () => {
  it('sets the tenant for its transaction only: the same pooled connection carries no tenant afterwards', async () => {
    const inside = await withTenant(appSingle, 'tenant-a', async (client) => (await client.query(`SELECT current_setting($1, true) AS t`, [TENANT_SETTING])).rows[0]);
    expect(inside).toEqual({ t: 'tenant-a' });
    const client = await appSingle.connect();
    try {
      const after = await client.query<{ t: string | null; n: string }>(`SELECT current_setting($1, true) AS t, (SELECT count(*) FROM scratch.notes) AS n`, [TENANT_SETTING]);
      expect(after.rows[0]?.t ?? '').toBe('');
      expect(after.rows[0]?.n).toBe('0');
    } finally {
      client.release();
    }
  });

  it('commits what fn wrote and rolls everything back when fn throws', async () => {
    await withTenant(app, 'tenant-c', (client) => client.query(`INSERT INTO scratch.notes VALUES ('tenant-c', 1, 'kept')`));
    await expect(
      withTenant(app, 'tenant-c', async (client) => {
        await client.query(`INSERT INTO scratch.notes VALUES ('tenant-c', 2, 'lost')`);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const bodies = await withTenant(app, 'tenant-c', async (client) => (await client.query('SELECT body FROM scratch.notes ORDER BY id')).rows);
    expect(bodies).toEqual([{ body: 'kept' }]);
  });

  it('tenantScopedFunctionSql: one statement runs as the named tenant with its settings, and the caller keeps its own tenant', async () => {
    const seen = await withTenant(appSingle, 'tenant-b', async (client) => {
      const { rows } = await client.query<{ n: string; plan_setting: string }>('SELECT * FROM scratch.count_notes($1, 2)', ['tenant-a']);
      const after = await client.query<{ t: string; bitmap: string }>(`SELECT current_setting($1) AS t, current_setting('enable_bitmapscan') AS bitmap`, [TENANT_SETTING]);
      return { rows, after: after.rows[0] };
    });
    expect(seen).toEqual({ rows: [{ n: '1', plan_setting: 'off' }], after: { t: 'tenant-b', bitmap: 'on' } });
    // Alone, autocommitted: no tenant before, none after.
    expect((await app.query('SELECT n FROM scratch.count_notes($1, 1)', ['tenant-b'])).rows).toEqual([{ n: '2' }]);
    expect(() => tenantScopedFunctionSql({ schema: 'scratch', name: 'x', args: '', returns: 'void', body: '', settings: { 'work_mem; DROP': '1' } })).toThrow(/plain name/);
    expect(() => tenantScopedFunctionSql({ schema: 'scratch', name: 'Bad', args: '', returns: 'void', body: '' })).toThrow(/function name/);
  });

  it('a read-only transaction cannot write', async () => {
    const code = await sqlstateOf(withTenant(app, 'tenant-a', (client) => client.query(`INSERT INTO scratch.notes VALUES ('tenant-a', 9, 'x')`), { readOnly: true }));
    expect(code).toBe('25006');
  });

  it('a connection killed inside withTenant is destroyed, not returned to the pool', async () => {
    const pool = db.pool(asUser(db.adminUrl, roles.app, appPassword), 1);
    await expect(
      withTenant(pool, 'tenant-a', async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
        await client.query('SELECT 1');
      }),
    ).rejects.toThrow();
    const count = await withTenant(pool, 'tenant-a', async (client) => (await client.query('SELECT count(*)::int AS n FROM scratch.notes')).rows[0]);
    expect(count).toEqual({ n: 2 });
  });
});

describe('row-level security, as the application role with raw SQL', () => {
  for (const table of ['notes', 'entries']) {
    it(`with no tenant set, ${table} shows zero rows and accepts no insert (fail closed)`, async () => {
      await asAppWithoutTenant(async (client) => {
        expect((await client.query(`SELECT count(*)::int AS n FROM scratch.${table}`)).rows[0]).toEqual({ n: 0 });
        expect((await client.query(`UPDATE scratch.${table} SET body = 'x'`)).rowCount).toBe(0);
      });
      await asAppWithoutTenant(async (client) => {
        expect(await sqlstateOf(client.query(`INSERT INTO scratch.${table} VALUES ('tenant-a', 50, 'x')`))).toBe('42501');
      });
    });

    it(`tenant A cannot read, count, update, delete or insert tenant B's rows in ${table}`, async () => {
      await withTenant(app, 'tenant-a', async (client) => {
        expect((await client.query(`SELECT DISTINCT tenant_id FROM scratch.${table}`)).rows).toEqual([{ tenant_id: 'tenant-a' }]);
        expect((await client.query(`SELECT count(*)::int AS n FROM scratch.${table} WHERE tenant_id = 'tenant-b'`)).rows[0]).toEqual({ n: 0 });
        if (table === 'notes') {
          expect((await client.query(`UPDATE scratch.notes SET body = 'hacked' WHERE tenant_id = 'tenant-b'`)).rowCount).toBe(0);
          expect((await client.query(`DELETE FROM scratch.notes WHERE tenant_id = 'tenant-b'`)).rowCount).toBe(0);
        }
      });
      await withTenant(app, 'tenant-a', async (client) => {
        expect(await sqlstateOf(client.query(`INSERT INTO scratch.${table} VALUES ('tenant-b', 60, 'forged')`))).toBe('42501');
      });
      await withTenant(app, 'tenant-a', async (client) => {
        // Moving one's own row to another tenant is an insert into B by another name.
        if (table === 'notes') expect(await sqlstateOf(client.query(`UPDATE scratch.notes SET tenant_id = 'tenant-b' WHERE id = 1`))).toBe('42501');
      });
      const seenByB = await withTenant(app, 'tenant-b', async (client) => (await client.query(`SELECT id, body FROM scratch.${table} ORDER BY id`)).rows);
      expect(seenByB).toEqual(table === 'notes' ? [{ id: 1, body: 'first' }, { id: 2, body: 'second' }] : [{ id: 1, body: 'entry' }]);
    });
  }

  it('the owner is subject to the policies too (FORCE): with no tenant it sees nothing', async () => {
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL ROLE ${roles.owner}`);
      expect((await client.query('SELECT count(*)::int AS n FROM scratch.notes')).rows[0]).toEqual({ n: 0 });
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});

describe('append-only tables', () => {
  it('the application role cannot UPDATE, DELETE or TRUNCATE entries even with the privileges', async () => {
    for (const statement of [`UPDATE scratch.entries SET body = 'changed'`, 'DELETE FROM scratch.entries', 'TRUNCATE scratch.entries']) {
      const code = await sqlstateOf(withTenant(app, 'tenant-a', (client) => client.query(statement)));
      expect(code, statement).toBe(APPEND_ONLY_SQLSTATE);
    }
  });

  it('the owner and a superuser cannot UPDATE, DELETE or TRUNCATE entries either', async () => {
    for (const asOwner of [true, false]) {
      for (const statement of [`UPDATE scratch.entries SET body = 'changed'`, 'DELETE FROM scratch.entries', 'TRUNCATE scratch.entries']) {
        const client = await admin.connect();
        try {
          await client.query('BEGIN');
          if (asOwner) await client.query(`SET LOCAL ROLE ${roles.owner}`);
          await client.query(`SELECT set_config($1, 'tenant-a', true)`, [TENANT_SETTING]);
          expect(await sqlstateOf(client.query(statement)), `${asOwner ? 'owner' : 'superuser'}: ${statement}`).toBe(APPEND_ONLY_SQLSTATE);
        } finally {
          await client.query('ROLLBACK');
          client.release();
        }
      }
    }
  });

  it('the application role cannot take the retention path by setting ledgerkit.retention itself', async () => {
    const code = await sqlstateOf(
      withTenant(app, 'tenant-a', async (client) => {
        await client.query(`SELECT set_config('ledgerkit.retention', 'on', true)`);
        await client.query('DELETE FROM scratch.entries');
      }),
    );
    expect(code).toBe(APPEND_ONLY_SQLSTATE);
  });

  it('retention: the owner with ledgerkit.retention on may DELETE one tenant’s rows, but never UPDATE', async () => {
    await withTenant(app, 'tenant-r', (client) => client.query(`INSERT INTO scratch.entries VALUES ('tenant-r', 1, 'old'), ('tenant-r', 2, 'new')`));
    const updateCode = await sqlstateOf(withRetention(admin, { tenantId: 'tenant-r', ownerRole: roles.owner }, (client) => client.query(`UPDATE scratch.entries SET body = 'x'`)));
    expect(updateCode).toBe(APPEND_ONLY_SQLSTATE);
    const deleted = await withRetention(admin, { tenantId: 'tenant-r', ownerRole: roles.owner }, async (client) => (await client.query('DELETE FROM scratch.entries WHERE id = 1')).rowCount);
    expect(deleted).toBe(1);
    const left = await withTenant(app, 'tenant-r', async (client) => (await client.query('SELECT id FROM scratch.entries')).rows);
    expect(left).toEqual([{ id: 2 }]);
    // Other tenants' rows stay out of reach of a retention transaction.
    const otherTenant = await withRetention(admin, { tenantId: 'tenant-r', ownerRole: roles.owner }, async (client) => (await client.query(`DELETE FROM scratch.entries WHERE tenant_id = 'tenant-a'`)).rowCount);
    expect(otherTenant).toBe(0);
  });
});
