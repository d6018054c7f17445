import {
  checkRoles,
  ensureRoles,
  RoleRefusedError,
  runMigrations,
  TENANT_SETTING,
  tenantIsolationSql,
  tenantScopedFunctionSql,
  TransactionEndedError,
  withTenant,
  type RoleNames,
} from '@ledgerkit/tenant-rls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, openScratchDatabase, type ScratchDatabase } from './support/scratch-database.js';

// What must hold without PostgreSQL's notices and on a pooled connection reused after a
// transaction-local tenant: withTenant tells a transaction fn ended itself with
// client_min_messages = error (no 25P01 warning is sent); a tenant policy takes the setting ''
// that such a connection holds for "no tenant"; a scoped function made with refuseOtherTenant
// refuses another tenant; role refusals are typed.
let db: ScratchDatabase;
let roles: RoleNames;
let admin: pg.Pool;
const appPassword = 'quiet-secret';

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
      CREATE TABLE scratch.notes (tenant_id text NOT NULL, id integer NOT NULL, PRIMARY KEY (tenant_id, id));
      ${tenantIsolationSql({ schema: 'scratch', table: 'notes' })}
      ${tenantScopedFunctionSql({
        schema: 'scratch',
        name: 'note_ids',
        args: '',
        returns: 'TABLE (id integer)',
        body: 'RETURN QUERY SELECT n.id FROM scratch.notes n ORDER BY n.id;',
        refuseOtherTenant: true,
      })}
      ${tenantScopedFunctionSql({
        schema: 'scratch',
        name: 'note_count',
        args: '',
        returns: 'bigint',
        body: 'RETURN (SELECT count(*) FROM scratch.notes);',
        refuseOtherTenant: true,
      })}
      GRANT USAGE ON SCHEMA scratch TO ${roles.app};
      GRANT SELECT, INSERT, UPDATE, DELETE ON scratch.notes TO ${roles.app};
    `);
    await client.query('RESET ROLE');
    // A row of tenant '' (a superuser is bound by no policy), and one of tenant-a.
    await client.query(`INSERT INTO scratch.notes VALUES ('', 1), ('tenant-a', 1)`);
  } finally {
    client.release();
  }
});

afterAll(async () => {
  await db?.close(roles === undefined ? [] : [roles.app, roles.owner]);
});

/** A pool of one application-role connection on which the server sends no warning. */
function quietPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: asUser(db.adminUrl, roles.app, appPassword), max: 1, options: '-c client_min_messages=error' } as pg.PoolConfig);
  pool.on('error', () => undefined);
  return pool;
}

const outcomeOf = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    (value) => value,
    (error: unknown) => error,
  );

describe('withTenant with client_min_messages = error', () => {
  it('fn that runs ROLLBACK, or COMMIT, and returns (or throws) makes withTenant reject with TransactionEndedError', async () => {
    const pool = quietPool();
    try {
      const ids = async (): Promise<unknown> => withTenant(pool, 'tenant-q', async (client) => (await client.query('SELECT id FROM scratch.notes ORDER BY id')).rows);
      const rolledBack = await outcomeOf(
        withTenant(pool, 'tenant-q', async (client) => {
          await client.query(`INSERT INTO scratch.notes VALUES ('tenant-q', 1)`);
          await client.query('ROLLBACK');
          return 'fn returned';
        }),
      );
      expect(rolledBack).toBeInstanceOf(TransactionEndedError);
      expect(rolledBack).toMatchObject({ code: 'transaction_ended' });
      expect(await ids()).toEqual([]);
      const committed = await outcomeOf(
        withTenant(pool, 'tenant-q', async (client) => {
          await client.query(`INSERT INTO scratch.notes VALUES ('tenant-q', 2)`);
          await client.query('COMMIT');
          return 'fn returned';
        }),
      );
      expect(committed).toBeInstanceOf(TransactionEndedError);
      expect(await ids()).toEqual([{ id: 2 }]);
      const thrown = new Error('after committing');
      const committedThenThrew = await outcomeOf(
        withTenant(pool, 'tenant-q', async (client) => {
          await client.query(`INSERT INTO scratch.notes VALUES ('tenant-q', 3)`);
          await client.query('COMMIT');
          throw thrown;
        }),
      );
      expect(committedThenThrew).toBeInstanceOf(TransactionEndedError);
      expect((committedThenThrew as Error).cause).toBe(thrown);
      expect(await ids()).toEqual([{ id: 2 }, { id: 3 }]);
      // A transaction left alone still commits, and the connection is in working order.
      await withTenant(pool, 'tenant-q', (client) => client.query(`INSERT INTO scratch.notes VALUES ('tenant-q', 4)`));
      expect(await ids()).toEqual([{ id: 2 }, { id: 3 }, { id: 4 }]);
    } finally {
      await pool.end();
    }
  });
});

describe('a tenant policy of tenantIsolationSql on a connection reused after withTenant', () => {
  it('with no tenant set, sees no row with tenant_id "" and cannot insert one', async () => {
    const pool = db.pool(asUser(db.adminUrl, roles.app, appPassword), 1);
    await withTenant(pool, 'tenant-a', (client) => client.query('SELECT 1'));
    const { rows } = await pool.query<{ setting: string | null; n: number }>(`SELECT current_setting($1, true) AS setting, (SELECT count(*)::int FROM scratch.notes) AS n`, [TENANT_SETTING]);
    expect(rows[0]).toEqual({ setting: '', n: 0 });
    await expect(pool.query(`INSERT INTO scratch.notes VALUES ('', 2)`)).rejects.toMatchObject({ code: '42501' });
    // Setting the tenant to '' explicitly is no tenant either.
    await expect(withTenant(pool, 'tenant-a', async (client) => {
      await client.query(`SELECT set_config($1, '', true)`, [TENANT_SETTING]);
      return (await client.query('SELECT count(*)::int AS n FROM scratch.notes')).rows[0];
    })).resolves.toEqual({ n: 0 });
  });
});

describe('tenantScopedFunctionSql with refuseOtherTenant', () => {
  it('refuses a tenant other than the one set (42501, naming the function), runs as its argument with none set or the same one, and leaves the caller as it was', async () => {
    const app = db.pool(asUser(db.adminUrl, roles.app, appPassword), 1);
    for (const call of ['SELECT * FROM scratch.note_ids($1)', 'SELECT scratch.note_count($1)']) {
      const refusal = await outcomeOf(withTenant(app, 'tenant-b', (client) => client.query(call, ['tenant-a'])));
      expect(refusal, call).toMatchObject({ code: '42501' });
      expect((refusal as Error).message, call).toMatch(/^note_(ids|count): tenant tenant-a is not the tenant set for this transaction$/);
      expect((await withTenant(app, 'tenant-a', (client) => client.query(call, ['tenant-a']))).rows, call).toHaveLength(1);
      expect((await app.query(call, ['tenant-a'])).rows, call).toHaveLength(1);
    }
    expect((await app.query('SELECT * FROM scratch.note_ids($1)', ['tenant-a'])).rows).toEqual([{ id: 1 }]);
    expect((await app.query('SELECT scratch.note_count($1) AS n', ['tenant-a'])).rows).toEqual([{ n: '1' }]);
    const after = await app.query<{ setting: string | null }>('SELECT current_setting($1, true) AS setting', [TENANT_SETTING]);
    expect(after.rows[0]?.setting ?? '').toBe('');
  });
});

describe('role refusals are RoleRefusedError', () => {
  it('checkRoles, and runMigrations before any migration, with code role_refused, a reason and the messages as before', async () => {
    const client = await admin.connect();
    try {
      const superuser = (await client.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u as string;
      const bypassing = await outcomeOf(checkRoles(client, { owner: roles.owner, app: superuser }));
      expect(bypassing).toBeInstanceOf(RoleRefusedError);
      expect(bypassing).toMatchObject({
        name: 'RoleRefusedError',
        code: 'role_refused',
        reason: 'bypasses_rls',
        role: superuser,
        message: `role ${superuser} must be neither a superuser nor BYPASSRLS: row-level security would not apply to it`,
      });
      const missing = `lk_${db.suffix}_missing`;
      expect(await outcomeOf(checkRoles(client, { owner: roles.owner, app: missing }))).toMatchObject({ code: 'role_refused', reason: 'missing', role: missing, message: `role ${missing} does not exist` });
      await client.query(`GRANT ${roles.owner} TO ${roles.app}`);
      try {
        expect(await outcomeOf(checkRoles(client, roles))).toMatchObject({
          code: 'role_refused',
          reason: 'app_in_owner',
          message: `application role ${roles.app} must not be a member of the owner role ${roles.owner}`,
        });
      } finally {
        await client.query(`REVOKE ${roles.owner} FROM ${roles.app}`);
      }
    } finally {
      client.release();
    }
    const migration = { version: 1, name: 'never runs', sql: () => 'CREATE TABLE scratch.never (id integer)' };
    const base = { pool: admin, schema: 'scratch', historyTable: 'history', migrations: [migration], packageName: 'test', createRoles: false };
    const refusedRoles = await outcomeOf(runMigrations({ ...base, roles: { owner: roles.owner, app: `lk_${db.suffix}_missing` } }));
    expect(refusedRoles).toBeInstanceOf(RoleRefusedError);
    expect(refusedRoles).toMatchObject({ code: 'role_refused', reason: 'missing' });
    // The schema belongs to another role than the owner given.
    await admin.query(`CREATE SCHEMA other_owned`);
    const wrongOwner = await outcomeOf(runMigrations({ ...base, schema: 'other_owned', roles }));
    expect(wrongOwner).toBeInstanceOf(RoleRefusedError);
    expect(wrongOwner).toMatchObject({ code: 'role_refused', reason: 'schema_owner', role: roles.owner });
    expect((wrongOwner as Error).message).toMatch(new RegExp(`^schema other_owned is owned by \\w+, not by the owner role ${roles.owner}$`));
    expect((await admin.query(`SELECT to_regclass('scratch.never') AS t`)).rows[0]).toEqual({ t: null });
  });
});
