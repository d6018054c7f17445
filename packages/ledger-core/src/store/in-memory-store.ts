import { ID_PATTERN, ID_PATTERN_MESSAGE } from '../domain/limits.js';
import { DuplicateIndexKeyError, InvalidInputError, LimitExceededError, VersionConflictError } from '../errors.js';
import { appendableDataJson, EventCodec, indexKeysOf } from '../events/codec.js';
import { isStorableText, STORABLE_TEXT_MESSAGE } from '../events/schemas.js';
import { checkCollaborator, checkOptions } from '../input/options.js';
import { CurrencyRegistry } from '../money/currency.js';
import { snapshotStateJson } from './snapshot-content.js';
import { GENESIS_HASH, type GlobalEvent, type JsonObject, type StoredEvent } from '../events/stored-event.js';
import {
  APPEND_DATA_CHARS_MAX,
  APPEND_EVENTS_MAX,
  INDEX_KEYS_MAX,
  READ_LIMIT_MAX,
  type AppendRequest,
  type EventStore,
  type FindByIndexKeysRequest,
  type ReadAllRequest,
  type ReadStreamRequest,
  type Snapshot,
} from './event-store.js';

interface LedgerStream {
  readonly events: StoredEvent[];
  readonly index: Map<string, StoredEvent>;
}

interface TenantLog {
  readonly global: GlobalEvent[];
  readonly ledgers: Map<string, LedgerStream>;
  readonly snapshots: Map<string, Snapshot>;
}

const POSITION_DIGITS = 16;
/** The global positions this store hands out: fixed-width decimal, so string order is numeric order. */
const POSITION_PATTERN = /^\d{16}$/;

/**
 * An `EventStore` in process memory: for tests, demos and single-process tools. Appends are
 * atomic because they run synchronously; stored events are deep-copied and frozen, so callers
 * can neither alter what was written nor be surprised by later changes.
 */
export class InMemoryEventStore implements EventStore {
  readonly #tenants = new Map<string, TenantLog>();
  readonly #verifier: EventCodec;
  #position = 0;

  /**
   * @param options.codec checks appended events that `EventCodec.encode` did not build (see
   *   `appendableDataJson`); give it the ledger's currencies and upcasters. Default: a codec with
   *   the built-in currencies and upcasters. Options that are not an object (`null`, say) are
   *   refused with `InvalidInputError` at `options`, and a `codec` without a `verify` method at
   *   `codec` (checked by shape: a codec of another copy of ledger-core serves as well).
   */
  constructor(options: { readonly codec?: EventCodec } = {}) {
    checkOptions(options);
    checkCollaborator(options.codec, 'codec', ['verify'], 'an EventCodec');
    this.#verifier = options.codec ?? new EventCodec({ currencies: new CurrencyRegistry() });
  }

  /**
   * Appends a batch (see the `EventStore` port), checking in the port's order: the batch's size,
   * the tenant and ledger ids, `expectedVersion`, each event's readability and the size of their
   * data, each event's shape (recorded times included), then the fence, the first event's
   * recorded time against the stream's last, and the index keys.
   */
  async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
    checkLimit(request.events.length, 0, APPEND_EVENTS_MAX, 'events per append');
    checkIds(request.tenantId, { id: request.ledgerId, writing: true });
    const expected = request.expectedVersion;
    // A malformed argument, not a conflict: VersionConflictError would invite a retry.
    if (!Number.isSafeInteger(expected) || expected < 0) throw new InvalidInputError([{ path: ['expectedVersion'], message: 'must be a non-negative integer' }]);
    // The batch's shape before the stream's state: a malformed batch gets the same answer whatever the stream holds.
    let dataChars = 0;
    request.events.forEach((event, offset) => {
      dataChars += appendableDataJson(event, offset, this.#verifier).length;
      if (dataChars > APPEND_DATA_CHARS_MAX) throw dataTooLong(offset);
    });
    request.events.forEach((event, offset) => checkEventShape(request, event, offset));
    const stream = this.#stream(request.tenantId, request.ledgerId);
    const current = stream.events.length;
    if (current !== expected) throw new VersionConflictError(expected, current);
    const first = request.events[0];
    if (first !== undefined && first.previousHash !== (stream.events[current - 1]?.hash ?? GENESIS_HASH)) {
      // The chain fence: the batch was decided after some other event than the stream's last.
      throw new VersionConflictError(expected, current);
    }
    const below = stream.events[current - 1];
    if (first !== undefined && below !== undefined && first.recordedAt < below.recordedAt) throw recordedEarlier(0);
    const claimed = new Set<string>();
    for (const event of request.events) {
      for (const key of indexKeysOf(event)) {
        if (stream.index.has(key) || claimed.has(key)) throw new DuplicateIndexKeyError(key);
        claimed.add(key);
      }
    }
    const tenant = this.#tenant(request.tenantId);
    for (const original of request.events) {
      const event = deepFreeze(structuredClone(original));
      stream.events.push(event);
      for (const key of indexKeysOf(event)) stream.index.set(key, event);
      this.#position += 1;
      tenant.global.push({ position: String(this.#position).padStart(POSITION_DIGITS, '0'), event });
    }
    return { ledgerVersion: stream.events.length };
  }

  /**
   * Reads one stream (see the `EventStore` port); a `direction` other than `'forward'` or
   * `'backward'` and a `fromVersion` that is not an integer are refused with `InvalidInputError`.
   */
  async readStream(request: ReadStreamRequest): Promise<StoredEvent[]> {
    checkLimit(request.limit, 1, READ_LIMIT_MAX, 'read limit');
    checkIds(request.tenantId, { id: request.ledgerId, writing: false });
    const direction: unknown = request.direction;
    if (direction !== 'forward' && direction !== 'backward') throw new InvalidInputError([{ path: ['direction'], message: "must be 'forward' or 'backward'" }]);
    if (request.fromVersion !== undefined && !Number.isSafeInteger(request.fromVersion)) throw new InvalidInputError([{ path: ['fromVersion'], message: 'must be an integer' }]);
    const events = this.#tenants.get(request.tenantId)?.ledgers.get(request.ledgerId)?.events ?? [];
    if (request.direction === 'forward') {
      const from = Math.max(request.fromVersion ?? 1, 1);
      return events.slice(from - 1, from - 1 + request.limit);
    }
    const from = Math.min(request.fromVersion ?? events.length, events.length);
    if (from < 1) return [];
    return events.slice(Math.max(from - request.limit, 0), from).reverse();
  }

  /**
   * Reads the tenant's global log (see the `EventStore` port). An `after` that is not a position
   * of this store's form (16 decimal digits) is refused with `InvalidInputError` at `after`.
   */
  async readAll(request: ReadAllRequest): Promise<GlobalEvent[]> {
    checkLimit(request.limit, 1, READ_LIMIT_MAX, 'read limit');
    checkIds(request.tenantId);
    const after: unknown = request.after;
    if (after !== null && (typeof after !== 'string' || !POSITION_PATTERN.test(after))) {
      throw new InvalidInputError([{ path: ['after'], message: 'not a position returned by this store' }]);
    }
    const global = this.#tenants.get(request.tenantId)?.global ?? [];
    let start = 0;
    if (request.after !== null) {
      // Positions are fixed-width decimal strings, so string order is numeric order.
      let low = 0;
      let high = global.length;
      while (low < high) {
        const mid = (low + high) >>> 1;
        if ((global[mid] as GlobalEvent).position <= request.after) low = mid + 1;
        else high = mid;
      }
      start = low;
    }
    return global.slice(start, start + request.limit);
  }

  /**
   * Returns, for each key the ledger's index holds, the event that claimed it (see the `EventStore`
   * port); keys it does not hold, and every key of a ledger or tenant with no events, are left out.
   * More than `INDEX_KEYS_MAX` keys are refused with `LimitExceededError`; a bad tenant or ledger id,
   * or a key that is not a storable string, with `InvalidInputError` at the field, before anything
   * is read.
   */
  async findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
    checkLimit(request.keys.length, 0, INDEX_KEYS_MAX, 'index keys per lookup');
    checkIds(request.tenantId, { id: request.ledgerId, writing: false });
    request.keys.forEach((key, i) => checkStorable(key, ['keys', i]));
    const index = this.#tenants.get(request.tenantId)?.ledgers.get(request.ledgerId)?.index;
    const found = new Map<string, StoredEvent>();
    if (index === undefined) return found;
    for (const key of request.keys) {
      const event = index.get(key);
      if (event !== undefined) found.set(key, event);
    }
    return found;
  }

  /**
   * Stores a snapshot (see the `EventStore` port), checking in `PostgresEventStore`'s order and
   * refusing with `InvalidInputError` at the field, before anything is stored: the tenant and
   * ledger ids (`ID_PATTERN`); a `ledgerVersion` that is not a non-negative integer; a `hash`
   * that is not a string without NUL or unpaired surrogates; a `schemaVersion` that is not an
   * integer in 0..2,147,483,647; and a `state` that is not a JSON
   * object a store can hold (a BigInt, a NUL character or an unpaired surrogate in it). The state
   * is stored as its JSON, as `PostgresEventStore` stores it: `loadSnapshot` gives back what
   * `JSON.stringify` kept (no `undefined` members; a `Date` as its ISO string).
   */
  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    checkIds(snapshot.tenantId, { id: snapshot.ledgerId, writing: true });
    const state = JSON.parse(snapshotStateJson(snapshot)) as JsonObject;
    const snapshots = this.#tenant(snapshot.tenantId).snapshots;
    // A slower writer's snapshot of an earlier version must not replace a newer one.
    if ((snapshots.get(snapshot.ledgerId)?.ledgerVersion ?? -1) > snapshot.ledgerVersion) return;
    const stored: Snapshot = {
      tenantId: snapshot.tenantId,
      ledgerId: snapshot.ledgerId,
      ledgerVersion: snapshot.ledgerVersion,
      hash: snapshot.hash,
      schemaVersion: snapshot.schemaVersion,
      state,
    };
    snapshots.set(snapshot.ledgerId, deepFreeze(stored));
  }

  /**
   * The ledger's latest snapshot, or `null` (see the `EventStore` port); a `tenantId` off
   * `ID_PATTERN` and a `ledgerId` that is not a string without NUL or unpaired surrogates are
   * refused with `InvalidInputError`.
   */
  async loadSnapshot(request: { tenantId: string; ledgerId: string }): Promise<Snapshot | null> {
    checkIds(request.tenantId, { id: request.ledgerId, writing: false });
    return this.#tenants.get(request.tenantId)?.snapshots.get(request.ledgerId) ?? null;
  }

  #tenant(tenantId: string): TenantLog {
    let tenant = this.#tenants.get(tenantId);
    if (tenant === undefined) {
      tenant = { global: [], ledgers: new Map(), snapshots: new Map() };
      this.#tenants.set(tenantId, tenant);
    }
    return tenant;
  }

  #stream(tenantId: string, ledgerId: string): LedgerStream {
    const tenant = this.#tenant(tenantId);
    let stream = tenant.ledgers.get(ledgerId);
    if (stream === undefined) {
      stream = { events: [], index: new Map() };
      tenant.ledgers.set(ledgerId, stream);
    }
    return stream;
  }
}

/**
 * Throws `InvalidInputError` unless the event at `offset` belongs where the request appends it:
 * the request's tenant and ledger, the version after the one before it, and (after the first,
 * which the fence checks against the stream) the hash of the event before it as `previousHash`.
 */
function checkEventShape(request: AppendRequest, event: StoredEvent, offset: number): void {
  const issue = (field: string, message: string): InvalidInputError => new InvalidInputError([{ path: ['events', offset, field], message }]);
  if (event.tenantId !== request.tenantId) throw issue('tenantId', 'must be the tenant the append is for');
  if (event.ledgerId !== request.ledgerId) throw issue('ledgerId', 'must be the ledger the append is for');
  const version = request.expectedVersion + offset + 1;
  if (event.ledgerVersion !== version) throw issue('ledgerVersion', `must be ${version} (expectedVersion + ${offset + 1}), got ${String(event.ledgerVersion)}`);
  if (offset > 0 && event.previousHash !== request.events[offset - 1]?.hash) throw issue('previousHash', 'must be the hash of the event before it in the batch');
  // Stored recorded times are all ISO-8601 UTC with milliseconds (the readability check saw to
  // it), so comparing the strings compares the instants.
  if (offset > 0 && event.recordedAt < (request.events[offset - 1] as StoredEvent).recordedAt) throw recordedEarlier(offset);
}

/** The event at `offset` is recorded before the event it follows: recorded times never decrease along a stream. */
function recordedEarlier(offset: number): InvalidInputError {
  return new InvalidInputError([{ path: ['events', offset, 'recordedAt'], message: 'must not be earlier than the recordedAt of the event before it: recorded times never decrease along a stream' }]);
}

/**
 * The ids a call names, checked as `PostgresEventStore` checks them: the tenant id, and the
 * ledger id of a write, must match `ID_PATTERN`; the ledger id of a read (a stream never written
 * finds nothing) must be a string a store can hold. Else `InvalidInputError` at the field.
 */
function checkIds(tenantId: unknown, ledger?: { readonly id: unknown; readonly writing: boolean }): void {
  if (!isId(tenantId)) throw new InvalidInputError([{ path: ['tenantId'], message: ID_PATTERN_MESSAGE }]);
  if (ledger === undefined) return;
  if (!ledger.writing) checkStorable(ledger.id, ['ledgerId']);
  else if (!isId(ledger.id)) throw new InvalidInputError([{ path: ['ledgerId'], message: ID_PATTERN_MESSAGE }]);
}

function isId(value: unknown): boolean {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

function checkStorable(value: unknown, path: readonly (string | number)[]): void {
  if (typeof value !== 'string' || !isStorableText(value)) throw new InvalidInputError([{ path, message: `must be a string that ${STORABLE_TEXT_MESSAGE}` }]);
}

function checkLimit(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new LimitExceededError(`${what} must be an integer in ${min}..${max}, got ${value}`);
}

/** The batch's data JSON text passed {@link APPEND_DATA_CHARS_MAX} at the event at `offset`. */
function dataTooLong(offset: number): LimitExceededError {
  return new LimitExceededError(`the events' data JSON text must be at most ${APPEND_DATA_CHARS_MAX} characters per append; it passed that at events.${offset}`);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
