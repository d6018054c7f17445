import { withPooledClient, type ClientPool } from '@ledgerkit/tenant-rls';
import type { PoolClient } from 'pg';
import { ApplicationRoleRequiredError, ReadModelSchemaVersionError } from './errors.js';
import { SCHEMA } from './schema.js';
import { checkReadModelSchemaVersion } from './schema-version.js';

/**
 * The role check of `PostgresEventStore.open`: whether the connected role escapes row-level
 * security (superuser or BYPASSRLS), and whether it owns (or is a member of the owner of) a
 * table of the schema, which lets it turn the policies off.
 */
const ROLE_CHECK_SQL = `SELECT current_user AS role, r.rolsuper OR r.rolbypassrls AS bypasses_rls,
    EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = '${SCHEMA}')
            AND pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER')) AS owns_tables
  FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`;

/** Pools whose role passed the check: each is checked once per process. */
const checkedPools = new WeakSet<ClientPool>();

/** Whether `pool`'s role has passed {@link checkApplicationRole} already (no query needed). */
export function isRoleChecked(pool: ClientPool): boolean {
  return checkedPools.has(pool);
}

/**
 * Checks, on `client` (a connection of `pool`), that the role is subject to row-level security,
 * then that the read models are at the version this release needs, and remembers a pool that
 * passed so that it is not checked again. Throws {@link ApplicationRoleRequiredError} for a role
 * that is not, {@link ReadModelSchemaVersionError} for read models at another version; a refused
 * pool is checked again next time (the role may have been fixed, the read models migrated).
 */
export async function checkApplicationRole(pool: ClientPool, client: PoolClient): Promise<void> {
  if (checkedPools.has(pool)) return;
  const { rows } = await client.query<{ role: string; bypasses_rls: boolean; owns_tables: boolean }>(ROLE_CHECK_SQL);
  const row = rows[0];
  if (row === undefined) throw new Error('the connected role is not in pg_roles');
  if (row.bypasses_rls) throw new ApplicationRoleRequiredError(row.role, 'bypasses_rls');
  if (row.owns_tables) throw new ApplicationRoleRequiredError(row.role, 'owns_tables');
  await checkReadModelSchemaVersion(client);
  checkedPools.add(pool);
}

/** {@link checkApplicationRole} on a connection of its own, unless the pool passed already. */
export async function checkPoolRole(pool: ClientPool): Promise<void> {
  if (checkedPools.has(pool)) return;
  // A refusal leaves the connection fine; anything else may not have.
  await withPooledClient(pool, (client) => checkApplicationRole(pool, client), {
    keepAfter: (error) => error instanceof ApplicationRoleRequiredError || error instanceof ReadModelSchemaVersionError,
  });
}
