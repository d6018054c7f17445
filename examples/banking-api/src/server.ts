/**
 * Wires the API together: connection pools, the event store with its inline read-model hooks,
 * the writer registry, read models, idempotency keys, audit sink, token verifier and rate
 * limiter; and takes it all down again in order on shutdown.
 */
import { CurrencyRegistry } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, inlineBalances, ReadModels } from '@ledgerkit/projections';
import { composeInlineProjections, PostgresEventStore } from '@ledgerkit/store-postgres';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type { Logger } from 'pino';
import { AccountDirectory, accountDirectoryProjection, inlineAccountDirectory } from './account-directory.js';
import { buildApp } from './app.js';
import { AuditSink, type AuditStats } from './audit.js';
import { TokenVerifier, type TokenVerifierOptions } from './auth.js';
import { CachedCheck } from './cached-check.js';
import { resolveSettings, type ApiSettings } from './config.js';
import { IdempotencyStore } from './idempotency.js';
import { LedgerRegistry } from './ledgers.js';
import { createLogger, safeErrorFields } from './logger.js';
import { RequestMetrics, startMetricsServer, type Family, type MetricsServer } from './metrics.js';
import type { OpenApiInfo } from './openapi.js';
import { RateLimiter } from './rate-limiter.js';
import type { CheckResult, Services } from './services.js';

/** The range of {@link BankingApiOptions.poolSize} (`DB_POOL_SIZE` of `main.ts`). */
export const POOL_SIZE_RANGE = { min: 2, max: 200 } as const;

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
  /**
   * The rate limiter's monotonic clock, in ms; default `performance.now`. For tests that must
   * decide when buckets refill.
   */
  readonly rateLimitClockMs?: () => number;
  /**
   * The monotonic clock, in ms, of the readiness probe's cached database check; default
   * `performance.now`. For tests that must decide when the check's result runs out.
   */
  readonly readinessClockMs?: () => number;
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
  /**
   * Starts the Prometheus metrics listener (`GET /metrics`) on a port of its own; resolves with
   * its URL. Keep it off the public network: it is not behind the API's tokens. Closed by `close()`.
   */
  listenMetrics(options: { port: number; host?: string }): Promise<string>;
  /** The metrics text, as the metrics listener serves it. */
  metricsText(): Promise<string>;
  /** Audit sink counters. */
  auditStats(): AuditStats;
  /**
   * Graceful shutdown: readiness goes 503, the server stops accepting and finishes requests in
   * flight, the writers drain their queues, idempotent answers and audit events are written,
   * the projection runners stop, the pools close. Bounded by `shutdownTimeoutMs`: past it, requests
   * still running are cut off and the pools get a second more. Idempotent. A `listen()` still
   * starting is waited for and closed; one called after `close()` throws.
   */
  close(): Promise<void>;
}

/** Creates the API (not yet listening). */
export async function createBankingApi(options: BankingApiOptions): Promise<BankingApi> {
  const settings = resolveSettings(options.settings);
  const logger = options.logger ?? createLogger();
  const currencies = options.currencies ?? new CurrencyRegistry();
  const poolSize = options.poolSize ?? 16;
  if (!Number.isInteger(poolSize) || poolSize < POOL_SIZE_RANGE.min || poolSize > POOL_SIZE_RANGE.max) {
    throw new RangeError(`poolSize must be an integer in ${POOL_SIZE_RANGE.min}..${POOL_SIZE_RANGE.max}`);
  }
  const poolConfig = {
    connectionString: options.databaseUrl,
    connectionTimeoutMillis: 5_000,
    statement_timeout: 30_000,
    idle_in_transaction_session_timeout: 60_000,
  };
  const appPool = new pg.Pool({ ...poolConfig, max: poolSize });
  // Each tenant's projection runner keeps one connection for its session, plus its batches.
  const runnerPool = new pg.Pool({ ...poolConfig, max: settings.tenantsMax + 4 });
  // Idempotency keys and audit events commit without waiting for the WAL flush
  // (synchronous_commit=off: visible at once, durable within a few hundred ms). Neither is the
  // ledger's truth: a key lost to a database crash makes a retry run again, and the ledger's own
  // idempotency (the transfer or account id) answers it with the original outcome; audit events
  // already wait in memory before they are written. This takes two fsync'd commits off every POST.
  const bookkeepingPool = new pg.Pool({ ...poolConfig, max: BOOKKEEPING_POOL_SIZE, options: '-c synchronous_commit=off' });
  const pools = [appPool, runnerPool, bookkeepingPool];
  for (const pool of pools) pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection failed'));

  try {
    const balances = inlineBalances({ currencies });
    const directoryHook = inlineAccountDirectory(currencies);
    // Both hooks have plans for an append of transfers, which then goes to PostgreSQL with the
    // balance writes in one round trip.
    // Checks the role and that the event store's schema is migrated: refused here, at start-up.
    const store = await PostgresEventStore.open({ pool: appPool, inline: composeInlineProjections(balances, directoryHook) });
    const models = new ReadModels({ pool: appPool, currencies });
    // Read models at another schema version than this release's: refused here, not per request.
    await models.check();
    const ledgers = new LedgerRegistry({
      store,
      runnerPool,
      currencies,
      tenantsMax: settings.tenantsMax,
      ledgersMax: settings.ledgersMax,
      ledgersPerTenantMax: settings.ledgersPerTenantMax,
      writerQueueLengthMax: settings.writerQueueLengthMax,
      writerBatchSizeMax: settings.writerBatchSizeMax,
      writerTransfersCachedBytesMax: settings.writerTransfersCachedBytesMax,
      projectionBatchDelayMs: settings.projectionBatchDelayMs,
      // The balances and the directory are kept by the inline hooks: their runners are a safety net.
      projections: () => [
        { ...balancesProjection(), liveBatchDelayMs: settings.inlineProjectionBatchDelayMs },
        historyProjection(),
        accountDirectoryProjection({ liveBatchDelayMs: settings.inlineProjectionBatchDelayMs }),
      ],
      // The error's class, codes and SQLSTATE only, as for a 5xx: a projection's error can quote
      // the rows a statement refused (account ids), and the runner's status keeps its message.
      onRunnerError: (error, where) => logger.warn({ error: safeErrorFields(error), projection: where.projection, tenant: where.tenantId }, 'projection error (a database error is retried; a failing event stops the projection: see its status)'),
      onEvictionError: (error, tenantId) => logger.warn({ error: safeErrorFields(error), tenant: tenantId }, 'idle tenant evicted: its runner or writers did not stop cleanly'),
    });
    const idempotency = new IdempotencyStore({ pool: bookkeepingPool, ttlMs: settings.idempotencyTtlMs, leaseMs: settings.idempotencyLeaseMs });
    const audit = new AuditSink({
      pool: bookkeepingPool,
      queueMax: settings.auditQueueMax,
      batchMax: settings.auditBatchMax,
      flushIntervalMs: settings.auditFlushIntervalMs,
      onProblem: (message, error) => logger.warn(error === undefined ? {} : { error: safeErrorFields(error) }, message),
    });
    // `/health/ready` is public: without this, anyone could drive one database round trip per
    // request. Probes share one check per window (and a check in flight), and a failed one is
    // logged once per check, not once per probe.
    const databaseCheck = new CachedCheck({
      ttlMs: READINESS_DATABASE_TTL_MS,
      clockMs: options.readinessClockMs,
      check: async () => {
        const database = await pingDatabase(appPool);
        if (!database.ok) logger.warn({ err: database.error, check: 'database' }, 'not ready: the database does not answer');
        return database.ok;
      },
    });
    const services: Services = {
      settings,
      currencies,
      ledgers,
      models,
      directory: new AccountDirectory(appPool),
      // `/health/ready` is public: its checks say only which part is not ready, in fixed words
      // (never a database error, which names roles, hosts and ports, nor counts of writers or
      // tenants); why is written to the log, at warn. The database is asked at most once per
      // READINESS_DATABASE_TTL_MS (see databaseCheck); the writers, the audit sink and shutdown,
      // which cost no round trip, on every probe.
      readiness: async () => {
        const databaseOk = await databaseCheck.get();
        const writers = ledgers.health();
        const auditHealthy = audit.healthy();
        const checks: Record<string, CheckResult> = {
          database: databaseOk ? { ok: true } : { ok: false, detail: 'unreachable' },
          writers: writers.ok ? { ok: true } : { ok: false, detail: 'not ready' },
          audit: auditHealthy ? { ok: true } : { ok: false, detail: 'not ready' },
        };
        if (!writers.ok) logger.warn({ check: 'writers', reason: writers.detail }, 'not ready: ledger writers');
        if (!auditHealthy) logger.warn({ check: 'audit', reason: 'audit backlog near its bound' }, 'not ready: audit');
        return checks;
      },
    };
    const verifier = new TokenVerifier({ cacheMax: settings.tokenCacheMax, cacheTtlMs: settings.tokenCacheTtlMs, ...options.auth });
    const rateLimiter =
      settings.rateLimitPerSecond > 0
        ? new RateLimiter({ ratePerSecond: settings.rateLimitPerSecond, burst: settings.rateLimitBurst, clientsMax: settings.rateLimitClientsMax, clock: options.rateLimitClockMs })
        : undefined;
    const metrics = new RequestMetrics();
    const built = buildApp({
      metrics,
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

    const metricsText = async (): Promise<string> => {
      const writers = ledgers.writers();
      const projections = await withTimeout(ledgers.projectionStatus(), METRICS_STATUS_TIMEOUT_MS, []);
      const auditStats = audit.stats();
      const pools = [
        { pool: 'app', value: appPool },
        { pool: 'runner', value: runnerPool },
        { pool: 'bookkeeping', value: bookkeepingPool },
      ];
      const families: Family[] = [
        { name: 'banking_api_writer_queue_depth', help: 'Commands waiting in a ledger writer\'s queue.', type: 'gauge', samples: writers.map((w) => ({ labels: { tenant: w.tenantId, ledger: w.ledgerId }, value: w.queueLength })) },
        { name: 'banking_api_ledger_version', help: 'Events in the ledger, as its writer in this process knows it.', type: 'gauge', samples: writers.map((w) => ({ labels: { tenant: w.tenantId, ledger: w.ledgerId }, value: w.version })) },
        { name: 'banking_api_writers_open', help: 'Ledger writers open in this process.', type: 'gauge', samples: [{ labels: {}, value: writers.length }] },
        { name: 'banking_api_projection_lag_events', help: 'Committed events a projection has not handled yet (absent when unknown).', type: 'gauge', samples: projections.filter((p) => p.lagEvents !== null).map((p) => ({ labels: { projection: p.projection, tenant: p.tenantId }, value: p.lagEvents as number })) },
        { name: 'banking_api_projection_lag_seconds', help: 'Age of the oldest event a projection has not handled yet.', type: 'gauge', samples: projections.map((p) => ({ labels: { projection: p.projection, tenant: p.tenantId }, value: p.lagSeconds })) },
        { name: 'banking_api_projection_failed', help: 'Whether a projection is stopped on an event it could not apply (1; see the projection error log): it stays stopped until the process restarts, which tries the event again.', type: 'gauge', samples: projections.map((p) => ({ labels: { projection: p.projection, tenant: p.tenantId }, value: p.state === 'failed' ? 1 : 0 })) },
        { name: 'banking_api_audit_queued', help: 'Audit events waiting to be written.', type: 'gauge', samples: [{ labels: {}, value: auditStats.queued }] },
        { name: 'banking_api_audit_written_total', help: 'Audit events written.', type: 'counter', samples: [{ labels: {}, value: auditStats.written }] },
        { name: 'banking_api_audit_dropped_total', help: 'Audit events dropped because the queue was full or the sink closed.', type: 'counter', samples: [{ labels: {}, value: auditStats.dropped }] },
        { name: 'banking_api_audit_failed_writes_total', help: 'Audit batches the database refused or could not be reached for (each is retried).', type: 'counter', samples: [{ labels: {}, value: auditStats.failedWrites }] },
        { name: 'banking_api_idempotency_backlog', help: 'Idempotency-Key claims and answers queued or being written.', type: 'gauge', samples: [{ labels: {}, value: idempotency.backlog() }] },
        { name: 'banking_api_db_pool_connections', help: 'Database connections by pool and state.', type: 'gauge', samples: pools.flatMap(({ pool, value }) => [
          { labels: { pool, state: 'total' }, value: value.totalCount },
          { labels: { pool, state: 'idle' }, value: value.idleCount },
          { labels: { pool, state: 'waiting' }, value: value.waitingCount },
        ]) },
      ];
      return metrics.render(families);
    };
    let metricsServer: MetricsServer | undefined;
    /** Listeners being started: shutdown waits for them, so that it closes what they open. */
    const starting = new Set<Promise<unknown>>();
    const start = async <T>(work: () => Promise<T>): Promise<T> => {
      if (closing !== undefined) throw new Error('the API is closing');
      const started = work();
      const settled = started.catch(() => undefined);
      starting.add(settled);
      try {
        return await started;
      } finally {
        starting.delete(settled);
      }
    };

    let closing: Promise<void> | undefined;
    const close = async (): Promise<void> => {
      built.markShuttingDown();
      const deadlineMs = Date.now() + settings.shutdownTimeoutMs;
      const steps = async (): Promise<void> => {
        // A listen() that began before close() would otherwise open its port after the server was
        // closed, and hold the process open with nothing to close it.
        await Promise.all(starting);
        await built.app.close();
        await metricsServer?.close();
        await ledgers.closeWriters();
        await idempotency.close();
        await audit.close(Math.min(deadlineMs, Date.now() + settings.shutdownTimeoutMs / 2));
        await ledgers.stopRunners();
      };
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), settings.shutdownTimeoutMs);
      });
      const outcome = await Promise.race([steps().then(() => 'done' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        logger.error(`shutdown did not finish within ${settings.shutdownTimeoutMs} ms; closing the pools anyway`);
        // Requests still running hold their sockets and their database connections, and a pool's
        // end() waits for every connection to come back (a statement waiting on a lock: up to the
        // 30 s statement timeout). They are cut off instead.
        built.app.server.closeAllConnections();
        await metricsServer?.close();
      }
      // The pools get what is left of the timeout and a short grace, not more.
      const ended = Promise.allSettled(pools.map((pool) => pool.end())).then(() => 'ended' as const);
      let graceTimer: NodeJS.Timeout | undefined;
      const grace = new Promise<'grace'>((resolve) => {
        graceTimer = setTimeout(() => resolve('grace'), Math.max(0, deadlineMs - Date.now()) + POOL_END_GRACE_MS);
      });
      if ((await Promise.race([ended, grace])) === 'grace') logger.error('database connections still busy after the shutdown timeout; left to the process exit');
      clearTimeout(graceTimer);
    };

    return {
      app: built.app,
      settings,
      ledgers,
      logger,
      auditStats: () => audit.stats(),
      metricsText,
      async listenMetrics({ port, host = '127.0.0.1' }) {
        if (metricsServer !== undefined) throw new Error('the metrics listener is already running');
        metricsServer = await start(() => startMetricsServer({ port, host, render: metricsText, onError: (error) => logger.warn({ err: error }, 'metrics could not be rendered') }));
        return metricsServer.url;
      },
      async listen({ port, host = '127.0.0.1' }) {
        await start(() => built.app.listen({ port, host }));
        const address = built.app.server.address();
        const actualPort = typeof address === 'object' && address !== null ? address.port : port;
        return `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
      },
      close: () => (closing ??= close()),
    };
  } catch (error) {
    await Promise.allSettled(pools.map((pool) => pool.end()));
    throw error;
  }
}

/**
 * How long one database check answers `/health/ready`, ms: probes within it cost no round trip;
 * a database that stops answering is reported within it (plus the check's own 2 s bound).
 */
export const READINESS_DATABASE_TTL_MS = 1_000;

/** How long the pools may take to close after a shutdown that ran out of time, ms. */
const POOL_END_GRACE_MS = 1_000;

/** Connections for idempotency keys and audit events: their statements are batched, so a few suffice. */
const BOOKKEEPING_POOL_SIZE = 4;

/** Longest a scrape waits for the projection runners' status before it leaves their lag out, ms. */
const METRICS_STATUS_TIMEOUT_MS = 2_000;

async function withTimeout<T>(work: Promise<T>, timeoutMs: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the database answers `SELECT 1` within 2 s; the error when not (for the log only). */
async function pingDatabase(pool: pg.Pool): Promise<{ readonly ok: true } | { readonly ok: false; readonly error: unknown }> {
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
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

/** Graceful shutdown on SIGINT and SIGTERM; see {@link shutdownOnSignals}. */
export interface SignalShutdown {
  /**
   * Aborted by the first signal, with an `Error` naming it as the reason. Start-up checks it after
   * each step (`signal.throwIfAborted()`) and, once it is aborted, closes what it opened and exits.
   */
  readonly signal: AbortSignal;
  /**
   * Start-up is over: from now on the first signal closes `api`, then runs `onClosed`, then exits
   * 0 (1 if either failed). Throws the signal's reason if a signal came already.
   */
  serve(api: BankingApi, onClosed?: () => Promise<void>): void;
}

/**
 * Listens for SIGINT and SIGTERM from now on. Call it before start-up begins: a signal during
 * start-up (migrations, connecting, listening) must stop it gracefully, not kill the process with
 * its pools and writers open. The first signal aborts {@link SignalShutdown.signal}; once
 * {@link SignalShutdown.serve} was called, it closes the API instead. A start-up that has not
 * stopped within `timeoutMs` of the signal (a step waiting on a lock, say) exits 1; a second
 * signal exits 1 at once.
 */
export function shutdownOnSignals(options: { readonly logger: Logger; readonly timeoutMs: number }): SignalShutdown {
  const { logger, timeoutMs } = options;
  const controller = new AbortController();
  let closeServed: (() => void) | undefined;
  const handler = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    logger.info({ signal }, 'shutting down');
    controller.abort(new Error(`stopped by ${signal}`));
    if (closeServed !== undefined) {
      closeServed();
      return;
    }
    setTimeout(() => {
      logger.error(`start-up did not stop within ${timeoutMs} ms of ${signal}; exiting`);
      process.exit(1);
    }, timeoutMs);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    serve(api, onClosed = async () => undefined) {
      controller.signal.throwIfAborted();
      closeServed = () => {
        void api
          .close()
          .then(onClosed)
          .then(
            () => process.exit(0),
            (error: unknown) => {
              logger.error({ err: error }, 'shutdown failed');
              process.exit(1);
            },
          );
      };
    },
  };
}

/** Calls `api.close()` on SIGINT or SIGTERM, then `onClosed`, then exits (a second signal exits at once): {@link shutdownOnSignals} once start-up is over. */
export function closeOnSignals(api: BankingApi, onClosed?: () => Promise<void>): void {
  shutdownOnSignals({ logger: api.logger, timeoutMs: api.settings.shutdownTimeoutMs }).serve(api, onClosed);
}
