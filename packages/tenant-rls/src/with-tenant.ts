import type { PoolClient } from 'pg';
import { withPooledClient } from './pooled-client.js';
import { quoteLiteral } from './sql.js';
import { assertTenantId } from './tenant-id.js';

/** The setting row-level security policies read the current tenant from. */
export const TENANT_SETTING = 'ledgerkit.tenant_id';

/** What {@link withTenant} needs of a pool: `pg.Pool` fits. */
export interface ClientPool {
  connect(): Promise<PoolClient>;
}

/** Options of {@link withTenant}. */
export interface WithTenantOptions {
  /** Start the transaction `READ ONLY`: the database then refuses any write. Default false. */
  readonly readOnly?: boolean;
}

/**
 * The transaction of {@link withTenant} was rolled back at its COMMIT, because a statement in it
 * had failed and `fn` caught that statement's error and returned normally: PostgreSQL answers the
 * COMMIT of an aborted transaction with a rollback, not an error. Nothing the transaction wrote
 * was kept. Let statement errors propagate, or recover from them with a `SAVEPOINT`.
 */
export class TransactionAbortedError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'transaction_aborted';

  constructor() {
    super('the transaction was rolled back at COMMIT: a statement in it failed and its error was caught inside fn, so nothing it wrote was kept');
    this.name = 'TransactionAbortedError';
  }
}

/**
 * Runs `fn` in a transaction on a pooled connection with the tenant set for that transaction
 * only (`set_config(..., true)`), then commits; if `fn` or the commit fails it rolls back and
 * rethrows; if a statement failed inside and `fn` caught its error, the COMMIT can only roll back,
 * and it rejects with {@link TransactionAbortedError} instead of resolving as if committed.
 * Because the setting ends with the transaction, a connection returned to the pool carries no
 * tenant into its next use. The tenant id is validated before anything is sent.
 *
 * ```ts
 * const rows = await withTenant(pool, 'acme', (client) => client.query('SELECT * FROM ledgerkit.events'));
 * ```
 */
export async function withTenant<T>(pool: ClientPool, tenantId: string, fn: (client: PoolClient) => Promise<T>, options?: WithTenantOptions): Promise<T> {
  assertTenantId(tenantId);
  // One round trip for both: a parameterless query may hold several statements (the simple
  // protocol), and a valid tenant id holds no quote, backslash or semicolon, so it is quoted safely.
  const begin = options?.readOnly === true ? 'BEGIN READ ONLY' : 'BEGIN';
  return inTransaction(pool, `${begin}; SELECT set_config('${TENANT_SETTING}', ${quoteLiteral(tenantId)}, true)`, [], fn);
}

/** A statement and its parameters. */
export type Statement = readonly [text: string, values: readonly unknown[]];

/**
 * Runs `setup` then `fn` in one transaction on a pooled connection. `begin` starts the
 * transaction: `BEGIN`, or `BEGIN` followed by parameterless statements separated by `;`, sent
 * in one round trip. A COMMIT that rolled back rejects with {@link TransactionAbortedError}. A
 * connection whose rollback failed (it was killed, or the network broke) is destroyed, not
 * returned to the pool.
 */
export async function inTransaction<T>(pool: ClientPool, begin: string, setup: readonly Statement[], fn: (client: PoolClient) => Promise<T>): Promise<T> {
  let rolledBack = false;
  return withPooledClient(
    pool,
    async (client) => {
      try {
        await client.query(begin);
        for (const [text, values] of setup) await client.query(text, [...values]);
        const result = await fn(client);
        // PostgreSQL answers the COMMIT of a transaction that a failed statement aborted with the
        // command tag ROLLBACK, not with an error.
        const commit = await client.query('COMMIT');
        if (commit?.command === 'ROLLBACK') throw new TransactionAbortedError();
        return result;
      } catch (error) {
        // A rollback that worked leaves the connection fine for the pool; one that failed does not.
        rolledBack = await client.query('ROLLBACK').then(
          () => true,
          () => false,
        );
        throw error;
      }
    },
    { keepAfter: () => rolledBack },
  );
}
