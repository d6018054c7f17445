import { checkOutClient, type ClientPool } from '@ledgerkit/tenant-rls';
import type { Notification } from 'pg';
import type { PoolClient } from 'pg';
import { checkApplicationRole } from './role-check.js';

/**
 * Receives what the session hears: the payload of a NOTIFY on its channel (a tenant id, or `''`
 * for "any tenant"; anyone who can connect can send one, so it is only a hint), or `null` when the
 * session itself connected or was lost (appends may have gone unheard, locks may be gone: every
 * projection looks at once).
 */
export type WakeListener = (payload: string | null) => void;

/**
 * Longest wait for the session's answer to a check (or to any of its statements) before the
 * connection is taken for dead: one whose server side is gone with no word to this side (a NAT or
 * a load balancer that forgot an idle connection) otherwise hangs for as long as TCP lets it, while
 * another runner holds the locks this one still claims and nothing it LISTENs for arrives.
 */
export const SESSION_ANSWER_MS_MAX = 5_000;

/**
 * The runner's one dedicated connection: it holds the session-level advisory locks that make a
 * runner the single active one for a (projection, tenant), and LISTENs for appends. Session locks
 * die with the connection, so when this process dies, or the connection breaks, another runner
 * can take over; this side then stops at once (its held set empties) and reconnects.
 */
export class RunnerSession {
  readonly #pool: ClientPool;
  readonly #channel: string | undefined;
  readonly #onWake: WakeListener;
  #client: PoolClient | undefined;
  #connecting: Promise<PoolClient> | undefined;
  readonly #held = new Set<string>();
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #checkIntervalMs: number;
  /** Checks the connection now and then (see `#check`); set while there is one. */
  #checkTimer: NodeJS.Timeout | undefined;
  #checking = false;
  /** Rejects the statements waiting on the current connection when it is dropped. */
  #lost: { readonly promise: Promise<never>; readonly reject: (error: Error) => void } | undefined;

  /**
   * @param channel the NOTIFY channel to LISTEN on, or `undefined` to only poll.
   * @param checkIntervalMs how often the connection is checked for an answer, ms.
   */
  constructor(pool: ClientPool, channel: string | undefined, onWake: WakeListener, checkIntervalMs: number) {
    this.#pool = pool;
    this.#channel = channel;
    this.#onWake = onWake;
    this.#checkIntervalMs = checkIntervalMs;
  }

  /** Whether this session holds the lock named `key` right now. */
  holds(key: string): boolean {
    return this.#held.has(key);
  }

  /** Takes the lock named `key` if no other session holds it; never waits. */
  async tryLock(key: string): Promise<boolean> {
    if (this.#held.has(key)) return true;
    const client = await this.#connect();
    const rows = await this.#query<{ locked: boolean }>(client, 'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked', [key]);
    // The connection may have broken while the answer was on its way.
    if (rows[0]?.locked === true && this.#client === client) {
      this.#held.add(key);
      return true;
    }
    return false;
  }

  /**
   * Connects (and LISTENs) now rather than at the first lock: for a runner that has no tenant yet
   * but listens for new ones. Rejects with `ApplicationRoleRequiredError` when the pool's role
   * escapes row-level security (as every connect does).
   */
  async open(): Promise<void> {
    await this.#connect();
  }

  /** Releases the lock named `key`, if held. */
  async unlock(key: string): Promise<void> {
    if (!this.#held.delete(key)) return;
    const client = this.#client;
    if (client !== undefined) await this.#query(client, 'SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]);
  }

  /**
   * One statement at a time on the session: its workers ask concurrently. Rejects when the
   * connection is dropped meanwhile, and drops it when no answer comes within
   * {@link SESSION_ANSWER_MS_MAX}.
   */
  #query<R extends object>(client: PoolClient, text: string, values: readonly unknown[]): Promise<R[]> {
    const lost = this.#client === client ? this.#lost?.promise : undefined;
    const run = this.#tail.then(async () => {
      const timer = setTimeout(() => this.#drop(client, new Error(`the runner session did not answer within ${SESSION_ANSWER_MS_MAX} ms`)), SESSION_ANSWER_MS_MAX);
      try {
        const query = client.query<R>(text, [...values]);
        return (await (lost === undefined ? query : Promise.race([query, lost]))).rows;
      } finally {
        clearTimeout(timer);
      }
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Asks the connection for an answer: a dead one is dropped (see `#query`), so its locks are no longer claimed. */
  #check(client: PoolClient): void {
    if (this.#checking || this.#client !== client) return;
    this.#checking = true;
    this.#query(client, 'SELECT 1', [])
      .catch(() => undefined)
      .finally(() => {
        this.#checking = false;
      });
  }

  /** Ends the session: its connection is destroyed, not pooled, so no lock or LISTEN outlives it. */
  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#drop(client, new Error('runner session closed'));
  }

  async #connect(): Promise<PoolClient> {
    if (this.#closed) throw new Error('runner session closed');
    if (this.#client !== undefined) return this.#client;
    this.#connecting ??= this.#open().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #open(): Promise<PoolClient> {
    // Listening from the moment it is handed out (see checkOutClient): a late 'error' crashes nothing.
    const client = await checkOutClient(this.#pool, (error, failed) => this.#drop(failed, error));
    client.on('notification', (message: Notification) => {
      if (message.channel === this.#channel) this.#onWake(message.payload ?? '');
    });
    try {
      // Before anything else (the locks gate every batch): a role that escapes row-level
      // security is refused (ApplicationRoleRequiredError), once per pool that passes.
      await checkApplicationRole(this.#pool, client);
      if (this.#channel !== undefined) await client.query(`LISTEN "${this.#channel}"`);
    } catch (error) {
      this.#drop(client, error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    if (this.#closed) {
      this.#drop(client, new Error('runner session closed'));
      throw new Error('runner session closed');
    }
    this.#client = client;
    let reject: (error: Error) => void = () => undefined;
    const promise = new Promise<never>((_, rejectLost) => {
      reject = rejectLost;
    });
    promise.catch(() => undefined);
    this.#lost = { promise, reject };
    this.#checkTimer = setInterval(() => this.#check(client), this.#checkIntervalMs);
    this.#checkTimer.unref();
    // Appends made while no one listened went unheard: everyone reads once.
    this.#onWake(null);
    return client;
  }

  /** Forgets a broken or closed connection and everything it held; wakes every worker to notice when it was the session in use. */
  #drop(client: PoolClient | undefined, reason: Error): void {
    if (client === undefined) return;
    const current = this.#client === client;
    if (current) {
      this.#client = undefined;
      this.#held.clear();
      clearInterval(this.#checkTimer);
      this.#checkTimer = undefined;
      this.#lost?.reject(reason);
      this.#lost = undefined;
    }
    client.removeAllListeners('notification');
    client.removeAllListeners('error');
    // A dropped client's late 'error' must not crash the process.
    client.on('error', () => undefined);
    try {
      client.release(reason);
    } catch {
      // Already released: a second error on the same connection.
    }
    // Only for the session in use: one that failed while opening rejected its caller, and a wake
    // would only have that caller try again at once, without its back-off.
    if (current) this.#onWake(null);
  }
}
