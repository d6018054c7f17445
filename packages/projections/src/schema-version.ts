import type { PoolClient } from 'pg';
import { ReadModelSchemaVersionError } from './errors.js';
import { READ_MODEL_SCHEMA_VERSION } from './migrate.js';
import { READ_MODEL_HISTORY_TABLE, SCHEMA, VERSION_MARKS_BEFORE_READABLE_HISTORY } from './schema.js';

/**
 * What any role can learn from the catalog: whether it may read the migration history (from
 * read-model migration 6 on the application role may, a superuser always), and which of the
 * marks of the migrations before 6 hold.
 */
const CATALOG_SQL = `SELECT
    (SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT') FROM pg_catalog.pg_class c
      WHERE c.relnamespace = ns AND c.relname = '${READ_MODEL_HISTORY_TABLE}' AND c.relkind = 'r') AS history_readable,
    ARRAY[${VERSION_MARKS_BEFORE_READABLE_HISTORY.join(',\n    ')}]::boolean[] AS marks
  FROM (SELECT (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = '${SCHEMA}') AS ns) s`;

const HISTORY_SQL = `SELECT coalesce(max(version), 0)::int AS version FROM ${SCHEMA}.${READ_MODEL_HISTORY_TABLE}`;

/**
 * The database's read-model schema version, as the role of `client` (the application role
 * included, which may not read the history before migration 6): the newest version recorded in
 * the history when the role may read it, else the number of migrations whose marks all hold
 * (0 when the read models were never migrated). Two short catalog and history reads, outside any
 * transaction or inside the caller's.
 */
export async function readReadModelSchemaVersion(client: PoolClient): Promise<number> {
  const { rows } = await client.query<{ history_readable: boolean | null; marks: boolean[] }>(CATALOG_SQL);
  const row = rows[0];
  if (row?.history_readable === true) {
    const history = await client.query<{ version: number }>(HISTORY_SQL);
    return history.rows[0]?.version ?? 0;
  }
  const marks = row?.marks ?? [];
  const missing = marks.indexOf(false);
  return missing === -1 ? marks.length : missing;
}

/**
 * Throws {@link ReadModelSchemaVersionError} unless the read models are at exactly
 * `READ_MODEL_SCHEMA_VERSION`: an older schema lacks what this release writes and reads, and a
 * newer one (a later release's migration ran) may give its tables a meaning this release does not
 * keep. Both are refused before anything is read or written.
 */
export async function checkReadModelSchemaVersion(client: PoolClient): Promise<void> {
  const found = await readReadModelSchemaVersion(client);
  if (found !== READ_MODEL_SCHEMA_VERSION) throw new ReadModelSchemaVersionError(found, READ_MODEL_SCHEMA_VERSION);
}
