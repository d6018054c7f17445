import { evolve } from '../domain/evolve.js';
import type { LedgerState, Table, TransferRecord, AccountState } from '../domain/state.js';
import { ChainBrokenError, CorruptEventError, InvalidInputError, InvariantViolationError, LimitExceededError } from '../errors.js';
import { hashEvent } from '../events/canonical.js';
import type { EventCodec } from '../events/codec.js';
import { GENESIS_HASH, type StoredEvent } from '../events/stored-event.js';
import { READ_LIMIT_MAX, type EventStore } from '../store/event-store.js';
import { instantMsOrNaN, INSTANT_MESSAGE } from '../input/instant.js';
import { checkOptions } from '../input/options.js';

/** Which ledger to read, from which store, decoded with which codec. */
export interface LedgerSource {
  readonly store: EventStore;
  readonly codec: EventCodec;
  readonly tenantId: string;
  readonly ledgerId: string;
}

/**
 * A point in a ledger's history:
 * - `ledgerVersion`: after the event with this version;
 * - `recordedAt`: as the ledger knew it at that instant (every event recorded at or before it);
 * - `effectiveAt`: as of business time, including back-dated events recorded later.
 *
 * Instants are `Date`s or ISO-8601 date-times with an offset (see {@link parseInstantMs}): a
 * string without one is refused rather than read in the machine's time zone.
 */
export type AsOf =
  | { readonly ledgerVersion: number }
  | { readonly recordedAt: string | Date }
  | { readonly effectiveAt: string | Date };

/** Events per store read while replaying. */
export const REPLAY_PAGE_SIZE = 1_000;

/**
 * Streams a ledger's events in version order, one page at a time. With `verify` (the default) it
 * checks that versions are contiguous and that every hash link holds (a `ChainBrokenError` names
 * the first bad event); with `verify: false` it yields the events as stored, for a caller such as
 * `verifyChain` that reports broken links, version gaps included, itself. Options that are not an
 * object, a `pageSize` that is not an integer in 1..{@link READ_LIMIT_MAX} and an `after` version
 * that is not a non-negative integer are refused with `InvalidInputError`, before any read.
 */
export async function* readLedger(
  source: Pick<LedgerSource, 'store' | 'tenantId' | 'ledgerId'>,
  options: {
    readonly verify?: boolean;
    /** Events per store read: 1..{@link READ_LIMIT_MAX}, default {@link REPLAY_PAGE_SIZE}. */
    readonly pageSize?: number;
    /** Start after this event, trusted (default: the start of the stream). */
    readonly after?: { readonly ledgerVersion: number; readonly hash: string };
  } = {},
): AsyncGenerator<StoredEvent> {
  yield* readUntil(source, options, Number.POSITIVE_INFINITY);
}

/**
 * {@link readLedger}, reading no event past `untilVersion` (a ledger version, or infinity): the
 * store is never asked for one, so an event appended past the bound is neither verified nor
 * yielded (the pages shrink to end at the bound).
 */
async function* readUntil(
  source: Pick<LedgerSource, 'store' | 'tenantId' | 'ledgerId'>,
  options: NonNullable<Parameters<typeof readLedger>[1]>,
  untilVersion: number,
): AsyncGenerator<StoredEvent> {
  checkOptions(options);
  // Checked here, not left to the store: a store that answered [] to a limit of 0 would be read forever.
  const pageSize = options.pageSize ?? REPLAY_PAGE_SIZE;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > READ_LIMIT_MAX) {
    throw new InvalidInputError([{ path: ['pageSize'], message: `must be an integer in 1..${READ_LIMIT_MAX}` }]);
  }
  const after = options.after ?? { ledgerVersion: 0, hash: GENESIS_HASH };
  if (!Number.isSafeInteger(after.ledgerVersion) || after.ledgerVersion < 0) throw new InvalidInputError([{ path: ['after', 'ledgerVersion'], message: 'must be a non-negative integer' }]);
  let expectedVersion = after.ledgerVersion + 1;
  let previousHash = after.hash;
  for (;;) {
    const limit = Math.min(pageSize, untilVersion - expectedVersion + 1);
    if (limit < 1) return;
    const page = await source.store.readStream({
      tenantId: source.tenantId,
      ledgerId: source.ledgerId,
      direction: 'forward',
      fromVersion: expectedVersion,
      limit,
    });
    for (const event of page) {
      if (options.verify !== false) {
        if (event.ledgerVersion !== expectedVersion) throw new ChainBrokenError(expectedVersion, `version ${event.ledgerVersion} follows ${expectedVersion - 1}`);
        if (event.previousHash !== previousHash) throw new ChainBrokenError(event.ledgerVersion, 'previousHash does not match the preceding event');
        if (hashOf(event) !== event.hash) throw new ChainBrokenError(event.ledgerVersion, 'hash does not match the event content');
      }
      previousHash = event.hash;
      expectedVersion += 1;
      yield event;
    }
    if (page.length < limit) return;
  }
}

/** The event's hash, or `undefined` for content canonical JSON refuses (a forged row nested thousands deep, say). */
function hashOf(event: StoredEvent): string | undefined {
  try {
    return hashEvent(event);
  } catch {
    return undefined;
  }
}

/**
 * Keeps only holds that are still pending: a replay needs them to release held amounts, and
 * nothing else, so its memory is O(accounts + open holds), not O(events).
 */
class OpenHoldsTable implements Table<TransferRecord> {
  readonly #holds = new Map<string, TransferRecord>();
  get(key: string): TransferRecord | undefined {
    return this.#holds.get(key);
  }
  set(key: string, value: TransferRecord): this {
    if (value.kind === 'hold' && value.resolution === 'pending') this.#holds.set(key, value);
    else this.#holds.delete(key);
    return this;
  }
}

/** An {@link AsOf} checked by {@link parseAsOf}: its kind and its point (a version, or epoch ms). */
export type AsOfPoint =
  | { readonly kind: 'ledgerVersion'; readonly ledgerVersion: number }
  | { readonly kind: 'recordedAt'; readonly atMs: number }
  | { readonly kind: 'effectiveAt'; readonly atMs: number };

/** What {@link parseAsOf} says when the value is not one of the three shapes of {@link AsOf}. */
export const AS_OF_MESSAGE = 'must be an object with exactly one of ledgerVersion, recordedAt or effectiveAt';

const AS_OF_KEYS = ['ledgerVersion', 'recordedAt', 'effectiveAt'] as const;

/**
 * Checks an {@link AsOf} given by a caller (so typed `unknown`: it may come from JavaScript or a
 * parsed request) and returns its point. Refused with `InvalidInputError`, before any read: at
 * `[field]`, a value that is not an object (`undefined`, `null`, a string) and an object naming
 * none or more than one of the three keys as its own properties (which one would win is not the
 * caller's guess to make; an inherited key is not read, so `Object.create({ ledgerVersion: 3 })`
 * names none); at `[field, 'ledgerVersion']`, a ledger version that is not a non-negative safe
 * integer; at `[field, 'recordedAt' | 'effectiveAt']`, an instant `parseInstantMs` refuses (with
 * its message, `INSTANT_MESSAGE`). Other keys are ignored, as in every options object of this
 * package.
 */
export function parseAsOf(asOf: unknown, field = 'asOf'): AsOfPoint {
  if (typeof asOf !== 'object' || asOf === null || Array.isArray(asOf)) throw new InvalidInputError([{ path: [field], message: AS_OF_MESSAGE }]);
  const given = AS_OF_KEYS.filter((key) => Object.hasOwn(asOf, key) && (asOf as Record<string, unknown>)[key] !== undefined);
  if (given.length !== 1) throw new InvalidInputError([{ path: [field], message: AS_OF_MESSAGE }]);
  const value = (asOf as Record<string, unknown>)[given[0] as string];
  if (given[0] === 'ledgerVersion') {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new InvalidInputError([{ path: [field, 'ledgerVersion'], message: 'must be a non-negative integer' }]);
    return { kind: 'ledgerVersion', ledgerVersion: value };
  }
  const kind = given[0] as 'recordedAt' | 'effectiveAt';
  const atMs = instantMsOrNaN(value);
  if (!Number.isFinite(atMs)) throw new InvalidInputError([{ path: [field, kind], message: INSTANT_MESSAGE }]);
  return { kind, atMs };
}

/** Validates an {@link AsOf} and returns a predicate "is this event included". */
function inclusion(asOf: AsOf | undefined): { include: (meta: { ledgerVersion: number; recordedAtMs: number; effectiveAtMs: number }) => 'yes' | 'skip' | 'stop'; byEffective: boolean } {
  if (asOf === undefined) return { include: () => 'yes', byEffective: false };
  const point = parseAsOf(asOf);
  switch (point.kind) {
    case 'ledgerVersion': {
      const version = point.ledgerVersion;
      return { include: (meta) => (meta.ledgerVersion <= version ? 'yes' : 'stop'), byEffective: false };
    }
    case 'recordedAt': {
      const at = point.atMs;
      // Recorded times never decrease along a stream, so the first later event ends the prefix.
      return { include: (meta) => (meta.recordedAtMs <= at ? 'yes' : 'stop'), byEffective: false };
    }
    case 'effectiveAt': {
      const at = point.atMs;
      return { include: (meta) => (meta.effectiveAtMs <= at ? 'yes' : 'skip'), byEffective: true };
    }
  }
}

/** Options of {@link replayLedger}. */
export interface ReplayOptions {
  /**
   * Most accounts the replay may hold: past it, it stops with `LimitExceededError` as the next
   * account opens, so a caller that must bound its memory (a command-line audit, a reconciliation)
   * need not trust the ledger's size. Default: no bound beyond the ledger's own.
   */
  readonly accountsMax?: number;
  /**
   * Last ledger version the replay may take in, whatever the point: it stops before any later
   * event, so a caller that verified the chain up to a version (a command-line audit) counts no
   * event appended since, also as of a recorded or effective time that later events would
   * otherwise match. A non-negative integer; default: no bound (the head).
   */
  readonly untilVersion?: number;
}

/**
 * A ledger's state as {@link replayLedger} rebuilt it: a `LedgerState` (so it goes wherever one
 * does) whose accounts are a `Map` the caller can list, and that is the caller's own.
 *
 * ```ts
 * const state = await replayLedger(source, { ledgerVersion: 120 });
 * const trial = trialBalanceOf(state.accounts.values(), currencies);
 * const ids = [...state.accounts.keys()];
 * ```
 */
export interface ReplayedState extends LedgerState {
  /** Every account opened by the point, by id. */
  readonly accounts: Map<string, AccountState>;
  /**
   * The holds still pending at the point, by transfer id, and nothing else: a replay keeps no
   * other transfer, so its memory is O(accounts + open holds).
   */
  readonly transfers: Table<TransferRecord>;
}

/**
 * Rebuilds a ledger's state as of a point in its history by replaying its events from the
 * first one: the independent, auditable path. Deterministic, streaming, with memory bounded by
 * the number of accounts and open holds (and by `options.accountsMax`, if given). The hash chain
 * is verified on the way (`ChainBrokenError` at the first bad event). An event it cannot read,
 * and one that is readable and correctly hashed but breaks the ledger's invariants (a posting on
 * an account never opened, say: no writer decides it, but a client holding the store's
 * application role can append it), is a `CorruptEventError` naming its ledger version (and, for
 * the latter, its type), never skipped. A `ledgerVersion` past the head replays to the head:
 * the state's `version` says where it stopped. Options that are not an object, an `accountsMax`
 * that is not a positive integer and an `untilVersion` that is not a non-negative integer are
 * refused with `InvalidInputError`, before any read.
 */
export async function replayLedger(source: LedgerSource, asOf?: AsOf, options: ReplayOptions = {}): Promise<ReplayedState> {
  checkOptions(options);
  const { include, byEffective } = inclusion(asOf);
  const accountsMax = options.accountsMax ?? Number.POSITIVE_INFINITY;
  if (options.accountsMax !== undefined && (!Number.isSafeInteger(accountsMax) || accountsMax < 1)) {
    throw new InvalidInputError([{ path: ['accountsMax'], message: 'must be a positive integer' }]);
  }
  const untilVersion = options.untilVersion ?? Number.POSITIVE_INFINITY;
  if (options.untilVersion !== undefined && (!Number.isSafeInteger(untilVersion) || untilVersion < 0)) {
    throw new InvalidInputError([{ path: ['untilVersion'], message: 'must be a non-negative integer' }]);
  }
  const accounts = new Map<string, AccountState>();
  const state: ReplayedState = {
    version: 0,
    lastRecordedAtMs: 0,
    stateBytes: 0,
    accounts,
    transfers: new OpenHoldsTable(),
    // A view filtered by business time can show a back-dated debit before the credit that funded it.
    limitsAsserted: !byEffective,
  };
  for await (const stored of readUntil(source, {}, untilVersion)) {
    const decoded = source.codec.decode(stored);
    const verdict = include(decoded.meta);
    if (verdict === 'stop') break;
    if (verdict === 'skip') continue;
    try {
      evolve(state, decoded.event, decoded.meta);
    } catch (error) {
      // Bare, an invariant's message names an account but not the event: an auditor could not
      // tell which of the ledger's events to look at, nor that the event, not the replay, is wrong.
      if (!(error instanceof InvariantViolationError)) throw error;
      throw new CorruptEventError(
        `the ${decoded.event.type} event breaks the ledger's invariants (${error.message})`,
        { ledgerVersion: decoded.meta.ledgerVersion, tenantId: source.tenantId, ledgerId: source.ledgerId },
        error,
      );
    }
    if (accounts.size > accountsMax) throw new LimitExceededError(`the ledger has more than ${accountsMax} accounts at version ${decoded.meta.ledgerVersion}`);
  }
  return state;
}

/** One change to an account's balance, as a statement line. */
export interface AccountEntry {
  readonly ledgerVersion: number;
  readonly eventType: StoredEvent['type'];
  /** The transfer the change belongs to (for an expiry, the hold's id). */
  readonly transferId: string;
  readonly side: 'debit' | 'credit';
  /** `posted` moves the balance; `pending` reserves (positive) or releases (negative) a hold. */
  readonly bucket: 'posted' | 'pending';
  /** Signed amount in minor units: negative when a hold is released. */
  readonly amountMinor: bigint;
  /** Posted balance on the account's normal side after this entry, minor units. */
  readonly postedBalanceMinor: bigint;
  readonly recordedAtMs: number;
  readonly effectiveAtMs: number;
}

/** A page of an account's entries and where the next page starts. */
export interface AccountEntriesPage {
  readonly entries: AccountEntry[];
  /** Pass as `afterVersion` for the next page; `null` at the end. */
  readonly nextAfterVersion: number | null;
}

/** Most entries in one history page. */
export const HISTORY_PAGE_SIZE_MAX = 1_000;

/** Where a page of an account's entries starts and how long it is. */
export interface AccountEntriesOptions {
  /** Entries after this ledger version: a non-negative integer, default 0 (from the start). */
  readonly afterVersion?: number;
  /** Most entries in the page: 1..{@link HISTORY_PAGE_SIZE_MAX}, default 100. */
  readonly limit?: number;
}

/**
 * Checks the options of a page of an account's entries and fills in the defaults: options that
 * are not an object, and a limit or version out of range, are refused with `InvalidInputError`.
 * @internal
 */
export function accountEntriesOptions(options: AccountEntriesOptions): Required<AccountEntriesOptions> {
  checkOptions(options);
  const limit = options.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_PAGE_SIZE_MAX) {
    throw new InvalidInputError([{ path: ['limit'], message: `must be an integer in 1..${HISTORY_PAGE_SIZE_MAX}` }]);
  }
  const afterVersion = options.afterVersion ?? 0;
  if (!Number.isSafeInteger(afterVersion) || afterVersion < 0) {
    throw new InvalidInputError([{ path: ['afterVersion'], message: 'must be a non-negative integer (a ledger version)' }]);
  }
  return { afterVersion, limit };
}

/**
 * An account's entries in ledger order, with the running posted balance, computed by replay.
 * Keyset-paginated by ledger version; memory is bounded by the page size and the open holds.
 * Options are checked as `Ledger.history` checks them: not an object, a `limit` outside 1..{@link HISTORY_PAGE_SIZE_MAX} or a negative `afterVersion` is `InvalidInputError`.
 */
export async function replayAccountEntries(source: LedgerSource, accountId: string, options: AccountEntriesOptions = {}): Promise<AccountEntriesPage> {
  const { afterVersion, limit } = accountEntriesOptions(options);
  const holds = new Map<string, { side: 'debit' | 'credit'; amount: bigint }>();
  let normalSide: 'debit' | 'credit' | undefined;
  let balance = 0n;
  const entries: AccountEntry[] = [];
  for await (const stored of readLedger(source)) {
    const { event, meta } = source.codec.decode(stored);
    const push = (transferId: string, side: 'debit' | 'credit', bucket: 'posted' | 'pending', amount: bigint): void => {
      if (bucket === 'posted') balance += side === normalSide ? amount : -amount;
      if (meta.ledgerVersion <= afterVersion) return;
      entries.push({
        ledgerVersion: meta.ledgerVersion,
        eventType: event.type,
        transferId,
        side,
        bucket,
        amountMinor: amount,
        postedBalanceMinor: balance,
        recordedAtMs: meta.recordedAtMs,
        effectiveAtMs: meta.effectiveAtMs,
      });
    };
    switch (event.type) {
      case 'AccountOpened':
        if (event.accountId === accountId) normalSide = event.accountType === 'asset' || event.accountType === 'expense' ? 'debit' : 'credit';
        break;
      case 'TransferPosted':
      case 'TransferPending':
      case 'PendingPosted': {
        const bucket = event.type === 'TransferPending' ? 'pending' : 'posted';
        if (event.type === 'PendingPosted') releaseHold(holds, event.pendingId, (side, amount) => push(event.transferId, side, 'pending', -amount));
        for (const posting of event.postings) {
          if (posting.accountId !== accountId) continue;
          if (event.type === 'TransferPending') holds.set(event.transferId, { side: posting.side, amount: posting.amount });
          push(event.transferId, posting.side, bucket, posting.amount);
        }
        break;
      }
      case 'PendingVoided':
        releaseHold(holds, event.pendingId, (side, amount) => push(event.transferId, side, 'pending', -amount));
        break;
      case 'PendingExpired':
        releaseHold(holds, event.pendingId, (side, amount) => push(event.pendingId, side, 'pending', -amount));
        break;
      default:
        break;
    }
    // Pages end between events, never inside one: an event can add two entries (release and post).
    if (entries.length > limit && (entries[entries.length - 1] as AccountEntry).ledgerVersion > (entries[limit - 1] as AccountEntry).ledgerVersion) break;
  }
  const cut = entries.length > limit ? (entries[limit - 1] as AccountEntry).ledgerVersion : Infinity;
  const page = entries.filter((entry) => entry.ledgerVersion <= cut);
  return { entries: page, nextAfterVersion: entries.length > page.length ? cut : null };
}

function releaseHold(
  holds: Map<string, { side: 'debit' | 'credit'; amount: bigint }>,
  pendingId: string,
  release: (side: 'debit' | 'credit', amount: bigint) => void,
): void {
  const hold = holds.get(pendingId);
  if (hold === undefined) return;
  holds.delete(pendingId);
  release(hold.side, hold.amount);
}
