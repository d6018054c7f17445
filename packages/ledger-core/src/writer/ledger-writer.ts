import { randomUUID } from 'node:crypto';
import { decide, type Decision, type EventDraft } from '../domain/decide.js';
import { evolve, transferRecordOf } from '../domain/evolve.js';
import { BACKDATE_WINDOW_MS_DEFAULT, ID_PATTERN, ID_PATTERN_MESSAGE } from '../domain/limits.js';
import type { RejectionCode } from '../domain/rejections.js';
import { restoreState, serializeState, SNAPSHOT_SCHEMA_VERSION } from '../domain/snapshot-codec.js';
import { commitOverlay, initialState, overlayState, rebaseOverlay, type AccountState, type LedgerState, type OverlayState, type TransferRecord } from '../domain/state.js';
import { TransferStore } from '../domain/transfer-store.js';
import type { LedgerCommand, Metadata, TransferLikeCommand } from '../domain/types.js';
import { hasErrorCode } from '../error-code.js';
import {
  CorruptEventError,
  InvalidInputError,
  LimitExceededError,
  OverloadedError,
  StoreUnavailableError,
  VersionConflictError,
  WriterClosedError,
  WriterFailedError,
  type LedgerErrorCode,
} from '../errors.js';
import { dataJsonOf, EventCodec, type DecodedEvent } from '../events/codec.js';
import { commandError } from '../input/command-checks.js';
import { checkCollaborator, checkOptions } from '../input/options.js';
import { GENESIS_HASH, type StoredEvent } from '../events/stored-event.js';
import type { UpcasterRegistry } from '../events/upcasters.js';
import { CurrencyRegistry } from '../money/currency.js';
import { APPEND_DATA_CHARS_MAX, APPEND_EVENTS_MAX, INDEX_KEYS_MAX, READ_LIMIT_MAX, type EventStore } from '../store/event-store.js';
import { SNAPSHOT_STATE_BYTES_MAX } from '../store/snapshot-content.js';
import { MinHeap } from './min-heap.js';

/** Expiry heap size below which it is never rebuilt (see `LedgerWriter.holdTimeoutsTracked`). */
export const EXPIRIES_COMPACT_MIN = 10_000;

/** Hard ceiling of `batchSizeMax`. */
export const BATCH_SIZE_MAX_LIMIT = 8_190;
/** Hard ceiling of `queueLengthMax`. */
export const QUEUE_LENGTH_MAX_LIMIT = 1_000_000;
/** Hard ceiling of `appendsInFlightMax`. */
export const APPENDS_IN_FLIGHT_MAX_LIMIT = 4;
/** Shortest queue that is cut in two so that its halves' appends overlap (see `appendsInFlightMax`). */
const SPLIT_QUEUE_LENGTH_MIN = 1_000;
/** Default `transfersCachedBytesMax`: 128 MiB. */
const TRANSFERS_CACHED_BYTES_DEFAULT = 128 * 2 ** 20;
/**
 * Default `stateBytesMax`: 96 MiB, three quarters of what one snapshot may hold
 * (`SNAPSHOT_STATE_BYTES_MAX`). The rest is room for what is counted but never refused: the
 * lifecycle command ids accounts remember (at most 16 each) and the currencies' scales.
 */
export const STATE_BYTES_MAX_DEFAULT = 96 * 2 ** 20;

// A store's errors are told apart by their codes: the store may throw another copy's classes.
/** A store's refusals after which a batch is decided again on the stream's tail: another writer got there first. */
const DECIDE_AGAIN: readonly LedgerErrorCode[] = ['version_conflict', 'duplicate_index_key'];
/** A store's refusals of an append, which writes nothing (the port's contract): a fence, a taken key, or arguments it would not take. */
const REFUSED: readonly LedgerErrorCode[] = [...DECIDE_AGAIN, 'invalid_input', 'limit_exceeded', 'append_refused'];
/** A store that could not be reached: its callers get a `StoreUnavailableError` too. */
const STORE_UNAVAILABLE: readonly LedgerErrorCode[] = ['store_unavailable'];
/** A store's refusal that wrote nothing and carries its own `retriable` (`AppendRefusedError`). */
const APPEND_REFUSED: readonly LedgerErrorCode[] = ['append_refused'];
/**
 * Appends that must succeed, after a refused batch shrank the batches, before they may double
 * again (up to `batchSizeMax`): a batch refused for its size (a server's statement timeout, say)
 * is then tried at the larger size again only now and then, not every other batch.
 */
const BATCH_GROWTH_APPENDS = 8;

/** Options of {@link LedgerWriter.open}. Every number has a default and a hard limit. */
export interface LedgerWriterOptions {
  /** Where events are appended and read back. */
  readonly store: EventStore;
  readonly tenantId: string;
  readonly ledgerId: string;
  /** Currencies the ledger accepts; default: ISO 4217 only. */
  readonly currencies?: CurrencyRegistry;
  /** Upcasters for older stored event versions; default: the built-in ones. */
  readonly upcasters?: UpcasterRegistry;
  /**
   * Wall clock in epoch ms; default `Date.now`. Recorded times never go backwards even if it does.
   * Read as whole milliseconds (a fraction is dropped, as stored times have none); a reading that
   * is not a finite number in years 1970-9999 fails the batch it was read for, not retriable, and
   * a `clock` that is not a function is refused by `open` (`InvalidInputError` at `clock`).
   */
  readonly clock?: () => number;
  /** Most commands decided and appended together: 1..8190, default 1000. */
  readonly batchSizeMax?: number;
  /** How long an idle writer waits for more commands before it starts a batch: 0..1000 ms, default 0 (next tick). */
  readonly batchWaitMs?: number;
  /** Most commands waiting; beyond it `submit` rejects with `OverloadedError`: 1..1,000,000, default 100,000. */
  readonly queueLengthMax?: number;
  /** How far in the past `effectiveAt` may be: default 31 days. */
  readonly backdateWindowMs?: number;
  /** Most resolved transfer records kept in memory for fast retries; older ones are read from the store's index. Default 200,000. */
  readonly transfersCachedMax?: number;
  /**
   * Most memory those records may take, estimated from their ids, postings, references and
   * metadata (see `TransferStore.estimatedBytes`): 0..2^40, default 128 MiB (134,217,728). The
   * oldest resolved records are dropped past either bound; open holds are always kept. Without
   * it, 200,000 transfers of 32 postings and 4 KB of metadata each took about 2.5 GB.
   */
  readonly transfersCachedBytesMax?: number;
  /**
   * Save a snapshot after this many events since the last one; 0 never. Default 50,000. Also
   * checked at the end of `open`: a writer that folded at least this many events since the
   * snapshot it loaded (or replayed that many, having none it could use) saves one at once, in
   * the background (`close` waits for it; a failed save fails nothing).
   */
  readonly snapshotEveryEvents?: number;
  /**
   * Most bytes the ledger's accounts and open holds may take as a snapshot stores them (an upper
   * bound kept as events are applied; see {@link LedgerWriter.stateBytes}): 0..`SNAPSHOT_STATE_BYTES_MAX`
   * (128 MiB), default {@link STATE_BYTES_MAX_DEFAULT} (96 MiB). Opening an account or a hold that
   * would pass it is rejected with `ledger_full`; transfers, resolutions and lifecycle changes
   * still pass. It keeps the state within one snapshot, so start-up stays bounded, and bounds the
   * writer's memory: about 229,000 accounts with 10-character ids and no metadata (each counted as
   * 439 bytes, its balances at their widest), 305,000 at the largest bound. Ledgers beyond it are
   * split into several (see the scale-out plan in `docs/performance.md`). A state already past
   * it (written by an earlier release, or with a larger bound) is loaded as it is.
   */
  readonly stateBytesMax?: number;
  /** How many times one batch is re-decided after another writer appended first: 0..100, default 8. */
  readonly conflictRetriesMax?: number;
  /** How often expired holds are looked for: 10..60,000 ms, default 1000. */
  readonly expiryCheckIntervalMs?: number;
  /**
   * Most batch appends under way at once: 1..4, default 2. Above 1, the next batch is decided on
   * top of the one being appended and sent at once (the store's chain fence refuses it unless
   * the one below commits), and a queue of 1,000 or more found idle (or fitting in one batch) is
   * cut in two so that appending the first half overlaps deciding the second. 1 appends one batch
   * at a time, and never cuts a queue.
   */
  readonly appendsInFlightMax?: number;
}

/** Request context recorded in each event's envelope. */
export interface CommandContext {
  readonly correlationId?: string;
  readonly causationId?: string;
  /** Bounded like all metadata; e.g. the acting user or channel. */
  readonly metadata?: Metadata;
}

/** A command was applied (or had already been applied: `duplicate`). */
export interface CommandAccepted {
  readonly ok: true;
  /** Ledger version of the command's last event; for a duplicate, the original's. */
  readonly ledgerVersion: number;
  /** When it was recorded, ISO-8601; for a duplicate, the original time. */
  readonly recordedAt: string;
  readonly duplicate: boolean;
  /** Results of a linked group's members, in order. */
  readonly members?: readonly CommandResult[];
}

/** A command was rejected; nothing was written for it. */
export interface CommandRejected {
  readonly ok: false;
  readonly code: RejectionCode;
  readonly message: string;
  /** Results of a linked group's members, in order. */
  readonly members?: readonly CommandResult[];
}

/** The outcome of one submitted command. */
export type CommandResult = CommandAccepted | CommandRejected;

interface QueuedCommand {
  readonly command: LedgerCommand;
  readonly context: CommandContext | undefined;
  readonly resolve: ((result: CommandResult) => void) | undefined;
  readonly reject: ((error: Error) => void) | undefined;
}

interface DecidedCommand {
  readonly item: QueuedCommand;
  readonly decision: Decision;
  /** Ledger versions assigned to the decision's events, in order. */
  readonly versions: readonly number[];
}

/** A batch decided on a view of the state, not yet applied to it. */
interface DecidedBatch {
  readonly batch: QueuedCommand[];
  /** The batch's changes, over the committed state or over the view of the batch being appended. */
  readonly view: OverlayState;
  /** The ledger version the batch's append expects (the version under the view). */
  readonly expectedVersion: number;
  readonly events: StoredEvent[];
  readonly lastHash: string;
  readonly recordedAt: string;
  readonly results: DecidedCommand[];
  /** Whether any command was rejected. */
  readonly rejected: boolean;
}

/** An append under way: resolves with `undefined` once durable, or with what it failed with. */
interface InFlightBatch {
  readonly decided: DecidedBatch;
  readonly outcome: Promise<unknown>;
}

/**
 * The single writer of one ledger. It queues commands, decides them in batches against its
 * in-memory state, appends each batch's events atomically with one expected-version-fenced call,
 * and resolves every command with its own result: one rejected command never fails the others
 * (a linked group fails as a whole). If another writer appended first it catches up on the tail
 * and decides the batch again. While one batch is being appended it decides the next on top of
 * it and appends that one at once (up to `appendsInFlightMax` appends under way), so deciding and
 * hashing overlap the database's work. The store's chain fence makes this safe: an append commits
 * only after the one below it has, and is refused (nothing written) if that one does not; a
 * refused upper batch is decided again, and callers only ever learn outcomes bottom-up.
 *
 * If the store fails, every command of the batch gets a retriable `WriterFailedError`
 * (`StoreUnavailableError` when the store could not be reached) and the in-memory state is left
 * as it was. The store may nevertheless hold the batch (a commit whose reply was lost), so after
 * any failed store call the writer reads the stream's tail before it decides anything else: a
 * retry with the same ids then answers with the original outcome. It needs no restart: each
 * batch tries the store again. A retriable refusal of a batch of several commands (the store
 * wrote nothing; a server's statement timeout, say) fails none of them: the writer halves its
 * batches and decides them again, failing a command only when it is refused alone.
 *
 * If the tail it reads holds an event it cannot read (a `CorruptEventError`: a damaged or forged
 * row, or an event type or schema version this release's upcasters do not know, e.g. one a newer
 * release's writer appended), it can decide nothing more on this ledger: it stops. The batch's
 * commands (not applied) and every command still queued reject with a `CorruptEventError`
 * (`corrupt_event`, not retriable) that names the ledger, the event's `ledgerVersion` and the
 * codec's `reason`, and so does every later `submit`, at once and without reading the store.
 * Commands of earlier batches that failed with a `WriterFailedError` keep an unknown outcome.
 * `close()` still works; to go on, repair the event or upgrade, and open a new writer (`open`
 * rejects with the codec's `CorruptEventError` while the event is there).
 *
 * It stops the same way on an unreadable event that the store's index returns: a command names
 * a transfer the writer no longer holds in memory (`transfersCachedMax`), or a writer opened from
 * a snapshot never read, so the writer looks the transfer, its resolution and its reversal up
 * ("hydrates" them), and one of those events cannot be read. The batch's commands reject with
 * the `CorruptEventError` (that event's `ledgerVersion`), none of them is applied or written,
 * and the writer stops. It stops rather than refusing only the commands that name that transfer:
 * the event is committed and the log append-only, so the condition is permanent, and the ledger
 * cannot be reopened, replayed or audited past it either; one rule for every unreadable event
 * (the writer stops, `open` refuses) is one an operator can watch for. Before, such a batch
 * failed with a retriable `WriterFailedError`, and its callers retried for ever.
 */
export class LedgerWriter {
  readonly #store: EventStore;
  readonly #tenantId: string;
  readonly #ledgerId: string;
  readonly #codec: EventCodec;
  readonly #currencies: CurrencyRegistry;
  readonly #clock: () => number;
  readonly #batchSizeMax: number;
  readonly #batchWaitMs: number;
  readonly #queueLengthMax: number;
  readonly #backdateWindowMs: number;
  readonly #transfersCachedMax: number;
  readonly #transfersCachedBytesMax: number;
  readonly #snapshotEveryEvents: number;
  readonly #stateBytesMax: number;
  readonly #conflictRetriesMax: number;
  readonly #appendsInFlightMax: number;
  readonly #expiryTimer: NodeJS.Timeout;

  #state: WriterState;
  #lastHash = GENESIS_HASH;
  /** True while the in-memory state holds every transfer ever recorded (no index lookups needed). */
  #transfersComplete = true;
  #lastSnapshotVersion = 0;
  #queue: QueuedCommand[] = [];
  #expiries = new MinHeap<string>();
  /** The expiry heap's size when it was last rebuilt (see {@link #compactExpiries}). */
  #expiriesSizeRebuilt = 0;
  #flushScheduled = false;
  /** The timer of a flush waiting `batchWaitMs`; cleared by `close`, which flushes at once. */
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Most commands in the next batch: `batchSizeMax`, halved by each retriable refusal of a batch
   * of more than one command (whose commands are then decided again in smaller batches rather
   * than failed), doubled back after {@link BATCH_GROWTH_APPENDS} appends in a row succeed.
   */
  #batchSizeCap = 1;
  /** Appends that succeeded since the cap last changed. */
  #appendsAtCap = 0;
  #running: Promise<void> | undefined;
  #closed = false;
  /**
   * True after a store call failed: the stream may hold events memory lacks (an append whose
   * reply was lost may have committed), so the tail is read before the next decision.
   */
  #tailUnknown = false;
  /**
   * Set once the stream's tail, or the index, held an event this writer cannot read: it decides
   * nothing more, and every command is rejected with this error.
   */
  #stopped: CorruptEventError | undefined;

  private constructor(options: LedgerWriterOptions) {
    checkOptions(options);
    // Every event carries both ids; one off the pattern would make each unreadable.
    for (const [field, value] of [['tenantId', options.tenantId], ['ledgerId', options.ledgerId]] as const) {
      if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
        throw new InvalidInputError([{ path: [field], message: ID_PATTERN_MESSAGE }]);
      }
    }
    checkCollaborator(options.store, 'store', ['append', 'readStream'], 'an EventStore (an object with append, readStream and the rest of the port)', true);
    // Before the codec is made: a null would otherwise become the default registry.
    checkCollaborator(options.currencies, 'currencies', ['get'], 'a CurrencyRegistry');
    this.#store = options.store;
    this.#tenantId = options.tenantId;
    this.#ledgerId = options.ledgerId;
    this.#currencies = options.currencies ?? new CurrencyRegistry();
    this.#codec = new EventCodec({
      currencies: this.#currencies,
      ...(options.upcasters === undefined ? {} : { upcasters: options.upcasters }),
    });
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new InvalidInputError([{ path: ['clock'], message: 'must be a function returning the time in epoch ms' }]);
    }
    this.#clock = options.clock ?? Date.now;
    this.#batchSizeMax = bounded('batchSizeMax', options.batchSizeMax, 1_000, 1, BATCH_SIZE_MAX_LIMIT);
    this.#batchSizeCap = this.#batchSizeMax;
    this.#batchWaitMs = bounded('batchWaitMs', options.batchWaitMs, 0, 0, 1_000);
    this.#queueLengthMax = bounded('queueLengthMax', options.queueLengthMax, 100_000, 1, QUEUE_LENGTH_MAX_LIMIT);
    this.#backdateWindowMs = bounded('backdateWindowMs', options.backdateWindowMs, BACKDATE_WINDOW_MS_DEFAULT, 0, 10 * 366 * 86_400_000);
    this.#transfersCachedMax = bounded('transfersCachedMax', options.transfersCachedMax, 200_000, 0, 50_000_000);
    this.#transfersCachedBytesMax = bounded('transfersCachedBytesMax', options.transfersCachedBytesMax, TRANSFERS_CACHED_BYTES_DEFAULT, 0, 2 ** 40);
    this.#snapshotEveryEvents = bounded('snapshotEveryEvents', options.snapshotEveryEvents, 50_000, 0, 100_000_000);
    this.#stateBytesMax = bounded('stateBytesMax', options.stateBytesMax, STATE_BYTES_MAX_DEFAULT, 0, SNAPSHOT_STATE_BYTES_MAX);
    this.#conflictRetriesMax = bounded('conflictRetriesMax', options.conflictRetriesMax, 8, 0, 100);
    this.#appendsInFlightMax = bounded('appendsInFlightMax', options.appendsInFlightMax, 2, 1, APPENDS_IN_FLIGHT_MAX_LIMIT);
    const expiryCheckIntervalMs = bounded('expiryCheckIntervalMs', options.expiryCheckIntervalMs, 1_000, 10, 60_000);
    this.#state = freshState();
    this.#expiryTimer = setInterval(() => this.#enqueueExpiries(), expiryCheckIntervalMs);
    this.#expiryTimer.unref();
  }

  /**
   * Opens the writer of a ledger: loads the latest snapshot (if its hash matches the stream, its
   * digest its content, and its content holds together; otherwise it replays the whole stream),
   * then folds the tail of the stream. Start-up time depends on the tail, not on the history.
   * Throws `InvalidInputError` for options that are not an object (at `options`) and for a
   * tenant or ledger id off the id pattern, and `LimitExceededError` for an option outside its
   * range.
   */
  static async open(options: LedgerWriterOptions): Promise<LedgerWriter> {
    const writer = new LedgerWriter(options);
    try {
      await writer.#load();
    } catch (error) {
      clearInterval(writer.#expiryTimer);
      throw error;
    }
    return writer;
  }

  /** The tenant this writer writes for. */
  get tenantId(): string {
    return this.#tenantId;
  }

  /** The ledger this writer owns. */
  get ledgerId(): string {
    return this.#ledgerId;
  }

  /** Version of the last event applied to the in-memory state. */
  get version(): number {
    return this.#state.version;
  }

  /** Hash of the last event applied. */
  get lastHash(): string {
    return this.#lastHash;
  }

  /**
   * Bytes the ledger's accounts (with the lifecycle command ids they remember) and open holds take
   * as a snapshot stores them, bounded from above, as of the last committed batch (for metrics;
   * compare it with `stateBytesMax`).
   */
  get stateBytes(): number {
    return this.#state.stateBytes ?? 0;
  }

  /** Commands waiting to be decided. */
  get queueLength(): number {
    return this.#queue.length;
  }

  /**
   * Hold timeouts the writer keeps track of (for metrics): at most about twice the open holds
   * with a timeout, plus {@link EXPIRIES_COMPACT_MIN}, however many holds were resolved.
   */
  get holdTimeoutsTracked(): number {
    return this.#expiries.size;
  }

  /** The codec this writer encodes with; readers of the same ledger can share it. */
  get codec(): EventCodec {
    return this.#codec;
  }

  /** A copy of an account's current state, or `undefined`. */
  account(accountId: string): AccountState | undefined {
    const account = this.#state.accounts.get(accountId);
    return account === undefined ? undefined : { ...account };
  }

  /** Copies of every account's current state. */
  accounts(): AccountState[] {
    return [...this.#state.accounts.values()].map((account) => ({ ...account }));
  }

  /** A copy of a hold that is still pending, or `undefined`. */
  pendingHold(pendingId: string): TransferRecord | undefined {
    const hold = this.#state.transfers.get(pendingId);
    return hold !== undefined && hold.kind === 'hold' && hold.resolution === 'pending' ? { ...hold } : undefined;
  }

  /**
   * Queues a command and resolves with its own result once its batch is durably appended.
   * Commands come from `parseCommand`, or are built in code in the same shape: one whose fields
   * could not become events the ledger reads back (an id off its pattern, a metadata key past
   * its limits or named `__proto__`, a number where a bigint belongs, an amount above
   * `AMOUNT_MINOR_MAX` minor units, a context's correlation id over 128 characters, …), or a
   * linked group two of whose members share a transfer id (as `parseCommand.linked` refuses it),
   * rejects at once with `InvalidInputError` (`UnknownCurrencyError` for an account in an undeclared
   * currency) and is neither queued nor written, and the commands batched with it are unaffected.
   * Rejects with `OverloadedError` at once when the queue is full, `WriterClosedError` after
   * `close()`, and `WriterFailedError` (retriable; `StoreUnavailableError` when the store could
   * not be reached) when the store could not take its batch. After a `WriterFailedError` the
   * command may have been applied: submit it again with the same id to learn its outcome.
   * Rejects with `CorruptEventError` (not retriable) once the writer has met an event on the
   * stream's tail, or one the store's index returned for a transfer a command names, that it
   * cannot read: it has stopped (see {@link LedgerWriter}), and every later call rejects with the
   * same error at once.
   */
  submit(command: LedgerCommand, context?: CommandContext): Promise<CommandResult> {
    if (this.#closed) return Promise.reject(new WriterClosedError());
    if (this.#stopped !== undefined) return Promise.reject(this.#stopped);
    if (this.#queue.length >= this.#queueLengthMax) return Promise.reject(new OverloadedError(this.#queueLengthMax));
    const refused = commandError(command, context, this.#currencies);
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise<CommandResult>((resolve, reject) => {
      this.#queue.push({ command, context, resolve, reject });
      this.#scheduleFlush();
    });
  }

  /** Stops accepting commands, waits until every queued command is resolved, stops timers. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#expiryTimer);
    this.#cancelFlushTimer();
    while (this.#running !== undefined || this.#queue.length > 0) {
      if (this.#running === undefined) this.#startRun();
      await this.#running;
    }
    await this.#snapshotting;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#running !== undefined) return;
    this.#flushScheduled = true;
    const start = (): void => {
      this.#flushScheduled = false;
      this.#flushTimer = undefined;
      this.#startRun();
    };
    if (this.#batchWaitMs === 0 || this.#queue.length >= this.#batchSizeCap) setImmediate(start);
    else this.#flushTimer = setTimeout(start, this.#batchWaitMs);
  }

  /** Drops a flush waiting `batchWaitMs`: the run being started (or `close`) takes the queue now. */
  #cancelFlushTimer(): void {
    if (this.#flushTimer === undefined) return;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#flushScheduled = false;
  }

  #startRun(): void {
    if (this.#running !== undefined) return;
    this.#cancelFlushTimer();
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#queue.length > 0) this.#scheduleFlush();
    });
  }

  async #drain(): Promise<void> {
    /** Appends under way, lowest first; each was decided on the view of the one below it. */
    const inFlight: InFlightBatch[] = [];
    /** A batch decided on top of the ones in flight that appends nothing: it is settled once they are in. */
    let held: DecidedBatch | undefined;
    /** Nothing more is decided on top until every append in flight is in (a held batch, or one that needs the store first). */
    let barrier = false;
    try {
      while (this.#queue.length > 0 || inFlight.length > 0 || held !== undefined) {
        if (inFlight.length === 0) {
          barrier = false;
          const stopped = this.#stopped;
          if (stopped !== undefined) {
            // Nothing is in flight or held here (the careful path runs with nothing in flight).
            for (const item of this.#queue.splice(0)) item.reject?.(stopped);
            continue;
          }
          if (held !== undefined) {
            const settled = held;
            held = undefined;
            rebaseOverlay(settled.view, this.#state);
            await this.#finishWithoutAppend(settled);
            continue;
          }
          const batch = this.#takeBatch(0);
          const decided = this.#tailUnknown ? undefined : await this.#tryDecide(batch, this.#state, this.#lastHash);
          if (decided === undefined) await this.#processBatch(batch);
          else if (decided.events.length > 0) {
            inFlight.push(this.#startAppend(decided));
            await this.#letAppendLeave();
          } else await this.#finishWithoutAppend(decided);
          continue;
        }
        if (!barrier && inFlight.length < this.#appendsInFlightMax && this.#queue.length > 0) {
          // Decide the next batch on top of the highest one in flight and append it at once: the
          // store's chain fence refuses it unless every batch below it commits first.
          const top = (inFlight[inFlight.length - 1] as InFlightBatch).decided;
          const batch = this.#takeBatch(inFlight.length);
          const next = await this.#tryDecide(batch, top.view, top.lastHash);
          if (next !== undefined && next.events.length > 0) {
            inFlight.push(this.#startAppend(next));
            await this.#letAppendLeave();
            continue;
          }
          barrier = true;
          // Not decidable on top (a command needs the store first): decide it again once these are in.
          if (next === undefined) this.#queue.unshift(...batch);
          else held = next;
        }
        const lowest = inFlight.shift() as InFlightBatch;
        const failure = await lowest.outcome;
        if (failure === undefined) {
          this.#applyDecided(lowest.decided);
          const above = inFlight[0]?.decided ?? held;
          if (above !== undefined) rebaseOverlay(above.view, this.#state);
          continue;
        }
        const stacked = [lowest, ...inFlight.splice(0)];
        const outcomes = [failure, ...(await Promise.all(stacked.slice(1).map((entry) => entry.outcome)))];
        this.#afterFailedAppend(stacked, outcomes, held);
        held = undefined;
      }
    } catch (error) {
      await this.#abandon(inFlight.splice(0), held, error);
    }
  }

  /**
   * What the drain loop does if something it calls throws where nothing should (a bug, or a store
   * that breaks the port in a way no check foresaw): rather than leave callers waiting for ever and
   * the rejection unhandled (fatal to a default Node process), it waits for the appends in flight
   * to finish, then fails their commands and the held batch's with a retriable `WriterFailedError`
   * ("may have been applied": a retry with the same ids learns the outcome), and reads the stream's
   * tail before it decides anything else. Queued commands stay queued for the next run.
   */
  async #abandon(inFlight: readonly InFlightBatch[], held: DecidedBatch | undefined, error: unknown): Promise<void> {
    this.#tailUnknown = true;
    await Promise.all(inFlight.map((entry) => entry.outcome));
    const failure = new WriterFailedError(`the writer failed while appending (the commands may have been applied): ${describe(error)}`, error, 'writer_failed', true);
    for (const entry of inFlight) for (const item of entry.decided.batch) item.reject?.(failure);
    if (held !== undefined) for (const item of held.batch) item.reject?.(failure);
  }

  /**
   * Lets the append just started reach the database before the next batch is decided: the
   * driver sends a query only on a later turn of the event loop, and a decision holds the loop
   * for milliseconds. Without this the two appends would leave together and race at the server.
   */
  async #letAppendLeave(): Promise<void> {
    if (this.#appendsInFlightMax > 1 && this.#queue.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /**
   * The lowest of the stacked appends failed; `outcomes` holds every one's (`undefined`: durable).
   * An append that succeeded proves every one below it committed (each was fenced on the hash of
   * the last event below it), so those are applied. Above them, a refused append wrote nothing:
   * its commands go back to the front of the queue and are decided again after the tail is read
   * (the careful path, with its retry limit), and so do the commands of every append above it,
   * whatever their own failure: each was fenced on the hash of the last event below it, which a
   * refused append never wrote. Any other failure leaves its outcome unknown: its callers get a
   * retriable error, as for a single append.
   */
  #afterFailedAppend(stacked: readonly InFlightBatch[], outcomes: readonly unknown[], held: DecidedBatch | undefined): void {
    // Whatever failed, the store may now be ahead of memory: never decide again before reading it.
    this.#tailUnknown = true;
    const proven = outcomes.lastIndexOf(undefined);
    for (let i = 0; i <= proven; i += 1) {
      const decided = (stacked[i] as InFlightBatch).decided;
      rebaseOverlay(decided.view, this.#state);
      this.#applyDecided(decided);
    }
    const again: QueuedCommand[] = [];
    // Whether an append below was refused: then none above it can have been written.
    let refusedBelow = false;
    for (let i = proven + 1; i < stacked.length; i += 1) {
      const failure = outcomes[i];
      const { batch } = (stacked[i] as InFlightBatch).decided;
      if (refusedBelow || hasErrorCode(failure, DECIDE_AGAIN) || this.#shrinkFor(batch, failure)) again.push(...batch);
      else this.#failBatch(batch, failure, true);
      if (hasErrorCode(failure, REFUSED)) refusedBelow = true;
    }
    // A held batch was decided on top of them all: decide it again too.
    if (held !== undefined) again.push(...held.batch);
    this.#queue.unshift(...again);
  }

  /**
   * The next batch to decide, with `depth` appends in flight. A queue of 1,000 or more that is
   * found with nothing in flight, or that fits in one batch, is cut in two, so the first half's
   * append starts while the second half is decided instead of all of it waiting for one decision
   * and then one append. A longer queue behind an append in flight is taken in whole batches.
   */
  #takeBatch(depth: number): QueuedCommand[] {
    const length = this.#queue.length;
    const size = this.#batchSizeCap;
    const split = this.#appendsInFlightMax > 1 && length >= SPLIT_QUEUE_LENGTH_MIN && (depth === 0 || length <= size);
    return this.#queue.splice(0, split ? Math.min(size, Math.ceil(length / 2)) : size);
  }

  /**
   * Hydrates and decides a batch on `base` (the committed state, or the view of the batch being
   * appended) after the event hashed `previousHash`; `undefined` when that needs the slow path (the store is ahead, or a lookup failed),
   * which then decides it again from scratch with its retries.
   */
  async #tryDecide(batch: QueuedCommand[], base: LedgerState, previousHash: string): Promise<DecidedBatch | undefined> {
    try {
      // Optimistic about the commands' own ids: a new transfer id is not looked up in the store
      // (most ids are new; the append's unique keys refuse one that is not, and the careful path
      // then looks everything up and answers it as the duplicate it is).
      await this.#hydrate(batch, base, false);
      const decided = this.#decideBatch(batch, base, previousHash);
      // A rejection must not stand for a retry of a transfer memory has evicted: its answer is
      // the original outcome. Such a batch takes the careful path.
      if (decided.rejected && !this.#transfersComplete && (await this.#anyRejectedIdRecorded(decided, base))) return undefined;
      return decided;
    } catch {
      return undefined;
    }
  }

  /** Whether the store holds the own transfer id of any rejected command that memory does not know. */
  async #anyRejectedIdRecorded(decided: DecidedBatch, base: LedgerState): Promise<boolean> {
    const ids = new Set<string>();
    const visit = (command: LedgerCommand): void => {
      if (command.kind === 'linked') command.commands.forEach(visit);
      else if (isTransferLike(command) && base.transfers.get(command.transferId) === undefined) ids.add(command.transferId);
    };
    for (const entry of decided.results) if (!entry.decision.ok) visit(entry.item.command);
    if (ids.size === 0) return false;
    const found = await this.#findByKeys([...ids].map((id) => `transfer:${id}`));
    return found.size > 0;
  }

  #startAppend(decided: DecidedBatch): InFlightBatch {
    let appended: Promise<unknown>;
    try {
      // A store whose `append` throws at once, or answers something other than a promise, fails
      // the batch as a rejected promise would: the throw escaped the drain loop, leaving the
      // batches in flight unanswered and the rejection unhandled (fatal to a default Node process).
      appended = Promise.resolve(this.#store.append({ tenantId: this.#tenantId, ledgerId: this.#ledgerId, expectedVersion: decided.expectedVersion, events: decided.events }));
    } catch (error) {
      appended = Promise.reject(error);
    }
    const outcome = appended.then(
      () => undefined,
      (error: unknown) => error ?? new Error('append failed'),
    );
    return { decided, outcome };
  }

  /** A batch that appends nothing (duplicates, rejections): settle it, after checking the tail if anything was rejected. */
  async #finishWithoutAppend(decided: DecidedBatch): Promise<void> {
    // A rejection decided on a state another writer has moved past could be wrong: the slow path checks the tail.
    if (decided.rejected) await this.#processBatch(decided.batch);
    else this.#applyDecided(decided);
  }

  /** The batch is durable (or needed no append): apply it to memory and answer its callers. */
  #applyDecided(decided: DecidedBatch): void {
    if (decided.events.length > 0 && this.#batchSizeCap < this.#batchSizeMax) {
      this.#appendsAtCap += 1;
      if (this.#appendsAtCap >= BATCH_GROWTH_APPENDS) {
        this.#batchSizeCap = Math.min(this.#batchSizeMax, 2 * this.#batchSizeCap);
        this.#appendsAtCap = 0;
      }
    }
    commitOverlay(decided.view, this.#state);
    this.#lastHash = decided.lastHash;
    for (const entry of decided.results) settle(entry, decided.recordedAt);
    this.#afterCommit(decided.events);
  }

  #failBatch(batch: readonly QueuedCommand[], error: unknown, appending: boolean): void {
    // A refused append writes nothing; any other failure of the append leaves its outcome unknown.
    const outcome = appending && !hasErrorCode(error, REFUSED) ? 'may have been applied' : 'were not applied';
    const message = `could not append a batch of ${batch.length} commands (they ${outcome}): ${describe(error)}`;
    // A refusal a retry would meet again (an inline projection's read models at another schema
    // version, a store's limit or check) is passed on as not retriable; every other failure may
    // pass next time.
    const retriable = !isFinalRefusal(error) && !(error instanceof ClockReadingError);
    const failure = hasErrorCode(error, STORE_UNAVAILABLE) ? new StoreUnavailableError(message, error) : new WriterFailedError(message, error, 'writer_failed', retriable);
    for (const item of batch) item.reject?.(failure);
  }

  #enqueueExpiries(): void {
    if (this.#closed || this.#stopped !== undefined) return;
    // The time a batch would record: the clock may be behind the last recorded event. A clock
    // that cannot be read fails the next batch that reads it (with its reason), not this timer.
    let reading: number;
    try {
      reading = this.#now();
    } catch {
      return;
    }
    const now = Math.max(reading, this.#state.lastRecordedAtMs);
    let added = 0;
    while ((this.#expiries.peekKey() ?? Infinity) <= now && this.#queue.length < this.#queueLengthMax) {
      const timeoutAtMs = this.#expiries.peekKey() as number;
      const pendingId = this.#expiries.pop() as string;
      const hold = this.#state.transfers.get(pendingId);
      if (hold === undefined || hold.resolution !== 'pending') continue;
      // No caller waits on an expiry to retry it, so the writer does: a failed batch, or a clock
      // that stepped back before the batch was decided, puts the hold back in the heap.
      const again = (): void => this.#expiries.push(timeoutAtMs, pendingId);
      this.#queue.push({
        command: { kind: 'expirePending', pendingId },
        context: undefined,
        resolve: (result) => {
          if (!result.ok && result.code === 'pending_not_expired') again();
        },
        reject: again,
      });
      added += 1;
    }
    if (added > 0) this.#scheduleFlush();
  }

  /** The careful path: catch up if needed, hydrate, decide, append, and on a conflict catch up and do it all again. */
  async #processBatch(batch: QueuedCommand[]): Promise<void> {
    let lastError: unknown;
    let appending = false;
    for (let attempt = 0; attempt <= this.#conflictRetriesMax; attempt += 1) {
      appending = false;
      try {
        if (this.#tailUnknown) {
          await this.#catchUpOrStop();
          this.#tailUnknown = false;
        }
        await this.#hydrateOrStop(batch);
        const decided = this.#decideBatch(batch, this.#state, this.#lastHash);
        if (decided.events.length > 0) {
          appending = true;
          await this.#store.append({
            tenantId: this.#tenantId,
            ledgerId: this.#ledgerId,
            expectedVersion: decided.expectedVersion,
            events: decided.events,
          });
        } else if (decided.rejected) {
          // No append fences this batch, so check the stream still ends where memory does: a
          // rejection decided on a state another writer has moved past could be wrong (it may
          // even have applied the very same transfer id).
          await this.#confirmTail();
        }
        this.#applyDecided(decided);
        return;
      } catch (error) {
        lastError = error;
        // Whatever failed, the store may now be ahead of memory: never decide again before reading it.
        this.#tailUnknown = true;
        if (this.#stopped !== undefined) break;
        if (hasErrorCode(error, DECIDE_AGAIN)) continue;
        break;
      }
    }
    const stopped = this.#stopped;
    if (stopped !== undefined) {
      // Met on the tail read or the index lookup before this attempt decided anything, and an
      // earlier attempt only goes on to this one after its append was refused: nothing of the
      // batch was appended.
      for (const item of batch) item.reject?.(stopped);
      return;
    }
    if (appending && this.#shrinkFor(batch, lastError)) {
      // Decided again, in smaller batches, by the drain loop.
      this.#queue.unshift(...batch);
      return;
    }
    this.#failBatch(batch, lastError, appending);
  }

  /**
   * Whether a batch whose append was refused should be decided again in smaller batches rather
   * than failed: it holds more than one command and the refusal may pass on a retry (a server's
   * statement timeout cancels a large append that a smaller one would finish within, and callers
   * retrying together would only form the same batch again). Halves the batch size cap when so.
   * Each refusal halves the cap or, at one command, fails that command: the retries are bounded.
   */
  #shrinkFor(batch: readonly QueuedCommand[], failure: unknown): boolean {
    if (batch.length <= 1 || !hasErrorCode(failure, APPEND_REFUSED) || isFinalRefusal(failure)) return false;
    this.#batchSizeCap = Math.max(1, Math.min(this.#batchSizeCap, Math.ceil(batch.length / 2)));
    this.#appendsAtCap = 0;
    return true;
  }

  /**
   * Catches up; an event on the tail that cannot be read (`corrupt_event`, from the codec, the
   * chain check or the store) stops the writer: reading the tail again would meet it again, and
   * nothing can be decided on a state that lacks it. Throws the error the writer stopped with.
   */
  async #catchUpOrStop(): Promise<void> {
    try {
      await this.#catchUp();
    } catch (error) {
      // By code: a store may throw another copy of ledger-core's classes.
      if (!hasErrorCode(error, ['corrupt_event'])) throw error;
      throw this.#stop(error, this.#state.version + 1, 'the writer cannot read this event');
    }
  }

  /**
   * Hydrates the batch on the committed state (see `#hydrate`); an event the index returns that
   * cannot be read (`corrupt_event`, from the codec or the store) stops the writer, as one on the
   * tail does, and throws the error it stopped with. Stopping, rather than refusing only the
   * commands that name that transfer, because the condition is permanent and the ledger's own:
   * the event is committed (the lookup takes no event above the committed version), the log is
   * append-only, so every later lookup meets it again; `open`, replays and audits of the ledger
   * fail on it too; and an event a newer release wrote means this release is too old for the
   * ledger. An operator must repair the event or upgrade either way, and one rule for every
   * unreadable event (the writer stops, `open` refuses) is easier to watch for than a writer that
   * goes on refusing a few commands. Nothing of the batch is in memory or in the store: the
   * lookup comes before the batch is decided.
   */
  async #hydrateOrStop(batch: readonly QueuedCommand[]): Promise<void> {
    try {
      await this.#hydrate(batch, this.#state);
    } catch (error) {
      if (!hasErrorCode(error, ['corrupt_event'])) throw error;
      throw this.#stop(error, undefined, 'the writer cannot read this event, which a command names through the ledger’s index');
    }
  }

  /**
   * Stops the writer on `error` (a `corrupt_event` error): every later command rejects with the
   * returned `CorruptEventError`, which names the ledger, the event's `ledgerVersion` (the
   * error's, else `fallbackVersion`), its global position when known, and the error's `reason`
   * followed by `why`.
   */
  #stop(error: unknown, fallbackVersion: number | undefined, why: string): CorruptEventError {
    const found = error as { readonly ledgerVersion?: unknown; readonly reason?: unknown; readonly globalPosition?: unknown };
    const ledgerVersion = typeof found.ledgerVersion === 'number' ? found.ledgerVersion : fallbackVersion;
    const globalPosition = typeof found.globalPosition === 'string' ? found.globalPosition : undefined;
    const reason = typeof found.reason === 'string' ? found.reason : describe(error);
    this.#stopped = new CorruptEventError(
      `${reason} (${why}, so it decides nothing more on this ledger and has stopped: repair the event or upgrade, then open a new writer)`,
      {
        ...(ledgerVersion === undefined ? {} : { ledgerVersion }),
        ...(globalPosition === undefined ? {} : { globalPosition }),
        tenantId: this.#tenantId,
        ledgerId: this.#ledgerId,
      },
      error,
    );
    clearInterval(this.#expiryTimer);
    return this.#stopped;
  }

  /** Throws `VersionConflictError` when the stream holds an event after the in-memory version. */
  async #confirmTail(): Promise<void> {
    const [next] = await this.#store.readStream({
      tenantId: this.#tenantId,
      ledgerId: this.#ledgerId,
      direction: 'forward',
      fromVersion: this.#state.version + 1,
      limit: 1,
    });
    if (next !== undefined) throw new VersionConflictError(this.#state.version);
  }

  /** The clock as whole epoch ms; {@link ClockReadingError} for a reading no time can be recorded at. */
  #now(): number {
    const reading: unknown = this.#clock();
    if (typeof reading !== 'number' || !(reading >= 0 && reading <= RECORDED_AT_MS_MAX)) throw new ClockReadingError(reading);
    return Math.floor(reading);
  }

  #decideBatch(batch: QueuedCommand[], base: LedgerState, previousHashBelow: string): DecidedBatch {
    const nowMs = Math.max(this.#now(), base.lastRecordedAtMs);
    const context = { nowMs, backdateWindowMs: this.#backdateWindowMs, stateBytesMax: this.#stateBytesMax };
    const view = overlayState(base);
    const events: StoredEvent[] = [];
    const results: DecidedCommand[] = [];
    let previousHash = previousHashBelow;
    let dataChars = 0;
    let rejected = false;
    for (let index = 0; index < batch.length; index += 1) {
      const item = batch[index] as QueuedCommand;
      const decision = decide(item.command, view, context);
      const versions: number[] = [];
      if (decision.ok) {
        const drafts = decision.events;
        // A store takes at most APPEND_EVENTS_MAX events and APPEND_DATA_CHARS_MAX characters of
        // data per append and refuses the whole append beyond either, so a batch of linked groups
        // (up to 64 events per command) would fail every command, and every retry of them, for
        // good. The batch ends before the command that would pass either; the rest of it goes
        // back to the front of the queue, in order, to be decided on top of this one. (`decide`
        // left the view unchanged, and nothing is evolved before the check, so dropping this
        // decision is sound.)
        if (events.length > 0 && events.length + drafts.length > APPEND_EVENTS_MAX) {
          this.#queue.unshift(...batch.splice(index));
          break;
        }
        const encoded = new Array<StoredEvent>(drafts.length);
        let hash = previousHash;
        let chars = 0;
        for (let k = 0; k < drafts.length; k += 1) {
          const stored = this.#encode(drafts[k] as EventDraft, view.version + 1 + k, nowMs, item.context, hash);
          hash = stored.hash;
          chars += dataJsonOf(stored).length;
          encoded[k] = stored;
        }
        if (events.length > 0 && dataChars + chars > APPEND_DATA_CHARS_MAX) {
          this.#queue.unshift(...batch.splice(index));
          break;
        }
        for (let k = 0; k < drafts.length; k += 1) {
          const ledgerVersion = view.version + 1;
          evolve(view, (drafts[k] as EventDraft).event, { ledgerVersion, recordedAtMs: nowMs, effectiveAtMs: (drafts[k] as EventDraft).effectiveAtMs });
          events.push(encoded[k] as StoredEvent);
          versions.push(ledgerVersion);
        }
        previousHash = hash;
        dataChars += chars;
      } else {
        rejected = true;
      }
      results.push({ item, decision, versions });
    }
    return { batch, view, expectedVersion: base.version, events, lastHash: previousHash, recordedAt: new Date(nowMs).toISOString(), results, rejected };
  }

  #encode(draft: EventDraft, ledgerVersion: number, recordedAtMs: number, context: CommandContext | undefined, previousHash: string): StoredEvent {
    return this.#codec.encode(draft, {
      eventId: randomUUID(),
      tenantId: this.#tenantId,
      ledgerId: this.#ledgerId,
      ledgerVersion,
      recordedAtMs,
      correlationId: context?.correlationId ?? null,
      causationId: context?.causationId ?? null,
      metadata: context?.metadata ?? {},
      previousHash,
    });
  }

  #afterCommit(events: readonly StoredEvent[]): void {
    for (const event of events) {
      if (event.type === 'TransferPending' && typeof event.data['timeoutMs'] === 'number') {
        this.#expiries.push(Date.parse(event.recordedAt) + event.data['timeoutMs'], event.data['transferId'] as string);
      }
    }
    this.#compactExpiries();
    this.#evictTransfers();
    this.#snapshotIfDue();
  }

  /**
   * Starts saving a snapshot in the background once `snapshotEveryEvents` events have been applied
   * since the last one (saved, or loaded by `open`). Called after each committed batch, and at the
   * end of `open`: a writer that replayed the log (no snapshot, or one it did not use, such as a
   * previous release's) saves one at once, so the next open need not replay it all again, even if
   * this writer never commits anything. A failed save fails nothing: snapshots only speed up `open`.
   */
  #snapshotIfDue(): void {
    if (this.#snapshotEveryEvents > 0 && this.#snapshotting === undefined && this.#state.version - this.#lastSnapshotVersion >= this.#snapshotEveryEvents) {
      // The state is serialized now, synchronously; saving it does not hold up the next batch.
      const attempted = this.#state.version;
      this.#snapshotting = this.saveSnapshot()
        .catch(() => {
          // Tried again after another snapshotEveryEvents events, not after every batch: a state
          // the store refuses (too large, say) was serialized again, for seconds, after each one.
          this.#lastSnapshotVersion = Math.max(this.#lastSnapshotVersion, attempted);
        })
        .finally(() => {
          this.#snapshotting = undefined;
        });
    }
  }

  /** The snapshot being saved in the background, if any. */
  #snapshotting: Promise<void> | undefined;

  /** Saves a snapshot of the current state now. Snapshots only speed up `open`; losing one loses nothing. */
  async saveSnapshot(): Promise<void> {
    const version = this.#state.version;
    await this.#store.saveSnapshot({
      tenantId: this.#tenantId,
      ledgerId: this.#ledgerId,
      ledgerVersion: version,
      hash: this.#lastHash,
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      state: serializeState(this.#state, this.#state.accounts.values(), this.#state.transfers.values(), this.#currencies, this.#lastHash),
    });
    this.#lastSnapshotVersion = version;
  }

  /**
   * A hold posted or voided before its timeout stays in the expiry heap until then (it is skipped
   * when it comes up), so with long timeouts the heap would hold every hold of the whole window
   * (up to 366 days of them). Once it has doubled since it was last built, and holds at least
   * EXPIRIES_COMPACT_MIN entries, it is built again from the holds still open: memory stays
   * proportional to the open holds, at a cost of one pass over the transfers in memory per doubling.
   */
  #compactExpiries(): void {
    const size = this.#expiries.size;
    if (size < EXPIRIES_COMPACT_MIN || size < 2 * this.#expiriesSizeRebuilt) return;
    const rebuilt = new MinHeap<string>();
    for (const record of this.#state.transfers.values()) {
      if (record.kind === 'hold' && record.resolution === 'pending' && record.timeoutAtMs !== undefined) rebuilt.push(record.timeoutAtMs, record.id);
    }
    this.#expiries = rebuilt;
    this.#expiriesSizeRebuilt = Math.max(rebuilt.size, EXPIRIES_COMPACT_MIN / 2);
  }

  #evictTransfers(): void {
    const transfers = this.#state.transfers;
    const sized = transfers instanceof TransferStore ? transfers : undefined;
    const bytes = (): number => sized?.estimatedBytes ?? 0;
    if (transfers.size <= this.#transfersCachedMax && bytes() <= this.#transfersCachedBytesMax) {
      this.#evictAgainAt = undefined;
      return;
    }
    // A walk that found too little to drop (open holds, which stay) is not repeated after every
    // batch, only once the records have grown by a tenth of a bound since.
    const again = this.#evictAgainAt;
    if (again !== undefined && transfers.size < again.size && bytes() < again.bytes) return;
    const target = Math.floor(this.#transfersCachedMax * 0.9);
    const targetBytes = Math.floor(this.#transfersCachedBytesMax * 0.9);
    for (const [id, record] of transfers) {
      if (transfers.size <= target && bytes() <= targetBytes) break;
      if (record.kind === 'hold' && record.resolution === 'pending') continue;
      transfers.delete(id);
      this.#transfersComplete = false;
    }
    this.#evictAgainAt =
      transfers.size <= target && bytes() <= targetBytes
        ? undefined
        : { size: transfers.size + Math.ceil(this.#transfersCachedMax / 10) + 1, bytes: bytes() + Math.ceil(this.#transfersCachedBytesMax / 10) + 1 };
  }

  /** When the transfer records are to be walked again after a walk that left them over a bound (see `#evictTransfers`). */
  #evictAgainAt: { readonly size: number; readonly bytes: number } | undefined;

  /**
   * Loads the transfer records the batch's commands name but memory no longer holds, into the
   * committed state. `base` is what the batch will be decided on: the committed state, or the
   * view of the batch being appended (whose events may already be in the store).
   */
  async #hydrate(batch: readonly QueuedCommand[], base: LedgerState, ownIds = true): Promise<void> {
    if (this.#transfersComplete) return;
    const ids = new Set<string>();
    const want = (id: string | undefined): void => {
      if (id !== undefined && !ids.has(id) && base.transfers.get(id) === undefined) ids.add(id);
    };
    const visit = (command: TransferLikeCommand): void => {
      if (ownIds) want(command.transferId);
      if (command.kind === 'postPending' || command.kind === 'voidPending') want(command.pendingId);
      if (command.kind === 'reverseTransfer') want(command.reversalOf);
    };
    for (const { command } of batch) {
      if (command.kind === 'linked') command.commands.forEach(visit);
      // An expiry of an evicted (so resolved) hold must read as already resolved, not as unknown.
      else if (command.kind === 'expirePending') want(command.pendingId);
      else if (command.kind !== 'openAccount' && command.kind !== 'freezeAccount' && command.kind !== 'unfreezeAccount' && command.kind !== 'closeAccount') visit(command);
    }
    if (ids.size === 0) return;
    // Mostly these are new ids: ask for their creation first, and only for the ones that exist
    // whether they were resolved or reversed (neither can exist without the creation).
    const created = await this.#findByKeys([...ids].map((id) => `transfer:${id}`));
    if (created.size === 0) return;
    const existing = [...ids].filter((id) => created.has(`transfer:${id}`));
    const later = await this.#findByKeys(
      existing.flatMap((id) => [`resolution:${id}`, `reversal:${id}`]),
    );
    // Every event is read through the codec first, and nothing is taken into memory until all
    // are: one it cannot read throws `CorruptEventError` (see `#hydrateOrStop`).
    const records: [string, TransferRecord][] = [];
    for (const id of existing) {
      const decoded = this.#decodeIndexed(created.get(`transfer:${id}`) as StoredEvent);
      const record = transferRecordOf(decoded.event, decoded.meta);
      if (record === undefined) continue;
      const resolution = later.get(`resolution:${id}`);
      if (record.kind === 'hold' && resolution !== undefined) {
        const resolved = this.#decodeIndexed(resolution).event;
        if (resolved.type === 'PendingPosted') record.resolution = 'posted';
        else if (resolved.type === 'PendingVoided') record.resolution = 'voided';
        else if (resolved.type === 'PendingExpired') record.resolution = 'expired';
        else throw new CorruptEventError(`a ${resolved.type} event holds the index key resolution:${id}`, { ledgerVersion: resolution.ledgerVersion });
      }
      const reversal = later.get(`reversal:${id}`);
      if (reversal !== undefined) {
        const reversing = this.#decodeIndexed(reversal).event;
        if (reversing.type !== 'TransferPosted') throw new CorruptEventError(`a ${reversing.type} event holds the index key reversal:${id}`, { ledgerVersion: reversal.ledgerVersion });
        record.reversedBy = reversing.transferId;
      }
      records.push([id, record]);
    }
    for (const [id, record] of records) this.#state.transfers.set(id, record);
  }

  /**
   * An event the index returned, decoded; the codec's `CorruptEventError` when it cannot be read,
   * with the event's `ledgerVersion` when the codec could not tell it (a garbled envelope).
   */
  #decodeIndexed(stored: StoredEvent): DecodedEvent {
    try {
      return this.#codec.decode(stored);
    } catch (error) {
      const version: unknown = stored?.ledgerVersion;
      const found = error as { readonly ledgerVersion?: unknown; readonly reason?: unknown };
      if (!hasErrorCode(error, ['corrupt_event']) || found.ledgerVersion !== undefined || !Number.isSafeInteger(version)) throw error;
      throw new CorruptEventError(typeof found.reason === 'string' ? found.reason : describe(error), { ledgerVersion: version as number }, error);
    }
  }

  /**
   * Looks keys up in the store's index, in pages; throws `VersionConflictError` when one was
   * claimed past the committed version (another writer appended). The committed version, not the
   * version of the view a batch is decided on: callers only ask for ids that view does not hold,
   * so no event of this writer's own appends in flight can answer, and an event above the
   * committed version is another writer's. Taking one into memory would make catching up fold it
   * a second time ("recorded twice"), half-applied, on every later batch.
   */
  async #findByKeys(keys: readonly string[]): Promise<Map<string, StoredEvent>> {
    const knownVersion = this.#state.version;
    const found = new Map<string, StoredEvent>();
    for (let start = 0; start < keys.length; start += INDEX_KEYS_MAX) {
      const page = await this.#store.findByIndexKeys({ tenantId: this.#tenantId, ledgerId: this.#ledgerId, keys: keys.slice(start, start + INDEX_KEYS_MAX) });
      for (const [key, event] of page) {
        // The index is ahead of memory: another writer appended. Fold its events first.
        if (event.ledgerVersion > knownVersion) throw new VersionConflictError(knownVersion, event.ledgerVersion);
        found.set(key, event);
      }
    }
    return found;
  }

  async #load(): Promise<void> {
    const snapshot = await this.#store.loadSnapshot({ tenantId: this.#tenantId, ledgerId: this.#ledgerId });
    if (snapshot !== null && snapshot.schemaVersion === SNAPSHOT_SCHEMA_VERSION) {
      const [atSnapshot] = await this.#store.readStream({
        tenantId: this.#tenantId,
        ledgerId: this.#ledgerId,
        direction: 'forward',
        fromVersion: snapshot.ledgerVersion,
        limit: 1,
      });
      // The snapshot is used only if it is bound to the stream (the event at its version has its
      // hash) and its state to it (`restoreState` checks the state's digest against that hash, and
      // its consistency), and if it was taken when that event was the last: its last recorded
      // time is that event's. A store's snapshots may be writable where its events are not
      // (PostgreSQL's application role may UPDATE them): a state altered there that still parsed
      // (an account dropped, a balance raised, a time moved ahead) made the writer decide on what
      // the log does not hold, and append events no replay can fold. One it does not use costs a
      // replay of the log, nothing else.
      if (atSnapshot !== undefined && atSnapshot.ledgerVersion === snapshot.ledgerVersion && atSnapshot.hash === snapshot.hash) {
        const restored = restoreState(snapshot.state, this.#currencies, snapshot.hash);
        if (restored !== undefined && restored.version === snapshot.ledgerVersion && restored.lastRecordedAtMs === Date.parse(atSnapshot.recordedAt)) {
          this.#state = restored as WriterState;
          this.#lastHash = snapshot.hash;
          this.#lastSnapshotVersion = snapshot.ledgerVersion;
          this.#transfersComplete = false;
        }
      }
    }
    await this.#catchUp();
    // Catching up pushed the tail's holds as it folded them (those resolved later in the tail
    // too); the snapshot's were not. Track each hold still open once, from the state.
    const expiries = new MinHeap<string>();
    for (const record of this.#state.transfers.values()) {
      if (record.kind === 'hold' && record.resolution === 'pending' && record.timeoutAtMs !== undefined) {
        expiries.push(record.timeoutAtMs, record.id);
      }
    }
    this.#expiries = expiries;
    this.#expiriesSizeRebuilt = Math.max(expiries.size, EXPIRIES_COMPACT_MIN / 2);
    // Last, once nothing can fail the open: `close` waits for it.
    this.#snapshotIfDue();
  }

  /**
   * Folds every event after the in-memory version, checking that each continues the chain the
   * writer holds (the next version, and a `previousHash` equal to the last event's hash). It does
   * not recompute each event's hash: that is the auditable path's work (`replayLedger`,
   * `verifyChain`, `ledgerkit-audit`), and start-up time would grow with the tail's size.
   */
  async #catchUp(): Promise<void> {
    for (;;) {
      const page = await this.#store.readStream({
        tenantId: this.#tenantId,
        ledgerId: this.#ledgerId,
        direction: 'forward',
        fromVersion: this.#state.version + 1,
        limit: READ_LIMIT_MAX,
      });
      for (const stored of page) {
        if (stored.ledgerVersion !== this.#state.version + 1 || stored.previousHash !== this.#lastHash) {
          throw new CorruptEventError('stream does not continue the hash chain the writer holds', { ledgerVersion: stored.ledgerVersion });
        }
        const decoded = this.#codec.decode(stored);
        evolve(this.#state, decoded.event, decoded.meta);
        this.#lastHash = stored.hash;
        if (decoded.event.type === 'TransferPending' && decoded.event.timeoutMs !== undefined) {
          this.#expiries.push(decoded.meta.recordedAtMs + decoded.event.timeoutMs, decoded.event.transferId);
        }
      }
      if (page.length < READ_LIMIT_MAX) break;
    }
    this.#evictTransfers();
  }
}

/** The writer's state: the tables are concrete maps so it can evict cached transfers. */
type WriterState = LedgerState & { readonly accounts: Map<string, AccountState>; readonly transfers: Map<string, TransferRecord> };

/** Whether a command carries a transfer id of its own (a transfer, hold, resolution or reversal). */
function isTransferLike(command: LedgerCommand): command is TransferLikeCommand {
  return command.kind === 'transfer' || command.kind === 'postPending' || command.kind === 'voidPending' || command.kind === 'reverseTransfer';
}

function freshState(): WriterState {
  return initialState() as WriterState;
}

function settle(entry: DecidedCommand, recordedAt: string): void {
  entry.item.resolve?.(toResult(entry.decision, entry.versions, recordedAt));
}

/** Maps a decision and the versions its events got to the caller's result. */
function toResult(decision: Decision, versions: readonly number[], recordedAt: string): CommandResult {
  let members: CommandResult[] | undefined;
  if (decision.members !== undefined) {
    let offset = 0;
    members = decision.members.map((member) => {
      const count = member.ok ? member.events.length : 0;
      const result = toResult(member, versions.slice(offset, offset + count), recordedAt);
      offset += count;
      return result;
    });
  }
  if (!decision.ok) {
    return { ok: false, code: decision.code, message: decision.message, ...(members === undefined ? {} : { members }) };
  }
  if (decision.duplicateOf !== undefined) {
    return {
      ok: true,
      ledgerVersion: decision.duplicateOf.ledgerVersion,
      recordedAt: new Date(decision.duplicateOf.recordedAtMs).toISOString(),
      duplicate: true,
      ...(members === undefined ? {} : { members }),
    };
  }
  const last = versions[versions.length - 1];
  const memberVersions = members?.filter((m): m is CommandAccepted => m.ok).map((m) => m.ledgerVersion) ?? [];
  return {
    ok: true,
    ledgerVersion: last ?? Math.max(0, ...memberVersions),
    recordedAt,
    duplicate: false,
    ...(members === undefined ? {} : { members }),
  };
}

/** The last instant a time is recorded at: 9999-12-31T23:59:59.999Z (a later one has no 4-digit ISO year). */
const RECORDED_AT_MS_MAX = 253_402_300_799_999;

/**
 * The `clock` option answered something no time can be recorded at (not a number, not finite,
 * before 1970 or after 9999): the batch that read it fails with this as its cause, not retriable,
 * since the same clock answers the same way.
 */
class ClockReadingError extends InvalidInputError {
  constructor(reading: unknown) {
    const shown = typeof reading === 'number' ? String(reading) : typeof reading;
    super([{ path: ['clock'], message: `must return epoch ms in years 1970-9999, returned ${shown}` }]);
    this.name = 'ClockReadingError';
  }
}

function bounded(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen < min || chosen > max) {
    throw new LimitExceededError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return chosen;
}

function describe(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    // An object with no way to a string (a null prototype, a throwing toString) still fails its batch.
    return Object.prototype.toString.call(error);
  }
}

/** A store's refusal that says it would be met again (`retriable: false` on an error with a ledger code). */
function isFinalRefusal(error: unknown): boolean {
  return hasErrorCode(error, REFUSED) && (error as { readonly retriable?: unknown }).retriable === false;
}
