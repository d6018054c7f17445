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
  let broken: Error | undefined;
  const onError = (error: Error): void => {
    broken = error;
  };
  const client = await checkOutClient(pool, onError);
  try {
    return await fn(client);
  } catch (error) {
    if (options.keepAfter?.(error) !== true) broken ??= error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    // Ours only: the application's own listeners (added on the pool's 'connect', say) stay, and
    // the pool attaches its idle listener again when the connection comes back.
    stopListeningForErrors(client);
    client.release(broken);
  }
}

/** The `'error'` listener {@link checkOutClient} attached to each connection it handed out. */
const ownErrorListeners = new WeakMap<PoolClient, (error: Error) => void>();

/**
 * Takes off the `'error'` listener {@link checkOutClient} attached to `client`, and only that one:
 * listeners the application put on its connections stay (removing every `'error'` listener took
 * theirs too, and a connection whose server then went away crashed the process). Call it before
 * releasing the connection. A client `checkOutClient` did not hand out is left as it is.
 */
export function stopListeningForErrors(client: PoolClient): void {
  const listener = ownErrorListeners.get(client);
  if (listener === undefined) return;
  client.off('error', listener);
  ownErrorListeners.delete(client);
}

/** node-postgres' `Pool.connect` with a callback, as `pg.Pool` (pg-pool) offers it besides the promise. */
type CallbackConnect = (callback: (error: Error | undefined, client: PoolClient | undefined) => void) => void;

/**
 * Checks a connection out of `pool` with `onError` listening for its `'error'` event from the
 * moment it is handed out (the caller takes that listener off with
 * {@link stopListeningForErrors} before releasing the connection). With a promise,
 * the listener could only be attached a turn later, and a server that ends the session right as
 * it starts sends its last message in the same packet as the one that completes the connection:
 * node-postgres then raises `'error'` in between, with nobody listening, and the process crashes
 * (seen under load with sessions killed). So `pg.Pool`'s callback form is used, which hands the
 * connection out synchronously; a pool without it (a test double) is asked for the promise.
 */
export function checkOutClient(pool: ClientPool, onError: (error: Error, client: PoolClient) => void): Promise<PoolClient> {
  const listen = (client: PoolClient): void => {
    const listener = (error: Error): void => onError(error, client);
    client.on('error', listener);
    ownErrorListeners.set(client, listener);
  };
  if (pool.connect.length === 0) {
    return pool.connect().then((client) => {
      listen(client);
      return client;
    });
  }
  return new Promise((resolve, reject) => {
    (pool.connect as unknown as CallbackConnect).call(pool, (error, client) => {
      if (error !== undefined && error !== null) reject(error);
      else if (client === undefined) reject(new Error('the pool handed out no connection'));
      else {
        listen(client);
        resolve(client);
      }
    });
  });
}
