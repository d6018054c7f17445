/**
 * `pnpm --filter banking-api start`: the API against a PostgreSQL you run, configured by
 * environment variables.
 *
 *   DATABASE_URL                  application role (no superuser, no BYPASSRLS)          required
 *   MIGRATION_DATABASE_URL        an administrator; when set, every schema is migrated first
 *   LEDGERKIT_APP_PASSWORD        the application role's password if migrations create it
 *   PORT (8080; 0..65535, 0: a free port), HOST (127.0.0.1), LOG_LEVEL (info), DB_POOL_SIZE (16; 2..200)
 *   METRICS_PORT                  Prometheus metrics (GET /metrics) on this port (0..65535); off when unset or empty
 *   METRICS_HOST (127.0.0.1)      keep it on loopback or an internal interface: it has no auth
 *   BANKING_API_JWT_ISSUER        expected `iss`                                        required unless dev tokens
 *   BANKING_API_JWT_AUDIENCE      expected `aud` (default banking-api)
 *   BANKING_API_JWT_TYPE          expected `typ` header (default at+jwt, RFC 9068); `any` skips the
 *                                 check, for identity providers that do not mark access tokens
 *   BANKING_API_JWKS_URL          the authorization server's JWKS, or
 *   BANKING_API_JWT_PUBLIC_KEY    a PEM (SPKI) public key, with BANKING_API_JWT_ALGORITHM (default EdDSA)
 *   BANKING_API_DEV_TOKENS=1      trust the development key in .dev-keys/ instead (never in production)
 *   BANKING_API_*                 limits, e.g. BANKING_API_RATE_LIMIT_PER_SECOND (see config.ts)
 *
 * PORT, METRICS_PORT and DB_POOL_SIZE must be integers (decimal digits) in their ranges: any other
 * value (an empty PORT included) fails start-up at once, before anything is opened, with a message
 * naming the variable, and exit code 1.
 *
 * SIGTERM or SIGINT, from the first moment on, stops it gracefully: once it listens, `close()`
 * (requests answered, writers drained, pools closed); during start-up (migrations, connecting,
 * listening), start-up stops after the step under way and closes what it opened. Exit code 0 for
 * either; 1 if start-up or shutdown failed, if start-up had not stopped within
 * BANKING_API_SHUTDOWN_TIMEOUT_MS (10 s) of the signal, or on a second signal (exits at once).
 */
import { createRemoteJWKSet, importSPKI, type JWTVerifyGetKey, type KeyInput } from 'jose';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER, loadOrCreateDevKeys } from './dev-tokens.js';
import { prepareDatabase } from './database.js';
import { integerFromEnv, PORT_RANGE, resolveSettings, settingsFromEnv } from './config.js';
import { createLogger } from './logger.js';
import { createBankingApi, POOL_SIZE_RANGE, shutdownOnSignals, type BankingApi } from './server.js';
import type { TokenVerifierOptions } from './auth.js';

async function authFromEnv(env: NodeJS.ProcessEnv): Promise<TokenVerifierOptions> {
  const typeSetting = env['BANKING_API_JWT_TYPE'];
  const tokenType = typeSetting === undefined || typeSetting === '' ? {} : { tokenType: typeSetting === 'any' ? null : typeSetting };
  if (env['BANKING_API_DEV_TOKENS'] === '1') {
    const keys = await loadOrCreateDevKeys();
    return { issuer: DEV_ISSUER, audience: env['BANKING_API_JWT_AUDIENCE'] ?? DEFAULT_AUDIENCE, key: keys.publicKey, algorithms: [DEV_ALGORITHM], ...tokenType };
  }
  const issuer = env['BANKING_API_JWT_ISSUER'];
  if (issuer === undefined) throw new Error('set BANKING_API_JWT_ISSUER (or BANKING_API_DEV_TOKENS=1 for development)');
  const audience = env['BANKING_API_JWT_AUDIENCE'] ?? DEFAULT_AUDIENCE;
  const jwksUrl = env['BANKING_API_JWKS_URL'];
  const pem = env['BANKING_API_JWT_PUBLIC_KEY'];
  let key: KeyInput | JWTVerifyGetKey;
  let algorithms: string[] | undefined;
  if (jwksUrl !== undefined) key = createRemoteJWKSet(new URL(jwksUrl));
  else if (pem !== undefined) {
    const algorithm = env['BANKING_API_JWT_ALGORITHM'] ?? 'EdDSA';
    key = await importSPKI(pem, algorithm);
    algorithms = [algorithm];
  } else throw new Error('set BANKING_API_JWKS_URL or BANKING_API_JWT_PUBLIC_KEY');
  return { issuer, audience, key, ...(algorithms === undefined ? {} : { algorithms }), ...tokenType };
}

async function main(): Promise<void> {
  const env = process.env;
  const logger = createLogger({ level: env['LOG_LEVEL'] ?? 'info' });
  const settings = resolveSettings(settingsFromEnv(env));
  // Checked before anything is opened: `Number('')` is 0, which would listen on a port the
  // system picks, and says nothing.
  const port = integerFromEnv(env, 'PORT', PORT_RANGE) ?? 8080;
  const metricsPort = env['METRICS_PORT'] === '' ? undefined : integerFromEnv(env, 'METRICS_PORT', PORT_RANGE);
  const poolSize = integerFromEnv(env, 'DB_POOL_SIZE', POOL_SIZE_RANGE) ?? 16;
  // Before anything is opened: a signal from now on stops start-up gracefully (see the module comment).
  const shutdown = shutdownOnSignals({ logger, timeoutMs: settings.shutdownTimeoutMs });
  const { signal } = shutdown;
  let api: BankingApi | undefined;
  try {
    logger.info('banking API starting');
    let databaseUrl = env['DATABASE_URL'];
    const migrationUrl = env['MIGRATION_DATABASE_URL'];
    if (migrationUrl !== undefined) {
      const password = env['LEDGERKIT_APP_PASSWORD'];
      if (password === undefined) throw new Error('MIGRATION_DATABASE_URL needs LEDGERKIT_APP_PASSWORD (the application role\'s password)');
      const { appUrl } = await prepareDatabase({ adminUrl: migrationUrl, appPassword: password });
      signal.throwIfAborted();
      databaseUrl ??= appUrl;
    }
    if (databaseUrl === undefined) throw new Error('set DATABASE_URL (the application role)');
    const auth = await authFromEnv(env);
    signal.throwIfAborted();
    api = await createBankingApi({ databaseUrl, poolSize, auth, settings, logger });
    signal.throwIfAborted();
    const url = await api.listen({ port, host: env['HOST'] ?? '127.0.0.1' });
    signal.throwIfAborted();
    logger.info({ url }, 'banking API listening');
    if (metricsPort !== undefined) {
      const metricsUrl = await api.listenMetrics({ port: metricsPort, host: env['METRICS_HOST'] ?? '127.0.0.1' });
      logger.info({ url: metricsUrl }, 'metrics listening');
    }
    shutdown.serve(api);
  } catch (error) {
    // Whatever start-up opened is closed, whether a signal stopped it or it failed (a signal
    // while closing after a failure does not make it a graceful stop).
    const stopped = signal.aborted;
    const closed = await api?.close().then(
      () => true,
      (closeError: unknown) => {
        logger.error({ err: closeError }, 'closing after start-up failed');
        return false;
      },
    );
    if (stopped) {
      logger.info(`start-up ${(signal.reason as Error).message}: closed what it had opened`);
      process.exit(closed === false ? 1 : 0);
    }
    throw error;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`banking-api failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
