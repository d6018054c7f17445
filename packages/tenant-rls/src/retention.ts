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
  /** Role that owns the tables; the pool's user must be a member of it. */
  readonly ownerRole: string;
}

/**
 * The maintenance path for retention: runs `fn` in a transaction as the owner role
 * (`SET LOCAL ROLE`), with the tenant set and {@link RETENTION_SETTING} on, so DELETE of that
 * tenant's rows from append-only tables is allowed. UPDATE stays impossible, other tenants stay
 * invisible, and the application role can never take this path: it is not the owner.
 */
export async function withRetention<T>(pool: ClientPool, options: WithRetentionOptions, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  assertTenantId(options.tenantId);
  return inTransaction(
    pool,
    'BEGIN',
    [
      [`SET LOCAL ROLE ${quoteName(options.ownerRole, 'owner role')}`, []],
      [`SELECT set_config('${TENANT_SETTING}', $1, true), set_config('${RETENTION_SETTING}', 'on', true)`, [options.tenantId]],
    ],
    fn,
  );
}
