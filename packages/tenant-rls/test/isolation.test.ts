import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
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
  RetentionRoleError,
  TransactionAbortedError,
  TransactionEndedError,
  withPooledClient,
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

/** Further cluster-wide roles tests create; dropped with the database. */
const extraRoles: string[] = [];

afterAll(async () => {
  await db?.close(roles === undefined ? [] : [...extraRoles, roles.app, roles.owner]);
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

describe('ensureRoles with awkward input', () => {
  it('an application password holding the dollar-quote tag, quotes and semicolons is stored as given: its SCRAM verifier matches exactly it', async () => {
    const pwRoles = { owner: `lk_${db.suffix}_pw_owner`, app: `lk_${db.suffix}_pw_app` };
    extraRoles.push(pwRoles.app, pwRoles.owner);
    const password = `abc$ensure$def$ensure_1$'; DROP ROLE ${roles.app}; --$$ "x" \\n`;
    const client = await admin.connect();
    try {
      await ensureRoles(client, { roles: pwRoles, appPassword: password });
    } finally {
      client.release();
    }
    // The stored SCRAM-SHA-256 verifier, checked here rather than by logging in: a server with
    // trust authentication (as the machine's PostgreSQL 15 is set up) lets any password in.
    const stored = (await admin.query<{ p: string | null }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [pwRoles.app])).rows[0]?.p ?? '';
    expect(scramMatches(stored, password)).toBe(true);
    expect(scramMatches(stored, 'abc')).toBe(false);
    expect(scramMatches(stored, `${password} `)).toBe(false);
    // The text after the quote was never run as SQL.
    expect((await admin.query('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [roles.app])).rows[0]).toEqual({ n: 1 });
  });

  it('role names that are not strings are refused before anything is sent: no role named "undefined" appears', async () => {
    const exists = async (): Promise<boolean> => (await admin.query(`SELECT 1 FROM pg_roles WHERE rolname = 'undefined'`)).rowCount === 1;
    const existedBefore = await exists();
    const client = await admin.connect();
    try {
      // A JavaScript caller, or a config file, that forgot the application role's name.
      const forgotApp = { owner: roles.owner } as unknown as RoleNames;
      await expect(ensureRoles(client, { roles: forgotApp })).rejects.toThrow(TypeError);
      await expect(ensureRoles(client, { roles, appPassword: 42 as unknown as string })).rejects.toThrow(/appPassword must be a string/);
      expect(await exists()).toBe(existedBefore);
    } finally {
      if (!existedBefore && (await exists())) await client.query('DROP ROLE "undefined"');
      client.release();
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

  it('a statement error that fn catches aborts the transaction: withTenant rejects with TransactionAbortedError, keeps nothing, and the connection serves the next call', async () => {
    const outcome = await withTenant(appSingle, 'tenant-d', async (client) => {
      await client.query(`INSERT INTO scratch.notes VALUES ('tenant-d', 1, 'written before the failure')`);
      // A "best effort" statement whose failure fn swallows: PostgreSQL has aborted the transaction all the same.
      await client.query('SELECT 1 / 0').catch(() => undefined);
      return 'fn returned normally';
    }).then(
      (value) => value,
      (error: unknown) => error,
    );
    expect(outcome).toBeInstanceOf(TransactionAbortedError);
    expect(outcome).toMatchObject({ code: 'transaction_aborted' });
    const rows = await withTenant(appSingle, 'tenant-d', async (client) => (await client.query('SELECT body FROM scratch.notes')).rows);
    expect(rows).toEqual([]);
    // A savepoint is the way to go on after a failed statement: that transaction commits.
    await withTenant(appSingle, 'tenant-d', async (client) => {
      await client.query('SAVEPOINT attempt');
      await client.query('SELECT 1 / 0').catch(() => client.query('ROLLBACK TO SAVEPOINT attempt'));
      await client.query(`INSERT INTO scratch.notes VALUES ('tenant-d', 2, 'kept')`);
    });
    expect(await withTenant(appSingle, 'tenant-d', async (client) => (await client.query('SELECT body FROM scratch.notes')).rows)).toEqual([{ body: 'kept' }]);
  });

  it('fn that ends the transaction itself (its own ROLLBACK or COMMIT) makes withTenant reject with TransactionEndedError, whether fn returned or threw, never resolve as if committed', async () => {
    const outcomeOf = (fn: (client: pg.PoolClient) => Promise<unknown>) =>
      withTenant(appSingle, 'tenant-e', fn).then(
        (value) => value,
        (error: unknown) => error,
      );
    const notesOfE = async () => withTenant(appSingle, 'tenant-e', async (client) => (await client.query('SELECT id FROM scratch.notes ORDER BY id')).rows);
    // A ROLLBACK after a savepoint ends the whole transaction: the insert is gone, and fn returned normally.
    const rolledBack = await outcomeOf(async (client) => {
      await client.query(`INSERT INTO scratch.notes VALUES ('tenant-e', 1, 'rolled back by fn')`);
      await client.query('SAVEPOINT a');
      await client.query('ROLLBACK');
      return 'fn returned normally';
    });
    expect(rolledBack).toBeInstanceOf(TransactionEndedError);
    expect(rolledBack).toMatchObject({ code: 'transaction_ended' });
    expect(await notesOfE()).toEqual([]);
    // A COMMIT of fn's own, then a throw: the insert is committed, so the error must not read as a rollback.
    const thrown = new Error('after committing');
    const committed = await outcomeOf(async (client) => {
      await client.query(`INSERT INTO scratch.notes VALUES ('tenant-e', 2, 'committed by fn')`);
      await client.query('COMMIT');
      throw thrown;
    });
    expect(committed).toBeInstanceOf(TransactionEndedError);
    expect((committed as Error).cause).toBe(thrown);
    expect(await notesOfE()).toEqual([{ id: 2 }]);
    // The connection went back to the pool in working order.
    expect(await withTenant(appSingle, 'tenant-a', async (client) => (await client.query('SELECT count(*)::int AS n FROM scratch.notes')).rows[0])).toEqual({ n: 2 });
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

  it('repeatableRead: every statement of fn sees the snapshot of its first, while another transaction commits between them; without it the second sees the commit', async () => {
    const countsAcross = async (id: number, options: { readOnly: boolean; repeatableRead?: boolean }) =>
      withTenant(
        app,
        'tenant-f',
        async (client) => {
          const before = (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM scratch.notes')).rows[0]?.n;
          await withTenant(admin, 'tenant-f', (other) => other.query(`INSERT INTO scratch.notes VALUES ('tenant-f', $1, 'committed meanwhile')`, [id]));
          const after = (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM scratch.notes')).rows[0]?.n;
          return { before, after };
        },
        options,
      );
    const snapshot = await countsAcross(1, { readOnly: true, repeatableRead: true });
    expect(snapshot.after).toBe(snapshot.before);
    const readCommitted = await countsAcross(2, { readOnly: true });
    expect(readCommitted.after).toBe((readCommitted.before ?? 0) + 1);
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

describe('the application’s own error listeners on pooled connections', () => {
  it('stay after withTenant and withPooledClient give the connection back: a server going away later reaches them, not an unheard error', async () => {
    const pool = db.pool(asUser(db.adminUrl, roles.app, appPassword), 1);
    const heard: Error[] = [];
    const listener = (error: Error): void => {
      heard.push(error);
    };
    pool.on('connect', (client) => client.on('error', listener));
    await withTenant(pool, 'tenant-a', (client) => client.query('SELECT 1'));
    await withPooledClient(pool, (client) => client.query('SELECT 1'));
    const client = await pool.connect();
    try {
      // Ours, and no listener of withTenant's or withPooledClient's left behind.
      expect(client.listeners('error')).toEqual([listener]);
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      await expect(client.query('SELECT 1')).rejects.toThrow();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(heard.length).toBeGreaterThan(0);
    } finally {
      client.release(true);
    }
  });
});

describe('tenantScopedFunctionSql puts the caller’s tenant back however the body ends', () => {
  beforeAll(async () => {
    const client = await admin.connect();
    try {
      await client.query(`SET ROLE ${roles.owner}`);
      await client.query(`
        ${tenantScopedFunctionSql({
          schema: 'scratch',
          name: 'count_value',
          args: '',
          returns: 'bigint',
          body: 'RETURN (SELECT count(*) FROM scratch.notes);',
        })}
        ${tenantScopedFunctionSql({
          schema: 'scratch',
          name: 'first_note',
          args: '',
          returns: 'SETOF scratch.notes',
          // Leaves with a bare RETURN before the end, as a set-returning body may.
          body: 'RETURN QUERY SELECT * FROM scratch.notes ORDER BY id LIMIT 1; RETURN; RETURN QUERY SELECT * FROM scratch.notes;',
        })}
        ${tenantScopedFunctionSql({
          schema: 'scratch',
          name: 'add_note',
          args: 'p_id integer',
          returns: 'void',
          body: `INSERT INTO scratch.notes VALUES (p_tenant_id, p_id, 'added'); IF p_id > 0 THEN RETURN; END IF; INSERT INTO scratch.notes VALUES (p_tenant_id, -p_id, 'never');`,
        })}
        ${tenantScopedFunctionSql({
          schema: 'scratch',
          name: 'fail',
          args: '',
          returns: 'bigint',
          body: `PERFORM count(*) FROM scratch.notes; RAISE EXCEPTION 'body failed' USING ERRCODE = 'P0001';`,
        })}
        ${tenantScopedFunctionSql({
          schema: 'scratch',
          name: 'count_restoring_itself',
          args: '',
          returns: 'integer',
          // Written for earlier releases: puts the caller's setting back itself before it returns.
          body: `DECLARE v_n integer; BEGIN
            SELECT count(*) INTO v_n FROM scratch.notes;
            PERFORM set_config('${TENANT_SETTING}', v_previous, true);
            RETURN v_n; END;`,
        })}
        ${tenantScopedFunctionSql({
          schema: 'scratch',
          name: 'describe_args',
          // Commas inside a type, a quoted default and a quoted name must not be taken for argument separators.
          args: `p_amount numeric(10, 2), "p_odd,name" text DEFAULT 'a,b''c', p_ids integer[] DEFAULT ARRAY[1, 2]`,
          returns: 'text',
          body: `RETURN p_tenant_id || '|' || p_amount || '|' || "p_odd,name" || '|' || array_to_string(p_ids, ';') || '|' || current_setting('${TENANT_SETTING}');`,
        })}
        -- Hardened as the example API does: only the application role may call it.
        REVOKE ALL ON FUNCTION scratch.count_value(text) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION scratch.count_value(text) TO ${roles.app};
      `);
    } finally {
      await client.query('RESET ROLE');
      client.release();
    }
  });

  /** Runs `fn` as the application role in a transaction set to `tenant`, then rolls it back. */
  async function asAppTenant<T>(tenant: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await app.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT set_config($1, $2, true)`, [TENANT_SETTING, tenant]);
      return await fn(client);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  /** The tenant setting and the tenants whose notes the transaction sees. */
  async function tenantNow(client: pg.PoolClient): Promise<{ setting: string; visible: string[] }> {
    const setting = (await client.query<{ t: string }>('SELECT current_setting($1) AS t', [TENANT_SETTING])).rows[0]?.t ?? '';
    const visible = (await client.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM scratch.notes ORDER BY 1')).rows.map((row) => row.tenant_id);
    return { setting, visible };
  }

  it('a scalar body that RETURNs its value: the value is the named tenant’s, and the caller is back on its own tenant', async () => {
    const seen = await asAppTenant('tenant-b', async (client) => {
      const { rows } = await client.query<{ n: string }>('SELECT scratch.count_value($1) AS n', ['tenant-a']);
      return { n: rows[0]?.n, after: await tenantNow(client) };
    });
    expect(seen).toEqual({ n: '2', after: { setting: 'tenant-b', visible: ['tenant-b'] } });
    // Autocommitted on its own: no tenant before, none after.
    expect((await appSingle.query('SELECT scratch.count_value($1) AS n', ['tenant-a'])).rows).toEqual([{ n: '2' }]);
    const client = await appSingle.connect();
    try {
      expect((await client.query(`SELECT current_setting($1, true) AS t`, [TENANT_SETTING])).rows[0]?.t ?? '').toBe('');
    } finally {
      client.release();
    }
  });

  it('a caller already on the named tenant gets the same answer and keeps its tenant', async () => {
    const seen = await asAppTenant('tenant-a', async (client) => {
      const { rows } = await client.query<{ n: string }>('SELECT scratch.count_value($1) AS n', ['tenant-a']);
      return { n: rows[0]?.n, after: await tenantNow(client) };
    });
    expect(seen).toEqual({ n: '2', after: { setting: 'tenant-a', visible: ['tenant-a'] } });
  });

  it('a body that puts the setting back itself from v_previous, as written for earlier releases, still works', async () => {
    const seen = await asAppTenant('tenant-b', async (client) => {
      const { rows } = await client.query<{ n: number }>('SELECT scratch.count_restoring_itself($1) AS n', ['tenant-a']);
      return { n: rows[0]?.n, after: await tenantNow(client) };
    });
    expect(seen).toEqual({ n: 2, after: { setting: 'tenant-b', visible: ['tenant-b'] } });
  });

  it('a set-returning body that leaves early with a bare RETURN', async () => {
    const seen = await asAppTenant('tenant-b', async (client) => {
      const { rows } = await client.query('SELECT tenant_id, id FROM scratch.first_note($1)', ['tenant-a']);
      return { rows, after: await tenantNow(client) };
    });
    expect(seen).toEqual({ rows: [{ tenant_id: 'tenant-a', id: 1 }], after: { setting: 'tenant-b', visible: ['tenant-b'] } });
  });

  it('a void body that writes and leaves early with RETURN: the row goes to the named tenant, later writes to the caller’s', async () => {
    const seen = await asAppTenant('tenant-b', async (client) => {
      await client.query('SELECT scratch.add_note($1, 77)', ['tenant-a']);
      const after = await tenantNow(client);
      // What the body wrote, read as tenant-a in this transaction (the check after the rollback
      // below cannot see it): row 77 for tenant-a, and not the row after the early RETURN. Rolling
      // back to the savepoint puts the caller's tenant back and keeps the rows written before it.
      await client.query('SAVEPOINT read_as_a');
      await client.query(`SELECT set_config($1, 'tenant-a', true)`, [TENANT_SETTING]);
      const written = (await client.query('SELECT tenant_id, id, body FROM scratch.notes WHERE id IN (77, -77) ORDER BY id')).rows;
      await client.query('ROLLBACK TO SAVEPOINT read_as_a');
      // Under the caller's tenant again: a row for tenant-a is refused by the policy.
      const code = await sqlstateOf(client.query(`INSERT INTO scratch.notes VALUES ('tenant-a', 78, 'x')`));
      return { after, written, code };
    });
    expect(seen).toEqual({ after: { setting: 'tenant-b', visible: ['tenant-b'] }, written: [{ tenant_id: 'tenant-a', id: 77, body: 'added' }], code: '42501' });
    const added = await asAppTenant('tenant-a', async (client) => (await client.query('SELECT id, body FROM scratch.notes WHERE id = 77')).rows);
    expect(added).toEqual([]); // rolled back with its transaction
  });

  it('a body that raises: rolling back to the savepoint leaves the caller on its own tenant', async () => {
    const seen = await asAppTenant('tenant-b', async (client) => {
      await client.query('SAVEPOINT before_call');
      const code = await sqlstateOf(client.query('SELECT scratch.fail($1)', ['tenant-a']));
      await client.query('ROLLBACK TO SAVEPOINT before_call');
      return { code, after: await tenantNow(client) };
    });
    expect(seen).toEqual({ code: 'P0001', after: { setting: 'tenant-b', visible: ['tenant-b'] } });
  });

  it('passes every argument on, defaults included, to a body that leaves early', async () => {
    const seen = await asAppTenant('tenant-b', async (client) => ({
      defaults: (await client.query('SELECT scratch.describe_args($1, 1.5) AS d', ['tenant-a'])).rows[0]?.d,
      given: (await client.query('SELECT scratch.describe_args($1, 2, $2, $3) AS d', ['tenant-a', 'z', [7]])).rows[0]?.d,
      after: await tenantNow(client),
    }));
    expect(seen).toEqual({
      defaults: "tenant-a|1.5|a,b'c|1;2|tenant-a",
      given: 'tenant-a|2|z|7|tenant-a',
      after: { setting: 'tenant-b', visible: ['tenant-b'] },
    });
  });

  it('refuses argument lists it cannot pass on one for one, and SETOF record', () => {
    const base = { schema: 'scratch', name: 'x', returns: 'void', body: '' };
    for (const args of ['OUT n integer', 'p integer, INOUT q integer', 'VARIADIC p integer[]', 'p integer -- note', 'p text DEFAULT $$a$$', 'p numeric(10', "p text DEFAULT 'a", 'p integer,, q integer']) {
      expect(() => tenantScopedFunctionSql({ ...base, args }), args).toThrow(TypeError);
    }
    expect(() => tenantScopedFunctionSql({ ...base, args: '', returns: 'SETOF record' })).toThrow(/TABLE/);
  });

  it('a body that runs to its end (RETURN QUERY, RETURNING) sets the tenant directly, without calling itself', () => {
    const plain = tenantScopedFunctionSql({ schema: 'scratch', name: 'p', args: 'p_n integer', returns: 'SETOF scratch.notes', body: 'RETURN QUERY SELECT * FROM scratch.notes LIMIT p_n; RETURN NEXT;' });
    const insert = tenantScopedFunctionSql({ schema: 'scratch', name: 'q', args: '', returns: 'void', body: "INSERT INTO scratch.notes VALUES (p_tenant_id, 1, 'x') RETURNING id;" });
    const early = tenantScopedFunctionSql({ schema: 'scratch', name: 'r', args: '', returns: 'SETOF scratch.notes', body: 'RETURN QUERY SELECT * FROM scratch.notes; RETURN;' });
    expect(plain).not.toContain('"scratch"."p"($1');
    expect(insert).not.toContain('"scratch"."q"($1');
    expect(early).toContain('"scratch"."r"($1)');
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
      // Each refused statement aborts its transaction, so withTenant cannot commit it.
      await expect(
        withTenant(app, 'tenant-a', async (client) => {
          expect(await sqlstateOf(client.query(`INSERT INTO scratch.${table} VALUES ('tenant-b', 60, 'forged')`))).toBe('42501');
        }),
      ).rejects.toBeInstanceOf(TransactionAbortedError);
      if (table === 'notes') {
        await expect(
          withTenant(app, 'tenant-a', async (client) => {
            // Moving one's own row to another tenant is an insert into B by another name.
            expect(await sqlstateOf(client.query(`UPDATE scratch.notes SET tenant_id = 'tenant-b' WHERE id = 1`))).toBe('42501');
          }),
        ).rejects.toBeInstanceOf(TransactionAbortedError);
      }
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

  it('retention refuses an ownerRole that is a superuser or has BYPASSRLS: fn never runs and nothing is deleted', async () => {
    const superRole = `lk_${db.suffix}_super`;
    const bypassRole = `lk_${db.suffix}_bypass`;
    extraRoles.push(superRole, bypassRole);
    await admin.query(`CREATE ROLE ${superRole} NOLOGIN SUPERUSER; CREATE ROLE ${bypassRole} NOLOGIN BYPASSRLS;
      GRANT USAGE ON SCHEMA scratch TO ${bypassRole}; GRANT SELECT, DELETE ON scratch.notes TO ${bypassRole}`);
    const countsBefore = (await admin.query('SELECT tenant_id, count(*)::int AS n FROM scratch.notes GROUP BY 1 ORDER BY 1')).rows;
    for (const ownerRole of [superRole, bypassRole]) {
      let ran = false;
      const outcome = withRetention(admin, { tenantId: 'tenant-a', ownerRole }, async (client) => {
        ran = true;
        // What it would do: see every tenant, delete every tenant's notes. Undone by the throw.
        await client.query('DELETE FROM scratch.notes');
        throw new Error('fn ran as a role that bypasses row-level security');
      });
      await expect(outcome, ownerRole).rejects.toBeInstanceOf(RetentionRoleError);
      await expect(outcome).rejects.toMatchObject({ code: 'retention_role_bypasses_rls', role: ownerRole });
      expect(ran, ownerRole).toBe(false);
    }
    expect((await admin.query('SELECT tenant_id, count(*)::int AS n FROM scratch.notes GROUP BY 1 ORDER BY 1')).rows).toEqual(countsBefore);
    // The connection went back to the pool clean: no role, no tenant, no retention setting left on it.
    const client = await admin.connect();
    try {
      const { rows } = await client.query(`SELECT current_user = session_user AS own_role, coalesce(current_setting($1, true), '') AS tenant, coalesce(current_setting('ledgerkit.retention', true), '') AS retention`, [TENANT_SETTING]);
      expect(rows[0]).toEqual({ own_role: true, tenant: '', retention: '' });
    } finally {
      client.release();
    }
  });
});

/**
 * Whether `password` is the one a SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
 * as pg_authid keeps it) was made from: StoredKey = SHA-256(HMAC(PBKDF2(password, salt, iterations), "Client Key")).
 * ASCII passwords only (no SASLprep).
 */
function scramMatches(verifier: string, password: string): boolean {
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (match === null) throw new Error(`not a SCRAM-SHA-256 verifier: ${verifier.slice(0, 20)}`);
  const [, iterations, salt, storedKey] = match as unknown as [string, string, string, string];
  const salted = pbkdf2Sync(password, Buffer.from(salt, 'base64'), Number(iterations), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return createHash('sha256').update(clientKey).digest('base64') === storedKey;
}
