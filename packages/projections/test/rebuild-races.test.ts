import type { Ledger } from '@ledgerkit/ledger-core';
import { balancesProjection, inlineBalances, ProjectionRunner, ReadModels, rebuildProjection, type Projection, type ProjectionStatus } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSeenTable, currencies, eventually, expectBalancesAgree, openFixtureLedger, seenProjection, seenVersions, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;
let store: PostgresEventStore;
let inlineStore: PostgresEventStore;
let models: ReadModels;
const runners: ProjectionRunner[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  inlineStore = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: inlineBalances({ currencies }) });
  models = new ReadModels({ pool: db.app, currencies });
  await createSeenTable(db);
});

afterAll(async () => {
  await Promise.all(runners.map((runner) => runner.stop().catch(() => undefined)));
  await db?.close();
});

function track(runner: ProjectionRunner): ProjectionRunner {
  runners.push(runner);
  return runner;
}

const versionsUpTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

describe('a rebuild made elsewhere (another process, a standby runner)', () => {
  it("clears the active runner's stop on a failed event: it replays from the first event, as a rebuild of its own would", async () => {
    const tenantId = 'remote-rebuild-failed';
    const ledger = await openFixtureLedger(store, tenantId);
    await writeTransfers(ledger, 'a', 10, 5);
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    await writeTransfers(ledger, 'b', 10, 5);
    let poisoned = true;
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: [tenantId], projections: [seenProjection('seen', () => poisoned)], currencies }));
    runner.start();
    await runner.whenCaughtUp();
    expect((await runner.status())[0]?.state).toBe('failed');

    // The fix is deployed and an operator rebuilds the projection from a one-off process.
    poisoned = false;
    await rebuildProjection({ pool: db.app, tenantId, projection: seenProjection('seen', () => false) });
    // The reset is committed: the projection's rows are gone until the active runner replays them.
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual([]);
    await runner.whenCaughtUp();
    expect(await seenVersions(db.admin, tenantId, 'seen')).toEqual(versionsUpTo(ledger.version));
    const status = (await runner.status())[0] as ProjectionStatus;
    expect(status).toMatchObject({ state: 'live', generation: 1, eventsApplied: ledger.version, eventsSkipped: 0, lagEvents: 0, lastError: null });
    await runner.stop();
    await ledger.close();
  });
});

/**
 * The balances projection whose `reset` lets `between` run (and commit, on other connections)
 * right after its statement that deletes the ledgers' versions: the narrowest moment of a rebuild.
 */
function balancesWithPause(between: () => Promise<void>): Projection {
  const inner = balancesProjection();
  const interposed = (client: PoolClient): PoolClient =>
    new Proxy(client, {
      get(target, property, receiver) {
        if (property !== 'query') return Reflect.get(target, property, receiver) as unknown;
        return async (...args: unknown[]) => {
          const result = await (target.query as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          const text = typeof args[0] === 'string' ? args[0] : '';
          if (/^DELETE FROM \S+\.rm_balance_ledgers/.test(text)) await between();
          return result;
        };
      },
    });
  return { ...inner, reset: (context) => inner.reset({ ...context, client: interposed(context.client) }) };
}

describe('a rebuild of the balances racing the inline hook', () => {
  it("a ledger whose first appends commit while the reset runs keeps its balances, and stays writable", async () => {
    const tenantId = 'rebuild-new-ledger';
    const eur = await openFixtureLedger(inlineStore, tenantId);
    await writeTransfers(eur, 'eur', 12, 4);
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: [tenantId], projections: [balancesProjection()], currencies, batchSize: 5 }));
    runner.start();
    await runner.whenCaughtUp();

    // A new ledger's first appends (the hook inserts its version row) land in the middle of the reset.
    let usd: Ledger | undefined;
    await rebuildProjection({
      pool: db.app,
      tenantId,
      projection: balancesWithPause(async () => {
        usd = await openFixtureLedger(inlineStore, tenantId, 'usd');
        await writeTransfers(usd, 'usd', 6, 3);
      }),
    });
    const created = usd as unknown as Ledger;
    // Read-your-writes for the new ledger right after the rebuild, and appends to it still go through.
    await expectBalancesAgree(models, created, tenantId, 'usd');
    await writeTransfers(created, 'usd-after', 4, 2);
    await writeTransfers(eur, 'eur-after', 4, 2);
    await runner.whenCaughtUp();
    await expectBalancesAgree(models, created, tenantId, 'usd');
    await expectBalancesAgree(models, eur, tenantId, 'eur');
    expect((await runner.status())[0]).toMatchObject({ generation: 1, lagEvents: 0, lastError: null });
    await runner.stop();
    await created.close();
    await eur.close();
  });
});
