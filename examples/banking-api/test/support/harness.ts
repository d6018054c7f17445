/**
 * End-to-end harness: a database of its own for each test file (on the server at DATABASE_URL
 * when set, else on an embedded server started for the file), every schema migrated with role
 * names unique to the file, the API listening on a free port over real HTTP, and helpers to mint
 * tokens and send requests. `close()` shuts the API down, drops the database and its roles.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { migrateReadModels } from '@ledgerkit/projections';
import { migrate, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import type { RoleNames } from '@ledgerkit/tenant-rls';
import pg from 'pg';
import type { ApiSettings } from '../../src/config.js';
import { prepareDatabase } from '../../src/database.js';
import { migrateBankingApi } from '../../src/migrations.js';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER, generateDevKeys, mintToken, type DevKeys, type MintTokenOptions } from '../../src/dev-tokens.js';
import { createLogger } from '../../src/logger.js';
import { createBankingApi, type BankingApi, type BankingApiOptions } from '../../src/server.js';
import type { Scope, TokenVerifierOptions } from '../../src/auth.js';

/** Every scope, for tokens that may do anything. */
export const ALL_SCOPES: readonly Scope[] = ['accounts:read', 'accounts:write', 'transfers:write', 'audit:read'];

/** A database for one test file. */
export interface TestDatabase {
  readonly adminUrl: string;
  readonly appUrl: string;
  readonly roles: RoleNames;
  /** Superuser pool on the file's database (bypasses RLS: for checks only). */
  readonly admin: pg.Pool;
  close(): Promise<void>;
}

/**
 * Creates and migrates a database of its own. `readModelsTo: n` applies the read-model migrations
 * 1..n only (every other schema is current), as a database the read models of an older release
 * left behind.
 */
export async function openTestDatabase(options: { readonly readModelsTo?: number } = {}): Promise<TestDatabase> {
  const embedded: EmbeddedPostgresServer | undefined = process.env['DATABASE_URL'] ? undefined : await startEmbeddedPostgres({ fast: true });
  const serverUrl = process.env['DATABASE_URL'] ?? (embedded as EmbeddedPostgresServer).connectionString;
  const suffix = randomBytes(5).toString('hex');
  const name = `lk_api_${suffix}`;
  const roles: RoleNames = { owner: `lk_${suffix}_owner`, app: `lk_${suffix}_app` };
  const adminUrl = withDatabase(serverUrl, name);
  const maintenance = new pg.Client({ connectionString: serverUrl });
  await maintenance.connect();
  try {
    await maintenance.query(`CREATE DATABASE ${name}`);
  } finally {
    await maintenance.end();
  }
  let admin: pg.Pool | undefined;
  const close = async (): Promise<void> => {
    await admin?.end().catch(() => undefined);
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.query(`DROP ROLE IF EXISTS ${roles.app}`);
      await client.query(`DROP ROLE IF EXISTS ${roles.owner}`);
    } finally {
      await client.end();
      await embedded?.stop();
    }
  };
  try {
    const appPassword = randomBytes(12).toString('hex');
    let appUrl: string;
    if (options.readModelsTo === undefined) {
      ({ appUrl } = await prepareDatabase({ adminUrl, appPassword, roles }));
      admin = new pg.Pool({ connectionString: adminUrl, max: 2 });
      admin.on('error', () => undefined);
    } else {
      admin = new pg.Pool({ connectionString: adminUrl, max: 2 });
      admin.on('error', () => undefined);
      await migrate({ pool: admin, roles, appPassword });
      await migrateReadModels({ pool: admin, roles, toVersion: options.readModelsTo });
      await migrateBankingApi({ pool: admin, roles });
      const url = new URL(adminUrl);
      url.username = roles.app;
      url.password = appPassword;
      appUrl = url.toString();
    }
    return { adminUrl, appUrl, roles, admin, close };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}

/** An API under test. */
export interface TestApi {
  readonly api: BankingApi;
  readonly url: string;
  readonly keys: DevKeys;
  /** Every log line the API wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The raw log text. */
  logText(): string;
  /** A token for `tenantId` with `scopes` (default all). */
  token(tenantId: string, scopes?: readonly Scope[], options?: Partial<MintTokenOptions>): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts the API on `db` with test settings (responses checked against their schemas; no rate
 * limit unless given); `auth` overrides token verification options (the key stays the test's own).
 */
export async function startTestApi(
  db: TestDatabase,
  settings: Partial<ApiSettings> = {},
  auth: Partial<Omit<TokenVerifierOptions, 'key'>> = {},
  options: Pick<BankingApiOptions, 'rateLimitClockMs' | 'readinessClockMs'> = {},
): Promise<TestApi> {
  const keys = await generateDevKeys();
  const logs: Record<string, unknown>[] = [];
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const lines = chunk.toString('utf8');
      text += lines;
      for (const line of lines.split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const api = await createBankingApi({
    databaseUrl: db.appUrl,
    poolSize: 8,
    auth: { issuer: DEV_ISSUER, audience: DEFAULT_AUDIENCE, algorithms: [DEV_ALGORITHM], ...auth, key: keys.publicKey },
    settings: { validateResponses: true, rateLimitPerSecond: 0, tenantsMax: 16, ...settings },
    logger: createLogger({ level: 'info', destination }),
    ...options,
  });
  const url = await api.listen({ port: 0 });
  return {
    api,
    url,
    keys,
    logs,
    logText: () => text,
    token: (tenantId, scopes = ALL_SCOPES, options = {}) => mintToken(keys, { tenantId, scopes, subject: `client-of-${tenantId}`, ...options }),
    close: () => api.close(),
  };
}

/** An HTTP answer with its body parsed as JSON (when it is JSON). */
export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
  readonly text: string;
}

/** Options of {@link call}. */
export interface CallOptions {
  readonly token?: string;
  /** JSON-encoded unless `raw` is given. */
  readonly body?: unknown;
  /** Sent as is (text as UTF-8). */
  readonly raw?: string | Uint8Array;
  /** `Idempotency-Key`: a fresh one for every POST unless given (`null`: none). */
  readonly key?: string | null;
  readonly headers?: Record<string, string>;
}

/** Sends one request over HTTP. */
export async function call(base: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  let payload: string | Uint8Array | undefined;
  if (options.raw !== undefined) payload = options.raw;
  else if (options.body !== undefined) payload = JSON.stringify(options.body);
  if (payload !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  if (method === 'POST' && options.key !== null) headers['idempotency-key'] = options.key ?? randomUUID();
  const response = await fetch(`${base}${path}`, { method, headers, ...(payload === undefined ? {} : { body: payload }) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: response.status, headers: response.headers, body, text };
}

/** A client bound to a base URL and token. */
export function client(base: string, token: string, ledgerId?: string) {
  const headers = ledgerId === undefined ? {} : { 'ledger-id': ledgerId };
  return {
    get: (path: string, options: CallOptions = {}) => call(base, 'GET', path, { token, ...options, headers: { ...headers, ...options.headers } }),
    post: (path: string, body?: unknown, options: CallOptions = {}) => call(base, 'POST', path, { token, body, ...options, headers: { ...headers, ...options.headers } }),
  };
}

/** Retries `check` until it stops throwing (read models trail the log by a few ms). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
