import { createServer, connect, type Server, type Socket } from 'node:net';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { describe, expect, it } from 'vitest';
import { eventually, openFixtureLedger, seenProjection, seenVersions, writeTransfers } from './support/fixtures.js';
import { statusOf, useRunnerFile } from './support/runner-files.js';

// The runner's own connection (its advisory locks and LISTEN) can die under it: a server restart,
// a session an administrator killed. The runner must notice, take its locks again, and report
// what it is really doing.

/** How long a test waits for the runner to reach a state, ms. */
const WAIT_MS = 10_000;

const file = useRunnerFile();
const { runnerFor } = file;

/** Terminates the backends holding advisory locks in this database: the runners' sessions, and only them. */
async function killRunnerSessions(): Promise<number> {
  const { rowCount } = await file.db.admin.query(
    `SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
      WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database() GROUP BY l.pid`,
  );
  return rowCount ?? 0;
}

describe('the runner session', () => {
  it('a projection stopped on an event is still reported failed once its runner has taken its lock again after losing its session', async () => {
    const tenantId = 'failed-relock';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await writeTransfers(ledger, 'a', 5);
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    const runner = runnerFor(tenantId, { projections: [seenProjection('seen', () => true)] });
    try {
      runner.start();
      await runner.whenCaughtUp();
      expect(await statusOf(runner, 'seen')).toMatchObject({ state: 'failed', active: true });

      expect(await killRunnerSessions()).toBe(1);
      // Failed and active again once it holds its lock: never caught up, never "live". (Waited for:
      // on a loaded server the session may be taken for silent and dropped once more before it
      // settles, and the state in between is standby.)
      await eventually(async () => {
        const status = await statusOf(runner, 'seen');
        return status.active && status.state === 'failed';
      }, WAIT_MS, 'failed and active again');
      const status = await statusOf(runner, 'seen');
      expect(status).toMatchObject({ state: 'failed', eventsApplied: ledger.version - 1 });
      expect(status.lastError?.message).toContain('cannot handle the poison transfer');
    } finally {
      // A runner left running here would hold locks in this database during the next tests.
      await runner.stop();
      await ledger.close();
    }
  });

  it('live: after its session was killed, a NOTIFY wakes the runner again long before its poll interval', async () => {
    const tenantId = 'listen-again';
    const ledger = await openFixtureLedger(file.store, tenantId);
    const runner = runnerFor(tenantId, { projections: [seenProjection('seen', () => false)], pollIntervalMs: 60_000 });
    runner.start();
    await runner.whenCaughtUp();
    expect(await killRunnerSessions()).toBe(1);
    await eventually(async () => (await statusOf(runner, 'seen')).active, WAIT_MS, 'lock taken again');
    await runner.whenCaughtUp();
    // The control: the same tenant, its own projection (its own lock), without LISTEN, and a store
    // that returns at once (a read waiting out the append's open transaction would see it).
    const impatient = await PostgresEventStore.open({ pool: file.db.app });
    const polling = runnerFor(tenantId, { projections: [seenProjection('seen-polled', () => false)], pollIntervalMs: 60_000, notifyChannel: null, store: impatient });
    polling.start();
    try {
      await polling.whenCaughtUp();
      // Idle now, and the poll is a minute away. After activity (the reconnect wakes every worker)
      // the runner re-reads at pauses doubling from 5 ms (IDLE_PAUSE_MS_MIN): reads ~2.6 s, ~5.1 s,
      // then ~10.2 s. Written 6.5 s after both caught up (well past the ~5.1 s read, even late under
      // load), the append is some 3.5 s before either runner reads again: only a NOTIFY heard on the
      // new session brings it sooner.
      await new Promise((resolve) => setTimeout(resolve, 6_500));
      const writtenAt = Date.now();
      await writeTransfers(ledger, 'n', 1);
      await eventually(async () => (await statusOf(runner, 'seen')).eventsApplied === ledger.version, WAIT_MS, 'woken by a NOTIFY');
      const tookMs = Date.now() - writtenAt;
      // ~50 ms idle; a runner that only re-read would take some 3.5 s.
      expect(tookMs, 'applied after the append, ms').toBeLessThan(1_500);
      // The control has not seen it in that time: the timing above left polling no way to.
      await new Promise((resolve) => setTimeout(resolve, writtenAt + 1_500 - Date.now()));
      expect((await statusOf(polling, 'seen-polled')).eventsApplied, 'applied by the polling control').toBe(ledger.version - 1);
    } finally {
      // Stopped even when it fails: their locks would otherwise be in the next test's way.
      await Promise.all([runner.stop(), polling.stop()]);
      await ledger.close();
    }
  });

  it('a session that goes silent (its server side gone, no word to the client) is noticed: the runner stops claiming its locks while another runner holds them', async () => {
    const tenantId = 'silent-session';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await writeTransfers(ledger, 's', 10);
    const proxy = await openProxy(new URL(file.db.appUrl));
    try {
      const viaProxy = new URL(file.db.appUrl);
      viaProxy.host = `127.0.0.1:${proxy.port}`;
      const a = runnerFor(tenantId, { projections: [seenProjection('seen', () => false)], pool: file.db.pool(viaProxy.toString(), 5) });
      const b = runnerFor(tenantId, { projections: [seenProjection('seen', () => false)], pool: file.db.pool(file.db.appUrl, 5) });
      a.start();
      await a.whenCaughtUp();
      b.start();
      await b.whenCaughtUp();
      expect((await statusOf(a, 'seen')).active).toBe(true);
      expect((await statusOf(b, 'seen')).active).toBe(false);

      // A's session, as a NAT that forgot it would leave it: the server's end closes (its
      // backend and advisory locks go), the client's end stays open and hears nothing more.
      const { rows } = await file.db.admin.query<{ port: number }>(
        `SELECT a.client_port AS port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()`,
      );
      expect(rows).toHaveLength(1);
      expect(proxy.silence(rows[0]?.port as number)).toBe(true);
      await eventually(async () => (await statusOf(b, 'seen')).active, WAIT_MS, 'takeover by b');
      await writeTransfers(ledger, 't', 5);
      await eventually(async () => !(await statusOf(a, 'seen')).active, 2 * WAIT_MS, 'a noticing it lost its session');
      await eventually(async () => (await statusOf(b, 'seen')).eventsApplied === ledger.version, WAIT_MS, 'b applying the new events');
      expect(await seenVersions(file.db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
      await Promise.all([a.stop(), b.stop()]);
    } finally {
      await proxy.close();
      await ledger.close();
    }
  });
  it('a runner with no tenant yet listens again after its session was killed: a NOTIFY of a new tenant still triggers a discovery long before the interval', async () => {
    const known: string[] = [];
    let calls = 0;
    const runner = runnerFor('unused', {
      tenantIds: [],
      projections: [seenProjection('seen', () => false)],
      pool: file.db.pool(`${file.db.appUrl}?application_name=discovering_runner`, 5),
      discoverTenants: async () => {
        calls += 1;
        return [...known];
      },
      tenantDiscoveryIntervalMs: 3_600_000,
    });
    runner.start();
    await eventually(async () => calls >= 1, WAIT_MS, 'the first discovery');
    const sessions = async (): Promise<number> =>
      (await file.db.admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'discovering_runner' AND datname = current_database()`)).rowCount ?? 0;
    await eventually(async () => (await sessions()) === 1, WAIT_MS, 'the session connected');
    const callsAtKill = calls;
    const killed = await file.db.admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'discovering_runner' AND datname = current_database()`);
    expect(killed.rowCount).toBe(1);
    // Two discoveries: one when the session is lost (it connects again), one for the appends
    // nobody heard meanwhile. After them, only a NOTIFY calls discoverTenants within the hour.
    await eventually(async () => (await sessions()) === 1 && calls >= callsAtKill + 2, WAIT_MS, 'the session connected again');
    const callsBefore = calls;
    known.push('fresh-tenant');
    const ledger = await openFixtureLedger(file.store, 'fresh-tenant');
    await writeTransfers(ledger, 'f', 2);
    await eventually(async () => calls > callsBefore, WAIT_MS, 'a discovery after the NOTIFY');
    await runner.whenCaughtUp();
    expect(await seenVersions(file.db.admin, 'fresh-tenant', 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    await runner.stop();
    await ledger.close();
  });
});

/** A TCP proxy to the database whose connections can be silenced one at a time. */
interface Proxy {
  readonly port: number;
  /**
   * Closes the server's side of the connection whose server-side socket has local port
   * `serverPort` (the backend's `client_port`), and leaves the client's side open, never written
   * to again. `false` when there is no such connection.
   */
  silence(serverPort: number): boolean;
  close(): Promise<void>;
}

async function openProxy(target: URL): Promise<Proxy> {
  const pairs: { client: Socket; upstream: Socket }[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push({ client, upstream });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  return {
    port: address.port,
    silence(serverPort) {
      const pair = pairs.find(({ upstream }) => upstream.localPort === serverPort);
      if (pair === undefined) return false;
      pair.client.unpipe(pair.upstream);
      pair.upstream.unpipe(pair.client);
      // What the client still sends goes nowhere; nothing comes back.
      pair.client.removeAllListeners('data');
      pair.client.on('data', () => undefined);
      pair.upstream.destroy();
      return true;
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
