import { checkRoles, DEFAULT_ROLES, ensureRoles, quoteName, type ClientPool, type RoleNames } from '@ledgerkit/tenant-rls';
import { MIGRATIONS, SCHEMA } from './migrations.js';

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /**
   * Pool of the migrating user: a superuser, or a user with `CREATEROLE` (when `createRoles`)
   * and `CREATE` on the database. It becomes a member of the owner role and runs every
   * migration as that role, so the owner, never the application role, owns what is created.
   */
  readonly pool: ClientPool;
  /** Role names; default {@link DEFAULT_ROLES}. */
  readonly roles?: RoleNames;
  /** Password for the application role if it is created now. */
  readonly appPassword?: string;
  /** Create the roles when missing (needs `CREATEROLE`); default true. With false they must exist. */
  readonly createRoles?: boolean;
}

/** What {@link migrate} did. */
export interface MigrateResult {
  /** Versions applied by this call, in order; empty when the schema was already current. */
  readonly applied: readonly number[];
  /** The schema's version now. */
  readonly schemaVersion: number;
}

/** The schema version this release of the package creates and expects. */
export const SCHEMA_VERSION = MIGRATIONS.length;

if (!MIGRATIONS.every((migration, index) => migration.version === index + 1)) {
  throw new Error('@ledgerkit/store-postgres: migrations must be numbered 1, 2, 3, ... in order');
}

/**
 * Creates or upgrades the Ledgerkit schema: ensures the roles, then applies every migration not
 * yet recorded in `ledgerkit.schema_migrations`, all in one transaction under an advisory lock,
 * so several processes may call it at once and exactly one does the work. Idempotent. Refuses a
 * database whose schema is newer than this release knows.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const roles = options.roles ?? DEFAULT_ROLES;
  const owner = quoteName(roles.owner, 'owner role');
  const client = await options.pool.connect();
  let broken: Error | undefined;
  try {
    if (options.createRoles ?? true) {
      await ensureRoles(client, { roles, ...(options.appPassword === undefined ? {} : { appPassword: options.appPassword }) });
    } else {
      await checkRoles(client, roles);
    }
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('ledgerkit.migrate'))`);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA} AUTHORIZATION ${owner}`);
      const schemaOwner = await client.query<{ owner: string }>(`SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = $1`, [SCHEMA]);
      if (schemaOwner.rows[0]?.owner !== roles.owner) {
        throw new Error(`schema ${SCHEMA} is owned by ${schemaOwner.rows[0]?.owner ?? 'nobody'}, not by the owner role ${roles.owner}`);
      }
      await client.query(`SET LOCAL ROLE ${owner}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA}.schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = await client.query<{ version: number }>(`SELECT version FROM ${SCHEMA}.schema_migrations ORDER BY version`);
      const doneVersions = new Set(done.rows.map((row) => row.version));
      const newest = Math.max(0, ...doneVersions);
      if (newest > SCHEMA_VERSION) {
        throw new Error(`the database schema is at version ${newest}, newer than this release of @ledgerkit/store-postgres knows (${SCHEMA_VERSION})`);
      }
      const applied: number[] = [];
      for (const migration of MIGRATIONS) {
        if (doneVersions.has(migration.version)) continue;
        await client.query(migration.sql(roles));
        await client.query(`INSERT INTO ${SCHEMA}.schema_migrations (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
        applied.push(migration.version);
      }
      await client.query('COMMIT');
      return { applied, schemaVersion: SCHEMA_VERSION };
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
      throw error;
    }
  } finally {
    client.release(broken);
  }
}
