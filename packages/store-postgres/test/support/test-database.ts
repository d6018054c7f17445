import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate, MIGRATIONS, SCHEMA, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import { runMigrations, type RoleNames } from '@ledgerkit/tenant-rls';

/**
 * A database of its own for one test file: on the server at DATABASE_URL when set, else on an
 * embedded server started for the file. Its roles are named for it too (roles are cluster-wide),
 * and `close()` drops the database and the roles and stops the embedded server.
 */
export interface TestDatabase {
  readonly name: string;
  readonly roles: RoleNames;
  /** Superuser, on this database. */
  readonly adminUrl: string;
  /** The application role, on this database. */
  readonly appUrl: string;
  /** Pool of the superuser (bypasses RLS, like a DBA would). */
  readonly admin: pg.Pool;
  /** Pool of the application role. */
  readonly app: pg.Pool;
  /** `server_version_num`, e.g. 150020. */
  readonly serverVersionNum: number;
  /** A further pool, closed by `close()`. */
  pool(connectionString: string, max?: number): pg.Pool;
  close(): Promise<void>;
}

/**
 * `migrate: false` creates no schema (and no roles); `migrateTo: n` applies migrations 1..n only,
 * for a test that upgrades an older schema holding data.
 */
export async function openTestDatabase(options: { readonly migrate?: boolean; readonly migrateTo?: number } = {}): Promise<TestDatabase> {
  const embedded: EmbeddedPostgresServer | undefined = process.env['DATABASE_URL'] ? undefined : await startEmbeddedPostgres({ fast: true });
  const serverUrl = process.env['DATABASE_URL'] ?? (embedded as EmbeddedPostgresServer).connectionString;
  const suffix = randomBytes(5).toString('hex');
  const name = `lk_test_${suffix}`;
  const roles: RoleNames = { owner: `lk_${suffix}_owner`, app: `lk_${suffix}_app` };
  const appPassword = randomBytes(12).toString('hex');
  const adminUrl = withDatabase(serverUrl, name);
  const appUrl = withUser(adminUrl, roles.app, appPassword);
  const pools: pg.Pool[] = [];
  const makePool = (connectionString: string, max = 10): pg.Pool => {
    const pool = new pg.Pool({ connectionString, max });
    // Tests kill backends on purpose; an idle client's error must not crash the worker.
    pool.on('error', () => undefined);
    pools.push(pool);
    return pool;
  };

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await dropDatabase(client, name);
      await client.query(`DROP ROLE IF EXISTS ${roles.app}`);
      await client.query(`DROP ROLE IF EXISTS ${roles.owner}`);
    } finally {
      await client.end();
      await embedded?.stop();
    }
  };

  let serverVersionNum: number;
  let admin: pg.Pool;
  let app: pg.Pool;
  try {
    const maintenance = new pg.Client({ connectionString: serverUrl });
    await maintenance.connect();
    try {
      serverVersionNum = Number((await maintenance.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v);
      await maintenance.query(`CREATE DATABASE ${name}`);
    } finally {
      await maintenance.end();
    }
    admin = makePool(adminUrl);
    if (options.migrateTo !== undefined) {
      await runMigrations({
        pool: admin,
        roles,
        appPassword,
        schema: SCHEMA,
        historyTable: 'schema_migrations',
        migrations: MIGRATIONS.slice(0, options.migrateTo),
        packageName: '@ledgerkit/store-postgres',
      });
    } else if (options.migrate ?? true) {
      await migrate({ pool: admin, roles, appPassword });
    }
    app = makePool(appUrl);
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
  return {
    name,
    roles,
    adminUrl,
    appUrl,
    admin,
    app,
    serverVersionNum,
    pool: makePool,
    close: () => (closed ??= close()),
  };
}

/** Drops a database once the sessions of ended pools are gone (pool.end() resolves before its sockets close). */
export async function dropDatabase(client: pg.ClientBase, name: string): Promise<void> {
  for (let polls = 0; polls < 100; polls += 1) {
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
    if (rows[0]?.n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export function withUser(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}
