import { CurrencyRegistry, Ledger, type EventStore, type GlobalEvent, type LedgerSource, type ReadAllRequest } from '@ledgerkit/ledger-core';
import {
  BALANCES_PROJECTION,
  balancesProjection,
  eventProjection,
  HISTORY_PROJECTION,
  historyProjection,
  inlineBalances,
  ProjectionFailedError,
  ProjectionRunner,
  ReadModels,
  type BatchCommitted,
  type ProjectionStatus,
} from '@ledgerkit/projections';
import { EVENTS_CHANNEL, PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectReadModelsAgree } from './support/agreement.js';
import {
  createSeenTable,
  currencies,
  eventually,
  expectBalancesAgree,
  FIXTURE_ACCOUNTS,
  globalLog,
  openFixtureLedger,
  seenProjection,
  seenVersions,
  writeTransfers,
} from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  await createSeenTable(db);
});

afterAll(async () => {
  await Promise.all(runners.map((runner) => runner.stop().catch(() => undefined)));
  await db?.close();
});

/** Every runner of the file, stopped before the database closes even when a test fails. */
const runners: ProjectionRunner[] = [];

function runnerFor(tenantId: string, overrides: Partial<ConstructorParameters<typeof ProjectionRunner>[0]> = {}): ProjectionRunner {
  return track(new ProjectionRunner({
    pool: db.app,
    store,
    tenantIds: [tenantId],
    projections: [balancesProjection(), historyProjection()],
    currencies,
    takeoverIntervalMs: 50,
    ...overrides,
  }));
}

function track(runner: ProjectionRunner): ProjectionRunner {
  runners.push(runner);
  return runner;
}

const statusOf = (statuses: ProjectionStatus[], projection: string): ProjectionStatus => {
  const found = statuses.find((status) => status.projection === projection);
  if (found === undefined) throw new Error(`no status for ${projection}`);
  return found;
};

describe('the runner', () => {
  it('listens on the channel the event store notifies', () => {
    expect(EVENTS_CHANNEL).toBe('ledgerkit_events');
  });

  it('catches up from the first event, applying each event exactly once across batches', async () => {
    const tenantId = 'catch-up';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 'x', 120, 7);
    const runner = runnerFor(tenantId, { batchSize: 16, projections: [balancesProjection(), historyProjection(), seenProjection('seen', () => false)] });
    runner.start();
    await runner.whenCaughtUp();
    const statuses = await runner.status();
    await runner.stop();
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    for (const name of [BALANCES_PROJECTION, HISTORY_PROJECTION, 'seen']) {
      expect(statusOf(statuses, name)).toMatchObject({ state: 'live', active: true, eventsApplied: ledger.version, eventsSkipped: 0, lagEvents: 0, lagSeconds: 0, lastError: null });
    }
    await expectBalancesAgree(models, ledger, tenantId);
    await ledger.close();
  });

  it('projections of one tenant that read the same page at once share one read of the log, and a failed shared read loses nothing', async () => {
    const tenantId = 'shared-reads';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 's', 90, 5);
    const { store: slow, pagesRead } = slowPageReads({ failFirst: true });
    const runner = runnerFor(tenantId, { store: slow, batchSize: 32, projections: [balancesProjection(), historyProjection(), seenProjection('seen-shared', () => false)] });
    runner.start();
    await runner.whenCaughtUp();
    // Live: appended after the catch-up, all three woken by the same notification.
    await writeTransfers(ledger, 't', 20, 5);
    await runner.whenCaughtUp();
    await runner.stop();
    expect(await seenVersions(db.admin, tenantId, 'seen-shared')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    await expectBalancesAgree(models, ledger, tenantId);
    let n = 0;
    const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId, ledgerId: 'eur' };
    await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: FIXTURE_ACCOUNTS, pick: (k) => (n += 1) % k });
    // A page of the log after a position is read from the store once, however many projections
    // apply it (an empty read, the end of the log, is each projection's own).
    const pages = pagesRead();
    expect(pages.length).toBeGreaterThan(3);
    expect(new Set(pages).size).toBe(pages.length);
    await ledger.close();
  });

  it('an event no projection can decode, met in a shared read, stops each of them at its position, everything before it applied once', async () => {
    const tenantId = 'shared-undecodable';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 'a', 40, 5);
    const decodable = ledger.version;
    // A ledger of the same tenant in a currency the runner's registry does not know.
    const points = await Ledger.open({ store, tenantId, ledgerId: 'pts', currencies: new CurrencyRegistry([{ code: 'PTS', scale: 0 }]), snapshotEveryEvents: 0 });
    expect(await points.openAccount({ accountId: 'p1', currency: 'PTS', type: 'asset' })).toMatchObject({ ok: true });
    await points.close();
    await writeTransfers(ledger, 'b', 10, 5);
    const undecodable = (await globalLog(store, tenantId)).find((entry) => entry.event.ledgerId === 'pts');
    const { store: slow, pagesRead } = slowPageReads();
    const runner = runnerFor(tenantId, { store: slow, batchSize: 16, projections: [balancesProjection(), historyProjection(), seenProjection('seen-undecodable', () => false)] });
    runner.start();
    await runner.whenCaughtUp();
    const statuses = await runner.status();
    await runner.stop();
    for (const name of [BALANCES_PROJECTION, HISTORY_PROJECTION, 'seen-undecodable']) {
      const status = statusOf(statuses, name);
      expect(status.state, name).toBe('failed');
      expect(status.lastError?.position, name).toBe(undecodable?.position);
      expect(status.eventsApplied, name).toBe(decodable);
    }
    expect(await seenVersions(db.admin, tenantId, 'seen-undecodable')).toEqual(Array.from({ length: decodable }, (_, i) => i + 1));
    const pages = pagesRead();
    expect(new Set(pages).size).toBe(pages.length);
    await ledger.close();
  });

  it('an event of another tenant in a tenant\'s log (a store that broke its contract) is never applied: each projection stops at its position, everything before it applied once, and the status names no tenant', async () => {
    const tenantId = 'foreign-reader';
    const other = 'foreign-owner-7f3a';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 'a', 20, 5);
    const owner = await openFixtureLedger(store, other);
    await writeTransfers(owner, 'secret', 3);
    const foreign = (await globalLog(store, other)).at(-1) as GlobalEvent;
    const log = await globalLog(store, tenantId);
    const swapped = log[12] as GlobalEvent;
    // The store answers the reader's log with the other tenant's event where its 13th should be.
    const leaky = new Proxy(store, {
      get(target, property) {
        if (property === 'readAll') {
          return async (request: ReadAllRequest): Promise<GlobalEvent[]> =>
            (await target.readAll(request)).map((entry) => (request.tenantId === tenantId && entry.position === swapped.position ? { position: entry.position, event: foreign.event } : entry));
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const runner = runnerFor(tenantId, { store: leaky, batchSize: 8, projections: [balancesProjection(), historyProjection(), seenProjection('seen-foreign', () => false)] });
    runner.start();
    await runner.whenCaughtUp();
    const statuses = await runner.status();
    await runner.stop();
    for (const name of [BALANCES_PROJECTION, HISTORY_PROJECTION, 'seen-foreign']) {
      const status = statusOf(statuses, name);
      expect(status.state, name).toBe('failed');
      expect(status.lastError?.position, name).toBe(swapped.position);
      expect(status.lastError?.message, name).toMatch(/another tenant/);
      expect(status.lastError?.message, name).not.toContain(other);
      expect(status.eventsApplied, name).toBe(12);
    }
    expect(await seenVersions(db.admin, tenantId, 'seen-foreign')).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const { rows } = await db.admin.query("SELECT 1 FROM ledgerkit.rm_transfers WHERE tenant_id = $1 AND transfer_id LIKE 'secret-%'", [tenantId]);
    expect(rows).toEqual([]);
    await ledger.close();
    await owner.close();
  });

  it('exactly one of several runners is active per projection and tenant; a standby takes over when the active one stops, from its checkpoint', async () => {
    const tenantId = 'one-active';
    const ledger = await openFixtureLedger(store, tenantId);
    const seen = (): ReturnType<typeof seenProjection> => seenProjection('seen', () => false);
    const first = runnerFor(tenantId, { projections: [balancesProjection(), seen()], pool: db.pool(db.appUrl, 5) });
    const second = runnerFor(tenantId, { projections: [balancesProjection(), seen()], pool: db.pool(db.appUrl, 5) });
    first.start();
    await first.whenCaughtUp();
    second.start();
    await second.whenCaughtUp();
    const writing = writeTransfers(ledger, 'y', 60, 3);
    expect((await first.status()).map((status) => status.active)).toEqual([true, true]);
    expect((await second.status()).map((status) => [status.active, status.state])).toEqual([
      [false, 'standby'],
      [false, 'standby'],
    ]);
    await first.stop();
    await writing;
    await eventually(async () => (await second.status()).every((status) => status.active), 5_000, 'takeover');
    await second.whenCaughtUp();
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    await expectBalancesAgree(models, ledger, tenantId);
    await second.stop();
    await ledger.close();
  });

  it('when the active runner’s connection dies, its session lock goes with it and a standby takes over without losing or repeating an event', async () => {
    const tenantId = 'takeover';
    const ledger = await openFixtureLedger(store, tenantId);
    const seen = (): ReturnType<typeof seenProjection> => seenProjection('seen', () => false);
    // A's "host": its connections can be cut, and while it is down it cannot reconnect.
    const poolA = db.pool(`${db.appUrl}?application_name=runner_a`, 5);
    let aDown = false;
    const hostA = { connect: () => (aDown ? Promise.reject(new Error('connect ECONNREFUSED (host down)')) : poolA.connect()) };
    const a = runnerFor(tenantId, { projections: [balancesProjection(), historyProjection(), seen()], pool: hostA, batchSize: 5 });
    const b = runnerFor(tenantId, { projections: [balancesProjection(), historyProjection(), seen()], pool: db.pool(db.appUrl, 5), batchSize: 5 });
    a.start();
    await a.whenCaughtUp();
    b.start();
    await b.whenCaughtUp();
    const writing = writeTransfers(ledger, 'z', 80, 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // A's host goes down: its backends die with it, the one holding its advisory locks too.
    aDown = true;
    const killed = await db.admin.query(
      `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
        WHERE a.application_name = 'runner_a' AND a.datname = current_database()`,
    );
    expect(killed.rowCount).toBeGreaterThan(0);
    await eventually(async () => (await b.status()).every((status) => status.active), 5_000, 'takeover by b');
    await writing;
    await b.whenCaughtUp();
    // A's host is back: it reconnects, finds the locks taken, and stands by.
    aDown = false;
    await eventually(async () => (await a.status()).every((status) => !status.active && status.state === 'standby'), 5_000, 'a standing by');
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId, ledgerId: 'eur' };
    let n = 0;
    await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: FIXTURE_ACCOUNTS, pick: (k) => (n += 1) % k, statementLimitMax: 50 });
    await Promise.all([a.stop(), b.stop()]);
    await ledger.close();
  });

  it('live: a NOTIFY after an append wakes the runner long before its poll interval', async () => {
    const tenantId = 'live';
    const ledger = await openFixtureLedger(store, tenantId);
    const runner = runnerFor(tenantId, { pollIntervalMs: 60_000 });
    runner.start();
    await runner.whenCaughtUp();
    // Past the runner's quick re-reads after activity, into its 60 s sleep.
    await new Promise((resolve) => setTimeout(resolve, 2_600));
    await ledger.transfer({ transferId: 'live-1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR' });
    const tookMs = await eventually(async () => (await models.balance(tenantId, 'eur', 'alice'))?.posted === '5.00', 5_000, 'notified update');
    // Polling alone would have read again only ~2.5 s after the append.
    expect(tookMs).toBeLessThan(1_000);
    await runner.stop();

    // The control: without LISTEN the same runner only polls, and does not see it within the same
    // time. (Its store returns at once: a read waiting out other sessions' open transactions would see it.)
    const impatient = await PostgresEventStore.open({ pool: db.app });
    const polling = runnerFor(tenantId, { pollIntervalMs: 60_000, notifyChannel: null, store: impatient });
    polling.start();
    await polling.whenCaughtUp();
    // Its re-reads after activity back off 5 ms, 10 ms, ... : the one after ~5.1 s, then ~10.2 s.
    await new Promise((resolve) => setTimeout(resolve, 5_600));
    await ledger.transfer({ transferId: 'live-2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR' });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await models.balance(tenantId, 'eur', 'alice'))?.posted).toBe('5.00');
    await polling.stop();
    await ledger.close();
  });

  it('rebuild resets and replays a projection while a writer keeps appending, and the read models then equal replay', async () => {
    const tenantId = 'rebuild';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 'before', 60, 4);
    const runner = runnerFor(tenantId, { batchSize: 10 });
    runner.start();
    await runner.whenCaughtUp();
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing; n += 1) await writeTransfers(ledger, `during-${n}`, 3, 3);
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await runner.rebuild(HISTORY_PROJECTION, tenantId);
    await runner.rebuild(BALANCES_PROJECTION, tenantId);
    await new Promise((resolve) => setTimeout(resolve, 200));
    writing = false;
    await writer;
    await runner.whenCaughtUp();
    const statuses = await runner.status();
    await runner.stop();
    for (const name of [BALANCES_PROJECTION, HISTORY_PROJECTION]) {
      expect(statusOf(statuses, name)).toMatchObject({ generation: 1, eventsApplied: ledger.version, lagEvents: 0 });
    }
    const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId, ledgerId: 'eur' };
    let n = 0;
    await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: FIXTURE_ACCOUNTS, pick: (k) => (n += 1) % k });
    await ledger.close();
  });

  it('a projection that throws stops at that event under the default policy, with its position, while the others keep running; retry resumes it', async () => {
    const tenantId = 'stop-policy';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 'a', 20, 5);
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    await writeTransfers(ledger, 'b', 20, 5);
    const poisonEntry = (await globalLog(store, tenantId)).find((entry) => entry.event.data['transferId'] === 'poison');
    const poisonVersion = poisonEntry?.event.ledgerVersion as number;
    let poisoned = true;
    const errors: Error[] = [];
    const runner = runnerFor(tenantId, { batchSize: 500, projections: [balancesProjection(), seenProjection('seen', () => poisoned)], onError: (error) => errors.push(error) });
    runner.start();
    await runner.whenCaughtUp();
    const seen = statusOf(await runner.status(), 'seen');
    expect(seen.state).toBe('failed');
    expect(seen.lastError?.position).toBe(poisonEntry?.position);
    expect(seen.lastError?.message).toContain(`failed at position ${poisonEntry?.position as string}`);
    expect(seen.lastError?.message).toContain('cannot handle the poison transfer');
    // Everything before the poison is applied (the batch was retried event by event), nothing after.
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual(Array.from({ length: poisonVersion - 1 }, (_, i) => i + 1));
    expect(seen.eventsApplied).toBe(poisonVersion - 1);
    expect(seen.lagEvents).toBe(ledger.version - poisonVersion + 1);
    expect(errors.some((error) => error instanceof ProjectionFailedError && error.event.position === poisonEntry?.position)).toBe(true);
    // The other projection went on to the end.
    expect(statusOf(await runner.status(), BALANCES_PROJECTION)).toMatchObject({ state: 'live', eventsApplied: ledger.version, lastError: null });
    await expectBalancesAgree(models, ledger, tenantId);

    poisoned = false;
    runner.retry('seen', tenantId);
    await eventually(async () => statusOf(await runner.status(), 'seen').eventsApplied === ledger.version, 5_000, 'resumed projection');
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    await runner.stop();
    await ledger.close();
  });

  it('under skip-with-record the failing event is recorded with its position and error, skipped, and the projection goes on', async () => {
    const tenantId = 'skip-policy';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 'a', 10, 5);
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    await writeTransfers(ledger, 'b', 10, 5);
    const poisonEntry = (await globalLog(store, tenantId)).find((entry) => entry.event.data['transferId'] === 'poison');
    const poisonVersion = poisonEntry?.event.ledgerVersion as number;
    const runner = runnerFor(tenantId, { projections: [seenProjection('seen', () => true)], errorPolicy: 'skip-with-record' });
    runner.start();
    await runner.whenCaughtUp();
    const seen = statusOf(await runner.status(), 'seen');
    await runner.stop();
    // Events after the skipped one were handled: its error is no longer current, the skip stays counted.
    expect(seen).toMatchObject({ state: 'live', eventsApplied: ledger.version - 1, eventsSkipped: 1, lagEvents: 0, lastError: null });
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1).filter((v) => v !== poisonVersion));
    const { rows } = await db.admin.query('SELECT position, ledger_id, ledger_version, event_type, error FROM ledgerkit.projection_failures WHERE tenant_id = $1', [tenantId]);
    expect(rows).toEqual([
      { position: poisonEntry?.position, ledger_id: 'eur', ledger_version: String(poisonVersion), event_type: 'TransferPosted', error: expect.stringContaining('cannot handle the poison transfer') },
    ]);
    await ledger.close();
  });

  it('under skip-with-record a skipped event is the only one the balances model lacks: the ledger\'s later events apply, from the runner and from the inline hook', async () => {
    const tenantId = 'skip-balances';
    const withPoints = new CurrencyRegistry([{ code: 'POINTS', scale: 0 }]);
    const ledger = await Ledger.open({ store, tenantId, ledgerId: 'eur', currencies: withPoints, snapshotEveryEvents: 0 });
    await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
    // The runner's registry has no POINTS: this event does not decode, and is skipped.
    await ledger.openAccount({ accountId: 'points', currency: 'POINTS', type: 'liability' });
    for (let n = 0; n < 5; n += 1) await ledger.transfer({ transferId: `after-skip-${n}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
    await ledger.close();
    const runner = runnerFor(tenantId, { errorPolicy: 'skip-with-record' });
    runner.start();
    await runner.whenCaughtUp();
    const statuses = await runner.status();
    await runner.stop();
    for (const projection of [BALANCES_PROJECTION, HISTORY_PROJECTION]) {
      expect(statusOf(statuses, projection)).toMatchObject({ eventsApplied: 7, eventsSkipped: 1, lagEvents: 0 });
    }
    expect((await models.balance(tenantId, 'eur', 'alice'))?.posted).toBe('5.00');
    expect((await models.balance(tenantId, 'eur', 'cash'))?.posted).toBe('5.00');
    expect(await models.balance(tenantId, 'eur', 'points')).toBeUndefined();
    // With the runner stopped, an append through the inline hook reaches the model at once: it
    // found the ledger's version where its append continues the stream.
    const inlineStore = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: inlineBalances({ currencies: withPoints }) });
    const again = await Ledger.open({ store: inlineStore, tenantId, ledgerId: 'eur', currencies: withPoints, snapshotEveryEvents: 0 });
    expect(await again.transfer({ transferId: 'inline-after-skip', debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' })).toMatchObject({ ok: true });
    await again.close();
    expect((await models.balance(tenantId, 'eur', 'alice'))?.posted).toBe('15.00');
  });

  it('under skip-with-record an error of the database\'s setup (a missing table, a missing grant) skips nothing: the projection stops there', async () => {
    for (const [label, sql, sqlstate] of [
      ['missing table', 'INSERT INTO test_seen.no_such_table VALUES (1)', '42P01'],
      ['missing grant', 'INSERT INTO ledgerkit.events (tenant_id) VALUES ($1)', '42501'],
    ] as const) {
      const tenantId = `skip-setup-${sqlstate.toLowerCase()}`;
      const ledger = await openFixtureLedger(store, tenantId);
      await writeTransfers(ledger, 'a', 5, 5);
      const broken = eventProjection({
        name: 'broken-setup',
        errorPolicy: 'skip-with-record',
        async handle({ client }) {
          await client.query(sql, sql.includes('$1') ? [tenantId] : []);
        },
        async reset() {},
      });
      const runner = runnerFor(tenantId, { projections: [broken] });
      runner.start();
      await runner.whenCaughtUp();
      const status = statusOf(await runner.status(), 'broken-setup');
      await runner.stop();
      expect(status, label).toMatchObject({ state: 'failed', eventsApplied: 0, eventsSkipped: 0 });
      expect(status.lastError?.message, label).toContain(`not skipped: SQLSTATE ${sqlstate}`);
      const { rows } = await db.admin.query('SELECT count(*)::int AS n FROM ledgerkit.projection_failures WHERE tenant_id = $1', [tenantId]);
      expect(rows[0].n, label).toBe(0);
      await ledger.close();
    }
  });

  it('status reports the checkpoint, the lag in events and in seconds, and the events applied', async () => {
    const tenantId = 'status';
    let now = Date.now() - 120_000;
    const ledger = await openFixtureLedger(store, tenantId, 'eur', () => now);
    await writeTransfers(ledger, 'a', 10, 5);
    const runner = runnerFor(tenantId);
    runner.start();
    await runner.whenCaughtUp();
    await runner.stop();
    const handled = ledger.version;
    now += 30_000;
    await writeTransfers(ledger, 'b', 7, 7);
    const idle = runnerFor(tenantId);
    const before = statusOf(await idle.status(), BALANCES_PROJECTION);
    const log = await globalLog(store, tenantId);
    expect(before).toMatchObject({ state: 'stopped', active: false, checkpoint: log[handled - 1]?.position, eventsApplied: handled, lagEvents: 7, lastError: null });
    expect(before.lagSeconds).toBeGreaterThanOrEqual(90);
    expect(before.lagSeconds).toBeLessThan(120);
    expect(before.lastEventRecordedAt).toBe(log[handled - 1]?.event.recordedAt);
    idle.start();
    await idle.whenCaughtUp();
    const after = statusOf(await idle.status(), BALANCES_PROJECTION);
    await idle.stop();
    expect(after).toMatchObject({ state: 'live', active: true, checkpoint: log[log.length - 1]?.position, eventsApplied: ledger.version, lagEvents: 0, lagSeconds: 0 });
    await ledger.close();
  });

  it('projects several tenants and ledgers side by side, each with its own checkpoint', async () => {
    const tenants = ['multi-a', 'multi-b'];
    const ledgers: Ledger[] = [];
    for (const tenantId of tenants) {
      for (const ledgerId of ['eur', 'eur-2']) {
        const ledger = await openFixtureLedger(store, tenantId, ledgerId);
        await writeTransfers(ledger, `${tenantId}-${ledgerId}`, 15, 5);
        ledgers.push(ledger);
      }
    }
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: tenants, projections: [balancesProjection(), historyProjection()], currencies, batchSize: 7 }));
    runner.start();
    await runner.whenCaughtUp();
    const statuses = await runner.status();
    await runner.stop();
    expect(statuses).toHaveLength(4);
    for (const status of statuses) expect(status).toMatchObject({ state: 'live', eventsApplied: 2 * ledgers[0]!.version, lagEvents: 0 });
    for (const ledger of ledgers) {
      await expectBalancesAgree(models, ledger, ledger.writer.tenantId, ledger.writer.ledgerId);
      await ledger.close();
    }
  });

  it('live, liveBatchDelayMs gathers a stream of small appends into fewer batches, with nothing lost; without it each append is its own batch', async () => {
    const tenantId = 'linger';
    const ledger = await openFixtureLedger(store, tenantId);
    const appendSpaced = async (prefix: string): Promise<void> => {
      for (let i = 0; i < 10; i += 1) {
        await ledger.transfer({ transferId: `${prefix}-${i}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const batchesOf = async (liveBatchDelayMs: number, prefix: string, expectedPosted: string): Promise<BatchCommitted[]> => {
      const batches: BatchCommitted[] = [];
      let counting = false;
      const runner = runnerFor(tenantId, { projections: [balancesProjection()], liveBatchDelayMs, onBatch: (batch) => counting && batches.push(batch) });
      runner.start();
      await runner.whenCaughtUp();
      counting = true;
      await appendSpaced(prefix);
      await eventually(async () => (await models.balance(tenantId, 'eur', 'alice'))?.posted === expectedPosted, 10_000, `${prefix} applied`);
      await runner.stop();
      return batches;
    };
    // 10 appends 50 ms apart: a runner that waits 300 ms after each live batch sees them in a few.
    const gathered = await batchesOf(300, 'gathered', '10.00');
    expect(gathered.reduce((sum, batch) => sum + batch.events, 0)).toBe(10);
    expect(gathered.length).toBeLessThanOrEqual(4);
    const prompt = await batchesOf(0, 'prompt', '20.00');
    expect(prompt.reduce((sum, batch) => sum + batch.events, 0)).toBe(10);
    expect(prompt.length).toBeGreaterThanOrEqual(6);
    expect(() => runnerFor(tenantId, { liveBatchDelayMs: 1_001 })).toThrow(/liveBatchDelayMs/);
    expect(() => runnerFor(tenantId, { projections: [{ ...balancesProjection(), liveBatchDelayMs: -1 }] })).toThrow(/liveBatchDelayMs of projection balances/);
    await ledger.close();
  });

  it("a projection's own liveBatchDelayMs overrides the runner's, and whenCaughtUp and stop cut the wait short", async () => {
    const tenantId = 'linger-own';
    const ledger = await openFixtureLedger(store, tenantId);
    const batches: BatchCommitted[] = [];
    let onNext: (() => void) | undefined;
    const runner = runnerFor(tenantId, {
      projections: [{ ...balancesProjection(), liveBatchDelayMs: 1_000 }],
      liveBatchDelayMs: 0,
      onBatch: (batch) => {
        batches.push(batch);
        onNext?.();
      },
    });
    runner.start();
    await runner.whenCaughtUp();
    const committed = new Promise<void>((resolve) => (onNext = resolve));
    await ledger.transfer({ transferId: 'own-1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
    await committed;
    // The projection now waits a second before it reads again; one who waits for it does not.
    await ledger.transfer({ transferId: 'own-2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
    const startedMs = performance.now();
    await runner.whenCaughtUp(5_000);
    const caughtUpMs = performance.now() - startedMs;
    expect((await models.balance(tenantId, 'eur', 'alice'))?.posted).toBe('2.00');
    expect(caughtUpMs).toBeLessThan(700);
    // Now in its wait again: stopping does not sit it out either.
    const stoppingMs = performance.now();
    await runner.stop();
    expect(performance.now() - stoppingMs).toBeLessThan(700);
    expect(batches.length).toBeGreaterThanOrEqual(2);
    await ledger.close();
  });

  it('a projection behind another reads from the log only what that one has not read yet', async () => {
    const tenantId = 'shared-tail';
    const ledger = await openFixtureLedger(store, tenantId);
    let rowsRead = 0;
    const counting = Object.create(store) as PostgresEventStore;
    counting.readAll = async (request) => {
      const page = await store.readAll(request);
      rowsRead += page.length;
      return page;
    };
    // The balances follow the log closely; the history waits before each live batch, so it always
    // finds the balances ahead of it with part of the page it asks for.
    const runner = runnerFor(tenantId, {
      store: counting,
      projections: [{ ...balancesProjection(), liveBatchDelayMs: 0 }, { ...historyProjection(), liveBatchDelayMs: 150 }],
      batchSize: 50,
    });
    runner.start();
    await runner.whenCaughtUp();
    const before = rowsRead;
    for (let round = 0; round < 6; round += 1) {
      await writeTransfers(ledger, `shared-${round}`, 20, 5);
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    await runner.whenCaughtUp();
    const written = ledger.version - FIXTURE_ACCOUNTS.length;
    // Each event read about once, not once per projection (2 × written without the shared tail;
    // on a loaded machine the history sometimes falls out of the tail and reads a page again).
    expect(rowsRead - before).toBeGreaterThanOrEqual(written);
    expect(rowsRead - before).toBeLessThan(1.75 * written);
    const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId, ledgerId: 'eur' };
    let n = 0;
    await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: FIXTURE_ACCOUNTS, pick: (k) => (n += 1) % k, statementLimitMax: 50 });
    await ledger.close();
  });

  it('refuses bad options: names, duplicates, limits', () => {
    const base = { pool: db.app, store, tenantIds: ['t'], projections: [balancesProjection()] };
    expect(() => new ProjectionRunner({ ...base, projections: [balancesProjection(), balancesProjection()] })).toThrow(/used twice/);
    expect(() => new ProjectionRunner({ ...base, projections: [{ ...balancesProjection(), name: 'Bad Name' }] })).toThrow(/must match/);
    expect(() => new ProjectionRunner({ ...base, batchSize: 0 })).toThrow(/batchSize/);
    expect(() => new ProjectionRunner({ ...base, tenantIds: [] })).toThrow(/tenantIds/);
    expect(() => new ProjectionRunner({ ...base, notifyChannel: 'x; DROP' })).toThrow(/notifyChannel/);
    expect(() => new ProjectionRunner({ ...base, tenantIds: ["x' OR 1=1"] })).toThrow(/tenant/);
  });
});

/**
 * The test database's store with every `readAll` taking 40 ms longer, so that projections started
 * together overlap in their reads (every other method the store's own). `pagesRead()` lists the
 * position each page read that found events started after (a read of one event, the status's
 * lag probe, is not a page); `failFirst` makes the first page read fail.
 */
function slowPageReads(options: { readonly failFirst?: boolean } = {}): { store: EventStore; pagesRead: () => (string | null)[] } {
  const pages: (string | null)[] = [];
  let failNext = options.failFirst === true;
  const readAll = async (request: ReadAllRequest): Promise<GlobalEvent[]> => {
    await new Promise((resolve) => setTimeout(resolve, 40));
    if (request.limit === 1) return store.readAll(request);
    if (failNext) {
      failNext = false;
      throw new Error('the first page read fails');
    }
    const page = await store.readAll(request);
    if (page.length > 0) pages.push(request.after ?? null);
    return page;
  };
  const slow = new Proxy(store, {
    get(target, property) {
      if (property === 'readAll') return readAll;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: slow, pagesRead: () => [...pages] };
}
