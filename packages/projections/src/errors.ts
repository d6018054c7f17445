import { StoreUnavailableError } from '@ledgerkit/ledger-core';
import { isTransientSqlstate } from '@ledgerkit/tenant-rls';

/** Where a projection failed: the event it could not handle. */
export interface FailedEvent {
  /** Global-log position of the event. */
  readonly position: string;
  /** The ledger of the event. */
  readonly ledgerId: string;
  /** Its version in that ledger. */
  readonly ledgerVersion: number;
  /** Its type, e.g. `TransferPosted`. */
  readonly eventType: string;
}

/**
 * A projection could not handle an event (its handler threw, or the event did not decode). Under
 * the `stop` policy the projection stops here for its tenant; the error names the event's position.
 */
export class ProjectionFailedError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'projection_failed';
  /** The projection that failed. */
  readonly projection: string;
  /** The tenant whose log it was projecting. */
  readonly tenantId: string;
  /** The event it could not handle. */
  readonly event: FailedEvent;

  constructor(projection: string, tenantId: string, event: FailedEvent, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      `projection ${projection} of tenant ${tenantId} failed at position ${event.position} (ledger ${event.ledgerId} version ${event.ledgerVersion}, ${event.eventType}): ${reason}`,
      { cause },
    );
    this.name = 'ProjectionFailedError';
    this.projection = projection;
    this.tenantId = tenantId;
    this.event = event;
  }
}

/**
 * A read would return more rows than the caller allowed (a trial balance of more accounts than
 * its `linesMax`). Nothing past the limit was read or kept in memory: ask for a smaller scope,
 * or raise the limit.
 */
export class ResultTooLargeError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'result_too_large';
  /** The limit the result went over. */
  readonly limit: number;

  constructor(what: string, limit: number) {
    super(`${what} has more than ${limit} lines, the most this read may return`);
    this.name = 'ResultTooLargeError';
    this.limit = limit;
  }
}

/**
 * The checkpoint moved under a batch: a rebuild reset it, or another runner advanced it (this one
 * lost its lock). The batch rolled back; the runner reloads the checkpoint and goes on from there.
 */
export class CheckpointMovedError extends Error {
  constructor(projection: string, tenantId: string) {
    super(`the checkpoint of projection ${projection} (tenant ${tenantId}) moved under this batch; it was rolled back`);
    this.name = 'CheckpointMovedError';
  }
}

/** Why a {@link RunnerNotRunningError} was raised: the runner was never started, or was stopped. */
export type RunnerNotRunningReason = 'not-started' | 'stopped';

/**
 * A `ProjectionRunner` was asked for something only a running runner can do (`whenCaughtUp`,
 * `rebuild`) before its `start()` or once its `stop()` was called. Raised at once: nothing would
 * ever happen to wait for. Also what `start()` rejects with when `stop()` was called while it
 * checked the read models (reason `stopped`): it started nothing.
 */
export class RunnerNotRunningError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'runner_not_running';
  /** Whether the runner was never started or has been stopped. */
  readonly reason: RunnerNotRunningReason;

  constructor(what: string, reason: RunnerNotRunningReason) {
    super(reason === 'not-started' ? `${what}: the runner is not started (call start() first)` : `${what}: the runner was stopped`);
    this.name = 'RunnerNotRunningError';
    this.reason = reason;
  }
}

/**
 * The database's read-model schema is not at the version this release of `@ledgerkit/projections`
 * was written for, so the runner will not start and `ReadModels` will not read: on an older
 * schema every batch would fail (or, worse, write what a later migration moved elsewhere); on a
 * newer one, written for a later release, this release's writes and reads may no longer mean what
 * the tables hold. `found < needed`: run `migrateReadModels()` (as an administrator) with this
 * release. `found > needed`: a newer release migrated the read models; run that release (or a
 * later one) instead: `migrateReadModels` of this release refuses such a database as well.
 */
export class ReadModelSchemaVersionError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'read_model_schema_version';
  /** The read-model schema version of the database: 0 when the read models were never migrated. */
  readonly found: number;
  /** The version this release needs: `READ_MODEL_SCHEMA_VERSION`. */
  readonly needed: number;

  constructor(found: number, needed: number) {
    const what =
      found === 0
        ? `the read models are not migrated (read-model schema version 0); this release of @ledgerkit/projections needs version ${needed}: run migrateReadModels() first, as an administrator`
        : found < needed
          ? `the read-model schema is at version ${found}; this release of @ledgerkit/projections needs version ${needed}: run its migrateReadModels(), as an administrator`
          : `the read-model schema is at version ${found}, newer than this release of @ledgerkit/projections knows (it needs version ${needed}): a newer release migrated it; run that release or a later one`;
    super(what);
    this.name = 'ReadModelSchemaVersionError';
    this.found = found;
    this.needed = needed;
  }
}

/** A (projection, tenant) a runner's `stop()` gave up waiting for; see {@link StopTimeoutError}. */
export interface AbandonedProjection {
  /** The projection's name. */
  readonly projection: string;
  readonly tenantId: string;
}

/**
 * `ProjectionRunner.stop()` waited its `stopTimeoutMs` and some projections were still in a batch
 * (a handler that never returns, say) or in some other step. The runner abandoned them: the
 * connection of a batch's transaction was destroyed, not committed nor pooled, so the batch rolled
 * back with its checkpoint unmoved (a runner that takes over applies it again, exactly once); the
 * locks were released and the session closed. The runner is stopped all the same; this says which
 * projections did not stop by themselves.
 */
export class StopTimeoutError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'stop_timeout';
  /** The (projection, tenant) pairs abandoned, in the runner's order. */
  readonly abandoned: readonly AbandonedProjection[];
  /** How long `stop()` waited for them, ms. */
  readonly timeoutMs: number;

  constructor(abandoned: readonly AbandonedProjection[], timeoutMs: number) {
    const shown = abandoned.slice(0, 10).map((entry) => `${entry.projection} (tenant ${entry.tenantId})`);
    if (abandoned.length > shown.length) shown.push(`${abandoned.length - shown.length} more`);
    super(`the runner stopped without ${shown.join(', ')}: still busy after stopTimeoutMs (${timeoutMs} ms); their batches in flight were rolled back`);
    this.name = 'StopTimeoutError';
    this.abandoned = abandoned;
    this.timeoutMs = timeoutMs;
  }
}

const TRANSIENT_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const TRANSIENT_MESSAGE = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/;

/**
 * Whether an error is the database or the network failing (retry the same batch later), rather
 * than a projection failing on an event. Conservative in one direction only: an unknown error is
 * treated as the event's, which the runner confirms by retrying that event alone.
 */
export function isTransientError(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 3) return false;
  const code = (error as { code?: unknown }).code;
  // By code as well: a store built on another copy of ledger-core throws that copy's classes.
  if (error instanceof StoreUnavailableError || code === 'store_unavailable') return true;
  if (typeof code === 'string') {
    if (TRANSIENT_SOCKET_CODES.has(code)) return true;
    // SQLSTATEs that say "try again", not "this event is bad": the store's answer too.
    if (isTransientSqlstate(code)) return true;
  }
  if (TRANSIENT_MESSAGE.test(error.message)) return true;
  return isTransientError(error.cause, depth + 1);
}

/**
 * SQLSTATE classes that say the database's setup is wrong, not the event: a missing table,
 * column or function or a missing grant (42), a missing schema (3F), a read-only transaction as
 * on a standby after a failover (25), a refused login (28), an object not in the state the
 * statement needs (55), a feature the server lacks (0A). They fail for every event alike.
 */
const ENVIRONMENT_SQLSTATE_CLASSES = ['42', '3F', '25', '28', '55', '0A'];

/**
 * The SQLSTATE of an error that says the database's setup is wrong rather than the event (see
 * {@link ENVIRONMENT_SQLSTATE_CLASSES}), looking through causes; `undefined` for any other error.
 * Under `skip-with-record` such an error is never a reason to skip: it would skip every event.
 */
export function environmentSqlstateOf(error: unknown, depth = 0): string | undefined {
  if (!(error instanceof Error) || depth > 3) return undefined;
  const code = (error as { code?: unknown }).code;
  // 25P02 (a statement after a failed one in the same transaction) follows from that failure,
  // which may be the event's.
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && code !== '25P02' && ENVIRONMENT_SQLSTATE_CLASSES.includes(code.slice(0, 2))) return code;
  return environmentSqlstateOf(error.cause, depth + 1);
}

/** Why a pool's role was refused: see {@link ApplicationRoleRequiredError}. */
export type RoleRefusal = 'bypasses_rls' | 'owns_tables';

/**
 * The pool given to a `ProjectionRunner`, `ReadModels` or `rebuildProjection` logs in
 * as a role that is not subject to the tenants' row-level security: a superuser, a role with
 * BYPASSRLS, or the owner of the tables (or a member of it). Such a pool would let a projection
 * see, and a read answer from, every tenant's rows; the same role check as
 * `PostgresEventStore.open` refuses it. Connect as the application role created by `migrate`.
 */
export class ApplicationRoleRequiredError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'application_role_required';
  /** What is wrong with the role. */
  readonly reason: RoleRefusal;
  /** The role the pool logs in as. */
  readonly role: string;

  constructor(role: string, reason: RoleRefusal) {
    const what = reason === 'bypasses_rls' ? 'is a superuser or has BYPASSRLS' : 'owns the ledgerkit tables or is a member of their owner';
    super(`the pool must connect as the application role: role ${JSON.stringify(role)} ${what}, so row-level security would not keep the tenants apart`);
    this.name = 'ApplicationRoleRequiredError';
    this.reason = reason;
    this.role = role;
  }
}

/**
 * SQLSTATE classes after which a session may be gone or unsound: connection exception (08),
 * insufficient resources (53: out of memory, disk full), system error (58: I/O), configuration
 * file error (F0), internal error (XX: a corrupt page, say).
 */
const SESSION_ENDING_SQLSTATE_CLASSES = new Set(['08', '53', '58', 'F0', 'XX']);
/**
 * SQLSTATEs, in classes that are otherwise harmless, that the server sends as it ends the session
 * (severity FATAL): shutdown (57P01-57P03), database dropped (57P04), idle-session timeout (57P05),
 * idle-in-transaction timeout (25P03).
 */
const SESSION_ENDING_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57P04', '57P05', '25P03']);

/**
 * Whether `error` is the server refusing one statement on a session it keeps open: a
 * node-postgres `DatabaseError` (recognised by its shape, so that a pool of another copy of `pg`
 * is served too: only the server's error response sets a `severity` with a 5-character SQLSTATE
 * `code`), of severity ERROR rather than FATAL or PANIC, and not of a SQLSTATE that ends or
 * endangers the session (see {@link SESSION_ENDING_SQLSTATE_CLASSES}, {@link SESSION_ENDING_SQLSTATES};
 * checked as well as the severity, which the server may send translated). An invalid input value
 * or a statement timeout (57014) qualifies; a lost socket, a client-side query timeout or any
 * error not from the server does not. A connection that raised `'error'` is dropped in any case
 * (see `withPooledClient`).
 * @internal
 */
export function isRefusedOnLiveSession(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || typeof severity !== 'string') return false;
  if (severity === 'FATAL' || severity === 'PANIC') return false;
  return !SESSION_ENDING_SQLSTATE_CLASSES.has(code.slice(0, 2)) && !SESSION_ENDING_SQLSTATES.has(code);
}

/** Whether the server cancelled a statement (SQLSTATE 57014: a statement timeout, or `pg_cancel_backend`), looking through causes. */
export function isCancelledStatement(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 3) return false;
  if ((error as { code?: unknown }).code === '57014') return true;
  return isCancelledStatement(error.cause, depth + 1);
}
