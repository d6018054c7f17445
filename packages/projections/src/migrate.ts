import { InvalidInputError } from '@ledgerkit/ledger-core';
import { DEFAULT_ROLES, runMigrations, SQL_NAME_PATTERN, type ClientPool, type RoleNames } from '@ledgerkit/tenant-rls';
import { optionsOf, requireObjectWith } from './read-models/options.js';
import { READ_MODEL_HISTORY_TABLE, READ_MODEL_MIGRATIONS, SCHEMA } from './schema.js';

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
  /**
   * Migrate only up to this version (an integer in 0..`READ_MODEL_SCHEMA_VERSION`, default the
   * latter): for upgrade tests and staged roll-outs. This release's runners and `ReadModels`
   * refuse read models below `READ_MODEL_SCHEMA_VERSION`.
   */
  readonly toVersion?: number;
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

/**
 * Creates or upgrades the read-model tables in the `ledgerkit` schema: every migration not yet in
 * `ledgerkit.projection_migrations`, in one transaction, as the owner role, under the same
 * advisory lock as the event store's `migrate`, so it may run beside it from several processes.
 * Idempotent; refuses a database whose read models are newer than this release knows.
 *
 * Rejects, before connecting, options that are not an object (`InvalidInputError` at `options`),
 * a missing `pool` or one without `connect` (at `pool`), `roles` that are not an object of two
 * different role names matching `SQL_NAME_PATTERN` (at `roles`, `roles.owner` or `roles.app`), an
 * `appPassword` that is not a string without NUL characters, a `createRoles` that is not a
 * boolean and a `toVersion` out of range (each at its name). A `null` option is refused, not
 * taken for the default.
 */
export async function migrateReadModels(options: MigrateReadModelsOptions): Promise<MigrateReadModelsResult> {
  const { toVersion = READ_MODEL_MIGRATIONS.length, ...rest } = optionsOf(options, true);
  requireObjectWith(rest.pool, 'pool', ['connect']);
  const roles = rest.roles === undefined ? DEFAULT_ROLES : checkRoleNames(rest.roles);
  if (rest.appPassword !== undefined && (typeof rest.appPassword !== 'string' || rest.appPassword.includes('\u0000'))) {
    throw new InvalidInputError([{ path: ['appPassword'], message: 'must be a string without NUL characters (or left out)' }]);
  }
  if (rest.createRoles !== undefined && typeof rest.createRoles !== 'boolean') {
    throw new InvalidInputError([{ path: ['createRoles'], message: 'must be a boolean (or left out)' }]);
  }
  if (!Number.isInteger(toVersion) || toVersion < 0 || toVersion > READ_MODEL_MIGRATIONS.length) {
    throw new InvalidInputError([{ path: ['toVersion'], message: `must be an integer in 0..${READ_MODEL_MIGRATIONS.length}` }]);
  }
  return runMigrations({
    ...rest,
    roles,
    schema: SCHEMA,
    historyTable: READ_MODEL_HISTORY_TABLE,
    migrations: READ_MODEL_MIGRATIONS.slice(0, toVersion),
    packageName: '@ledgerkit/projections',
  });
}

/** `roles` as given, once checked: an object of two different role names, each matching `SQL_NAME_PATTERN`. */
function checkRoleNames(roles: unknown): RoleNames {
  requireObjectWith(roles, 'roles', []);
  const names = roles as Record<string, unknown>;
  for (const role of ['owner', 'app']) {
    const name = names[role];
    if (typeof name !== 'string' || !SQL_NAME_PATTERN.test(name)) {
      throw new InvalidInputError([{ path: ['roles', role], message: `must be a role name matching ${SQL_NAME_PATTERN.source}` }]);
    }
  }
  if (names['owner'] === names['app']) throw new InvalidInputError([{ path: ['roles', 'app'], message: 'must differ from the owner role' }]);
  return roles as RoleNames;
}
