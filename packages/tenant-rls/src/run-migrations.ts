import { checkRoles, ensureRoles, RoleRefusedError, type RoleNames } from './roles.js';
import { quoteName } from './sql.js';
import { withPooledClient } from './pooled-client.js';
import type { ClientPool } from './with-tenant.js';

/** One step of a schema's history, applied once, in order, as the owner role. */
export interface SchemaMigration {
  /** 1, 2, 3, ...: never reused, never renumbered. */
  readonly version: number;
  /** What it does, recorded in the history table. */
  readonly name: string;
  /** The SQL to run as the owner role; it may name the roles. */
  readonly sql: (roles: RoleNames) => string;
}

/** What {@link runMigrations} needs. */
export interface RunMigrationsOptions {
  /** Pool of the migrating user: a superuser, or a member of the owner role with `CREATE` (and `CREATEROLE` when `createRoles`). */
  readonly pool: ClientPool;
  readonly roles: RoleNames;
  /** Password for the application role if it is created now. */
  readonly appPassword?: string;
  /** Create the roles when missing; default true. With false they must exist. */
  readonly createRoles?: boolean;
  /** Schema the migrations create objects in; created owned by the owner role. */
  readonly schema: string;
  /** Table in `schema` that records applied versions (one per package sharing the schema). */
  readonly historyTable: string;
  /** The migrations, numbered 1, 2, 3, ... in order. */
  readonly migrations: readonly SchemaMigration[];
  /** Who ships the migrations, for error messages. */
  readonly packageName: string;
}

/** What {@link runMigrations} did. */
export interface RunMigrationsResult {
  /** Versions applied by this call, in order; empty when already current. */
  readonly applied: readonly number[];
  /** The schema version now. */
  readonly schemaVersion: number;
}

/**
 * Ensures the roles, then applies every migration not yet recorded in `historyTable`, in one
 * transaction, as the owner role, under one advisory lock shared by every Ledgerkit package, so
 * several processes and packages may migrate at once and each step runs exactly once.
 * Idempotent; refuses a database whose history is newer than `migrations`. Roles that fail
 * {@link checkRoles}, and a schema owned by another role than the owner, are refused with
 * {@link RoleRefusedError} before any migration runs.
 */
export async function runMigrations(options: RunMigrationsOptions): Promise<RunMigrationsResult> {
  const { roles, schema, migrations } = options;
  if (!migrations.every((migration, index) => migration.version === index + 1)) {
    throw new Error(`${options.packageName}: migrations must be numbered 1, 2, 3, ... in order`);
  }
  const target = migrations.length;
  const owner = quoteName(roles.owner, 'owner role');
  const schemaName = quoteName(schema, 'schema');
  const history = `${schemaName}.${quoteName(options.historyTable, 'history table')}`;
  // A server lost mid-migration (a restart, a failover) rejects the call and its connection is
  // dropped (see withPooledClient), which also ends the transaction: nothing is committed.
  return withPooledClient(options.pool, async (client) => {
    if (options.createRoles ?? true) {
      await ensureRoles(client, { roles, ...(options.appPassword === undefined ? {} : { appPassword: options.appPassword }) });
    } else {
      await checkRoles(client, roles);
    }
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('ledgerkit.migrate'))`);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schemaName} AUTHORIZATION ${owner}`);
    // The role's name as stored (`pg_get_userbyid`), not `::regrole::text`, which quotes a name
    // that needs it (`"order"`) and so never equals the plain name given.
    const schemaOwner = await client.query<{ owner: string }>(`SELECT pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = $1`, [schema]);
    if (schemaOwner.rows[0]?.owner !== roles.owner) {
      throw new RoleRefusedError('schema_owner', roles.owner, `schema ${schema} is owned by ${schemaOwner.rows[0]?.owner ?? 'nobody'}, not by the owner role ${roles.owner}`);
    }
    await client.query(`SET LOCAL ROLE ${owner}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${history} (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = await client.query<{ version: number }>(`SELECT version FROM ${history} ORDER BY version`);
    const doneVersions = new Set(done.rows.map((row) => row.version));
    const newest = Math.max(0, ...doneVersions);
    if (newest > target) {
      throw new Error(`${schema}.${options.historyTable} is at version ${newest}, newer than this release of ${options.packageName} knows (${target})`);
    }
    const applied: number[] = [];
    for (const migration of migrations) {
      if (doneVersions.has(migration.version)) continue;
      await client.query(migration.sql(roles));
      await client.query(`INSERT INTO ${history} (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
      applied.push(migration.version);
    }
    await client.query('COMMIT');
    return { applied, schemaVersion: target };
  });
}
