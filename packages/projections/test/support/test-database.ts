import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrateReadModels } from '@ledgerkit/projections';
import { migrate, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import type { RoleNames } from '@ledgerkit/tenant-rls';

/**
 * A database of its own for one test file, with the event store's schema and the read models:
 * on the server at DATABASE_URL when set, else on an embedded server started for the file. Its
 * roles are named for it (roles are cluster-wide); `close()` drops the database and the roles.
 */
export interface TestDatabase {
  readonly name: string;
  readonly roles: RoleNames;
  /** Superuser, on this database. */
  readonly adminUrl: string;
  /** The application role, on this database. */
  readonly appUrl: string;
  /** Pool of the superuser (bypasses RLS). */
  readonly admin: pg.Pool;
  /** Pool of the application role. */
  readonly app: pg.Pool;
  /** A further pool, closed by `close()`. */
  pool(connectionString: string, max?: number): pg.Pool;
  close(): Promise<void>;
}

/**
 * `readModelsTo: n` applies the read-model migrations 1..n only, for a test that upgrades an
 * older read-model schema holding data (the event store's schema is current).
 */
export async function openTestDatabase(options: { readonly readModelsTo?: number } = {}): Promise<TestDatabase> {
  const embedded: EmbeddedPostgresServer | undefined = process.env['DATABASE_URL'] ? undefined : await startEmbeddedPostgres({ fast: true });
  const serverUrl = process.env['DATABASE_URL'] ?? (embedded as EmbeddedPostgresServer).connectionString;
  const suffix = randomBytes(5).toString('hex');
  const name = `lk_proj_${suffix}`;
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
      for (let polls = 0; polls < 100; polls += 1) {
        const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
        if (rows[0]?.n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.query(`DROP ROLE IF EXISTS ${roles.app}`);
      await client.query(`DROP ROLE IF EXISTS ${roles.owner}`);
    } finally {
      await client.end();
      await embedded?.stop();
    }
  };

  let admin: pg.Pool;
  let app: pg.Pool;
  try {
    const maintenance = new pg.Client({ connectionString: serverUrl });
    await maintenance.connect();
    try {
      await maintenance.query(`CREATE DATABASE ${name}`);
    } finally {
      await maintenance.end();
    }
    admin = makePool(adminUrl);
    await migrate({ pool: admin, roles, appPassword });
    await migrateReadModels({ pool: admin, roles, ...(options.readModelsTo === undefined ? {} : { toVersion: options.readModelsTo }) });
    app = makePool(appUrl, 20);
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
  return { name, roles, adminUrl, appUrl, admin, app, pool: makePool, close: () => (closed ??= close()) };
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function withUser(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}
