/**
 * Typed errors thrown by ledger-core. Every error carries a stable `code` so callers can
 * branch on it without parsing messages. Business rejections of a command are *not* errors:
 * they are returned as results with a {@link RejectionCode}.
 */

/** Stable codes of the errors thrown by the library. */
export type LedgerErrorCode =
  | 'invalid_amount'
  | 'unknown_currency'
  | 'invalid_input'
  | 'corrupt_event'
  | 'version_conflict'
  | 'duplicate_index_key'
  | 'overloaded'
  | 'writer_closed'
  | 'writer_failed'
  | 'store_unavailable'
  | 'append_refused'
  | 'chain_broken'
  | 'limit_exceeded'
  | 'invariant_violated';

/** Base class of every error the library throws. */
export class LedgerError extends Error {
  /** Stable, documented code; safe to switch on. */
  readonly code: LedgerErrorCode;
  /** Whether retrying the same call later may succeed. */
  readonly retriable: boolean;

  constructor(code: LedgerErrorCode, message: string, options?: { cause?: unknown; retriable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options?.retriable ?? false;
  }
}

/** Why an amount was refused. */
export type InvalidAmountReason =
  | 'not_a_string'
  | 'empty'
  | 'malformed'
  | 'exponent'
  | 'not_finite'
  | 'negative'
  | 'zero'
  | 'too_many_decimals'
  | 'too_large';

/** An amount string that is not an exact, in-range decimal for its currency. */
export class InvalidAmountError extends LedgerError {
  /** Why the amount was refused, a stable value to branch on (see {@link InvalidAmountReason}). */
  readonly reason: InvalidAmountReason;
  /** Path of the offending field in the input, when the amount came from a structured input. */
  readonly path: readonly (string | number)[];
  constructor(reason: InvalidAmountReason, message: string, path: readonly (string | number)[] = []) {
    super('invalid_amount', path.length > 0 ? `${path.join('.')}: ${message}` : message);
    this.reason = reason;
    this.path = path;
  }
}

/** A currency code that the registry does not know. */
export class UnknownCurrencyError extends LedgerError {
  /** The currency code that was looked up, in full (the message shows at most its first 16 characters). */
  readonly currency: string;
  constructor(currency: string) {
    super('unknown_currency', `unknown currency ${JSON.stringify(currency.slice(0, 16))}: declare it in the CurrencyRegistry first`);
    this.currency = currency;
  }
}

/** One problem found in untrusted input: where it is and what is wrong. */
export interface InputIssue {
  /** Path to the offending field, e.g. `["postings", 1, "amount"]`. */
  readonly path: readonly (string | number)[];
  /** What is wrong with the value there, in words, e.g. `must be a non-negative integer`. */
  readonly message: string;
}

/** Untrusted input that failed validation. Nothing was written. */
export class InvalidInputError extends LedgerError {
  /** Every problem found, at least one; the message names the first (its path and message). */
  readonly issues: readonly InputIssue[];
  constructor(issues: readonly InputIssue[]) {
    const first = issues[0];
    const where = first && first.path.length > 0 ? ` at ${first.path.join('.')}` : '';
    super('invalid_input', `invalid input${where}: ${first?.message ?? 'unknown problem'}`);
    this.issues = issues;
  }
}

/**
 * An event read from a store that fails validation, decoding or has an unknown type/version.
 *
 * A `LedgerWriter` that meets one while reading its stream's tail (another writer appended an
 * event this release cannot read, or a row was damaged), or while looking up in the store's
 * index a transfer a command names, rejects the batch with it, naming the ledger, and stops:
 * every later `submit` rejects with the same error at once (see `LedgerWriter`). Not retriable.
 */
export class CorruptEventError extends LedgerError {
  /** Ledger version (stream position) of the bad event, when known. */
  readonly ledgerVersion: number | undefined;
  /** Store-specific global position of the bad event, when known. */
  readonly globalPosition: string | undefined;
  /** Tenant of the bad event's ledger, when the thrower names it. */
  readonly tenantId: string | undefined;
  /** Ledger of the bad event, when the thrower names it. */
  readonly ledgerId: string | undefined;
  /** What is wrong with the event (the message without where it is). */
  readonly reason: string;
  constructor(message: string, where: { ledgerVersion?: number; globalPosition?: string; tenantId?: string; ledgerId?: string }, cause?: unknown) {
    const at = where.ledgerVersion !== undefined ? `ledger version ${where.ledgerVersion}` : `global position ${where.globalPosition ?? '?'}`;
    const of = where.ledgerId === undefined ? '' : ` of ledger ${JSON.stringify(where.ledgerId)}${where.tenantId === undefined ? '' : ` (tenant ${JSON.stringify(where.tenantId)})`}`;
    super('corrupt_event', `corrupt event at ${at}${of}: ${message}`, { cause });
    this.ledgerVersion = where.ledgerVersion;
    this.globalPosition = where.globalPosition;
    this.tenantId = where.tenantId;
    this.ledgerId = where.ledgerId;
    this.reason = message;
  }
}

/** The stream's version was not the expected one: another writer appended first. */
export class VersionConflictError extends LedgerError {
  /** The ledger version (number of events in the stream) the append was decided against. */
  readonly expectedVersion: number;
  /**
   * The stream's version found instead, when the thrower knows it; `undefined` when it does not
   * (a database serialization failure or deadlock, or a writer that found a newer event).
   */
  readonly actualVersion: number | undefined;
  constructor(expectedVersion: number, actualVersion?: number) {
    super('version_conflict', versionConflictMessage(expectedVersion, actualVersion), { retriable: true });
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

/**
 * The message of a {@link VersionConflictError}. A stream found at the expected version itself
 * refused the append on its chain fence: the event at that version is not the one the batch was
 * decided after, or was written by a transaction that began after the append's (PostgreSQL's
 * stacked appends); "expected 6, found 6" would read as no conflict at all.
 */
function versionConflictMessage(expectedVersion: number, actualVersion: number | undefined): string {
  if (actualVersion === expectedVersion) {
    return `the stream is at the expected ledger version ${expectedVersion}, but the event there is not the one this batch was decided after (or was written by a transaction that began after this append's): decide the batch again`;
  }
  return `expected ledger version ${expectedVersion}, found ${actualVersion ?? 'a different one'}`;
}

/** An append tried to index a transfer id, resolution or reversal that is already indexed. */
export class DuplicateIndexKeyError extends LedgerError {
  /**
   * The key already claimed in the ledger's index: `transfer:<id>`, `resolution:<pendingId>` or
   * `reversal:<id>` (see `indexKeysOf`). A store that cannot isolate it gives the database's own
   * description of the conflict instead (`PostgresEventStore`: the constraint violation's detail).
   */
  readonly key: string;
  constructor(key: string) {
    super('duplicate_index_key', `index key ${key} already exists in this ledger`, { retriable: true });
    this.key = key;
  }
}

/** The writer's queue is full; retry after a short back-off. */
export class OverloadedError extends LedgerError {
  constructor(queueLengthMax: number) {
    super('overloaded', `writer queue is full (${queueLengthMax} commands); retry later`, { retriable: true });
  }
}

/** The writer was closed before the command could be processed. */
export class WriterClosedError extends LedgerError {
  constructor() {
    super('writer_closed', 'the ledger writer is closed');
  }
}

/**
 * The writer could not persist a batch (store unavailable, conflict retries exhausted, ...).
 * Retriable, except when the store refused the append for a reason a retry will meet again (an
 * {@link AppendRefusedError} that is not retriable, which is then its `cause`). Unless its
 * message says the commands "were not applied" (the store refused the append before writing
 * anything), they may or may not have been applied (an append whose reply was lost may have
 * committed): retry with the same ids, and a command that was applied answers with its original
 * outcome (`duplicate: true`).
 */
export class WriterFailedError extends LedgerError {
  /**
   * @param code `writer_failed`, or the code of a subclass that names the reason more precisely.
   * @param retriable whether a retry may succeed; `true` unless the cause says otherwise.
   */
  constructor(message: string, cause: unknown, code: Extract<LedgerErrorCode, 'writer_failed' | 'store_unavailable'> = 'writer_failed', retriable = true) {
    super(code, message, { cause, retriable });
  }
}

/**
 * A store refused an append before writing any of it, for a reason other than a moved stream
 * (`VersionConflictError`), a claimed key (`DuplicateIndexKeyError`) or a malformed request
 * (`InvalidInputError`, `LimitExceededError`): the database answered one of its statements with
 * an error, so its transaction rolled back, or an inline projection run in that transaction
 * failed before the commit (its read models at another schema version, say). **Nothing of the
 * append was written**; `cause` is the original error.
 *
 * `retriable` says whether the same append may succeed later: the cause's own `retriable` when it
 * has one, else what the store knows of it (PostgreSQL: a serialization failure, a lock or
 * resource shortage or a cancelled statement may pass next time; a constraint, a permission or
 * a data error will not). A writer passes it on inside a `WriterFailedError` whose commands "were
 * not applied", retriable as this error is.
 */
export class AppendRefusedError extends LedgerError {
  /**
   * @param message what was refused and why, for logs (a caller's answer should not echo it: it
   *   may name the server's configuration).
   * @param cause the error the store met: the database's, or what an inline projection threw.
   * @param retriable whether the same append may succeed if sent again later.
   */
  constructor(message: string, cause: unknown, retriable: boolean) {
    super('append_refused', message, { cause, retriable });
  }
}

/**
 * The event store could not be reached: the connection was refused, lost or timed out, or the
 * server is shutting down or starting up. Retriable, with code `store_unavailable`.
 *
 * Stores throw it (with the driver's error as `cause`) so that callers need not know the
 * driver's error codes; the writer passes it on to every command of a batch that failed this
 * way, and it extends {@link WriterFailedError} so handlers of that keep working. The outcome of
 * an append that failed this way is unknown: the writer reads the stream's tail before it decides
 * anything else, and a retry with the same ids answers `duplicate: true` for what had committed.
 *
 * ```ts
 * try {
 *   await ledger.transfer(input);
 * } catch (error) {
 *   if (error instanceof StoreUnavailableError) return retryLater(input); // same transferId
 *   throw error;
 * }
 * ```
 */
export class StoreUnavailableError extends WriterFailedError {
  constructor(message: string, cause: unknown) {
    super(message, cause, 'store_unavailable');
  }
}

/** A configured or built-in limit was exceeded by a call's arguments. */
export class LimitExceededError extends LedgerError {
  constructor(message: string) {
    super('limit_exceeded', message);
  }
}

/**
 * An invariant the code relies on does not hold: a bug, or a log that was never produced by a
 * correct writer. The state that raised it must not be used further.
 */
export class InvariantViolationError extends LedgerError {
  constructor(message: string) {
    super('invariant_violated', `invariant violated: ${message}`);
  }
}

/** Throws {@link InvariantViolationError} unless `condition` holds. */
export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantViolationError(typeof message === 'string' ? message : message());
}

/** A stream's hash chain does not hold: an event was altered, removed or inserted. */
export class ChainBrokenError extends LedgerError {
  /** Ledger version (stream position, from 1) of the first event at which the chain does not hold. */
  readonly ledgerVersion: number;
  constructor(ledgerVersion: number, reason: string) {
    super('chain_broken', `hash chain broken at ledger version ${ledgerVersion}: ${reason}`);
    this.ledgerVersion = ledgerVersion;
  }
}
