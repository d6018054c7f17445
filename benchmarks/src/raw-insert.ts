/**
 * The raw ceiling every PostgreSQL figure is compared with: the same encoded rows inserted into a
 * plain table with the events' columns and column defaults, but no key, index, constraint,
 * domain, trigger or row-level security, by one autocommitted `INSERT … SELECT FROM unnest(…)`.
 */
import { dataJsonOf, indexIdsOf, type StoredEvent } from '@ledgerkit/ledger-core';
import type pg from 'pg';

/** Tenant of every benchmark stream. */
export const BENCH_TENANT_ID = 'bench';

const RAW_SCHEMA = 'ledgerkit_bench';
const RAW_TABLE = `${RAW_SCHEMA}.raw_events`;

// The same parameter encoding as the store's append: every column one text, values joined by
// U+001E, NULL as a lone U+001F (see PostgresEventStore), so the ceiling pays what the store pays.
const SPLIT = (n: number, type: string): string => `string_to_array($${n}::text, chr(30), chr(31))::${type}[]`;
const RAW_INSERT_SQL = `INSERT INTO ${RAW_TABLE} (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data,
    recorded_at, effective_at, correlation_id, causation_id, metadata, previous_hash, hash, transfer_key, resolution_key, reversal_key)
  SELECT $1::text, $2::text, e.* FROM unnest(${SPLIT(3, 'bigint')}, ${SPLIT(4, 'text')}, ${SPLIT(5, 'text')}, ${SPLIT(6, 'integer')},
    ${SPLIT(7, 'json')}, ${SPLIT(8, 'text')}, ${SPLIT(9, 'text')}, ${SPLIT(10, 'text')}, ${SPLIT(11, 'text')}, ${SPLIT(12, 'json')},
    ${SPLIT(13, 'text')}, ${SPLIT(14, 'text')}, ${SPLIT(15, 'text')}, ${SPLIT(16, 'text')}, ${SPLIT(17, 'text')}) AS e`;

/** One column joined for `string_to_array(…, chr(30), chr(31))`; the ring's values are the writer's, which always join. */
function joined(values: readonly (string | number | null)[]): string {
  let text = '';
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i];
    const item = value === null || value === undefined ? '\u001f' : String(value);
    if (item.length === 0 || (value !== null && (item.includes('\u001e') || item.includes('\u001f')))) throw new Error(`value ${JSON.stringify(item)} cannot be joined`);
    text = i === 0 ? item : `${text}\u001e${item}`;
  }
  return text;
}

/** Creates the ceiling's plain table as the superuser (once per database) and lets the application role insert into it. */
export async function createRawTable(admin: pg.Pool, app: pg.Pool): Promise<void> {
  const appRole = (await app.query<{ role: string }>('SELECT current_user AS role')).rows[0]?.role;
  if (appRole === undefined) throw new Error('could not name the application role');
  // The position and txid columns keep their defaults so every row gets the same values as an
  // event row, from a plain sequence instead of an identity column (which implies NOT NULL).
  await admin.query(`
    CREATE SCHEMA IF NOT EXISTS ${RAW_SCHEMA};
    CREATE SEQUENCE IF NOT EXISTS ${RAW_SCHEMA}.raw_events_position;
    CREATE TABLE IF NOT EXISTS ${RAW_TABLE} (
      tenant_id text, ledger_id text, ledger_version bigint, event_id text, type text, schema_version integer, data json,
      recorded_at text, effective_at text, correlation_id text, causation_id text, metadata json, previous_hash text, hash text,
      transfer_key text, resolution_key text, reversal_key text,
      position bigint DEFAULT nextval('${RAW_SCHEMA}.raw_events_position'), txid xid8 DEFAULT pg_current_xact_id()
    );
    GRANT USAGE ON SCHEMA ${RAW_SCHEMA} TO "${appRole}";
    GRANT INSERT ON ${RAW_TABLE} TO "${appRole}";
    GRANT USAGE ON SEQUENCE ${RAW_SCHEMA}.raw_events_position TO "${appRole}";`);
}

/**
 * Inserts `count` encoded events, taken from `events` from index `from` on (wrapping round at
 * its end, for a ring of rows reused over a long window), as rows of stream `ledgerId` with
 * versions `firstVersion`, `firstVersion + 1`, …. The table has no key, so a reused row is
 * simply a row again. The parameters, the JSON texts of `data` and `metadata` included,
 * are built here, in the caller's timed region, as the store builds them.
 */
export async function insertRawRows(
  pool: pg.Pool,
  ledgerId: string,
  events: readonly StoredEvent[],
  from: number,
  count: number,
  firstVersion: number,
): Promise<void> {
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
  const transferKeys = new Array<string | null>(count);
  const resolutionKeys = new Array<string | null>(count);
  const reversalKeys = new Array<string | null>(count);
  for (let i = 0; i < count; i += 1) {
    const event = events[(from + i) % events.length] as StoredEvent;
    versions[i] = firstVersion + i;
    eventIds[i] = event.eventId;
    types[i] = event.type;
    schemaVersions[i] = event.schemaVersion;
    data[i] = dataJsonOf(event);
    recordedAt[i] = event.recordedAt;
    effectiveAt[i] = event.effectiveAt;
    correlationIds[i] = event.correlationId;
    causationIds[i] = event.causationId;
    metadata[i] = JSON.stringify(event.metadata);
    previousHashes[i] = event.previousHash;
    hashes[i] = event.hash;
    const ids = indexIdsOf(event);
    transferKeys[i] = ids.transfer;
    resolutionKeys[i] = ids.resolution;
    reversalKeys[i] = ids.reversal;
  }
  const result = await pool.query(RAW_INSERT_SQL, [
    BENCH_TENANT_ID,
    ledgerId,
    ...[versions, eventIds, types, schemaVersions, data, recordedAt, effectiveAt, correlationIds, causationIds, metadata, previousHashes, hashes, transferKeys, resolutionKeys, reversalKeys].map(joined),
  ]);
  if (result.rowCount !== count) throw new Error(`inserted ${String(result.rowCount)} rows, expected ${count}`);
}
