/**
 * The API as the load test runs it: a process of its own (so that the server, the load
 * generator and PostgreSQL are separate processes sharing the machine's two cores), configured
 * from environment variables by `run.ts`. Prints `READY <url> <metrics url>` once listening, closes gracefully
 * on SIGTERM. Logs go, at `info` (one line per request), buffered to the file in BENCH_LOG_FILE.
 */
import { importJWK, type JWK } from 'jose';
import pino from 'pino';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER } from '../src/dev-tokens.js';
import { settingsFromEnv } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { closeOnSignals, createBankingApi } from '../src/server.js';

async function main(): Promise<void> {
  const env = (name: string): string => {
    const value = process.env[name];
    if (value === undefined) throw new Error(`${name} is required`);
    return value;
  };
  const publicKey = await importJWK(JSON.parse(env('BENCH_PUBLIC_JWK')) as JWK, DEV_ALGORITHM);
  const destination = pino.destination({ dest: env('BENCH_LOG_FILE'), sync: false, minLength: 8 * 1024 });
  const logger = createLogger({ level: process.env['LOG_LEVEL'] ?? 'info', destination });
  const api = await createBankingApi({
    databaseUrl: env('DATABASE_URL'),
    poolSize: Number(process.env['BENCH_POOL_SIZE'] ?? 8),
    auth: { issuer: DEV_ISSUER, audience: DEFAULT_AUDIENCE, key: publicKey, algorithms: [DEV_ALGORITHM] },
    // BANKING_API_* variables apply as in production (e.g. BANKING_API_PROJECTION_BATCH_DELAY_MS=0).
    settings: { ...settingsFromEnv(), rateLimitPerSecond: Number(process.env['BENCH_RATE_LIMIT'] ?? 0) },
    logger,
  });
  const url = await api.listen({ port: 0, host: '127.0.0.1' });
  const metricsUrl = await api.listenMetrics({ port: 0, host: '127.0.0.1' });
  process.stdout.write(`READY ${url} ${metricsUrl}\n`);
  closeOnSignals(api, async () => {
    destination.flushSync();
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
