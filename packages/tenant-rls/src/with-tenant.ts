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
  /**
   * Start the transaction `ISOLATION LEVEL REPEATABLE READ`: every statement in it sees the one
   * snapshot taken at its first, so a read of several statements is consistent even while other
   * transactions commit between them. Default false (`READ COMMITTED`: each statement sees what
   * was committed when it started). For writes, a concurrent update then fails with 40001.
   */
  readonly repeatableRead?: boolean;
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
 * The transaction of {@link withTenant} (or `inTransaction`) was ended inside `fn`, by a `COMMIT`
 * or `ROLLBACK` of its own (a `ROLLBACK` after a `SAVEPOINT` ends the whole transaction too): the
 * closing `COMMIT AND CHAIN` or `ROLLBACK AND CHAIN` found none in progress (SQLSTATE 25P01, an
 * error whatever `client_min_messages` says, so notices are not relied on). What `fn`
 * wrote before that may or may not have been committed, and what it ran after ran outside any
 * transaction, so the call's outcome is unknown: neither resolved as if committed nor reported as
 * rolled back. `cause` is `fn`'s own error when it threw. Use `SAVEPOINT` and `ROLLBACK TO` inside `fn`.
 */
export class TransactionEndedError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'transaction_ended';

  constructor(cause?: unknown) {
    super('the transaction was ended inside fn (a COMMIT or ROLLBACK of its own): what it wrote may or may not have been committed', cause === undefined ? undefined : { cause });
    this.name = 'TransactionEndedError';
  }
}

/**
 * SQLSTATE of a `COMMIT AND CHAIN` or `ROLLBACK AND CHAIN` with no transaction in progress: an
 * error, which the server sends whatever `client_min_messages` says (a plain `COMMIT` or
 * `ROLLBACK` only warns, and a warning may never reach the client).
 */
const NO_ACTIVE_SQL_TRANSACTION = '25P01';

/**
 * Ends the transaction with `end` (`COMMIT` or `ROLLBACK`) `AND CHAIN`, then rolls back the empty
 * transaction chained on, in one round trip, and says whether a transaction was in progress: with
 * none (`fn` ended it), the chained command fails with 25P01, and that failure also stops the
 * `ROLLBACK` after it. `command` is the first command's tag: `ROLLBACK` for the COMMIT of a
 * transaction a failed statement aborted. Any other failure rejects.
 */
async function endTransaction(client: PoolClient, end: 'COMMIT' | 'ROLLBACK'): Promise<{ readonly command: string | undefined; readonly noTransaction: boolean }> {
  try {
    // Several statements in one query: node-postgres resolves with one result per statement.
    const results: unknown = await client.query(`${end} AND CHAIN; ROLLBACK`);
    const first = (Array.isArray(results) ? results[0] : results) as { readonly command?: string } | undefined;
    return { command: first?.command, noTransaction: false };
  } catch (error) {
    if ((error as { readonly code?: unknown } | null)?.code === NO_ACTIVE_SQL_TRANSACTION) return { command: undefined, noTransaction: true };
    throw error;
  }
}

/**
 * Runs `fn` in a transaction on a pooled connection with the tenant set for that transaction
 * only (`set_config(..., true)`), then commits; if `fn` or the commit fails it rolls back and
 * rethrows; if a statement failed inside and `fn` caught its error, the COMMIT can only roll back,
 * and it rejects with {@link TransactionAbortedError} instead of resolving as if committed; if
 * `fn` ended the transaction itself (its own `COMMIT` or `ROLLBACK`), it rejects with
 * {@link TransactionEndedError}, whether `fn` returned or threw.
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
  const begin = `BEGIN${options?.repeatableRead === true ? ' ISOLATION LEVEL REPEATABLE READ' : ''}${options?.readOnly === true ? ' READ ONLY' : ''}`;
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
  let committing = false;
  return withPooledClient(
    pool,
    async (client) => {
      try {
        await client.query(begin);
        for (const [text, values] of setup) await client.query(text, [...values]);
        const result = await fn(client);
        // PostgreSQL answers the COMMIT of a transaction that a failed statement aborted with the
        // command tag ROLLBACK, not with an error; and the chained COMMIT with no transaction left
        // (fn ended it) with 25P01, told without relying on notices.
        committing = true;
        const commit = await endTransaction(client, 'COMMIT');
        if (commit.noTransaction) throw new TransactionEndedError();
        if (commit.command === 'ROLLBACK') throw new TransactionAbortedError();
        return result;
      } catch (error) {
        // A rollback that worked leaves the connection fine for the pool; one that failed does not.
        const rollback = await endTransaction(client, 'ROLLBACK').then(
          (ended) => ended,
          () => undefined,
        );
        rolledBack = rollback !== undefined;
        // fn threw after ending the transaction itself: what it wrote may be committed, so its
        // error must not read as "rolled back, nothing written". (After our own COMMIT there is
        // no transaction either: that COMMIT's outcome is the error already.)
        if (!committing && rollback?.noTransaction === true) throw new TransactionEndedError(error);
        throw error;
      }
    },
    { keepAfter: () => rolledBack },
  );
}
