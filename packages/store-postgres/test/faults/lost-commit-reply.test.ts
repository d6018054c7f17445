import { Ledger, StoreUnavailableError, VersionConflictError, type EventStore } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { startCuttingProxy, type CuttingProxy } from './support/cutting-proxy.js';
import { auditLog, setUpAccounts, shopAccount } from './support/workload.js';

// The writer talks to the per-file database (an embedded server, or the server at DATABASE_URL)
// through a proxy that can drop the server's reply to a COMMIT that succeeded.
const TENANT = 'lost-reply';
const LEDGER = 'main';

let db: TestDatabase;
let proxy: CuttingProxy;

beforeAll(async () => {
  db = await openTestDatabase();
  const server = new URL(db.appUrl);
  proxy = await startCuttingProxy(server.hostname, Number(server.port || 5432));
});

afterAll(async () => {
  await proxy?.close();
  await db?.close();
});

/** Passes every call through, counting the appends the stream's version refused. */
function countingConflicts(inner: EventStore): { readonly store: EventStore; readonly conflicts: () => number } {
  let conflicts = 0;
  const store: EventStore = {
    append: async (request) => {
      try {
        return await inner.append(request);
      } catch (error) {
        if (error instanceof VersionConflictError) conflicts += 1;
        throw error;
      }
    },
    readStream: (request) => inner.readStream(request),
    readAll: (request) => inner.readAll(request),
    findByIndexKeys: (request) => inner.findByIndexKeys(request),
    saveSnapshot: (snapshot) => inner.saveSnapshot(snapshot),
    loadSnapshot: (request) => inner.loadSnapshot(request),
  };
  return { store, conflicts: () => conflicts };
}

describe('an append whose commit succeeded but whose reply was lost', () => {
  it('fails its callers with a retriable StoreUnavailableError; the writer reads the tail before its next decision, so retries answer duplicate with the original versions without a conflicting append, a command that needs the lost batch is accepted, and memory matches the log', async () => {
    const direct = await PostgresEventStore.open({ pool: db.app });
    const counting = countingConflicts(await PostgresEventStore.open({ pool: db.pool(proxy.via(db.appUrl), 4) }));
    const ledger = await Ledger.open({ store: counting.store, tenantId: TENANT, ledgerId: LEDGER, snapshotEveryEvents: 0 });
    await setUpAccounts(ledger);
    const versionBefore = ledger.version;
    const openCarol = { accountId: 'carol', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } } as const;
    const fundCarol = { transferId: 'fund-carol', debitAccountId: 'bank-EUR', creditAccountId: 'carol', amount: '50.00', currency: 'EUR' } as const;

    proxy.cutNextCommitReply();
    const failures = await Promise.all([ledger.openAccount(openCarol), ledger.transfer(fundCarol)].map((call) => call.then(() => undefined, (error: unknown) => error)));

    expect(proxy.cuts).toBe(1);
    for (const failure of failures) {
      expect(failure).toBeInstanceOf(StoreUnavailableError);
      expect(failure).toMatchObject({ code: 'store_unavailable', retriable: true });
      expect((failure as Error).message).toMatch(/may have been applied/);
    }
    const committed = await direct.readStream({ tenantId: TENANT, ledgerId: LEDGER, direction: 'forward', fromVersion: versionBefore + 1, limit: 10 });
    expect(committed.map((event) => event.type), 'the batch did commit').toEqual(['AccountOpened', 'TransferPosted']);
    expect(ledger.version, 'memory has not applied what it could not confirm').toBe(versionBefore);

    expect(await ledger.openAccount(openCarol)).toEqual({ ok: true, duplicate: true, ledgerVersion: versionBefore + 1, recordedAt: committed[0]?.recordedAt });
    expect(await ledger.transfer(fundCarol)).toEqual({ ok: true, duplicate: true, ledgerVersion: versionBefore + 2, recordedAt: committed[1]?.recordedAt });
    // Deciding the retries on the old state would have appended them again and hit the version fence.
    expect(counting.conflicts(), 'the retries were decided after reading the tail').toBe(0);

    const spend = await ledger.transfer({ transferId: 'carol-pays', debitAccountId: 'carol', creditAccountId: shopAccount('EUR'), amount: '50.00', currency: 'EUR' });
    expect(spend).toMatchObject({ ok: true, duplicate: false, ledgerVersion: versionBefore + 3 });

    const audit = await auditLog(direct, TENANT, LEDGER);
    expect(audit.repeatedIds).toEqual([]);
    expect(ledger.version).toBe(audit.eventCount);
    expect(ledger.balance('carol')?.posted).toBe('0.00');
    expect(audit.balances.get('carol')).toBe(0n);
    await ledger.close();
  });
});
