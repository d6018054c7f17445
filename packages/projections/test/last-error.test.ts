import type { EventStore } from '@ledgerkit/ledger-core';
import { eventProjection } from '@ledgerkit/projections';
import type { ClientPool } from '@ledgerkit/tenant-rls';
import { describe, expect, it } from 'vitest';
import { eventually, globalLog, openFixtureLedger, seenProjection, writeTransfers } from './support/fixtures.js';
import { statusOf, useRunnerFile } from './support/runner-files.js';

// `status().lastError` is the error a projection has not got past: an operator who sees one with
// state 'live' must be looking at a current problem, not at one the projection recovered from.

/** How long a test waits for the runner to reach a state, ms. */
const WAIT_MS = 10_000;

const file = useRunnerFile();
const { runnerFor } = file;

/** The error columns of a projection's stored checkpoint, as another runner's status reads them. */
async function storedError(tenantId: string, projection: string): Promise<unknown> {
  const { rows } = await file.db.admin.query('SELECT last_error, last_error_position, last_error_at FROM ledgerkit.projection_checkpoints WHERE tenant_id = $1 AND projection = $2', [
    tenantId,
    projection,
  ]);
  return rows[0];
}

/** `at` is an ISO-8601 instant, as `toISOString` writes it, no earlier than `notBeforeMs`. */
function expectInstantSince(at: string | undefined, notBeforeMs: number): void {
  expect(at).toEqual(expect.any(String));
  const ms = Date.parse(at as string);
  expect(new Date(ms).toISOString()).toBe(at);
  expect(ms).toBeGreaterThanOrEqual(notBeforeMs - 1_000);
  expect(ms).toBeLessThanOrEqual(Date.now() + 1_000);
}

describe('status().lastError', () => {
  it('a transient error while applying a batch shows, with when it happened, while the runner retries, and is cleared once the batch commits', async () => {
    const tenantId = 'transient-apply';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await writeTransfers(ledger, 'a', 5, 5);
    let failures = 0;
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const flaky = eventProjection({
      name: 'flaky',
      async handle() {
        if (failures === 0) {
          failures += 1;
          throw Object.assign(new Error('connection terminated unexpectedly'), { code: 'ECONNRESET' });
        }
        // The retry waits here: the status read meanwhile is the one of a projection still retrying.
        await released;
      },
      async reset() {},
    });
    const startedMs = Date.now();
    const runner = runnerFor(tenantId, { projections: [flaky] });
    runner.start();
    await eventually(async () => (await statusOf(runner, 'flaky')).lastError !== null, WAIT_MS, 'the transient error reported');
    const retrying = await statusOf(runner, 'flaky');
    expect(retrying.lastError).toMatchObject({ message: 'connection terminated unexpectedly', position: null });
    expectInstantSince(retrying.lastError?.at, startedMs);
    release();
    await runner.whenCaughtUp();
    const recovered = await statusOf(runner, 'flaky');
    expect(recovered).toMatchObject({ state: 'live', eventsApplied: ledger.version, lastError: null });
    await runner.stop();
    await ledger.close();
  });

  it('an error reading the log while live shows while it lasts, and is cleared by the next read that reaches the end of the log, with no new event', async () => {
    const tenantId = 'transient-read';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await writeTransfers(ledger, 'a', 3, 3);
    let readsFail = false;
    // The runner's own reads fail while `readsFail`; status() reads one event (limit 1) and is let through.
    const failingStore = new Proxy(file.store, {
      get(target, property) {
        if (property === 'readAll') {
          return (query: Parameters<EventStore['readAll']>[0]) => (readsFail && query.limit !== 1 ? Promise.reject(new Error('the log is unreachable')) : target.readAll(query));
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...rest: unknown[]) => unknown).bind(target) : value;
      },
    });
    const runner = runnerFor(tenantId, { store: failingStore, projections: [seenProjection('seen', () => false)] });
    runner.start();
    await runner.whenCaughtUp();
    expect((await statusOf(runner, 'seen')).lastError).toBeNull();
    readsFail = true;
    const failedSinceMs = Date.now();
    await eventually(async () => (await statusOf(runner, 'seen')).lastError !== null, WAIT_MS, 'the read error reported');
    const failing = await statusOf(runner, 'seen');
    expect(failing.lastError).toMatchObject({ message: 'the log is unreachable', position: null });
    expectInstantSince(failing.lastError?.at, failedSinceMs);
    readsFail = false;
    await eventually(async () => (await statusOf(runner, 'seen')).lastError === null, WAIT_MS, 'the read error cleared');
    expect(await statusOf(runner, 'seen')).toMatchObject({ state: 'live', eventsApplied: ledger.version, lagEvents: 0 });
    await runner.stop();
    await ledger.close();
  });

  it('a projection stopped on an event keeps the error, with its position and time, until retry() gets it past the event; then it is null, also for the next runner', async () => {
    const tenantId = 'failed-then-retried';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await writeTransfers(ledger, 'a', 4, 4);
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    await writeTransfers(ledger, 'b', 4, 4);
    const poison = (await globalLog(file.store, tenantId)).find((entry) => entry.event.data['transferId'] === 'poison');
    let poisoned = true;
    const startedMs = Date.now();
    const runner = runnerFor(tenantId, { projections: [seenProjection('seen', () => poisoned)] });
    runner.start();
    await runner.whenCaughtUp();
    const failed = await statusOf(runner, 'seen');
    expect(failed.state).toBe('failed');
    expect(failed.lastError?.position).toBe(poison?.position);
    expect(failed.lastError?.message).toContain('cannot handle the poison transfer');
    expectInstantSince(failed.lastError?.at, startedMs);
    expect(await storedError(tenantId, 'seen')).toMatchObject({ last_error: expect.stringContaining('poison'), last_error_position: poison?.position });

    poisoned = false;
    runner.retry('seen', tenantId);
    await eventually(async () => (await statusOf(runner, 'seen')).eventsApplied === ledger.version, WAIT_MS, 'the retried projection at the end');
    expect(await statusOf(runner, 'seen')).toMatchObject({ state: 'live', lastError: null });
    expect(await storedError(tenantId, 'seen')).toEqual({ last_error: null, last_error_position: null, last_error_at: null });
    await runner.stop();

    // A runner that never saw the error reports what is stored: nothing.
    const next = runnerFor(tenantId, { projections: [seenProjection('seen', () => false)] });
    next.start();
    await next.whenCaughtUp();
    expect(await statusOf(next, 'seen')).toMatchObject({ state: 'live', lastError: null });
    await next.stop();
    await ledger.close();
  });

  it('a projection stopped on an event keeps that event as its lastError when a later look at its checkpoint fails; onError still hears of it', async () => {
    const tenantId = 'failed-then-unreachable';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    const poison = (await globalLog(file.store, tenantId)).find((entry) => entry.event.data['transferId'] === 'poison');
    let poolDown = false;
    const errors: string[] = [];
    // New connections fail while `poolDown`; the runner's own session (locks, LISTEN) stays up.
    const flakyPool: ClientPool = {
      connect: () => (poolDown ? Promise.reject(new Error('the database is unreachable')) : file.db.app.connect()),
    };
    const runner = runnerFor(tenantId, { pool: flakyPool, projections: [seenProjection('seen', () => true)], onError: (error) => errors.push(error.message) });
    runner.start();
    await runner.whenCaughtUp();
    expect((await statusOf(runner, 'seen')).lastError?.position).toBe(poison?.position);
    poolDown = true;
    await eventually(async () => errors.includes('the database is unreachable'), WAIT_MS, 'the failed check reported');
    poolDown = false;
    const status = await statusOf(runner, 'seen');
    expect(status.state).toBe('failed');
    expect(status.lastError?.position).toBe(poison?.position);
    expect(status.lastError?.message).toContain('cannot handle the poison transfer');
    await runner.stop();
    await ledger.close();
  });

  it('an event skipped under skip-with-record is the last error until the projection handles a later event; the skip stays counted', async () => {
    const tenantId = 'skipped-then-handled';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await writeTransfers(ledger, 'a', 3, 3);
    await ledger.transfer({ transferId: 'poison', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    const poison = (await globalLog(file.store, tenantId)).find((entry) => entry.event.data['transferId'] === 'poison');
    const runner = runnerFor(tenantId, { projections: [seenProjection('seen', () => true, 'skip-with-record')] });
    runner.start();
    await runner.whenCaughtUp();
    const skipped = await statusOf(runner, 'seen');
    expect(skipped).toMatchObject({ state: 'live', eventsSkipped: 1, lagEvents: 0 });
    expect(skipped.lastError?.position).toBe(poison?.position);

    await writeTransfers(ledger, 'b', 2, 2);
    await runner.whenCaughtUp();
    expect(await statusOf(runner, 'seen')).toMatchObject({ state: 'live', eventsSkipped: 1, eventsApplied: ledger.version - 1, lastError: null });
    expect(await storedError(tenantId, 'seen')).toEqual({ last_error: null, last_error_position: null, last_error_at: null });
    await runner.stop();
    await ledger.close();
  });
});
