import { checkRoles, DEFAULT_ROLES, ensureRoles, quoteName, type ClientPool, type RoleNames } from '@ledgerkit/tenant-rls';
import { READ_MODEL_MIGRATIONS, SCHEMA } from './schema.js';

/** Options of {@link migrateReadModels}. */
export interface MigrateReadModelsOptions {
  /**
   * Pool of the migrating user: a superuser, or a member of the owner role with `CREATE` on the
   * database (and `CREATEROLE` when `createRoles`). Migrations run as the owner role.
   */
  readonly pool: ClientPool;
  /** Role names; default `DEFAULT_ROLES`, the same as `@ledgerkit/store-postgres`' `migrate`. */
  readonly roles?: RoleNames;
  /** Password for the application role if it is created now. */
  readonly appPassword?: string;
  /** Create the roles when missing; default true. With false they must exist. */
  readonly createRoles?: boolean;
}

/** What {@link migrateReadModels} did. */
export interface MigrateReadModelsResult {
  /** Versions applied by this call, in order; empty when the read models were already current. */
  readonly applied: readonly number[];
  /** The read models' schema version now. */
  readonly schemaVersion: number;
}

/** The read-model schema version this release creates and expects. */
export const READ_MODEL_SCHEMA_VERSION = READ_MODEL_MIGRATIONS.length;

if (!READ_MODEL_MIGRATIONS.every((migration, index) => migration.version === index + 1)) {
  throw new Error('@ledgerkit/projections: migrations must be numbered 1, 2, 3, ... in order');
}

/**
 * Creates or upgrades the read-model tables in the `ledgerkit` schema: every migration not yet in
 * `ledgerkit.projection_migrations`, in one transaction, as the owner role, under the same
 * advisory lock as the event store's `migrate`, so it may run beside it from several processes.
 * Idempotent; refuses a database whose read models are newer than this release knows.
 */
export async function migrateReadModels(options: MigrateReadModelsOptions): Promise<MigrateReadModelsResult> {
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
      await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA}.projection_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = await client.query<{ version: number }>(`SELECT version FROM ${SCHEMA}.projection_migrations ORDER BY version`);
      const doneVersions = new Set(done.rows.map((row) => row.version));
      const newest = Math.max(0, ...doneVersions);
      if (newest > READ_MODEL_SCHEMA_VERSION) {
        throw new Error(`the read models are at schema version ${newest}, newer than this release of @ledgerkit/projections knows (${READ_MODEL_SCHEMA_VERSION})`);
      }
      const applied: number[] = [];
      for (const migration of READ_MODEL_MIGRATIONS) {
        if (doneVersions.has(migration.version)) continue;
        await client.query(migration.sql(roles));
        await client.query(`INSERT INTO ${SCHEMA}.projection_migrations (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
        applied.push(migration.version);
      }
      await client.query('COMMIT');
      return { applied, schemaVersion: READ_MODEL_SCHEMA_VERSION };
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
