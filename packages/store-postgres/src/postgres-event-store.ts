import {
  APPEND_DATA_CHARS_MAX,
  APPEND_EVENTS_MAX,
  AppendRefusedError,
  appendableDataJson,
  CurrencyRegistry,
  DuplicateIndexKeyError,
  EventCodec,
  INDEX_KEYS_MAX,
  indexIdsOf,
  ID_PATTERN,
  ID_PATTERN_MESSAGE,
  INDEX_KEY_PREFIXES,
  InvalidInputError,
  isStorableText,
  LimitExceededError,
  READ_LIMIT_MAX,
  snapshotStateJson,
  STORABLE_TEXT_MESSAGE,
  StoreUnavailableError,
  VersionConflictError,
  type AppendRequest,
  type EventStore,
  type FindByIndexKeysRequest,
  type GlobalEvent,
  type JsonObject,
  type ReadAllRequest,
  type ReadStreamRequest,
  type Snapshot,
  type StoredEvent,
} from '@ledgerkit/ledger-core';
import { isTenantId, isTransientSqlstate, RoleRefusedError, TENANT_SETTING, TransactionAbortedError, withPooledClient, withTenant, type ClientPool } from '@ledgerkit/tenant-rls';
import type { CustomTypesConfig, PoolClient } from 'pg';
import { CURSOR_START, decodeCursor, encodeCursor } from './cursor.js';
import { BATCH_STATEMENTS_MAX, BatchCommittedUnreadableError, runBatch, runStatement, type BatchStatement } from './statement-batch.js';
import { SCHEMA_VERSION } from './migrate.js';
import { DUPLICATE_INDEX_KEY_SQLSTATE, RECORDED_EARLIER_SQLSTATE, SCHEMA, VERSION_CONFLICT_SQLSTATE } from './migrations.js';
import { STORE_VERSION_SQL, StoreSchemaVersionError, storeSchemaVersionOf, type StoreVersionRow } from './schema-version.js';

/** Longest `horizonWaitMs`. */
export const HORIZON_WAIT_MS_MAX = 60_000;

/** Options of {@link PostgresEventStore.open}. */
export interface PostgresEventStoreOptions {
  /**
   * Pool that logs in as the application role (see `migrate`). Every call takes one connection
   * for one short transaction with the tenant set locally.
   */
  readonly pool: ClientPool;
  /**
   * How long `readAll` may wait, 0..60,000 ms, when committed events after the cursor are held
   * back because an older transaction is still open; it then returns what is safe. 0 (the
   * default) returns at once, which suits a subscriber that polls; a caller that wants to read
   * what it has just written sets a few seconds.
   */
  readonly horizonWaitMs?: number;
  /**
   * Runs inside every non-empty append's transaction, after the events are written, with that
   * transaction's connection (tenant set) and the request: for a read model that must be current
   * when the append returns (read-your-writes), such as `@ledgerkit/projections`' inline balances.
   * If it throws, the append rolls back and rejects with ledger-core's `AppendRefusedError`, its
   * error as `cause` (retriable as that error's own `retriable` says, else by SQLSTATE class), so
   * keep it short and bounded; if a statement of its fails and it catches the error, the append
   * rolls back all the same and rejects with an `AppendRefusedError` whose `cause` is that
   * statement's error, retriable by its SQLSTATE class (use a savepoint to go on after a failure).
   */
  readonly inline?: InlineProjection;
  /**
   * Checks appended events that ledger-core's `EventCodec.encode` did not build — copies read
   * from another store, say — as their readers will (see ledger-core's `appendableDataJson`), so
   * give it the ledger's currencies and upcasters. Default: a codec with ledger-core's built-in
   * currencies and upcasters. Events the writer encodes are not checked again.
   */
  readonly codec?: EventCodec;
}

/**
 * A read-model update run inside an append's transaction; see {@link PostgresEventStoreOptions.inline}.
 * Called as a function it is the general path: it runs after the events are written, with the
 * transaction's connection (tenant set), and may read before it writes, at the price of a round
 * trip per statement. `plan`, when it has one, is the fast path (see {@link InlinePlan}).
 */
export interface InlineProjection {
  (client: PoolClient, append: AppendRequest): Promise<void>;
  /**
   * The statements this append needs, when they need nothing read first; `undefined` sends the
   * append down the general path. Called once per append, in the order the appends are made.
   */
  readonly plan?: (append: AppendRequest) => InlinePlan | undefined;
}

/**
 * An inline projection's statements for one append, sent with the append in one round trip and
 * one transaction (see `runBatch`): the tenant setting, the append, then these, in order. None can
 * see another's result; a statement that must not run unless the read model is as planned checks
 * that itself and raises, which fails the batch, and `declined` tells the store that this error
 * means "append again through the general path" rather than a failed append.
 */
export interface InlinePlan {
  readonly statements: readonly BatchStatement[];
  /**
   * Whether the batch's error is this plan's own refusal; by default no error is. Never asked
   * about a `BatchCommittedUnreadableError`: that batch committed, append and plan alike.
   */
  readonly declined?: (error: unknown) => boolean;
}

/** Most statements an {@link InlinePlan} may hold (the batch also carries the tenant setting and the append). */
export const INLINE_PLAN_STATEMENTS_MAX = BATCH_STATEMENTS_MAX - 2;

/**
 * Runs several inline projections in one append's transaction, in the order given; the batch of
 * plans is used only when every one of them has a plan for the append (else all take the
 * general path).
 */
export function composeInlineProjections(...projections: readonly InlineProjection[]): InlineProjection {
  const general = async (client: PoolClient, append: AppendRequest): Promise<void> => {
    for (const projection of projections) await projection(client, append);
  };
  const plan = (append: AppendRequest): InlinePlan | undefined => {
    const plans: InlinePlan[] = [];
    for (const projection of projections) {
      const one = projection.plan?.(append);
      if (one === undefined) return undefined;
      plans.push(one);
    }
    return {
      statements: plans.flatMap((one) => one.statements),
      declined: (error) => plans.some((one) => one.declined?.(error) === true),
    };
  };
  return Object.assign(general, { plan });
}

const SET_TENANT_SQL = `SELECT pg_catalog.set_config('${TENANT_SETTING}', $1, true)`;

/** How far the global log's readers are held back, for a tenant, at the moment of the call. */
export interface GlobalReadLag {
  /** Oldest transaction id still open in the cluster (`xid8`, decimal), or `null` when none is. Global reads stop below it. */
  readonly oldestOpenXid: string | null;
  /** When that transaction started, if this role may see it (own sessions, or `pg_read_all_stats`); else `null`. */
  readonly oldestOpenXactStartedAt: string | null;
  /** The tenant's committed events that `readAll` does not return yet because of open transactions. */
  readonly eventsHeldBack: number;
  /** Milliseconds since the oldest held-back event was recorded; 0 when none is held back. */
  readonly heldBackMs: number;
}

interface EventRow {
  readonly event_id: string;
  readonly tenant_id: string;
  readonly ledger_id: string;
  readonly ledger_version: string;
  readonly type: string;
  readonly schema_version: number;
  readonly data: JsonObject;
  readonly recorded_at: string;
  readonly effective_at: string;
  readonly correlation_id: string | null;
  readonly causation_id: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly previous_hash: string;
  readonly hash: string;
}

const EVENT_COLUMNS = `e.event_id, e.tenant_id, e.ledger_id, e.ledger_version, e.type, e.schema_version, e.data,
  e.recorded_at, e.effective_at, e.correlation_id, e.causation_id, e.metadata, e.previous_hash, e.hash`;

// Every column arrives as one text: the values joined by U+001E, a NULL written as a lone U+001F.
// Splitting that in the server costs far less than parsing array literals, and building it here
// far less than escaping every quote of every payload into one. JSON text never holds either
// character raw (JSON escapes control characters); any other value that holds one, or is empty
// (which a split cannot tell from no value), sends the whole append as array literals instead.
const SPLIT = (n: number, type: string): string => `string_to_array($${n}::text, chr(30), chr(31))::${type}[]`;
const JOINED_APPEND_SQL = `SELECT ${SCHEMA}.append_events($1, $2, $3, ${SPLIT(4, 'text')}, ${SPLIT(5, 'text')}, ${SPLIT(6, 'integer')},
  ${SPLIT(7, 'json')}, ${SPLIT(8, 'text')}, ${SPLIT(9, 'text')}, ${SPLIT(10, 'text')}, ${SPLIT(11, 'text')},
  ${SPLIT(12, 'json')}, ${SPLIT(13, 'text')}, ${SPLIT(14, 'text')}, ${SPLIT(15, 'text')}, ${SPLIT(16, 'text')}, ${SPLIT(17, 'text')}) AS version`;
const ARRAY_APPEND_SQL = `SELECT ${SCHEMA}.append_events($1, $2, $3, $4::text[], $5::text[], $6::integer[], $7::json[], $8::text[],
  $9::text[], $10::text[], $11::text[], $12::json[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[]) AS version`;
const VALUE_SEPARATOR = '\u001e';
const NULL_MARK = '\u001f';

/**
 * One column as the text `string_to_array(…, chr(30), chr(31))` splits back into it, or
 * `undefined` when a value would not survive that (empty, or holding U+001E or U+001F).
 *
 * Only the first `checkFirst` values are looked for those characters: the caller passes fewer for
 * a column whose other values are known to be safe (JSON text, which escapes every control
 * character, or values equal to ones of a column checked already). A value equal to the one
 * before it is not looked at again either (a batch's type and times mostly repeat). The text is
 * built with one `join` where no value is null: a flat string in one copy, where appending value
 * by value made a tree of two string pieces per value that was flattened (walked and copied)
 * when node-postgres wrote it. Exported for its tests only (not from the package).
 */
export function joinedColumn(values: readonly (string | number | null)[], checkFirst = values.length): string | undefined {
  let previous: string | undefined;
  let nulls = false;
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i];
    if (value === null || value === undefined) {
      nulls = true;
    } else if (typeof value === 'string' && value !== previous) {
      if (value.length === 0 || (i < checkFirst && (value.includes(VALUE_SEPARATOR) || value.includes(NULL_MARK)))) return undefined;
      previous = value;
    }
  }
  if (!nulls) return values.join(VALUE_SEPARATOR);
  // `join` writes null as nothing: each becomes the mark, in a copy (the arrays are also the
  // fallback parameters).
  return values.map((value) => (value === null || value === undefined ? NULL_MARK : value)).join(VALUE_SEPARATOR);
}

/** The append's parameters: every column joined when all of them can be, else as arrays. */
function appendParameters(head: readonly unknown[], columns: readonly AppendColumn[]): { text: string; values: unknown[] } {
  const joined: string[] = [];
  for (const column of columns) {
    const text = joinedColumn(column.values, column.checkFirst);
    if (text === undefined) return { text: ARRAY_APPEND_SQL, values: [...head, ...columns.map((one) => one.values)] };
    joined.push(text);
  }
  return { text: JOINED_APPEND_SQL, values: [...head, ...joined] };
}

/** A column of the append, and how many of its first values {@link joinedColumn} must check. */
interface AppendColumn {
  readonly values: readonly (string | number | null)[];
  readonly checkFirst?: number;
}

/**
 * `JSON.stringify(metadata)`, without the call (a serializer and a string builder set up, and the
 * result copied) for the usual empty object: a plain object (its prototype `Object.prototype`,
 * so not an array or a boxed primitive) with no own enumerable key and no `toJSON`, own or
 * inherited, which `JSON.stringify` would call, is `{}`. Exported for its tests only.
 */
export function metadataJson(metadata: unknown): string {
  if (typeof metadata === 'object' && metadata !== null && Object.getPrototypeOf(metadata) === Object.prototype && !('toJSON' in metadata) && isEmptyObject(metadata)) return '{}';
  return JSON.stringify(metadata);
}

function isEmptyObject(value: object): boolean {
  for (const key in value) if (Object.hasOwn(value, key)) return false;
  return true;
}

const READ_FORWARD_SQL = `SELECT ${EVENT_COLUMNS} FROM ${SCHEMA}.events e
  WHERE e.tenant_id = $1 AND e.ledger_id = $2 AND e.ledger_version >= $3 ORDER BY e.ledger_version LIMIT $4`;

const READ_BACKWARD_SQL = `SELECT ${EVENT_COLUMNS} FROM ${SCHEMA}.events e
  WHERE e.tenant_id = $1 AND e.ledger_id = $2 AND e.ledger_version <= $3 ORDER BY e.ledger_version DESC LIMIT $4`;

// A page of the global log, one round trip: the function (migration 6) sets the tenant, reads
// with an ordered index scan, and says of each row whether it is at or above the horizon. Named:
// each connection plans it once. The columns are listed, not `*`: rows come back as arrays (see
// `rowMode`), read by position, so the order is this statement's, whatever the function's.
const READ_ALL_STATEMENT = {
  name: 'ledgerkit_read_global_v2',
  text: `SELECT event_id, tenant_id, ledger_id, ledger_version, type, schema_version, data, recorded_at, effective_at, correlation_id,
    causation_id, metadata, previous_hash, hash, txid, "position", held FROM ${SCHEMA}.read_global_events($1, $2::xid8, $3::bigint, $4::integer)`,
  // Each row as an array of its columns' texts (null for SQL NULL), mapped by `globalEventOf`.
  // An array, not an object: node-postgres builds an object row by copying a 17-key template and
  // storing each column under its name, a keyed store per column (about 0.8 µs an event).
  rowMode: 'array',
  // Every column as text, whatever parsers the pool (or `pg.types`) has: `globalEventOf` parses.
  types: { getTypeParser: () => rawText },
} as const;

/** The global read's "type parser" for every column: the text as the server sent it (see `globalEventOf`). */
function rawText(text: string): string {
  return text;
}

/** A row of {@link READ_ALL_STATEMENT}: every column's text, in its select list's order. */
type GlobalRow = readonly (string | null)[];

// One probe of a unique partial index per key, in a function (see migration 3 for why).
// The function returns the rows themselves: a join back to events would leave the planner a
// choice again.
const FIND_BY_KEYS_SQL = `SELECT k.key, ${EVENT_COLUMNS} FROM ${SCHEMA}.find_index_keys($1, $2, $3::text[], $4::text[], $5::text[]) k
  CROSS JOIN LATERAL (SELECT (k.event).*) e`;

// A snapshot of an earlier version than the stored one (a slower writer's) is dropped.
const SAVE_SNAPSHOT_SQL = `INSERT INTO ${SCHEMA}.snapshots (tenant_id, ledger_id, ledger_version, hash, schema_version, state)
  VALUES ($1, $2, $3, $4, $5, $6::jsonb)
  ON CONFLICT (tenant_id, ledger_id) DO UPDATE SET ledger_version = EXCLUDED.ledger_version, hash = EXCLUDED.hash,
    schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, saved_at = now()
  WHERE ${SCHEMA}.snapshots.ledger_version <= EXCLUDED.ledger_version`;

const LOAD_SNAPSHOT_SQL = `SELECT tenant_id, ledger_id, ledger_version, hash, schema_version, state FROM ${SCHEMA}.snapshots
  WHERE tenant_id = $1 AND ledger_id = $2`;

const LAG_SQL = `SELECT CASE WHEN pg_snapshot_xmin(s.snap) < pg_snapshot_xmax(s.snap) THEN pg_snapshot_xmin(s.snap)::text END AS oldest_open_xid,
    (SELECT min(a.xact_start) FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL) AS oldest_xact_start,
    held.count AS held_count,
    held.oldest AS held_oldest_recorded_at
  FROM (SELECT pg_current_snapshot() AS snap) s
  CROSS JOIN LATERAL (SELECT count(*)::int AS count, min(e.recorded_at) AS oldest FROM ${SCHEMA}.events e
                       WHERE e.tenant_id = $1 AND e.txid >= pg_snapshot_xmin(s.snap)) held`;

/**
 * The role check of `open`, with what the store schema version is read from (one round trip).
 * INSERT and UPDATE are asked of any column (`has_any_column_privilege`, which a table-level
 * grant answers too): a grant on some columns only (`GRANT UPDATE (version) ON …`) lets the role
 * write those columns around the fences all the same. DELETE and TRUNCATE exist only per table.
 */
const ROLE_CHECK_SQL = `SELECT r.rolname AS role, r.rolsuper OR r.rolbypassrls AS bypasses_rls,
    EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = '${SCHEMA}')
            AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owns_tables,
    EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = '${SCHEMA}')
            AND c.relname IN ('events', 'ledger_streams')
            AND (has_any_column_privilege(current_user, c.oid, 'INSERT') OR has_any_column_privilege(current_user, c.oid, 'UPDATE')
                 OR has_table_privilege(current_user, c.oid, 'DELETE') OR has_table_privilege(current_user, c.oid, 'TRUNCATE'))) AS writes_fenced_tables,
    v.history_readable, v.marks
  FROM pg_roles r CROSS JOIN (${STORE_VERSION_SQL}) v WHERE r.rolname = current_user`;

/**
 * The PostgreSQL `EventStore`. Appends are one call of the `append_events` function, fenced by
 * the stream's version in the same statement; global reads follow commit order through a
 * transaction-id horizon, so they never skip an event; every query runs as the application
 * role with the tenant set for its transaction only (appends and global reads are one call of a
 * function that sets it for its own statement), under forced row-level security.
 *
 * It trusts the content of the events it appends: they must come from ledger-core's
 * `EventCodec.encode`, as `LedgerWriter` builds them (see {@link PostgresEventStore.append}).
 *
 * When the server cannot be reached, or goes away during a call (restart, crash, network), every
 * method rejects with the retriable `StoreUnavailableError`; for `append` the outcome is then
 * unknown. Give the pool a `connectionTimeoutMillis` so that an unreachable host fails fast too.
 *
 * ```ts
 * await migrate({ pool: adminPool, appPassword });
 * const store = await PostgresEventStore.open({ pool: appPool });
 * const ledger = await Ledger.open({ store, tenantId: 'acme', ledgerId: 'eur' });
 * ```
 */
export class PostgresEventStore implements EventStore {
  readonly #pool: ClientPool;
  readonly #horizonWaitMs: number;
  readonly #inline: InlineProjection | undefined;
  readonly #verifier: EventCodec;

  private constructor(options: PostgresEventStoreOptions) {
    this.#pool = options.pool;
    this.#inline = options.inline;
    this.#verifier = options.codec ?? new EventCodec({ currencies: new CurrencyRegistry() });
    this.#horizonWaitMs = options.horizonWaitMs ?? 0;
    if (!Number.isInteger(this.#horizonWaitMs) || this.#horizonWaitMs < 0 || this.#horizonWaitMs > HORIZON_WAIT_MS_MAX) {
      throw new LimitExceededError(`horizonWaitMs must be an integer in 0..${HORIZON_WAIT_MS_MAX}, got ${String(options.horizonWaitMs)}`);
    }
  }

  /**
   * Opens the store after checking the pool's role: it must neither be a superuser nor bypass
   * row-level security, must not own (or be a member of the owner of) the tables, must not be
   * able to write `events` or `ledger_streams` itself (only through `append_events`; a grant of
   * INSERT or UPDATE on some of their columns counts), and the
   * schema must be at this release's version, `SCHEMA_VERSION`. Any of those would silently
   * weaken tenant isolation or fail later. A refused role rejects with tenant-rls'
   * `RoleRefusedError` (`code: 'role_refused'`, `reason` naming the check). A schema at another version is refused with
   * {@link StoreSchemaVersionError} (`code: 'store_schema_version'`), whose `found` and `needed`
   * (and message) name the database's version and this release's; see that class for how
   * `found` is read.
   */
  static async open(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
    const store = new PostgresEventStore(options);
    // Through withStoreClient, as every other call: a server lost during the check is a
    // retriable StoreUnavailableError (not a raw driver error, nor an 'error' event nobody
    // listens to, which would crash the process), and its connection is not pooled again.
    await withStoreClient(options.pool, async (client) => {
      const { rows } = await client.query<{ role: string; bypasses_rls: boolean; owns_tables: boolean; writes_fenced_tables: boolean } & StoreVersionRow>(ROLE_CHECK_SQL);
      const role = rows[0];
      if (role === undefined) throw new RoleRefusedError('missing', undefined, 'the connected role is not in pg_roles');
      if (role.bypasses_rls) throw new RoleRefusedError('bypasses_rls', role.role, 'the store must connect as the application role: this role is a superuser or has BYPASSRLS');
      const found = await storeSchemaVersionOf(client, role);
      if (found !== SCHEMA_VERSION) throw new StoreSchemaVersionError(found, SCHEMA_VERSION);
      if (role.owns_tables) throw new RoleRefusedError('owns_tables', role.role, 'the store must connect as the application role: this role owns the tables or is a member of their owner');
      // Appends go through append_events (SECURITY DEFINER), which keeps the version and hash
      // fences; a role that may write the tables itself (a broad GRANT) could go around them.
      if (role.writes_fenced_tables) {
        throw new RoleRefusedError('writes_fenced_tables', role.role, `the store must connect as the application role with no write privilege of its own on ${SCHEMA}.events or ${SCHEMA}.ledger_streams (it writes them only through append_events, which keeps the version and hash fences): revoke INSERT, UPDATE, DELETE and TRUNCATE on them, and INSERT and UPDATE on any of their columns`);
      }
    }).catch((error: unknown) => {
      throw unavailableError(error) ?? error;
    });
    return store;
  }

  /**
   * Appends a batch to one ledger stream, fenced by `expectedVersion` and the first event's
   * `previousHash` (see the `EventStore` port), in one statement; resolves with the new version.
   *
   * **Nothing its readers could not read is written** (the table is append-only, and an event
   * `EventCodec.decode` refused would stop every reader of its ledger and tenant). An event that
   * ledger-core's `EventCodec.encode` built, as `LedgerWriter` builds them, is trusted as it is;
   * any other is decoded and its hash recomputed by the `codec` option first, and refused with
   * `InvalidInputError` at `events.<n>` if either fails. Then come the structural checks: the
   * tenant and ledger ids (`ledgerId` must match ledger-core's `ID_PATTERN`), `expectedVersion`
   * (a non-negative integer), that every event carries the request's tenant and ledger and the
   * next version, and that within the batch each event's `previousHash` is the `hash` of the
   * event before it.
   *
   * A malformed request is refused with `InvalidInputError` (bad ids, `expectedVersion`, an event
   * of another tenant or ledger, wrong version numbering, a broken chain inside the batch) or
   * `LimitExceededError` (too many events, or more data JSON than ledger-core's
   * `APPEND_DATA_CHARS_MAX`), before anything is sent: neither is retriable. A stream that moved
   * throws the retriable `VersionConflictError`, a claimed index key `DuplicateIndexKeyError`, a
   * lost server `StoreUnavailableError`; a refused append writes nothing. An append that
   * committed but whose answer the pool's type parsers could not read (sent alone, without an
   * inline projection, or with an inline plan as one statement batch) throws the retriable
   * {@link BatchCommittedUnreadableError}: its events were written.
   */
  async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
    checkRequest(request, 'events');
    checkLimit(request.events.length, 0, APPEND_EVENTS_MAX, 'events per append');
    const tenantId = checkTenant(request.tenantId);
    const ledgerId = checkLedgerId(request.ledgerId);
    const expected = request.expectedVersion;
    // A malformed argument, not a conflict: VersionConflictError would invite a retry.
    if (!Number.isSafeInteger(expected) || expected < 0) throw new InvalidInputError([{ path: ['expectedVersion'], message: 'must be a non-negative integer' }]);
    const count = request.events.length;
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
    // First: an event its readers could not read is refused before any field of it is used, and
    // a batch whose data would not fit in one string (see APPEND_DATA_CHARS_MAX) before it is joined.
    let dataChars = 0;
    for (let offset = 0; offset < count; offset += 1) {
      const text = appendableDataJson(request.events[offset] as StoredEvent, offset, this.#verifier);
      dataChars += text.length;
      if (dataChars > APPEND_DATA_CHARS_MAX) {
        throw new LimitExceededError(`the events' data JSON text must be at most ${APPEND_DATA_CHARS_MAX} characters per append; it passed that at events.${offset}`);
      }
      data[offset] = text;
    }
    for (let offset = 0; offset < count; offset += 1) {
      const event = request.events[offset] as StoredEvent;
      if (event.tenantId !== request.tenantId) throw new InvalidInputError([{ path: ['events', offset, 'tenantId'], message: 'must be the tenant the append is for' }]);
      if (event.ledgerId !== request.ledgerId) throw new InvalidInputError([{ path: ['events', offset, 'ledgerId'], message: 'must be the ledger the append is for' }]);
      if (event.ledgerVersion !== expected + offset + 1) {
        throw new InvalidInputError([{ path: ['events', offset, 'ledgerVersion'], message: `must be ${expected + offset + 1} (expectedVersion + ${offset + 1}), got ${String(event.ledgerVersion)}` }]);
      }
      // The chain inside the batch (the first link is the database's fence): one string compare.
      if (offset > 0 && event.previousHash !== hashes[offset - 1]) {
        throw new InvalidInputError([{ path: ['events', offset, 'previousHash'], message: 'must be the hash of the event before it in the batch' }]);
      }
      // Recorded times never decrease (the first against the stream: the database's fence). Every
      // stored recorded time is ISO-8601 UTC with milliseconds, so the strings compare as instants.
      if (offset > 0 && event.recordedAt < (recordedAt[offset - 1] as string)) throw recordedEarlier(offset);
      eventIds[offset] = event.eventId;
      types[offset] = event.type;
      schemaVersions[offset] = event.schemaVersion;
      recordedAt[offset] = event.recordedAt;
      effectiveAt[offset] = event.effectiveAt;
      correlationIds[offset] = event.correlationId;
      causationIds[offset] = event.causationId;
      metadata[offset] = metadataJson(event.metadata);
      previousHashes[offset] = event.previousHash;
      hashes[offset] = event.hash;
      const ids = indexIdsOf(event);
      transferKeys[offset] = ids.transfer;
      resolutionKeys[offset] = ids.resolution;
      reversalKeys[offset] = ids.reversal;
    }
    const call = appendParameters(
      [tenantId, ledgerId, expected],
      [
        { values: eventIds },
        { values: types },
        { values: schemaVersions },
        // JSON text (the codec's canonical text, or JSON.stringify's) escapes every control character.
        { values: data, checkFirst: 0 },
        { values: recordedAt },
        { values: effectiveAt },
        { values: correlationIds },
        { values: causationIds },
        { values: metadata, checkFirst: 0 },
        // Each after the first was found equal to the hash before it, which its column checks.
        { values: previousHashes, checkFirst: 1 },
        { values: hashes },
        { values: transferKeys },
        { values: resolutionKeys },
        { values: reversalKeys },
      ],
    );
    const inline = this.#inline;
    try {
      let version: number;
      if (inline === undefined || count === 0) {
        // One autocommitted statement, one round trip: the function sets the tenant for its own
        // transaction. Nothing else has to run in that transaction.
        version = await this.#appendAlone(call.text, call.values);
      } else {
        let plan: InlinePlan | undefined;
        try {
          plan = inline.plan?.(request);
        } catch (error) {
          throw refusedByInline(error);
        }
        const general = async (): Promise<number> => {
          // The first statement of the hook's that the server failed (which aborts the
          // transaction): if the hook caught its error, the COMMIT rolls back, and this says why.
          let failed: { readonly error: unknown } | undefined;
          try {
            return await withTenant(this.#pool, tenantId, async (client) => {
              const { rows } = await client.query<{ version: string }>(call.text, call.values);
              try {
                await inline(recordingFailures(client, (error) => (failed ??= isServerError(error) ? { error } : undefined)), request);
              } catch (error) {
                // Thrown before the COMMIT: the transaction rolls back, events and all.
                throw refusedByInline(error);
              }
              return Number(rows[0]?.version);
            });
          } catch (error) {
            if (error instanceof TransactionAbortedError && failed !== undefined) throw refusedAfterCaughtError(error, failed.error);
            throw error;
          }
        };
        if (plan === undefined) {
          version = await general();
        } else {
          if (plan.statements.length > INLINE_PLAN_STATEMENTS_MAX) throw new LimitExceededError(`an inline plan holds at most ${INLINE_PLAN_STATEMENTS_MAX} statements, got ${plan.statements.length}`);
          try {
            // One round trip and one transaction: the tenant, the append, the plan's statements.
            const results = await withStoreClient(this.#pool, (client) =>
              runBatch(client, [{ text: SET_TENANT_SQL, values: [tenantId] }, { text: call.text, values: call.values }, ...plan.statements]),
            );
            version = Number(results[1]?.rows[0]?.['version']);
          } catch (error) {
            // A batch that committed is never appended again, whatever the plan takes its error for.
            if (error instanceof BatchCommittedUnreadableError || plan.declined?.(error) !== true) throw error;
            version = await general();
          }
        }
      }
      if (version !== expected + count) throw new Error(`append_events returned version ${version}, expected ${expected + count}`);
      return { ledgerVersion: version };
    } catch (error) {
      throw unavailableError(error) ?? refusedError(appendError(error, expected));
    }
  }

  /** The append as one autocommitted statement: an answer it cannot parse after the commit is `BatchCommittedUnreadableError`. */
  async #appendAlone(text: string, values: unknown[]): Promise<number> {
    const rows = await withStoreClient(this.#pool, (client) => runStatement(client, { text, values }));
    return Number(rows[0]?.['version']);
  }

  /** One autocommitted statement that sets the tenant itself (a store function), one round trip. */
  async #alone<R extends object>(query: {
    readonly name?: string;
    readonly text: string;
    readonly values: unknown[];
    readonly rowMode?: 'array';
    readonly types?: CustomTypesConfig;
  }): Promise<R[]> {
    return withStoreClient(this.#pool, async (client) => (await client.query<R>(query)).rows);
  }

  /** A page of the global log through {@link #alone}, as raw rows (see {@link READ_ALL_STATEMENT}), its failures mapped as every read's are. */
  async #readGlobal(values: unknown[]): Promise<GlobalRow[]> {
    return this.#alone<GlobalRow>({ ...READ_ALL_STATEMENT, values }).catch((error: unknown) => {
      throw unavailableError(error) ?? error;
    });
  }

  /**
   * Reads up to `limit` events of one stream (see the `EventStore` port). `direction` must be
   * `'forward'` or `'backward'` and `ledgerId` a string without NUL or unpaired surrogates, else
   * `InvalidInputError`.
   */
  async readStream(request: ReadStreamRequest): Promise<StoredEvent[]> {
    checkRequest(request);
    checkLimit(request.limit, 1, READ_LIMIT_MAX, 'read limit');
    const tenantId = checkTenant(request.tenantId);
    const ledgerId = checkText(request.ledgerId, ['ledgerId']);
    const direction: unknown = request.direction;
    if (direction !== 'forward' && direction !== 'backward') throw new InvalidInputError([{ path: ['direction'], message: "must be 'forward' or 'backward'" }]);
    if (request.fromVersion !== undefined && !Number.isSafeInteger(request.fromVersion)) {
      throw new InvalidInputError([{ path: ['fromVersion'], message: 'must be an integer' }]);
    }
    const forward = direction === 'forward';
    const from = forward ? Math.max(request.fromVersion ?? 1, 1) : (request.fromVersion ?? Number.MAX_SAFE_INTEGER);
    if (from < 1) return [];
    const rows = await this.#read<EventRow>(tenantId, forward ? READ_FORWARD_SQL : READ_BACKWARD_SQL, [tenantId, ledgerId, from, request.limit]);
    return rows.map(toStoredEvent);
  }

  /**
   * Reads up to `limit` events of the tenant's global log after `after` (see the `EventStore`
   * port). An `after` that is not a position this store handed out, or is out of range, is
   * refused with `InvalidInputError`.
   */
  async readAll(request: ReadAllRequest): Promise<GlobalEvent[]> {
    checkRequest(request);
    checkLimit(request.limit, 1, READ_LIMIT_MAX, 'read limit');
    const tenantId = checkTenant(request.tenantId);
    const after = request.after === null ? CURSOR_START : decodeCursor(request.after);
    const deadline = Date.now() + this.#horizonWaitMs;
    let pauseMs = 2;
    for (;;) {
      const rows = await this.#readGlobal([tenantId, after.txid, after.position, request.limit]);
      // Column 16 is `held`: boolean text, 't' or 'f'.
      const held = rows.findIndex((row) => row[16] === 't');
      const remainingMs = deadline - Date.now();
      if (held === -1 || remainingMs <= 0) {
        const safe = held === -1 ? rows.length : held;
        const events: GlobalEvent[] = new Array<GlobalEvent>(safe);
        for (let i = 0; i < safe; i += 1) events[i] = globalEventOf(rows[i] as GlobalRow);
        return events;
      }
      await sleep(Math.min(pauseMs, remainingMs));
      pauseMs = Math.min(pauseMs * 2, 50);
    }
  }

  /**
   * The events that claimed the given index keys (see the `EventStore` port). `ledgerId` and
   * every key must be strings without NUL or unpaired surrogates, else `InvalidInputError`.
   */
  async findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
    checkRequest(request, 'keys');
    checkLimit(request.keys.length, 0, INDEX_KEYS_MAX, 'index keys per lookup');
    const tenantId = checkTenant(request.tenantId);
    const ledgerId = checkText(request.ledgerId, ['ledgerId']);
    for (let i = 0; i < request.keys.length; i += 1) checkText(request.keys[i] as string, ['keys', i]);
    const found = new Map<string, StoredEvent>();
    if (request.keys.length === 0) return found;
    const transferIds: string[] = [];
    const pendingIds: string[] = [];
    const reversedIds: string[] = [];
    for (const key of request.keys) {
      if (key.startsWith(INDEX_KEY_PREFIXES.transfer)) transferIds.push(key.slice(INDEX_KEY_PREFIXES.transfer.length));
      else if (key.startsWith(INDEX_KEY_PREFIXES.resolution)) pendingIds.push(key.slice(INDEX_KEY_PREFIXES.resolution.length));
      else if (key.startsWith(INDEX_KEY_PREFIXES.reversal)) reversedIds.push(key.slice(INDEX_KEY_PREFIXES.reversal.length));
    }
    if (transferIds.length + pendingIds.length + reversedIds.length === 0) return found;
    const rows = await this.#read<EventRow & { key: string }>(tenantId, FIND_BY_KEYS_SQL, [tenantId, ledgerId, transferIds, pendingIds, reversedIds]);
    const byKey = new Map(rows.map((row) => [row.key, row]));
    for (const key of request.keys) {
      const row = byKey.get(key);
      if (row !== undefined) found.set(key, toStoredEvent(row));
    }
    return found;
  }

  /**
   * Stores a snapshot, replacing the ledger's older one. Refused with `InvalidInputError`, before
   * anything is sent: a `ledgerId` off ledger-core's `ID_PATTERN`, a `ledgerVersion` that is not a
   * non-negative integer, a `schemaVersion` that is not an integer in 0..2,147,483,647, a `hash`
   * that is not a string without NUL or unpaired surrogates, and a `state` that is not a JSON
   * object PostgreSQL can store (a BigInt, a NUL character or a lone UTF-16 surrogate in it).
   */
  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    checkRequest(snapshot);
    const tenantId = checkTenant(snapshot.tenantId);
    const ledgerId = checkLedgerId(snapshot.ledgerId);
    const state = snapshotStateJson(snapshot);
    await withTenant(this.#pool, tenantId, (client) =>
      client.query(SAVE_SNAPSHOT_SQL, [tenantId, ledgerId, snapshot.ledgerVersion, snapshot.hash, snapshot.schemaVersion, state]),
    ).catch((error: unknown) => {
      throw unavailableError(error) ?? error;
    });
  }

  /**
   * The ledger's latest snapshot, or `null`; a `ledgerId` that is not a string without NUL or
   * unpaired surrogates is refused with `InvalidInputError`.
   */
  async loadSnapshot(request: { readonly tenantId: string; readonly ledgerId: string }): Promise<Snapshot | null> {
    checkRequest(request);
    const tenantId = checkTenant(request.tenantId);
    const ledgerId = checkText(request.ledgerId, ['ledgerId']);
    const rows = await this.#read<{ tenant_id: string; ledger_id: string; ledger_version: string; hash: string; schema_version: number; state: JsonObject }>(
      tenantId,
      LOAD_SNAPSHOT_SQL,
      [tenantId, ledgerId],
    );
    const row = rows[0];
    if (row === undefined) return null;
    return {
      tenantId: row.tenant_id,
      ledgerId: row.ledger_id,
      ledgerVersion: Number(row.ledger_version),
      hash: row.hash,
      schemaVersion: row.schema_version,
      state: row.state,
    };
  }

  /**
   * How far `readAll` is held back for a tenant now: the oldest open transaction, and the
   * tenant's committed events above the horizon with the age of the oldest. Export these as
   * metrics: a large `heldBackMs` means a long transaction somewhere in the cluster (any
   * database) is delaying every subscriber.
   */
  async globalReadLag(tenantId: string): Promise<GlobalReadLag> {
    const checked = checkTenant(tenantId);
    const rows = await this.#read<{ oldest_open_xid: string | null; oldest_xact_start: Date | null; held_count: number; held_oldest_recorded_at: string | null }>(
      checked,
      LAG_SQL,
      [checked],
    );
    const row = rows[0];
    const heldOldestMs = row?.held_oldest_recorded_at == null ? Number.NaN : Date.parse(row.held_oldest_recorded_at);
    return {
      oldestOpenXid: row?.oldest_open_xid ?? null,
      oldestOpenXactStartedAt: row?.oldest_xact_start == null ? null : row.oldest_xact_start.toISOString(),
      eventsHeldBack: row?.held_count ?? 0,
      heldBackMs: Number.isFinite(heldOldestMs) ? Math.max(0, Date.now() - heldOldestMs) : 0,
    };
  }

  async #read<R extends object>(tenantId: string, text: string, values: readonly unknown[]): Promise<R[]> {
    const query = async (client: PoolClient): Promise<R[]> => (await client.query<R>(text, [...values])).rows;
    return withTenant(this.#pool, tenantId, query, { readOnly: true }).catch(
      (error: unknown) => {
        throw unavailableError(error) ?? error;
      },
    );
  }
}

/** `fn` with a connection of `pool`, which goes back to the pool unless it lost its server. */
function withStoreClient<T>(pool: ClientPool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return withPooledClient(pool, fn, { keepAfter: (error) => unavailableError(error) === undefined });
}

function toStoredEvent(row: EventRow): StoredEvent {
  return {
    eventId: row.event_id,
    tenantId: row.tenant_id,
    ledgerId: row.ledger_id,
    ledgerVersion: Number(row.ledger_version),
    type: row.type,
    schemaVersion: row.schema_version,
    data: row.data,
    recordedAt: row.recorded_at,
    effectiveAt: row.effective_at,
    correlationId: row.correlation_id,
    causationId: row.causation_id,
    metadata: row.metadata,
    previousHash: row.previous_hash,
    hash: row.hash,
  };
}

/**
 * A row of {@link READ_ALL_STATEMENT} as the event and position `readAll` returns: the values
 * node-postgres' default parsers would give (`toStoredEvent`'s), parsed here from the texts.
 * `ledger_version` (int8) and `schema_version` (int4) are the server's integer texts, which
 * `Number` reads as `parseInt` does; `json` columns are parsed by {@link parseEventDataJson} and
 * {@link parseMetadataJson}, which return what `JSON.parse` does.
 */
function globalEventOf(row: GlobalRow): GlobalEvent {
  const data = row[6] as string | null;
  const metadata = row[11] as string | null;
  const event: StoredEvent = {
    eventId: row[0] as string,
    tenantId: row[1] as string,
    ledgerId: row[2] as string,
    ledgerVersion: Number(row[3]),
    type: row[4] as string,
    schemaVersion: Number(row[5]),
    data: (data === null ? null : parseEventDataJson(data)) as JsonObject,
    recordedAt: row[7] as string,
    effectiveAt: row[8] as string,
    correlationId: row[9] as string | null,
    causationId: row[10] as string | null,
    metadata: (metadata === null ? null : parseMetadataJson(metadata)) as Readonly<Record<string, string>>,
    previousHash: row[12] as string,
    hash: row[13] as string,
  };
  return { position: encodeCursor({ txid: row[14] as string, position: row[15] as string }), event };
}

/**
 * `JSON.parse(text)` of an event's `metadata` column, without the call for the usual `{}` (a new
 * empty object each time, as `JSON.parse` makes). Exported for its tests only.
 */
export function parseMetadataJson(text: string): unknown {
  return text === '{}' ? {} : JSON.parse(text);
}

/** Opening of a `TransferPosted` data text written canonically (sorted keys, no whitespace). */
const TRANSFER_DATA_OPENING = '{"metadata":{';

/**
 * `JSON.parse(text)` of an event's `data` column: the same value, with its keys in the same
 * order, read faster for the commonest text, a `TransferPosted`'s data as the codec writes it
 * (canonical: keys sorted, no whitespace, every string plain), which a `json` column returns
 * byte for byte. That text is read with a few comparisons and one slice per string instead of
 * `JSON.parse`'s general scan (about 0.9 µs less for a two-posting transfer, a sixth of a
 * page's parsing). Anything else — another shape, a key out of place, whitespace, a string with
 * an escape or a control character, a metadata key `__proto__` (which `JSON.parse` makes an own
 * property and an assignment would not) — goes to `JSON.parse` whole. Exported for its tests only.
 */
export function parseEventDataJson(text: string): unknown {
  return transferDataOf(text) ?? JSON.parse(text);
}

/** The canonical `TransferPosted` data `text` holds, or `undefined` when it is anything else (see {@link parseEventDataJson}). */
function transferDataOf(text: string): Record<string, unknown> | undefined {
  if (!text.startsWith(TRANSFER_DATA_OPENING)) return undefined;
  const reader = new PlainJsonReader(text, TRANSFER_DATA_OPENING.length);
  const metadata: Record<string, string> = {};
  if (!reader.skip('}')) {
    do {
      const key = reader.string();
      if (key === undefined || key === '__proto__' || !reader.skip(':')) return undefined;
      const value = reader.string();
      if (value === undefined) return undefined;
      metadata[key] = value;
    } while (reader.skip(','));
    if (!reader.skip('}')) return undefined;
  }
  if (!reader.skip(',"postings":[')) return undefined;
  const postings: Record<string, string>[] = [];
  do {
    if (!reader.skip('{"accountId":')) return undefined;
    const accountId = reader.string();
    if (accountId === undefined || !reader.skip(',"amount":')) return undefined;
    const amount = reader.string();
    if (amount === undefined || !reader.skip(',"currency":')) return undefined;
    const currency = reader.string();
    if (currency === undefined || !reader.skip(',"side":')) return undefined;
    const side = reader.string();
    if (side === undefined || !reader.skip('}')) return undefined;
    postings.push({ accountId, amount, currency, side });
  } while (reader.skip(','));
  if (!reader.skip(']')) return undefined;
  // Built in the text's key order, as `JSON.parse` builds it.
  const data: Record<string, unknown> = { metadata, postings };
  if (reader.skip(',"reference":')) {
    const reference = reader.string();
    if (reference === undefined) return undefined;
    data['reference'] = reference;
  }
  if (reader.skip(',"reversalOf":')) {
    const reversalOf = reader.string();
    if (reversalOf === undefined) return undefined;
    data['reversalOf'] = reversalOf;
  }
  if (!reader.skip(',"transferId":')) return undefined;
  const transferId = reader.string();
  if (transferId === undefined || !reader.skip('}') || !reader.atEnd()) return undefined;
  data['transferId'] = transferId;
  return data;
}

/** Reads a JSON text of known layout from left to right; see {@link transferDataOf}. */
class PlainJsonReader {
  readonly #text: string;
  #at: number;

  constructor(text: string, at: number) {
    this.#text = text;
    this.#at = at;
  }

  /** Steps over `expected` when the text goes on with it. */
  skip(expected: string): boolean {
    if (!this.#text.startsWith(expected, this.#at)) return false;
    this.#at += expected.length;
    return true;
  }

  atEnd(): boolean {
    return this.#at === this.#text.length;
  }

  /**
   * The JSON string that starts here, when it is plain: no escape (`\`) and no control character
   * (below U+0020, which `JSON.parse` refuses raw), so its value is the text between its quotes.
   * `undefined` otherwise (the caller then leaves the whole text to `JSON.parse`).
   */
  string(): string | undefined {
    const text = this.#text;
    if (text.charCodeAt(this.#at) !== QUOTE) return undefined;
    const start = this.#at + 1;
    for (let i = start; i < text.length; i += 1) {
      const code = text.charCodeAt(i);
      if (code === QUOTE) {
        this.#at = i + 1;
        return text.slice(start, i);
      }
      if (code === BACKSLASH || code < 0x20) return undefined;
    }
    return undefined;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The event at `offset` is recorded before the event it follows (the port's check 5, or 6 for the first). */
function recordedEarlier(offset: number): InvalidInputError {
  return new InvalidInputError([{ path: ['events', offset, 'recordedAt'], message: 'must not be earlier than the recordedAt of the event before it: recorded times never decrease along a stream' }]);
}

/** Maps the database's refusals of an append to the port's typed errors. */
function appendError(error: unknown, expectedVersion: number): unknown {
  if (!isDatabaseError(error)) return error;
  switch (error.code) {
    case VERSION_CONFLICT_SQLSTATE: {
      const actual = Number(error.detail);
      return new VersionConflictError(expectedVersion, Number.isSafeInteger(actual) ? actual : undefined);
    }
    case DUPLICATE_INDEX_KEY_SQLSTATE:
      return new DuplicateIndexKeyError(error.detail ?? 'unknown');
    case RECORDED_EARLIER_SQLSTATE:
      return recordedEarlier(0);
    case '40001': // serialization_failure
    case '40P01': // deadlock_detected
      return new VersionConflictError(expectedVersion);
    default:
      return error;
  }
}

/** An error the server answered with (node-postgres' `DatabaseError`, told by its fields: the pool may use another copy of pg). */
function isServerError(error: unknown): error is Error & { code: string } {
  const fields = error as { readonly code?: unknown; readonly severity?: unknown } | null | undefined;
  return error instanceof Error && typeof fields?.code === 'string' && /^[0-9A-Z]{5}$/.test(fields.code) && typeof fields.severity === 'string';
}

/** Whether a server's error is one the same statement may not meet next time (tenant-rls' `isTransientSqlstate`, the runner's answer too). */
function isTransient(error: Error & { code: string }): boolean {
  return isTransientSqlstate(error.code);
}

/**
 * An append's error the store knows wrote nothing, as `AppendRefusedError`: an error the server
 * answered one of its statements with (the statement, and the transaction or statement batch it
 * was part of, rolled back; a COMMIT that rolled back is one too). A connection lost on the way
 * is not one (`unavailableError` comes first), nor the port's own refusals, which pass unchanged.
 */
function refusedError(error: unknown): unknown {
  if (error instanceof TransactionAbortedError) return new AppendRefusedError(`the append's transaction rolled back at its COMMIT; nothing was written`, error, true);
  if (!isServerError(error)) return error;
  return new AppendRefusedError(`PostgreSQL refused the append (SQLSTATE ${error.code}: ${error.message}); nothing was written`, error, isTransient(error));
}

/**
 * The connection handed to an inline projection, which tells `record` of every error a `query` of
 * it fails with (and otherwise is the connection itself): a hook that catches such an error has
 * doomed the append's transaction, and the store reports that error as the reason (see
 * {@link refusedAfterCaughtError}). Both of node-postgres' ways are watched: the promise `query`
 * returns, and the callback given as its last argument or as a query config's `callback`.
 */
function recordingFailures(client: PoolClient, record: (error: unknown) => void): PoolClient {
  const watched = (callback: (...results: unknown[]) => unknown) =>
    function (this: unknown, ...results: unknown[]): unknown {
      if (results[0] !== null && results[0] !== undefined) record(results[0]);
      return Reflect.apply(callback, this, results);
    };
  return new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property !== 'query') return value.bind(target);
      return (...args: unknown[]): unknown => {
        const last = args.length - 1;
        const config = args[0] as { readonly callback?: unknown; readonly submit?: unknown } | null | undefined;
        if (typeof args[last] === 'function') args[last] = watched(args[last] as (...results: unknown[]) => unknown);
        else if (typeof config === 'object' && config !== null && typeof config.submit !== 'function' && typeof config.callback === 'function') {
          args[0] = { ...config, callback: watched(config.callback as (...results: unknown[]) => unknown) };
        }
        const result: unknown = Reflect.apply(value, target, args);
        // A branch of its own: the hook still gets the rejection from the promise it holds.
        if (typeof (result as { then?: unknown } | null)?.then === 'function') (result as Promise<unknown>).then(undefined, record);
        return result;
      };
    },
  });
}

/**
 * The append's transaction rolled back at its COMMIT because the inline projection caught the
 * error of one of its statements: refused, with that error as the cause, retriable by its SQLSTATE
 * class as a statement error that reached the store would be.
 */
function refusedAfterCaughtError(aborted: TransactionAbortedError, error: unknown): AppendRefusedError {
  const what = isServerError(error) ? `SQLSTATE ${error.code}: ${error.message}` : String(error);
  const retriable = isServerError(error) ? isTransient(error) : true;
  return new AppendRefusedError(`the inline projection caught the error of one of its statements (${what}), so the append's transaction rolled back at its COMMIT (${aborted.message}); nothing was written`, error, retriable);
}

/**
 * What an inline projection threw inside an append's transaction, before its COMMIT: the append
 * rolls back with it, so it is an `AppendRefusedError`, retriable as the error says (its own
 * `retriable`, else by SQLSTATE for a server's error, else not). A lost connection passes as it is
 * (the store reports it as `StoreUnavailableError`), and so does an `AppendRefusedError`.
 */
function refusedByInline(error: unknown): unknown {
  const code = (error as { readonly code?: unknown } | null | undefined)?.code;
  if (code === 'append_refused' || code === 'store_unavailable' || isConnectionLoss(error, 0)) return error;
  const own = (error as { readonly retriable?: unknown } | null | undefined)?.retriable;
  const retriable = typeof own === 'boolean' ? own : isServerError(error) && isTransient(error);
  return new AppendRefusedError(`the inline projection failed, and the append with it (nothing was written): ${error instanceof Error ? error.message : String(error)}`, error, retriable);
}

/** SQLSTATEs of a server that is going away, coming up or refusing sessions (class 08 is matched as a whole). */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57P05', '53300']);
/** Socket errors of a server that cannot be reached. */
const UNAVAILABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND']);
/** node-postgres reports a lost or timed-out connection with these code-less messages. */
const UNAVAILABLE_MESSAGE = /^(Connection terminated unexpectedly|Connection terminated due to connection timeout|timeout expired|timeout exceeded when trying to connect|Client has encountered a connection error and is not queryable|Query read timeout)$/;

/**
 * Maps an error that means the server could not be reached, or went away mid-call, to the
 * port's retriable `StoreUnavailableError`; `undefined` for any other error. For an append the
 * outcome is then unknown: its commit may have happened before the connection was lost.
 */
function unavailableError(error: unknown): StoreUnavailableError | undefined {
  // Already one (by its code: an inline projection may throw another copy of ledger-core's), or not a loss.
  if ((error as { readonly code?: unknown } | null | undefined)?.code === 'store_unavailable' || !isConnectionLoss(error, 0)) return undefined;
  return new StoreUnavailableError(`PostgreSQL is unavailable: ${error instanceof Error ? error.message : String(error)}`, error);
}

function isConnectionLoss(error: unknown, depth: number): boolean {
  if (!(error instanceof Error) || depth > 3) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_SOCKET_CODES.has(code))) return true;
  if (UNAVAILABLE_MESSAGE.test(error.message)) return true;
  // A host name with several addresses fails with an AggregateError of one error per address.
  if (error instanceof AggregateError && error.errors.some((inner) => isConnectionLoss(inner, depth + 1))) return true;
  return isConnectionLoss(error.cause, depth + 1);
}

function isDatabaseError(error: unknown): error is Error & { code: string; detail?: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

/**
 * Refuses, with `InvalidInputError`, a request that is not an object (at `request`) or whose
 * `arrayField` is not an array (at that field): reading either would be a `TypeError`.
 */
function checkRequest<T extends object>(request: T, arrayField?: keyof T & string): void {
  if (typeof request !== 'object' || request === null) throw new InvalidInputError([{ path: ['request'], message: 'must be a request object' }]);
  if (arrayField !== undefined && !Array.isArray(request[arrayField])) throw new InvalidInputError([{ path: [arrayField], message: 'must be an array' }]);
}

function checkTenant(tenantId: string): string {
  if (!isTenantId(tenantId)) throw new InvalidInputError([{ path: ['tenantId'], message: ID_PATTERN_MESSAGE }]);
  return tenantId;
}

/** A ledger id an event or snapshot may be written under: ledger-core's `ID_PATTERN`. */
function checkLedgerId(ledgerId: string): string {
  if (typeof ledgerId !== 'string' || !ID_PATTERN.test(ledgerId)) {
    throw new InvalidInputError([{ path: ['ledgerId'], message: ID_PATTERN_MESSAGE }]);
  }
  return ledgerId;
}

/**
 * A text a call may send as a parameter: a string without NUL, which PostgreSQL text cannot hold,
 * and without an unpaired UTF-16 surrogate, which the driver would send as U+FFFD (a snapshot's
 * hash would then be stored other than it was given).
 */
function checkText(value: string, path: readonly (string | number)[]): string {
  if (typeof value !== 'string' || !isStorableText(value)) throw new InvalidInputError([{ path, message: `must be a string that ${STORABLE_TEXT_MESSAGE}` }]);
  return value;
}

function checkLimit(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new LimitExceededError(`${what} must be an integer in ${min}..${max}, got ${value}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
