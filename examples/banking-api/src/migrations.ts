/**
 * The API's own tables, in its own schema `banking_api`, under the same roles and the same kind
 * of forced row-level security as Ledgerkit's: idempotency keys, the audit trail (append-only)
 * and the account directory. Each hot statement is a `SECURITY INVOKER` function that sets the
 * tenant for the transaction and runs as the caller, so one round trip does what `withTenant`
 * does in four, with the same policies applying (the pattern of projections' `read_balance`).
 */
import {
  appendOnlyFunctionSql,
  appendOnlySql,
  DEFAULT_ROLES,
  quoteName,
  tenantIsolationSqlV1,
  tenantPolicyUpdateSql,
  tenantScopedFunctionSql,
  TENANT_SETTING,
  withPooledClient,
  type ClientPool,
  type RoleNames,
} from '@ledgerkit/tenant-rls';

/** The schema of every table and function of the API. */
export const API_SCHEMA = 'banking_api';

const S = API_SCHEMA;

/** One step of the API schema's history. */
interface ApiMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: (roles: RoleNames) => string;
}

/** A function of the API schema that sets the tenant for its transaction only, then restores it (see `tenantScopedFunctionSql`). */
function tenantFunction(name: string, args: string, returns: string, body: string): string {
  return tenantScopedFunctionSql({ schema: S, name, args, returns, body });
}

/**
 * `finish_idempotency_keys`: stores each answer of a batch (`state = 'done'`), and for a request
 * that failed on the server's side (a null status) runs `onFailure`, the statement the two
 * versions of the function differ in (migration 1 deletes the key, migration 3 releases it).
 */
function finishKeysFunction(onFailure: string): string {
  return tenantFunction(
    'finish_idempotency_keys',
    'p_client_ids text[], p_keys text[], p_fingerprints text[], p_statuses integer[], p_headers jsonb[], p_bodies text[]',
    'void',
    `FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
    IF p_statuses[i] IS NOT NULL THEN
      UPDATE ${S}.idempotency_keys k SET state = 'done', response_status = p_statuses[i], response_headers = p_headers[i], response_body = p_bodies[i], locked_until = NULL
      WHERE k.tenant_id = p_tenant_id AND k.client_id = p_client_ids[i] AND k.idem_key = p_keys[i] AND k.fingerprint = p_fingerprints[i] AND k.state = 'pending';
    ELSE
${onFailure}    END IF;
  END LOOP;`,
  );
}

/** The API's tenant tables, each under a forced tenant policy. */
const TENANT_TABLES = ['idempotency_keys', 'audit_segments', 'accounts'] as const;

/**
 * Row-level security as migration 1 set it up: tenant-rls' `tenantIsolationSqlV1`, frozen (an
 * applied step must do the same on every database). Its predicate let an empty tenant setting,
 * which a pooled connection has once a transaction-local tenant ended, match rows whose
 * `tenant_id` is `''`; migration 5 gives every table tenant-rls' current predicate.
 */
const tenantIsolationBefore5 = (table: string): string => tenantIsolationSqlV1({ schema: S, table });

const initialSchema = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  const tables = TENANT_TABLES;
  return `
CREATE TABLE ${S}.idempotency_keys (
  tenant_id text NOT NULL,
  client_id text NOT NULL,
  idem_key text NOT NULL,
  -- sha256 of the method, route, path parameters, ledger and canonical body.
  fingerprint text NOT NULL,
  -- 'pending' while the first request runs (until locked_until), 'done' once its answer is stored.
  state text NOT NULL CHECK (state IN ('pending', 'done')),
  response_status integer,
  response_headers jsonb,
  -- Kept as the exact text sent, so a replay is byte for byte the original.
  response_body text,
  locked_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, client_id, idem_key)
);
-- Not led by tenant_id: an index that is would tempt the planner to answer a key lookup by
-- scanning every key of the tenant (it did, at 2.4 ms per key with a few thousand keys).
CREATE INDEX idempotency_keys_expiry ON ${S}.idempotency_keys (expires_at);

-- Who did what to which money, and how it ended: no personal data beyond ids. Written as
-- segments (one row per tenant per flush, the events as a JSON array) because a row per event
-- cost PostgreSQL about a third as much as the balance reads it audits; read through the
-- audit_events view, one row per event. Append-only.
CREATE TABLE ${S}.audit_segments (
  tenant_id text NOT NULL,
  segment_id bigint GENERATED ALWAYS AS IDENTITY,
  written_at timestamptz NOT NULL DEFAULT now(),
  first_occurred_at timestamptz NOT NULL,
  last_occurred_at timestamptz NOT NULL,
  event_count integer NOT NULL CHECK (event_count > 0),
  events jsonb NOT NULL CHECK (jsonb_typeof(events) = 'array'),
  PRIMARY KEY (tenant_id, segment_id)
);
CREATE INDEX audit_segments_time ON ${S}.audit_segments (tenant_id, last_occurred_at);

-- Accounts by id, for listing and lookups: kept by the inline hook and by a projection, the newest
-- ledger version winning, so both may run.
CREATE TABLE ${S}.accounts (
  tenant_id text NOT NULL,
  ledger_id text COLLATE "C" NOT NULL,
  account_id text COLLATE "C" NOT NULL,
  currency text NOT NULL,
  account_type text NOT NULL,
  debits_must_not_exceed_credits boolean NOT NULL,
  credits_must_not_exceed_debits boolean NOT NULL,
  metadata jsonb NOT NULL,
  status text NOT NULL,
  opened_version bigint NOT NULL,
  opened_at timestamptz NOT NULL,
  -- Ledger version of the last event applied to this row.
  version bigint NOT NULL,
  PRIMARY KEY (tenant_id, ledger_id, account_id)
);

${tables.map(tenantIsolationBefore5).join('\n')}
${appendOnlyFunctionSql(S)}
${appendOnlySql({ schema: S, table: 'audit_segments' })}
-- One row per event; security_invoker, so the segments' tenant policy applies to whoever reads it.
CREATE VIEW ${S}.audit_events WITH (security_invoker = true) AS
  SELECT s.tenant_id, s.segment_id, e.ordinality::integer AS seq, (e.event->>'occurredAt')::timestamptz AS occurred_at,
         e.event->>'requestId' AS request_id, e.event->>'clientId' AS client_id, e.event->>'subject' AS subject,
         e.event->>'action' AS action, e.event->>'ledgerId' AS ledger_id, e.event->>'resourceId' AS resource_id,
         (e.event->>'status')::integer AS status, e.event->>'outcome' AS outcome, e.event->>'problemCode' AS problem_code,
         (e.event->>'replayed')::boolean AS replayed
  FROM ${S}.audit_segments s CROSS JOIN LATERAL jsonb_array_elements(s.events) WITH ORDINALITY AS e(event, ordinality);

-- Claims and answers go key by key through the primary key (one plan, one index probe per key):
-- a set-based join of the batch could be planned as a scan of the tenant's keys, as it was once.
${tenantFunction(
  'claim_idempotency_keys',
  'p_client_ids text[], p_keys text[], p_fingerprints text[], p_lease_ms integer, p_ttl_ms bigint',
  'TABLE (o_ord integer, o_claimed boolean, o_fingerprint text, o_state text, o_status integer, o_headers jsonb, o_body text)',
  `DECLARE
    v_now timestamptz := clock_timestamp();
  BEGIN
  FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
    o_ord := i;
    INSERT INTO ${S}.idempotency_keys AS k (tenant_id, client_id, idem_key, fingerprint, state, locked_until, expires_at)
    VALUES (p_tenant_id, p_client_ids[i], p_keys[i], p_fingerprints[i], 'pending',
            v_now + make_interval(secs => p_lease_ms / 1000.0), v_now + make_interval(secs => p_ttl_ms / 1000.0))
    ON CONFLICT (tenant_id, client_id, idem_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'pending',
      locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at, response_status = NULL, response_headers = NULL, response_body = NULL
      -- An expired key is free again; an abandoned claim (its lease ran out) may be taken over by the same request.
      WHERE k.expires_at <= v_now OR (k.state = 'pending' AND k.locked_until <= v_now AND k.fingerprint = EXCLUDED.fingerprint)
    RETURNING true INTO o_claimed;
    IF o_claimed THEN
      o_fingerprint := NULL; o_state := NULL; o_status := NULL; o_headers := NULL; o_body := NULL;
    ELSE
      o_claimed := false;
      SELECT k.fingerprint, k.state, k.response_status, k.response_headers, k.response_body
        INTO o_fingerprint, o_state, o_status, o_headers, o_body
        FROM ${S}.idempotency_keys k WHERE k.tenant_id = p_tenant_id AND k.client_id = p_client_ids[i] AND k.idem_key = p_keys[i];
    END IF;
    RETURN NEXT;
  END LOOP;
  END;`,
)}

${finishKeysFunction(`      -- A request that failed on the server's side gives its key back: a retry runs it again.
      DELETE FROM ${S}.idempotency_keys k
      WHERE k.tenant_id = p_tenant_id AND k.client_id = p_client_ids[i] AND k.idem_key = p_keys[i] AND k.fingerprint = p_fingerprints[i] AND k.state = 'pending';
`)}

${tenantFunction(
  'expire_idempotency_keys',
  'p_limit integer',
  'integer',
  `DECLARE v_deleted integer; BEGIN
  DELETE FROM ${S}.idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ${S}.idempotency_keys WHERE tenant_id = p_tenant_id AND expires_at <= clock_timestamp() LIMIT p_limit));
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  PERFORM set_config('${TENANT_SETTING}', v_previous, true);
  RETURN v_deleted; END;`,
)}

${tenantFunction(
  'append_audit_segment',
  'p_first_occurred_at timestamptz, p_last_occurred_at timestamptz, p_event_count integer, p_events jsonb',
  'void',
  `INSERT INTO ${S}.audit_segments (tenant_id, first_occurred_at, last_occurred_at, event_count, events)
  VALUES (p_tenant_id, p_first_occurred_at, p_last_occurred_at, p_event_count, p_events);`,
)}

${tenantFunction(
  'read_account',
  'p_ledger_id text, p_account_id text',
  `SETOF ${S}.accounts`,
  `RETURN QUERY SELECT * FROM ${S}.accounts a WHERE a.tenant_id = p_tenant_id AND a.ledger_id = p_ledger_id AND a.account_id = p_account_id;`,
)}

${tenantFunction(
  'list_accounts',
  'p_ledger_id text, p_after text, p_limit integer',
  `SETOF ${S}.accounts`,
  `RETURN QUERY SELECT * FROM ${S}.accounts a WHERE a.tenant_id = p_tenant_id AND a.ledger_id = p_ledger_id
    AND (p_after IS NULL OR a.account_id > p_after COLLATE "C") ORDER BY a.account_id LIMIT p_limit;`,
)}

GRANT USAGE ON SCHEMA ${S} TO ${app};
GRANT SELECT, INSERT, UPDATE, DELETE ON ${S}.idempotency_keys, ${S}.accounts TO ${app};
GRANT SELECT, INSERT ON ${S}.audit_segments TO ${app};
GRANT SELECT ON ${S}.audit_events TO ${app};
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ${S} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${S}.claim_idempotency_keys(text, text[], text[], text[], integer, bigint),
  ${S}.finish_idempotency_keys(text, text[], text[], text[], integer[], jsonb[], text[]),
  ${S}.expire_idempotency_keys(text, integer),
  ${S}.append_audit_segment(text, timestamptz, timestamptz, integer, jsonb),
  ${S}.read_account(text, text, text),
  ${S}.list_accounts(text, text, text, integer) TO ${app};
`;
};

/**
 * Audit events name the transfer a hold's post or void, or a reversal, acted on (`targetId`)
 * besides the new transfer it created (`resourceId`): the view gains `target_id` (last, as
 * `CREATE OR REPLACE VIEW` requires; null in events written before).
 */
const auditTarget = (): string => `
CREATE OR REPLACE VIEW ${S}.audit_events WITH (security_invoker = true) AS
  SELECT s.tenant_id, s.segment_id, e.ordinality::integer AS seq, (e.event->>'occurredAt')::timestamptz AS occurred_at,
         e.event->>'requestId' AS request_id, e.event->>'clientId' AS client_id, e.event->>'subject' AS subject,
         e.event->>'action' AS action, e.event->>'ledgerId' AS ledger_id, e.event->>'resourceId' AS resource_id,
         (e.event->>'status')::integer AS status, e.event->>'outcome' AS outcome, e.event->>'problemCode' AS problem_code,
         (e.event->>'replayed')::boolean AS replayed, e.event->>'targetId' AS target_id
  FROM ${S}.audit_segments s CROSS JOIN LATERAL jsonb_array_elements(s.events) WITH ORDINALITY AS e(event, ordinality);
`;

/**
 * Audit events of a linked group name its transfers (`memberIds`): the view gains `member_ids`
 * (last, as `CREATE OR REPLACE VIEW` requires; null in events written before and in every event
 * that is not a group's).
 */
const auditMembers = (): string => `
CREATE OR REPLACE VIEW ${S}.audit_events WITH (security_invoker = true) AS
  SELECT s.tenant_id, s.segment_id, e.ordinality::integer AS seq, (e.event->>'occurredAt')::timestamptz AS occurred_at,
         e.event->>'requestId' AS request_id, e.event->>'clientId' AS client_id, e.event->>'subject' AS subject,
         e.event->>'action' AS action, e.event->>'ledgerId' AS ledger_id, e.event->>'resourceId' AS resource_id,
         (e.event->>'status')::integer AS status, e.event->>'outcome' AS outcome, e.event->>'problemCode' AS problem_code,
         (e.event->>'replayed')::boolean AS replayed, e.event->>'targetId' AS target_id,
         CASE WHEN jsonb_typeof(e.event->'memberIds') = 'array'
              THEN ARRAY(SELECT m.id FROM jsonb_array_elements_text(e.event->'memberIds') WITH ORDINALITY AS m(id, n) ORDER BY m.n) END AS member_ids
  FROM ${S}.audit_segments s CROSS JOIN LATERAL jsonb_array_elements(s.events) WITH ORDINALITY AS e(event, ordinality);
`;

/**
 * Lifecycle commands (freeze, unfreeze, close) get their ledger command id from the key's claim,
 * not from the key alone: each claim of a key after it expired (or by another request after it
 * was released) draws a new `claim_nonce`, and a retry of the same request keeps it. Before, a
 * freeze sent again with a key that had expired was taken by the ledger (which remembers recent
 * command ids with no time limit) as a duplicate of the first one and did nothing. A request that
 * failed on the server's side now releases its key (`state = 'released'`, kept until it expires)
 * instead of deleting it, so that its retry keeps the nonce and the ledger still recognises a
 * change the failed attempt made. Rows claimed before keep a null nonce (the command id as before).
 */
const claimNonces = (roles: RoleNames): string => {
  const app = quoteName(roles.app, 'application role');
  return `
ALTER TABLE ${S}.idempotency_keys ADD COLUMN claim_nonce text;
ALTER TABLE ${S}.idempotency_keys DROP CONSTRAINT idempotency_keys_state_check;
ALTER TABLE ${S}.idempotency_keys ADD CONSTRAINT idempotency_keys_state_check CHECK (state IN ('pending', 'done', 'released'));
DROP FUNCTION ${S}.claim_idempotency_keys(text, text[], text[], text[], integer, bigint);

-- Claims go key by key through the primary key (one plan, one index probe per key), as before.
${tenantFunction(
  'claim_idempotency_keys',
  'p_client_ids text[], p_keys text[], p_fingerprints text[], p_lease_ms integer, p_ttl_ms bigint',
  'TABLE (o_ord integer, o_claimed boolean, o_fingerprint text, o_state text, o_status integer, o_headers jsonb, o_body text, o_nonce text)',
  `DECLARE
    v_now timestamptz := clock_timestamp();
  BEGIN
  FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
    o_ord := i;
    INSERT INTO ${S}.idempotency_keys AS k (tenant_id, client_id, idem_key, fingerprint, state, locked_until, expires_at, claim_nonce)
    VALUES (p_tenant_id, p_client_ids[i], p_keys[i], p_fingerprints[i], 'pending',
            v_now + make_interval(secs => p_lease_ms / 1000.0), v_now + make_interval(secs => p_ttl_ms / 1000.0), gen_random_uuid()::text)
    ON CONFLICT (tenant_id, client_id, idem_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'pending',
      locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at, response_status = NULL, response_headers = NULL, response_body = NULL,
      -- A new request (the key expired, or another body after a release) is another command;
      -- the same request again (an abandoned or released claim) keeps its nonce.
      claim_nonce = CASE WHEN k.expires_at <= v_now OR k.fingerprint <> EXCLUDED.fingerprint THEN EXCLUDED.claim_nonce ELSE k.claim_nonce END
      -- An expired key is free again; an abandoned claim (its lease ran out) may be taken over by
      -- the same request; a released one (its request failed on the server's side) by any.
      WHERE k.expires_at <= v_now OR (k.state = 'pending' AND k.locked_until <= v_now AND k.fingerprint = EXCLUDED.fingerprint) OR k.state = 'released'
    RETURNING true, k.claim_nonce INTO o_claimed, o_nonce;
    IF o_claimed THEN
      o_fingerprint := NULL; o_state := NULL; o_status := NULL; o_headers := NULL; o_body := NULL;
    ELSE
      o_claimed := false; o_nonce := NULL;
      SELECT k.fingerprint, k.state, k.response_status, k.response_headers, k.response_body
        INTO o_fingerprint, o_state, o_status, o_headers, o_body
        FROM ${S}.idempotency_keys k WHERE k.tenant_id = p_tenant_id AND k.client_id = p_client_ids[i] AND k.idem_key = p_keys[i];
    END IF;
    RETURN NEXT;
  END LOOP;
  END;`,
)}

${finishKeysFunction(`      -- A request that failed on the server's side releases its key: a retry runs it again, with
      -- the same nonce (so the ledger recognises a change the failed attempt made).
      UPDATE ${S}.idempotency_keys k SET state = 'released', locked_until = NULL
      WHERE k.tenant_id = p_tenant_id AND k.client_id = p_client_ids[i] AND k.idem_key = p_keys[i] AND k.fingerprint = p_fingerprints[i] AND k.state = 'pending';
`)}

REVOKE ALL ON FUNCTION ${S}.claim_idempotency_keys(text, text[], text[], text[], integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${S}.claim_idempotency_keys(text, text[], text[], text[], integer, bigint) TO ${app};
`;
};

/**
 * Claims and answers as one statement per batch instead of one per key. Key by key, every key
 * paid PostgreSQL's statement start-up twice (an executor, its CHECK constraint read back from
 * the catalog's text, a RETURNING) on top of its index work: about 180 µs of server CPU for a
 * claim and its answer on this project's 2-core machine, against about 100 µs set-based.
 *
 * Both are `INSERT … ON CONFLICT` over the batch, so every key is found through the primary key's
 * arbiter probe whatever the planner would estimate: a join of the batch with the table was once
 * planned as a walk of all the tenant's keys. A claim that does not win (the key is in use,
 * answered, or another request's) reads the key's row key by key, as before; that is the rare path.
 * Answers and releases (a request that failed on the server's side gives its key back) are one
 * pass in the batch's order, so a batch takes its rows in the order it sends them: the store
 * sorts every batch by key, and then no two batches (claims or answers, of two processes) wait
 * for each other in opposite orders. An answer or release whose key has no row (it expired and
 * was swept while its request ran, or a crash lost the claim) is stored expired since
 * '-infinity': free for any claim, even one whose batch began before it, as an absent key is; the
 * sweep removes it.
 *
 * One statement cannot change a row twice, so a batch that names a key twice (the store before
 * this migration sent an answer twice in one turn, and an older process may still run during an
 * upgrade) goes key by key, each key a batch of one, in the batch's order: the old functions'
 * behaviour.
 *
 * A fill factor of 60 leaves room on a claim's page for its answer: the answer's update can then
 * be a heap-only tuple, with no new entry in either index.
 */
const setBasedKeys = (): string => {
  const hasRepeatedKey = `EXISTS (SELECT 1 FROM unnest(p_client_ids, p_keys) AS u(client_id, idem_key) GROUP BY u.client_id, u.idem_key HAVING count(*) > 1)`;
  return `
ALTER TABLE ${S}.idempotency_keys SET (fillfactor = 60);

${tenantFunction(
  'claim_idempotency_keys',
  'p_client_ids text[], p_keys text[], p_fingerprints text[], p_lease_ms integer, p_ttl_ms bigint',
  'TABLE (o_ord integer, o_claimed boolean, o_fingerprint text, o_state text, o_status integer, o_headers jsonb, o_body text, o_nonce text)',
  `DECLARE
    v_now timestamptz := clock_timestamp();
    v_row record;
  BEGIN
  IF ${hasRepeatedKey} THEN
    FOR i IN 1 .. array_length(p_keys, 1) LOOP
      RETURN QUERY SELECT i, c.o_claimed, c.o_fingerprint, c.o_state, c.o_status, c.o_headers, c.o_body, c.o_nonce
        FROM ${S}.claim_idempotency_keys(p_tenant_id, ARRAY[p_client_ids[i]], ARRAY[p_keys[i]], ARRAY[p_fingerprints[i]], p_lease_ms, p_ttl_ms) c;
    END LOOP;
  ELSE
  FOR v_row IN
    WITH input AS (
      SELECT u.ord::integer AS ord, u.client_id, u.idem_key, u.fingerprint
      FROM unnest(p_client_ids, p_keys, p_fingerprints) WITH ORDINALITY AS u(client_id, idem_key, fingerprint, ord)
    ), claimed AS (
      INSERT INTO ${S}.idempotency_keys AS k (tenant_id, client_id, idem_key, fingerprint, state, locked_until, expires_at, claim_nonce)
      SELECT p_tenant_id, i.client_id, i.idem_key, i.fingerprint, 'pending',
             v_now + make_interval(secs => p_lease_ms / 1000.0), v_now + make_interval(secs => p_ttl_ms / 1000.0), gen_random_uuid()::text
      FROM input i
      ON CONFLICT (tenant_id, client_id, idem_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'pending',
        locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at, response_status = NULL, response_headers = NULL, response_body = NULL,
        -- A new request (the key expired, or another body after a release) is another command;
        -- the same request again (an abandoned or released claim) keeps its nonce.
        claim_nonce = CASE WHEN k.expires_at <= v_now OR k.fingerprint <> EXCLUDED.fingerprint THEN EXCLUDED.claim_nonce ELSE k.claim_nonce END
        -- An expired key is free again; an abandoned claim (its lease ran out) may be taken over by
        -- the same request; a released one (its request failed on the server's side) by any.
        WHERE k.expires_at <= v_now OR (k.state = 'pending' AND k.locked_until <= v_now AND k.fingerprint = EXCLUDED.fingerprint) OR k.state = 'released'
      RETURNING k.client_id, k.idem_key, k.claim_nonce
    )
    SELECT i.ord, i.client_id, i.idem_key, c.idem_key IS NOT NULL AS won, c.claim_nonce
    FROM input i LEFT JOIN claimed c ON c.client_id = i.client_id AND c.idem_key = i.idem_key
    ORDER BY i.ord
  LOOP
    o_ord := v_row.ord;
    o_claimed := v_row.won;
    o_fingerprint := NULL; o_state := NULL; o_status := NULL; o_headers := NULL; o_body := NULL;
    IF v_row.won THEN
      o_nonce := v_row.claim_nonce;
    ELSE
      o_nonce := NULL;
      SELECT k.fingerprint, k.state, k.response_status, k.response_headers, k.response_body
        INTO o_fingerprint, o_state, o_status, o_headers, o_body
        FROM ${S}.idempotency_keys k WHERE k.tenant_id = p_tenant_id AND k.client_id = v_row.client_id AND k.idem_key = v_row.idem_key;
    END IF;
    RETURN NEXT;
  END LOOP;
  END IF;
  END;`,
)}

${tenantFunction(
  'finish_idempotency_keys',
  'p_client_ids text[], p_keys text[], p_fingerprints text[], p_statuses integer[], p_headers jsonb[], p_bodies text[]',
  'void',
  `IF ${hasRepeatedKey} THEN
    FOR i IN 1 .. array_length(p_keys, 1) LOOP
      PERFORM ${S}.finish_idempotency_keys(p_tenant_id, ARRAY[p_client_ids[i]], ARRAY[p_keys[i]], ARRAY[p_fingerprints[i]], ARRAY[p_statuses[i]], ARRAY[p_headers[i]], ARRAY[p_bodies[i]]);
    END LOOP;
  ELSE
    -- A null status gives the key back (released: a retry runs the request again, with the same
    -- nonce, so the ledger recognises a change the failed attempt made); any other stores the answer.
    INSERT INTO ${S}.idempotency_keys AS k (tenant_id, client_id, idem_key, fingerprint, state, response_status, response_headers, response_body, expires_at)
    SELECT p_tenant_id, u.client_id, u.idem_key, u.fingerprint, CASE WHEN u.status IS NULL THEN 'released' ELSE 'done' END, u.status, u.headers, u.body, '-infinity'
    FROM unnest(p_client_ids, p_keys, p_fingerprints, p_statuses, p_headers, p_bodies) AS u(client_id, idem_key, fingerprint, status, headers, body)
    -- Only for the claim the answer belongs to: the same request, still pending.
    ON CONFLICT (tenant_id, client_id, idem_key) DO UPDATE SET state = EXCLUDED.state, response_status = EXCLUDED.response_status,
      response_headers = EXCLUDED.response_headers, response_body = EXCLUDED.response_body, locked_until = NULL
      WHERE k.fingerprint = EXCLUDED.fingerprint AND k.state = 'pending';
  END IF;`,
)}
`;
};

/**
 * The expiry sweep skips the rows other transactions hold (`FOR UPDATE SKIP LOCKED`) instead of
 * waiting for them: it took expired keys in the table's physical order while a claim batch takes
 * its keys in key order, so a sweep and a batch re-claiming expired keys could each hold a row the
 * other wanted (a deadlock, PostgreSQL aborting one). A key skipped now is expired still, and the
 * next sweep takes it.
 */
const sweepSkipsLocked = (): string => tenantFunction(
  'expire_idempotency_keys',
  'p_limit integer',
  'integer',
  `DECLARE v_deleted integer; BEGIN
  DELETE FROM ${S}.idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ${S}.idempotency_keys WHERE tenant_id = p_tenant_id AND expires_at <= clock_timestamp() LIMIT p_limit FOR UPDATE SKIP LOCKED));
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  PERFORM set_config('${TENANT_SETTING}', v_previous, true);
  RETURN v_deleted; END;`,
);

/** Every migration of the API schema, in order. Applied steps are never edited: a change is a new step. */
const API_MIGRATIONS: readonly ApiMigration[] = [
  { version: 1, name: 'idempotency keys, audit events, account directory; RLS', sql: initialSchema },
  { version: 2, name: 'audit events: target_id', sql: auditTarget },
  { version: 3, name: 'idempotency keys: claim nonces, released keys kept', sql: claimNonces },
  { version: 4, name: 'audit events: member_ids of linked groups', sql: auditMembers },
  // With no tenant set, a query sees and changes nothing on a pooled connection too (an empty
  // setting is no tenant): ALTER POLICY, catalog only, no scan.
  { version: 5, name: 'tenant policies: an empty tenant setting is no tenant', sql: () => TENANT_TABLES.map((table) => tenantPolicyUpdateSql({ schema: S, table })).join('\n') },
  { version: 6, name: 'idempotency keys: claims and answers set-based, fill factor 60', sql: setBasedKeys },
  { version: 7, name: 'idempotency keys: the expiry sweep skips rows in use', sql: sweepSkipsLocked },
];

/** Options of {@link migrateBankingApi}. */
export interface MigrateBankingApiOptions {
  /** Pool of a superuser or a member of the owner role with `CREATE` on the database. */
  readonly pool: ClientPool;
  /** Role names; default the Ledgerkit defaults. The roles must exist (run the store's `migrate` first). */
  readonly roles?: RoleNames;
}

/**
 * Creates or upgrades the `banking_api` schema as the owner role, under an advisory lock, in one
 * transaction. Idempotent. Run it after `@ledgerkit/store-postgres`' `migrate`.
 */
export async function migrateBankingApi(options: MigrateBankingApiOptions): Promise<{ applied: number[] }> {
  const roles = options.roles ?? DEFAULT_ROLES;
  const owner = quoteName(roles.owner, 'owner role');
  // On any error the connection is dropped, which also ends its transaction: nothing is committed.
  return withPooledClient(options.pool, async (client) => {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('${S}.migrate'))`);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${S} AUTHORIZATION ${owner}`);
    await client.query(`SET LOCAL ROLE ${owner}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${S}.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ version: number }>(`SELECT version FROM ${S}.schema_migrations`)).rows.map((row) => row.version));
    const newest = Math.max(0, ...done);
    if (newest > API_MIGRATIONS.length) throw new Error(`the ${S} schema is at version ${newest}, newer than this build knows (${API_MIGRATIONS.length})`);
    const applied: number[] = [];
    for (const migration of API_MIGRATIONS) {
      if (done.has(migration.version)) continue;
      await client.query(migration.sql(roles));
      await client.query(`INSERT INTO ${S}.schema_migrations (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
      applied.push(migration.version);
    }
    await client.query('COMMIT');
    return { applied };
  });
}
