import { randomBytes } from 'node:crypto';
import { Ledger, LedgerError, StoreUnavailableError, WriterFailedError } from '@ledgerkit/ledger-core';
import { migrate, PostgresEventStore } from '@ledgerkit/store-postgres';
import { DEFAULT_ROLES } from '@ledgerkit/tenant-rls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { withUser } from '../support/test-database.js';
import { Outcomes } from './support/outcomes.js';
import { startRestartablePostgres, type RestartablePostgres, type StopMode } from './support/restartable-postgres.js';
import { auditLog, setUpAccounts, specFor, submitSpec } from './support/workload.js';
import { nowMs, type WriterLine } from './support/writer-protocol.js';

// This file always runs on an embedded server of its own, even when DATABASE_URL is set: it
// stops and starts the server, which must never happen to a shared one.
const SEED = process.env['FAULT_SEED'] ?? randomBytes(4).toString('hex');
const TENANT = `faults-${SEED}`;
const LEDGER = 'restarted';
const CALLERS = 16;
/** How long callers keep retrying one id through outages before the test gives up on it. */
const ID_DEADLINE_MS = 20_000;
const RETRY_PAUSE_MS = 25;
const LOAD_BEFORE_OUTAGE_MS = 600;
const OUTAGE_MS = 800;
/** Bound on the time from the server being back to the writer's next acknowledgement. */
const RECONNECT_MS_MAX = 15_000;
/** Bound on how long a call takes to fail while the server is down: "at once", with room for a busy machine. */
const FAILURE_WHILE_DOWN_MS_MAX = 2_000;

let server: RestartablePostgres;
let appUrl: string;
const pools: pg.Pool[] = [];

function makePool(connectionString: string, max: number): pg.Pool {
  // A bounded connect: a server that accepts TCP but never answers must not hang the writer.
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 5_000 });
  // Idle clients of a server that goes away emit 'error'; the pool drops them.
  pool.on('error', () => undefined);
  pools.push(pool);
  return pool;
}

beforeAll(async () => {
  server = await startRestartablePostgres();
  const appPassword = randomBytes(12).toString('hex');
  await migrate({ pool: makePool(server.connectionString, 2), appPassword });
  appUrl = withUser(server.connectionString, DEFAULT_ROLES.app, appPassword);
});

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
  await server?.destroy();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Failure {
  readonly id: string;
  readonly error: unknown;
  readonly durationMs: number;
  /** The server was down for the whole call. */
  readonly whileDown: boolean;
}

describe('PostgreSQL restarted under load', () => {
  it('a fast shutdown and then a crash: while the server is down callers get a retriable StoreUnavailableError at once, the same writer reconnects by itself, and nothing acknowledged is lost', async () => {
    onTestFailed(() => console.error(`postgres-restart failed with FAULT_SEED=${SEED}`));
    const store = await PostgresEventStore.open({ pool: makePool(appUrl, 8) });
    const ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId: LEDGER, batchSizeMax: 64, snapshotEveryEvents: 0 });
    await setUpAccounts(ledger);

    const lines: WriterLine[] = [];
    const failures: Failure[] = [];
    let lastAckAt = 0;
    let stopping = false;
    const caller = async (index: number): Promise<void> => {
      for (let n = 0; !stopping; n += 1) {
        const id = `${SEED}-c${index}-${n}`;
        const deadline = Date.now() + ID_DEADLINE_MS;
        for (;;) {
          const startedAt = nowMs();
          const downAtStart = !server.running;
          lines.push({ e: 'sent', id, t: startedAt });
          try {
            const result = await submitSpec(ledger, specFor(id));
            const t = nowMs();
            if (result.ok) {
              const members = result.members?.map((member) => (member.ok ? member.ledgerVersion : -1));
              lines.push({ e: 'ok', id, v: result.ledgerVersion, dup: result.duplicate, ...(members === undefined ? {} : { m: members }), t });
              lastAckAt = t;
            } else {
              lines.push({ e: 'rejected', id, code: result.code, t });
            }
            break;
          } catch (error) {
            failures.push({ id, error, durationMs: nowMs() - startedAt, whileDown: downAtStart && !server.running });
            const retriable = error instanceof LedgerError && error.retriable;
            lines.push({ e: 'error', id, code: error instanceof LedgerError ? error.code : String(error), retriable, message: String(error) });
            if (!retriable || Date.now() > deadline) {
              lines.push({ e: 'gave-up', id });
              break;
            }
            await sleep(RETRY_PAUSE_MS);
          }
        }
      }
    };
    const callers = Array.from({ length: CALLERS }, (_, index) => caller(index));

    const outage = async (mode: StopMode, whileDown?: () => Promise<void>): Promise<{ failedWhileDown: number; reconnectMs: number }> => {
      await sleep(LOAD_BEFORE_OUTAGE_MS);
      const failedBefore = failures.length;
      await server.stop(mode);
      const downAt = Date.now();
      await whileDown?.();
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
      const failedWhileDown = failures.length - failedBefore;
      await server.start();
      const upAt = nowMs();
      while (lastAckAt <= upAt && nowMs() - upAt < RECONNECT_MS_MAX) await sleep(10);
      return { failedWhileDown, reconnectMs: nowMs() - upAt };
    };

    const fast = await outage('fast', async () => {
      // The store itself, a store being opened and a writer being opened fail the same typed way, and quickly.
      const startedAt = Date.now();
      const read = store.readStream({ tenantId: TENANT, ledgerId: LEDGER, direction: 'forward', limit: 1 }).catch((error: unknown) => error);
      const storeOpened = PostgresEventStore.open({ pool: makePool(appUrl, 1) }).catch((error: unknown) => error);
      const ledgerOpened = Ledger.open({ store, tenantId: TENANT, ledgerId: LEDGER }).catch((error: unknown) => error);
      const errors = await Promise.all([read, storeOpened, ledgerOpened]);
      for (const error of errors) {
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(error).toMatchObject({ code: 'store_unavailable', retriable: true });
      }
      // A fresh pool meets a closed port; the driver's error stays reachable as the cause.
      expect(errors[1]).toMatchObject({ cause: expect.objectContaining({ code: 'ECONNREFUSED' }) });
      expect(Date.now() - startedAt).toBeLessThan(FAILURE_WHILE_DOWN_MS_MAX);
    });
    const crash = await outage('immediate');
    await sleep(LOAD_BEFORE_OUTAGE_MS);
    stopping = true;
    await Promise.all(callers);

    const outcomes = new Outcomes();
    outcomes.add(lines);
    const untyped = failures.filter((failure) => !(failure.error instanceof StoreUnavailableError && failure.error instanceof WriterFailedError));
    const slowWhileDown = failures.filter((failure) => failure.whileDown && failure.durationMs > FAILURE_WHILE_DOWN_MS_MAX);
    // Calls in flight when the server went away: their append's outcome was unknown until the retry.
    const inFlight = new Set(failures.filter((failure) => failure.error instanceof Error && failure.error.message.includes('may have been applied')).map((failure) => failure.id));
    const inFlightCommitted = lines.filter((line) => line.e === 'ok' && line.dup && inFlight.has(line.id)).length;
    console.info(
      `postgres-restart: FAULT_SEED=${SEED}, ${outcomes.acks.size} ids acknowledged, ${failures.length} failed calls ` +
        `(${fast.failedWhileDown} during the fast shutdown, ${crash.failedWhileDown} during the crash; ${inFlight.size} in flight, of which ${inFlightCommitted} had committed), ` +
        `back to acknowledging ${fast.reconnectMs.toFixed(0)} ms and ${crash.reconnectMs.toFixed(0)} ms after each start, ` +
        `slowest failure while down ${Math.max(0, ...failures.filter((failure) => failure.whileDown).map((failure) => failure.durationMs)).toFixed(0)} ms`,
    );
    expect(untyped.map((failure) => `${failure.id}: ${String(failure.error)}`), `seed ${SEED}: every failure is a StoreUnavailableError`).toEqual([]);
    expect(fast.failedWhileDown, 'callers were refused during the fast shutdown').toBeGreaterThan(0);
    expect(crash.failedWhileDown, 'callers were refused during the crash').toBeGreaterThan(0);
    expect(slowWhileDown.map((failure) => `${failure.id}: ${failure.durationMs.toFixed(0)} ms`), 'failures while down come at once').toEqual([]);
    expect(fast.reconnectMs, 'the writer acknowledged again after the fast shutdown, without being reopened').toBeLessThan(RECONNECT_MS_MAX);
    expect(crash.reconnectMs, 'the writer acknowledged again after the crash, without being reopened').toBeLessThan(RECONNECT_MS_MAX);
    expect([...outcomes.gaveUp], `seed ${SEED}`).toEqual([]);
    expect(outcomes.unknown(), `seed ${SEED}`).toEqual([]);
    expect(outcomes.disagreements, `seed ${SEED}`).toEqual([]);
    expect(outcomes.appliedTwice, `seed ${SEED}`).toEqual([]);

    const audit = await auditLog(store, TENANT, LEDGER);
    expect(outcomes.problemsWith(audit, (id) => id.startsWith('open-')), `seed ${SEED}: everything acknowledged survived both restarts`).toEqual([]);
    expect(audit.overdrafts, `seed ${SEED}`).toEqual([]);
    expect(audit.unbalancedCurrencies, `seed ${SEED}`).toEqual([]);
    // The writer that lived through both outages holds exactly what the log holds.
    expect(ledger.version).toBe(audit.eventCount);
    for (const [accountId, balance] of audit.balances) {
      const account = ledger.writer.account(accountId);
      expect(account === undefined ? undefined : account.creditsPosted - account.debitsPosted, accountId).toBe(balance);
    }
    expect((await ledger.verifyChain()).ok).toBe(true);
    await ledger.close();
  });
});
