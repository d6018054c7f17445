import { quoteName, tenantIsolationSqlV1, tenantPolicyUpdateSql, tenantScopedFunctionSql, type RoleNames, type SchemaMigration } from '@ledgerkit/tenant-rls';

/** The schema the read models live in: the events' schema, under the same roles and policies. */
export const SCHEMA = 'ledgerkit';

/** One step of this package's schema history, applied once, in order, as the owner role. */
export type ReadModelMigration = SchemaMigration;

/**
 * The tables migration 1 creates, as it created them: frozen, since an applied migration must
 * do the same on every database (a table added later gets its policy and grants in its own step).
 */
const INITIAL_TABLES = [
  'projection_checkpoints',
  'projection_failures',
  'rm_balances',
  'rm_balance_ledgers',
  'rm_balance_holds',
  'rm_accounts',
  'rm_account_states',
  'rm_account_entries',
  'rm_ledger_times',
  'rm_transfers',
] as const;

/** Every table of this package; each has `tenant_id` leading its key and a forced tenant policy. */
export const READ_MODEL_TABLES = [...INITIAL_TABLES, 'projection_ledger_versions'] as const;

/**
 * Row-level security as migrations 1 and 5 set it up: tenant-rls' `tenantIsolationSqlV1`, frozen
 * (an applied migration must do the same on every database). Migration 7 brings every policy up
 * to date.
 */
const tenantIsolationBefore7 = (table: string): string => tenantIsolationSqlV1({ schema: SCHEMA, table });

// Amounts are numeric minor units: exact, and wide enough for BALANCE_MINOR_MAX (10^38 - 1).
// Times are timestamptz, exact for the events' millisecond ISO strings. Ids compare byte-wise
// (COLLATE "C"), as the ledger compares them. Rows updated on every batch (checkpoints, balances,
// per-ledger progress) leave room in their pages, so an update stays on its page (HOT) and
// touches no index.
const initialSchema = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
-- A projection's progress per tenant. Written in the same transaction as the read-model rows it
-- covers, and compared before every batch: a batch whose checkpoint moved underneath it (a rebuild,
-- or a runner that lost its lock) rolls back.
CREATE TABLE ${SCHEMA}.projection_checkpoints (
  tenant_id text NOT NULL,
  projection text NOT NULL,
  -- Position of the last event handled (applied or skipped); NULL before the first.
  position text,
  -- Bumped by every rebuild.
  generation integer NOT NULL DEFAULT 0,
  events_applied bigint NOT NULL DEFAULT 0,
  events_skipped bigint NOT NULL DEFAULT 0,
  -- Last ledger version handled, per ledger: the lag is what the streams hold beyond it.
  ledger_versions jsonb NOT NULL DEFAULT '{}',
  last_recorded_at timestamptz,
  last_error text,
  last_error_position text,
  last_error_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, projection)
) WITH (fillfactor = 50);

-- Events a projection skipped under the 'skip-with-record' error policy.
CREATE TABLE ${SCHEMA}.projection_failures (
  tenant_id text NOT NULL,
  projection text NOT NULL,
  position text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  ledger_version bigint NOT NULL,
  event_type text NOT NULL,
  error text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, projection, position)
);

-- Balances projection: one row per account, the current balances (a balance read is one lookup).
CREATE TABLE ${SCHEMA}.rm_balances (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  account_id text COLLATE "C" NOT NULL,
  currency text NOT NULL,
  account_type text NOT NULL,
  debits_must_not_exceed_credits boolean NOT NULL,
  credits_must_not_exceed_debits boolean NOT NULL,
  metadata jsonb NOT NULL,
  opened_version bigint NOT NULL,
  opened_at timestamptz NOT NULL,
  status text NOT NULL,
  debits_posted numeric NOT NULL,
  credits_posted numeric NOT NULL,
  debits_pending numeric NOT NULL,
  credits_pending numeric NOT NULL,
  -- Ledger version of the last event that changed this row.
  ledger_version bigint NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id, account_id)
) WITH (fillfactor = 50);
-- How far each ledger is applied to rm_balances. Both the inline hook and the runner move it with
-- a compare-and-set, so whichever applies a ledger version first wins and the other skips it.
CREATE TABLE ${SCHEMA}.rm_balance_ledgers (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  ledger_version bigint NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id)
) WITH (fillfactor = 50);
-- Open holds, so that a resolution releases exactly what was held.
CREATE TABLE ${SCHEMA}.rm_balance_holds (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  transfer_id text COLLATE "C" NOT NULL,
  postings jsonb NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id, transfer_id)
);

-- History projection: each account's fixed attributes and current status. Its running totals
-- are those of its last entry.
CREATE TABLE ${SCHEMA}.rm_accounts (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  account_id text COLLATE "C" NOT NULL,
  currency text NOT NULL,
  account_type text NOT NULL,
  debits_must_not_exceed_credits boolean NOT NULL,
  credits_must_not_exceed_debits boolean NOT NULL,
  metadata jsonb NOT NULL,
  opened_version bigint NOT NULL,
  opened_recorded_at timestamptz NOT NULL,
  opened_effective_at timestamptz NOT NULL,
  status text NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id, account_id)
);
-- Every status an account has had (opened, frozen, unfrozen, closed): status as of any point.
CREATE TABLE ${SCHEMA}.rm_account_states (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  account_id text COLLATE "C" NOT NULL,
  ledger_version bigint NOT NULL,
  recorded_at timestamptz NOT NULL,
  effective_at timestamptz NOT NULL,
  status text NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id, account_id, ledger_version)
);
-- One row per change of an account's balances, as replayAccountEntries lists them, with the four
-- running totals after it in ledger order and, in eff_*, in effective-time order (NULL: equal to
-- the ledger-order totals, which holds for every entry no back-dated entry has passed). A balance
-- as of a version (or recorded time, via rm_ledger_times) or of an effective time is the last
-- entry at or before it: one probe of the primary key or of the effective-time index.
CREATE TABLE ${SCHEMA}.rm_account_entries (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  account_id text COLLATE "C" NOT NULL,
  ledger_version bigint NOT NULL,
  -- Order of the entry within its event for this account (a release, then a posting).
  seq smallint NOT NULL,
  event_type text NOT NULL,
  transfer_id text COLLATE "C" NOT NULL,
  side text NOT NULL,
  bucket text NOT NULL,
  amount numeric NOT NULL,
  recorded_at timestamptz NOT NULL,
  effective_at timestamptz NOT NULL,
  debits_posted numeric NOT NULL,
  credits_posted numeric NOT NULL,
  debits_pending numeric NOT NULL,
  credits_pending numeric NOT NULL,
  eff_debits_posted numeric,
  eff_credits_posted numeric,
  eff_debits_pending numeric,
  eff_credits_pending numeric,
  PRIMARY KEY (tenant_id, ledger_id, account_id, ledger_version, seq)
);
CREATE INDEX rm_account_entries_by_effective ON ${SCHEMA}.rm_account_entries (tenant_id, ledger_id, account_id, effective_at, ledger_version, seq);
-- A ledger's last version at each recorded time it has (a writer's batch shares one): "as of a
-- recorded time" becomes "as of a ledger version" with one probe, since recorded times never
-- decrease along a stream. Far smaller than a recorded-time index on the entries.
CREATE TABLE ${SCHEMA}.rm_ledger_times (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  recorded_at timestamptz NOT NULL,
  ledger_version bigint NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id, recorded_at)
);
-- Transfers by id and by reference, holds with their expiry and resolution.
CREATE TABLE ${SCHEMA}.rm_transfers (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  transfer_id text COLLATE "C" NOT NULL,
  kind text NOT NULL,
  -- [{ accountId, side, amountMinor, currency }], amounts in minor units as strings.
  postings jsonb NOT NULL,
  reference text COLLATE "C",
  pending_id text,
  reversal_of text,
  reversed_by text,
  metadata jsonb NOT NULL,
  ledger_version bigint NOT NULL,
  recorded_at timestamptz NOT NULL,
  effective_at timestamptz NOT NULL,
  -- Holds only.
  hold_status text,
  timeout_at timestamptz,
  resolved_by text,
  resolved_version bigint,
  PRIMARY KEY (tenant_id, ledger_id, transfer_id)
) WITH (fillfactor = 90);
CREATE INDEX rm_transfers_by_reference ON ${SCHEMA}.rm_transfers (tenant_id, ledger_id, reference, ledger_version) WHERE reference IS NOT NULL;
CREATE INDEX rm_transfers_open_holds ON ${SCHEMA}.rm_transfers (tenant_id, ledger_id, (coalesce(timeout_at, 'infinity')), transfer_id) WHERE hold_status = 'pending';

${INITIAL_TABLES.map(tenantIsolationBefore7).join('\n')}

-- The balance read in one round trip: sets the tenant, reads under the tenant policy as the
-- caller (RETURN QUERY runs the query there and then), and puts the caller's setting back, so the
-- tenant is set for this call only, even inside a longer transaction.
CREATE FUNCTION ${SCHEMA}.read_balance(p_tenant_id text, p_ledger_id text, p_account_id text)
RETURNS SETOF ${SCHEMA}.rm_balances
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $read$
DECLARE
  v_previous text := coalesce(current_setting('ledgerkit.tenant_id', true), '');
BEGIN
  PERFORM set_config('ledgerkit.tenant_id', p_tenant_id, true);
  RETURN QUERY SELECT * FROM ${SCHEMA}.rm_balances b
    WHERE b.tenant_id = p_tenant_id AND b.ledger_id = p_ledger_id AND b.account_id = p_account_id;
  PERFORM set_config('ledgerkit.tenant_id', v_previous, true);
END
$read$;

GRANT USAGE ON SCHEMA ${SCHEMA} TO ${app};
GRANT SELECT, INSERT, UPDATE, DELETE ON ${INITIAL_TABLES.map((table) => `${SCHEMA}.${table}`).join(', ')} TO ${app};
REVOKE ALL ON FUNCTION ${SCHEMA}.read_balance(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${SCHEMA}.read_balance(text, text, text) TO ${app};
`;
};

// Postings and metadata written once per transfer and per hold are kept as the text sent (json),
// not converted to jsonb: nothing queries inside them, and the conversion was about a third of the
// cost of inserting a transfer row. Rewrites the two tables (an ACCESS EXCLUSIVE lock while it runs).
const jsonPayloads = (): string => `
ALTER TABLE ${SCHEMA}.rm_transfers ALTER COLUMN postings TYPE json USING postings::json, ALTER COLUMN metadata TYPE json USING metadata::json;
ALTER TABLE ${SCHEMA}.rm_balance_holds ALTER COLUMN postings TYPE json USING postings::json;
`;

/**
 * The query of `read_balances`, over the given tenant, ledger ids and account ids (function
 * arguments, or `$1`… for the test that checks its generic plan is driven from the keys).
 * @internal
 */
export const readBalancesQuery = (tenant: string, ledgers: string, accounts: string): string =>
  `SELECT b.* FROM unnest(${ledgers}, ${accounts}) AS k(ledger_id, account_id)
    CROSS JOIN LATERAL (SELECT * FROM ${SCHEMA}.rm_balances x
      WHERE x.tenant_id = ${tenant} AND x.ledger_id = k.ledger_id AND x.account_id = k.account_id OFFSET 0) b`;

/**
 * Balance reads that arrive together, in one round trip: the tenant set for the call only (as
 * `read_balance`), one primary-key probe per key (the lateral subquery is fenced with OFFSET 0 so
 * that no join is planned over the tenant's rows), keys that match no account left out.
 */
const readBalances = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
${readBalancesFunction(false)}
REVOKE ALL ON FUNCTION ${SCHEMA}.read_balances(text, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${SCHEMA}.read_balances(text, text[], text[]) TO ${app};
`;
};

/**
 * `CREATE OR REPLACE` of `read_balances`, as migration 3 made it (`refuseOtherTenant` false) or as
 * migration 7 does (true: a tenant argument other than the caller's tenant is refused).
 */
function readBalancesFunction(refuseOtherTenant: boolean): string {
  return tenantScopedFunctionSql({
    schema: SCHEMA,
    name: 'read_balances',
    args: 'p_ledger_ids text[], p_account_ids text[]',
    returns: `SETOF ${SCHEMA}.rm_balances`,
    body: `RETURN QUERY ${readBalancesQuery('p_tenant_id', 'p_ledger_ids', 'p_account_ids')};`,
    ...(refuseOtherTenant ? { refuseOtherTenant } : {}),
  });
}

/** SQLSTATE an inline plan's guard raises when the read model is not as the plan assumed (see `inlineBalances`). */
export const INLINE_PLAN_DECLINED_SQLSTATE = 'LK101';

/** Name (in {@link SCHEMA}) of the guard function of inline plans. @internal */
export const INLINE_PLAN_CHECK_FUNCTION = 'inline_plan_check';

/**
 * The guard of inline plans (statements sent with an append in one round trip, which cannot
 * look at each other's results): raises {@link INLINE_PLAN_DECLINED_SQLSTATE} unless its
 * condition holds, which fails the batch (the append with it) and sends the store down the
 * general path.
 */
const inlinePlanCheck = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
CREATE OR REPLACE FUNCTION ${SCHEMA}.${INLINE_PLAN_CHECK_FUNCTION}(p_condition boolean, p_what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $check$
BEGIN
  IF p_condition IS NOT TRUE THEN
    RAISE EXCEPTION 'inline plan declined: %', p_what USING ERRCODE = '${INLINE_PLAN_DECLINED_SQLSTATE}';
  END IF;
  RETURN true;
END
$check$;
REVOKE ALL ON FUNCTION ${SCHEMA}.${INLINE_PLAN_CHECK_FUNCTION}(boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${SCHEMA}.${INLINE_PLAN_CHECK_FUNCTION}(boolean, text) TO ${app};
`;
};

/**
 * Each projection's progress per ledger in rows of its own, instead of the JSON map in its
 * checkpoint row that every batch rewrote whole (bytes in the number of the tenant's ledgers, per
 * batch): a batch now upserts the rows of the ledgers it handled, and `status()` works the lag out
 * here. The map's entries are copied into rows; the checkpoints' forced row-level security binds
 * their owner, the role this runs as, too, so it is lifted for the copy, inside this transaction
 * (no other session sees the table meanwhile: ALTER TABLE holds it exclusively until the commit).
 *
 * The column is dropped rather than left unused: a runner of the release before, still running,
 * would keep writing the map and none of the rows, and the lag reported would quietly go wrong;
 * without the column its batches fail (SQLSTATE 42703, a setup error: the projection stops as
 * `failed`, nothing applied) until it runs this release. Dropping a column rewrites nothing.
 */
const ledgerProgressRows = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
CREATE TABLE ${SCHEMA}.projection_ledger_versions (
  tenant_id text NOT NULL,
  projection text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  -- Last version of the ledger the projection handled (applied or skipped); never moves back
  -- but with a rebuild, which deletes the projection's rows.
  ledger_version bigint NOT NULL,
  PRIMARY KEY (tenant_id, projection, ledger_id)
) WITH (fillfactor = 50);
ALTER TABLE ${SCHEMA}.projection_checkpoints NO FORCE ROW LEVEL SECURITY;
INSERT INTO ${SCHEMA}.projection_ledger_versions (tenant_id, projection, ledger_id, ledger_version)
  SELECT c.tenant_id, c.projection, v.key, v.value::bigint FROM ${SCHEMA}.projection_checkpoints c, jsonb_each_text(c.ledger_versions) v;
ALTER TABLE ${SCHEMA}.projection_checkpoints FORCE ROW LEVEL SECURITY;
ALTER TABLE ${SCHEMA}.projection_checkpoints DROP COLUMN ledger_versions;
${tenantIsolationBefore7('projection_ledger_versions')}
GRANT SELECT, INSERT, UPDATE, DELETE ON ${SCHEMA}.projection_ledger_versions TO ${app};
`;
};

/** The table, in {@link SCHEMA}, that records the read-model migrations applied. */
export const READ_MODEL_HISTORY_TABLE = 'projection_migrations';

/**
 * The application role may read the history of the read-model migrations (versions, names and
 * times: nothing of any tenant), so that the runner and `ReadModels` can check, as that role,
 * that the read models are at the version their release needs (see `schema-version.ts`). Every
 * later migration is recorded in the same table, so a release reads the version of a database a
 * newer release migrated too.
 */
const readableHistory = (roles: RoleNames): string => `
GRANT SELECT ON ${SCHEMA}.${READ_MODEL_HISTORY_TABLE} TO ${quoteName(roles.app, 'application role')};
`;

/**
 * What each migration before 6 left in the catalog, which every role may read: how the version
 * of a database migrated before the history was readable is told, as a role that cannot read the
 * history. Mark `n - 1` holds after migration `n`: a boolean SQL expression over the catalog,
 * with `ns` the OID of {@link SCHEMA} (NULL when the schema does not exist, which fails every mark).
 * Frozen: later versions are read from the history.
 * @internal
 */
export const VERSION_MARKS_BEFORE_READABLE_HISTORY: readonly string[] = [
  // 1: the checkpoints.
  relationMark('projection_checkpoints'),
  // 2: transfer payloads as json.
  `EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = ns AND c.relname = 'rm_transfers' AND a.attname = 'postings' AND NOT a.attisdropped
       AND a.atttypid = 'pg_catalog.json'::pg_catalog.regtype)`,
  // 3 and 4: their functions.
  functionMark('read_balances'),
  functionMark(INLINE_PLAN_CHECK_FUNCTION),
  // 5: per-ledger progress in rows.
  relationMark('projection_ledger_versions'),
];

function relationMark(table: string): string {
  return `EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = ns AND c.relname = '${table}' AND c.relkind = 'r')`;
}

function functionMark(name: string): string {
  return `EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = ns AND p.proname = '${name}')`;
}

/**
 * A query with no tenant set sees and changes nothing on a pooled connection too:
 * - Every read-model table's tenant policy gets tenant-rls' `TENANT_PREDICATE_SQL`, which takes an
 *   empty setting for none (`ALTER POLICY`: catalog only, a short ACCESS EXCLUSIVE lock per table,
 *   no scan). Before, a connection whose transaction-local tenant had ended (its session value is
 *   then `''`) saw, and could insert, rows whose `tenant_id` is `''`. No CHECK on `tenant_id` is
 *   added: under the new predicate no role subject to the policies can read or write such a row
 *   (the owner included: FORCE), and a CHECK would cost every hot write and, validated, fail on a
 *   database that already holds such rows.
 * - `read_balance` and `read_balances` refuse (SQLSTATE 42501, as the store's `append_events`
 *   does) a tenant argument other than the tenant the caller's transaction has set, instead of
 *   reading as it. Replaced in place (`CREATE OR REPLACE`: same signatures and results, grants kept).
 */
const emptyTenantSetting = (): string => `
${READ_MODEL_TABLES.map((table) => tenantPolicyUpdateSql({ schema: SCHEMA, table })).join('\n')}
${tenantScopedFunctionSql({
  schema: SCHEMA,
  name: 'read_balance',
  args: 'p_ledger_id text, p_account_id text',
  returns: `SETOF ${SCHEMA}.rm_balances`,
  body: `RETURN QUERY SELECT * FROM ${SCHEMA}.rm_balances b
    WHERE b.tenant_id = p_tenant_id AND b.ledger_id = p_ledger_id AND b.account_id = p_account_id;`,
  refuseOtherTenant: true,
})}
${readBalancesFunction(true)}
`;

/**
 * Conditions every row of rm_accounts meets (versions start at 1, times are finite) that only the
 * "as of a point" reads state: the indexes of migration 8 are partial on them, so that no other
 * statement can use those indexes. Without statistics (a database whose tables were never
 * analysed) the planner rates every index led by (tenant_id, ledger_id) alike for a lookup by
 * account id, and was seen to take an opening index for the history projection's keyed account
 * lookups, a scan of the ledger's accounts per key, instead of the primary key. Frozen, as
 * migration 8 created the indexes with them.
 * @internal
 */
export const ACCOUNT_OPENING_INDEX_PREDICATES = { version: 'opened_version > 0', effective: `opened_effective_at > '-infinity'::timestamptz` } as const;

/**
 * "As of a point" reads (`trialBalance(asOf)`, `balancesAt`) take only the accounts opened by the
 * point: those whose opening version (for a ledger version, or a recorded time mapped to one) or
 * opening effective time is at or before it. Each index makes that a range scan of the ledger's
 * accounts in opening order, so the accounts opened later cost nothing and a bounded read stops
 * after its limit; before, every account of the ledger was probed first. Partial on
 * {@link ACCOUNT_OPENING_INDEX_PREDICATES}. A plain CREATE INDEX, inside the migration's
 * transaction: it holds a SHARE lock on rm_accounts while it builds (reads go on, the history
 * projection's batches wait), one pass over the table for each.
 */
const accountsByOpening = (): string => `
CREATE INDEX rm_accounts_by_opened_version ON ${SCHEMA}.rm_accounts (tenant_id, ledger_id, opened_version)
  WHERE ${ACCOUNT_OPENING_INDEX_PREDICATES.version};
CREATE INDEX rm_accounts_by_opened_effective ON ${SCHEMA}.rm_accounts (tenant_id, ledger_id, opened_effective_at)
  WHERE ${ACCOUNT_OPENING_INDEX_PREDICATES.effective};
`;

/** Every read-model migration, in order. */
export const READ_MODEL_MIGRATIONS: readonly ReadModelMigration[] = [
  { version: 1, name: 'checkpoints, failures, balances, account history, transfers; RLS', sql: initialSchema },
  { version: 2, name: 'transfer and hold payloads as json', sql: jsonPayloads },
  { version: 3, name: 'balance reads in batches (read_balances)', sql: readBalances },
  { version: 4, name: 'the guard of inline plans (inline_plan_check)', sql: inlinePlanCheck },
  { version: 5, name: 'per-ledger progress of projections in rows (projection_ledger_versions)', sql: ledgerProgressRows },
  { version: 6, name: 'the application role reads the read-model schema version (projection_migrations)', sql: readableHistory },
  { version: 7, name: 'an empty tenant setting is no tenant; read_balance and read_balances refuse another tenant', sql: emptyTenantSetting },
  { version: 8, name: 'accounts by opening version and opening effective time (as-of reads)', sql: accountsByOpening },
];
