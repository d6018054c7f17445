import { CorruptEventError, EventCodec, InvalidInputError, LimitExceededError, READ_LIMIT_MAX, type CurrencyRegistry, type EventStore, type GlobalEvent, type UpcasterRegistry } from '@ledgerkit/ledger-core';
import { assertTenantId, InvalidTenantIdError, isTenantId, withPooledClient, withTenant, type ClientPool, type WithTenantOptions } from '@ledgerkit/tenant-rls';
import type { PoolClient } from 'pg';
import {
  advanceCheckpoint,
  ensureCheckpoint,
  fenceCheckpoint,
  readCheckpoints,
  readLagEvents,
  recordError,
  recordSkippedEvent,
  resetCheckpoint,
  type Checkpoint,
  type CheckpointAdvance,
} from './checkpoints.js';
import { currenciesOf, hasMethods, optionsOf, requireObjectWith } from './read-models/options.js';
import {
  ApplicationRoleRequiredError,
  CheckpointMovedError,
  environmentSqlstateOf,
  isCancelledStatement,
  isTransientError,
  ProjectionFailedError,
  ReadModelSchemaVersionError,
  RunnerNotRunningError,
  StopTimeoutError,
  type AbandonedProjection,
  type FailedEvent,
} from './errors.js';
import { PROJECTION_NAME_PATTERN, type ErrorPolicy, type Projection, type ProjectionEvent } from './projection.js';
import { RunnerSession } from './session.js';
import { LogTails } from './log-tail.js';
import { checkApplicationRole } from './role-check.js';
import { checkReadModelSchemaVersion } from './schema-version.js';
import { NOTIFY_QUIET_MS, NOTIFY_WAKE_MS_MIN, WakeGate, Wakeup } from './wakeup.js';

/** Most tenants one runner serves. */
export const RUNNER_TENANTS_MAX = 1_000;
/** Most projections one runner runs. */
export const RUNNER_PROJECTIONS_MAX = 32;
/** The channel `@ledgerkit/store-postgres` notifies after every append (its `EVENTS_CHANNEL`). */
export const DEFAULT_NOTIFY_CHANNEL = 'ledgerkit_events';

const CHANNEL_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
/** First pause after an empty read that followed activity: a just-notified event may still sit above the read horizon. */
const IDLE_PAUSE_MS_MIN = 5;
const RETRY_PAUSE_MS_MIN = 50;
const RETRY_PAUSE_MS_MAX = 5_000;
const CAUGHT_UP_POLL_MS = 5;
/** Soonest a NOTIFY for an unknown tenant calls `discoverTenants` again after its last call. */
const DISCOVERY_PAUSE_MS_MIN = 100;
/** Decoded events kept for the runner's other projections following the same stretch of a log: at most this many. */
const LOG_TAIL_EVENTS_MAX = 20_000;
/** Default `logTailBytesMax`: 64 MiB. */
const LOG_TAIL_BYTES_DEFAULT = 64 * 2 ** 20;
/** The error policies there are: anything else is refused rather than taken for `stop`. */
const ERROR_POLICIES: readonly ErrorPolicy[] = ['stop', 'skip-with-record'];
/** What a wait of {@link ProjectionRunner}'s that `stop()` cut short settles with. */
const STOPPED: unique symbol = Symbol('stopped');

/** Options of a {@link ProjectionRunner}. Every number has a default and a hard limit. */
export interface ProjectionRunnerOptions {
  /**
   * Pool of the application role. Each batch takes one connection for one transaction; the
   * runner also keeps one connection for itself (its locks and LISTEN), so size the pool for it.
   * A role that escapes row-level security (superuser, BYPASSRLS, owner of the tables) is refused
   * when the runner starts: see {@link ProjectionRunner.start}.
   */
  readonly pool: ClientPool;
  /** Where events are read from, through `readAll` (the global log of each tenant). */
  readonly store: EventStore;
  /**
   * Tenants to project, up to {@link RUNNER_TENANTS_MAX} with the discovered ones. Each
   * (projection, tenant) runs on its own. May be empty or left out when `discoverTenants` is given.
   */
  readonly tenantIds?: readonly string[];
  /**
   * Finds the tenants to project, for a runner that serves tenants created while it runs: called
   * when the runner starts, every `tenantDiscoveryIntervalMs`, and soon after a NOTIFY names a
   * tenant the runner does not serve yet. Tenants it returns are added (and projected from their
   * first event); tenants it stops returning keep running until the runner stops.
   *
   * The runner cannot list tenants by itself, on purpose: every event and read-model table is
   * under forced row-level security, and the application role sees no row at all without a tenant
   * set (fail closed), so no query of that role can enumerate tenants. The list comes from where
   * the application keeps its tenants (its own registry, or a query an administrator role runs).
   */
  readonly discoverTenants?: () => Promise<readonly string[]>;
  /** How often `discoverTenants` is called: 100..3,600,000 ms, default 10,000. */
  readonly tenantDiscoveryIntervalMs?: number;
  /** Projections to run side by side: 1..{@link RUNNER_PROJECTIONS_MAX}, names unique. */
  readonly projections: readonly Projection[];
  /** Currencies to decode amounts with; must include every custom asset of the tenants' ledgers. Default ISO 4217. */
  readonly currencies?: CurrencyRegistry;
  /** Upcasters for older stored event versions; default the built-in ones. */
  readonly upcasters?: UpcasterRegistry;
  /**
   * Most events per batch (one read, one transaction): 1..10,000, default 1,000. A batch the
   * server cancels (SQLSTATE 57014: a `statement_timeout` of the role, say) is retried with half
   * its events, down to one, until one fits; batches are full-size again once the projection has
   * read to the end of the log.
   */
  readonly batchSize?: number;
  /**
   * How long a live projection (its last batch was not full) waits after applying a batch before
   * it reads again: 0..1,000 ms, default 0 (at once). Under a steady stream of small appends each
   * batch then gathers more events, so the read models cost fewer transactions and statements per
   * event, for at most this much more lag. A full batch (catching up) never waits, and neither
   * does a projection someone is waiting for (`whenCaughtUp`) or a runner that is stopping. A
   * projection may override it ({@link Projection.liveBatchDelayMs}).
   */
  readonly liveBatchDelayMs?: number;
  /** How long an idle projection waits before it reads again without a notification: 10..60,000 ms, default 1000. */
  readonly pollIntervalMs?: number;
  /**
   * Most memory, estimated, of the decoded events the runner keeps so that a projection following
   * another through the same stretch of a log need not read and decode it again (at most 20,000
   * events in any case): 0..2^36 bytes, default 64 MiB; 0 keeps none. An application running a
   * runner per tenant gives each a share of what it can spare.
   */
  readonly logTailBytesMax?: number;
  /**
   * How often a standby runner tries to take over a projection another runner holds: 10..60,000
   * ms, default 1000. Also how often the runner checks that its own connection (its locks and
   * LISTEN) still answers: one that gives no answer for 5 s is taken for dead (its server side
   * may be gone with no word to this side, the locks with it), so the runner stops claiming its
   * projections and connects again.
   */
  readonly takeoverIntervalMs?: number;
  /**
   * What to do with an event a projection cannot handle: `stop` (the default) or
   * `skip-with-record`; any other value is refused (`LimitExceededError`). A projection may
   * override it. `skip-with-record` never skips on an error that says the database's setup is
   * wrong (SQLSTATE classes 42, 3F, 25, 28, 55, 0A: a missing table or grant, a read-only
   * standby): that error fails every event, so the projection stops there as under `stop`.
   */
  readonly errorPolicy?: ErrorPolicy;
  /**
   * How long `stop()` waits for the projections to finish what they are doing (a batch in flight,
   * mostly): 0..600,000 ms, default 30,000. Past it the runner abandons those still busy (a
   * handler that never returns, a statement stuck on a lock): the connection of each one's
   * transaction is destroyed, not committed nor returned to the pool, so its batch rolls back and
   * its checkpoint stays where it was; then the locks are released, the session is closed and
   * `stop()` rejects with {@link StopTimeoutError}, which names them. A statement still running on
   * the server runs on until the server notices its connection is gone (it holds its locks that
   * long: a runner that takes over waits for them), then rolls back.
   */
  readonly stopTimeoutMs?: number;
  /** Channel to LISTEN on for appends; default {@link DEFAULT_NOTIFY_CHANNEL}; `null` to only poll. */
  readonly notifyChannel?: string | null;
  /**
   * Called with every error the runner meets, for logs: retried database errors, projection
   * failures, and, with `projection` and `tenantId` `'*'`, failed tenant discoveries (one call
   * per malformed tenant id `discoverTenants` returned: the other ids are still added) and an
   * `ApplicationRoleRequiredError` for a pool whose role escapes row-level security. What it
   * throws, or an async one rejects with, is ignored.
   */
  readonly onError?: (error: Error, where: { readonly projection: string; readonly tenantId: string }) => void;
  /**
   * Called after each batch commits, with what it applied: for throughput and lag metrics (the
   * time from an append to the commit of the batch that applied it). Must not block; what it
   * throws, or an async one rejects with, is ignored.
   */
  readonly onBatch?: (batch: BatchCommitted) => void;
}

/** A batch a projection applied and committed; see {@link ProjectionRunnerOptions.onBatch}. */
export interface BatchCommitted {
  /** The projection's name. */
  readonly projection: string;
  readonly tenantId: string;
  /** Events applied by the batch. */
  readonly events: number;
  /** The checkpoint after the batch: the position of its last event. */
  readonly position: string;
  /** Highest ledger version the batch applied, per ledger. */
  readonly ledgerVersions: ReadonlyMap<string, number>;
  /** Recorded time of the batch's last event, ISO-8601. */
  readonly lastRecordedAt: string;
  /** From the start of the batch's transaction to its commit, ms. */
  readonly durationMs: number;
}

/** What a runner is doing with one (projection, tenant). */
export type ProjectionState =
  /** Another runner holds it (or this one has not taken it yet). */
  | 'standby'
  /** Reading full batches: behind the log. */
  | 'catching-up'
  /** At the end of the log, waiting for new events. */
  | 'live'
  /** Stopped on an event under the `stop` policy, until `retry` or `rebuild`. */
  | 'failed'
  /** The runner is stopped. */
  | 'stopped';

/** An error of a projection, with the position of the event it happened at (if any) and when. */
export interface ProjectionErrorInfo {
  /** The error's message (for a failed event, `ProjectionFailedError`'s, which names the event). */
  readonly message: string;
  /**
   * Position of the failing event (stopped on, or skipped under `skip-with-record`); `null` for
   * an error not tied to one event: the database or the log out of reach, a transient error
   * while applying a batch, a refused pool role.
   */
  readonly position: string | null;
  /** When it happened, ISO-8601 UTC (`toISOString`): this runner's clock, or the database's for an error read back from the checkpoint. */
  readonly at: string;
}

/** The status of one (projection, tenant). */
export interface ProjectionStatus {
  /** The projection's name. */
  readonly projection: string;
  readonly tenantId: string;
  /** What this runner is doing with it. */
  readonly state: ProjectionState;
  /** Whether this runner holds the projection's lock (is the active runner for it). */
  readonly active: boolean;
  /** Position of the last event handled, `null` before the first. */
  readonly checkpoint: string | null;
  /** Rebuilds so far. */
  readonly generation: number;
  /** Events applied since the last rebuild. */
  readonly eventsApplied: number;
  /** Events skipped under `skip-with-record` since the last rebuild. */
  readonly eventsSkipped: number;
  /**
   * Committed events not handled yet, over all the tenant's ledgers (from the streams' versions);
   * `null` when the event store's stream table is not in this database.
   */
  readonly lagEvents: number | null;
  /** Seconds since the oldest readable event not handled yet was recorded; 0 when none is waiting. */
  readonly lagSeconds: number;
  /** Recorded time of the last event handled, ISO-8601. */
  readonly lastEventRecordedAt: string | null;
  /**
   * The error the projection has not got past yet; `null` when there is none. Non-null with
   * state `failed`: the error it stopped on. Non-null with another state: the runner is retrying
   * after it (position `null`), or, with a position, it is the event skipped under
   * `skip-with-record` that is still the last one handled. `at` says when it happened.
   *
   * Set when an error happens (and reported to `onError` each time). Cleared when the projection
   * commits a batch after it (it handled a later event, or the failed event after `retry()`),
   * when a rebuild resets it, and, for an error not tied to an event (position `null`), also when
   * the next read of the log reaches its end. An error at an event is kept in the checkpoint row
   * until then, so another runner's status and one after a restart report it too; a skip stays
   * counted in `eventsSkipped` and recorded in `projection_failures` after its error is cleared.
   */
  readonly lastError: ProjectionErrorInfo | null;
}

/** A page of the log: decoded up to the first event that does not decode (and that event, and why). */
interface Page {
  /** Events the page holds, decoded or not. */
  readonly length: number;
  readonly events: readonly ProjectionEvent[];
  /** The event after the last decoded one, when it did not decode; `undefined` when all did. */
  readonly undecoded: GlobalEvent | undefined;
  readonly undecodable: unknown;
}

/** A page as the store returned it (see `#readLog`): with the limit it was read with and the position of its last event. */
interface LogRead extends Page {
  /** The limit of the read: a page shorter than it reached the end of the log (as it stood then). */
  readonly limit: number;
  /** Position of its last event, decoded or not; `undefined` when it is empty. */
  readonly last: string | undefined;
}

interface Worker {
  readonly projection: Projection;
  readonly tenantId: string;
  readonly lockKey: string;
  readonly policy: ErrorPolicy;
  readonly wakeup: Wakeup;
  /** Its wait between live batches, ms. */
  readonly liveBatchDelayMs: number;
  /** Cuts that wait short: someone waits for the projection to catch up, or the runner stops. */
  readonly hurry: Wakeup;
  state: ProjectionState;
  checkpoint: Checkpoint | undefined;
  failure: ProjectionFailedError | undefined;
  /** The checkpoint the failure stopped at: while the stored one is still there, the projection stays stopped. */
  failedAt: Checkpoint | undefined;
  /** Times a failed projection found its checkpoint still where it stopped (for `whenCaughtUp`). */
  failureChecks: number;
  /** When a failed projection looks at its checkpoint next, epoch ms. */
  failureCheckDueMs: number;
  /** The error not got past yet, as this runner saw it; `undefined`: none, or report the stored one. */
  lastError: ProjectionErrorInfo | undefined;
  /** Events still to go one per transaction, after a batch failed, to find the failing one. */
  narrowRemaining: number;
  /**
   * Most events of its next batch: `batchSize`, halved after a batch the server cancelled (a
   * statement timeout: at the same size it would time out again, forever), and back to
   * `batchSize` once a read reaches the end of the log.
   */
  batchLimit: number;
  rebuilds: RebuildRequest[];
  /** The rebuild requests of the rebuild in progress: settled when it ends, or rejected if `stop()` abandons it. */
  rebuilding: RebuildRequest[];
  retryRequested: boolean;
  idlePauseMs: number;
  retryPauseMs: number;
  /** Reads started; the read that returned empty last. */
  readSeq: number;
  emptyReadSeq: number;
  /** Failed attempts to take the lock: another runner holds it. */
  lockAttempts: number;
  /** The next page, read while the current one is applied. */
  prefetch: { readonly key: string; readonly page: Promise<Page | undefined> } | undefined;
  loop: Promise<void> | undefined;
  /** Whether its loop runs: started and not ended. */
  running: boolean;
  /** The connection of the transaction it is in, if any: what `stop()` destroys when it abandons the worker. */
  transaction: PoolClient | undefined;
  /** Given up by `stop()` (see {@link ProjectionRunnerOptions.stopTimeoutMs}): it may start no transaction and reports nothing. */
  abandoned: boolean;
}

/** A caller of `rebuild()`, waiting for the reset to commit. */
interface RebuildRequest {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Runs projections over tenants' global logs: for each (projection, tenant) it reads from the
 * checkpoint in bounded batches and commits each batch's read-model writes and the new
 * checkpoint in one transaction, so a crash at any point neither loses nor repeats an event.
 *
 * - Catch-up from the checkpoint (or from the first event), then live: woken by the store's
 *   NOTIFY after each append, with polling as the fallback.
 * - One active runner per (projection, tenant) across processes: a session advisory lock on the
 *   runner's own connection. A standby runner takes over when the holder's connection dies.
 *   Correctness does not rest on the lock: every batch first checks, under a row lock, that the
 *   checkpoint is where it started, and rolls back if not.
 * - `rebuild` resets a projection's rows and checkpoint for a tenant and replays, while writers
 *   keep appending.
 * - A projection that throws on an event is handled by its {@link ErrorPolicy}; the others go on.
 *
 * ```ts
 * const runner = new ProjectionRunner({ pool: appPool, store, tenantIds: ['acme'], projections: [balancesProjection(), historyProjection()] });
 * await runner.start();
 * // ... later
 * await runner.stop();
 * ```
 */
export class ProjectionRunner {
  readonly #pool: ClientPool;
  readonly #store: EventStore;
  readonly #codec: EventCodec;
  readonly #batchSize: number;
  readonly #pollIntervalMs: number;
  readonly #liveBatchDelayMs: number;
  readonly #takeoverIntervalMs: number;
  readonly #stopTimeoutMs: number;
  readonly #onError: ProjectionRunnerOptions['onError'];
  readonly #onBatch: ProjectionRunnerOptions['onBatch'];
  readonly #projections: readonly Projection[];
  readonly #errorPolicy: ErrorPolicy | undefined;
  readonly #discoverTenants: ProjectionRunnerOptions['discoverTenants'];
  /** Waits that `stop()` cuts short (see `#unlessStopped`): each removes itself when it settles. */
  readonly #stopListeners = new Set<() => void>();
  /** Set when the pool's role escapes row-level security: nothing runs, every projection is `failed`. */
  #refusal: ApplicationRoleRequiredError | undefined;
  readonly #discoveryIntervalMs: number;
  readonly #discoveryWakeup = new Wakeup();
  #discovery: Promise<void> | undefined;
  /** Calls of `discoverTenants` started. */
  #discoveriesStarted = 0;
  /** Calls of `discoverTenants` completed (whether they succeeded or not). */
  #discoveries = 0;
  readonly #session: RunnerSession;
  readonly #workers: Worker[] = [];
  readonly #byTenant = new Map<string, Worker[]>();
  /** Per tenant, what a NOTIFY naming it wakes its projections through: at most once per {@link NOTIFY_WAKE_MS_MIN}. */
  readonly #tenantWakes = new Map<string, WakeGate>();
  /** What a NOTIFY with an empty payload ("any tenant") goes through: one runner-wide tick per {@link NOTIFY_WAKE_MS_MIN}. */
  readonly #anyTenantWake = new WakeGate(NOTIFY_WAKE_MS_MIN, NOTIFY_QUIET_MS, (burst) => this.#wakeEveryTenant(burst));
  /** What the projections read last, decoded: a projection behind another takes the events from here. */
  readonly #tails: LogTails;
  /**
   * The reads of the log in flight, per tenant then per position read after, for another
   * projection of the tenant to join (see `#readShared`): an entry is removed when its read
   * settles, a tenant's map with its last entry.
   */
  readonly #readsInFlight = new Map<string, Map<string | null, Promise<LogRead>>>();
  #started = false;
  /** The start under way or done (its read-model schema check, then the projections started); see `start()`. */
  #starting: Promise<void> | undefined;
  #stopping = false;
  /** What `stop()` returns, from its first call on. */
  #stopped: Promise<void> | undefined;
  /** Calls of `whenCaughtUp` waiting: while there are any, no projection waits between live batches. */
  #caughtUpWaiters = 0;

  /**
   * Checks the options and sets up the runner; nothing runs until {@link start}. Throws, before
   * anything is opened: `InvalidInputError` for options or a collaborator of the wrong shape,
   * `LimitExceededError` for a number out of its bounds, a malformed projection name or channel,
   * a name used twice, an unknown error policy, or too few or too many tenants or projections, and
   * `InvalidTenantIdError` for a malformed tenant id.
   */
  constructor(options: ProjectionRunnerOptions) {
    checkOptionShapes(options);
    this.#pool = options.pool;
    this.#store = options.store;
    this.#codec = new EventCodec({ currencies: currenciesOf(options.currencies), ...(options.upcasters === undefined ? {} : { upcasters: options.upcasters }) });
    this.#batchSize = bounded('batchSize', options.batchSize, 1_000, 1, READ_LIMIT_MAX);
    this.#pollIntervalMs = bounded('pollIntervalMs', options.pollIntervalMs, 1_000, 10, 60_000);
    this.#tails = new LogTails(LOG_TAIL_EVENTS_MAX, bounded('logTailBytesMax', options.logTailBytesMax, LOG_TAIL_BYTES_DEFAULT, 0, 2 ** 36));
    this.#liveBatchDelayMs = bounded('liveBatchDelayMs', options.liveBatchDelayMs, 0, 0, 1_000);
    this.#takeoverIntervalMs = bounded('takeoverIntervalMs', options.takeoverIntervalMs, 1_000, 10, 60_000);
    this.#stopTimeoutMs = bounded('stopTimeoutMs', options.stopTimeoutMs, 30_000, 0, 600_000);
    this.#onError = options.onError;
    this.#onBatch = options.onBatch;
    const channel = options.notifyChannel === undefined ? DEFAULT_NOTIFY_CHANNEL : options.notifyChannel;
    if (channel !== null && !CHANNEL_PATTERN.test(channel)) throw new LimitExceededError(`notifyChannel must match ${CHANNEL_PATTERN.source}`);
    const tenants = [...new Set(options.tenantIds ?? [])];
    this.#discoverTenants = options.discoverTenants;
    this.#discoveryIntervalMs = bounded('tenantDiscoveryIntervalMs', options.tenantDiscoveryIntervalMs, 10_000, 100, 3_600_000);
    const tenantsMin = this.#discoverTenants === undefined ? 1 : 0;
    if (tenants.length < tenantsMin || tenants.length > RUNNER_TENANTS_MAX) throw new LimitExceededError(`tenantIds must hold ${tenantsMin}..${RUNNER_TENANTS_MAX} tenants, got ${tenants.length}`);
    if (options.projections.length < 1 || options.projections.length > RUNNER_PROJECTIONS_MAX) {
      throw new LimitExceededError(`projections must hold 1..${RUNNER_PROJECTIONS_MAX} projections, got ${options.projections.length}`);
    }
    const names = new Set<string>();
    for (const projection of options.projections) {
      checkProjectionName(projection.name);
      if (names.has(projection.name)) throw new LimitExceededError(`projection name ${projection.name} is used twice`);
      if (projection.liveBatchDelayMs !== undefined) bounded(`liveBatchDelayMs of projection ${projection.name}`, projection.liveBatchDelayMs, 0, 0, 1_000);
      checkErrorPolicy(`errorPolicy of projection ${projection.name}`, projection.errorPolicy);
      names.add(projection.name);
    }
    this.#projections = [...options.projections];
    this.#errorPolicy = checkErrorPolicy('errorPolicy', options.errorPolicy);
    for (const tenantId of tenants) {
      assertTenantId(tenantId);
      this.#addTenant(tenantId);
    }
    this.#session = new RunnerSession(this.#pool, channel ?? undefined, (payload) => (payload === null ? this.#wakeAll() : this.#notified(payload)), this.#takeoverIntervalMs);
  }

  /**
   * Checks the read-model schema, then starts every (projection, tenant): each takes its lock when
   * free, then catches up and follows the log. With `discoverTenants`, also starts discovering
   * tenants. Resolves once the projections are started.
   *
   * First, on one connection of the pool, the database's read-model schema version is read: it
   * must be `READ_MODEL_SCHEMA_VERSION`, no older (every batch would fail on a table or column
   * this release needs) and no newer (a later release's migration ran: its tables may mean what
   * this release does not keep). Otherwise `start()` rejects with
   * {@link ReadModelSchemaVersionError} (`found`, `needed`) before any projection runs; it rejects
   * likewise with the error of a check that could not run (the database out of reach:
   * `isTransientError` tells), and with {@link RunnerNotRunningError} (reason `stopped`) when
   * `stop()` was called during the check. A rejected start started nothing and leaves the runner
   * as it was: call `start()` again (after `migrateReadModels`, say), or `stop()`. Meanwhile
   * `whenCaughtUp` waits for the check, and rejects with its error; a `rebuild` asked meanwhile
   * rejects with it too.
   *
   * The runner's session connection checks the pool's role, as `PostgresEventStore.open` does: a
   * superuser, a role with BYPASSRLS or the tables' owner would let projections see every
   * tenant's rows, so the runner then projects nothing. Every projection goes to `failed` with an
   * {@link ApplicationRoleRequiredError}, which `onError` receives (once) and `whenCaughtUp` and
   * `rebuild` reject with. Checked once per pool.
   *
   * Throws at once (not a rejection) when called while started or starting, or after `stop()`: a
   * stopped runner does not start again.
   */
  start(): Promise<void> {
    if (this.#started) throw new Error('the runner was already started');
    // Its session is closed for good: started now, it would report `standby` and project nothing.
    if (this.#stopping) throw new Error('the runner was stopped: make a new one');
    this.#started = true;
    const starting = this.#start();
    this.#starting = starting;
    return starting;
  }

  async #start(): Promise<void> {
    try {
      // A refusal leaves the connection fine; anything else may not have.
      await withPooledClient(this.#pool, (client) => checkReadModelSchemaVersion(client), { keepAfter: (error) => error instanceof ReadModelSchemaVersionError });
      if (this.#stopping) throw new RunnerNotRunningError('start', 'stopped');
    } catch (error) {
      // Nothing was started: the runner is as before its `start()`.
      this.#started = false;
      for (const worker of this.#workers) for (const request of worker.rebuilds.splice(0)) request.reject(error);
      throw error;
    }
    for (const worker of this.#workers) this.#startWorker(worker);
    if (this.#discoverTenants !== undefined) this.#discovery = this.#discover(this.#discoverTenants);
  }

  /** The (projection, tenant) workers of a tenant new to this runner; started when the runner runs. */
  #addTenant(tenantId: string): void {
    const workers = this.#projections.map(
      (projection): Worker => ({
        projection,
        tenantId,
        lockKey: `ledgerkit.projection:${projection.name}:${tenantId}`,
        policy: projection.errorPolicy ?? this.#errorPolicy ?? 'stop',
        wakeup: new Wakeup(),
        liveBatchDelayMs: projection.liveBatchDelayMs ?? this.#liveBatchDelayMs,
        hurry: new Wakeup(),
        state: 'stopped',
        checkpoint: undefined,
        failure: undefined,
        failedAt: undefined,
        failureChecks: 0,
        failureCheckDueMs: 0,
        lastError: undefined,
        narrowRemaining: 0,
        batchLimit: this.#batchSize,
        rebuilds: [],
        rebuilding: [],
        retryRequested: false,
        idlePauseMs: IDLE_PAUSE_MS_MIN,
        retryPauseMs: RETRY_PAUSE_MS_MIN,
        readSeq: 0,
        emptyReadSeq: 0,
        lockAttempts: 0,
        prefetch: undefined,
        loop: undefined,
        running: false,
        transaction: undefined,
        abandoned: false,
      }),
    );
    this.#workers.push(...workers);
    this.#byTenant.set(tenantId, workers);
    this.#tenantWakes.set(tenantId, new WakeGate(NOTIFY_WAKE_MS_MIN, NOTIFY_QUIET_MS, (burst) => this.#wakeNotified(workers, burst)));
    if (this.#started && !this.#stopping) for (const worker of workers) this.#startWorker(worker);
  }

  #startWorker(worker: Worker): void {
    if (this.#refusal !== undefined) {
      this.#markRefused(worker, this.#refusal);
      return;
    }
    worker.state = 'standby';
    worker.running = true;
    worker.loop = this.#run(worker).finally(() => {
      worker.running = false;
    });
  }

  /**
   * The pool's role escapes row-level security: nothing may run on it. Every projection stops
   * as `failed` with the error, which is reported once.
   */
  #refuse(error: ApplicationRoleRequiredError): void {
    if (this.#refusal !== undefined) return;
    this.#refusal = error;
    for (const worker of this.#workers) {
      this.#markRefused(worker, error);
      worker.wakeup.wake();
      worker.hurry.wake();
    }
    this.#reportRunnerWide(error);
  }

  #markRefused(worker: Worker, error: ApplicationRoleRequiredError): void {
    worker.state = 'failed';
    worker.lastError = { message: error.message, position: null, at: new Date().toISOString() };
    for (const request of worker.rebuilds.splice(0)) request.reject(error);
  }

  /**
   * `promise`'s outcome, or {@link STOPPED} as soon as `stop()` is called, whichever comes first.
   * (Not `Promise.race` with one stop promise: every race would leave a reaction on it until the
   * runner stops, one more per discovery.)
   */
  #unlessStopped<T>(promise: Promise<T>): Promise<T | typeof STOPPED> {
    if (this.#stopping) {
      promise.catch(() => undefined);
      return Promise.resolve(STOPPED);
    }
    return new Promise<T | typeof STOPPED>((resolve, reject) => {
      const onStop = (): void => resolve(STOPPED);
      this.#stopListeners.add(onStop);
      promise.then(
        (value) => {
          this.#stopListeners.delete(onStop);
          resolve(value);
        },
        (error: unknown) => {
          this.#stopListeners.delete(onStop);
          reject(error);
        },
      );
    });
  }

  /** Calls `discoverTenants` now and then (and when a NOTIFY names an unknown tenant), adding the tenants it finds. */
  async #discover(discoverTenants: () => Promise<readonly string[]>): Promise<void> {
    while (!this.#stopping) {
      const calledAt = Date.now();
      this.#discoveriesStarted += 1;
      try {
        // Listening, so that the first append of a new tenant wakes this loop. Neither wait holds
        // up `stop()`: a discovery that never settles is left behind.
        if ((await this.#unlessStopped(this.#session.open())) === STOPPED) break;
        // Called inside a promise: a callback that throws, or answers without a promise, is
        // reported as a failed discovery rather than breaking the loop.
        const found = await this.#unlessStopped(Promise.resolve().then(discoverTenants));
        if (found === STOPPED) break;
        if (!Array.isArray(found)) {
          throw new InvalidInputError([{ path: ['discoverTenants'], message: `must resolve to an array of tenant ids, got ${found === null ? 'null' : typeof found}` }]);
        }
        for (const tenantId of new Set<unknown>(found)) {
          if (this.#stopping) break;
          // A malformed id is reported and left out on its own: the ids after it are still added.
          if (typeof tenantId !== 'string' || !isTenantId(tenantId)) {
            this.#reportRunnerWide(new InvalidTenantIdError(tenantId as string));
            continue;
          }
          if (this.#byTenant.has(tenantId)) continue;
          if (this.#byTenant.size >= RUNNER_TENANTS_MAX) {
            this.#reportRunnerWide(new LimitExceededError(`this runner serves ${RUNNER_TENANTS_MAX} tenants already; tenant ${tenantId} and the others not served yet are left out`));
            break;
          }
          this.#addTenant(tenantId);
        }
      } catch (error) {
        if (error instanceof ApplicationRoleRequiredError) {
          this.#refuse(error);
          this.#discoveries += 1;
          break;
        }
        this.#reportRunnerWide(error);
      }
      this.#discoveries += 1;
      if (this.#stopping) break;
      await this.#discoveryWakeup.wait(this.#discoveryIntervalMs);
      // Woken by a NOTIFY: not more often than every DISCOVERY_PAUSE_MS_MIN.
      const pause = calledAt + DISCOVERY_PAUSE_MS_MIN - Date.now();
      if (pause > 0 && !this.#stopping) await sleep(pause);
    }
  }

  /** Reports an error not tied to one (projection, tenant): a discovery's, or the pool's role refused. */
  #reportRunnerWide(error: unknown): void {
    // A logging callback must not stop discovery.
    callQuietly(this.#onError, error instanceof Error ? error : new Error(String(error)), { projection: '*', tenantId: '*' });
  }

  /**
   * Stops after the batches in flight, releases the locks (a standby runner takes over) and closes
   * the session. Does not wait for a `discoverTenants` call in flight: its answer is ignored.
   *
   * Waits at most {@link ProjectionRunnerOptions.stopTimeoutMs} (default 30 s) for the batches:
   * projections still busy then are abandoned, their batches rolled back (their connections are
   * destroyed), and once the locks are released and the session closed it rejects with
   * {@link StopTimeoutError} naming them. Calling it again returns the same outcome.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    const deadlineMs = Date.now() + this.#stopTimeoutMs;
    for (const onStop of this.#stopListeners) onStop();
    this.#stopListeners.clear();
    this.#discoveryWakeup.wake();
    for (const worker of this.#workers) {
      worker.wakeup.wake();
      worker.hurry.wake();
    }
    this.#anyTenantWake.cancel();
    for (const gate of this.#tenantWakes.values()) gate.cancel();
    // A start still checking the read models' version starts nothing once stopping; its
    // connection is back in the pool when it has settled.
    if (this.#starting !== undefined) await settlesWithin(this.#starting, deadlineMs - Date.now());
    // Discovery only waits (its calls are left behind), and adds no worker once stopping.
    await this.#discovery;
    const loops = Promise.all(this.#workers.map((worker) => worker.loop));
    const abandoned: AbandonedProjection[] = [];
    if (!(await settlesWithin(loops, deadlineMs - Date.now()))) {
      for (const worker of this.#workers) {
        if (!worker.running) continue;
        this.#abandon(worker);
        abandoned.push({ projection: worker.projection.name, tenantId: worker.tenantId });
      }
    }
    for (const worker of this.#workers) {
      worker.state = 'stopped';
      for (const request of worker.rebuilds.splice(0)) request.reject(new RunnerNotRunningError('rebuild', 'stopped'));
    }
    await this.#session.close();
    if (abandoned.length > 0) throw new StopTimeoutError(abandoned, this.#stopTimeoutMs);
  }

  /**
   * Gives up on a worker that did not stop in time. The connection of its transaction is
   * destroyed, not committed nor pooled (pg-pool ends a connection released with an error): the
   * server rolls back a transaction whose session ends, so nothing of the batch commits and the
   * checkpoint does not move. A late return of its handler finds the connection closed.
   */
  #abandon(worker: Worker): void {
    worker.abandoned = true;
    const client = worker.transaction;
    worker.transaction = undefined;
    if (client !== undefined) {
      // A closed connection's late 'error' must not crash the process.
      client.on('error', () => undefined);
      try {
        client.release(new Error(`abandoned by stop() after stopTimeoutMs (${this.#stopTimeoutMs} ms)`));
      } catch {
        // Released meanwhile: its transaction ended with it.
      }
    }
    for (const request of worker.rebuilding.splice(0)) request.reject(new RunnerNotRunningError('rebuild', 'stopped'));
  }

  /**
   * `fn` in a transaction with the worker's tenant set (see `withTenant`), its connection known to
   * the worker meanwhile, so that `stop()` can destroy it if the worker does not stop in time.
   */
  async #inTenant<T>(worker: Worker, fn: (client: PoolClient) => Promise<T>, options?: WithTenantOptions): Promise<T> {
    const abandoned = (): Error => new Error('abandoned by stop(): no further transaction');
    if (worker.abandoned) throw abandoned();
    let used: PoolClient | undefined;
    try {
      return await withTenant(
        this.#pool,
        worker.tenantId,
        async (client) => {
          // Abandoned while its connection or BEGIN was on the way: nothing more is done.
          if (worker.abandoned) throw abandoned();
          used = client;
          worker.transaction = client;
          return fn(client);
        },
        options,
      );
    } finally {
      if (used !== undefined && worker.transaction === used) worker.transaction = undefined;
    }
  }

  /**
   * Rebuilds a projection for a tenant: in one transaction, deletes its rows (its `reset`) and
   * moves its checkpoint back before the first event; then the runner replays the log into it
   * while writers keep appending. Resolves once the reset has committed; {@link whenCaughtUp}
   * tells when the replay has reached the end of the log. Also clears a `failed` state. Rejects
   * (never throws) for a projection or tenant this runner does not run (`RangeError`), a runner
   * not started or stopped ({@link RunnerNotRunningError}), or a pool whose role was refused
   * (`ApplicationRoleRequiredError`).
   */
  rebuild(projection: string, tenantId: string): Promise<void> {
    let worker: Worker;
    try {
      worker = this.#worker(projection, tenantId);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#refusal !== undefined) return Promise.reject(this.#refusal);
    const notRunning = this.#notRunning('rebuild');
    if (notRunning !== undefined) return Promise.reject(notRunning);
    return new Promise<void>((resolve, reject) => {
      worker.rebuilds.push({ resolve, reject });
      worker.wakeup.wake();
    });
  }

  /**
   * Lets a `failed` projection try its failing event again (after a fix was deployed, say).
   * Synchronous, so it throws (where {@link rebuild} rejects) `RangeError` for a projection or
   * tenant this runner does not run; for one that is not failed it only wakes the projection.
   */
  retry(projection: string, tenantId: string): void {
    const worker = this.#worker(projection, tenantId);
    worker.retryRequested = true;
    worker.wakeup.wake();
  }

  /**
   * Resolves when every projection this runner is active for has read the end of the log at
   * least once after the call (or has found, after the call, that it is still stopped on a failed
   * event rather than rebuilt elsewhere), and every other one has confirmed another runner
   * holds it. Rejects after `timeoutMs` (default 60,000), which must be a finite number ≥ 0
   * (else `LimitExceededError`), and with `ApplicationRoleRequiredError` when the pool's role
   * was refused. Rejects at once, whatever the timeout, with {@link RunnerNotRunningError} when
   * the runner is not started yet or `stop()` was called (also while waiting). Meanwhile no
   * projection waits out its `liveBatchDelayMs`: one who waits for the read models gets them as
   * soon as they can be had.
   */
  async whenCaughtUp(timeoutMs = 60_000): Promise<void> {
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new LimitExceededError(`timeoutMs must be a finite number of ms, 0 or more, got ${String(timeoutMs)}`);
    }
    const notRunning = this.#notRunning('whenCaughtUp');
    if (notRunning !== undefined) throw notRunning;
    this.#caughtUpWaiters += 1;
    try {
      await this.#caughtUp(timeoutMs);
    } finally {
      this.#caughtUpWaiters -= 1;
    }
  }

  async #caughtUp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const starting = this.#starting;
    if (starting !== undefined) {
      // Called during `start()`: after its check, or with its error.
      if (!(await settlesWithin(starting, timeoutMs))) throw new Error(`the runner did not start within ${timeoutMs} ms`);
      await starting;
    }
    if (this.#discovery !== undefined) {
      // The tenants known after the call, too: a discovery that started after it.
      const target = this.#discoveriesStarted + 1;
      this.#discoveryWakeup.wake();
      while (this.#discoveries < target && !this.#stopping) {
        if (this.#refusal !== undefined) throw this.#refusal;
        if (Date.now() > deadline) throw new Error(`tenant discovery did not complete within ${timeoutMs} ms`);
        await sleep(CAUGHT_UP_POLL_MS);
      }
    }
    if (this.#stopping) throw new RunnerNotRunningError('whenCaughtUp', 'stopped');
    const marks = this.#workers.map((worker) => ({ worker, read: worker.readSeq, lockAttempts: worker.lockAttempts, failureChecks: worker.failureChecks }));
    for (const worker of this.#workers) {
      worker.wakeup.wake();
      worker.hurry.wake();
    }
    for (;;) {
      const done = marks.every(({ worker, read, lockAttempts, failureChecks }) => {
        // Failed, and found still failed after the call (not rebuilt meanwhile by another process).
        if (worker.failure !== undefined && worker.failureChecks > failureChecks) return true;
        if (!this.#session.holds(worker.lockKey)) return worker.lockAttempts > lockAttempts;
        if (worker.failure !== undefined) return false;
        return worker.emptyReadSeq > read && worker.rebuilds.length === 0;
      });
      if (this.#refusal !== undefined) throw this.#refusal;
      if (done) return;
      if (this.#stopping) throw new RunnerNotRunningError('whenCaughtUp', 'stopped');
      if (Date.now() > deadline) throw new Error(`projections not caught up after ${timeoutMs} ms`);
      await sleep(CAUGHT_UP_POLL_MS);
    }
  }

  /** Why `what` cannot be done now: the runner is not started, or is stopping or stopped; `undefined` while it runs. */
  #notRunning(what: string): RunnerNotRunningError | undefined {
    if (this.#stopping) return new RunnerNotRunningError(what, 'stopped');
    if (!this.#started) return new RunnerNotRunningError(what, 'not-started');
    return undefined;
  }

  /** The status of every (projection, tenant) of this runner, read from the database and the runner. */
  async status(): Promise<ProjectionStatus[]> {
    const result: ProjectionStatus[] = [];
    for (const [tenantId, workers] of this.#byTenant) {
      const names = workers.map((worker) => worker.projection.name);
      // The lag in events is summed in the database: one row per projection, however many ledgers.
      const { rows, lags } = await withTenant(
        this.#pool,
        tenantId,
        async (client) => ({ rows: await readCheckpoints(client, tenantId, names), lags: await readLagEvents(client, tenantId, names) }),
        { readOnly: true },
      );
      for (const worker of workers) {
        const row = rows.get(worker.projection.name);
        const lagEvents = lags === undefined ? null : (lags.get(worker.projection.name) ?? null);
        // The age of the first event not handled: one event read, whatever the lag.
        const next = await this.#store.readAll({ tenantId, after: row?.position ?? null, limit: 1 });
        const waitingSince = next[0] === undefined ? undefined : Date.parse(next[0].event.recordedAt);
        const stored = row?.lastError == null ? null : { message: row.lastError, position: row.lastErrorPosition, at: (row.lastErrorAt ?? row.updatedAt).toISOString() };
        const lastError = worker.lastError ?? stored;
        result.push({
          projection: worker.projection.name,
          tenantId,
          state: worker.state,
          active: this.#session.holds(worker.lockKey),
          checkpoint: row?.position ?? null,
          generation: row?.generation ?? 0,
          eventsApplied: row?.eventsApplied ?? 0,
          eventsSkipped: row?.eventsSkipped ?? 0,
          lagEvents,
          lagSeconds: waitingSince === undefined ? 0 : Math.max(0, (Date.now() - waitingSince) / 1_000),
          lastEventRecordedAt: row?.lastRecordedAt?.toISOString() ?? null,
          lastError,
        });
      }
    }
    return result;
  }

  #worker(projection: string, tenantId: string): Worker {
    const worker = this.#byTenant.get(tenantId)?.find((candidate) => candidate.projection.name === projection);
    if (worker === undefined) throw new RangeError(`this runner has no projection ${projection} for tenant ${tenantId}`);
    return worker;
  }

  /**
   * The session was lost (its locks with it), or is back after appends nobody heard: every
   * projection looks at once, and so does discovery, which connects the session again (a runner
   * with no tenant yet has no other reason to) and looks for tenants it missed.
   */
  #wakeAll(): void {
    if (this.#discoveries > 0) this.#discoveryWakeup.wake();
    for (const worker of this.#workers) {
      worker.idlePauseMs = IDLE_PAUSE_MS_MIN;
      worker.wakeup.wake();
    }
  }

  /**
   * A NOTIFY heard on the channel. Any role that can connect can send one (no grant is needed), so
   * what a payload causes is bounded, however many arrive: a tenant's projections are woken at
   * most once per {@link NOTIFY_WAKE_MS_MIN}, through their tenant's gate (the first wake after a
   * quiet interval at once, later ones coalesced into one at the interval's end). An empty payload
   * (an append made with no tenant set) is one tick of a runner-wide gate, which passes it on to
   * every tenant's gate; a payload naming no tenant served wakes no projection, only discovery
   * (which calls `discoverTenants` at most every {@link DISCOVERY_PAUSE_MS_MIN}).
   */
  #notified(payload: string): void {
    if (payload === '') {
      this.#anyTenantWake.wake();
      return;
    }
    const gate = this.#tenantWakes.get(payload);
    if (gate !== undefined) gate.wake();
    // An append of a tenant this runner does not serve: maybe a new one to discover.
    else if (this.#discoverTenants !== undefined) this.#discoveryWakeup.wake();
  }

  /**
   * A NOTIFY for any tenant, passed on by the runner-wide gate: discovery looks for tenants it
   * missed, and every tenant's projections are woken through their gates (in a burst if this
   * wake is one).
   */
  #wakeEveryTenant(burst: boolean): void {
    if (this.#discoveries > 0) this.#discoveryWakeup.wake();
    for (const gate of this.#tenantWakes.values()) gate.wake(burst);
  }

  /** Wakes a tenant's projections for a NOTIFY their gate passed on (`burst`: not the first after a quiet spell; see {@link NOTIFY_QUIET_MS}). */
  #wakeNotified(workers: readonly Worker[], burst: boolean): void {
    for (const worker of workers) {
      // After the first wake of a burst, an empty read is followed by quick re-reads (the event
      // may still sit above the read horizon). Within a burst they start no quicker than the
      // wakes themselves come, so a flood costs about one read per interval.
      worker.idlePauseMs = burst ? Math.min(worker.idlePauseMs, NOTIFY_WAKE_MS_MIN) : IDLE_PAUSE_MS_MIN;
      worker.wakeup.wake();
    }
  }

  async #run(worker: Worker): Promise<void> {
    while (!this.#stopping && this.#refusal === undefined) {
      try {
        if (worker.rebuilds.length > 0) {
          await this.#rebuild(worker);
          continue;
        }
        if (!this.#session.holds(worker.lockKey)) {
          worker.state = 'standby';
          worker.checkpoint = undefined;
          if (!(await this.#session.tryLock(worker.lockKey))) {
            worker.lockAttempts += 1;
            await worker.wakeup.wait(this.#takeoverIntervalMs);
            continue;
          }
        }
        if (worker.failure !== undefined && !worker.retryRequested) {
          // Stopped until `retry`, or until its checkpoint moves (a rebuild made elsewhere). Checked
          // every poll interval, not on every wake: each append of the tenant wakes it. Someone
          // waiting in `whenCaughtUp` has it checked at once. Still `failed` after a lost session
          // made it `standby` and the lock came back: nothing got it past the event.
          worker.state = 'failed';
          const nowMs = Date.now();
          if (this.#caughtUpWaiters === 0 && nowMs < worker.failureCheckDueMs) {
            await worker.wakeup.wait(worker.failureCheckDueMs - nowMs);
            continue;
          }
          worker.failureCheckDueMs = nowMs + this.#pollIntervalMs;
          if (!(await this.#failureCleared(worker))) {
            worker.failureChecks += 1;
            await worker.wakeup.wait(this.#pollIntervalMs);
            continue;
          }
        }
        worker.failure = undefined;
        worker.failedAt = undefined;
        worker.retryRequested = false;
        if (worker.checkpoint === undefined) {
          const row = await this.#inTenant(worker, (client) => ensureCheckpoint(client, worker.tenantId, worker.projection.name));
          worker.checkpoint = { position: row.position, generation: row.generation };
        }
        const progressed = await this.#step(worker, worker.checkpoint);
        worker.retryPauseMs = RETRY_PAUSE_MS_MIN;
        if (progressed) {
          worker.idlePauseMs = IDLE_PAUSE_MS_MIN;
          // Events came: the tenant's notifications are genuine, and the next wakes them at once.
          this.#tenantWakes.get(worker.tenantId)?.reset();
          if (worker.liveBatchDelayMs > 0 && worker.state === 'live' && !this.#stopping && this.#caughtUpWaiters === 0) await worker.hurry.wait(worker.liveBatchDelayMs);
        } else {
          const pause = worker.idlePauseMs;
          worker.idlePauseMs = Math.min(pause * 2, this.#pollIntervalMs);
          await worker.wakeup.wait(pause);
        }
      } catch (error) {
        if (error instanceof CheckpointMovedError) {
          worker.checkpoint = undefined;
          continue;
        }
        if (error instanceof ApplicationRoleRequiredError) {
          this.#refuse(error);
          break;
        }
        this.#report(worker, error, null);
        const pause = worker.retryPauseMs;
        worker.retryPauseMs = Math.min(pause * 2, RETRY_PAUSE_MS_MAX);
        await worker.wakeup.wait(pause);
      }
    }
    if (this.#session.holds(worker.lockKey)) await this.#session.unlock(worker.lockKey).catch(() => undefined);
  }

  /** Reads and handles one batch; `false` when there was nothing to read. */
  async #step(worker: Worker, checkpoint: Checkpoint): Promise<boolean> {
    const limit = worker.narrowRemaining > 0 ? 1 : worker.batchLimit;
    const readSeq = (worker.readSeq += 1);
    const key = pageKey(worker.tenantId, checkpoint.position, limit);
    const prefetched = worker.prefetch?.key === key ? await worker.prefetch.page : undefined;
    worker.prefetch = undefined;
    const read = prefetched !== undefined && prefetched.length > 0 ? prefetched : await this.#read(worker.tenantId, checkpoint.position, limit);
    const { events, undecoded, undecodable } = read;
    if (read.length === 0) {
      // Nothing new; but a rebuild by another process moves the checkpoint without a new event.
      const rows = await this.#inTenant(worker, (client) => readCheckpoints(client, worker.tenantId, [worker.projection.name]), { readOnly: true });
      const row = rows.get(worker.projection.name);
      if (row === undefined || row.position !== checkpoint.position || row.generation !== checkpoint.generation) throw new CheckpointMovedError(worker.projection.name, worker.tenantId);
      // The log read to its end: an error not tied to an event (the log or the database out of
      // reach) is over. One at an event waits for a later event handled (see `lastError`).
      if (worker.lastError?.position === null) worker.lastError = undefined;
      worker.batchLimit = this.#batchSize;
      worker.state = 'live';
      worker.emptyReadSeq = readSeq;
      return false;
    }
    worker.state = read.length === limit ? 'catching-up' : 'live';
    if (events.length === 0) {
      await this.#handleFailure(worker, checkpoint, undecoded as GlobalEvent, undecodable);
      return true;
    }
    const last = events[events.length - 1] as ProjectionEvent;
    if (read.length === limit && events.length === read.length && limit > 1) {
      // Behind the log: read the next page while this one is applied.
      const nextKey = pageKey(worker.tenantId, last.position, limit);
      worker.prefetch = { key: nextKey, page: this.#read(worker.tenantId, last.position, limit).catch(() => undefined) };
    }
    try {
      await this.#applyBatch(worker, checkpoint, events);
    } catch (error) {
      worker.prefetch = undefined;
      if (isCancelledStatement(error) && events.length > 1) worker.batchLimit = Math.max(1, Math.floor(events.length / 2));
      if (error instanceof CheckpointMovedError || isTransientError(error)) throw error;
      if (events.length > 1) {
        // Which event? Go one event per transaction through this batch: the good ones commit,
        // the failing one fails alone.
        worker.narrowRemaining = events.length;
        return true;
      }
      await this.#handleFailure(worker, checkpoint, { position: last.position, event: last.stored }, error);
      return true;
    }
    if (worker.narrowRemaining > 0) worker.narrowRemaining = Math.max(0, worker.narrowRemaining - events.length);
    return true;
  }

  /**
   * One page of the log after `after`, decoded up to the first event that does not decode. Served
   * from what another projection of this runner read as far as that goes, and from the log for
   * the rest of the page: by a read of its own, or by joining one another projection of the
   * tenant has in flight from the same position (see `#readShared`).
   */
  async #read(tenantId: string, after: string | null, limit: number): Promise<Page> {
    const shared = (this.#byTenant.get(tenantId)?.length ?? 0) > 1;
    // Kept events were decoded when first read: no page of `GlobalEvent`s is built for them.
    const kept = (shared ? this.#tails.take(tenantId, after, limit) : undefined) ?? [];
    if (kept.length === limit) return { length: limit, events: kept, undecoded: undefined, undecodable: undefined };
    // The rest of the page from the log, after the last event kept: a projection behind another
    // near the live end reads only what that one has not read yet (the log after a position
    // never changes, so the kept events and these are the page a single read would return).
    const lastKept = kept[kept.length - 1];
    const from = lastKept === undefined ? after : lastKept.position;
    const read = shared ? await this.#readShared(tenantId, from, limit - kept.length) : await this.#readLog(tenantId, from, limit - kept.length);
    // `kept` itself (a fresh array from the tails, or a new empty one), to add to: a page read by
    // another projection's read is not handed out as it is, each caller gets an array of its own.
    const events: ProjectionEvent[] = kept;
    for (const event of read.events) events.push(event);
    if (shared) this.#tails.remember(tenantId, after, events);
    return { length: kept.length + read.length, events, undecoded: read.undecoded, undecodable: read.undecodable };
  }

  /**
   * Up to `limit` events of the tenant's log after `from`, for a tenant several projections of this
   * runner follow: when another of them has a read from `from` in flight (all woken by the same
   * NOTIFY, or started together), its page is shared rather than read again.
   *
   * - A shared read holding at least `limit` events: the first `limit` of them (the page a read of
   *   `limit` would return, as the log after a position never changes), its undecodable event
   *   only if that lies among them.
   * - A shared read that filled its own, smaller, limit: its events, and the rest read after its last.
   * - A shared read that found the end of the log (fewer events than its limit): those events, a
   *   short page, as a read at that moment returns (the caller reads on from its last event).
   * - A shared read that was already in flight when the caller asked and returned nothing, or
   *   failed: not the caller's answer. An empty page tells `whenCaughtUp` the projection reached
   *   the end of the log, so it must come from a read that started after the caller asked, not
   *   from one that may have looked before an append the caller's waiter made; and a failure is
   *   the owner's to report. The caller then shares a read of the same position started since
   *   (which started after it asked: its outcome, failure included, stands as the caller's own
   *   read's would), or reads the log itself.
   *
   * A read of its own is registered for others to share until it settles, then removed.
   */
  async #readShared(tenantId: string, from: string | null, limit: number): Promise<Page> {
    const earlier = this.#readsInFlight.get(tenantId)?.get(from);
    if (earlier !== undefined) {
      const shared = await earlier.then(
        (read) => read,
        () => undefined,
      );
      if (shared !== undefined && shared.length > 0) return this.#pageFrom(tenantId, shared, limit);
      const later = this.#readsInFlight.get(tenantId)?.get(from);
      if (later !== undefined && later !== earlier) return this.#pageFrom(tenantId, await later, limit);
    }
    let reads = this.#readsInFlight.get(tenantId);
    if (reads === undefined) {
      reads = new Map();
      this.#readsInFlight.set(tenantId, reads);
    }
    const tenantReads = reads;
    const read: Promise<LogRead> = this.#readLog(tenantId, from, limit).finally(() => {
      if (tenantReads.get(from) === read) tenantReads.delete(from);
      if (tenantReads.size === 0 && this.#readsInFlight.get(tenantId) === tenantReads) this.#readsInFlight.delete(tenantId);
    });
    tenantReads.set(from, read);
    return read;
  }

  /** A caller's page of up to `limit` events from a read another projection made from the same position (see `#readShared`). */
  async #pageFrom(tenantId: string, read: LogRead, limit: number): Promise<Page> {
    if (read.length >= limit) return pageOf(read, limit);
    if (read.length < read.limit || read.last === undefined || read.undecoded !== undefined) return read;
    return joinPages(read, await this.#readShared(tenantId, read.last, limit - read.length));
  }

  /** Up to `limit` events of the tenant's log after `from`, read from the store, decoded up to the first that does not decode. */
  async #readLog(tenantId: string, from: string | null, limit: number): Promise<LogRead> {
    const read = await this.#store.readAll({ tenantId, after: from, limit });
    const events: ProjectionEvent[] = [];
    let undecodable: unknown;
    let undecoded: GlobalEvent | undefined;
    for (const entry of read) {
      if (entry.event.tenantId !== tenantId) {
        // A store that broke the port's contract (or a database without its row-level security):
        // an event of another tenant is never applied to this tenant's read models. It is met as
        // an event that does not decode, so the projection's policy handles it, at its position.
        // The message names neither tenant nor ledger: it goes to this tenant's status.
        undecoded = entry;
        undecodable = new CorruptEventError("the store returned an event of another tenant in this tenant's log", { globalPosition: entry.position });
        break;
      }
      try {
        const { event, meta } = this.#codec.decode(entry.event);
        events.push({ position: entry.position, stored: entry.event, event, meta });
      } catch (error) {
        undecoded = entry;
        undecodable = error;
        break;
      }
    }
    return { length: read.length, events, undecoded, undecodable, limit, last: read[read.length - 1]?.position };
  }

  async #applyBatch(worker: Worker, checkpoint: Checkpoint, events: readonly ProjectionEvent[]): Promise<void> {
    const advance = advanceOf(events, events.length, 0);
    const { tenantId } = worker;
    const name = worker.projection.name;
    const startedMs = performance.now();
    await this.#inTenant(worker, async (client) => {
      // A batch lost in a server crash is lost with its checkpoint (they commit together) and
      // applied again: the log is the durable copy, so the commit need not wait for its flush.
      await fenceCheckpoint(client, tenantId, name, checkpoint, { asynchronousCommit: true });
      await worker.projection.apply({ client, tenantId, after: checkpoint.position }, events);
      await advanceCheckpoint(client, tenantId, name, advance);
    });
    worker.checkpoint = { position: advance.position, generation: checkpoint.generation };
    // Past any error: the advance cleared the stored one in the batch's transaction.
    worker.lastError = undefined;
    if (this.#onBatch !== undefined) {
      // A metrics callback must not stop the projection.
      callQuietly(this.#onBatch, {
        projection: name,
        tenantId,
        events: events.length,
        position: advance.position,
        ledgerVersions: advance.ledgerVersions,
        lastRecordedAt: advance.lastRecordedAt,
        durationMs: performance.now() - startedMs,
      });
    }
  }

  async #handleFailure(worker: Worker, checkpoint: Checkpoint, entry: GlobalEvent, cause: unknown): Promise<void> {
    const { tenantId } = worker;
    const name = worker.projection.name;
    const failed: FailedEvent = { position: entry.position, ledgerId: entry.event.ledgerId, ledgerVersion: entry.event.ledgerVersion, eventType: entry.event.type };
    // Skipped only when the event is at fault: an error of the database's setup (a missing grant
    // or table, a read-only standby) would fail every event, and skipping them all would leave an
    // empty read model that reports itself caught up. Such a projection stops instead.
    const environment = environmentSqlstateOf(cause);
    const failure = new ProjectionFailedError(
      name,
      tenantId,
      failed,
      environment === undefined || worker.policy !== 'skip-with-record'
        ? cause
        : new Error(`not skipped: SQLSTATE ${environment} says the database's setup is wrong, not this event (${cause instanceof Error ? cause.message : String(cause)})`, { cause }),
    );
    worker.narrowRemaining = 0;
    if (worker.policy === 'skip-with-record' && environment === undefined) {
      const advance = advanceOf([{ position: entry.position, stored: entry.event }], 0, 1);
      await this.#inTenant(worker, async (client) => {
        await fenceCheckpoint(client, tenantId, name, checkpoint);
        // The advance first: it clears the last error, and this skip's error is the last one now.
        await advanceCheckpoint(client, tenantId, name, advance);
        await recordSkippedEvent(client, tenantId, name, failed, failure.message);
        await worker.projection.skipped?.({ client, tenantId, after: checkpoint.position }, failed);
      });
      worker.checkpoint = { position: advance.position, generation: checkpoint.generation };
      this.#report(worker, failure, failed.position);
      return;
    }
    await this.#inTenant(worker, async (client) => {
      await fenceCheckpoint(client, tenantId, name, checkpoint);
      await recordError(client, tenantId, name, failed.position, failure.message);
    });
    worker.failure = failure;
    worker.failedAt = checkpoint;
    worker.state = 'failed';
    this.#report(worker, failure, failed.position);
  }

  /**
   * Whether a stopped projection's checkpoint has moved from where it failed: a rebuild made
   * elsewhere (`rebuildProjection` in another process, `rebuild` on a standby runner), or another
   * runner that got past the event while this one had lost its lock. Then the stop no longer
   * holds: the projection starts again from the stored checkpoint, as after a rebuild of its own.
   * Without this check it waited for a `retry()` that nobody had reason to call, its rows reset
   * and never replayed.
   */
  async #failureCleared(worker: Worker): Promise<boolean> {
    const name = worker.projection.name;
    const rows = await this.#inTenant(worker, (client) => readCheckpoints(client, worker.tenantId, [name]), { readOnly: true });
    const row = rows.get(name);
    const at = worker.failedAt;
    if (row !== undefined && at !== undefined && row.position === at.position && row.generation === at.generation) return false;
    worker.checkpoint = undefined;
    // The stored error is the one to report now (a rebuild cleared it).
    worker.lastError = undefined;
    if (worker.state === 'failed') worker.state = 'catching-up';
    return true;
  }

  async #rebuild(worker: Worker): Promise<void> {
    const requests = worker.rebuilds.splice(0);
    worker.rebuilding = requests;
    try {
      worker.checkpoint = await this.#inTenant(worker, (client) => resetProjection(this.#pool, client, worker.tenantId, worker.projection));
      worker.failure = undefined;
      worker.failedAt = undefined;
      worker.lastError = undefined;
      worker.narrowRemaining = 0;
      if (worker.state === 'failed') worker.state = 'catching-up';
      for (const request of requests) request.resolve();
    } catch (error) {
      for (const request of requests) request.reject(error);
    } finally {
      worker.rebuilding = [];
    }
  }

  #report(worker: Worker, error: unknown, position: string | null): void {
    // What an abandoned worker meets after `stop()` (its connection closed under it) is no news.
    if (worker.abandoned) return;
    const failure = error instanceof Error ? error : new Error(String(error));
    // Stopped on an event, status keeps that event's error until the projection gets past it; a
    // later error not tied to an event (a failed look at its checkpoint) goes to `onError` only.
    if (worker.failure === undefined || position !== null) worker.lastError = { message: failure.message, position, at: new Date().toISOString() };
    // A logging callback must not stop the projection.
    callQuietly(this.#onError, failure, { projection: worker.projection.name, tenantId: worker.tenantId });
  }
}

/** Options of {@link rebuildProjection}. */
export interface RebuildProjectionOptions {
  /** Pool of the application role (checked as the runner checks it). */
  readonly pool: ClientPool;
  /** The tenant whose rows and checkpoint are reset. */
  readonly tenantId: string;
  /** The projection to rebuild (its `reset` deletes its rows); its name must match {@link PROJECTION_NAME_PATTERN}. */
  readonly projection: Projection;
}

/**
 * Resets a projection for a tenant in one transaction: its checkpoint goes back before the first
 * event (with a new generation, which fences out any batch still in flight) and its `reset`
 * deletes its rows. Usable from any process: the active runner notices the new generation and
 * replays from the first event, also when it had stopped on a failed event. Returns the new checkpoint.
 *
 * Rejects, with nothing written, for options that are not an object or lack a pool or a
 * projection with a `reset` function (`InvalidInputError` at `options`, `pool` or `projection`),
 * a malformed tenant id (`InvalidTenantIdError`), a projection name the runner would refuse (`LimitExceededError`), a pool whose role escapes row-level
 * security (`ApplicationRoleRequiredError`), or read models at another schema version than this
 * release's (`ReadModelSchemaVersionError`); both checked once per pool that passes.
 */
export async function rebuildProjection(options: RebuildProjectionOptions): Promise<Checkpoint> {
  const { tenantId, projection, pool } = optionsOf(options, true);
  requireObjectWith(pool, 'pool', ['connect']);
  requireObjectWith(projection, 'projection', ['reset']);
  checkProjectionName(projection.name);
  return withTenant(pool, tenantId, (client) => resetProjection(pool, client, tenantId, projection));
}

/** The work of {@link rebuildProjection}, in the caller's transaction (tenant set) on `client`, a connection of `pool`. */
async function resetProjection(pool: ClientPool, client: PoolClient, tenantId: string, projection: Projection): Promise<Checkpoint> {
  await checkApplicationRole(pool, client);
  // The checkpoint row first: the same lock order as a batch, so the two cannot deadlock.
  const checkpoint = await resetCheckpoint(client, tenantId, projection.name);
  await projection.reset({ client, tenantId, after: null });
  return checkpoint;
}

/**
 * Calls a callback of the caller's for what it returns nothing to the runner, ignoring its
 * failure: a throw, and the rejection of an async callback, which nobody else handles (an
 * unhandled rejection ends a Node process).
 */
function callQuietly<A extends unknown[]>(callback: ((...args: A) => void) | undefined, ...args: A): void {
  try {
    const returned: unknown = callback?.(...args);
    if (returned instanceof Promise) returned.catch(() => undefined);
  } catch {
    // Ignored, as the rejection above.
  }
}

/** The first `limit` events of a page of more (its undecodable event only if it is among them). */
function pageOf(page: Page, limit: number): Page {
  if (page.length <= limit) return page;
  if (limit <= page.events.length) return { length: limit, events: page.events.slice(0, limit), undecoded: undefined, undecodable: undefined };
  return { length: limit, events: page.events, undecoded: page.undecoded, undecodable: page.undecodable };
}

/** A page whose events all decoded, followed by the page read after its last event: one page. */
function joinPages(first: Page, rest: Page): Page {
  return { length: first.length + rest.length, events: [...first.events, ...rest.events], undecoded: rest.undecoded, undecodable: rest.undecodable };
}

function pageKey(tenantId: string, after: string | null, limit: number): string {
  return `${tenantId}\u0000${after ?? ''}\u0000${limit}`;
}

function advanceOf(events: readonly Pick<ProjectionEvent, 'position' | 'stored'>[], applied: number, skipped: number): CheckpointAdvance {
  const last = events[events.length - 1];
  if (last === undefined) throw new Error('advanceOf needs at least one event');
  const ledgerVersions = new Map<string, number>();
  for (const { stored } of events) {
    if ((ledgerVersions.get(stored.ledgerId) ?? 0) < stored.ledgerVersion) ledgerVersions.set(stored.ledgerId, stored.ledgerVersion);
  }
  return { position: last.position, applied, skipped, ledgerVersions, lastRecordedAt: last.stored.recordedAt };
}

function checkProjectionName(name: unknown): void {
  if (typeof name !== 'string' || !PROJECTION_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw new LimitExceededError(`projection name ${shown} must match ${PROJECTION_NAME_PATTERN.source}`);
  }
}

/**
 * Refuses options of the wrong shape, from a caller without types, before any is used: a string
 * given as `tenantIds` would otherwise run one tenant per letter, a projection factory given
 * uncalled would fail (or, under `skip-with-record`, skip) every event, and an `onError` that is
 * not a function would swallow every error.
 */
function checkOptionShapes(options: unknown): void {
  const issue = (path: readonly (string | number)[], message: string): InvalidInputError => new InvalidInputError([{ path: ['options', ...path], message }]);
  const given = optionsOf(options as Record<string, unknown> | undefined, true);
  // Used only once the runner has started: a wrong one would fail every worker, retried forever.
  if (!hasMethods(given['pool'], ['connect'])) throw issue(['pool'], 'must be a pool of the application role (an object with connect)');
  if (!hasMethods(given['store'], ['readAll'])) throw issue(['store'], 'must be an EventStore (an object with readAll and the rest of the port)');
  if (given['tenantIds'] !== undefined && !Array.isArray(given['tenantIds'])) throw issue(['tenantIds'], 'must be an array of tenant ids');
  const projections = given['projections'];
  if (!Array.isArray(projections)) throw issue(['projections'], 'must be an array of projections');
  for (const [index, projection] of projections.entries()) {
    const fields = typeof projection === 'object' && projection !== null ? (projection as Record<string, unknown>) : undefined;
    if (fields === undefined || typeof fields['apply'] !== 'function' || typeof fields['reset'] !== 'function') {
      throw issue(['projections', index], 'must be a projection: an object with apply and reset functions (a factory such as balancesProjection is called: balancesProjection())');
    }
  }
  for (const callback of ['onError', 'onBatch', 'discoverTenants']) {
    if (given[callback] !== undefined && typeof given[callback] !== 'function') throw issue([callback], 'must be a function (or left out)');
  }
}

function checkErrorPolicy(name: string, value: unknown): ErrorPolicy | undefined {
  if (value === undefined || ERROR_POLICIES.includes(value as ErrorPolicy)) return value as ErrorPolicy | undefined;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value;
  throw new LimitExceededError(`${name} must be one of ${ERROR_POLICIES.join(', ')}, got ${shown}`);
}

function bounded(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen < min || chosen > max) throw new LimitExceededError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  return chosen;
}

/** The longest delay `setTimeout` keeps (2^31 - 1 ms, ~24.8 days); a longer one fires at once. */
const TIMER_MS_MAX = 2 ** 31 - 1;

/**
 * Whether `promise` settles (either way) within `ms`, which may exceed what one timer can wait
 * (it is waited out in steps); the promise is left running otherwise.
 */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const deadline = Date.now() + Math.max(0, ms);
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      const left = deadline - Date.now();
      timer = left <= 0 ? undefined : setTimeout(arm, Math.min(left, TIMER_MS_MAX));
      if (timer === undefined) resolve(false);
    };
    arm();
    const settled = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
