import { randomBytes } from 'node:crypto';
import { copyLedger, GENESIS_HASH, InMemoryEventStore, InvalidInputError, Ledger, LedgerError, SNAPSHOT_SCHEMA_VERSION, StoreUnavailableError, VersionConflictError, type CommandResult, type EventStore, type Snapshot, type StoredEvent } from '@ledgerkit/ledger-core';
import { migrate, MIGRATIONS, PostgresEventStore, SCHEMA_VERSION } from '@ledgerkit/store-postgres';
import { withTenant } from '@ledgerkit/tenant-rls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOpened, appendCall, emptyHead, encodeAfter, headAfter, rechained, transferPosted } from './support/events.js';
import { dropDatabase, openTestDatabase, withDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;
/** Returns at once: for checks of what is and is not visible yet. */
let store: PostgresEventStore;
/** Waits out other test files' open transactions on a shared server: for reads after commits. */
let patientStore: PostgresEventStore;

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app });
  patientStore = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
});

afterAll(async () => {
  await db?.close();
});

const fresh = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

async function readAllOf(reader: EventStore, tenantId: string, after: string | null = null): Promise<{ events: StoredEvent[]; last: string | null }> {
  const events: StoredEvent[] = [];
  let cursor = after;
  for (;;) {
    const page = await reader.readAll({ tenantId, after: cursor, limit: 500 });
    if (page.length === 0) return { events, last: cursor };
    events.push(...page.map((entry) => entry.event));
    cursor = page[page.length - 1]?.position ?? cursor;
  }
}

async function readStreamOf(tenantId: string, ledgerId: string): Promise<StoredEvent[]> {
  return store.readStream({ tenantId, ledgerId, direction: 'forward', limit: 10_000 });
}

/** A store that passes every call through and counts version conflicts and events read by stream. */
function spyOn(inner: EventStore): { readonly store: EventStore; readonly conflicts: number; readonly eventsRead: number } {
  const counts = { conflicts: 0, eventsRead: 0 };
  const store: EventStore = {
    append: async (request) => {
      try {
        return await inner.append(request);
      } catch (error) {
        if (error instanceof VersionConflictError) counts.conflicts += 1;
        throw error;
      }
    },
    readStream: async (request) => {
      const events = await inner.readStream(request);
      counts.eventsRead += events.length;
      return events;
    },
    readAll: (request) => inner.readAll(request),
    findByIndexKeys: (request) => inner.findByIndexKeys(request),
    saveSnapshot: (snapshot) => inner.saveSnapshot(snapshot),
    loadSnapshot: (request) => inner.loadSnapshot(request),
  };
  return {
    store,
    get conflicts() {
      return counts.conflicts;
    },
    get eventsRead() {
      return counts.eventsRead;
    },
  };
}

/** Starts an append on its own app-role connection and leaves its transaction open until commit or rollback (the first wins). */
async function openAppend(tenantId: string, ledgerId: string, events: readonly StoredEvent[], expectedVersion = 0): Promise<{ commit(): Promise<void>; rollback(): Promise<void> }> {
  const client = await db.app.connect();
  await client.query('BEGIN');
  await client.query(`SELECT set_config('ledgerkit.tenant_id', $1, true)`, [tenantId]);
  const call = appendCall(tenantId, ledgerId, expectedVersion, events);
  await client.query(call.text, call.values);
  let ended = false;
  const end = async (statement: string): Promise<void> => {
    if (ended) return;
    ended = true;
    try {
      await client.query(statement);
    } finally {
      client.release();
    }
  };
  return { commit: () => end('COMMIT'), rollback: () => end('ROLLBACK') };
}

describe('migrations', () => {
  it('running migrate again on a current schema applies nothing', async () => {
    expect(await migrate({ pool: db.admin, roles: db.roles })).toEqual({ applied: [], schemaVersion: SCHEMA_VERSION });
  });

  it('several processes migrating one fresh database at once apply each migration exactly once', async () => {
    const name = `${db.name}_m`;
    await db.admin.query(`CREATE DATABASE ${name}`);
    const pools = [0, 1, 2].map(() => db.pool(withDatabase(db.adminUrl, name), 2));
    try {
      const results = await Promise.all(pools.map((pool) => migrate({ pool, roles: db.roles })));
      const applied = results.map((result) => result.applied);
      expect(applied.filter((versions) => versions.length > 0)).toEqual([MIGRATIONS.map((migration) => migration.version)]);
      expect(applied.filter((versions) => versions.length === 0)).toHaveLength(2);
      const { rows } = await pools[0]!.query<{ n: number }>('SELECT count(*)::int AS n FROM ledgerkit.schema_migrations');
      expect(rows[0]?.n).toBe(SCHEMA_VERSION);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
      const client = await db.admin.connect();
      await dropDatabase(client, name).finally(() => client.release());
    }
  });

  it('migrate refuses a database whose schema is newer than this release', async () => {
    const client = await db.admin.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL ROLE ${db.roles.owner}`);
      await client.query(`INSERT INTO ledgerkit.schema_migrations (version, name) VALUES (999, 'from the future')`);
      await client.query('COMMIT');
      await expect(migrate({ pool: db.admin, roles: db.roles })).rejects.toThrow(/newer/);
    } finally {
      await client.query(`SET ROLE ${db.roles.owner}`);
      await client.query('DELETE FROM ledgerkit.schema_migrations WHERE version = 999');
      await client.query('RESET ROLE');
      client.release();
    }
  });
});

describe('global reads (read_global_events, migration 6)', () => {
  it('plan their page with bitmap scans off, so a log without statistics is still read by an ordered index scan', async () => {
    const { rows } = await db.admin.query<{ config: string[] | null }>(
      `SELECT proconfig AS config FROM pg_proc WHERE oid = to_regprocedure('ledgerkit.read_global_events(text, xid8, bigint, integer)')`,
    );
    expect(rows[0]?.config).toContain('enable_bitmapscan=off');
  });

  it("set the tenant for the call only: a caller's transaction with no tenant is left without one and sees no rows; one with another tenant set is refused (42501)", async () => {
    const tenantId = fresh('reader');
    const other = fresh('other');
    const ledger = await Ledger.open({ store, tenantId, ledgerId: 'eur' });
    expect((await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' })).ok).toBe(true);
    await ledger.close();
    const readSql = `SELECT tenant_id FROM ledgerkit.read_global_events($1, '0'::xid8, 0, 10)`;
    const client = await db.app.connect();
    try {
      await client.query('BEGIN');
      const read = await client.query<{ tenant_id: string }>(readSql, [tenantId]);
      const setting = await client.query<{ tenant: string }>(`SELECT coalesce(current_setting('ledgerkit.tenant_id', true), '') AS tenant`);
      const visible = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM ledgerkit.events');
      expect({ tenants: read.rows.map((row) => row.tenant_id), setting: setting.rows[0]?.tenant, visible: visible.rows[0]?.n }).toEqual({ tenants: [tenantId], setting: '', visible: 0 });
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await expect(withTenant(db.app, other, (inside) => inside.query(readSql, [tenantId]))).rejects.toMatchObject({ code: '42501' });
  });
});

describe('concurrent writers', () => {
  it('two writers on two pools never lose, duplicate or double-spend: every event once, gap-free, money conserved', async () => {
    const tenantId = fresh('bank');
    const ledgerId = 'eur';
    const appPools = [db.pool(db.appUrl, 4), db.pool(db.appUrl, 4)];
    const options = { tenantId, ledgerId, batchSizeMax: 16, conflictRetriesMax: 100, snapshotEveryEvents: 0 };
    const setup = await Ledger.open({ store: await PostgresEventStore.open({ pool: appPools[0]! }), ...options });
    await setup.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    for (const name of ['alice', 'bob']) await setup.openAccount({ accountId: name, currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } });
    await setup.transfer({ transferId: 'deposit', debitAccountId: 'cash', creditAccountId: 'alice', amount: '100.00', currency: 'EUR' });
    await setup.close();

    const spies = await Promise.all(appPools.map(async (pool) => spyOn(await PostgresEventStore.open({ pool }))));
    const ledgers = await Promise.all(spies.map((spy) => Ledger.open({ store: spy.store, ...options })));
    // 300 attempts to move 1.00 from alice, who has 100.00; each writer also retries the other's ids.
    const attempts: Promise<CommandResult>[] = [];
    for (let index = 0; index < 150; index += 1) {
      ledgers.forEach((ledger, writer) => {
        attempts.push(ledger.transfer({ transferId: `pay-${writer}-${index}`, debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' }));
        if (index % 10 === 0) attempts.push(ledger.transfer({ transferId: `pay-${1 - writer}-${index}`, debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' }));
      });
    }
    const results = await Promise.all(attempts);
    await Promise.all(ledgers.map((ledger) => ledger.close()));

    expect(spies[0]!.conflicts + spies[1]!.conflicts, 'version conflicts between the two writers').toBeGreaterThan(0);
    const rejected = results.filter((result) => !result.ok);
    expect(new Set(rejected.map((result) => (result.ok ? '' : result.code)))).toEqual(new Set(['insufficient_funds']));

    const events = await readStreamOf(tenantId, ledgerId);
    expect(events.map((event) => event.ledgerVersion)).toEqual(events.map((_, index) => index + 1));
    const payments = events.filter((event) => event.type === 'TransferPosted' && event.data['transferId'] !== 'deposit');
    const paymentIds = payments.map((event) => event.data['transferId']);
    expect(new Set(paymentIds).size, 'no transfer recorded twice').toBe(paymentIds.length);
    expect(paymentIds).toHaveLength(100);

    const check = await Ledger.open({ store: patientStore, tenantId, ledgerId });
    expect(check.balance('alice')?.posted).toBe('0.00');
    expect(check.balance('bob')?.posted).toBe('100.00');
    const trial = await check.trialBalance();
    expect(trial.totals.every((total) => total.balanced)).toBe(true);
    expect((await check.verifyChain()).ok).toBe(true);
    await check.close();

    const logged = (await readAllOf(patientStore, tenantId)).events;
    expect(logged).toEqual(events);
  });
});

describe('an append sent before the one below it has committed (chain fence, migrations 4 and 5)', () => {
  /** Settles to what the promise did, without throwing; `pending` while it has not. */
  const track = <T,>(promise: Promise<T>): { state: 'pending' | 'fulfilled' | 'rejected'; value?: T; reason?: unknown } => {
    const tracked: { state: 'pending' | 'fulfilled' | 'rejected'; value?: T; reason?: unknown } = { state: 'pending' };
    promise.then(
      (value) => Object.assign(tracked, { state: 'fulfilled', value }),
      (reason: unknown) => Object.assign(tracked, { state: 'rejected', reason }),
    );
    return tracked;
  };

  async function stacked(outcome: 'commit' | 'rollback'): Promise<{ tenantId: string; ledgerId: string; base: StoredEvent[]; below: StoredEvent[]; above: StoredEvent[]; upper: ReturnType<typeof track> }> {
    const tenantId = fresh('stack');
    const ledgerId = 'main';
    const base = encodeAfter(emptyHead(tenantId, ledgerId), [accountOpened('cash'), accountOpened('revenue')]);
    await store.append({ tenantId, ledgerId, expectedVersion: 0, events: base });
    const below = encodeAfter(headAfter(emptyHead(tenantId, ledgerId), base), [transferPosted('t-below-1'), transferPosted('t-below-2')]);
    const lower = await openAppend(tenantId, ledgerId, below, base.length);
    const above = encodeAfter(headAfter(emptyHead(tenantId, ledgerId), [...base, ...below]), [transferPosted('t-above')]);
    const upper = track(store.append({ tenantId, ledgerId, expectedVersion: base.length + below.length, events: above }));
    try {
      // The upper append has inserted its rows and now waits for the lower one's stream-row lock.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(upper.reason).toBeUndefined();
      expect(upper.state).toBe('pending');
      expect(await readStreamOf(tenantId, ledgerId)).toEqual(base);
    } finally {
      if (outcome === 'commit') await lower.commit();
      else await lower.rollback();
    }
    for (let waited = 0; upper.state === 'pending' && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    return { tenantId, ledgerId, base, below, above, upper };
  }

  it('waits for the lower append and commits on top of it once that commits', async () => {
    const { tenantId, ledgerId, base, below, above, upper } = await stacked('commit');
    expect(upper.state).toBe('fulfilled');
    expect(upper.value).toEqual({ ledgerVersion: base.length + below.length + above.length });
    expect(await readStreamOf(tenantId, ledgerId)).toEqual([...base, ...below, ...above]);
    expect((await readAllOf(patientStore, tenantId)).events).toEqual([...base, ...below, ...above]);
  });

  it('is refused with VersionConflictError, writing nothing, when the lower append rolls back', async () => {
    const { tenantId, ledgerId, base, upper } = await stacked('rollback');
    expect(upper.state).toBe('rejected');
    expect(upper.reason).toBeInstanceOf(VersionConflictError);
    expect(await readStreamOf(tenantId, ledgerId)).toEqual(base);
    expect((await store.findByIndexKeys({ tenantId, ledgerId, keys: ['transfer:t-above', 'transfer:t-below-1'] })).size).toBe(0);
    expect((await readAllOf(patientStore, tenantId)).events).toEqual(base);
  });

  it('waits for a lower append that is still inserting its events (migration 5), instead of being refused because it reached the fence first', async () => {
    const tenantId = fresh('slow');
    const ledgerId = 'main';
    const base = encodeAfter(emptyHead(tenantId, ledgerId), [accountOpened('cash'), accountOpened('revenue')]);
    await store.append({ tenantId, ledgerId, expectedVersion: 0, events: base });
    const head = headAfter(emptyHead(tenantId, ledgerId), base);
    // A competing append of the same version, left open: it holds the stream row and the row at
    // version 3, so the lower append below blocks in the middle of inserting its events.
    const blocker = await openAppend(tenantId, ledgerId, encodeAfter(head, [transferPosted('t-blocker')]), base.length);
    const below = encodeAfter(head, [transferPosted('t-below-1'), transferPosted('t-below-2')]);
    const above = encodeAfter(headAfter(head, below), [transferPosted('t-above')]);
    let lower: ReturnType<typeof track> | undefined;
    let upper: ReturnType<typeof track> | undefined;
    try {
      lower = track(store.append({ tenantId, ledgerId, expectedVersion: base.length, events: below }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      upper = track(store.append({ tenantId, ledgerId, expectedVersion: base.length + below.length, events: above }));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect([lower.state, upper.state]).toEqual(['pending', 'pending']);
    } finally {
      await blocker.rollback();
    }
    for (let waited = 0; (lower.state === 'pending' || upper?.state === 'pending') && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(lower.reason).toBeUndefined();
    expect(upper?.reason).toBeUndefined();
    expect(upper?.value).toEqual({ ledgerVersion: base.length + below.length + above.length });
    expect(await readStreamOf(tenantId, ledgerId)).toEqual([...base, ...below, ...above]);
    expect((await readAllOf(patientStore, tenantId)).events).toEqual([...base, ...below, ...above]);
  });

  it('an append behind committed events is a version conflict even when it also repeats a key', async () => {
    const tenantId = fresh('stale');
    const ledgerId = 'main';
    const head = emptyHead(tenantId, ledgerId);
    const first = encodeAfter(head, [accountOpened('cash'), transferPosted('t-1')]);
    await store.append({ tenantId, ledgerId, expectedVersion: 0, events: first });
    const stale = encodeAfter(head, [accountOpened('cash'), transferPosted('t-1')]);
    await expect(store.append({ tenantId, ledgerId, expectedVersion: 0, events: stale })).rejects.toBeInstanceOf(VersionConflictError);
    expect(await readStreamOf(tenantId, ledgerId)).toEqual(first);
  });
});

describe('failed appends leave nothing behind', () => {
  it('a rolled-back append leaves no trace, and readAll skips nothing that commits after it', async () => {
    const tenantId = fresh('rollback');
    const ledgerId = 'main';
    const head = emptyHead(tenantId, ledgerId);
    const doomed = encodeAfter(head, [accountOpened('cash'), transferPosted('t-doomed')]);
    await (await openAppend(tenantId, ledgerId, doomed)).rollback();
    expect(await readStreamOf(tenantId, ledgerId)).toEqual([]);
    expect((await store.findByIndexKeys({ tenantId, ledgerId, keys: ['transfer:t-doomed'] })).size).toBe(0);
    const streams = await withTenant(db.app, tenantId, async (client) => (await client.query('SELECT count(*)::int AS n FROM ledgerkit.ledger_streams')).rows[0]);
    expect(streams).toEqual({ n: 0 });

    const kept = encodeAfter(head, [accountOpened('cash'), transferPosted('t-doomed'), transferPosted('t-2')]);
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 0, events: kept })).toEqual({ ledgerVersion: 3 });
    expect(await readStreamOf(tenantId, ledgerId)).toEqual(kept);
    expect((await readAllOf(patientStore, tenantId)).events).toEqual(kept);
  });

  it('a connection killed in the middle of an append leaves nothing partial, and the stream goes on', async () => {
    const tenantId = fresh('killed');
    const ledgerId = 'main';
    const head = emptyHead(tenantId, ledgerId);
    const opening = encodeAfter(head, [accountOpened('cash'), accountOpened('revenue')]);
    await store.append({ tenantId, ledgerId, expectedVersion: 0, events: opening });
    const batch = encodeAfter(headAfter(head, opening), [transferPosted('t-1'), transferPosted('t-2'), transferPosted('t-blocked')]);

    // An uncommitted event claiming the last key makes the append wait after it has written the
    // stream row and the first events: the backend is killed right there.
    const blocker = await db.admin.connect();
    const killer = db.pool(db.adminUrl, 1);
    try {
      await blocker.query('BEGIN');
      await blocker.query(
        `INSERT INTO ledgerkit.events (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data, recorded_at, effective_at, metadata, previous_hash, hash, transfer_key)
         VALUES ($1, $2, 999, 'blocker', 'TransferPosted', 2, '{}', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', '{}', '', '', 't-blocked')`,
        [tenantId, ledgerId],
      );
      const appending = store.append({ tenantId, ledgerId, expectedVersion: 2, events: batch }).then(
        () => 'appended',
        (error: unknown) => error,
      );
      let pid: number | undefined;
      for (let polls = 0; pid === undefined && polls < 500; polls += 1) {
        const { rows } = await killer.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = $1 AND wait_event_type = 'Lock' AND query LIKE '%append_events%'`,
          [db.roles.app],
        );
        pid = rows[0]?.pid;
        if (pid === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(pid, 'the append waiting on the blocked key').toBeDefined();
      await killer.query('SELECT pg_terminate_backend($1)', [pid]);
      const outcome = await appending;
      expect(outcome).toBeInstanceOf(Error);
      expect(outcome).not.toBeInstanceOf(VersionConflictError);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }

    expect(await readStreamOf(tenantId, ledgerId)).toEqual(opening);
    const keys = ['transfer:t-1', 'transfer:t-2', 'transfer:t-blocked'];
    expect((await store.findByIndexKeys({ tenantId, ledgerId, keys })).size).toBe(0);
    expect((await readAllOf(patientStore, tenantId)).events).toEqual(opening);
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 2, events: batch })).toEqual({ ledgerVersion: 5 });
    expect((await readAllOf(patientStore, tenantId)).events).toEqual([...opening, ...batch]);
  });
});

describe('payload texts', () => {
  it('data and metadata holding control characters, quotes, backslashes and non-ASCII text come back exactly as appended', async () => {
    const tenantId = fresh('payloads');
    const ledgerId = 'main';
    const awkward = 'sep\u001e unit\u001f quote" backslash\\ brace} bracket] comma, zoë ∑ 🙂 \u0001 \u007f';
    const awkwardKey = 'k\u001e"\\}],ë🙂\u0001';
    const head = emptyHead(tenantId, ledgerId);
    const encoded = encodeAfter(head, [accountOpened('cash'), transferPosted('t-1'), accountOpened('bank')]);
    // Copies with awkward texts in the envelope's metadata and in the data, hashed again.
    const events = rechained(head, encoded, (event, index) => ({
      metadata: index === 1 ? { note: awkward, [awkwardKey]: 'key' } : {},
      data: index === 2 ? { ...event.data, metadata: { [awkwardKey]: awkward } } : event.data,
    }));
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 0, events })).toEqual({ ledgerVersion: 3 });
    expect(await readStreamOf(tenantId, ledgerId)).toEqual(events);
  });

  it('envelope strings that are empty or hold the separators the append joins columns with are stored exactly too', async () => {
    const tenantId = fresh('separators');
    const ledgerId = 'main';
    const head = emptyHead(tenantId, ledgerId);
    const first = rechained(head, encodeAfter(head, [accountOpened('cash')]), () => ({ correlationId: '', causationId: 'a\u001eb' }));
    const second = rechained(headAfter(head, first), encodeAfter(headAfter(head, first), [accountOpened('bank'), accountOpened('till')]), (_event, index) => ({
      correlationId: index === 0 ? '\u001f' : null,
      causationId: index === 0 ? null : 'x\u001fy',
    }));
    const afterSecond = headAfter(head, [...first, ...second]);
    const third = rechained(afterSecond, encodeAfter(afterSecond, [accountOpened('vault')]), () => ({ correlationId: 'plain', causationId: null }));
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 0, events: first })).toEqual({ ledgerVersion: 1 });
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 1, events: second })).toEqual({ ledgerVersion: 3 });
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 3, events: third })).toEqual({ ledgerVersion: 4 });
    expect(await readStreamOf(tenantId, ledgerId)).toEqual([...first, ...second, ...third]);
  });
});

describe('global reads in commit order', () => {
  it('events committed after an older open transaction are held back until it ends, then read in commit order with nothing skipped', async () => {
    const tenantId = fresh('horizon');
    const before = encodeAfter(emptyHead(tenantId, 'a'), [accountOpened('cash')]);
    await store.append({ tenantId, ledgerId: 'a', expectedVersion: 0, events: before });
    const seen = await readAllOf(patientStore, tenantId);
    expect(seen.events).toEqual(before);

    const slowEvents = encodeAfter(emptyHead(tenantId, 'slow'), [accountOpened('cash'), transferPosted('t-slow')]);
    const slow = await openAppend(tenantId, 'slow', slowEvents);
    try {
      const fastEvents = encodeAfter(emptyHead(tenantId, 'fast'), [accountOpened('cash')]);
      await store.append({ tenantId, ledgerId: 'fast', expectedVersion: 0, events: fastEvents });

      // Committed, but behind the open transaction: not readable yet, and counted as held back.
      expect(await store.readAll({ tenantId, after: seen.last, limit: 100 })).toEqual([]);
      const lag = await store.globalReadLag(tenantId);
      expect(lag.oldestOpenXid).not.toBeNull();
      expect(lag.eventsHeldBack).toBeGreaterThanOrEqual(1);
      expect(lag.heldBackMs).toBeGreaterThan(0);

      await slow.commit();
      const resumed = await readAllOf(patientStore, tenantId, seen.last);
      expect(resumed.events).toEqual([...slowEvents, ...fastEvents]);
    } finally {
      await slow.rollback();
    }
  });

  it('after an older open transaction rolls back, the events held behind it are read and nothing of it appears', async () => {
    const tenantId = fresh('horizon-rb');
    const doomed = encodeAfter(emptyHead(tenantId, 'doomed'), [accountOpened('cash')]);
    const slow = await openAppend(tenantId, 'doomed', doomed);
    const kept = encodeAfter(emptyHead(tenantId, 'kept'), [accountOpened('cash'), transferPosted('t-kept')]);
    try {
      await store.append({ tenantId, ledgerId: 'kept', expectedVersion: 0, events: kept });
      expect(await store.readAll({ tenantId, after: null, limit: 100 })).toEqual([]);
    } finally {
      await slow.rollback();
    }
    expect((await readAllOf(patientStore, tenantId)).events).toEqual(kept);
  });

  it('with nothing held back the lag is zero', async () => {
    const tenantId = fresh('lag');
    await store.append({ tenantId, ledgerId: 'a', expectedVersion: 0, events: encodeAfter(emptyHead(tenantId, 'a'), [accountOpened('cash')]) });
    await readAllOf(patientStore, tenantId);
    const lag = await patientStore.globalReadLag(tenantId);
    // On a shared server another file may hold a transaction open; this tenant's event predates it.
    expect(lag).toMatchObject({ eventsHeldBack: 0, heldBackMs: 0 });
  });

  it('a position that this store did not hand out is rejected as invalid input', async () => {
    await expect(store.readAll({ tenantId: 'acme', after: '42', limit: 10 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(store.readAll({ tenantId: 'acme', after: "0'; DROP TABLE ledgerkit.events; --", limit: 10 })).rejects.toBeInstanceOf(InvalidInputError);
  });
});

describe('snapshots', () => {
  it('a writer reopened after a snapshot reads only the tail of the stream', async () => {
    const tenantId = fresh('snap');
    const ledgerId = 'eur';
    const first = await Ledger.open({ store, tenantId, ledgerId, snapshotEveryEvents: 0 });
    await first.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await first.openAccount({ accountId: 'sales', currency: 'EUR', type: 'income' });
    for (let index = 0; index < 20; index += 1) {
      await first.transfer({ transferId: `sale-${index}`, debitAccountId: 'cash', creditAccountId: 'sales', amount: '2.50', currency: 'EUR' });
    }
    await first.writer.saveSnapshot();
    await first.transfer({ transferId: 'sale-tail', debitAccountId: 'cash', creditAccountId: 'sales', amount: '1.00', currency: 'EUR' });
    await first.close();

    const spy = spyOn(store);
    const reopened = await Ledger.open({ store: spy.store, tenantId, ledgerId, snapshotEveryEvents: 0 });
    expect(reopened.version).toBe(23);
    expect(reopened.balance('cash')?.posted).toBe('51.00');
    // The snapshot's own event (to check its hash) and the one event after it.
    expect(spy.eventsRead).toBe(2);
    const duplicate = await reopened.transfer({ transferId: 'sale-3', debitAccountId: 'cash', creditAccountId: 'sales', amount: '2.50', currency: 'EUR' });
    expect(duplicate).toMatchObject({ ok: true, duplicate: true });
    await reopened.close();
  });

  it('a snapshot row the application role altered in the table, still well formed (an account dropped, a balance raised, a hold on a missing account, a time moved ahead), is not used: the writer opens as from the log', async () => {
    const ledgerId = 'eur';
    const flags = { debitsMustNotExceedCredits: true };
    const edits: [string, string][] = [
      // bob and the hold on him dropped.
      ['dropped', `state = jsonb_set(jsonb_set(state, '{accounts}', (SELECT jsonb_agg(a) FROM jsonb_array_elements(state->'accounts') a WHERE a->>'id' <> 'bob')), '{holds}', '[]')`],
      // alice's posted credits: 1,000,000.00.
      ['raised', `state = jsonb_set(state, '{accounts}', (SELECT jsonb_agg(CASE WHEN a->>'id' = 'alice' THEN jsonb_set(a, '{balances,1}', '"100000000"') ELSE a END) FROM jsonb_array_elements(state->'accounts') a))`],
      ['nobody', `state = jsonb_set(state, '{holds,0,postings,1,0}', '"nobody"')`],
      ['future', `state = jsonb_set(state, '{lastRecordedAtMs}', to_jsonb(32503680000000::bigint))`],
    ];
    for (const [name, change] of edits) {
      const tenantId = fresh(`snap-${name}`);
      const now = Date.parse('2025-06-01T12:00:00.000Z');
      const open = (s: EventStore): Promise<Ledger> => Ledger.open({ store: s, tenantId, ledgerId, snapshotEveryEvents: 0, clock: () => now });
      const first = await open(store);
      for (const result of [
        await first.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }),
        // Keys of several lengths: jsonb gives them back in another order.
        await first.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags, metadata: { zeta: '1', a: '2', mm: '3' } }),
        await first.openAccount({ accountId: 'bob', currency: 'EUR', type: 'liability', flags }),
        await first.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' }),
        await first.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '3.00', currency: 'EUR', metadata: { long: '1', k: '2' } }),
      ]) {
        expect(result.ok, JSON.stringify(result)).toBe(true);
      }
      await first.writer.saveSnapshot();
      await first.close();
      const sound = spyOn(store);
      await (await open(sound.store)).close();
      expect(sound.eventsRead, `${name}: the sound snapshot is used (its own event read, no replay)`).toBe(1);

      const updated = await withTenant(db.app, tenantId, (client) => client.query(`UPDATE ledgerkit.snapshots SET ${change} WHERE tenant_id = $1 AND ledger_id = $2`, [tenantId, ledgerId]));
      expect(updated.rowCount, `${name}: the application role may UPDATE its tenant's snapshot`).toBe(1);
      const spy = spyOn(store);
      const reopened = await open(spy.store);
      try {
        expect(spy.eventsRead, `${name}: the altered snapshot's event, then the whole log`).toBe(1 + 5);
        expect(reopened.balance('alice'), name).toMatchObject({ creditsPosted: '10.00', debitsPending: '3.00' });
        expect(reopened.writer.account('bob')?.creditsPending, name).toBe(300n);
        expect(await reopened.openAccount({ accountId: 'bob', currency: 'EUR', type: 'liability', flags }), name).toMatchObject({ ok: true, duplicate: true, ledgerVersion: 3 });
        expect(await reopened.transfer({ transferId: 'big', debitAccountId: 'alice', creditAccountId: 'cash', amount: '500.00', currency: 'EUR' }), name).toMatchObject({ ok: false, code: 'insufficient_funds' });
        expect(await reopened.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' }), name).toMatchObject({ ok: true, recordedAt: new Date(now).toISOString() });
      } finally {
        await reopened.close();
      }
    }
  });

  it('the first open after an upgrade replaces a snapshot of an earlier schema version with a current one, though it writes nothing', async () => {
    const tenantId = fresh('snap-upgrade');
    const ledgerId = 'eur';
    const open = (): Promise<Ledger> => Ledger.open({ store, tenantId, ledgerId, snapshotEveryEvents: 2 });
    const first = await open();
    await first.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await first.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
    await first.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
    await first.writer.saveSnapshot();
    await first.close();
    // As the previous release left it.
    await db.admin.query(`UPDATE ledgerkit.snapshots SET schema_version = schema_version - 1 WHERE tenant_id = $1 AND ledger_id = $2`, [tenantId, ledgerId]);
    const upgraded = await open();
    await upgraded.close();
    expect(await store.loadSnapshot({ tenantId, ledgerId })).toMatchObject({ schemaVersion: SNAPSHOT_SCHEMA_VERSION, ledgerVersion: 3 });
    // And the next open uses it: no replay.
    const spy = spyOn(store);
    await (await Ledger.open({ store: spy.store, tenantId, ledgerId, snapshotEveryEvents: 2 })).close();
    expect(spy.eventsRead).toBe(1);
  });
});

describe('PostgresEventStore.open', () => {
  it('refuses a pool of a superuser and a pool of a member of the table owner', async () => {
    await expect(PostgresEventStore.open({ pool: db.admin })).rejects.toThrow(/superuser|BYPASSRLS/);
    const member = `lk_${randomBytes(4).toString('hex')}_member`;
    await db.admin.query(`CREATE ROLE ${member} LOGIN PASSWORD 'member' IN ROLE ${db.roles.owner}`);
    const url = new URL(db.adminUrl);
    url.username = member;
    url.password = 'member';
    const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
    try {
      await expect(PostgresEventStore.open({ pool })).rejects.toThrow(/owner/);
    } finally {
      await pool.end();
      await db.admin.query(`DROP ROLE ${member}`);
    }
  });

  it('refuses an application role that may write the events or the stream rows itself (a broad GRANT), which could go around the fences', async () => {
    const appPool = db.pool(db.appUrl, 1);
    for (const [privilege, table] of [['INSERT', 'events'], ['UPDATE', 'ledger_streams'], ['TRUNCATE', 'events']] as const) {
      await db.admin.query(`GRANT ${privilege} ON ledgerkit.${table} TO ${db.roles.app}`);
      try {
        await expect(PostgresEventStore.open({ pool: appPool }), `${privilege} on ${table}`).rejects.toThrow(/no write privilege of its own/);
      } finally {
        await db.admin.query(`REVOKE ${privilege} ON ledgerkit.${table} FROM ${db.roles.app}`);
      }
    }
    await expect(PostgresEventStore.open({ pool: appPool })).resolves.toBeInstanceOf(PostgresEventStore);
  });

  it('refuses an application role granted INSERT or UPDATE on some columns only, which writes those columns around the fences all the same', async () => {
    const appPool = db.pool(db.appUrl, 1);
    const grants = [
      ['INSERT (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data, recorded_at, effective_at, metadata, previous_hash, hash)', 'events'],
      ['UPDATE (version)', 'ledger_streams'],
      ['INSERT (tenant_id, ledger_id, version, last_txid)', 'ledger_streams'],
      ['UPDATE (data)', 'events'],
    ] as const;
    for (const [privilege, table] of grants) {
      await db.admin.query(`GRANT ${privilege} ON ledgerkit.${table} TO ${db.roles.app}`);
      try {
        await expect(PostgresEventStore.open({ pool: appPool }), `${privilege} on ${table}`).rejects.toThrow(/no write privilege of its own/);
      } finally {
        await db.admin.query(`REVOKE ${privilege} ON ledgerkit.${table} FROM ${db.roles.app}`);
      }
    }
    // A column grant of SELECT only writes nothing.
    await db.admin.query(`GRANT SELECT (version) ON ledgerkit.ledger_streams TO ${db.roles.app}`);
    try {
      await expect(PostgresEventStore.open({ pool: appPool })).resolves.toBeInstanceOf(PostgresEventStore);
    } finally {
      await db.admin.query(`REVOKE SELECT (version) ON ledgerkit.ledger_streams FROM ${db.roles.app}`);
    }
  });

  it('a connection that loses its server during the role check rejects with StoreUnavailableError, without crashing the process, and is not pooled again', async () => {
    const appPool = db.pool(db.appUrl, 1);
    const killer = db.pool(db.adminUrl, 1);
    // Hands out a connection whose backend is terminated once open() holds it: its first query
    // is sent only after the server's FATAL message has reached the client.
    const dying = {
      connect: async (): Promise<pg.PoolClient> => {
        const client = await appPool.connect();
        const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
        // Before node-pg's own listener, which raises the client's 'error' event for that message.
        const socket = (client as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream;
        const fatalArrived = new Promise<void>((resolve) => socket.prependOnceListener('data', () => resolve()));
        const send = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
        Object.assign(client, {
          query: async (...args: unknown[]): Promise<unknown> => {
            await killer.query('SELECT pg_terminate_backend($1)', [pid]);
            await fatalArrived;
            return send(...args);
          },
        });
        return client;
      },
    };
    await expect(PostgresEventStore.open({ pool: dying })).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(appPool.totalCount, 'the dead connection was dropped, not pooled').toBe(0);
    // The pool still serves: a fresh connection opens the store.
    await expect(PostgresEventStore.open({ pool: appPool })).resolves.toBeInstanceOf(PostgresEventStore);
  });
});

/** What `call` rejected with: its class name, code, retriability and first issue's path; fails the test if it resolved. */
async function refusal(call: () => Promise<unknown>): Promise<{ name: string; code: unknown; retriable: unknown; path: unknown }> {
  let outcome: unknown;
  try {
    outcome = await call();
  } catch (error) {
    const e = error as { constructor: { name: string }; code?: unknown; retriable?: unknown; issues?: readonly { path: unknown }[] };
    return { name: e.constructor.name, code: e.code, retriable: e.retriable, path: e.issues?.[0]?.path };
  }
  throw new Error(`expected a refusal, got ${JSON.stringify(outcome)}`);
}

const invalid = (path: readonly (string | number)[]): { name: string; code: string; retriable: boolean; path: readonly (string | number)[] } => ({
  name: 'InvalidInputError',
  code: 'invalid_input',
  retriable: false,
  path,
});

describe('bad arguments are refused with typed, non-retriable errors before anything is sent', () => {
  it('append: a ledger id off ID_PATTERN is refused, with or without events, and nothing is written', async () => {
    const tenantId = fresh('bad-ledger');
    for (const ledgerId of ['bad ledger', '', 'x\u0000', '-leading-dash', 'l'.repeat(129)]) {
      const events = ledgerId === '' ? [] : encodeAfter(emptyHead(tenantId, ledgerId), [accountOpened('cash')]);
      expect(await refusal(() => store.append({ tenantId, ledgerId, expectedVersion: 0, events })), JSON.stringify(ledgerId)).toEqual(invalid(['ledgerId']));
    }
    const { rows } = await db.admin.query('SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = $1', [tenantId]);
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('append: a batch whose hash chain breaks inside it is refused whole, and the stream then takes a correct batch', async () => {
    const tenantId = fresh('chain');
    const ledgerId = 'eur';
    const head = emptyHead(tenantId, ledgerId);
    const batch = encodeAfter(head, [accountOpened('cash'), accountOpened('revenue'), transferPosted('t-1')]);
    // Each event is the codec's own and its hash holds, but the links do not: the third event was
    // encoded after the first, the second as if it opened the stream.
    const skipsOne = [batch[0]!, batch[1]!, ...encodeAfter({ ...head, version: 2, hash: batch[0]!.hash }, [transferPosted('t-1')])];
    const twoChains = [batch[0]!, ...encodeAfter({ ...head, version: 1 }, [accountOpened('revenue')]), batch[2]!];
    expect(await refusal(() => store.append({ tenantId, ledgerId, expectedVersion: 0, events: skipsOne }))).toEqual(invalid(['events', 2, 'previousHash']));
    expect(await refusal(() => store.append({ tenantId, ledgerId, expectedVersion: 0, events: twoChains }))).toEqual(invalid(['events', 1, 'previousHash']));
    expect(await readStreamOf(tenantId, ledgerId)).toEqual([]);
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 0, events: batch })).toEqual({ ledgerVersion: 3 });
    expect(await readStreamOf(tenantId, ledgerId)).toEqual(batch);
  });

  it('append: an expectedVersion that is not a non-negative integer is InvalidInputError, not a retriable VersionConflictError', async () => {
    const tenantId = fresh('expected');
    const ledgerId = 'eur';
    const events = encodeAfter(emptyHead(tenantId, ledgerId), [accountOpened('cash')]);
    for (const expectedVersion of [Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY, 2 ** 53, '0' as unknown as number]) {
      for (const batch of [[], events]) {
        const error = await refusal(() => store.append({ tenantId, ledgerId, expectedVersion, events: batch }));
        expect(error, `${String(expectedVersion)} with ${batch.length} events`).toEqual(invalid(['expectedVersion']));
      }
    }
    expect(await readStreamOf(tenantId, ledgerId)).toEqual([]);
  });

  it('a large batch whose last transfer reuses an earlier transfer id is refused naming that key, and writes nothing (the report counts each key once, migration 8)', async () => {
    const tenantId = fresh('dup-large');
    const ledgerId = 'eur';
    const base = encodeAfter(emptyHead(tenantId, ledgerId), [accountOpened('cash'), transferPosted('dup')]);
    await store.append({ tenantId, ledgerId, expectedVersion: 0, events: base });
    const batch = encodeAfter(headAfter(emptyHead(tenantId, ledgerId), base), [
      ...Array.from({ length: 5_000 }, (_, n) => transferPosted(`bulk-${n}`)),
      transferPosted('dup'),
    ]);
    const error = await store.append({ tenantId, ledgerId, expectedVersion: 2, events: batch }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'duplicate_index_key', key: 'transfer:dup' });
    expect(await readStreamOf(tenantId, ledgerId)).toHaveLength(2);
  });

  it('a request that is not an object, or whose events or keys are not an array, is InvalidInputError at request, events or keys, not a TypeError', async () => {
    const tenantId = fresh('shapes');
    for (const request of [null, undefined, 'append']) {
      expect(await refusal(() => store.append(request as never))).toEqual(invalid(['request']));
      expect(await refusal(() => store.readStream(request as never))).toEqual(invalid(['request']));
      expect(await refusal(() => store.readAll(request as never))).toEqual(invalid(['request']));
      expect(await refusal(() => store.findByIndexKeys(request as never))).toEqual(invalid(['request']));
      expect(await refusal(() => store.loadSnapshot(request as never))).toEqual(invalid(['request']));
      expect(await refusal(() => store.saveSnapshot(request as never))).toEqual(invalid(['request']));
    }
    for (const events of [null, undefined, 'events', { length: 1 }]) {
      expect(await refusal(() => store.append({ tenantId, ledgerId: 'eur', expectedVersion: 0, events: events as never }))).toEqual(invalid(['events']));
      expect(await refusal(() => store.findByIndexKeys({ tenantId, ledgerId: 'eur', keys: events as never }))).toEqual(invalid(['keys']));
    }
    expect(await readStreamOf(tenantId, 'eur')).toEqual([]);
  });

  it('readStream: a direction other than forward or backward is refused instead of read backward', async () => {
    const tenantId = fresh('direction');
    await store.append({ tenantId, ledgerId: 'eur', expectedVersion: 0, events: encodeAfter(emptyHead(tenantId, 'eur'), [accountOpened('cash')]) });
    for (const direction of ['sideways', 'Forward', '', undefined]) {
      const request = { tenantId, ledgerId: 'eur', direction: direction as 'forward', fromVersion: 1, limit: 10 };
      expect(await refusal(() => store.readStream(request)), String(direction)).toEqual(invalid(['direction']));
    }
    expect(await store.readStream({ tenantId, ledgerId: 'eur', direction: 'backward', limit: 10 })).toHaveLength(1);
  });

  it('readAll: a position of the right shape but out of range (txid ≥ 2⁶⁴, position ≥ 2⁶³) is InvalidInputError; the largest ones are read', async () => {
    for (const after of [
      '18446744073709551616-0000000000000000000',
      '99999999999999999999-0000000000000000000',
      '00000000000000000000-9223372036854775808',
      '00000000000000000000-9999999999999999999',
      42 as unknown as string,
    ]) {
      expect(await refusal(() => store.readAll({ tenantId: 'acme', after, limit: 10 })), String(after)).toEqual(invalid(['after']));
    }
    expect(await store.readAll({ tenantId: 'acme', after: '18446744073709551615-9223372036854775807', limit: 10 })).toEqual([]);
  });

  it('ids and index keys holding NUL are InvalidInputError, not a raw database error', async () => {
    const tenantId = fresh('nul');
    const calls: [readonly (string | number)[], () => Promise<unknown>][] = [
      [['ledgerId'], () => store.readStream({ tenantId, ledgerId: 'eur\u0000', direction: 'forward', limit: 10 })],
      [['ledgerId'], () => store.findByIndexKeys({ tenantId, ledgerId: 'eur\u0000', keys: ['transfer:t-1'] })],
      [['keys', 1], () => store.findByIndexKeys({ tenantId, ledgerId: 'eur', keys: ['transfer:t-1', 'transfer:\u0000'] })],
      [['keys', 0], () => store.findByIndexKeys({ tenantId, ledgerId: 'eur', keys: [42 as unknown as string] })],
      [['ledgerId'], () => store.loadSnapshot({ tenantId, ledgerId: 'eur\u0000' })],
      [['ledgerId'], () => store.saveSnapshot({ tenantId, ledgerId: 'eur\u0000', ledgerVersion: 0, hash: GENESIS_HASH, schemaVersion: 1, state: {} })],
      [['ledgerId'], () => store.append({ tenantId, ledgerId: 'eur\u0000', expectedVersion: 0, events: [] })],
    ];
    for (const [path, call] of calls) expect(await refusal(call), JSON.stringify(path)).toEqual(invalid(path));
  });

  it('a lone UTF-16 surrogate in a snapshot hash, a ledger id or an index key is InvalidInputError, never sent as U+FFFD', async () => {
    const tenantId = fresh('surrogate');
    const good: Snapshot = { tenantId, ledgerId: 'eur', ledgerVersion: 3, hash: 'a'.repeat(64), schemaVersion: 1, state: {} };
    await store.saveSnapshot(good);
    // The driver writes an unpaired surrogate as U+FFFD: the stored hash would not be the one saved.
    expect(await refusal(() => store.saveSnapshot({ ...good, ledgerVersion: 4, hash: `${'a'.repeat(63)}\uD800` }))).toEqual(invalid(['hash']));
    expect(await store.loadSnapshot({ tenantId, ledgerId: 'eur' })).toEqual(good);
    const calls: [readonly (string | number)[], () => Promise<unknown>][] = [
      [['ledgerId'], () => store.readStream({ tenantId, ledgerId: 'eur\uDC00', direction: 'forward', limit: 10 })],
      [['ledgerId'], () => store.findByIndexKeys({ tenantId, ledgerId: '\uD83D', keys: ['transfer:t-1'] })],
      [['keys', 1], () => store.findByIndexKeys({ tenantId, ledgerId: 'eur', keys: ['transfer:t-1', 'transfer:t-\uD800'] })],
      [['ledgerId'], () => store.loadSnapshot({ tenantId, ledgerId: 'eur\uD800' })],
    ];
    for (const [path, call] of calls) expect(await refusal(call), JSON.stringify(path)).toEqual(invalid(path));
    // A surrogate pair is a character like any other.
    expect(await store.findByIndexKeys({ tenantId, ledgerId: 'eur', keys: ['transfer:t-\uD83D\uDE00'] })).toEqual(new Map());
  });

  it('saveSnapshot: fields PostgreSQL cannot store are InvalidInputError, and the saved snapshot stays', async () => {
    const tenantId = fresh('snap-bad');
    const good: Snapshot = { tenantId, ledgerId: 'eur', ledgerVersion: 3, hash: 'a'.repeat(64), schemaVersion: 1, state: { accounts: [] } };
    await store.saveSnapshot(good);
    const cases: [readonly (string | number)[], Partial<Snapshot>][] = [
      [['ledgerVersion'], { ledgerVersion: -1 }],
      [['ledgerVersion'], { ledgerVersion: Number.NaN }],
      [['ledgerVersion'], { ledgerVersion: 1.5 }],
      [['schemaVersion'], { schemaVersion: 2 ** 40 }],
      [['schemaVersion'], { schemaVersion: 2 ** 31 }],
      [['schemaVersion'], { schemaVersion: -1 }],
      [['schemaVersion'], { schemaVersion: 1.5 }],
      [['hash'], { hash: 'a\u0000' }],
      [['state'], { state: { s: '\u0000' } }],
      [['state'], { state: { ['k\u0000']: 1 } }],
      [['state'], { state: { nested: { list: ['ok', 'lone \uDC00 surrogate'] } } }],
      [['state'], { state: { big: 1n } as unknown as Snapshot['state'] }],
      [['state'], { state: null as unknown as Snapshot['state'] }],
      [['state'], { state: [] as unknown as Snapshot['state'] }],
      [['ledgerId'], { ledgerId: 'bad ledger' }],
    ];
    for (const [path, change] of cases) {
      expect(await refusal(() => store.saveSnapshot({ ...good, ...change, ledgerVersion: change.ledgerVersion ?? 4 })), JSON.stringify(path)).toEqual(invalid(path));
    }
    expect(await store.loadSnapshot({ tenantId, ledgerId: 'eur' })).toEqual(good);
    // Text that only looks like an escape, and a surrogate pair, are stored and read back as given.
    const lookalike: Snapshot = { ...good, ledgerVersion: 5, state: { text: 'back\\u0000slash \\\\u0000 \\\\\\uD800', emoji: '😀' } };
    await store.saveSnapshot(lookalike);
    expect(await store.loadSnapshot({ tenantId, ledgerId: 'eur' })).toEqual(lookalike);
  });

  it('every refusal above is a LedgerError a caller can switch on', async () => {
    const error = await store.append({ tenantId: 'acme', ledgerId: 'eur', expectedVersion: -1, events: [] }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toBeInstanceOf(LedgerError);
    expect(error).not.toBeInstanceOf(VersionConflictError);
  });
});

describe('copyLedger through PostgreSQL', () => {
  it('a ledger copied from memory into PostgreSQL and back reads the same everywhere, and a writer carries on from the PostgreSQL copy', async () => {
    const tenantId = fresh('copy');
    const ledgerId = 'eur';
    const memory = new InMemoryEventStore();
    const source = await Ledger.open({ store: memory, tenantId, ledgerId, snapshotEveryEvents: 25 });
    expect(await source.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' })).toMatchObject({ ok: true });
    expect(await source.openAccount({ accountId: 'sink', currency: 'EUR', type: 'liability', metadata: { quote: 'a"b\\c\u001e' } })).toMatchObject({ ok: true });
    for (let n = 0; n < 60; n += 1) {
      expect(await source.transfer({ transferId: `c${n}`, debitAccountId: 'cash', creditAccountId: 'sink', amount: '0.10', currency: 'EUR', reference: n % 7 === 0 ? `ref-${n}` : undefined })).toMatchObject({ ok: true });
    }
    const read = (s: EventStore): Promise<StoredEvent[]> => s.readStream({ tenantId, ledgerId, direction: 'forward', limit: 1_000 });
    expect(await copyLedger({ from: memory, to: store, tenantId, ledgerId, batchSize: 16 })).toMatchObject({ eventsCopied: 62, ledgerVersion: 62, snapshotCopied: true });
    const back = new InMemoryEventStore();
    expect(await copyLedger({ from: store, to: back, tenantId, ledgerId })).toMatchObject({ eventsCopied: 62, snapshotCopied: true });
    expect(await read(store)).toEqual(await read(memory));
    expect(await read(back)).toEqual(await read(memory));
    const moved = await Ledger.open({ store, tenantId, ledgerId });
    expect(moved.balance('sink')).toEqual(source.balance('sink'));
    expect(await moved.transfer({ transferId: 'c-after', debitAccountId: 'cash', creditAccountId: 'sink', amount: '0.10', currency: 'EUR' })).toMatchObject({ ok: true, ledgerVersion: 63 });
    expect((await moved.verifyChain()).ok).toBe(true);
    await moved.close();
    await source.close();
  });
});
