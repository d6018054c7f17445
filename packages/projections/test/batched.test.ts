import fc from 'fast-check';
import { CurrencyRegistry, Ledger, type LedgerSource } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, ProjectionRunner, READ_MODEL_TABLES, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectReadModelsAgree } from './support/agreement.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';
import { ACCOUNTS, GHOST_ACCOUNT, manualClock, propertyRuns, runWorkload, workloadArb } from './support/workload.js';

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
const currencies = new CurrencyRegistry();

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
});

afterAll(async () => {
  await db?.close();
});

/** Every read-model row of a tenant (checkpoints and failures aside), as sorted JSON: what a projection wrote. */
async function readModelRows(tenantId: string): Promise<Record<string, string[]>> {
  const rows: Record<string, string[]> = {};
  for (const table of READ_MODEL_TABLES) {
    if (table.startsWith('projection_')) continue;
    const result = await db.admin.query<{ row: unknown }>(`SELECT to_jsonb(t) AS row FROM ledgerkit.${table} t WHERE tenant_id = $1`, [tenantId]);
    rows[table] = result.rows.map((row) => JSON.stringify(row.row)).sort();
  }
  return rows;
}

async function project(tenantId: string, batchSize: number): Promise<void> {
  const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies, batchSize });
  runner.start();
  try {
    await runner.whenCaughtUp();
  } finally {
    await runner.stop();
  }
}

describe('the batched (set-based) projections', () => {
  let run = 0;

  it('write exactly the rows one event per batch writes, for random workloads with back-dated entries and holds, and both equal replay', async () => {
    await fc.assert(
      fc.asyncProperty(workloadArb, fc.integer({ min: 2, max: 60 }), async (groups, batchSize) => {
        run += 1;
        const tenantId = `batched-${run}`;
        const clock = manualClock();
        const ledger = await Ledger.open({ store, tenantId, ledgerId: 'books', currencies, clock: clock.now, expiryCheckIntervalMs: 10, snapshotEveryEvents: 0 });
        try {
          await runWorkload(ledger, clock, groups);
          // One event per batch: the reference.
          await project(tenantId, 1);
          const perEvent = await readModelRows(tenantId);
          // Rebuilt from nothing in larger batches: each batch's rows in a few statements, and
          // batches after the first start from the account heads the one before kept in memory.
          const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies, batchSize });
          runner.start();
          try {
            await runner.rebuild('balances', tenantId);
            await runner.rebuild('history', tenantId);
            await runner.whenCaughtUp();
          } finally {
            await runner.stop();
          }
          expect(await readModelRows(tenantId), `batch size ${batchSize}`).toEqual(perEvent);
          const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId, ledgerId: 'books' };
          let state = run;
          const pick = (n: number): number => {
            state = (Math.imul(state, 1_103_515_245) + 12_345) | 0;
            return Math.abs(state) % n;
          };
          await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: [...ACCOUNTS.map((account) => account.id), GHOST_ACCOUNT], pick });
        } finally {
          await ledger.close();
        }
      }),
      { numRuns: propertyRuns(15), endOnFailure: true },
    );
  }, 180_000);
});
