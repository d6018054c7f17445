import { randomBytes } from 'node:crypto';
import { Ledger } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { Outcomes } from './support/outcomes.js';
import { auditLog, randomFrom, setUpAccounts } from './support/workload.js';
import { spawnWriter, type WriterChild } from './support/writer-child.js';
import type { WriterProcessConfig } from './support/writer-protocol.js';

// A writer process under load is SIGKILLed at random moments and started again, on the
// per-file database (an embedded server, or the server at DATABASE_URL). Each new process first
// retries the ids whose outcome the killed one never reported, and some it had acknowledged.
// Set FAULT_SEED to replay a failed run's ids and kill times.
const SEED = process.env['FAULT_SEED'] ?? randomBytes(4).toString('hex');
const TENANT = `faults-${SEED}`;
const LEDGER = 'killed';
const KILLS = 4;
/** How long after `ready` a process is killed: at least this, plus up to KILL_DELAY_SPREAD_MS more. */
const KILL_DELAY_MIN_MS = 120;
const KILL_DELAY_SPREAD_MS = 500;
const ACKED_RETRIES_PER_RUN = 25;
const RUN_TIMEOUT_MS = 45_000;

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

describe('a writer process killed under load', () => {
  it('SIGKILL at random points, restarted each time: every acknowledged transfer is in the log exactly once, nothing half-written, the chain verifies, and a retry after restart answers the original outcome or applies the transfer once', async () => {
    const random = randomFrom(`kill-${SEED}`);
    const killedAfterMs: number[] = [];
    onTestFailed(() => console.error(`sigkill failed with FAULT_SEED=${SEED}; kills ${killedAfterMs.join(', ')} ms after ready`));
    const outcomes = new Outcomes();
    let retriedUnknown = 0;
    let retriedAcked = 0;
    let ackedBeforeFinal = 0;
    /** Ids whose process was killed after their commit and before their acknowledgement: the retry found them. */
    let committedUnacknowledged = 0;

    for (let run = 0; run <= KILLS; run += 1) {
      const final = run === KILLS;
      const unknown = outcomes.unknown();
      const acked = [...outcomes.acks.keys()];
      const ackedSample = Array.from({ length: Math.min(ACKED_RETRIES_PER_RUN, acked.length) }, () => acked[Math.floor(random() * acked.length)] as string);
      retriedUnknown += unknown.length;
      retriedAcked += ackedSample.length;
      const config: WriterProcessConfig = {
        appUrl: db.appUrl,
        tenantId: TENANT,
        ledgerId: LEDGER,
        retryIds: [...unknown, ...ackedSample],
        idPrefix: `${SEED}-r${run}`,
        // A killed run never runs out of ids; the last one submits a few and ends cleanly.
        newIds: final ? 40 : 1_000_000,
        concurrency: 32,
        attemptsMax: 8,
        batchSizeMax: 32,
        // Restarts load a snapshot plus the tail; a kill may land in a snapshot save too.
        snapshotEveryEvents: 150,
      };
      const child = spawnWriter(`run-${run}`, config);
      children.push(child);
      await child.waitFor((line) => line.e === 'ready', RUN_TIMEOUT_MS);
      if (final) {
        await child.waitFor((line) => line.e === 'done', RUN_TIMEOUT_MS);
        expect(await child.exited, `seed ${SEED}; stderr: ${child.stderr()}`).toEqual({ code: 0, signal: null });
      } else {
        const delayMs = KILL_DELAY_MIN_MS + Math.floor(random() * KILL_DELAY_SPREAD_MS);
        killedAfterMs.push(delayMs);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        expect(await child.kill(), `seed ${SEED}`).toEqual({ code: null, signal: 'SIGKILL' });
      }
      outcomes.add(child.lines);
      committedUnacknowledged += child.lines.filter((line) => line.e === 'ok' && line.dup && unknown.includes(line.id)).length;
      if (!final) ackedBeforeFinal = outcomes.acks.size;
    }

    console.info(
      `sigkill: FAULT_SEED=${SEED}, kills ${killedAfterMs.join('/')} ms after ready, ${outcomes.acks.size} ids acknowledged, ` +
        `${retriedUnknown} unknown-outcome ids retried (${committedUnacknowledged} had committed), ${retriedAcked} acknowledged ids retried`,
    );
    expect(ackedBeforeFinal, 'the killed processes were under load').toBeGreaterThan(KILLS * 20);
    expect(retriedAcked, 'acknowledged ids were retried after restarts').toBeGreaterThan(0);
    expect(retriedUnknown, 'each kill left ids whose outcome was unknown').toBeGreaterThan(0);
    expect(outcomes.fatalErrors, `seed ${SEED}`).toEqual([]);
    expect([...outcomes.gaveUp], `seed ${SEED}`).toEqual([]);
    expect(outcomes.unknown(), `seed ${SEED}: after the clean last run every id sent has an outcome`).toEqual([]);
    expect(outcomes.disagreements, `seed ${SEED}: a retry answers where the original is`).toEqual([]);
    expect(outcomes.appliedTwice, `seed ${SEED}: a retry after restart never applies an id again`).toEqual([]);
    expect(outcomes.staleRejections(), `seed ${SEED}: a retry after restart never refuses an acknowledged id`).toEqual([]);
    expect(outcomes.duplicates, 'retries of acknowledged ids answered duplicate').toBeGreaterThanOrEqual(Math.min(retriedAcked, 1));

    // readLedger inside the audit throws on a version gap or a broken hash link.
    const store = await PostgresEventStore.open({ pool: db.app });
    const audit = await auditLog(store, TENANT, LEDGER);
    expect(outcomes.problemsWith(audit, (id) => id.startsWith('open-')), `seed ${SEED}`).toEqual([]);
    expect(audit.overdrafts, `seed ${SEED}`).toEqual([]);
    expect(audit.unbalancedCurrencies, `seed ${SEED}`).toEqual([]);

    const check = await Ledger.open({ store, tenantId: TENANT, ledgerId: LEDGER, snapshotEveryEvents: 0 });
    expect(check.version).toBe(audit.eventCount);
    expect(await check.verifyChain()).toMatchObject({ ok: true, eventCount: audit.eventCount });
    expect((await check.trialBalance()).totals.every((total) => total.balanced)).toBe(true);
    await check.close();
  });
});
