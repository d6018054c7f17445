import { randomBytes } from 'node:crypto';
import { Ledger } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { Outcomes } from './support/outcomes.js';
import { auditLog, isCustomer, setUpAccounts } from './support/workload.js';
import { spawnWriter, type WriterChild } from './support/writer-child.js';

// Two writer processes, each with its own pool, on one ledger of the per-file database (an
// embedded server, or the server at DATABASE_URL). Set FAULT_SEED to replay a failed run's ids.
const SEED = process.env['FAULT_SEED'] ?? randomBytes(4).toString('hex');
const TENANT = `faults-${SEED}`;
const LEDGER = 'shared';
const IDS_PER_PROCESS = 400;
const RUN_TIMEOUT_MS = 60_000;

let db: TestDatabase;
const children: WriterChild[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
  const ledger = await Ledger.open({ store: await PostgresEventStore.open({ pool: db.app }), tenantId: TENANT, ledgerId: LEDGER });
  await setUpAccounts(ledger);
  await ledger.close();
});

afterAll(async () => {
  await Promise.all(children.map((child) => child.kill()));
  await db?.close();
});

describe('two writer processes on one ledger', () => {
  it('spending the same no-overdraft accounts from two processes: no double spend, no lost or duplicated transfer, conservation per currency, every acknowledged transfer in the log exactly once where it was acknowledged', async () => {
    onTestFailed(() => console.error(`two-writers failed with FAULT_SEED=${SEED}`));
    const common = {
      appUrl: db.appUrl,
      tenantId: TENANT,
      ledgerId: LEDGER,
      retryIds: [],
      newIds: IDS_PER_PROCESS,
      crossEvery: 2,
      crossLag: 40,
      concurrency: 16,
      attemptsMax: 8,
      batchSizeMax: 64,
      conflictRetriesMax: 100,
      snapshotEveryEvents: 0,
      awaitGo: true,
    };
    // Each process also submits every other one of the other's ids, 40 ids behind it: usually
    // after the other has decided it, sometimes while it still is. Exactly one may apply it, and
    // neither may refuse it once the other has acknowledged it. Both start together on `go`.
    const first = spawnWriter('A', { ...common, idPrefix: `${SEED}-a`, crossPrefix: `${SEED}-b` });
    const second = spawnWriter('B', { ...common, idPrefix: `${SEED}-b`, crossPrefix: `${SEED}-a` });
    children.push(first, second);
    await Promise.all([first, second].map((child) => child.waitFor((line) => line.e === 'ready', RUN_TIMEOUT_MS)));
    first.go();
    second.go();
    const done = await Promise.all([first, second].map((child) => child.waitFor((line) => line.e === 'done', RUN_TIMEOUT_MS)));
    const exits = await Promise.all([first.exited, second.exited]);
    expect(exits, `seed ${SEED}; stderr: ${first.stderr()} ${second.stderr()}`).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);

    const outcomes = new Outcomes();
    outcomes.add(first.lines);
    outcomes.add(second.lines);
    const conflicts = done.reduce((sum, line) => sum + (line.e === 'done' ? line.conflicts : 0), 0);
    expect(conflicts, 'the two writers really raced for the stream').toBeGreaterThan(0);
    expect(outcomes.fatalErrors, `seed ${SEED}`).toEqual([]);
    expect([...outcomes.gaveUp], `seed ${SEED}: every id got an outcome`).toEqual([]);
    expect(outcomes.unknown(), `seed ${SEED}`).toEqual([]);
    expect(outcomes.acks.size, 'a good share of the transfers went through').toBeGreaterThan(IDS_PER_PROCESS / 2);
    expect(outcomes.rejected.size, 'and the shared accounts ran dry often enough to refuse some').toBeGreaterThan(0);
    expect(outcomes.disagreements, `seed ${SEED}`).toEqual([]);
    expect(outcomes.appliedTwice, `seed ${SEED}: an id is applied once; every other acknowledgement is a duplicate`).toEqual([]);
    expect(outcomes.duplicates, 'cross-process retries met transfers the other process had applied').toBeGreaterThan(0);
    expect(outcomes.staleRejections(), `seed ${SEED}: a retry sent after the other process acknowledged the id is never rejected`).toEqual([]);

    const store = await PostgresEventStore.open({ pool: db.app });
    const audit = await auditLog(store, TENANT, LEDGER);
    expect(outcomes.problemsWith(audit, (id) => id.startsWith('open-')), `seed ${SEED}`).toEqual([]);
    expect(audit.overdrafts, `seed ${SEED}: no customer is ever overdrawn`).toEqual([]);
    expect(audit.unbalancedCurrencies, `seed ${SEED}`).toEqual([]);

    const check = await Ledger.open({ store, tenantId: TENANT, ledgerId: LEDGER });
    expect(check.version).toBe(audit.eventCount);
    expect((await check.verifyChain()).ok).toBe(true);
    expect((await check.trialBalance()).totals.every((total) => total.balanced)).toBe(true);
    for (const [accountId, balance] of audit.balances) {
      const account = check.writer.account(accountId);
      expect(account === undefined ? undefined : account.creditsPosted - account.debitsPosted, accountId).toBe(balance);
      if (isCustomer(accountId)) expect(balance >= 0n, accountId).toBe(true);
    }
    await check.close();
  });
});
