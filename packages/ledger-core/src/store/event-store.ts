import type { GlobalEvent, JsonObject, StoredEvent } from '../events/stored-event.js';

/** Most events one append may carry. */
export const APPEND_EVENTS_MAX = 50_000;
/**
 * Most characters of event `data`, as JSON text (what `appendableDataJson` returns), one append
 * may carry, summed over its events: 2^28 (268,435,456). A JavaScript string holds at most about
 * twice that, so a store can send a batch's data as one text; and 50,000 of the largest events
 * the domain's limits allow (~11,000 characters each: 32 postings, a reference, 4 KB of metadata)
 * would not fit in that string. About 24,000 of them fit in this limit; `LedgerWriter` ends a
 * batch before it.
 */
export const APPEND_DATA_CHARS_MAX = 2 ** 28;
/** Most events one read may return. */
export const READ_LIMIT_MAX = 10_000;
/** Most keys one index lookup may ask for. */
export const INDEX_KEYS_MAX = 30_000;

/** Append a batch of events to one ledger stream. */
export interface AppendRequest {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** The stream's version the events were decided against; 0 for a new stream. A non-negative integer. */
  readonly expectedVersion: number;
  /**
   * Events numbered `expectedVersion + 1 ...` in order, each with this tenant and ledger, each
   * after the first with the `hash` of the one before it as its `previousHash`, and none
   * recorded before the one before it (recorded times never decrease along a stream). At most
   * {@link APPEND_EVENTS_MAX}, holding at most {@link APPEND_DATA_CHARS_MAX} characters of data
   * JSON in all; none is a fenced no-op (see {@link EventStore.append}).
   */
  readonly events: readonly StoredEvent[];
}

/** Read one ledger stream in version order. */
export interface ReadStreamRequest {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** `forward`: ascending from `fromVersion` (default 1); `backward`: descending from `fromVersion` (default the last). */
  readonly direction: 'forward' | 'backward';
  /** First version to return (inclusive). */
  readonly fromVersion?: number;
  /** Most events to return: 1 ..{@link READ_LIMIT_MAX}. */
  readonly limit: number;
}

/** Read a tenant's global log: every ledger's events in one order that never skips an event. */
export interface ReadAllRequest {
  readonly tenantId: string;
  /**
   * `null` to start at the beginning, or the `position` of the last event already seen: a
   * position this store returned. Any other string is refused (see {@link EventStore.readAll}).
   */
  readonly after: string | null;
  /** Most events to return: 1 ..{@link READ_LIMIT_MAX}. */
  readonly limit: number;
}

/** Look up the events that claimed idempotency-index keys (see `indexKeysOf`). */
export interface FindByIndexKeysRequest {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** At most {@link INDEX_KEYS_MAX} keys. */
  readonly keys: readonly string[];
}

/** A ledger's state at a version, serialized, so a writer need not replay from the start. */
export interface Snapshot {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** Version of the last event folded into `state`. */
  readonly ledgerVersion: number;
  /** Hash of that event; a loader checks it against the stream before trusting the snapshot. */
  readonly hash: string;
  /** Version of the serialized state's shape. */
  readonly schemaVersion: number;
  readonly state: JsonObject;
}

/**
 * The port every event store implements. All methods are scoped to one tenant; a store never
 * returns another tenant's events. Implementable by PostgreSQL (a table with a unique
 * `(tenant, ledger, version)` key and a commit-ordered global read) and by EventStoreDB (a
 * stream per ledger appended with an expected revision, `$all` read by position).
 *
 * Every method checks the ids it is given before it reads or writes anything, after the size
 * limit of its request (`LimitExceededError`), and refuses a bad one with `InvalidInputError` at
 * the field: a `tenantId` that is not a string matching `ID_PATTERN`; for `append` and
 * `saveSnapshot`, a `ledgerId` that is not one either; for the reads (`readStream`,
 * `findByIndexKeys`, `loadSnapshot`), a `ledgerId`, and for `findByIndexKeys` a key, that is not
 * a string without NUL or unpaired UTF-16 surrogates (any other string finds nothing, as no
 * append could have written it). `readStream` then refuses a `direction` other than `'forward'`
 * or `'backward'` and a `fromVersion` that is not an integer (any integer is a place to start).
 */
export interface EventStore {
  /**
   * Atomically appends `events` to the ledger stream if, and only if, its current version is
   * `expectedVersion` and the first event's `previousHash` is the hash of the stream's event at
   * that version (`GENESIS_HASH` for a new stream); otherwise throws `VersionConflictError` and
   * writes nothing. That second fence makes it safe to send an append before the one below it
   * has been acknowledged: the upper batch can only ever extend the very events it was decided
   * after, so it is refused if the lower one is refused or another writer got there first. A
   * store therefore takes concurrent appends of one stream in the order their fences allow, or
   * refuses the later one; it never interleaves them. Resolves with the stream's new version,
   * `expectedVersion + events.length`.
   *
   * A store checks, in this order, and throws the first failure:
   * 1. at most {@link APPEND_EVENTS_MAX} events, else `LimitExceededError`;
   * 2. the `tenantId`, then the `ledgerId` (see above), else `InvalidInputError` at the field;
   * 3. `expectedVersion` a non-negative integer, else `InvalidInputError` at `expectedVersion`;
   * 4. each event, in batch order, that its readers could read it — it goes through
   *    `appendableDataJson`, which trusts events `EventCodec.encode` built and checks any other
   *    as a reader would (plus its hash), else `InvalidInputError` at `events.<n>` — and that the
   *    data JSON text it returns, added up over the events so far, is at most
   *    {@link APPEND_DATA_CHARS_MAX} characters, else `LimitExceededError`;
   * 5. each event, in batch order, that its `tenantId` and `ledgerId` are the request's and its
   *    `ledgerVersion` is `expectedVersion + n + 1`, and (after the first) that its
   *    `previousHash` is the `hash` of the event before it and its `recordedAt` is not earlier
   *    than that event's, else `InvalidInputError` at `events.<n>.tenantId`, `.ledgerId`,
   *    `.ledgerVersion`, `.previousHash` or `.recordedAt`;
   * 6. the fence above, else `VersionConflictError`; then that the first event's `recordedAt` is
   *    not earlier than that of the stream's event at `expectedVersion`, else `InvalidInputError`
   *    at `events.0.recordedAt` (a reader of the ledger as of a recorded time stops at the first
   *    event recorded after it, and `ledgerkit-audit` with it: an event recorded earlier than the
   *    one before it would be left out of every such answer);
   * 7. that no event claims an index key (`indexKeysOf`) the ledger already holds or another
   *    event of the batch claims, else `DuplicateIndexKeyError`.
   *
   * A malformed request (1 to 5) is refused the same way whatever the stream holds, and never
   * with a retriable error: a caller that retried it would only be refused again. A refused
   * append writes nothing, and nothing a reader could not read is ever written. A store that
   * knows an append failed for another reason before anything of it was written (the database
   * answered a statement with an error, so its transaction rolled back; an inline projection
   * failed before the commit) throws `AppendRefusedError` with the original error as its
   * `cause`, so that a writer can tell its callers the commands were not applied. When the store
   * cannot be reached or the connection breaks during the call, it throws `StoreUnavailableError`
   * and the outcome is unknown — the batch may have committed — but it is all or nothing, never
   * partial.
   *
   * An empty batch (`events: []`) checks the fence's version alone: it resolves with
   * `{ ledgerVersion: expectedVersion }` if the stream is at `expectedVersion` (0 for a stream
   * never written), and throws `VersionConflictError` otherwise. It writes nothing: no event, no
   * global position, no change of version, and a stream it names stays unwritten.
   */
  append(request: AppendRequest): Promise<{ readonly ledgerVersion: number }>;

  /** Reads up to `limit` events of one stream in the given direction; an empty array past the end. */
  readStream(request: ReadStreamRequest): Promise<StoredEvent[]>;

  /**
   * Reads up to `limit` events of the tenant's global log after `after`. Every committed event
   * appears exactly once, in an order consistent with each stream's versions, and an event is
   * never returned after one that follows it: a reader that resumes from the last position it
   * saw never misses an event committed later by a slower transaction.
   *
   * A position is a non-empty string without NUL, opaque to callers. `after` must be `null` or a
   * position this store returned; a string that is not of the form of this store's positions is
   * refused with `InvalidInputError` at `after`, before anything is read (a store need not tell a
   * well-formed position it never returned from one it did).
   *
   * How soon an append's events show here once the append has resolved is the store's own:
   * `PostgresEventStore` holds back events committed after a transaction still open, for up to its
   * `horizonWaitMs`. They may show late, but never behind a position already returned.
   */
  readAll(request: ReadAllRequest): Promise<GlobalEvent[]>;

  /** Returns, for each key the ledger holds, the event that claimed it; absent keys are omitted. */
  findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>>;

  /**
   * Stores a snapshot, replacing the ledger's snapshot of the same or an earlier version; one of
   * an earlier version than the stored one (saved late by a slower writer) is dropped. After the
   * ids, it refuses with `InvalidInputError` at the field, in this order and before storing
   * anything: a `ledgerVersion` that is not a non-negative integer; a `hash` that is not a string
   * without NUL or unpaired surrogates; a `schemaVersion` that is not an integer in
   * 0..2,147,483,647; a `state` that is not a JSON object without NUL characters or unpaired
   * surrogates (a BigInt in it, say); then, with `LimitExceededError`, a `state` over
   * `SNAPSHOT_STATE_BYTES_MAX` bytes of JSON. A refused snapshot never replaces the stored one.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>;

  /** The ledger's latest snapshot, or `null`. */
  loadSnapshot(request: { readonly tenantId: string; readonly ledgerId: string }): Promise<Snapshot | null>;
}
