import pg from 'pg';
import type { TestDatabase } from './test-database.js';

/**
 * Login roles a test makes to show a pool is refused: one with BYPASSRLS (and the application
 * role's grants), or a member of the tables' owner. `close()` ends their pools and drops them.
 */
export class ExtraRoles {
  readonly #db: TestDatabase;
  readonly #roles: string[] = [];
  readonly #pools: pg.Pool[] = [];

  constructor(db: TestDatabase) {
    this.#db = db;
  }

  /** A pool logging in as a new role of that kind. */
  async pool(kind: 'bypassrls' | 'owner-member'): Promise<pg.Pool> {
    const role = `${this.#db.roles.app}_${kind === 'bypassrls' ? 'byp' : 'own'}`;
    const password = 'extra-role-pw';
    this.#roles.push(role);
    await this.#db.admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'${kind === 'bypassrls' ? ' BYPASSRLS' : ''}`);
    await this.#db.admin.query(`GRANT ${kind === 'bypassrls' ? this.#db.roles.app : this.#db.roles.owner} TO ${role}`);
    const url = new URL(this.#db.appUrl);
    url.username = role;
    url.password = password;
    const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
    pool.on('error', () => undefined);
    this.#pools.push(pool);
    return pool;
  }

  /** Ends the pools and drops the roles. */
  async close(): Promise<void> {
    await Promise.all(this.#pools.map((pool) => pool.end().catch(() => undefined)));
    for (const role of this.#roles) await this.#db.admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  }
}
