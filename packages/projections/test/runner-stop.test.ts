import { LimitExceededError, type Ledger } from '@ledgerkit/ledger-core';
import { ProjectionRunner, StopTimeoutError, type Projection, type ProjectionEvent } from '@ledgerkit/projections';
import { describe, expect, it } from 'vitest';
import { currencies, eventually, globalLog, openFixtureLedger, seenProjection, seenVersions, within, writeTransfers } from './support/fixtures.js';
import { statusOf, useRunnerFile } from './support/runner-files.js';

// stop() is bounded by stopTimeoutMs: a projection whose handler never returns is abandoned, its
// batch rolled back (not committed, not left open on a pooled connection), and whoever runs the
// projection next applies that batch exactly once.

const file = useRunnerFile();

/**
 * The seen-projection `seen`, except that in the batch holding the transfer `pause` it writes the
 * events before it (in the batch's transaction), calls `entered` and waits for `pause` (which may
 * never settle) before it writes the rest.
 */
function pausingProjection(pause: () => Promise<void>, entered: () => void): Projection {
  const seen = seenProjection('seen', () => false);
  return {
    name: seen.name,
    reset: (context) => seen.reset(context),
    async apply(context, events: readonly ProjectionEvent[]) {
      const at = events.findIndex((event) => event.stored.data['transferId'] === 'pause');
      if (at === -1) return seen.apply(context, events);
      if (at > 0) await seen.apply(context, events.slice(0, at));
      entered();
      await pause();
      await seen.apply(context, events.slice(at));
    },
  };
}

/** A ledger of `tenantId` with 9 transfers, the transfer `pause`, and 9 more. */
async function ledgerWithPause(tenantId: string): Promise<Ledger> {
  const ledger = await openFixtureLedger(file.store, tenantId);
  await writeTransfers(ledger, 'a', 9);
  await ledger.transfer({ transferId: 'pause', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
  await writeTransfers(ledger, 'b', 9);
  return ledger;
}

describe('stop() with a handler that never returns', () => {
  it('returns within stopTimeoutMs with StopTimeoutError naming the projection; the batch rolls back, and the next runner applies it exactly once', async () => {
    const tenantId = 'stop-hang';
    const ledger = await ledgerWithPause(tenantId);
    const log = await globalLog(file.store, tenantId);
    const hangAt = log.findIndex((entry) => entry.event.data['transferId'] === 'pause');
    const batchSize = 5;
    // Batches before the hanging one commit; that one holds events before `hang` too.
    const committed = Math.floor(hangAt / batchSize) * batchSize;
    expect(hangAt % batchSize).toBeGreaterThan(0);

    const application = `lk_stop_hang_${process.pid}`;
    const poolA = file.db.pool(`${file.db.appUrl}?application_name=${application}`, 4);
    let entered = false;
    const never = (): Promise<void> => new Promise<never>(() => undefined);
    const a = file.runnerFor(tenantId, { pool: poolA, projections: [pausingProjection(never, () => (entered = true))], batchSize, stopTimeoutMs: 300 });
    a.start();
    await eventually(async () => entered, 10_000, 'the handler reaching the transfer pause');

    const startedMs = Date.now();
    const outcome = await within(a.stop(), 5_000, 'stop()').catch((error: unknown) => error);
    const elapsedMs = Date.now() - startedMs;
    expect(outcome).toBeInstanceOf(StopTimeoutError);
    expect(outcome).toMatchObject({ code: 'stop_timeout', timeoutMs: 300, abandoned: [{ projection: 'seen', tenantId }] });
    expect(elapsedMs).toBeGreaterThanOrEqual(290);
    // stop() waits stopTimeoutMs for the batches, then abandons them and closes the session (no
    // waiting on the hung handler): 300 ms and a little, with 1.2 s of margin for a loaded
    // machine (CI runs two suites at once on two cores). A deadline that outlasts the setting by
    // 1.2 s or more fails here.
    expect(elapsedMs).toBeLessThan(300 + 1_200);
    expect(await statusOf(a, 'seen')).toMatchObject({ state: 'stopped', active: false, checkpoint: log[committed - 1]?.position, eventsApplied: committed });
    // The batch's connection is gone, with its transaction: none of the runner's connections is in one.
    await eventually(
      async () => (await file.db.admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'`, [application])).rowCount === 0,
      5_000,
      "the abandoned batch's transaction ended",
    );
    await within(poolA.end(), 2_000, "ending the stopped runner's pool");
    expect(await seenVersions(file.db.admin, tenantId, 'seen')).toEqual(Array.from({ length: committed }, (_, i) => i + 1));

    // A runner that behaves applies the rest, the abandoned batch once (the seen table's key
    // refuses a second apply of an event): the read model equals the log.
    const b = file.runnerFor(tenantId, { projections: [seenProjection('seen', () => false)], batchSize });
    b.start();
    await b.whenCaughtUp(10_000);
    expect(await seenVersions(file.db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    expect(await statusOf(b, 'seen')).toMatchObject({ state: 'live', eventsApplied: ledger.version, lagEvents: 0, lastError: null });
    await b.stop();
    await ledger.close();
  });

  it('waits for a slow batch that ends within stopTimeoutMs: the batch commits and stop() resolves', async () => {
    const tenantId = 'stop-in-time';
    const ledger = await ledgerWithPause(tenantId);
    let entered = false;
    const slow = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 400));
    const runner = file.runnerFor(tenantId, { projections: [pausingProjection(slow, () => (entered = true))], stopTimeoutMs: 5_000 });
    runner.start();
    await eventually(async () => entered, 10_000, 'the handler reaching the transfer pause');
    await expect(within(runner.stop(), 5_000, 'stop()')).resolves.toBeUndefined();
    expect(await seenVersions(file.db.admin, tenantId, 'seen')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    await ledger.close();
  });

  it('refuses a stopTimeoutMs outside 0..600,000 or not an integer', () => {
    for (const stopTimeoutMs of [-1, 600_001, 1.5, Number.NaN]) {
      expect(() => new ProjectionRunner({ pool: file.db.app, store: file.store, tenantIds: ['t'], projections: [seenProjection('seen', () => false)], currencies, stopTimeoutMs }), String(stopTimeoutMs)).toThrow(
        LimitExceededError,
      );
    }
  });
});
