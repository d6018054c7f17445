import { hasErrorCode } from '../error-code.js';
import { CorruptEventError, InvalidInputError } from '../errors.js';
import { checkCollaborator, checkOptions } from '../input/options.js';
import type { EventDraft } from '../domain/decide.js';
import type { EventMeta } from '../domain/evolve.js';
import type { LedgerEvent, LedgerEventType, Metadata, Posting } from '../domain/types.js';
import { formatAmount, parseAmount } from '../money/amount.js';
import type { CurrencyRegistry } from '../money/currency.js';
import { CANONICAL_DEPTH_MAX, canonicalDataJson, canonicalEncodingWithData, canonicalJson, hashEncoding, hashEvent, isPlainString } from './canonical.js';
import { isPlainEnvelope, isPlainTransferPostedData } from './fast-checks.js';
import { CURRENT_SCHEMA_VERSIONS, eventDataSchemas, isStorableText, STORABLE_TEXT_MESSAGE, storedEventSchema, type WireEventData } from './schemas.js';
import type { JsonObject, JsonValue, StoredEvent } from './stored-event.js';
import { builtInUpcasters, type UpcasterRegistry } from './upcasters.js';

/**
 * A stored event as the codec builds it: the plain fields of `StoredEvent`, plus (private, so
 * invisible to JSON, spreads and equality) the canonical text of its data and the domain event it
 * was encoded from. Private fields, not side tables: a `WeakMap` entry per event doubled the cost
 * of encoding in the garbage collector.
 */
class EncodedEvent implements StoredEvent {
  readonly eventId: string;
  readonly tenantId: string;
  readonly ledgerId: string;
  readonly ledgerVersion: number;
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: JsonObject;
  readonly recordedAt: string;
  readonly effectiveAt: string;
  readonly correlationId: string | null;
  readonly causationId: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly previousHash: string;
  readonly hash: string;
  readonly #dataJson: string;
  readonly #decoded: DecodedEvent;
  readonly #currencies: CurrencyRegistry;

  constructor(unhashed: Omit<StoredEvent, 'hash'>, hash: string, dataJson: string, decoded: DecodedEvent, currencies: CurrencyRegistry) {
    this.eventId = unhashed.eventId;
    this.tenantId = unhashed.tenantId;
    this.ledgerId = unhashed.ledgerId;
    this.ledgerVersion = unhashed.ledgerVersion;
    this.type = unhashed.type;
    this.schemaVersion = unhashed.schemaVersion;
    this.data = unhashed.data;
    this.recordedAt = unhashed.recordedAt;
    this.effectiveAt = unhashed.effectiveAt;
    this.correlationId = unhashed.correlationId;
    this.causationId = unhashed.causationId;
    // A copy unless frozen already: the caller's own object (a command context's) is not frozen under it.
    this.metadata = Object.isFrozen(unhashed.metadata) ? unhashed.metadata : Object.freeze({ ...unhashed.metadata });
    this.previousHash = unhashed.previousHash;
    this.hash = hash;
    this.#dataJson = dataJson;
    this.#decoded = decoded;
    this.#currencies = currencies;
    // A store trusts an encoded event as it is (see appendableDataJson): changed after encoding —
    // another recorded time, type or metadata — it would be written with a hash that no longer
    // matches, into an append-only log. Frozen, so that a change throws in strict mode and is
    // ignored otherwise. The data's stored text is the one made here (`#dataJson`).
    Object.freeze(this.data);
    Object.freeze(this);
  }

  /** The canonical data text of an event the codec encoded, else `undefined`. */
  static dataJsonOf(event: StoredEvent): string | undefined {
    return isObject(event) && #dataJson in event ? (event as EncodedEvent).#dataJson : undefined;
  }

  /** The domain event an event was encoded from, when it was encoded with these currencies. */
  static decodedOf(event: StoredEvent, currencies: CurrencyRegistry): DecodedEvent | undefined {
    return isObject(event) && #decoded in event && (event as EncodedEvent).#currencies === currencies ? (event as EncodedEvent).#decoded : undefined;
  }
}

/** `new Date(ms).toISOString()`, remembered for the last `ms` asked for. */
class IsoTimeCache {
  #ms = Number.NaN;
  #iso = '';
  format(ms: number): string {
    if (ms !== this.#ms) {
      this.#iso = new Date(ms).toISOString();
      this.#ms = ms;
    }
    return this.#iso;
  }
}

/**
 * `Date.parse(iso)`, remembered for the last text asked for: a comparison of two short strings
 * instead of a parse (about 0.1 µs each) for the runs of events a batch records at one time.
 */
class IsoTimeParseCache {
  #iso = '';
  #ms = Number.NaN;
  parse(iso: string): number {
    if (iso !== this.#iso) {
      this.#ms = Date.parse(iso);
      this.#iso = iso;
    }
    return this.#ms;
  }
}

/** Whether `value` may be the right-hand side of `in` (a decoder is handed anything). */
function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

/**
 * The JSON text of an event's `data` for a store's `append`, once the event is known to be one its
 * readers can read. An event `EventCodec.encode` built (in this copy of ledger-core) is trusted as
 * it is: encoding is where events are made valid, and checking it again would cost the write path
 * a decode and a hash per event. Any other event — copied from another store, or built by hand —
 * is checked by `verifier` ({@link EventCodec.verify}: everything a reader checks, and its hash)
 * and refused with an `InvalidInputError` at `events.<offset>` if it fails, so that nothing a
 * reader would refuse reaches an append-only log. Every store calls this for every event before
 * it writes any of them.
 */
export function appendableDataJson(event: StoredEvent, offset: number, verifier: EventCodec): string {
  const known = EncodedEvent.dataJsonOf(event);
  if (known !== undefined) return known;
  try {
    verifier.verify(event);
  } catch (error) {
    // By code: the verifier, a store's option, may be another copy of ledger-core's.
    if (!hasErrorCode(error, ['corrupt_event'])) throw error;
    const { message, cause } = error as Error;
    // An unknown currency or schema version may be the verifier's gap, not the event's.
    const hint = hasErrorCode(cause, ['unknown_currency']) || /upcaster/.test(message) ? ' (if the ledger has its own currencies or upcasters, give the store a codec that has them)' : '';
    throw new InvalidInputError([{ path: ['events', offset], message: `not built by EventCodec.encode, and its readers could not read it: ${message}${hint}` }]);
  }
  return JSON.stringify(event.data);
}

/**
 * JSON text of a stored event's `data`: the canonical text the codec built when it encoded that
 * very event, else `JSON.stringify`. Both parse back to the same value; a store that sends this
 * text saves serializing every event twice.
 */
export function dataJsonOf(event: StoredEvent): string {
  return EncodedEvent.dataJsonOf(event) ?? JSON.stringify(event.data);
}

/** Envelope fields the writer supplies for each event it encodes. */
export interface EnvelopeInput {
  readonly eventId: string;
  readonly tenantId: string;
  readonly ledgerId: string;
  readonly ledgerVersion: number;
  readonly recordedAtMs: number;
  readonly correlationId: string | null;
  readonly causationId: string | null;
  readonly metadata: Metadata;
  readonly previousHash: string;
}

/** A stored event decoded into the domain: the event, and where and when it happened. */
export interface DecodedEvent {
  readonly event: LedgerEvent;
  readonly meta: EventMeta;
}

/** Options of an {@link EventCodec}. */
export interface EventCodecOptions {
  /** Currencies used to convert amounts; must include every custom asset the ledger uses. */
  readonly currencies: CurrencyRegistry;
  /**
   * Upcasters for older schema versions: the steps registered on it, and the library's built-in
   * ones, which every registry holds (see {@link UpcasterRegistry}). Default: the built-in ones.
   */
  readonly upcasters?: UpcasterRegistry;
}

/**
 * Converts between domain events (bigint minor units, epoch ms) and stored events (decimal
 * strings, ISO-8601), computing the hash chain on the way out and validating everything on the
 * way in. A stored event that fails validation, has an unknown type or version, or an amount
 * its currency cannot hold raises a {@link CorruptEventError} naming its ledger version.
 */
export class EventCodec {
  readonly #currencies: CurrencyRegistry;
  readonly #upcasters: UpcasterRegistry;

  /**
   * @param options the ledger's currencies and, optionally, its upcasters. Options that are not an
   *   object are refused with `InvalidInputError` at `options`; `currencies` without a `get`
   *   method at `currencies`, and `upcasters` without an `upcast` method at `upcasters` (checked
   *   by shape: a registry of another copy of ledger-core serves as well).
   */
  constructor(options: EventCodecOptions) {
    checkOptions(options);
    checkCollaborator(options.currencies, 'currencies', ['get'], 'a CurrencyRegistry', true);
    checkCollaborator(options.upcasters, 'upcasters', ['upcast'], 'an UpcasterRegistry');
    this.#currencies = options.currencies;
    this.#upcasters = options.upcasters ?? builtInUpcasters();
  }

  /** Encodes a decided event with its envelope and computes its hash. */
  encode(draft: EventDraft, envelope: EnvelopeInput): StoredEvent {
    const unhashed: Omit<StoredEvent, 'hash'> = {
      eventId: envelope.eventId,
      tenantId: envelope.tenantId,
      ledgerId: envelope.ledgerId,
      ledgerVersion: envelope.ledgerVersion,
      type: draft.event.type,
      schemaVersion: CURRENT_SCHEMA_VERSIONS[draft.event.type],
      data: this.#encodeData(draft.event),
      recordedAt: this.#recordedAt.format(envelope.recordedAtMs),
      effectiveAt: this.#effectiveAt.format(draft.effectiveAtMs),
      correlationId: envelope.correlationId,
      causationId: envelope.causationId,
      metadata: envelope.metadata,
      previousHash: envelope.previousHash,
    };
    const dataJson = (draft.event.type === 'TransferPosted' ? transferPostedDataJson(unhashed.data) : undefined) ?? canonicalDataJson(unhashed.data);
    const hash = hashEncoding(unhashed.previousHash, canonicalEncodingWithData(unhashed, dataJson));
    const decoded = { event: draft.event, meta: { ledgerVersion: envelope.ledgerVersion, recordedAtMs: envelope.recordedAtMs, effectiveAtMs: draft.effectiveAtMs } };
    return new EncodedEvent(unhashed, hash, dataJson, decoded, this.#currencies);
  }

  /** Validates, upcasts and decodes a stored event. */
  decode(stored: StoredEvent): DecodedEvent {
    // An event this process encoded, with the same currencies, decodes to the very event it was
    // encoded from: a read model fed in the append's own transaction skips validating what the
    // writer has just built.
    const known = EncodedEvent.decodedOf(stored, this.#currencies);
    if (known !== undefined) return known;
    if (isPlainEnvelope(stored)) {
      const plain = this.#decodePlain(stored);
      if (plain !== undefined) return plain;
    }
    return this.#decodeChecked(stored);
  }

  /**
   * {@link decode} of an event {@link isPlainEnvelope} accepted, for the commonest case: a
   * `TransferPosted` at the current version whose data {@link isPlainTransferPostedData} accepts,
   * and whose times are in order. The same steps and the same result as {@link #decodeChecked},
   * less what that case never needs: no upcasting (none runs at the current version), no object
   * saying where the event sits for an error, and the times parsed once per text through
   * {@link IsoTimeParseCache} (a batch's events share a recorded time and mostly an effective
   * time). `undefined` for anything else, which {@link #decodeChecked} decodes or refuses.
   */
  #decodePlain(stored: StoredEvent): DecodedEvent | undefined {
    const data = stored.data;
    if (stored.type !== 'TransferPosted' || stored.schemaVersion !== CURRENT_SCHEMA_VERSIONS.TransferPosted || !isPlainTransferPostedData(data)) return undefined;
    const recordedAtMs = this.#recordedAtMs.parse(stored.recordedAt);
    const effectiveAtMs = this.#effectiveAtMs.parse(stored.effectiveAt);
    if (effectiveAtMs > recordedAtMs) return undefined;
    let postings: Posting[];
    try {
      postings = this.#decodePostings(data['postings'] as WireEventData<'TransferPosted'>['postings']);
    } catch {
      // An amount or currency the registry refuses: the checked path words the error.
      return undefined;
    }
    return { event: plainTransferPosted(data, postings), meta: { ledgerVersion: stored.ledgerVersion, recordedAtMs, effectiveAtMs } };
  }

  /** {@link decode}, every step, for any event: validates it, or refuses it with a {@link CorruptEventError}. */
  #decodeChecked(stored: StoredEvent): DecodedEvent {
    const where = { ledgerVersion: typeof stored?.ledgerVersion === 'number' ? stored.ledgerVersion : undefined };
    if (!isPlainEnvelope(stored)) {
      const envelope = storedEventSchema.safeParse(stored);
      if (!envelope.success) throw new CorruptEventError(`invalid envelope: ${describeIssue(envelope.error.issues)}`, pick(where));
    }
    const type = stored.type as LedgerEventType;
    const current = CURRENT_SCHEMA_VERSIONS[type];
    if (current === undefined || !Object.hasOwn(CURRENT_SCHEMA_VERSIONS, type)) {
      throw new CorruptEventError(`unknown event type ${JSON.stringify(stored.type)}`, pick(where));
    }
    let data: JsonObject | undefined;
    try {
      data = this.#upcasters.upcast(type, stored.schemaVersion, current, stored.data);
    } catch (error) {
      throw new CorruptEventError(`upcaster for ${type} v${stored.schemaVersion} failed: ${String(error)}`, pick(where), error);
    }
    if (data === undefined) {
      throw new CorruptEventError(`no upcaster from ${type} v${stored.schemaVersion} to v${current}`, pick(where));
    }
    const recordedAtMs = Date.parse(stored.recordedAt);
    const effectiveAtMs = Date.parse(stored.effectiveAt);
    if (effectiveAtMs > recordedAtMs) throw new CorruptEventError('effectiveAt is after recordedAt', pick(where));
    try {
      return {
        event: this.#decodeData(type, data, pick(where)),
        meta: { ledgerVersion: stored.ledgerVersion, recordedAtMs, effectiveAtMs },
      };
    } catch (error) {
      if (error instanceof CorruptEventError) throw error;
      // By code: the currency registry may be another copy of ledger-core's.
      const message = hasErrorCode(error, ['invalid_amount', 'unknown_currency']) ? (error as Error).message : String(error);
      throw new CorruptEventError(message, pick(where), error);
    }
  }

  /**
   * Checks a stored event as thoroughly as its readers will, that every string in it can be
   * stored (no NUL, no unpaired surrogate: the writer refuses both, PostgreSQL's text and jsonb
   * cannot hold the first, and the second would be stored as U+FFFD and break the hash), and that
   * its `hash` is the hash of its content and `previousHash`: what a store does before it appends
   * an event `encode` did not build (one read from another store to be copied, say). Decodes with
   * this codec's currencies and upcasters, so give it the ones the ledger's readers use. Throws
   * {@link CorruptEventError} saying what is wrong; checks one event, not its place in a chain.
   */
  verify(stored: StoredEvent): void {
    if (EncodedEvent.dataJsonOf(stored) !== undefined) return;
    this.decode(stored);
    const unstorable = unstorableTextIn(stored as unknown as JsonValue, []);
    if (unstorable !== undefined) {
      throw new CorruptEventError(`the string at ${JSON.stringify(unstorable)} ${STORABLE_TEXT_MESSAGE}`, { ledgerVersion: stored.ledgerVersion });
    }
    let recomputed: string;
    try {
      recomputed = hashEvent(stored);
    } catch (error) {
      throw new CorruptEventError(`its content cannot be hashed: ${String(error)}`, { ledgerVersion: stored.ledgerVersion }, error);
    }
    if (recomputed !== stored.hash) throw new CorruptEventError('its hash is not the hash of its content', { ledgerVersion: stored.ledgerVersion });
  }

  // A batch's events share one recorded time and mostly the same effective time: each is
  // formatted once. Two caches, not one: a backdated event's effective time would otherwise evict
  // the recorded time and cost two `toISOString` calls (about 7 µs) for every such event.
  readonly #recordedAt = new IsoTimeCache();
  readonly #effectiveAt = new IsoTimeCache();
  // The reverse, for decoding: a page of the log holds runs of events with the same times.
  readonly #recordedAtMs = new IsoTimeParseCache();
  readonly #effectiveAtMs = new IsoTimeParseCache();

  #encodeData(event: LedgerEvent): JsonObject {
    switch (event.type) {
      case 'AccountOpened':
        return {
          accountId: event.accountId,
          currency: event.currency,
          accountType: event.accountType,
          flags: { ...event.flags },
          metadata: event.metadata,
        };
      // Optional fields only when present: an event without them encodes (and hashes) as before they existed.
      case 'AccountFrozen':
        return withOptional({ accountId: event.accountId }, { reason: event.reason, commandId: event.commandId });
      case 'AccountUnfrozen':
      case 'AccountClosed':
        return withOptional({ accountId: event.accountId }, { commandId: event.commandId });
      case 'TransferPosted':
        return withOptional(
          { transferId: event.transferId, postings: this.#encodePostings(event.postings), metadata: event.metadata },
          { reference: event.reference, reversalOf: event.reversalOf },
        );
      case 'TransferPending':
        return withOptional(
          { transferId: event.transferId, postings: this.#encodePostings(event.postings), metadata: event.metadata },
          { timeoutMs: event.timeoutMs, reference: event.reference },
        );
      case 'PendingPosted':
        return {
          transferId: event.transferId,
          pendingId: event.pendingId,
          postings: this.#encodePostings(event.postings),
          metadata: event.metadata,
        };
      case 'PendingVoided':
        return { transferId: event.transferId, pendingId: event.pendingId, metadata: event.metadata };
      case 'PendingExpired':
        return { pendingId: event.pendingId };
    }
  }

  #encodePostings(postings: readonly Posting[]): JsonObject[] {
    return postings.map((posting) => ({
      accountId: posting.accountId,
      side: posting.side,
      amount: formatAmount(posting.amount, this.#currencies.get(posting.currency).scale),
      currency: posting.currency,
    }));
  }

  #decodePostings(postings: readonly { accountId: string; side: 'debit' | 'credit'; amount: string; currency: string }[]): Posting[] {
    return postings.map((posting) => ({
      accountId: posting.accountId,
      side: posting.side,
      amount: parseAmount(posting.amount, this.#currencies.get(posting.currency)),
      currency: posting.currency,
    }));
  }

  #decodeData(type: LedgerEventType, raw: JsonObject, where: { ledgerVersion?: number }): LedgerEvent {
    if (type === 'TransferPosted' && isPlainTransferPostedData(raw)) {
      return plainTransferPosted(raw, this.#decodePostings(raw['postings'] as WireEventData<'TransferPosted'>['postings']));
    }
    const parsed = eventDataSchemas[type].safeParse(raw);
    if (!parsed.success) throw new CorruptEventError(`invalid ${type} data: ${describeIssue(parsed.error.issues)}`, where);
    const data = parsed.data as Record<string, unknown>;
    // Each branch re-reads the validated fields with their precise types.
    switch (type) {
      case 'AccountOpened': {
        const d = data as WireEventData<'AccountOpened'>;
        this.#currencies.get(d.currency);
        return { type, accountId: d.accountId, currency: d.currency, accountType: d.accountType, flags: d.flags, metadata: d.metadata };
      }
      case 'AccountFrozen': {
        const d = data as WireEventData<'AccountFrozen'>;
        return { type, accountId: d.accountId, reason: d.reason, ...(d.commandId === undefined ? {} : { commandId: d.commandId }) };
      }
      case 'AccountUnfrozen':
      case 'AccountClosed': {
        const d = data as WireEventData<'AccountUnfrozen' | 'AccountClosed'>;
        return { type, accountId: d.accountId, ...(d.commandId === undefined ? {} : { commandId: d.commandId }) };
      }
      case 'TransferPosted': {
        const d = data as WireEventData<'TransferPosted'>;
        return {
          type,
          transferId: d.transferId,
          postings: this.#decodePostings(d.postings),
          reference: d.reference,
          reversalOf: d.reversalOf,
          metadata: d.metadata,
        };
      }
      case 'TransferPending': {
        const d = data as WireEventData<'TransferPending'>;
        return {
          type,
          transferId: d.transferId,
          postings: this.#decodePostings(d.postings),
          timeoutMs: d.timeoutMs,
          reference: d.reference,
          metadata: d.metadata,
        };
      }
      case 'PendingPosted': {
        const d = data as WireEventData<'PendingPosted'>;
        return { type, transferId: d.transferId, pendingId: d.pendingId, postings: this.#decodePostings(d.postings), metadata: d.metadata };
      }
      case 'PendingVoided': {
        const d = data as WireEventData<'PendingVoided'>;
        return { type, transferId: d.transferId, pendingId: d.pendingId, metadata: d.metadata };
      }
      case 'PendingExpired': {
        const d = data as WireEventData<'PendingExpired'>;
        return { type, pendingId: d.pendingId };
      }
    }
  }
}

/**
 * The path of the first key or string value in `value` that {@link isStorableText} refuses. Only
 * called on events that decoded, whose shape and sizes the schemas bound.
 */
function unstorableTextIn(value: JsonValue | undefined, path: (string | number)[]): (string | number)[] | undefined {
  if (typeof value === 'string') return isStorableText(value) ? undefined : path;
  // Deeper than canonical JSON writes: the hash check after this refuses the event, without this
  // walk overflowing the stack first (a forged row may nest thousands deep).
  if (path.length > CANONICAL_DEPTH_MAX) return undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index += 1) {
      const found = unstorableTextIn(value[index], [...path, index]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      if (!isStorableText(key)) return [...path, key];
      const found = unstorableTextIn(inner, [...path, key]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * `canonicalDataJson` of the data `#encodeData` built for a `TransferPosted`, the same bytes,
 * without the checks that function makes of data of unknown origin: this object's own keys are
 * `transferId`, `postings`, `metadata` and, when defined, `reference` and `reversalOf`, and each
 * posting is an object `#encodePostings` built with exactly its four keys. So no key of it is
 * listed, looked up in a set or sorted, and no posting's keys are listed or looked up one by one
 * (about a third of the cost of a transfer's data text). `undefined` when a value is not what a
 * valid transfer holds (not a string, or one that JSON escapes): `canonicalDataJson` then writes,
 * or refuses, the data as before.
 */
function transferPostedDataJson(data: JsonObject): string | undefined {
  const { transferId, postings, metadata } = data;
  // Own keys only, as canonical JSON reads them: absent, they are not read from a prototype.
  const reference = Object.hasOwn(data, 'reference') ? data['reference'] : undefined;
  const reversalOf = Object.hasOwn(data, 'reversalOf') ? data['reversalOf'] : undefined;
  if (!isPlainString(transferId) || !Array.isArray(postings) || metadata === undefined) return undefined;
  if ((reference !== undefined && !isPlainString(reference)) || (reversalOf !== undefined && !isPlainString(reversalOf))) return undefined;
  let written = '';
  for (let i = 0; i < postings.length; i += 1) {
    const { accountId, amount, currency, side } = postings[i] as Readonly<Record<string, JsonValue | undefined>>;
    if (!isPlainString(accountId) || !isPlainString(amount) || !isPlainString(currency) || !isPlainString(side)) return undefined;
    written += `${i === 0 ? '' : ','}{"accountId":"${accountId}","amount":"${amount}","currency":"${currency}","side":"${side}"}`;
  }
  // Sorted keys: metadata, postings, reference, reversalOf, transferId.
  const optional = `${reference === undefined ? '' : `,"reference":"${reference}"`}${reversalOf === undefined ? '' : `,"reversalOf":"${reversalOf}"`}`;
  return `{"metadata":${canonicalJson(metadata)},"postings":[${written}]${optional},"transferId":"${transferId}"}`;
}

/**
 * The `TransferPosted` of data {@link isPlainTransferPostedData} accepted, with its postings
 * decoded: what the schema branch of `#decodeData` returns for it (a fresh metadata object, as
 * the schema's copy).
 */
function plainTransferPosted(data: JsonObject, postings: Posting[]): LedgerEvent {
  return {
    type: 'TransferPosted',
    transferId: data['transferId'] as string,
    postings,
    reference: data['reference'] as string | undefined,
    reversalOf: data['reversalOf'] as string | undefined,
    metadata: { ...(data['metadata'] as Record<string, string>) },
  };
}

/** `base` with the optional fields that are defined, added in place (no copy: encoding builds many). */
function withOptional(base: Record<string, JsonValue>, optional: Record<string, string | number | undefined>): JsonObject {
  for (const key in optional) {
    const value = optional[key];
    if (value !== undefined) base[key] = value;
  }
  return base;
}

function pick(where: { ledgerVersion: number | undefined }): { ledgerVersion?: number } {
  return where.ledgerVersion === undefined ? {} : { ledgerVersion: where.ledgerVersion };
}

function describeIssue(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  const first = issues[0];
  if (first === undefined) return 'unknown problem';
  return first.path.length > 0 ? `${first.path.map(String).join('.')}: ${first.message}` : first.message;
}

/** The ids behind an event's idempotency-index keys, one per kind; `null` when it claims none of that kind. */
export interface IndexIds {
  /** Behind `transfer:<id>`: the transfer the event records. */
  readonly transfer: string | null;
  /** Behind `resolution:<id>`: the hold the event resolves. */
  readonly resolution: string | null;
  /** Behind `reversal:<id>`: the transfer the event reverses. */
  readonly reversal: string | null;
}

/** The key prefix of each kind of {@link IndexIds}, in the order `indexKeysOf` lists them. */
export const INDEX_KEY_PREFIXES = { transfer: 'transfer:', resolution: 'resolution:', reversal: 'reversal:' } as const;

/**
 * The ids behind the keys {@link indexKeysOf} lists, by kind: for a store that keeps each kind
 * in its own unique column instead of one key table.
 */
export function indexIdsOf(event: Pick<StoredEvent, 'data'>): IndexIds {
  const data = event.data as Readonly<Record<string, unknown>>;
  const transfer = data['transferId'];
  const resolution = data['pendingId'];
  const reversal = data['reversalOf'];
  return {
    transfer: typeof transfer === 'string' ? transfer : null,
    resolution: typeof resolution === 'string' ? resolution : null,
    reversal: typeof reversal === 'string' ? reversal : null,
  };
}

/**
 * The idempotency-index keys an event claims in its ledger: `transfer:<id>` for every transfer
 * it records, `resolution:<pendingId>` for a hold it resolves, `reversal:<id>` for a transfer it
 * reverses. Stores keep these unique per ledger and return the claiming event by key.
 */
export function indexKeysOf(event: Pick<StoredEvent, 'type' | 'data'>): string[] {
  const ids = indexIdsOf(event);
  const keys: string[] = [];
  if (ids.transfer !== null) keys.push(INDEX_KEY_PREFIXES.transfer + ids.transfer);
  if (ids.resolution !== null) keys.push(INDEX_KEY_PREFIXES.resolution + ids.resolution);
  if (ids.reversal !== null) keys.push(INDEX_KEY_PREFIXES.reversal + ids.reversal);
  return keys;
}
