import type { PoolClient } from 'pg';
import type { ClientPool } from './with-tenant.js';

/** Options of {@link withPooledClient}. */
export interface PooledClientOptions {
  /**
   * Whether the connection may go back to the pool after `fn` threw `error` (a statement the
   * server refused leaves it usable). Default: never, which is always safe; a connection that
   * emitted `'error'` (its server or socket is gone) is dropped whatever this says.
   */
  readonly keepAfter?: (error: unknown) => boolean;
}

/**
 * Runs `fn` with a connection of `pool`, outside any transaction of this function's, and gives it
 * back. While the connection is checked out nobody else listens for its `'error'` event, which
 * node-postgres raises when the server goes away (a restart, a failover, a killed session) even
 * with a query in flight: unheard, that event crashes the process. This listens, and a connection
 * that raised it, or after which `fn` threw (see `keepAfter`), is dropped, not pooled again.
 *
 * ```ts
 * const rows = await withPooledClient(pool, async (client) => (await client.query('SELECT 1')).rows);
 * ```
 */
export async function withPooledClient<T>(pool: ClientPool, fn: (client: PoolClient) => Promise<T>, options: PooledClientOptions = {}): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error): void => {
    broken = error;
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (error) {
    if (options.keepAfter?.(error) !== true) broken ??= error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}
