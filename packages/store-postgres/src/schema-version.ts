import type { PoolClient } from 'pg';
import { READ_GLOBAL_SIGNATURE, SCHEMA } from './migrations.js';

/** The global read function's name (migration 6), without schema and arguments. */
const READ_GLOBAL_FUNCTION = READ_GLOBAL_SIGNATURE.slice(SCHEMA.length + 1, READ_GLOBAL_SIGNATURE.indexOf('('));

/** The table `migrate` records each applied migration in (see tenant-rls' `runMigrations`). */
export const STORE_HISTORY_TABLE = 'schema_migrations';

/**
 * The database's store schema is not at the version this release of `@ledgerkit/store-postgres`
 * was written for, so `PostgresEventStore.open` refuses it: on an older schema appends and reads
 * would fail on what is missing; on a newer one, migrated by a later release, this release's
 * appends may no longer mean what the tables hold. `found < needed`: run `migrate()` (as an
 * administrator) with this release. `found > needed`: a newer release migrated the database; run
 * that release (or a later one) instead: `migrate` of this release refuses such a database too.
 *
 * `found` is read from `ledgerkit.schema_migrations` when the connected role may read it (the
 * application role may from migration 7 on); else it is worked out from what migrations 1 to 6
 * left in the catalog, which tells those versions apart (a database migrated before the history
 * was readable) but nothing later.
 */
export class StoreSchemaVersionError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'store_schema_version';
  /** The store schema version of the database: 0 when it was never migrated. */
  readonly found: number;
  /** The version this release needs: `SCHEMA_VERSION`. */
  readonly needed: number;

  constructor(found: number, needed: number) {
    const what =
      found === 0
        ? `schema ${SCHEMA} is not migrated to this release's version (store schema version 0, or this role may not see it); this release of @ledgerkit/store-postgres needs version ${needed}: run migrate() first, as an administrator`
        : found < needed
          ? `schema ${SCHEMA} is not migrated to this release's version: it is at store schema version ${found}; this release of @ledgerkit/store-postgres needs version ${needed}: run its migrate(), as an administrator`
          : `schema ${SCHEMA} is at store schema version ${found}, newer than this release of @ledgerkit/store-postgres knows (it needs version ${needed}): a newer release migrated it; run that release or a later one`;
    super(what);
    this.name = 'StoreSchemaVersionError';
    this.found = found;
    this.needed = needed;
  }
}

/**
 * What each migration before 7 leaves in the catalog that no later one removes, by version (entry
 * `n - 1` for migration `n`), as boolean SQL over `ns` (the schema's oid, or NULL) and `ev` (the
 * `events` table's oid, or NULL). Read through `pg_catalog` only, which every role may read, so a
 * role without `USAGE` on the schema gets an answer rather than an error. Frozen: from migration
 * 7 on the application role reads the version from the history instead. A test holds each mark
 * to its migration.
 */
export const STORE_VERSION_MARKS: readonly string[] = [
  // 1: the tables.
  `ev IS NOT NULL`,
  // 2: the notification trigger's function (an operator may disable the trigger, not drop this).
  `EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = ns AND p.proname = 'notify_events_appended')`,
  // 3: the idempotency keys as columns of events.
  `EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = ev AND a.attname = 'transfer_key' AND NOT a.attisdropped)`,
  // 4: the chain fence in append_events.
  `EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = ns AND p.proname = 'append_events' AND strpos(p.prosrc, 'v_hash_below') > 0)`,
  // 5: stacked appends: append_events waits for the append below.
  `EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = ns AND p.proname = 'append_events' AND strpos(p.prosrc, 'pg_advisory_xact_lock_shared') > 0)`,
  // 6: the global read function.
  `EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = ns AND p.proname = '${READ_GLOBAL_FUNCTION}')`,
];

/** Whether the role may read the migration history, and which of {@link STORE_VERSION_MARKS} hold. */
export const STORE_VERSION_SQL = `SELECT
    (SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT') FROM pg_catalog.pg_class c
      WHERE c.relnamespace = ns AND c.relname = '${STORE_HISTORY_TABLE}' AND c.relkind = 'r') AS history_readable,
    ARRAY[${STORE_VERSION_MARKS.join(',\n    ')}]::boolean[] AS marks
  FROM (SELECT ns, (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = ns AND c.relname = 'events' AND c.relkind IN ('r', 'p')) AS ev
        FROM (SELECT (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = '${SCHEMA}') AS ns) s) s`;

const HISTORY_SQL = `SELECT coalesce(max(version), 0)::int AS version FROM ${SCHEMA}.${STORE_HISTORY_TABLE}`;

/** A row of {@link STORE_VERSION_SQL}. */
export interface StoreVersionRow {
  readonly history_readable: boolean | null;
  readonly marks: readonly boolean[] | null;
}

/**
 * The database's store schema version as the role of `client` sees it, from a row of
 * {@link STORE_VERSION_SQL}: the newest version recorded in `schema_migrations` when the role may
 * read it (one more short read), else the number of migrations whose marks all hold (0 when the
 * schema was never migrated).
 */
export async function storeSchemaVersionOf(client: PoolClient, row: StoreVersionRow | undefined): Promise<number> {
  if (row?.history_readable === true) {
    const history = await client.query<{ version: number }>(HISTORY_SQL);
    return history.rows[0]?.version ?? 0;
  }
  const marks = row?.marks ?? [];
  const missing = marks.indexOf(false);
  return missing === -1 ? marks.length : missing;
}
