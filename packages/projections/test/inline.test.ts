import { Ledger, WriterFailedError } from '@ledgerkit/ledger-core';
import { BALANCES_PROJECTION, balancesProjection, INLINE_PLAN_DECLINED_SQLSTATE, inlineBalances, ProjectionRunner, ReadModels } from '@ledgerkit/projections';
import { composeInlineProjections, PostgresEventStore, type InlineProjection } from '@ledgerkit/store-postgres';
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
});

describe('inline balances: the plan (the writes sent with the append in one round trip)', () => {
  /** The hook with its paths counted: plans made, plans declined by their guard, general-path calls. */
  function counted(): { hook: InlineProjection; counts: { planned: number; declined: number; general: number } } {
    const balances = inlineBalances({ currencies });
    const counts = { planned: 0, declined: 0, general: 0 };
    const hook = Object.assign(
      async (client: Parameters<InlineProjection>[0], append: Parameters<InlineProjection>[1]) => {
        counts.general += 1;
        await balances(client, append);
      },
      {
        plan: (append: Parameters<InlineProjection>[1]) => {
          const plan = balances.plan(append);
          if (plan === undefined) return undefined;
          counts.planned += 1;
          return {
            statements: plan.statements,
            declined: (error: unknown) => {
              const declined = plan.declined(error);
              if (declined) counts.declined += 1;
              return declined;
            },
          };
        },
      },
    );
    return { hook, counts };
  }

  it('appends that continue the remembered rows take the plan; holds, posts, freezes and new accounts agree with replay', async () => {
    const tenantId = 'inline-plan';
    const { hook, counts } = counted();
    const planned = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: hook });
    const ledger = await openFixtureLedger(planned, tenantId);
    const generalAfterOpen = counts.general;
    for (let n = 0; n < 12; n += 1) {
      await ledger.transfer({ transferId: `t${n}`, debitAccountId: 'cash', creditAccountId: n % 2 === 0 ? 'alice' : 'bob', amount: '1.25', currency: 'EUR' });
      expect(await models.balance(tenantId, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    }
    // A hold and its post in one batch (the hold is created and resolved inside it), then a hold alone.
    await Promise.all([
      ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '2.00', currency: 'EUR' }),
      ledger.postPending({ transferId: 'p1', pendingId: 'h1' }),
    ]);
    await ledger.hold({ transferId: 'h2', debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    expect((await models.balance(tenantId, 'eur', 'alice'))?.available).toBe(ledger.balance('alice')?.available);
    await ledger.openAccount({ accountId: 'carol', currency: 'EUR', type: 'liability' });
    await ledger.transfer({ transferId: 'to-carol', debitAccountId: 'cash', creditAccountId: 'carol', amount: '3.00', currency: 'EUR' });
    await ledger.freezeAccount({ accountId: 'bob' });
    expect(await models.balance(tenantId, 'eur', 'carol')).toEqual(ledger.balance('carol'));
    // Resolving a hold opened in an earlier append needs the hold read: the general path.
    const generalBefore = counts.general;
    await ledger.voidPending({ transferId: 'v2', pendingId: 'h2' });
    expect(counts.general).toBe(generalBefore + 1);
    await expectBalancesAgree(models, ledger, tenantId);
    expect(counts.planned).toBeGreaterThanOrEqual(16);
    expect(counts.general - generalAfterOpen).toBeLessThanOrEqual(2);
    expect(counts.declined).toBe(0);
    await ledger.close();
  });

  it('a plan whose guard finds the model at another version is declined, and the append goes through the general path, which skips the ledger', async () => {
    const tenantId = 'inline-plan-declined';
    const { hook, counts } = counted();
    const planned = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: hook });
    const ledger = await openFixtureLedger(planned, tenantId);
    await writeTransfers(ledger, 'a', 6, 1);
    expect(counts.planned).toBeGreaterThan(0);
    const before = await models.balance(tenantId, 'eur', 'alice');
    // The model's version of this ledger is not the one the remembered rows were computed at
    // (as after a rebuild from elsewhere); its rows are all there.
    await db.admin.query('UPDATE ledgerkit.rm_balance_ledgers SET ledger_version = ledger_version + 1000 WHERE tenant_id = $1', [tenantId]);
    const generalBefore = counts.general;
    const result = await ledger.transfer({ transferId: 'after-move', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
    expect(result.ok).toBe(true);
    expect(counts.declined).toBe(1);
    expect(counts.general).toBe(generalBefore + 1);
    // Nothing applied: the declined batch rolled back, the general path skipped the ledger.
    expect(await models.balance(tenantId, 'eur', 'alice')).toEqual(before);
    const runner = balancesRunner(tenantId);
    runner.start();
    await runner.rebuild(BALANCES_PROJECTION, tenantId);
    await runner.whenCaughtUp();
    await expectBalancesAgree(models, ledger, tenantId);
    await ledger.close();
  });

  it('a plan whose rows are missing from the model is declined, and the general path refuses the append as inconsistent', async () => {
    const tenantId = 'inline-plan-missing';
    const { hook, counts } = counted();
    const planned = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: hook });
    const ledger = await openFixtureLedger(planned, tenantId);
    await writeTransfers(ledger, 'a', 4, 1);
    await db.admin.query(`DELETE FROM ledgerkit.rm_balances WHERE tenant_id = $1 AND account_id = 'alice'`, [tenantId]);
    const failed = await ledger.transfer({ transferId: 'to-missing', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' }).then(
      (result) => result,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(WriterFailedError);
    expect(String((failed as Error).cause ?? (failed as Error).message)).toMatch(/inconsistent/);
    expect(counts.declined).toBe(1);
    await ledger.close();
  });

  it('the guard raises its own SQLSTATE, which is what the plan declines on', async () => {
    await expect(db.app.query(`SELECT ledgerkit.inline_plan_check(false, 'test')`)).rejects.toMatchObject({ code: INLINE_PLAN_DECLINED_SQLSTATE });
    expect((await db.app.query(`SELECT ledgerkit.inline_plan_check(true, 'test') AS ok`)).rows).toEqual([{ ok: true }]);
    const plan = inlineBalances({ currencies }).plan;
    expect(plan({ tenantId: 'x', ledgerId: 'y', expectedVersion: 3, events: [] })).toBeUndefined();
  });
});

describe('inline balances: a failed append after the hook computed its rows', () => {
  /** A store whose appends fail after the balances were written when `failNext` is set: through the general path or the plan. */
  async function failingStore(path: 'general' | 'plan'): Promise<{ store: PostgresEventStore; failNext: () => void }> {
    const balances = inlineBalances({ currencies });
    let failNext = false;
    const inline: InlineProjection =
      path === 'general'
        ? async (client, append) => {
            await balances(client, append);
            if (failNext) {
              failNext = false;
              // After the hook applied the append to its rows: the transaction rolls back.
              throw new Error('a later inline hook failed');
            }
          }
        : composeInlineProjections(
            balances,
            Object.assign(async () => undefined, {
              plan: () => {
                if (!failNext) return { statements: [] };
                failNext = false;
                // Runs after the balances' statements, in the same transaction: everything rolls back.
                return { statements: [{ text: 'SELECT 1 / $1::int', values: [0] }] };
              },
            }),
          );
    const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline });
    return { store, failNext: () => (failNext = true) };
  }

  it.each(['general', 'plan'] as const)("leaves the remembered rows unused (%s path), even when another process then writes the same version", async (path) => {
    const tenantId = `inline-rollback-${path}`;
    const failing = await failingStore(path);
    const ledger = await openFixtureLedger(failing.store, tenantId);
    // Another process: its own store and hook, the same ledger.
    const other = await Ledger.open({ store: inlineStore, tenantId, ledgerId: 'eur', currencies });
    await ledger.transfer({ transferId: 'before', debitAccountId: 'cash', creditAccountId: 'alice', amount: '2.00', currency: 'EUR' });
    failing.failNext();
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
