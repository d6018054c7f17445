/**
 * A throwaway PostgreSQL database for one benchmark run: on the server at `DATABASE_URL` when
 * set, else on an embedded server with its durable defaults (never the tests' fast mode). The
 * database and the roles get random names, the schema is migrated as on any deployment, and the
 * scenarios connect as the application role. {@link BenchDatabase.close} drops everything.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate, SCHEMA_VERSION, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';

/** The server a run measured, as its application connections see it. */
export interface PostgresServerInfo {
  /** `embedded` (started for the run) or `DATABASE_URL`; the URL itself is not reported, it may hold a password. */
  readonly source: 'embedded' | 'DATABASE_URL';
  /** `SELECT version()`. */
  readonly version: string;
  /** `server_version_num`, e.g. 150020. */
  readonly serverVersionNum: number;
  /** Must be `on`: the figure is for durable commits, so the run refuses anything else. */
  readonly synchronousCommit: string;
  /** Must be `on`: `off` would make every commit free and the figures meaningless, so the run refuses it. */
  readonly fsync: string;
  /** Must be `on` (torn-page protection is part of a durable commit's cost); the run refuses `off`. */
  readonly fullPageWrites: string;
  readonly walSyncMethod: string;
  readonly sharedBuffers: string;
  /** The run's database (random name), dropped at the end of the run. */
  readonly database: string;
  /** Version of the Ledgerkit schema `migrate()` created. */
  readonly ledgerkitSchemaVersion: number;
}

/** An open benchmark database. */
export interface BenchDatabase {
  readonly info: PostgresServerInfo;
  /** The application role (no BYPASSRLS, owns nothing), as `PostgresEventStore` requires. */
  readonly app: pg.Pool;
  /** A superuser on the run's database, for setup outside the timed region only. */
  readonly admin: pg.Pool;
  /** The superuser's connection string to the run's database, for a peer that creates its own schema (Emmett). */
  readonly adminUrl: string;
  /** Ends the pools, drops the database and the roles, stops an embedded server. Safe to call twice. */
  close(): Promise<void>;
}

/** Connections per pool: the writer keeps up to two appends in flight, plus a snapshot or lookup. */
const POOL_SIZE_MAX = 3;
/** How long `close()` waits for ended pools' sessions to leave before it forces the drop. */
const SESSIONS_DRAIN_MS_MAX = 2_000;

/**
 * Starts (or reaches) the server, creates a fresh database and roles, migrates it, connects a
 * pool as the application role and checks that commits are durable (`synchronous_commit`,
 * `fsync` and `full_page_writes` on; see {@link durabilityProblems}). On any failure it
 * cleans up what it created before rethrowing. `databaseUrl` stands in for `DATABASE_URL` (tests).
 */
export async function openBenchDatabase(options: { readonly databaseUrl?: string | undefined } = {}): Promise<BenchDatabase> {
  const databaseUrl = 'databaseUrl' in options ? options.databaseUrl : process.env['DATABASE_URL'];
  const embedded: EmbeddedPostgresServer | undefined = databaseUrl ? undefined : await startEmbeddedPostgres();
  const serverUrl = databaseUrl ?? (embedded as EmbeddedPostgresServer).connectionString;
  const suffix = randomBytes(5).toString('hex');
  // Roles are cluster-wide: names of their own keep a shared server's other roles untouched.
  const name = `lk_bench_${suffix}`;
  const roles = { owner: `lk_bench_${suffix}_owner`, app: `lk_bench_${suffix}_app` };
  const appPassword = randomBytes(18).toString('hex');
  const pools: pg.Pool[] = [];
  const makePool = (connectionString: string): pg.Pool => {
    // idleTimeoutMillis 0: a connection is never closed between rounds, so no batch pays for a new one.
    const pool = new pg.Pool({ connectionString, max: POOL_SIZE_MAX, idleTimeoutMillis: 0, types: defaultTypeParsers() });
    pool.on('error', () => undefined);
    pools.push(pool);
    return pool;
  };

  let created = false;
  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
    try {
      if (created) {
        const client = new pg.Client({ connectionString: serverUrl });
        client.on('error', () => undefined);
        await client.connect();
        try {
          await dropDatabase(client, name);
          await client.query(`DROP ROLE IF EXISTS ${roles.app}`);
          await client.query(`DROP ROLE IF EXISTS ${roles.owner}`);
        } finally {
          await client.end().catch(() => undefined);
        }
      }
    } finally {
      await embedded?.stop();
    }
  };

  try {
    const maintenance = new pg.Client({ connectionString: serverUrl });
    await maintenance.connect();
    try {
      await maintenance.query(`CREATE DATABASE ${name}`);
      created = true;
    } finally {
      await maintenance.end();
    }
    const adminUrl = withDatabase(serverUrl, name);
    const admin = makePool(adminUrl);
    await migrate({ pool: admin, roles, appPassword });
    const app = makePool(withUser(adminUrl, roles.app, appPassword));
    const info = await serverInfo(app, databaseUrl ? 'DATABASE_URL' : 'embedded', name);
    const notDurable = durabilityProblems(info);
    if (notDurable.length > 0) throw new Error(`${notDurable.join('; ')}: the benchmark measures durable commits and refuses to run`);
    return { info, app, admin, adminUrl, close: () => (closed ??= close()) };
  } catch (error) {
    await (closed ??= close()).catch(() => undefined);
    throw error;
  }
}

/**
 * What keeps the application role's commits from being durable, one sentence per setting:
 * `synchronous_commit`, `fsync` and `full_page_writes` must each be `on` (off, a commit costs
 * less than a durable one and every figure, ours and the peers', flatters itself). There is no
 * override for a custom server: such a run would not measure what the targets are stated for.
 */
export function durabilityProblems(info: Pick<PostgresServerInfo, 'synchronousCommit' | 'fsync' | 'fullPageWrites'>): string[] {
  const problems: string[] = [];
  if (info.synchronousCommit !== 'on') problems.push(`synchronous_commit is '${info.synchronousCommit}' for the application role, expected 'on'`);
  if (info.fsync !== 'on') problems.push(`fsync is '${info.fsync}' on the server, expected 'on'`);
  if (info.fullPageWrites !== 'on') problems.push(`full_page_writes is '${info.fullPageWrites}' on the server, expected 'on'`);
  return problems;
}

/**
 * node-postgres' own parsers for the types a peer's driver overrides globally (Emmett's sets
 * int8 → BigInt and its own JSON parser on `pg.types` when its pool starts): a pool created with
 * `types: defaultTypeParsers()` keeps the parsers a production deployment of the store has,
 * whatever else runs in the process. Every pool of a benchmark that can run after Emmett needs it.
 */
export function defaultTypeParsers(): pg.CustomTypesConfig {
  const overrides = new pg.TypeOverrides();
  overrides.setTypeParser(pg.types.builtins.INT8, (value: string) => value);
  overrides.setTypeParser(pg.types.builtins.JSON, (value: string): unknown => JSON.parse(value));
  overrides.setTypeParser(pg.types.builtins.JSONB, (value: string): unknown => JSON.parse(value));
  return overrides;
}

/** The settings the application role's sessions actually run with (a role or database may override the server's). */
async function serverInfo(app: pg.Pool, source: PostgresServerInfo['source'], database: string): Promise<PostgresServerInfo> {
  const { rows } = await app.query<{
    version: string;
    version_num: string;
    synchronous_commit: string;
    fsync: string;
    full_page_writes: string;
    wal_sync_method: string;
    shared_buffers: string;
  }>(`SELECT version() AS version, current_setting('server_version_num') AS version_num,
            current_setting('synchronous_commit') AS synchronous_commit, current_setting('fsync') AS fsync,
            current_setting('full_page_writes') AS full_page_writes, current_setting('wal_sync_method') AS wal_sync_method,
            current_setting('shared_buffers') AS shared_buffers`);
  const row = rows[0];
  if (row === undefined) throw new Error('the server returned no settings');
  return {
    source,
    version: row.version,
    serverVersionNum: Number(row.version_num),
    synchronousCommit: row.synchronous_commit,
    fsync: row.fsync,
    fullPageWrites: row.full_page_writes,
    walSyncMethod: row.wal_sync_method,
    sharedBuffers: row.shared_buffers,
    database,
    ledgerkitSchemaVersion: SCHEMA_VERSION,
  };
}

/** Drops the database once ended pools' sessions are gone (`pool.end()` resolves before its sockets close). */
async function dropDatabase(client: pg.Client, name: string): Promise<void> {
  const deadline = Date.now() + SESSIONS_DRAIN_MS_MAX;
  while (Date.now() < deadline) {
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
    if (rows[0]?.n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function withUser(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}
