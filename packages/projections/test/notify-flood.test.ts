import { DEFAULT_NOTIFY_CHANNEL, balancesProjection, historyProjection, ProjectionRunner, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type { EventStore, Ledger } from '@ledgerkit/ledger-core';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOTIFY_WAKE_MS_MIN } from '../src/wakeup.js';
import { currencies, eventually, openFixtureLedger } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// Any role that can connect can NOTIFY any channel (no grant is needed), so the runner's channel
// is open to forgery. A flood of forged notifications must not turn into a flood of log reads:
// each tenant's projections are woken by notifications at most once per NOTIFY_WAKE_MS_MIN.
// Reads are counted at the runner's store (every read of the log the runner makes goes through
// its `readAll`), per tenant.

const TENANTS = ['flood-a', 'flood-b', 'flood-c', 'flood-d'] as const;
const PROJECTIONS = 2;
/** How long each flood lasts, and how long its reads are counted after it, ms. */
const FLOOD_MS = 1_500;
const SETTLE_MS = 300;
/** Fewest NOTIFYs a flood must have sent to show anything: twenty per wake interval (an idle machine sends thousands). */
const FLOODED_MIN = 20 * Math.ceil(FLOOD_MS / NOTIFY_WAKE_MS_MIN);

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
let runner: ProjectionRunner;
let forger: pg.Client;
const forgerRole = (): string => `${db.roles.app}_nobody`;
const ledgers = new Map<string, Ledger>();
const reads = new Map<string, number>();

/** The store, with every `readAll` counted for its tenant. */
function counted(inner: PostgresEventStore): EventStore {
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'readAll') {
        return (query: Parameters<EventStore['readAll']>[0]) => {
          reads.set(query.tenantId, (reads.get(query.tenantId) ?? 0) + 1);
          return target.readAll(query);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const readsOf = (tenants: readonly string[]): number => tenants.reduce((sum, tenantId) => sum + (reads.get(tenantId) ?? 0), 0);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Most reads `projections` projections may make over `windowMs` of notifications: one woken read
 * per interval (half as many again for slack: a wait that ends on its own just before the next
 * wake), and the quick re-reads after the first wake of the burst (5, 10, 20, 40 ms), after a
 * genuine append and after the last wake. Without the bound a flood made each projection read as
 * fast as the database answered.
 */
const readsMax = (projections: number, windowMs: number): number => projections * (Math.ceil((1.5 * windowMs) / NOTIFY_WAKE_MS_MIN) + 12);

/** NOTIFYs the runner's channel from the role with no grants, as fast as it can, for `ms`; the number sent. */
async function flood(ms: number, payload: (n: number) => string, during?: () => Promise<void>): Promise<number> {
  const until = Date.now() + ms;
  let sent = 0;
  const sending = (async () => {
    while (Date.now() < until) {
      // Many in flight at once: pg pipelines them on the connection, so a loaded machine still floods.
      await Promise.all(Array.from({ length: 32 }, () => forger.query('SELECT pg_notify($1, $2)', [DEFAULT_NOTIFY_CHANNEL, payload((sent += 1))])));
    }
  })();
  await during?.();
  await sending;
  return sent;
}

/** Makes a transfer in `tenantId` and resolves with how long the balances read model took to show it, ms. */
async function appendAndWait(tenantId: string, transferId: string): Promise<number> {
  const ledger = ledgers.get(tenantId) as Ledger;
  const before = Number((await models.balance(tenantId, 'eur', 'alice'))?.posted ?? '0');
  const startedMs = Date.now();
  expect(await ledger.transfer({ transferId, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' })).toMatchObject({ ok: true });
  await eventually(async () => Number((await models.balance(tenantId, 'eur', 'alice'))?.posted ?? '0') === before + 1, 10_000, `transfer ${transferId} projected`);
  return Date.now() - startedMs;
}

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app });
  models = new ReadModels({ pool: db.app, currencies });
  for (const tenantId of TENANTS) ledgers.set(tenantId, await openFixtureLedger(store, tenantId));
  // A role with no grant at all: connecting (PUBLIC's CONNECT, the default) is all it takes.
  await db.admin.query(`CREATE ROLE ${forgerRole()} LOGIN PASSWORD 'forger-pw'`);
  const url = new URL(db.appUrl);
  url.username = forgerRole();
  url.password = 'forger-pw';
  forger = new pg.Client({ connectionString: url.toString() });
  forger.on('error', () => undefined);
  await forger.connect();
  expect(await forger.query('SELECT 1 FROM ledgerkit.events LIMIT 1').then(() => 'read', (error: { code?: string }) => error.code)).toBe('42501');

  runner = new ProjectionRunner({ pool: db.app, store: counted(store), tenantIds: [...TENANTS], projections: [balancesProjection(), historyProjection()], currencies, pollIntervalMs: 60_000 });
  runner.start();
  await runner.whenCaughtUp();
  // Past the quick re-reads after the start (5 ms, 10 ms, ... doubling): the next poll is ~5 s away.
  await sleep(2_700);
});

afterAll(async () => {
  await runner?.stop();
  await forger?.end().catch(() => undefined);
  for (const ledger of ledgers.values()) await ledger.close();
  if (db !== undefined) await db.admin.query(`DROP ROLE IF EXISTS ${forgerRole()}`).catch(() => undefined);
  await db?.close();
});

describe('a flood of forged NOTIFYs', () => {
  it('empty, unknown and real-tenant payloads from a role with no grants: the log reads stay bounded by the wake interval, and a real append is still projected promptly', async () => {
    const start = readsOf(TENANTS);
    let duringMs = 0;
    const payloads = ['', 'no-such-tenant', TENANTS[0]];
    const sent = await flood(
      FLOOD_MS,
      (n) => (n % 4 === 3 ? randomBytes(6).toString('hex') : (payloads[n % 4] as string)),
      async () => {
        await sleep(FLOOD_MS / 2);
        duringMs = await appendAndWait(TENANTS[1], 'during-flood');
      },
    );
    await sleep(SETTLE_MS);
    const flooded = readsOf(TENANTS) - start;
    const bound = readsMax(TENANTS.length * PROJECTIONS, FLOOD_MS + SETTLE_MS);
    console.info(`mixed flood: ${sent} NOTIFYs, ${flooded} reads (bound ${bound}); an append during it projected in ${duringMs} ms`);
    expect(sent).toBeGreaterThan(FLOODED_MIN);
    expect(flooded).toBeLessThanOrEqual(bound);
    // The wake it sent passed (or was coalesced into the next one within the interval).
    expect(duringMs).toBeLessThan(2_000);

    // After the flood: the next real append acts at once.
    await sleep(2 * NOTIFY_WAKE_MS_MIN);
    const afterMs = await appendAndWait(TENANTS[2], 'after-flood');
    console.info(`an append after the flood projected in ${afterMs} ms`);
    expect(afterMs).toBeLessThan(1_000);
  });

  it("a payload naming a tenant wakes only that tenant's projections, a bounded number of times", async () => {
    await sleep(1_000);
    const others = TENANTS.slice(1);
    const startTarget = readsOf([TENANTS[0]]);
    const startOthers = readsOf(others);
    const sent = await flood(FLOOD_MS, () => TENANTS[0]);
    await sleep(SETTLE_MS);
    const target = readsOf([TENANTS[0]]) - startTarget;
    const otherReads = readsOf(others) - startOthers;
    const bound = readsMax(PROJECTIONS, FLOOD_MS + SETTLE_MS);
    console.info(`one-tenant flood: ${sent} NOTIFYs, ${target} reads of that tenant (bound ${bound}), ${otherReads} of the others`);
    expect(sent).toBeGreaterThan(FLOODED_MIN);
    expect(target).toBeLessThanOrEqual(bound);
    // The others only poll after their last wakes (their quick re-reads back off from 100 ms).
    expect(otherReads).toBeLessThanOrEqual(others.length * PROJECTIONS * 4);
  });

  it('unknown and random payloads wake no projection', async () => {
    await sleep(1_000);
    const start = readsOf(TENANTS);
    const sent = await flood(FLOOD_MS, (n) => (n % 2 === 0 ? 'no-such-tenant' : randomBytes(8).toString('hex')));
    await sleep(SETTLE_MS);
    const flooded = readsOf(TENANTS) - start;
    console.info(`unknown-tenant flood: ${sent} NOTIFYs, ${flooded} reads`);
    expect(sent).toBeGreaterThan(FLOODED_MIN);
    expect(flooded).toBeLessThanOrEqual(TENANTS.length * PROJECTIONS * 4);
  });
});
