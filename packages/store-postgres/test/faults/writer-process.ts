/**
 * A writer process for the fault tests, run with `node --import tsx`: it opens the ledger on its
 * own pool, submits its ids from several concurrent callers, retries an id after a retriable
 * error, and reports every step on stdout (see `support/writer-protocol.ts`). It exits 0 once
 * every id has an outcome; the tests may SIGKILL it at any moment before that.
 */
import { Ledger, LedgerError, VersionConflictError, type EventStore } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { writeSync } from 'node:fs';
import pg from 'pg';
import { specFor, submitSpec } from './support/workload.js';
import { CONFIG_VARIABLE, nowMs, type WriterLine, type WriterProcessConfig } from './support/writer-protocol.js';

const RETRY_PAUSE_MS = 20;

/** Sleeps the thread for a millisecond (a full pipe: the test is reading). */
const pause = (): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);

/**
 * Writes a line into the stdout pipe before returning: `process.stdout.write` queues in this
 * process once the pipe is full, and a SIGKILL loses what is queued. A lost `sent` line hid an id
 * the log holds (the test saw it in the log, never sent), under load on a shared machine.
 */
function report(line: WriterLine): void {
  const bytes = Buffer.from(`${JSON.stringify(line)}\n`);
  for (let offset = 0; offset < bytes.length; ) {
    try {
      offset += writeSync(1, bytes, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      pause();
    }
  }
}

/** The ids in submission order, made as they are needed: retries first, then new ids with the cross-process retries mixed in. */
function* idsOf(config: WriterProcessConfig): Generator<string> {
  yield* config.retryIds;
  for (let n = 0; n < config.newIds; n += 1) {
    yield `${config.idPrefix}-${n}`;
    const cross = n - (config.crossLag ?? 0);
    if (config.crossPrefix !== undefined && config.crossEvery !== undefined && cross >= 0 && n % config.crossEvery === 0) yield `${config.crossPrefix}-${cross}`;
  }
}

/** Counts the appends another writer beat, for the test to see that the writers did compete. */
function countingConflicts(inner: EventStore, counter: { conflicts: number }): EventStore {
  return {
    append: async (request) => {
      try {
        return await inner.append(request);
      } catch (error) {
        if (error instanceof VersionConflictError) counter.conflicts += 1;
        throw error;
      }
    },
    readStream: (request) => inner.readStream(request),
    readAll: (request) => inner.readAll(request),
    findByIndexKeys: (request) => inner.findByIndexKeys(request),
    saveSnapshot: (snapshot) => inner.saveSnapshot(snapshot),
    loadSnapshot: (request) => inner.loadSnapshot(request),
  };
}

async function submitUntilDecided(ledger: Ledger, id: string, attemptsMax: number): Promise<void> {
  const spec = specFor(id);
  for (let attempt = 1; attempt <= attemptsMax; attempt += 1) {
    report({ e: 'sent', id, t: nowMs() });
    try {
      const result = await submitSpec(ledger, spec);
      if (result.ok) {
        const members = result.members?.map((member) => (member.ok ? member.ledgerVersion : -1));
        report({ e: 'ok', id, v: result.ledgerVersion, dup: result.duplicate, ...(members === undefined ? {} : { m: members }), t: nowMs() });
      } else {
        report({ e: 'rejected', id, code: result.code, t: nowMs() });
      }
      return;
    } catch (error) {
      const retriable = error instanceof LedgerError && error.retriable;
      const code = error instanceof LedgerError ? error.code : error instanceof Error ? error.name : 'unknown';
      report({ e: 'error', id, code, retriable, message: error instanceof Error ? error.message : String(error) });
      if (!retriable) break;
      await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS * attempt));
    }
  }
  report({ e: 'gave-up', id });
}

async function main(): Promise<void> {
  const text = process.env[CONFIG_VARIABLE];
  if (text === undefined) throw new Error(`${CONFIG_VARIABLE} is not set`);
  const config = JSON.parse(text) as WriterProcessConfig;
  const pool = new pg.Pool({ connectionString: config.appUrl, max: 4, connectionTimeoutMillis: 10_000 });
  // A backend that goes away while idle in the pool must not crash the process: the next query fails instead.
  pool.on('error', () => undefined);
  const counter = { conflicts: 0 };
  const store = countingConflicts(await PostgresEventStore.open({ pool }), counter);
  const ledger = await Ledger.open({
    store,
    tenantId: config.tenantId,
    ledgerId: config.ledgerId,
    ...(config.batchSizeMax === undefined ? {} : { batchSizeMax: config.batchSizeMax }),
    ...(config.conflictRetriesMax === undefined ? {} : { conflictRetriesMax: config.conflictRetriesMax }),
    ...(config.snapshotEveryEvents === undefined ? {} : { snapshotEveryEvents: config.snapshotEveryEvents }),
  });
  report({ e: 'ready', v: ledger.version });
  if (config.awaitGo === true) await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.destroy();

  const ids = idsOf(config);
  const caller = async (): Promise<void> => {
    for (let next = ids.next(); next.done !== true; next = ids.next()) await submitUntilDecided(ledger, next.value, config.attemptsMax);
  };
  await Promise.all(Array.from({ length: config.concurrency }, caller));
  await ledger.close();
  await pool.end();
  report({ e: 'done', conflicts: counter.conflicts });
}

main().catch((error: unknown) => {
  process.stderr.write(`writer process failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
