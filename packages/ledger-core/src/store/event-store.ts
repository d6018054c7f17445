import type { GlobalEvent, JsonObject, StoredEvent } from '../events/stored-event.js';

/** Most events one append may carry. */
export const APPEND_EVENTS_MAX = 50_000;
/** Most events one read may return. */
export const READ_LIMIT_MAX = 10_000;
/** Most keys one index lookup may ask for. */
export const INDEX_KEYS_MAX = 30_000;

/** Append a batch of events to one ledger stream. */
export interface AppendRequest {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** The stream's version the events were decided against; 0 for a new stream. */
  readonly expectedVersion: number;
  /** Events numbered `expectedVersion + 1 ...` in order, each with this tenant and ledger. */
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
  /** Position of the last event already seen, or `null` to start at the beginning. */
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
   * refuses the later one; it never interleaves them. Also rejects
   * (writing nothing) events whose tenant, ledger or version numbering do not match the request,
   * and, with `DuplicateIndexKeyError`, events claiming an index key the ledger already holds.
   * A refused append (those errors, or a validation error) writes nothing. Nothing a reader could
   * not read is ever written: every event goes through `appendableDataJson` first, which trusts
   * events `EventCodec.encode` built and checks any other as a reader would (plus its hash),
   * refusing a bad one with `InvalidInputError` at `events.<n>`. When the store cannot
   * be reached or the connection breaks during the call, it throws `StoreUnavailableError` and the
   * outcome is unknown — the batch may have committed — but it is all or nothing, never partial.
   * Resolves with the stream's new version.
   */
  append(request: AppendRequest): Promise<{ readonly ledgerVersion: number }>;

  /** Reads up to `limit` events of one stream in the given direction; an empty array past the end. */
  readStream(request: ReadStreamRequest): Promise<StoredEvent[]>;

  /**
   * Reads up to `limit` events of the tenant's global log after `after`. Every committed event
   * appears exactly once, in an order consistent with each stream's versions, and an event is
   * never returned after one that follows it: a reader that resumes from the last position it
   * saw never misses an event committed later by a slower transaction.
   */
  readAll(request: ReadAllRequest): Promise<GlobalEvent[]>;

  /** Returns, for each key the ledger holds, the event that claimed it; absent keys are omitted. */
  findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>>;

  /**
   * Stores a snapshot, replacing the ledger's snapshot of the same or an earlier version; one of
   * an earlier version than the stored one (saved late by a slower writer) is dropped.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>;

  /** The ledger's latest snapshot, or `null`. */
  loadSnapshot(request: { readonly tenantId: string; readonly ledgerId: string }): Promise<Snapshot | null>;
}
