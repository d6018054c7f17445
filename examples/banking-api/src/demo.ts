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
 *
 * The worker listens for the signal from its first moment: during start-up (starting the embedded
 * server, migrating, writing the demo data, listening) start-up stops after the step under way,
 * closes the API if it was created, stops the embedded server and removes its temporary
 * directory, prints `demo:api: start-up stopped by SIGTERM: ...` and exits 0. Exit codes, the
 * supervisor's being the worker's: 0 after a graceful stop (during start-up or after); 1 if
 * start-up failed, if closing failed, if start-up had not stopped within 60 s of the signal, or
 * on a second Ctrl-C (at once; the embedded server is signalled to stop as the process exits, but
 * its directory is left). PORT and METRICS_PORT must be integers in 0..65535 (METRICS_PORT may be
 * empty: a free port): any other value fails start-up at once, exit code 1.
 */
import { spawn } from 'node:child_process';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import { SCOPES } from './auth.js';
import { prepareDatabase } from './database.js';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER, loadOrCreateDevKeys, mintToken } from './dev-tokens.js';
import { integerFromEnv, PORT_RANGE } from './config.js';
import { createLogger } from './logger.js';
import { createBankingApi, shutdownOnSignals, type BankingApi } from './server.js';

const TENANT = 'demo-bank';
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
const APP_PASSWORD = process.env['LEDGERKIT_APP_PASSWORD'] ?? 'ledgerkit-demo';

/**
 * Signals within this long of the first are the same Ctrl-C, delivered again by the processes
 * that run this one (`pnpm demo:api`: pnpm, then tsx), not a second press asking to exit at once.
 */
const SAME_CTRL_C_MS = 1_000;

/**
 * How long start-up may take to stop after a signal before the worker exits 1 anyway: starting the
 * embedded server (initdb and its start), the step most likely under way, is let finish, and takes
 * seconds, more on a loaded machine.
 */
const START_UP_STOP_TIMEOUT_MS = 60_000;

/** Set in the worker's environment by the supervisor. */
const WORKER_ENV = 'LEDGERKIT_DEMO_WORKER';
/** What the worker tells the supervisor once it handles SIGINT and SIGTERM. */
const WORKER_HANDLES_SIGNALS = 'ledgerkit-demo-worker:handles-signals';

/** The supervisor: runs the demo in a worker of its own process group; see the module comment. */
function supervise(): void {
  const worker = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [WORKER_ENV]: '1' },
  });
  // Until the worker says it handles signals (its first step), one would kill it before it could
  // stop gracefully (nothing is open yet, but it would exit 143): the first is held back till then.
  let handlesSignals = false;
  let heldBack = false;
  worker.on('message', (message: unknown) => {
    if (message !== WORKER_HANDLES_SIGNALS || handlesSignals) return;
    handlesSignals = true;
    if (heldBack) worker.kill('SIGTERM');
  });
  let firstSignalMs: number | undefined;
  const forward = (): void => {
    const nowMs = Date.now();
    if (firstSignalMs === undefined) {
      // The first signal asks for a graceful shutdown.
      firstSignalMs = nowMs;
      if (handlesSignals) worker.kill('SIGTERM');
      else heldBack = true;
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
  const env = process.env;
  // Checked before anything is opened (`Number('')` is 0: a port the system picks, silently).
  const port = integerFromEnv(env, 'PORT', PORT_RANGE);
  const metricsPort = env['METRICS_PORT'] === '' ? undefined : integerFromEnv(env, 'METRICS_PORT', PORT_RANGE);
  const logger = createLogger({ level: env['LOG_LEVEL'] ?? 'warn' });
  // From the first moment on, a signal stops start-up after the step under way (see the module comment).
  const shutdown = shutdownOnSignals({ logger, timeoutMs: START_UP_STOP_TIMEOUT_MS });
  const { signal } = shutdown;
  process.send?.(WORKER_HANDLES_SIGNALS);
  // The supervisor went away without a signal (killed hard): shut down as if signalled, unless a
  // shutdown already runs (a second signal would cut it short).
  process.once('disconnect', () => {
    if (!signal.aborted) process.kill(process.pid, 'SIGTERM');
  });
  const given = env['DATABASE_URL'];
  let server: EmbeddedPostgresServer | undefined;
  let api: BankingApi | undefined;
  try {
    if (given === undefined) {
      out('demo:api: starting an embedded PostgreSQL server (temporary)');
      server = await startEmbeddedPostgres();
      signal.throwIfAborted();
      out(`demo:api: embedded PostgreSQL on port ${server.port}, data in ${server.directory}; migrating and writing the demo data`);
    }
    const adminUrl = given ?? (server as EmbeddedPostgresServer).connectionString;
    const { appUrl } = await prepareDatabase({ adminUrl, appPassword: APP_PASSWORD });
    signal.throwIfAborted();
    const keys = await loadOrCreateDevKeys();
    signal.throwIfAborted();
    api = await createBankingApi({
      databaseUrl: appUrl,
      auth: { issuer: DEV_ISSUER, audience: DEFAULT_AUDIENCE, key: keys.publicKey, algorithms: [DEV_ALGORITHM] },
      logger,
    });
    signal.throwIfAborted();
    const token = await mintToken(keys, { tenantId: TENANT, scopes: [...SCOPES], subject: 'demo-partner', ttlSeconds: 12 * 3_600 });
    await seed(api, token, signal);
    const url = await listen(api, port);
    signal.throwIfAborted();
    const metricsUrl = await api.listenMetrics({ port: metricsPort ?? 0 });
    signal.throwIfAborted();
    const curl = `curl -s -H "Authorization: Bearer ${token}" ${url}/accounts/alice/balance`;
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
    const running = server;
    shutdown.serve(api, async () => {
      await running?.stop();
      out('demo:api stopped: requests answered, writers drained, PostgreSQL shut down.');
    });
  } catch (error) {
    // Whatever start-up opened is closed, the API first, then the embedded server (its directory
    // removed), whether a signal stopped start-up or it failed.
    const stopped = signal.aborted;
    const closed = await closeAll(api, server);
    if (!stopped) throw error;
    const serverStopped = server === undefined ? '' : `, PostgreSQL shut down and its data (${server.directory}) removed`;
    out(`demo:api: start-up ${(signal.reason as Error).message}: closed what it had opened${serverStopped}.`);
    process.exit(closed ? 0 : 1);
  }
}

function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Closes the API, then stops the embedded server; false if either failed. */
async function closeAll(api: BankingApi | undefined, server: EmbeddedPostgresServer | undefined): Promise<boolean> {
  let closed = true;
  for (const close of [() => api?.close(), () => server?.stop()]) {
    try {
      await close();
    } catch (error) {
      closed = false;
      process.stderr.write(`demo:api: closing after start-up: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
  return closed;
}

/** Listens on `port`, or on 8080 when none was given, and then on a free port if 8080 is taken. */
async function listen(api: BankingApi, port: number | undefined): Promise<string> {
  try {
    return await api.listen({ port: port ?? 8080, host: '127.0.0.1' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port !== undefined) throw error;
    return api.listen({ port: 0, host: '127.0.0.1' });
  }
}

/**
 * A small bank: cash, two customers, fee income; deposits, a payment, a hold. Idempotent on rerun.
 * Stops before its next request once `signal` is aborted.
 */
async function seed(api: BankingApi, token: string, signal: AbortSignal): Promise<void> {
  const post = async (url: string, body: unknown, key: string): Promise<void> => {
    signal.throwIfAborted();
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

