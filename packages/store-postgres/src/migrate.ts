import { DEFAULT_ROLES, runMigrations, type ClientPool, type RoleNames } from '@ledgerkit/tenant-rls';
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

/**
 * Creates or upgrades the Ledgerkit schema: ensures the roles, then applies every migration not
 * yet recorded in `ledgerkit.schema_migrations`, all in one transaction under an advisory lock,
 * so several processes may call it at once and exactly one does the work. Idempotent. Refuses a
 * database whose schema is newer than this release knows.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  return runMigrations({
    ...options,
    roles: options.roles ?? DEFAULT_ROLES,
    schema: SCHEMA,
    historyTable: 'schema_migrations',
    migrations: MIGRATIONS,
    packageName: '@ledgerkit/store-postgres',
  });
}
