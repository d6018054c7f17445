import type { PoolClient } from 'pg';
import { quoteName } from './sql.js';
import { assertTenantId } from './tenant-id.js';
import { inTransaction, TENANT_SETTING, type ClientPool } from './with-tenant.js';

/** The transaction-local setting that, for the owner role only, lets DELETE pass the append-only trigger. */
export const RETENTION_SETTING = 'ledgerkit.retention';

/** Options of {@link withRetention}. */
export interface WithRetentionOptions {
  /** Tenant whose rows the transaction may see and delete. */
  readonly tenantId: string;
  /**
   * Role that owns the tables; the pool's user must be a member of it. It must be neither a
   * superuser nor `BYPASSRLS` (the owner made by `ensureRoles` is neither), or
   * {@link RetentionRoleError} is thrown.
   */
  readonly ownerRole: string;
}

/**
 * {@link withRetention} was given an `ownerRole` that row-level security does not apply to (a
 * superuser or a `BYPASSRLS` role): it would see, and could delete, every tenant's rows. The
 * transaction was rolled back before `fn` ran.
 */
export class RetentionRoleError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'retention_role_bypasses_rls';
  /** The refused role. */
  readonly role: string;

  constructor(role: string) {
    super(`withRetention: role ${JSON.stringify(role)} is a superuser or has BYPASSRLS, so row-level security would not confine it to one tenant; use the table owner made by ensureRoles`);
    this.name = 'RetentionRoleError';
    this.role = role;
  }
}

// Run after SET LOCAL ROLE, so current_user is the role fn will run as; one round trip sets the
// tenant and the retention setting and reports whether that role escapes row-level security.
const RETENTION_SETUP_SQL = `SELECT r.rolsuper OR r.rolbypassrls AS bypasses_rls,
    pg_catalog.set_config('${TENANT_SETTING}', $1, true) AS tenant,
    pg_catalog.set_config('${RETENTION_SETTING}', 'on', true) AS retention
  FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`;

/**
 * The maintenance path for retention: runs `fn` in a transaction as the owner role
 * (`SET LOCAL ROLE`), with the tenant set and {@link RETENTION_SETTING} on, so DELETE of that
 * tenant's rows from append-only tables is allowed. UPDATE stays impossible, other tenants stay
 * invisible, and the application role can never take this path: it is not the owner.
 *
 * Other tenants stay invisible only because row-level security applies to the role: an
 * `ownerRole` that is a superuser or has `BYPASSRLS` is refused with {@link RetentionRoleError}
 * (checked after `SET LOCAL ROLE`, as the role itself), and the transaction is rolled back
 * without running `fn`. An invalid tenant id throws `InvalidTenantIdError` and a malformed role
 * name a `TypeError`, before anything is sent.
 */
export async function withRetention<T>(pool: ClientPool, options: WithRetentionOptions, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  assertTenantId(options.tenantId);
  const role = quoteName(options.ownerRole, 'owner role');
  return inTransaction(pool, 'BEGIN', [[`SET LOCAL ROLE ${role}`, []]], async (client) => {
    const { rows } = await client.query<{ bypasses_rls: boolean }>(RETENTION_SETUP_SQL, [options.tenantId]);
    // No row cannot happen once SET ROLE succeeded; refuse rather than guess.
    if (rows[0]?.bypasses_rls !== false) throw new RetentionRoleError(options.ownerRole);
    return fn(client);
  });
}
