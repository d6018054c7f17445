import fc from 'fast-check';
import { CurrencyRegistry, Ledger, type LedgerSource } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, inlineBalances, ProjectionRunner, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { expectReadModelsAgree } from './support/agreement.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';
import { ACCOUNTS, GHOST_ACCOUNT, manualClock, propertyRuns, runWorkload, workloadArb, type ManualClock, type Step } from './support/workload.js';

let db: TestDatabase;
let store: PostgresEventStore;
let inlineStore: PostgresEventStore;
let models: ReadModels;
const currencies = new CurrencyRegistry();

beforeAll(async () => {
  db = await openTestDatabase();
  // Patient reads: the runner must see what a parallel test file's open transactions hold back.
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  inlineStore = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: inlineBalances({ currencies }) });
  models = new ReadModels({ pool: db.app, currencies });
});

afterAll(async () => {
  await db?.close();
});

describe('the read models agree with replay (the contract between the fast and the auditable path)', () => {
  let run = 0;

  it('for random workloads, every balance now and as of any version, recorded or effective time, every statement page, trial balance and transfer equals replay', async () => {
    await fc.assert(
      fc.asyncProperty(workloadArb, fc.boolean(), fc.integer({ min: 1, max: 50 }), fc.integer(), async (groups, inline, batchSize, seed) => {
        run += 1;
        const tenantId = `agree-${run}`;
        const ledgerId = 'books';
        const clock = manualClock();
        const ledger = await Ledger.open({
          store: inline ? inlineStore : store,
          tenantId,
          ledgerId,
          currencies,
          clock: clock.now,
          expiryCheckIntervalMs: 10,
          snapshotEveryEvents: 0,
        });
        try {
          await runWorkload(ledger, clock, groups);
          const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies, batchSize });
          runner.start();
          try {
            await runner.whenCaughtUp();
          } finally {
            await runner.stop();
          }
          const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId, ledgerId };
          let state = seed;
          const pick = (n: number): number => {
            state = (Math.imul(state, 1_103_515_245) + 12_345) | 0;
            return Math.abs(state) % n;
          };
          await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: [...ACCOUNTS.map((account) => account.id), GHOST_ACCOUNT], pick });
        } finally {
          await ledger.close();
        }
      }),
      { numRuns: propertyRuns(25), endOnFailure: true },
    );
  }, 120_000);

  it('for random workloads on two ledgers of each of two tenants (the same ids in both, one ledger id an SQL keyword), written at once and projected by one runner, every answer equals replay', async () => {
    // Two ledgers of one tenant interleave in the global log, so batches span both; the two
    // tenants share every ledger and account id but not the events, so a row read or written
    // across tenants or ledgers shows.
    const LEDGERS = ['books', 'NULL'] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.array(workloadArb, { minLength: 4, maxLength: 4 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 50 }),
        fc.integer(),
        async (workloads, inline, batchSize, seed) => {
          run += 1;
          const tenants = [`multi-${run}-a`, `multi-${run}-b`];
          const ledgers: { tenantId: string; ledgerId: string; ledger: Ledger; clock: ManualClock }[] = [];
          try {
            for (const tenantId of tenants) {
              for (const ledgerId of LEDGERS) {
                const clock = manualClock();
                const ledger = await Ledger.open({ store: inline ? inlineStore : store, tenantId, ledgerId, currencies, clock: clock.now, expiryCheckIntervalMs: 10, snapshotEveryEvents: 0 });
                ledgers.push({ tenantId, ledgerId, ledger, clock });
              }
            }
            await Promise.all(ledgers.map(({ ledger, clock }, i) => runWorkload(ledger, clock, workloads[i] as Step[][])));
            const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: tenants, projections: [balancesProjection(), historyProjection()], currencies, batchSize });
            runner.start();
            try {
              await runner.whenCaughtUp();
            } finally {
              await runner.stop();
            }
            let state = seed;
            const pick = (n: number): number => {
              state = (Math.imul(state, 1_103_515_245) + 12_345) | 0;
              return Math.abs(state) % n;
            };
            for (const { tenantId, ledgerId, ledger } of ledgers) {
              const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId, ledgerId };
              await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: [...ACCOUNTS.map((account) => account.id), GHOST_ACCOUNT], pick });
            }
          } finally {
            for (const { ledger } of ledgers) await ledger.close();
          }
        },
      ),
      { numRuns: propertyRuns(8), endOnFailure: true },
    );
  }, 240_000);
});
