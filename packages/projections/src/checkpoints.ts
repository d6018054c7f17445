import type { PoolClient } from 'pg';
import { CheckpointMovedError, type FailedEvent } from './errors.js';
import { SCHEMA } from './schema.js';

/** A projection's checkpoint as a runner holds it between batches. */
export interface Checkpoint {
  /** Position of the last event handled; `null` before the first. */
  readonly position: string | null;
  /** Rebuilds so far: a batch started under an older generation is fenced out. */
  readonly generation: number;
}

/** The checkpoint row, as status reports it. */
export interface CheckpointRow extends Checkpoint {
  readonly eventsApplied: number;
  readonly eventsSkipped: number;
  readonly lastRecordedAt: Date | null;
  readonly lastError: string | null;
  readonly lastErrorPosition: string | null;
  readonly lastErrorAt: Date | null;
  readonly updatedAt: Date;
}

interface RawCheckpointRow {
  readonly position: string | null;
  readonly generation: number;
  readonly events_applied: string;
  readonly events_skipped: string;
  readonly last_recorded_at: Date | null;
  readonly last_error: string | null;
  readonly last_error_position: string | null;
  readonly last_error_at: Date | null;
  readonly updated_at: Date;
}

const TABLE = `${SCHEMA}.projection_checkpoints`;
/** Each projection's last version handled per ledger (read-model migration 5): one row per ledger, written by the batches that handle it. */
const LEDGER_VERSIONS = `${SCHEMA}.projection_ledger_versions`;
const COLUMNS = `position, generation, events_applied, events_skipped, last_recorded_at, last_error, last_error_position, last_error_at, updated_at`;

/** What a handled batch moves the checkpoint by. */
export interface CheckpointAdvance {
  readonly position: string;
  readonly applied: number;
  readonly skipped: number;
  /** Highest version handled per ledger in the batch. */
  readonly ledgerVersions: ReadonlyMap<string, number>;
  readonly lastRecordedAt: string;
}

/** Creates the checkpoint row if it is missing and returns it. */
export async function ensureCheckpoint(client: PoolClient, tenantId: string, projection: string): Promise<CheckpointRow> {
  await client.query(`INSERT INTO ${TABLE} (tenant_id, projection) VALUES ($1, $2) ON CONFLICT (tenant_id, projection) DO NOTHING`, [tenantId, projection]);
  const row = await readCheckpoint(client, tenantId, projection);
  if (row === undefined) throw new Error(`checkpoint of ${projection} is not visible for tenant ${tenantId}`);
  return row;
}

/** The checkpoint rows of some projections of a tenant. */
export async function readCheckpoints(client: PoolClient, tenantId: string, projections: readonly string[]): Promise<Map<string, CheckpointRow>> {
  const { rows } = await client.query<RawCheckpointRow & { projection: string }>(
    `SELECT projection, ${COLUMNS} FROM ${TABLE} WHERE tenant_id = $1 AND projection = ANY($2::text[])`,
    [tenantId, [...projections]],
  );
  return new Map(rows.map((row) => [row.projection, toCheckpointRow(row)]));
}

async function readCheckpoint(client: PoolClient, tenantId: string, projection: string): Promise<CheckpointRow | undefined> {
  return (await readCheckpoints(client, tenantId, [projection])).get(projection);
}

const FENCE_SQL = `SELECT position, generation FROM ${TABLE} WHERE tenant_id = $1 AND projection = $2 FOR UPDATE`;
// Prepared once per connection: every batch runs them.
const FENCE_STATEMENT = { name: 'ledgerkit_projection_fence', text: FENCE_SQL };
// The same, and the transaction's commit does not wait for its WAL flush (set in the same round trip).
const FENCE_ASYNC_STATEMENT = {
  name: 'ledgerkit_projection_fence_async',
  text: `SELECT c.position, c.generation FROM (SELECT set_config('synchronous_commit', 'off', true)) s, LATERAL (${FENCE_SQL}) c`,
};

/**
 * Locks the checkpoint row for the rest of the transaction and throws
 * {@link CheckpointMovedError} unless it is still at `expected`: the fence that keeps a batch from
 * being applied twice even by two runners that both believe they hold the projection. With
 * `asynchronousCommit`, the transaction's commit also stops waiting for its WAL flush.
 */
export async function fenceCheckpoint(client: PoolClient, tenantId: string, projection: string, expected: Checkpoint, options: { readonly asynchronousCommit?: boolean } = {}): Promise<void> {
  const { rows } = await client.query<{ position: string | null; generation: number }>(
    options.asynchronousCommit === true ? FENCE_ASYNC_STATEMENT : FENCE_STATEMENT,
    [tenantId, projection],
  );
  const row = rows[0];
  if (row === undefined || row.position !== expected.position || row.generation !== expected.generation) {
    throw new CheckpointMovedError(projection, tenantId);
  }
}

// Renamed with its text (it writes the per-ledger progress to rows now): a connection that
// prepared the old text under the old name keeps it, and node-postgres refuses one name for two texts.
// One statement, so one round trip as before: the checkpoint row, then (joined to it, so only when
// it was there) an upsert of the rows of the ledgers the batch handled, each moved forward only.
const ADVANCE_STATEMENT = {
  name: 'ledgerkit_projection_advance_v3',
  text: `WITH advanced AS (
       UPDATE ${TABLE} SET position = $3, events_applied = events_applied + $4, events_skipped = events_skipped + $5, last_recorded_at = $6,
         last_error = NULL, last_error_position = NULL, last_error_at = NULL, updated_at = now()
       WHERE tenant_id = $1 AND projection = $2 RETURNING tenant_id, projection)
     INSERT INTO ${LEDGER_VERSIONS} AS v (tenant_id, projection, ledger_id, ledger_version)
     SELECT a.tenant_id, a.projection, l.ledger_id, l.ledger_version FROM advanced a, unnest($7::text[], $8::bigint[]) AS l (ledger_id, ledger_version)
     ON CONFLICT (tenant_id, projection, ledger_id) DO UPDATE SET ledger_version = greatest(v.ledger_version, excluded.ledger_version)`,
};

/**
 * Moves the (fenced) checkpoint past a batch, with the progress of the ledgers the batch handled
 * (the rows of the others are not touched), and clears the stored last error: the projection got
 * past it (see `ProjectionStatus.lastError`). A skip records its error after this, in the same
 * transaction.
 */
export async function advanceCheckpoint(client: PoolClient, tenantId: string, projection: string, advance: CheckpointAdvance): Promise<void> {
  await client.query(ADVANCE_STATEMENT, [
    tenantId,
    projection,
    advance.position,
    advance.applied,
    advance.skipped,
    advance.lastRecordedAt,
    [...advance.ledgerVersions.keys()],
    [...advance.ledgerVersions.values()],
  ]);
}

// Per projection: what each of the tenant's streams holds beyond the version the projection
// handled, summed. One probe of the progress rows per stream, all in the database.
const LAG_SQL = `SELECT p.projection, (SELECT coalesce(sum(greatest(s.version - coalesce(v.ledger_version, 0), 0)), 0)
      FROM ${SCHEMA}.ledger_streams s
      LEFT JOIN ${LEDGER_VERSIONS} v ON v.tenant_id = $1 AND v.projection = p.projection AND v.ledger_id = s.ledger_id COLLATE "C"
     WHERE s.tenant_id = $1)::text AS lag
   FROM unnest($2::text[]) AS p (projection)`;

/**
 * Committed events of the tenant that each projection has not handled yet, over all its ledgers:
 * the event store's stream heads against the projections' per-ledger progress, summed in the
 * database (one row per projection comes back, whatever the number of ledgers). `undefined` when
 * the event store's stream table is not in this database. The tenant is filtered here as well as
 * by row-level security.
 */
export async function readLagEvents(client: PoolClient, tenantId: string, projections: readonly string[]): Promise<Map<string, number> | undefined> {
  const exists = await client.query<{ found: boolean }>(`SELECT to_regclass('${SCHEMA}.ledger_streams') IS NOT NULL AS found`);
  if (exists.rows[0]?.found !== true) return undefined;
  const { rows } = await client.query<{ projection: string; lag: string }>(LAG_SQL, [tenantId, [...projections]]);
  return new Map(rows.map((row) => [row.projection, Number(row.lag)]));
}

/** Records a failed event in `projection_failures` (skip-with-record) and as the last error. */
export async function recordSkippedEvent(client: PoolClient, tenantId: string, projection: string, event: FailedEvent, message: string): Promise<void> {
  await client.query(
    `INSERT INTO ${SCHEMA}.projection_failures (tenant_id, projection, position, ledger_id, ledger_version, event_type, error)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, projection, position) DO NOTHING`,
    [tenantId, projection, event.position, event.ledgerId, event.ledgerVersion, event.eventType, message],
  );
  await recordError(client, tenantId, projection, event.position, message);
}

/** Stores the last error of a projection with the position it happened at. */
export async function recordError(client: PoolClient, tenantId: string, projection: string, position: string | null, message: string): Promise<void> {
  await client.query(`UPDATE ${TABLE} SET last_error = $3, last_error_position = $4, last_error_at = now(), updated_at = now() WHERE tenant_id = $1 AND projection = $2`, [
    tenantId,
    projection,
    message,
    position,
  ]);
}

/**
 * Resets the checkpoint for a rebuild: back before the first event, a new generation (which
 * fences out any batch still in flight), no error, and the per-ledger progress and failure
 * records of the old run gone. Returns the new checkpoint.
 */
export async function resetCheckpoint(client: PoolClient, tenantId: string, projection: string): Promise<Checkpoint> {
  await client.query(`INSERT INTO ${TABLE} (tenant_id, projection) VALUES ($1, $2) ON CONFLICT (tenant_id, projection) DO NOTHING`, [tenantId, projection]);
  const { rows } = await client.query<{ generation: number }>(
    `UPDATE ${TABLE} SET position = NULL, generation = generation + 1, events_applied = 0, events_skipped = 0,
       last_recorded_at = NULL, last_error = NULL, last_error_position = NULL, last_error_at = NULL, updated_at = now()
     WHERE tenant_id = $1 AND projection = $2 RETURNING generation`,
    [tenantId, projection],
  );
  await client.query(
    `WITH progress AS (DELETE FROM ${LEDGER_VERSIONS} WHERE tenant_id = $1 AND projection = $2)
     DELETE FROM ${SCHEMA}.projection_failures WHERE tenant_id = $1 AND projection = $2`,
    [tenantId, projection],
  );
  const generation = rows[0]?.generation;
  if (generation === undefined) throw new Error(`checkpoint of ${projection} is not visible for tenant ${tenantId}`);
  return { position: null, generation };
}

function toCheckpointRow(row: RawCheckpointRow): CheckpointRow {
  return {
    position: row.position,
    generation: row.generation,
    eventsApplied: Number(row.events_applied),
    eventsSkipped: Number(row.events_skipped),
    lastRecordedAt: row.last_recorded_at,
    lastError: row.last_error,
    lastErrorPosition: row.last_error_position,
    lastErrorAt: row.last_error_at,
    updatedAt: row.updated_at,
  };
}
