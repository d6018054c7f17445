import { randomBytes } from 'node:crypto';
import pg from 'pg';
// The embedded server lives in store-postgres (the package that ships it to the demo); these
// tests only borrow it, so tenant-rls itself keeps depending on pg alone.
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';

/** An empty database of its own for one test file, on DATABASE_URL's server or an embedded one. */
export interface ScratchDatabase {
  /** Superuser, on this database. */
  readonly adminUrl: string;
  /** A random suffix to name this file's roles with (roles are cluster-wide). */
  readonly suffix: string;
  /** A pool that is closed by `close()`; `max` defaults to 4. */
  pool(connectionString: string, max?: number): pg.Pool;
  /** Ends the pools, drops the database and the named roles, stops an embedded server. */
  close(rolesToDrop: readonly string[]): Promise<void>;
}

export async function openScratchDatabase(): Promise<ScratchDatabase> {
  const embedded: EmbeddedPostgresServer | undefined = process.env['DATABASE_URL'] ? undefined : await startEmbeddedPostgres({ fast: true });
  const serverUrl = process.env['DATABASE_URL'] ?? (embedded as EmbeddedPostgresServer).connectionString;
  const suffix = randomBytes(5).toString('hex');
  const name = `lk_rls_${suffix}`;
  try {
    const maintenance = new pg.Client({ connectionString: serverUrl });
    await maintenance.connect();
    await maintenance.query(`CREATE DATABASE ${name}`).finally(() => maintenance.end());
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
  const adminUrl = new URL(serverUrl);
  adminUrl.pathname = `/${name}`;
  const pools: pg.Pool[] = [];
  return {
    adminUrl: adminUrl.toString(),
    suffix,
    pool: (connectionString, max = 4) => {
      const pool = new pg.Pool({ connectionString, max });
      pool.on('error', () => undefined);
      pools.push(pool);
      return pool;
    },
    close: async (rolesToDrop) => {
      await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        // pool.end() resolves before the sockets close; let them go before forcing the rest out.
      for (let polls = 0; polls < 100; polls += 1) {
        const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
        if (rows[0]?.n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        // Quoted: a role may be named like a keyword ("order").
        for (const role of rolesToDrop) await client.query(`DROP ROLE IF EXISTS "${role}"`);
      } finally {
        await client.end();
        await embedded?.stop();
      }
    },
  };
}

/** The same URL with another user and password. */
export function asUser(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}
