import { GENESIS_HASH } from '@ledgerkit/ledger-core';
import { APPEND_ONLY_SQLSTATE, appendOnlyFunctionSql, appendOnlySql, quoteName, TENANT_ID_PATTERN, TENANT_PREDICATE_SQL_V1, tenantIsolationSqlV1, tenantPolicyUpdateSql, tenantScopedFunctionSql, type RoleNames, type SchemaMigration } from '@ledgerkit/tenant-rls';

/** The tenant id pattern (the `tenant_id` domain's), as a PostgreSQL regular expression: the same syntax. */
const TENANT_ID_SQL_PATTERN = TENANT_ID_PATTERN.source;

/** The schema every Ledgerkit table and function lives in. */
export const SCHEMA = 'ledgerkit';

/** SQLSTATE raised by `append_events` when the stream is not at the expected version. */
export const VERSION_CONFLICT_SQLSTATE = 'LK001';
/** SQLSTATE raised by `append_events` when an index key is already claimed. */
export const DUPLICATE_INDEX_KEY_SQLSTATE = 'LK002';
/**
 * SQLSTATE raised by `append_events` (since migration 10) when the batch's first event is
 * recorded before the stream's event it follows: recorded times never decrease along a stream.
 */
export const RECORDED_EARLIER_SQLSTATE = 'LK004';

/** One step of this package's schema history, applied once, in order, as the owner role. */
export type Migration = SchemaMigration;

/** Tenant tables of migration 1 (index_keys was folded into events by migration 3). */
const tenantTables = ['ledger_streams', 'events', 'index_keys', 'snapshots'] as const;

/**
 * The policy `tenant_isolation` on the events table as migration 3 recreates it, with the
 * predicate of the time (tenant-rls' `TENANT_PREDICATE_SQL_V1`, frozen: an applied migration must
 * do the same on every database). Migration 11 brings every policy up to date.
 */
const eventsPolicyBefore11 = `CREATE POLICY tenant_isolation ON ${SCHEMA}.events AS PERMISSIVE FOR ALL USING (${TENANT_PREDICATE_SQL_V1}) WITH CHECK (${TENANT_PREDICATE_SQL_V1});`;

/** The append function and its argument types, needed to grant, revoke and find it. */
const APPEND_FUNCTION = `${SCHEMA}.append_events`;
/** Signature of the version-1 append function (dropped by migration 3). */
const APPEND_SIGNATURE_V1 = `${APPEND_FUNCTION}(text, text, bigint, text[], text[], integer[], jsonb[], text[], text[], text[], text[], jsonb[], text[], text[], text[], bigint[])`;
/** Signature of the append function since migration 3. */
export const APPEND_SIGNATURE = `${APPEND_FUNCTION}(text, text, bigint, text[], text[], integer[], json[], text[], text[], text[], text[], json[], text[], text[], text[], text[], text[])`;

const initialSchema = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
CREATE DOMAIN ${SCHEMA}.tenant_id AS text CHECK (VALUE ~ '${TENANT_ID_SQL_PATTERN}');

-- One row per ledger stream: its version is the fence every append is checked against.
CREATE TABLE ${SCHEMA}.ledger_streams (
  tenant_id ${SCHEMA}.tenant_id NOT NULL,
  ledger_id text NOT NULL,
  version bigint NOT NULL CHECK (version >= 0),
  -- Transaction of the last append: appends of one stream must come in transaction-id order.
  last_txid xid8 NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, ledger_id)
);

CREATE TABLE ${SCHEMA}.events (
  tenant_id ${SCHEMA}.tenant_id NOT NULL,
  ledger_id text NOT NULL,
  ledger_version bigint NOT NULL CHECK (ledger_version > 0),
  event_id text NOT NULL,
  type text NOT NULL,
  schema_version integer NOT NULL,
  data jsonb NOT NULL,
  -- Kept as the exact strings the hash chain covers.
  recorded_at text NOT NULL,
  effective_at text NOT NULL,
  correlation_id text,
  causation_id text,
  metadata jsonb NOT NULL,
  previous_hash text NOT NULL,
  hash text NOT NULL,
  position bigint GENERATED ALWAYS AS IDENTITY,
  -- The writing transaction: global reads stop below the oldest one still open.
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  PRIMARY KEY (tenant_id, ledger_id, ledger_version)
);
CREATE INDEX events_global_order ON ${SCHEMA}.events (tenant_id, txid, position);

-- The idempotency index: a key (transfer:<id>, resolution:<id>, reversal:<id>) is claimed once per ledger.
CREATE TABLE ${SCHEMA}.index_keys (
  tenant_id ${SCHEMA}.tenant_id NOT NULL,
  ledger_id text NOT NULL,
  key text NOT NULL,
  ledger_version bigint NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id, key)
);

CREATE TABLE ${SCHEMA}.snapshots (
  tenant_id ${SCHEMA}.tenant_id NOT NULL,
  ledger_id text NOT NULL,
  ledger_version bigint NOT NULL CHECK (ledger_version >= 0),
  hash text NOT NULL,
  schema_version integer NOT NULL,
  state jsonb NOT NULL,
  saved_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, ledger_id)
);

${tenantTables.map((table) => tenantIsolationSqlV1({ schema: SCHEMA, table })).join('\n')}

${appendOnlyFunctionSql(SCHEMA)}
${appendOnlySql({ schema: SCHEMA, table: 'events' })}
${appendOnlySql({ schema: SCHEMA, table: 'index_keys' })}

-- The fenced batch append, one statement per batch. SECURITY DEFINER so the application role
-- needs no INSERT or UPDATE on the three tables: every event goes through the fence. The
-- owner is subject to the tenant policies (FORCE), so the tenant set by the caller still rules.
CREATE FUNCTION ${APPEND_FUNCTION}(
  p_tenant_id text, p_ledger_id text, p_expected_version bigint,
  p_event_ids text[], p_types text[], p_schema_versions integer[], p_data jsonb[],
  p_recorded_at text[], p_effective_at text[], p_correlation_ids text[], p_causation_ids text[],
  p_metadata jsonb[], p_previous_hashes text[], p_hashes text[],
  p_index_keys text[], p_index_key_versions bigint[]
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $append$
DECLARE
  v_count integer := coalesce(cardinality(p_event_ids), 0);
  v_key_count integer := coalesce(cardinality(p_index_keys), 0);
  v_new_version bigint := p_expected_version + v_count;
  v_rows integer;
  v_actual bigint;
  v_key text;
BEGIN
  IF p_tenant_id IS DISTINCT FROM current_setting('ledgerkit.tenant_id', true) THEN
    RAISE EXCEPTION 'append_events: tenant % is not the tenant set for this transaction', p_tenant_id USING ERRCODE = '42501';
  END IF;
  IF coalesce(cardinality(p_types), 0) <> v_count OR coalesce(cardinality(p_schema_versions), 0) <> v_count
     OR coalesce(cardinality(p_data), 0) <> v_count OR coalesce(cardinality(p_recorded_at), 0) <> v_count
     OR coalesce(cardinality(p_effective_at), 0) <> v_count OR coalesce(cardinality(p_correlation_ids), 0) <> v_count
     OR coalesce(cardinality(p_causation_ids), 0) <> v_count OR coalesce(cardinality(p_metadata), 0) <> v_count
     OR coalesce(cardinality(p_previous_hashes), 0) <> v_count OR coalesce(cardinality(p_hashes), 0) <> v_count
     OR coalesce(cardinality(p_index_key_versions), 0) <> v_key_count THEN
    RAISE EXCEPTION 'append_events: argument arrays differ in length' USING ERRCODE = '22023';
  END IF;

  -- The fence: take the stream row (or create it) only if it is at the expected version. A
  -- concurrent append of the same stream waits here and then finds the version moved.
  IF v_count = 0 THEN
    v_rows := 0;
  ELSIF p_expected_version = 0 THEN
    INSERT INTO ${SCHEMA}.ledger_streams AS s (tenant_id, ledger_id, version, last_txid)
    VALUES (p_tenant_id, p_ledger_id, v_new_version, pg_current_xact_id())
    ON CONFLICT (tenant_id, ledger_id) DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
  ELSE
    UPDATE ${SCHEMA}.ledger_streams
       SET version = v_new_version, last_txid = pg_current_xact_id(), updated_at = now()
     WHERE tenant_id = p_tenant_id AND ledger_id = p_ledger_id AND version = p_expected_version
       AND last_txid < pg_current_xact_id();
    GET DIAGNOSTICS v_rows = ROW_COUNT;
  END IF;
  IF v_rows = 0 THEN
    SELECT s.version INTO v_actual FROM ${SCHEMA}.ledger_streams s WHERE s.tenant_id = p_tenant_id AND s.ledger_id = p_ledger_id;
    v_actual := coalesce(v_actual, 0);
    IF v_count = 0 AND v_actual = p_expected_version THEN
      RETURN v_actual;
    END IF;
    RAISE EXCEPTION 'expected ledger version %, found %', p_expected_version, v_actual
      USING ERRCODE = '${VERSION_CONFLICT_SQLSTATE}', DETAIL = v_actual::text;
  END IF;

  INSERT INTO ${SCHEMA}.events (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data,
                                recorded_at, effective_at, correlation_id, causation_id, metadata, previous_hash, hash)
  SELECT p_tenant_id, p_ledger_id, p_expected_version + e.ord, e.event_id, e.type, e.schema_version, e.data,
         e.recorded_at, e.effective_at, e.correlation_id, e.causation_id, e.metadata, e.previous_hash, e.hash
    FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_recorded_at, p_effective_at,
                p_correlation_ids, p_causation_ids, p_metadata, p_previous_hashes, p_hashes)
         WITH ORDINALITY AS e(event_id, type, schema_version, data, recorded_at, effective_at,
                              correlation_id, causation_id, metadata, previous_hash, hash, ord)
   ORDER BY e.ord;

  IF v_key_count > 0 THEN
    INSERT INTO ${SCHEMA}.index_keys (tenant_id, ledger_id, key, ledger_version)
    SELECT p_tenant_id, p_ledger_id, k.key, k.version FROM unnest(p_index_keys, p_index_key_versions) AS k(key, version)
    ON CONFLICT (tenant_id, ledger_id, key) DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < v_key_count THEN
      -- Name the first key, in event order, that this batch did not get.
      SELECT k.key INTO v_key
        FROM unnest(p_index_keys, p_index_key_versions) WITH ORDINALITY AS k(key, version, ord)
       WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.index_keys i
                          WHERE i.tenant_id = p_tenant_id AND i.ledger_id = p_ledger_id AND i.key = k.key AND i.ledger_version = k.version)
       ORDER BY k.ord LIMIT 1;
      RAISE EXCEPTION 'index key % already exists in this ledger', coalesce(v_key, p_index_keys[1])
        USING ERRCODE = '${DUPLICATE_INDEX_KEY_SQLSTATE}', DETAIL = coalesce(v_key, p_index_keys[1]);
    END IF;
  END IF;
  RETURN v_new_version;
END
$append$;

REVOKE ALL ON FUNCTION ${APPEND_SIGNATURE_V1} FROM PUBLIC;
GRANT USAGE ON SCHEMA ${SCHEMA} TO ${app};
GRANT EXECUTE ON FUNCTION ${APPEND_SIGNATURE_V1} TO ${app};
GRANT SELECT ON ${SCHEMA}.ledger_streams, ${SCHEMA}.events, ${SCHEMA}.index_keys TO ${app};
GRANT SELECT, INSERT, UPDATE ON ${SCHEMA}.snapshots TO ${app};
`;
};

/** The channel every append notifies, with the appending transaction's tenant id as the payload. */
export const EVENTS_CHANNEL = 'ledgerkit_events';

// One notification per appending statement, delivered at commit (never for a rolled-back append)
// and folded with identical ones of the same transaction. The payload is the tenant set for the
// transaction, or '' when none is (a maintenance insert), which a listener treats as "any tenant".
// A statement trigger, not a change to append_events, so every insert path notifies. The price:
// PostgreSQL serializes the commits of notifying transactions; an operator who only polls can
// drop it with ALTER TABLE ledgerkit.events DISABLE TRIGGER notify_appended.
const appendNotification = (): string => `
CREATE FUNCTION ${SCHEMA}.notify_events_appended() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $notify$
BEGIN
  PERFORM pg_notify('${EVENTS_CHANNEL}', coalesce(current_setting('ledgerkit.tenant_id', true), ''));
  RETURN NULL;
END
$notify$;
CREATE TRIGGER notify_appended AFTER INSERT ON ${SCHEMA}.events FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.notify_events_appended();
`;

/**
 * The signature and declarations of `append_events` since migration 3 (after `CREATE [OR REPLACE]
 * FUNCTION `), with `extraDeclarations` (whole lines) after the common ones.
 */
const appendFunctionHead = (extraDeclarations: string): string => `${APPEND_FUNCTION}(
  p_tenant_id text, p_ledger_id text, p_expected_version bigint,
  p_event_ids text[], p_types text[], p_schema_versions integer[], p_data json[],
  p_recorded_at text[], p_effective_at text[], p_correlation_ids text[], p_causation_ids text[],
  p_metadata json[], p_previous_hashes text[], p_hashes text[],
  p_transfer_keys text[], p_resolution_keys text[], p_reversal_keys text[]
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $append$
DECLARE
  v_count integer := coalesce(cardinality(p_event_ids), 0);
  v_new_version bigint := p_expected_version + v_count;
  v_tenant text := current_setting('ledgerkit.tenant_id', true);
  v_rows integer;
  v_actual bigint;
  v_key text;
${extraDeclarations}`;

/** The start of `append_events`' body since migration 3: the tenant argument and setting, and the argument arrays' lengths. */
const appendArgumentChecks = `BEGIN
  IF p_tenant_id IS NULL OR p_tenant_id !~ '${TENANT_ID_SQL_PATTERN}' THEN
    RAISE EXCEPTION 'append_events: % is not a tenant id', p_tenant_id USING ERRCODE = '23514';
  END IF;
  IF v_tenant IS NULL OR v_tenant = '' THEN
    -- Called on its own (autocommit): the tenant holds for this statement's transaction only.
    PERFORM set_config('ledgerkit.tenant_id', p_tenant_id, true);
  ELSIF v_tenant IS DISTINCT FROM p_tenant_id THEN
    RAISE EXCEPTION 'append_events: tenant % is not the tenant set for this transaction', p_tenant_id USING ERRCODE = '42501';
  END IF;
  IF coalesce(cardinality(p_types), 0) <> v_count OR coalesce(cardinality(p_schema_versions), 0) <> v_count
     OR coalesce(cardinality(p_data), 0) <> v_count OR coalesce(cardinality(p_recorded_at), 0) <> v_count
     OR coalesce(cardinality(p_effective_at), 0) <> v_count OR coalesce(cardinality(p_correlation_ids), 0) <> v_count
     OR coalesce(cardinality(p_causation_ids), 0) <> v_count OR coalesce(cardinality(p_metadata), 0) <> v_count
     OR coalesce(cardinality(p_previous_hashes), 0) <> v_count OR coalesce(cardinality(p_hashes), 0) <> v_count
     OR coalesce(cardinality(p_transfer_keys), 0) <> v_count OR coalesce(cardinality(p_resolution_keys), 0) <> v_count
     OR coalesce(cardinality(p_reversal_keys), 0) <> v_count THEN
    RAISE EXCEPTION 'append_events: argument arrays differ in length' USING ERRCODE = '22023';
  END IF;
`;

/** `append_events`' insert of the batch's rows at the versions after the expected one (since migration 3). */
const appendInsertEvents = `    INSERT INTO ${SCHEMA}.events (tenant_id, ledger_id, ledger_version, event_id, type, schema_version, data,
                                  recorded_at, effective_at, correlation_id, causation_id, metadata, previous_hash, hash,
                                  transfer_key, resolution_key, reversal_key)
    SELECT p_tenant_id, p_ledger_id, p_expected_version + e.ord, e.event_id, e.type, e.schema_version, e.data,
           e.recorded_at, e.effective_at, e.correlation_id, e.causation_id, e.metadata, e.previous_hash, e.hash,
           e.transfer_key, e.resolution_key, e.reversal_key
      FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_recorded_at, p_effective_at,
                  p_correlation_ids, p_causation_ids, p_metadata, p_previous_hashes, p_hashes,
                  p_transfer_keys, p_resolution_keys, p_reversal_keys)
           WITH ORDINALITY AS e(event_id, type, schema_version, data, recorded_at, effective_at,
                                correlation_id, causation_id, metadata, previous_hash, hash,
                                transfer_key, resolution_key, reversal_key, ord)
     ORDER BY e.ord;
`;

/**
 * `append_events`' answer to a unique violation of an idempotency key (since migration 3): LK002
 * naming the first key already claimed, by an earlier event or twice in this batch, in event order.
 */
const appendDuplicateKeyReport = `    SELECT k.key INTO v_key
      FROM unnest(p_transfer_keys, p_resolution_keys, p_reversal_keys) WITH ORDINALITY AS u(t, r, v, ord)
     CROSS JOIN LATERAL (VALUES (1, 'transfer:' || u.t, u.t IS NOT NULL AND (
                                   EXISTS (SELECT 1 FROM ${SCHEMA}.events x WHERE x.tenant_id = p_tenant_id AND x.ledger_id = p_ledger_id AND x.transfer_key = u.t)
                                   OR (SELECT count(*) FROM unnest(p_transfer_keys) y WHERE y = u.t) > 1)),
                                (2, 'resolution:' || u.r, u.r IS NOT NULL AND (
                                   EXISTS (SELECT 1 FROM ${SCHEMA}.events x WHERE x.tenant_id = p_tenant_id AND x.ledger_id = p_ledger_id AND x.resolution_key = u.r)
                                   OR (SELECT count(*) FROM unnest(p_resolution_keys) y WHERE y = u.r) > 1)),
                                (3, 'reversal:' || u.v, u.v IS NOT NULL AND (
                                   EXISTS (SELECT 1 FROM ${SCHEMA}.events x WHERE x.tenant_id = p_tenant_id AND x.ledger_id = p_ledger_id AND x.reversal_key = u.v)
                                   OR (SELECT count(*) FROM unnest(p_reversal_keys) y WHERE y = u.v) > 1))) AS k(n, key, taken)
     WHERE k.taken
     ORDER BY u.ord, k.n LIMIT 1;
    RAISE EXCEPTION 'index key % already exists in this ledger', coalesce(v_key, 'unknown')
      USING ERRCODE = '${DUPLICATE_INDEX_KEY_SQLSTATE}', DETAIL = coalesce(v_key, 'unknown');
`;

// Migration 3, for the write path's cost per event (see docs/performance.md):
// - The idempotency keys move from the index_keys table into three columns of the event row
//   itself, each with a unique partial index: one heap row per event instead of two, and no
//   speculative ON CONFLICT insert. A duplicate key fails the insert (unique_violation), which
//   the function turns into LK002 naming the first duplicate in event order.
// - data and metadata become json: PostgreSQL keeps the text as sent (the writer sends canonical
//   JSON) instead of building a binary jsonb value it never queries; readers parse it either way.
// - The append runs as one autocommitted statement when no inline projection needs the
//   transaction: the function sets the tenant for its own transaction when the caller has not,
//   and still refuses a tenant different from one the caller set.
const foldIndexKeys = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
-- events.tenant_id becomes plain text: checking the domain's pattern on every row cost ~15 %
-- of an append. The only way in is append_events, which checks its tenant argument against the
-- same pattern once per call, and the tenant policy keeps every row equal to that argument.
DROP POLICY tenant_isolation ON ${SCHEMA}.events;
ALTER TABLE ${SCHEMA}.events ALTER COLUMN tenant_id TYPE text;
${eventsPolicyBefore11}

ALTER TABLE ${SCHEMA}.events
  ALTER COLUMN data TYPE json USING data::json,
  ALTER COLUMN metadata TYPE json USING metadata::json,
  ADD COLUMN transfer_key text,
  ADD COLUMN resolution_key text,
  ADD COLUMN reversal_key text;

-- Existing keys move into their events. The append-only trigger and the forced tenant policies
-- (which would show the owner no row: no tenant is set) are off for this one statement of the
-- migration's own transaction; nothing else can read or write meanwhile (ACCESS EXCLUSIVE locks).
ALTER TABLE ${SCHEMA}.events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ${SCHEMA}.index_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ${SCHEMA}.events DISABLE TRIGGER append_only_rows;
UPDATE ${SCHEMA}.events e
   SET transfer_key = k.transfer_key, resolution_key = k.resolution_key, reversal_key = k.reversal_key
  FROM (SELECT tenant_id, ledger_id, ledger_version,
               max(substr(key, 10)) FILTER (WHERE key LIKE 'transfer:%') AS transfer_key,
               max(substr(key, 12)) FILTER (WHERE key LIKE 'resolution:%') AS resolution_key,
               max(substr(key, 10)) FILTER (WHERE key LIKE 'reversal:%') AS reversal_key
          FROM ${SCHEMA}.index_keys GROUP BY tenant_id, ledger_id, ledger_version) k
 WHERE e.tenant_id = k.tenant_id AND e.ledger_id = k.ledger_id AND e.ledger_version = k.ledger_version;
ALTER TABLE ${SCHEMA}.events ENABLE TRIGGER append_only_rows;
ALTER TABLE ${SCHEMA}.events FORCE ROW LEVEL SECURITY;

CREATE UNIQUE INDEX events_transfer_key ON ${SCHEMA}.events (tenant_id, ledger_id, transfer_key) WHERE transfer_key IS NOT NULL;
CREATE UNIQUE INDEX events_resolution_key ON ${SCHEMA}.events (tenant_id, ledger_id, resolution_key) WHERE resolution_key IS NOT NULL;
CREATE UNIQUE INDEX events_reversal_key ON ${SCHEMA}.events (tenant_id, ledger_id, reversal_key) WHERE reversal_key IS NOT NULL;

DROP FUNCTION ${APPEND_SIGNATURE_V1};
DROP TABLE ${SCHEMA}.index_keys;

CREATE FUNCTION ${appendFunctionHead('')}${appendArgumentChecks}
  -- The fence: take the stream row (or create it) only if it is at the expected version. A
  -- concurrent append of the same stream waits here and then finds the version moved.
  IF v_count = 0 THEN
    v_rows := 0;
  ELSIF p_expected_version = 0 THEN
    INSERT INTO ${SCHEMA}.ledger_streams AS s (tenant_id, ledger_id, version, last_txid)
    VALUES (p_tenant_id, p_ledger_id, v_new_version, pg_current_xact_id())
    ON CONFLICT (tenant_id, ledger_id) DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
  ELSE
    UPDATE ${SCHEMA}.ledger_streams
       SET version = v_new_version, last_txid = pg_current_xact_id(), updated_at = now()
     WHERE tenant_id = p_tenant_id AND ledger_id = p_ledger_id AND version = p_expected_version
       AND last_txid < pg_current_xact_id();
    GET DIAGNOSTICS v_rows = ROW_COUNT;
  END IF;
  IF v_rows = 0 THEN
    SELECT s.version INTO v_actual FROM ${SCHEMA}.ledger_streams s WHERE s.tenant_id = p_tenant_id AND s.ledger_id = p_ledger_id;
    v_actual := coalesce(v_actual, 0);
    IF v_count = 0 AND v_actual = p_expected_version THEN
      RETURN v_actual;
    END IF;
    RAISE EXCEPTION 'expected ledger version %, found %', p_expected_version, v_actual
      USING ERRCODE = '${VERSION_CONFLICT_SQLSTATE}', DETAIL = v_actual::text;
  END IF;

  BEGIN
${appendInsertEvents}  EXCEPTION WHEN unique_violation THEN
    -- A key is already claimed (by an earlier event, or twice in this batch). Name the first
    -- one in event order; the insert above is already undone with its subtransaction.
${appendDuplicateKeyReport}  END;
  RETURN v_new_version;
END
$append$;

REVOKE ALL ON FUNCTION ${APPEND_SIGNATURE} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${APPEND_SIGNATURE} TO ${app};

-- Idempotency lookups, one probe of the key's unique index per key. One statement over all the
-- keys leaves the planner a choice, and on a table without fresh statistics it scans the
-- ledger's whole primary-key range instead (hundreds of ms at 250,000 events); a single-key
-- equality on every column of a unique index is never worse than one row. SECURITY INVOKER:
-- the caller's tenant policy applies.
CREATE FUNCTION ${SCHEMA}.find_index_keys(p_tenant_id text, p_ledger_id text, p_transfer_keys text[], p_resolution_keys text[], p_reversal_keys text[])
RETURNS TABLE (key text, event ${SCHEMA}.events)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $find$
DECLARE
  v_id text;
  v_event ${SCHEMA}.events;
BEGIN
  FOREACH v_id IN ARRAY coalesce(p_transfer_keys, '{}') LOOP
    SELECT * INTO v_event FROM ${SCHEMA}.events e
     WHERE e.tenant_id = p_tenant_id AND e.ledger_id = p_ledger_id AND e.transfer_key = v_id;
    IF FOUND THEN key := 'transfer:' || v_id; event := v_event; RETURN NEXT; END IF;
  END LOOP;
  FOREACH v_id IN ARRAY coalesce(p_resolution_keys, '{}') LOOP
    SELECT * INTO v_event FROM ${SCHEMA}.events e
     WHERE e.tenant_id = p_tenant_id AND e.ledger_id = p_ledger_id AND e.resolution_key = v_id;
    IF FOUND THEN key := 'resolution:' || v_id; event := v_event; RETURN NEXT; END IF;
  END LOOP;
  FOREACH v_id IN ARRAY coalesce(p_reversal_keys, '{}') LOOP
    SELECT * INTO v_event FROM ${SCHEMA}.events e
     WHERE e.tenant_id = p_tenant_id AND e.ledger_id = p_ledger_id AND e.reversal_key = v_id;
    IF FOUND THEN key := 'reversal:' || v_id; event := v_event; RETURN NEXT; END IF;
  END LOOP;
END
$find$;
REVOKE ALL ON FUNCTION ${SCHEMA}.find_index_keys(text, text, text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${SCHEMA}.find_index_keys(text, text, text[], text[], text[]) TO ${app};
`;
};

// Migration 4, so that a writer may append a batch before the one below it has committed:
// - The chain fence: an append's first event must name, as its previous hash, the hash of the
//   stream's event at the expected version (the genesis hash for a new stream). A batch decided
//   on top of another can then only ever extend that very batch: if the one below is refused, or
//   another writer reached the same version with different events, the batch is refused too.
// - The events go in before the fence is taken. A second append of the same stream inserts its
//   rows (another backend, the other core) while the first is still writing or flushing its
//   commit, and only then queues behind the first's stream-row lock; PostgreSQL then flushes
//   both commits close together. A stale append runs into the committed rows' primary key, which
//   is a version conflict like the fence's.
const chainFence = (): string => `
CREATE OR REPLACE FUNCTION ${appendFunctionHead(`  v_constraint text;
  v_hash_below text;
  v_last_txid xid8;
`)}${appendArgumentChecks}
  IF v_count = 0 THEN
    SELECT s.version INTO v_actual FROM ${SCHEMA}.ledger_streams s WHERE s.tenant_id = p_tenant_id AND s.ledger_id = p_ledger_id;
    v_actual := coalesce(v_actual, 0);
    IF v_actual = p_expected_version THEN
      RETURN v_actual;
    END IF;
    RAISE EXCEPTION 'expected ledger version %, found %', p_expected_version, v_actual
      USING ERRCODE = '${VERSION_CONFLICT_SQLSTATE}', DETAIL = v_actual::text;
  END IF;

  -- The transaction id first: it orders this append behind any append of the stream that took
  -- one earlier (the fence below checks it), so take it before the insert's work.
  PERFORM pg_current_xact_id();

  BEGIN
${appendInsertEvents}  EXCEPTION WHEN unique_violation THEN
    -- The insert is already undone with its subtransaction. The primary key means the versions
    -- are taken (committed by another append): a version conflict, whatever else is wrong.
    GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
    IF v_constraint = 'events_pkey' THEN
      SELECT s.version INTO v_actual FROM ${SCHEMA}.ledger_streams s WHERE s.tenant_id = p_tenant_id AND s.ledger_id = p_ledger_id;
      RAISE EXCEPTION 'expected ledger version %, found %', p_expected_version, coalesce(v_actual, 0)
        USING ERRCODE = '${VERSION_CONFLICT_SQLSTATE}', DETAIL = coalesce(v_actual, 0)::text;
    END IF;
    -- A key is already claimed (by an earlier event, or twice in this batch): name the first in event order.
${appendDuplicateKeyReport}  END;

  -- The version fence: lock the stream row (or create it), waiting for any append of the stream
  -- still in flight to end, and go on only if the version it left is the expected one and was
  -- set by an older transaction (so the global log's transaction order follows the versions).
  -- The lock comes first: a predicate on the version would skip, not wait for, a row whose
  -- version an open transaction is moving to the expected one.
  IF p_expected_version = 0 THEN
    INSERT INTO ${SCHEMA}.ledger_streams AS s (tenant_id, ledger_id, version, last_txid)
    VALUES (p_tenant_id, p_ledger_id, v_new_version, pg_current_xact_id())
    ON CONFLICT (tenant_id, ledger_id) DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows = 0 THEN
      SELECT s.version INTO v_actual FROM ${SCHEMA}.ledger_streams s WHERE s.tenant_id = p_tenant_id AND s.ledger_id = p_ledger_id;
      v_actual := coalesce(v_actual, 0);
    END IF;
  ELSE
    SELECT s.version, s.last_txid INTO v_actual, v_last_txid FROM ${SCHEMA}.ledger_streams s
     WHERE s.tenant_id = p_tenant_id AND s.ledger_id = p_ledger_id FOR UPDATE;
    v_actual := coalesce(v_actual, 0);
    IF v_actual = p_expected_version AND v_last_txid < pg_current_xact_id() THEN
      UPDATE ${SCHEMA}.ledger_streams SET version = v_new_version, last_txid = pg_current_xact_id(), updated_at = now()
       WHERE tenant_id = p_tenant_id AND ledger_id = p_ledger_id;
      v_rows := 1;
    ELSE
      v_rows := 0;
    END IF;
  END IF;
  IF v_rows = 0 THEN
    RAISE EXCEPTION 'expected ledger version %, found %', p_expected_version, v_actual
      USING ERRCODE = '${VERSION_CONFLICT_SQLSTATE}', DETAIL = v_actual::text;
  END IF;

  -- The chain fence: the batch must extend the very event it was decided after.
  IF p_expected_version = 0 THEN
    v_hash_below := '${GENESIS_HASH}';
  ELSE
    SELECT e.hash INTO v_hash_below FROM ${SCHEMA}.events e
     WHERE e.tenant_id = p_tenant_id AND e.ledger_id = p_ledger_id AND e.ledger_version = p_expected_version;
  END IF;
  IF v_hash_below IS DISTINCT FROM p_previous_hashes[1] THEN
    RAISE EXCEPTION 'the event at ledger version % is not the one this batch was decided after', p_expected_version
      USING ERRCODE = '${VERSION_CONFLICT_SQLSTATE}', DETAIL = p_expected_version::text;
  END IF;
  RETURN v_new_version;
END
$append$;
`;

/** The two 32-bit halves of the advisory lock an append holds for the version it ends at. */
const stackLockKey = (version: string): string => `hashtext(p_tenant_id || '/' || p_ledger_id), (${version} % 2147483647)::integer`;

/** Replaces `anchor` (which must occur exactly once) in `text`. */
function replaceOnce(text: string, anchor: string, replacement: string): string {
  const at = text.indexOf(anchor);
  if (at < 0 || text.indexOf(anchor, at + 1) >= 0) throw new Error(`migration: anchor not found exactly once: ${anchor.slice(0, 60)}`);
  return text.slice(0, at) + replacement + text.slice(at + anchor.length);
}

/**
 * Migration 5, stacked appends: the append of migration 4, plus a wait for the append below.
 * Each append holds a transaction-scoped advisory lock named after the version it ends at. One
 * that finds the stream short of its expected version (an append below it sent first but not
 * yet committed) waits on the lock of that version before it locks the stream row, so it is
 * refused only if the append below really did not commit, not because it arrived first.
 */
const stackedAppends = (): string => {
  let sql = chainFence();
  sql = replaceOnce(
    sql,
    '  PERFORM pg_current_xact_id();\n',
    `  PERFORM pg_current_xact_id();
  -- Announce the version this append ends at: an append stacked on it waits on this lock.
  PERFORM pg_advisory_xact_lock(${stackLockKey('v_new_version')});
`,
  );
  sql = replaceOnce(
    sql,
    '  ELSE\n    SELECT s.version, s.last_txid INTO v_actual, v_last_txid',
    `  ELSE
    -- Short of the expected version: an append below may be in flight. Wait for the one that ends
    -- at it (no row lock is held yet, so it can finish), then take the fence as usual.
    SELECT s.version INTO v_actual FROM ${SCHEMA}.ledger_streams s WHERE s.tenant_id = p_tenant_id AND s.ledger_id = p_ledger_id;
    IF coalesce(v_actual, 0) < p_expected_version THEN
      PERFORM pg_advisory_xact_lock_shared(${stackLockKey('p_expected_version')});
    END IF;
    SELECT s.version, s.last_txid INTO v_actual, v_last_txid`,
  );
  return sql;
};

/** Signature of the global-read function (migration 6). */
export const READ_GLOBAL_SIGNATURE = `${SCHEMA}.read_global_events(text, xid8, bigint, integer)`;

/**
 * Migration 6: a page of a tenant's global log in one statement, so a projection's read is one
 * round trip instead of four (begin, set the tenant, read, commit). The function sets the tenant
 * for the call and puts the caller's setting back; it reads as the caller (SECURITY INVOKER),
 * under the tenant policy. Its SET clause keeps bitmap scans off while its query is planned: on
 * a log without statistics the planner could otherwise read every event after the cursor and
 * sort them, for each page. The horizon and the rows come from the one snapshot of one query.
 */
const readGlobalEvents = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
${readGlobalEventsFunction(false)}
REVOKE ALL ON FUNCTION ${READ_GLOBAL_SIGNATURE} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${READ_GLOBAL_SIGNATURE} TO ${app};
`;
};

/**
 * `CREATE OR REPLACE` of `read_global_events`, as migration 6 made it (`refuseOtherTenant` false)
 * or as migration 11 does (true: a tenant argument other than the caller's tenant is refused).
 */
const readGlobalEventsFunction = (refuseOtherTenant: boolean): string =>
  tenantScopedFunctionSql({
    schema: SCHEMA,
    name: 'read_global_events',
    args: 'p_after_txid xid8, p_after_position bigint, p_limit integer',
    returns: `TABLE (event_id text, tenant_id text, ledger_id text, ledger_version bigint, type text, schema_version integer, data json,
  recorded_at text, effective_at text, correlation_id text, causation_id text, metadata json, previous_hash text, hash text,
  txid text, "position" text, held boolean)`,
    settings: { enable_bitmapscan: 'off' },
    // Rows come in (txid, position) order; the first one whose transaction is not below the
    // horizon, and every one after it, may still be joined by an older open transaction's rows.
    body: `RETURN QUERY SELECT e.event_id, e.tenant_id, e.ledger_id, e.ledger_version, e.type, e.schema_version, e.data, e.recorded_at,
      e.effective_at, e.correlation_id, e.causation_id, e.metadata, e.previous_hash, e.hash, e.txid::text, e.position::text,
      e.txid >= h.horizon
    FROM ${SCHEMA}.events e CROSS JOIN (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
    WHERE e.tenant_id = p_tenant_id AND (e.txid, e.position) > (p_after_txid, p_after_position)
    ORDER BY e.txid, e.position LIMIT p_limit;`,
    ...(refuseOtherTenant ? { refuseOtherTenant } : {}),
  });

/**
 * Migration 7: the application role may read the history of the store's migrations (versions,
 * names and times: nothing of any tenant), so that `PostgresEventStore.open`, connected as that
 * role, reads the database's version from it rather than working it out from the catalog (see
 * `schema-version.ts`): a version recorded by a newer release is then told from this one's.
 */
const readableHistory = (roles: RoleNames): string => `
GRANT SELECT ON ${SCHEMA}.schema_migrations TO ${quoteName(roles.app, 'application role')};
`;

/**
 * Migration 8: the report of a duplicate idempotency key counts each key's repeats in the batch
 * once (a window count over the batch) instead of a count over the whole batch for every event:
 * a batch of 16,000 whose last transfer reused an id took 10.4 s to be refused, holding the
 * stream, against 0.3 s for the append itself; one of 50,000 would have taken minutes. The
 * rest of the append is migration 5's, unchanged; the answer (LK002 naming the first key claimed
 * before or twice in the batch, in event order) is the same.
 */
const linearDuplicateKeyReport = (): string =>
  replaceOnce(
    stackedAppends(),
    appendDuplicateKeyReport,
    `    SELECT k.key INTO v_key
      FROM (SELECT u.t, u.r, u.v, u.ord,
                   count(*) OVER (PARTITION BY u.t) AS t_repeats,
                   count(*) OVER (PARTITION BY u.r) AS r_repeats,
                   count(*) OVER (PARTITION BY u.v) AS v_repeats
              FROM unnest(p_transfer_keys, p_resolution_keys, p_reversal_keys) WITH ORDINALITY AS u(t, r, v, ord)) u
     CROSS JOIN LATERAL (VALUES (1, 'transfer:' || u.t, u.t IS NOT NULL AND (u.t_repeats > 1 OR
                                   EXISTS (SELECT 1 FROM ${SCHEMA}.events x WHERE x.tenant_id = p_tenant_id AND x.ledger_id = p_ledger_id AND x.transfer_key = u.t))),
                                (2, 'resolution:' || u.r, u.r IS NOT NULL AND (u.r_repeats > 1 OR
                                   EXISTS (SELECT 1 FROM ${SCHEMA}.events x WHERE x.tenant_id = p_tenant_id AND x.ledger_id = p_ledger_id AND x.resolution_key = u.r))),
                                (3, 'reversal:' || u.v, u.v IS NOT NULL AND (u.v_repeats > 1 OR
                                   EXISTS (SELECT 1 FROM ${SCHEMA}.events x WHERE x.tenant_id = p_tenant_id AND x.ledger_id = p_ledger_id AND x.reversal_key = u.v)))) AS k(n, key, taken)
     WHERE k.taken
     ORDER BY u.ord, k.n LIMIT 1;
    RAISE EXCEPTION 'index key % already exists in this ledger', coalesce(v_key, 'unknown')
      USING ERRCODE = '${DUPLICATE_INDEX_KEY_SQLSTATE}', DETAIL = coalesce(v_key, 'unknown');
`,
  );

/**
 * Migration 9: a stream's recorded version never goes down. `ledgerkit-audit` compares the chain
 * with the head `ledger_streams` records, so events deleted from the end of a stream (through
 * the retention path, or around the append-only trigger) are found; lowering the recorded version
 * to match would hide them. A row trigger refuses any UPDATE that lowers `version`, for every
 * role, the owner and superusers included, with the append-only tables' SQLSTATE (`LK003`).
 * Deleting the stream's row would do the same (the audit would find no recorded head), so DELETE
 * and TRUNCATE of `ledger_streams` get the append-only tables' triggers: refused but for the
 * retention path (the owner with `ledgerkit.retention = on`, erasing a tenant's streams).
 * `append_events` only ever raises it (to the expected version plus the batch's events); the
 * retention path deletes events and leaves the stream rows alone. The trigger's `WHEN` keeps the
 * function out of every append. Like every trigger, it stops no one who may disable it (the
 * owner, a superuser): the defence against those is a head hash kept outside the database (see
 * `ledgerkit-audit --expect-head-hash`).
 */
const versionNeverLowered = (): string => `
CREATE FUNCTION ${SCHEMA}.reject_lowered_stream_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $lowered$
BEGIN
  RAISE EXCEPTION 'ledgerkit: the version of ledger % cannot go down (from % to %): a stream''s recorded head only moves forward', OLD.ledger_id, OLD.version, NEW.version
    USING ERRCODE = '${APPEND_ONLY_SQLSTATE}',
          HINT = 'the recorded head is what ledgerkit-audit checks the chain against: events deleted from the end of a stream must stay visible';
END
$lowered$;
CREATE TRIGGER version_never_lowered BEFORE UPDATE ON ${SCHEMA}.ledger_streams
  FOR EACH ROW WHEN (NEW.version < OLD.version) EXECUTE FUNCTION ${SCHEMA}.reject_lowered_stream_version();
CREATE TRIGGER append_only_delete BEFORE DELETE ON ${SCHEMA}.ledger_streams FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.reject_append_only_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON ${SCHEMA}.ledger_streams FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.reject_append_only_change();
`;

/**
 * Migration 10: an append whose first event is recorded before the stream's event at the expected
 * version is refused (`RECORDED_EARLIER_SQLSTATE`), as the port requires (the store checks the
 * events inside a batch before it calls the function). Readers of a ledger as of a recorded time,
 * and the audit with them, stop at the first event recorded after that time: an event recorded
 * earlier than the one before it would be silently left out of every such answer. The chain
 * fence already reads the event below; it now reads its recorded time with its hash, and compares
 * the two texts byte-wise (every stored recorded time is ISO-8601 UTC with milliseconds, so that
 * order is the instants'). The rest is migration 8's append, unchanged.
 */
const recordedTimesInOrder = (): string => {
  let sql = replaceOnce(linearDuplicateKeyReport(), '  v_hash_below text;\n', '  v_hash_below text;\n  v_recorded_below text;\n');
  sql = replaceOnce(
    sql,
    `    SELECT e.hash INTO v_hash_below FROM ${SCHEMA}.events e
     WHERE e.tenant_id = p_tenant_id AND e.ledger_id = p_ledger_id AND e.ledger_version = p_expected_version;`,
    `    SELECT e.hash, e.recorded_at INTO v_hash_below, v_recorded_below FROM ${SCHEMA}.events e
     WHERE e.tenant_id = p_tenant_id AND e.ledger_id = p_ledger_id AND e.ledger_version = p_expected_version;`,
  );
  return replaceOnce(
    sql,
    `  RETURN v_new_version;
END
$append$;`,
    `  IF p_recorded_at[1] COLLATE "C" < v_recorded_below COLLATE "C" THEN
    RAISE EXCEPTION 'the first event is recorded at %, before the event at ledger version % (%): recorded times never decrease along a stream', p_recorded_at[1], p_expected_version, v_recorded_below
      USING ERRCODE = '${RECORDED_EARLIER_SQLSTATE}';
  END IF;
  RETURN v_new_version;
END
$append$;`,
  );
};

/** The tenant tables since migration 3. */
const TENANT_TABLES_SINCE_3 = ['ledger_streams', 'events', 'snapshots'] as const;

/**
 * Migration 11, a query with no tenant set sees and changes nothing on a pooled connection too:
 * - Every tenant policy gets tenant-rls' `TENANT_PREDICATE_SQL`, which takes an empty setting for
 *   none (`ALTER POLICY`: catalog only, a short ACCESS EXCLUSIVE lock per table, no scan).
 *   Before, a connection whose transaction-local tenant had ended (its session value is then
 *   `''`) matched rows whose `tenant_id` is `''`.
 * - `append_events` puts the caller's tenant setting back before it returns, as
 *   `read_global_events` does: called in a transaction with no tenant, it set its tenant argument
 *   for the rest of that transaction, and an empty append then let the caller read that tenant's
 *   events. The rest is migration 10's append, unchanged (`CREATE OR REPLACE`, grants kept).
 * - `read_global_events` refuses (SQLSTATE 42501, as `append_events` does) a tenant argument
 *   other than the tenant the caller's transaction has set, instead of reading as it.
 * Both functions are replaced in place (`CREATE OR REPLACE`: same signatures, grants kept).
 */
const emptyTenantSetting = (): string => {
  const restore = `PERFORM set_config('ledgerkit.tenant_id', coalesce(v_tenant, ''), true);`;
  let append = replaceOnce(
    recordedTimesInOrder(),
    `    IF v_actual = p_expected_version THEN
      RETURN v_actual;`,
    `    IF v_actual = p_expected_version THEN
      -- The caller's setting back: a tenant set above holds for this call only.
      ${restore}
      RETURN v_actual;`,
  );
  append = replaceOnce(
    append,
    `  RETURN v_new_version;
END
$append$;`,
    `  ${restore}
  RETURN v_new_version;
END
$append$;`,
  );
  return `
${TENANT_TABLES_SINCE_3.map((table) => tenantPolicyUpdateSql({ schema: SCHEMA, table })).join('\n')}
${append}
${readGlobalEventsFunction(true)}
`;
};

/** Every migration the package ships, in order. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema: streams, events, index keys, snapshots, RLS, append-only', sql: initialSchema },
  { version: 2, name: 'notify ledgerkit_events with the tenant id after every append', sql: appendNotification },
  { version: 3, name: 'idempotency keys as columns of events, json payloads, one-statement appends', sql: foldIndexKeys },
  { version: 4, name: 'chain fence on the previous hash; events inserted before the stream fence', sql: chainFence },
  { version: 5, name: 'stacked appends: an append short of its expected version waits for the append below it', sql: stackedAppends },
  { version: 6, name: 'global reads in one statement (read_global_events)', sql: readGlobalEvents },
  { version: 7, name: 'the application role reads the migration history', sql: readableHistory },
  { version: 8, name: 'a duplicate idempotency key is reported in time linear in the batch', sql: linearDuplicateKeyReport },
  { version: 9, name: 'a stream\'s recorded version never goes down, and its row is deleted only by retention', sql: versionNeverLowered },
  { version: 10, name: 'an append is not recorded before the event it follows', sql: recordedTimesInOrder },
  { version: 11, name: 'an empty tenant setting is no tenant; append_events puts the caller\'s tenant back; read_global_events refuses another tenant', sql: emptyTenantSetting },
];
