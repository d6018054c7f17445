/**
 * Wires the API together: connection pools, the event store with its inline read-model hooks,
 * the writer registry, read models, idempotency keys, audit sink, token verifier and rate
 * limiter; and takes it all down again in order on shutdown.
 */
import { CurrencyRegistry, type AppendRequest } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, inlineBalances, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type { Logger } from 'pino';
import type { PoolClient } from 'pg';
import { AccountDirectory, accountDirectoryProjection, inlineAccountDirectory } from './account-directory.js';
import { buildApp } from './app.js';
import { AuditSink, type AuditStats } from './audit.js';
import { TokenVerifier, type TokenVerifierOptions } from './auth.js';
import { resolveSettings, type ApiSettings } from './config.js';
import { IdempotencyStore } from './idempotency.js';
import { LedgerRegistry } from './ledgers.js';
import { createLogger } from './logger.js';
import type { OpenApiInfo } from './openapi.js';
import { RateLimiter } from './rate-limiter.js';
import type { CheckResult, Services } from './services.js';

/** Options of {@link createBankingApi}. */
export interface BankingApiOptions {
  /**
   * Connection string of the application role (no superuser, no BYPASSRLS: the store refuses
   * one). The schemas must be migrated (`migrate`, `migrateReadModels`, `migrateBankingApi`).
   */
  readonly databaseUrl: string;
  /** Connections for requests and writers: 2..200, default 16. */
  readonly poolSize?: number;
  /** Token verification: issuer, audience, key. */
  readonly auth: TokenVerifierOptions;
  readonly settings?: Partial<ApiSettings>;
  /** Default: pino to stdout at `info`. */
  readonly logger?: Logger;
  /** Currencies the ledgers accept; default ISO 4217. */
  readonly currencies?: CurrencyRegistry;
  /** Overrides of the OpenAPI document's info. */
  readonly openApi?: Partial<OpenApiInfo>;
}

/** A running (or ready to run) API. */
export interface BankingApi {
  readonly app: FastifyInstance;
  readonly settings: ApiSettings;
  /** The writers and runners, for tools and tests (e.g. to check a ledger's invariants). */
  readonly ledgers: LedgerRegistry;
  readonly logger: Logger;
  /** Starts listening; resolves with the base URL, e.g. `http://127.0.0.1:8080`. */
  listen(options: { port: number; host?: string }): Promise<string>;
  /** Audit sink counters. */
  auditStats(): AuditStats;
  /**
   * Graceful shutdown: readiness goes 503, the server stops accepting and finishes requests in
   * flight, the writers drain their queues, idempotent answers and audit events are written,
   * the projection runners stop, the pools close. Bounded by `shutdownTimeoutMs`. Idempotent.
   */
  close(): Promise<void>;
}

/** Creates the API (not yet listening). */
export async function createBankingApi(options: BankingApiOptions): Promise<BankingApi> {
  const settings = resolveSettings(options.settings);
  const logger = options.logger ?? createLogger();
  const currencies = options.currencies ?? new CurrencyRegistry();
  const poolSize = options.poolSize ?? 16;
  if (!Number.isInteger(poolSize) || poolSize < 2 || poolSize > 200) throw new RangeError('poolSize must be an integer in 2..200');
  const poolConfig = {
    connectionString: options.databaseUrl,
    connectionTimeoutMillis: 5_000,
    statement_timeout: 30_000,
    idle_in_transaction_session_timeout: 60_000,
  };
  const appPool = new pg.Pool({ ...poolConfig, max: poolSize });
  // Each tenant's projection runner keeps one connection for its session, plus its batches.
  const runnerPool = new pg.Pool({ ...poolConfig, max: settings.tenantsMax + 4 });
  for (const pool of [appPool, runnerPool]) pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection failed'));

  try {
    const balances = inlineBalances({ currencies });
    const directoryHook = inlineAccountDirectory(currencies);
    const store = await PostgresEventStore.open({
      pool: appPool,
      inline: async (client: PoolClient, append: AppendRequest) => {
        await balances(client, append);
        await directoryHook(client, append);
      },
    });
    const ledgers = new LedgerRegistry({
      store,
      runnerPool,
      currencies,
      tenantsMax: settings.tenantsMax,
      ledgersMax: settings.ledgersMax,
      writerQueueLengthMax: settings.writerQueueLengthMax,
      writerBatchSizeMax: settings.writerBatchSizeMax,
      projections: () => [balancesProjection(), historyProjection(), accountDirectoryProjection()],
      onRunnerError: (error, where) => logger.warn({ err: error, projection: where.projection, tenant: where.tenantId }, 'projection error (retried)'),
    });
    const idempotency = new IdempotencyStore({ pool: appPool, ttlMs: settings.idempotencyTtlMs, leaseMs: settings.idempotencyLeaseMs });
    const audit = new AuditSink({
      pool: appPool,
      queueMax: settings.auditQueueMax,
      batchMax: settings.auditBatchMax,
      flushIntervalMs: settings.auditFlushIntervalMs,
      onProblem: (message, error) => logger.warn(error === undefined ? {} : { err: error }, message),
    });
    const services: Services = {
      settings,
      currencies,
      ledgers,
      models: new ReadModels({ pool: appPool, currencies }),
      directory: new AccountDirectory(appPool),
      readiness: async () => {
        const checks: Record<string, CheckResult> = {};
        checks['database'] = await pingDatabase(appPool);
        checks['writers'] = ledgers.health();
        checks['audit'] = audit.healthy() ? { ok: true } : { ok: false, detail: 'audit backlog near its bound' };
        return checks;
      },
    };
    const verifier = new TokenVerifier({ cacheMax: settings.tokenCacheMax, ...options.auth });
    const rateLimiter =
      settings.rateLimitPerSecond > 0
        ? new RateLimiter({ ratePerSecond: settings.rateLimitPerSecond, burst: settings.rateLimitBurst, clientsMax: settings.rateLimitClientsMax })
        : undefined;
    const built = buildApp({
      settings,
      services,
      verifier,
      rateLimiter,
      idempotency,
      audit,
      logger,
      openApi: {
        title: 'Ledgerkit banking API',
        version: '0.1.0',
        description:
          'An Open Banking style API over a Ledgerkit double-entry ledger: accounts, balances now and as of any time, statements, transfers, holds and reversals, and trial balances for auditors. Amounts are decimal strings. Errors are RFC 9457 problem documents with a stable `type`.',
        ...options.openApi,
      },
    });

    let closing: Promise<void> | undefined;
    const close = async (): Promise<void> => {
      built.markShuttingDown();
      const steps = async (): Promise<void> => {
        await built.app.close();
        await ledgers.closeWriters();
        await idempotency.close();
        await audit.close(Date.now() + settings.shutdownTimeoutMs / 2);
        await ledgers.stopRunners();
      };
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), settings.shutdownTimeoutMs);
      });
      const outcome = await Promise.race([steps().then(() => 'done' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') logger.error(`shutdown did not finish within ${settings.shutdownTimeoutMs} ms; closing the pools anyway`);
      await Promise.allSettled([appPool.end(), runnerPool.end()]);
    };

    return {
      app: built.app,
      settings,
      ledgers,
      logger,
      auditStats: () => audit.stats(),
      async listen({ port, host = '127.0.0.1' }) {
        await built.app.listen({ port, host });
        const address = built.app.server.address();
        const actualPort = typeof address === 'object' && address !== null ? address.port : port;
        return `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
      },
      close: () => (closing ??= close()),
    };
  } catch (error) {
    await Promise.allSettled([appPool.end(), runnerPool.end()]);
    throw error;
  }
}

async function pingDatabase(pool: pg.Pool): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      pool.query('SELECT 1'),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out after 2 s')), 2_000);
      }),
    ]);
    return { ok: true };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : 'unreachable' };
  } finally {
    clearTimeout(timer);
  }
}

/** Calls `api.close()` on SIGINT or SIGTERM, then exits (a second signal exits at once). */
export function closeOnSignals(api: BankingApi, onClosed: () => Promise<void> = async () => undefined): void {
  let signalled = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (signalled) process.exit(1);
    signalled = true;
    api.logger.info({ signal }, 'shutting down');
    void api
      .close()
      .then(onClosed)
      .then(
        () => process.exit(0),
        (error: unknown) => {
          api.logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
