import { runMigrations, withPooledClient, type RoleNames } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openScratchDatabase, type ScratchDatabase } from './support/scratch-database.js';

/** Marks the migration statement, so that the test finds its session. */
const MARK = 'lk-doomed-migration';

let db: ScratchDatabase;
let roles: RoleNames;

beforeAll(async () => {
  db = await openScratchDatabase();
  roles = { owner: `lk_${db.suffix}_owner`, app: `lk_${db.suffix}_app` };
});

/** Roles tests create besides the file's own, dropped at the end. */
const extraRoles: string[] = [];

afterAll(async () => {
  await db?.close([...extraRoles, roles.app, roles.owner]);
});

describe('runMigrations', () => {
  it('a server lost in the middle of a migration rejects the call, crashes nothing, commits nothing, and its connection is not pooled again', async () => {
    const pool = db.pool(db.adminUrl, 1);
    const migrate = (sql: string) =>
      runMigrations({
        pool,
        roles,
        schema: 'doomed',
        historyTable: 'doomed_history',
        packageName: 'a test',
        migrations: [
          { version: 1, name: 'a table', sql: () => 'CREATE TABLE doomed.kept_or_not (id integer)' },
          { version: 2, name: 'the server goes away', sql: () => sql },
        ],
      });
    const check = db.pool(db.adminUrl, 1);
    const running = migrate(`SELECT pg_sleep(60) /* ${MARK} */`);
    const outcome = running.then(
      () => undefined,
      (error: unknown) => error,
    );
    // The server ends the migrating session, as a restart or a failover would.
    let terminated = false;
    for (let polls = 0; polls < 1_000 && !terminated; polls += 1) {
      const { rows } = await check.query<{ done: boolean }>(
        `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
        [MARK],
      );
      terminated = rows.some((row) => row.done);
      if (!terminated) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(terminated).toBe(true);
    // Unheard, the client's 'error' event for the lost connection ended the test process.
    expect(String(await outcome)).toMatch(/terminat/);
    expect(pool.totalCount, 'the dead connection was dropped').toBe(0);
    const { rows } = await check.query<{ exists: boolean }>(`SELECT to_regclass('doomed.kept_or_not') IS NOT NULL AS exists`);
    expect(rows[0]?.exists, 'migration 1 rolled back with the rest').toBe(false);
    // The same pool migrates once the server is there again.
    await expect(migrate('SELECT 1')).resolves.toEqual({ applied: [1, 2], schemaVersion: 2 });
  });
});

describe('runMigrations run at once by several processes', () => {
  it('a non-superuser migrating a fresh cluster from several connections at once: every call succeeds, the schema is migrated once', async () => {
    const fresh: RoleNames = { owner: `lk_${db.suffix}_o2`, app: `lk_${db.suffix}_a2` };
    const migrator = `lk_${db.suffix}_migrator`;
    extraRoles.push(fresh.app, fresh.owner, migrator);
    const admin = db.pool(db.adminUrl, 1);
    await admin.query(`CREATE ROLE ${migrator} LOGIN CREATEROLE PASSWORD 'migrator-secret'`);
    const database = new URL(db.adminUrl).pathname.slice(1);
    await admin.query(`GRANT CREATE ON DATABASE ${database} TO ${migrator}`);
    const url = new URL(db.adminUrl);
    url.username = migrator;
    url.password = 'migrator-secret';
    const calls = Array.from({ length: 6 }, () =>
      runMigrations({
        pool: db.pool(url.toString(), 1),
        roles: fresh,
        appPassword: 'app-secret',
        schema: 'raced',
        historyTable: 'raced_history',
        packageName: 'a test',
        migrations: [{ version: 1, name: 'a table', sql: () => 'CREATE TABLE raced.t (id integer)' }],
      }),
    );
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter((outcome) => outcome.status === 'rejected').map((outcome) => String((outcome as PromiseRejectedResult).reason))).toEqual([]);
    const applied = outcomes.map((outcome) => (outcome as PromiseFulfilledResult<{ applied: readonly number[] }>).value.applied);
    expect(applied.filter((versions) => versions.length === 1)).toHaveLength(1);
  });
});

describe('runMigrations with role names that SQL must quote', () => {
  it('an owner role named like a keyword ("order") owns its schema and the migration runs', async () => {
    // Roles are the cluster's: the keyword name is shared by every run on this server, so it is
    // created if missing and dropped at the end like the others.
    const keyword: RoleNames = { owner: 'order', app: `lk_${db.suffix}_kwapp` };
    extraRoles.push(keyword.app, keyword.owner);
    const result = await runMigrations({
      pool: db.pool(db.adminUrl, 1),
      roles: keyword,
      appPassword: 'app-secret',
      schema: 'keyword_owned',
      historyTable: 'keyword_history',
      packageName: 'a test',
      migrations: [{ version: 1, name: 'a table', sql: () => 'CREATE TABLE keyword_owned.t (id integer)' }],
    });
    expect(result.applied).toEqual([1]);
    const owner = await db.pool(db.adminUrl, 1).query<{ owner: string }>(`SELECT pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = 'keyword_owned'`);
    expect(owner.rows[0]?.owner).toBe('order');
  });
});

describe('withPooledClient', () => {
  it('a connection whose server goes away while it is checked out is dropped, and its error event crashes nothing', async () => {
    const pool = db.pool(db.adminUrl, 1);
    const killer = db.pool(db.adminUrl, 1);
    const outcome = await withPooledClient(pool, async (client) => {
      const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const ended = new Promise((resolve) => client.once('end', resolve));
      await killer.query('SELECT pg_terminate_backend($1)', [pid]);
      // node-postgres raised 'error' on this idle, checked-out client just before 'end'.
      await ended;
      return 'finished';
    });
    expect(outcome).toBe('finished');
    expect(pool.totalCount, 'the dead connection was dropped').toBe(0);
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('after fn throws the connection is dropped, unless keepAfter accepts the error', async () => {
    const pool = db.pool(db.adminUrl, 1);
    const refused = (client: { query(text: string): Promise<unknown> }) => client.query('SELECT 1/0');
    await expect(withPooledClient(pool, refused)).rejects.toThrow(/division by zero/);
    expect(pool.totalCount).toBe(0);
    await expect(withPooledClient(pool, refused, { keepAfter: (error) => (error as { code?: string }).code === '22012' })).rejects.toThrow(/division by zero/);
    expect(pool.totalCount).toBe(1);
    expect(pool.idleCount).toBe(1);
  });
});
