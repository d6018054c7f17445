import { Ledger, WriterFailedError } from '@ledgerkit/ledger-core';
import { BALANCES_PROJECTION, balancesProjection, inlineBalances, ProjectionRunner, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, eventually, expectBalancesAgree, openFixtureLedger, writeTransfers } from './support/fixtures.js';
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
});

afterAll(async () => {
  await Promise.all(runners.map((runner) => runner.stop().catch(() => undefined)));
  await db?.close();
});

function balancesRunner(tenantId: string): ProjectionRunner {
  const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: [tenantId], projections: [balancesProjection()], currencies, batchSize: 10 });
  runners.push(runner);
  return runner;
}

describe('inline balances', () => {
  it('read-your-writes: a balance read right after an append returns already includes it, with no runner running', async () => {
    const tenantId = 'inline-ryw';
    const ledger = await openFixtureLedger(inlineStore, tenantId);
    for (let n = 0; n < 15; n += 1) {
      await ledger.transfer({ transferId: `t${n}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.50', currency: 'EUR' });
      expect(await models.balance(tenantId, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    }
    await ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '2.00', currency: 'EUR' });
    expect((await models.balance(tenantId, 'eur', 'alice'))?.available).toBe('20.50');
    await ledger.postPending({ transferId: 'p1', pendingId: 'h1' });
    await ledger.freezeAccount({ accountId: 'bob' });
    await expectBalancesAgree(models, ledger, tenantId);
    await ledger.close();
  });

  it('the runner beside the hook applies nothing twice: it skips the versions the hook applied', async () => {
    const tenantId = 'inline-and-runner';
    const ledger = await openFixtureLedger(inlineStore, tenantId);
    const runner = balancesRunner(tenantId);
    runner.start();
    await writeTransfers(ledger, 'a', 80, 4);
    await runner.whenCaughtUp();
    const [status] = await runner.status();
    expect(status).toMatchObject({ eventsApplied: ledger.version, lagEvents: 0 });
    await expectBalancesAgree(models, ledger, tenantId);
    await ledger.close();
  });

  it('a ledger the hook is not current for (written before it, or being rebuilt) is left to the runner, and the hook resumes once the runner has caught up', async () => {
    const tenantId = 'inline-late';
    const early = await openFixtureLedger(store, tenantId);
    await writeTransfers(early, 'early', 10, 5);
    await early.close();
    // Reopened through the inline store (opening the fixture accounts again is an idempotent no-op).
    const ledger = await openFixtureLedger(inlineStore, tenantId);
    await writeTransfers(ledger, 'late', 5, 5);
    // The hook could not apply these: the model has nothing of this ledger yet.
    expect(await models.balance(tenantId, 'eur', 'alice')).toBeUndefined();
    const runner = balancesRunner(tenantId);
    runner.start();
    await runner.whenCaughtUp();
    await expectBalancesAgree(models, ledger, tenantId);
    // Current again: the hook takes over, read-your-writes without waiting for the runner.
    await ledger.transfer({ transferId: 'after', debitAccountId: 'cash', creditAccountId: 'alice', amount: '100.00', currency: 'EUR' });
    expect(await models.balance(tenantId, 'eur', 'alice')).toEqual(ledger.balance('alice'));

    // A rebuild while inline appends go on: the hook skips, the runner replays, and they meet again.
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing; n += 1) await writeTransfers(ledger, `during-${n}`, 2, 2);
    })();
    await runner.rebuild(BALANCES_PROJECTION, tenantId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    writing = false;
    await writer;
    await runner.whenCaughtUp();
    await expectBalancesAgree(models, ledger, tenantId);
    await eventually(async () => (await runner.status())[0]?.lagEvents === 0, 5_000, 'no lag');
    await ledger.close();
  });

  it("an append that rolls back after the hook ran leaves the hook's remembered rows unused, even when another process then writes the same version", async () => {
    const tenantId = 'inline-rollback';
    const balances = inlineBalances({ currencies });
    let failNext = false;
    const failing = await PostgresEventStore.open({
      pool: db.app,
      horizonWaitMs: 10_000,
      inline: async (client, append) => {
        await balances(client, append);
        if (failNext) {
          failNext = false;
          // After the hook applied the append to its rows: the transaction rolls back.
          throw new Error('a later inline hook failed');
        }
      },
    });
    const ledger = await openFixtureLedger(failing, tenantId);
    // Another process: its own store and hook, the same ledger.
    const other = await Ledger.open({ store: inlineStore, tenantId, ledgerId: 'eur', currencies });
    await ledger.transfer({ transferId: 'before', debitAccountId: 'cash', creditAccountId: 'alice', amount: '2.00', currency: 'EUR' });
    failNext = true;
    const failed = await ledger.transfer({ transferId: 'rolled-back', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR' }).then(
      (result) => result,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(WriterFailedError);
    // The other process takes the very version the rolled-back append had, with another event;
    // the next append through the first hook continues from there, at the version it remembers.
    expect((await other.transfer({ transferId: 'elsewhere', debitAccountId: 'cash', creditAccountId: 'alice', amount: '7.00', currency: 'EUR' })).ok).toBe(true);
    expect((await ledger.transfer({ transferId: 'later', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' })).ok).toBe(true);
    expect((await models.balance(tenantId, 'eur', 'alice'))?.posted).toBe('10.00');
    await expectBalancesAgree(models, ledger, tenantId);
    await other.close();
    await ledger.close();
  });
});
