/**
 * One embedded PostgreSQL per test worker for the whole run when DATABASE_URL is unset (see
 * vitest.workers.ts): every test file then makes and drops its own database on its worker's
 * server, as on a server given by DATABASE_URL, instead of starting a server of its own (a few
 * seconds each, most of the suite's set-up time). Tests that need a server to themselves
 * (restarting it, killing it) still start their own.
 *
 * The server skips fsync and full-page writes (a test server's data is thrown away) but keeps
 * synchronous_commit on. The benchmark suite's output test does not measure on it: the suite
 * refuses a server without fsync, so that test starts a durable embedded server of its own.
 */
import { createRequire } from 'node:module';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from './packages/store-postgres/src/embedded.js';
import { testWorkers, WORKER_DATABASE_URLS } from './vitest.workers.js';

/** The part of pg's client used here. */
interface SetupClient {
  connect(): Promise<void>;
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
}

// pg as the store resolves it (the workspace root does not depend on it).
const pg = createRequire(new URL('./packages/store-postgres/package.json', import.meta.url))('pg') as { Client: new (config: { connectionString: string }) => SetupClient };

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env['DATABASE_URL'] !== undefined && process.env['DATABASE_URL'] !== '') return undefined;
  const started = await Promise.allSettled(Array.from({ length: testWorkers() }, () => startTestServer()));
  const servers = started.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  const failed = started.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed !== undefined) {
    await Promise.allSettled(servers.map((server) => server.stop()));
    throw failed.reason;
  }
  process.env[WORKER_DATABASE_URLS] = JSON.stringify(servers.map((server) => server.connectionString));
  return async () => {
    delete process.env[WORKER_DATABASE_URLS];
    await Promise.allSettled(servers.map((server) => server.stop()));
  };
}

/** An embedded server without fsync and with synchronous_commit on. */
async function startTestServer(): Promise<EmbeddedPostgresServer> {
  // Not `fast`: its command-line settings would override synchronous_commit below.
  const server = await startEmbeddedPostgres();
  const client = new pg.Client({ connectionString: server.connectionString });
  try {
    await client.connect();
    await client.query('ALTER SYSTEM SET fsync = off');
    await client.query('ALTER SYSTEM SET full_page_writes = off');
    await client.query('SELECT pg_reload_conf()');
  } catch (error) {
    await server.stop();
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
  return server;
}
