/**
 * Appending batches of 1,000 transfers to PostgreSQL: through `PostgresEventStore.append`
 * (events pre-encoded), through the whole `LedgerWriter` path, and — the peer every ratio is
 * taken to — a plain multi-row INSERT of the same rows into a table with no checks at all. One
 * operation is one transfer (one event); one timed batch is one append, committed durably.
 */
import { LedgerWriter, type CommandResult, type StoredEvent, type TransferCommand } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type pg from 'pg';
import { ChainEncoder } from './chain-encoder.js';
import type { PreparedRound, Scenario } from './harness.js';
import { buildFixtureLedger, fixtureAccountIds, fixtureCommands, planTransfers, transferCommandOf } from './ledger-fixture.js';
import { BENCH_TENANT_ID as TENANT_ID, insertRawRows } from './raw-insert.js';
import { firstErrorReporter, roundLabel, type ErrorReporter } from './scenario-util.js';

/** Name of the peer the PostgreSQL scenarios are compared to. */
export const PG_RAW_CEILING = 'pg-raw-insert-ceiling';
/** The store's append of pre-encoded events: the scenario the target is about. */
export const PG_APPEND = 'pg-append-batch-1000';
/** The writer's whole path: decide, encode, hash, append. */
export const PG_WRITER = 'pg-writer-batch-1000';
/** Every PostgreSQL scenario, in report order; the ceiling comes first. */
export const POSTGRES_SCENARIO_NAMES: readonly string[] = [PG_RAW_CEILING, PG_APPEND, PG_WRITER];

/** Transfers per append: the batch of the target, and the writer's default `batchSizeMax`. */
export const PG_BATCH_SIZE = 1_000;

/** What the PostgreSQL scenarios share. */
export interface PostgresAppendOptions {
  /** Pool of the application role on a migrated database. */
  readonly app: pg.Pool;
  /** Accounts in each round's fixture ledger; even. */
  readonly accounts: number;
  /** Seed of the transfer streams; round `r` uses `seed + r`. */
  readonly seed: number;
  /** Called with the first error of a scenario, which would otherwise only be counted. */
  readonly onError?: (scenarioName: string, error: unknown) => void;
}

/**
 * Opens the store (the ceiling's table exists already: see `createRawTable`), then returns the ceiling, the store's append
 * and the writer, in that order. Both insert scenarios write the very same encoded rows each
 * round (the last round's rows are kept for whichever of them runs it second).
 */
export async function postgresAppendScenarios(options: PostgresAppendOptions): Promise<Scenario[]> {
  const store = await PostgresEventStore.open({ pool: options.app });
  const rows = new RoundRows(options.accounts, options.seed);
  const report = firstErrorReporter(options.onError);
  return [rawInsertCeiling(options.app, rows, report), storeAppend(store, rows, report), writerSubmit(store, options, report)];
}

/**
 * The ceiling: one autocommitted `INSERT … SELECT FROM unnest(…)` of the batch's rows into a
 * table with the events' columns and column defaults but no key, index, constraint, domain,
 * trigger or row-level security, on the same pool as the store. Its parameters are built from the
 * encoded events inside the timed region, as the store's are.
 */
function rawInsertCeiling(app: pg.Pool, rows: RoundRows, report: ErrorReporter): Scenario {
  return {
    name: PG_RAW_CEILING,
    description: `one autocommitted INSERT … SELECT FROM unnest(…) of the same ${PG_BATCH_SIZE.toLocaleString('en-US')} encoded rows into a plain table (same columns, no keys, indexes, constraints, triggers or RLS)`,
    target: undefined,
    latencyOf: 'batch',
    prepare(opsCount, round): PreparedRound {
      const { ledgerId, events } = rows.of(round, opsCount);
      return {
        async run(from, to) {
          try {
            await insertRawRows(app, ledgerId, events, from, to - from, from + 1);
            return 0;
          } catch (error) {
            report(PG_RAW_CEILING, error);
            return to - from;
          }
        },
      };
    },
  };
}

/**
 * The store's append, the operation the target is about: `PostgresEventStore.append`
 * of 1,000 pre-encoded, hash-chained `TransferPosted` events, fenced by the expected version,
 * sequentially on one stream per round (the round's first append creates the stream).
 */
function storeAppend(store: PostgresEventStore, rows: RoundRows, report: ErrorReporter): Scenario {
  return {
    name: PG_APPEND,
    description: `PostgresEventStore.append of ${PG_BATCH_SIZE.toLocaleString('en-US')} pre-encoded, hash-chained TransferPosted events, expectedVersion advancing on one stream`,
    target: {
      ratioToRawCeiling: 0.5,
      statement: 'appending batches of 1,000 transfers reaches at least half of the raw PostgreSQL ceiling measured in the same run, with synchronous_commit on',
    },
    latencyOf: 'batch',
    prepare(opsCount, round): PreparedRound {
      const { ledgerId, events } = rows.of(round, opsCount);
      return {
        async run(from, to) {
          try {
            const { ledgerVersion } = await store.append({ tenantId: TENANT_ID, ledgerId, expectedVersion: from, events: events.slice(from, to) });
            if (ledgerVersion !== to) throw new Error(`append returned version ${ledgerVersion}, expected ${to}`);
            return 0;
          } catch (error) {
            report(PG_APPEND, error);
            return to - from;
          }
        },
      };
    },
  };
}

/**
 * The end-to-end rate: 1,000 pre-built simple transfers submitted to a `LedgerWriter` at once
 * and awaited together. With the writer's default options (`appendsInFlightMax` 2) a queue of
 * 1,000 found idle is cut in two: two batches of 500, each decided, encoded and hashed, the
 * second decided while the first is being appended, so two fenced appends per 1,000. Each round opens a fresh ledger (its fixture accounts opened and funded through the
 * same writer before the clock starts), so state, and with it the cost of a decision, is the
 * same in every round. Snapshots are off: their cost depends on the history, not the batch.
 */
function writerSubmit(store: PostgresEventStore, options: PostgresAppendOptions, report: ErrorReporter): Scenario {
  return {
    name: PG_WRITER,
    description: `LedgerWriter.submit of ${PG_BATCH_SIZE.toLocaleString('en-US')} pre-built simple transfers, awaited together: decide + encode + hash + append; with default options (appendsInFlightMax 2) the writer cuts the idle queue of 1,000 into two fenced appends of 500, the second decided while the first is appended`,
    target: undefined,
    latencyOf: 'batch',
    async prepare(opsCount, round): Promise<PreparedRound> {
      const writer = await LedgerWriter.open({
        store,
        tenantId: TENANT_ID,
        ledgerId: `writer-${roundLabel(round)}`,
        batchSizeMax: PG_BATCH_SIZE,
        snapshotEveryEvents: 0,
      });
      try {
        const fixture = await Promise.all(fixtureCommands(options.accounts).map((command) => writer.submit(command)));
        const refused = fixture.find((result) => !result.ok);
        if (refused !== undefined) throw new Error(`writer fixture command refused: ${JSON.stringify(refused)}`);
      } catch (error) {
        await writer.close();
        throw error;
      }
      const commands = planTransfers(opsCount, fixtureAccountIds(options.accounts), options.seed + round).map(transferCommandOf);
      return {
        async run(from, to) {
          const submitted = new Array<Promise<CommandResult>>(to - from);
          for (let i = from; i < to; i += 1) submitted[i - from] = writer.submit(commands[i] as TransferCommand);
          try {
            const results = await Promise.all(submitted);
            let failed = 0;
            for (const result of results) if (!result.ok || result.duplicate) failed += 1;
            if (failed > 0) report(PG_WRITER, new Error(`${failed} of ${results.length} transfers not applied, e.g. ${JSON.stringify(results.find((r) => !r.ok || r.duplicate))}`));
            return failed;
          } catch (error) {
            report(PG_WRITER, error);
            return to - from;
          }
        },
        finish: () => writer.close(),
      };
    },
  };
}

/**
 * The rows both insert scenarios write in a round: the round's seeded transfers, each decided
 * against the fixture ledger and encoded with `EventCodec.encode` exactly as the writer does
 * (random event id, one recorded time per batch, hash chained from the genesis hash), on stream
 * `append-<round>`. Keeps only the latest round: every round of a scenario runs to its end
 * before the next round starts.
 */
class RoundRows {
  readonly #accounts: number;
  readonly #seed: number;
  #latest: { readonly round: number; readonly opsCount: number; readonly ledgerId: string; readonly events: readonly StoredEvent[] } | undefined;

  constructor(accounts: number, seed: number) {
    this.#accounts = accounts;
    this.#seed = seed;
  }

  of(round: number, opsCount: number): { readonly ledgerId: string; readonly events: readonly StoredEvent[] } {
    if (this.#latest?.round !== round || this.#latest.opsCount !== opsCount) {
      this.#latest = { round, opsCount, ...this.#encode(round, opsCount) };
    }
    return this.#latest;
  }

  #encode(round: number, opsCount: number): { ledgerId: string; events: StoredEvent[] } {
    const ledgerId = `append-${roundLabel(round)}`;
    const { state, accountIds } = buildFixtureLedger(this.#accounts);
    // The fixture ledger's own history is not in the stream: the stream starts at version 1.
    const encoder = new ChainEncoder({ ledgerId, state, streamVersion: 0 });
    const events: StoredEvent[] = [];
    for (const plan of planTransfers(opsCount, accountIds, this.#seed + round)) encoder.encode(transferCommandOf(plan), events);
    if (events.length !== opsCount) throw new Error(`encoded ${events.length} events for ${opsCount} transfers`);
    return { ledgerId, events };
  }
}
