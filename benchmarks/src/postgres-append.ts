/**
 * Appending batches of 1,000 transfers to PostgreSQL: through `PostgresEventStore.append`
 * (events pre-encoded), through the whole `LedgerWriter` path, and — the peer every ratio is
 * taken to — a plain multi-row INSERT of the same rows into a table with no checks at all. One
 * operation is one transfer (one event); one timed batch is one append, committed durably.
 */
import { randomUUID } from 'node:crypto';
import {
  CurrencyRegistry,
  decide,
  EventCodec,
  evolve,
  GENESIS_HASH,
  LedgerWriter,
  type CommandResult,
  type StoredEvent,
  type TransferCommand,
} from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type pg from 'pg';
import type { PreparedRound, Scenario } from './harness.js';
import { buildFixtureLedger, FIXTURE_CONTEXT, FIXTURE_NOW_MS, fixtureAccountIds, fixtureCommands, planTransfers, transferCommandOf } from './ledger-fixture.js';

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

/** Tenant of every benchmark stream. */
const TENANT_ID = 'bench';
/** The ceiling's table: same columns as `ledgerkit.events`, nothing else. */
const RAW_SCHEMA = 'ledgerkit_bench';
const RAW_TABLE = `${RAW_SCHEMA}.raw_events`;

/** What the PostgreSQL scenarios share. */
export interface PostgresAppendOptions {
  /** Pool of the application role on a migrated database. */
  readonly app: pg.Pool;
  /** Pool of a superuser on the same database; used once, to create the ceiling's table. */
  readonly admin: pg.Pool;
  /** Accounts in each round's fixture ledger; even. */
  readonly accounts: number;
  /** Seed of the transfer streams; round `r` uses `seed + r`. */
  readonly seed: number;
  /** Called with the first error of a scenario, which would otherwise only be counted. */
  readonly onError?: (scenarioName: string, error: unknown) => void;
}

/**
 * Creates the ceiling's table and opens the store, then returns the ceiling, the store's append
 * and the writer, in that order. Both insert scenarios write the very same encoded rows each
 * round (the last round's rows are kept for whichever of them runs it second).
 */
export async function postgresAppendScenarios(options: PostgresAppendOptions): Promise<Scenario[]> {
  await createRawTable(options.admin, options.app);
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
  const sql = `INSERT INTO ${RAW_TABLE} (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data,
      recorded_at, effective_at, correlation_id, causation_id, metadata, previous_hash, hash)
    SELECT $1::text, $2::text, e.* FROM unnest($3::bigint[], $4::text[], $5::text[], $6::integer[], $7::jsonb[], $8::text[],
      $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::text[], $14::text[]) AS e`;
  return {
    name: PG_RAW_CEILING,
    description: `one autocommitted INSERT … SELECT FROM unnest(…) of the same ${PG_BATCH_SIZE.toLocaleString('en-US')} encoded rows into a plain table (same columns, no keys, indexes, constraints, triggers or RLS)`,
    target: undefined,
    prepare(opsCount, round): PreparedRound {
      const { ledgerId, events } = rows.of(round, opsCount);
      return {
        async run(from, to) {
          const count = to - from;
          const versions = new Array<number>(count);
          const eventIds = new Array<string>(count);
          const types = new Array<string>(count);
          const schemaVersions = new Array<number>(count);
          const data = new Array<string>(count);
          const recordedAt = new Array<string>(count);
          const effectiveAt = new Array<string>(count);
          const correlationIds = new Array<string | null>(count);
          const causationIds = new Array<string | null>(count);
          const metadata = new Array<string>(count);
          const previousHashes = new Array<string>(count);
          const hashes = new Array<string>(count);
          for (let i = 0; i < count; i += 1) {
            const event = events[from + i] as StoredEvent;
            versions[i] = event.ledgerVersion;
            eventIds[i] = event.eventId;
            types[i] = event.type;
            schemaVersions[i] = event.schemaVersion;
            data[i] = JSON.stringify(event.data);
            recordedAt[i] = event.recordedAt;
            effectiveAt[i] = event.effectiveAt;
            correlationIds[i] = event.correlationId;
            causationIds[i] = event.causationId;
            metadata[i] = JSON.stringify(event.metadata);
            previousHashes[i] = event.previousHash;
            hashes[i] = event.hash;
          }
          try {
            const result = await app.query(sql, [
              TENANT_ID,
              ledgerId,
              versions,
              eventIds,
              types,
              schemaVersions,
              data,
              recordedAt,
              effectiveAt,
              correlationIds,
              causationIds,
              metadata,
              previousHashes,
              hashes,
            ]);
            if (result.rowCount !== count) throw new Error(`inserted ${String(result.rowCount)} rows, expected ${count}`);
            return 0;
          } catch (error) {
            report(PG_RAW_CEILING, error);
            return count;
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
 * and awaited together, so its queue forms one batch — decided, encoded, hashed and appended in
 * one call. Each round opens a fresh ledger (its fixture accounts opened and funded through the
 * same writer before the clock starts), so state, and with it the cost of a decision, is the
 * same in every round. Snapshots are off: their cost depends on the history, not the batch.
 */
function writerSubmit(store: PostgresEventStore, options: PostgresAppendOptions, report: ErrorReporter): Scenario {
  return {
    name: PG_WRITER,
    description: `LedgerWriter.submit of ${PG_BATCH_SIZE.toLocaleString('en-US')} pre-built simple transfers, awaited together: decide + encode + hash + append, one batch per append`,
    target: undefined,
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
  readonly #codec = new EventCodec({ currencies: new CurrencyRegistry() });
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
    const events: StoredEvent[] = [];
    let previousHash = GENESIS_HASH;
    for (const plan of planTransfers(opsCount, accountIds, this.#seed + round)) {
      const decision = decide(transferCommandOf(plan), state, FIXTURE_CONTEXT);
      if (!decision.ok) throw new Error(`fixture transfer ${plan.transferId} rejected: ${decision.code}`);
      for (const draft of decision.events) {
        // The fixture ledger's own history is not in the stream: the stream starts at version 1.
        evolve(state, draft.event, { ledgerVersion: state.version + 1, recordedAtMs: FIXTURE_NOW_MS, effectiveAtMs: draft.effectiveAtMs });
        const ledgerVersion = events.length + 1;
        const stored = this.#codec.encode(draft, {
          eventId: randomUUID(),
          tenantId: TENANT_ID,
          ledgerId,
          ledgerVersion,
          recordedAtMs: FIXTURE_NOW_MS,
          correlationId: null,
          causationId: null,
          metadata: {},
          previousHash,
        });
        previousHash = stored.hash;
        events.push(stored);
      }
    }
    if (events.length !== opsCount) throw new Error(`encoded ${events.length} events for ${opsCount} transfers`);
    return { ledgerId, events };
  }
}

/** Creates the ceiling's plain table as the superuser and lets the application role insert into it. */
async function createRawTable(admin: pg.Pool, app: pg.Pool): Promise<void> {
  const appRole = (await app.query<{ role: string }>('SELECT current_user AS role')).rows[0]?.role;
  if (appRole === undefined) throw new Error('could not name the application role');
  // The position and txid columns keep their defaults so every row gets the same values as an
  // event row, from a plain sequence instead of an identity column (which implies NOT NULL).
  await admin.query(`
    CREATE SCHEMA ${RAW_SCHEMA};
    CREATE SEQUENCE ${RAW_SCHEMA}.raw_events_position;
    CREATE TABLE ${RAW_TABLE} (
      tenant_id text, ledger_id text, ledger_version bigint, event_id text, type text, schema_version integer, data jsonb,
      recorded_at text, effective_at text, correlation_id text, causation_id text, metadata jsonb, previous_hash text, hash text,
      position bigint DEFAULT nextval('${RAW_SCHEMA}.raw_events_position'), txid xid8 DEFAULT pg_current_xact_id()
    );
    GRANT USAGE ON SCHEMA ${RAW_SCHEMA} TO "${appRole}";
    GRANT INSERT ON ${RAW_TABLE} TO "${appRole}";
    GRANT USAGE ON SEQUENCE ${RAW_SCHEMA}.raw_events_position TO "${appRole}";`);
}

type ErrorReporter = (scenarioName: string, error: unknown) => void;

/** Passes on each scenario's first error only: one broken fixture fails every batch alike. */
function firstErrorReporter(onError: PostgresAppendOptions['onError']): ErrorReporter {
  const seen = new Set<string>();
  return (scenarioName, error) => {
    if (seen.has(scenarioName)) return;
    seen.add(scenarioName);
    onError?.(scenarioName, error);
  };
}

/** `r3` for measured round 3, `w1` for the first warm-up round (the harness numbers those -1, -2, …). */
function roundLabel(round: number): string {
  return round >= 0 ? `r${round}` : `w${-round}`;
}
