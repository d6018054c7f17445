import type { Ledger } from '@ledgerkit/ledger-core';
import { ProjectionRunner, rebuildProjection } from '@ledgerkit/projections';
import { describe, expect, it } from 'vitest';
import { currencies, globalLog, openFixtureLedger, projectToEnd, seenProjection } from './support/fixtures.js';
import { rowCountingPool, type RowCount } from './support/recording-client.js';
import { statusOf, useRunnerFile } from './support/runner-files.js';

// A projection's progress per ledger (what lagEvents is measured against) is kept one row per
// (tenant, projection, ledger): a batch writes the rows of the ledgers it handled, whatever the
// number of ledgers the tenant has, and status() works the lag out in the database.

const file = useRunnerFile();

/** Opens `count` fixture ledgers `l-00`, `l-01`, … of a tenant (4 events each: their accounts). */
async function openLedgers(tenantId: string, count: number): Promise<Ledger[]> {
  const ledgers: Ledger[] = [];
  for (let n = 0; n < count; n += 1) ledgers.push(await openFixtureLedger(file.store, tenantId, `l-${String(n).padStart(2, '0')}`));
  return ledgers;
}

async function closeAll(ledgers: readonly Ledger[]): Promise<void> {
  for (const ledger of ledgers) await ledger.close();
}

/** The stored per-ledger progress of a projection, ledger → version, as the superuser sees it. */
async function storedProgress(tenantId: string, projection: string): Promise<Record<string, number>> {
  const { rows } = await file.db.admin.query<{ ledger_id: string; v: string }>(
    'SELECT ledger_id, ledger_version AS v FROM ledgerkit.projection_ledger_versions WHERE tenant_id = $1 AND projection = $2 ORDER BY 1',
    [tenantId, projection],
  );
  return Object.fromEntries(rows.map((row) => [row.ledger_id, Number(row.v)]));
}

/** Size in bytes of a projection's checkpoint row. */
async function checkpointRowBytes(tenantId: string, projection: string): Promise<number> {
  const { rows } = await file.db.admin.query<{ bytes: number }>(
    'SELECT pg_column_size(c.*) AS bytes FROM ledgerkit.projection_checkpoints c WHERE tenant_id = $1 AND projection = $2',
    [tenantId, projection],
  );
  return rows[0]?.bytes ?? 0;
}

/** Runs the seen-projection `seen` of a tenant to the end of its log, in batches of 50. */
function projectSeen(tenantId: string): Promise<void> {
  return projectToEnd(file.db.app, file.store, [tenantId], { projections: [seenProjection('seen', () => false)], batchSize: 50 });
}

describe('per-ledger progress', () => {
  it('is one row per ledger, and the checkpoint row does not grow with the number of ledgers the tenant has', async () => {
    const one = await openLedgers('progress-one', 1);
    const many = await openLedgers('progress-many', 40);
    await projectSeen('progress-one');
    await projectSeen('progress-many');
    expect(await storedProgress('progress-many', 'seen')).toEqual(Object.fromEntries(many.map((ledger) => [ledger.writer.ledgerId, ledger.version])));
    // The same columns, bar a position of the same length: a map of 40 ledgers in the row would add ~500 bytes.
    expect((await checkpointRowBytes('progress-many', 'seen')) - (await checkpointRowBytes('progress-one', 'seen'))).toBeLessThan(32);
    await closeAll([...one, ...many]);
  });

  it('a batch writes the progress of the ledgers it handled only', async () => {
    const tenantId = 'progress-touched';
    const ledgers = await openLedgers(tenantId, 12);
    await projectSeen(tenantId);
    const rowVersions = async (): Promise<Map<string, string>> => {
      // xmin: the transaction that last wrote the row.
      const { rows } = await file.db.admin.query<{ ledger_id: string; xmin: string }>(
        `SELECT ledger_id, xmin::text FROM ledgerkit.projection_ledger_versions WHERE tenant_id = $1 AND projection = 'seen'`,
        [tenantId],
      );
      return new Map(rows.map((row) => [row.ledger_id, row.xmin]));
    };
    const before = await rowVersions();
    const touched = ledgers[7] as Ledger;
    await touched.transfer({ transferId: 'one-more', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
    await projectSeen(tenantId);
    const after = await rowVersions();
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    expect([...after].filter(([ledgerId, xmin]) => before.get(ledgerId) !== xmin).map(([ledgerId]) => ledgerId)).toEqual([touched.writer.ledgerId]);
    expect((await storedProgress(tenantId, 'seen'))[touched.writer.ledgerId]).toBe(touched.version);
    await closeAll(ledgers);
  });

  it('status() reports the lag over several ledgers, reading a bounded number of rows into Node whatever the number of ledgers', async () => {
    const tenantId = 'progress-lag';
    const ledgers = await openLedgers(tenantId, 30);
    // The projection stops on this event: everything from it on, in every ledger, is lag.
    await (ledgers[10] as Ledger).transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    for (const ledger of ledgers.slice(5, 15)) await ledger.transfer({ transferId: 'after', debitAccountId: 'cash', creditAccountId: 'carol', amount: '2.00', currency: 'EUR' });
    const log = await globalLog(file.store, tenantId);
    const poisonAt = log.findIndex((entry) => entry.event.data['transferId'] === 'poison');
    expect(poisonAt).toBeGreaterThan(100);
    const runner = file.runnerFor(tenantId, { projections: [seenProjection('seen', () => true), seenProjection('other', () => false)], batchSize: 50 });
    runner.start();
    await runner.whenCaughtUp();
    await runner.stop();

    const count: RowCount = { statements: 0, rows: 0 };
    const observer = file.track(new ProjectionRunner({ pool: rowCountingPool(file.db.app, count), store: file.store, tenantIds: [tenantId], projections: [seenProjection('seen', () => true), seenProjection('other', () => false)], currencies }));
    const statuses = await observer.status();
    expect(statuses.map(({ projection, eventsApplied, lagEvents }) => ({ projection, eventsApplied, lagEvents }))).toEqual([
      { projection: 'seen', eventsApplied: poisonAt, lagEvents: log.length - poisonAt },
      { projection: 'other', eventsApplied: log.length, lagEvents: 0 },
    ]);
    // The checkpoints, the lag of each projection and a few rows of set-up; not a row per ledger (30).
    expect(count.rows).toBeLessThanOrEqual(8);
    await closeAll(ledgers);
  });

  it('a rebuild resets it with the checkpoint: the lag is the whole log again', async () => {
    const tenantId = 'progress-rebuild';
    const ledgers = await openLedgers(tenantId, 3);
    await projectSeen(tenantId);
    expect(Object.keys(await storedProgress(tenantId, 'seen'))).toHaveLength(3);
    await rebuildProjection({ pool: file.db.app, tenantId, projection: seenProjection('seen', () => false) });
    expect(await storedProgress(tenantId, 'seen')).toEqual({});
    const observer = file.track(new ProjectionRunner({ pool: file.db.app, store: file.store, tenantIds: [tenantId], projections: [seenProjection('seen', () => false)], currencies }));
    const total = ledgers.reduce((sum, ledger) => sum + ledger.version, 0);
    expect(await statusOf(observer, 'seen')).toMatchObject({ generation: 1, checkpoint: null, eventsApplied: 0, lagEvents: total });
    await projectSeen(tenantId);
    expect(await statusOf(observer, 'seen')).toMatchObject({ eventsApplied: total, lagEvents: 0 });
    await closeAll(ledgers);
  });
});
