import {
  balanceOf,
  formatAmount,
  HISTORY_PAGE_SIZE_MAX,
  ID_PATTERN,
  ID_PATTERN_MESSAGE,
  InvalidInputError,
  isStorableText,
  normalSideOf,
  parseAsOf,
  parseInstantMs,
  REFERENCE_LENGTH_MAX,
  STORABLE_TEXT_MESSAGE,
  trialBalanceOf,
  type AccountState,
  type AccountType,
  type AsOf,
  type Balance,
  type CurrencyRegistry,
  type HistoryEntry,
  type HistoryPage,
  type Side,
  type TransferKind,
  type TrialBalance,
} from '@ledgerkit/ledger-core';
import { createHash } from 'node:crypto';
import { isTenantId, withPooledClient, withTenant, type ClientPool } from '@ledgerkit/tenant-rls';
import type { PoolClient } from 'pg';
import { isRefusedOnLiveSession, ResultTooLargeError } from '../errors.js';
import { isRoleChecked, checkApplicationRole, checkPoolRole } from '../role-check.js';
import { ACCOUNT_OPENING_INDEX_PREDICATES, SCHEMA } from '../schema.js';
import { accountListQuery, listAccounts, type AccountListOptions, type AccountsPage } from './account-list.js';
import { currenciesOf, optionsOf, requireObjectWith } from './options.js';
import { keyOf, type HeldPosting } from './rows.js';

/** Most transfers or holds one lookup returns. */
export const TRANSFER_PAGE_SIZE_MAX = 1_000;
/** Most lines a trial balance may be allowed to return (`TrialBalanceOptions.linesMax`). */
export const TRIAL_BALANCE_LINES_MAX = 1_000_000;
/** Lines a trial balance returns at most when the caller does not say. */
export const TRIAL_BALANCE_LINES_DEFAULT = 100_000;

/** Options of {@link ReadModels.trialBalance}. */
export interface TrialBalanceOptions {
  /** Most lines (accounts) to return: 1..{@link TRIAL_BALANCE_LINES_MAX}, default {@link TRIAL_BALANCE_LINES_DEFAULT}; more is `ResultTooLargeError`. */
  readonly linesMax?: number;
}
/** Entries one event can add to one account: a hold's release, then a posting. */
const ENTRIES_PER_EVENT_MAX = 2;
/** 0001-01-01T00:00:00.000Z: the first instant a time parameter may name (PostgreSQL reads no earlier ISO year). */
const INSTANT_MS_MIN = -62_135_596_800_000;
/** 9999-12-31T23:59:59.999Z: the last instant a time parameter may name (later ones have no 4-digit ISO year). */
const INSTANT_MS_MAX = 253_402_300_799_999;

/** Options of {@link ReadModels}. */
export interface ReadModelsOptions {
  /**
   * Pool of the application role; every read is one read-only transaction with the tenant set.
   * A role that escapes row-level security (superuser, BYPASSRLS, the tables' owner) is refused
   * at the first read with `ApplicationRoleRequiredError`, and read models at another schema
   * version than this release's `READ_MODEL_SCHEMA_VERSION` (not migrated far enough, or migrated
   * by a newer release) with `ReadModelSchemaVersionError` (`found`, `needed`). Checked once per
   * pool that passes: a refused pool is checked again at its next read.
   */
  readonly pool: ClientPool;
  /** Currencies to format amounts with; must include the ledgers' custom assets. Default ISO 4217. */
  readonly currencies?: CurrencyRegistry;
  /**
   * Read the balances asked for in the same turn of the event loop with one statement per tenant
   * (up to {@link BALANCE_READS_PER_STATEMENT_MAX} keys each) instead of one each; default true.
   * Each answer is the same as alone: the rows as committed when the statement runs.
   */
  readonly batchBalanceReads?: boolean;
}

/** A balance read waiting for its turn's statement. */
interface BalanceRead {
  readonly ledgerId: string;
  readonly accountId: string;
  readonly resolve: (balance: Balance | undefined) => void;
  readonly reject: (error: unknown) => void;
}

/** Most balance reads one statement answers; more asked together take several. */
export const BALANCE_READS_PER_STATEMENT_MAX = 1_000;

/** A page of an account's statement. */
export interface StatementOptions {
  /** Entries after this ledger version (keyset pagination: pass the previous page's `nextAfterVersion`). */
  readonly afterVersion?: number;
  /** Most entries: 1..1000, default 100. A page never ends inside an event, so it may hold one more. */
  readonly limit?: number;
  /**
   * Only entries recorded at or after this instant (years 0001-9999 UTC). Recorded times are whole
   * milliseconds, so a fraction below one rounds up (`…30.0005Z` keeps out an entry at `…30.000Z`).
   * Inside the last millisecond of 9999 (`9999-12-31T23:59:59.9995Z`) it rounds past every time
   * the ledger can record: the page is empty.
   */
  readonly from?: string | Date;
  /**
   * Only entries recorded before this instant (years 0001-9999 UTC; a fraction below a millisecond
   * rounds up, as for `from`). Inside the last millisecond of 9999 with such a fraction it keeps
   * nothing out, as no `to` at all.
   */
  readonly to?: string | Date;
}

/** One posting of a transfer, amount as a decimal string. */
export interface TransferPostingView {
  /** The account the posting moves. */
  readonly accountId: string;
  /** Whether it debits or credits that account. */
  readonly side: Side;
  /** Positive, in major units with the currency's decimals (`"12.50"`). */
  readonly amount: string;
  /** ISO-4217 (or registered custom) currency code. */
  readonly currency: string;
}

/** A hold's state: open until posted, voided or expired. */
export interface HoldView {
  readonly status: 'pending' | 'posted' | 'voided' | 'expired';
  /** When it times out, ISO-8601; `null` for a hold without timeout. */
  readonly timeoutAt: string | null;
  /** The transfer that posted or voided it. */
  readonly resolvedBy: string | null;
  /** Ledger version of its resolution. */
  readonly resolvedVersion: number | null;
}

/** A transfer as the history read model records it. */
export interface TransferView {
  /** The ledger (book) within the tenant. */
  readonly ledgerId: string;
  /** The id the transfer was created with (the ledger's idempotency key for it). */
  readonly transferId: string;
  /** Which command made it: a transfer, hold, postPending, voidPending or reversal. */
  readonly kind: TransferKind;
  /** Posted postings (transfer, reversal, postPending), held postings (hold), none (voidPending). */
  readonly postings: readonly TransferPostingView[];
  /** The caller's reference (an invoice number, say); `null` without one. */
  readonly reference: string | null;
  /** The hold a postPending or voidPending resolves. */
  readonly pendingId: string | null;
  /** The transfer a reversal reverses. */
  readonly reversalOf: string | null;
  /** The reversal that reversed this transfer. */
  readonly reversedBy: string | null;
  /** The caller's string-to-string metadata (`{}` without any). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Ledger version of the event that recorded it. */
  readonly ledgerVersion: number;
  /** When the ledger recorded it, ISO-8601 UTC with milliseconds. */
  readonly recordedAt: string;
  /** When it takes effect for as-of queries (equal to `recordedAt` unless back-dated), ISO-8601 UTC. */
  readonly effectiveAt: string;
  /** Set for holds only. */
  readonly hold: HoldView | null;
}

/** Options of {@link ReadModels.transfersByReference}. */
export interface TransfersByReferenceOptions {
  /**
   * Where the page starts: the previous page's `next` for the same ledger and reference (keyset
   * pagination); default the reference's first transfer. A cursor of another ledger or reference,
   * or one not made by `transfersByReference`, is refused with `InvalidInputError`.
   */
  readonly after?: string | null;
  /** Most transfers on the page: 1..{@link TRANSFER_PAGE_SIZE_MAX}, default 100. */
  readonly limit?: number;
}

/** Options of {@link ReadModels.openHolds}. */
export interface OpenHoldsOptions {
  /**
   * Only holds timing out before this instant (years 0001-9999 UTC; a fraction below a
   * millisecond rounds up, as timeouts are whole milliseconds); default every open hold. Inside
   * the last millisecond of 9999 with such a fraction: every hold with a timeout.
   */
  readonly expiringBefore?: string | Date;
  /** Where the page starts: the previous page's `next`; anything else is refused with `InvalidInputError`. */
  readonly after?: string | null;
  /** Most holds on the page: 1..{@link TRANSFER_PAGE_SIZE_MAX}, default 100. */
  readonly limit?: number;
}

/** Transfers carrying one reference, in ledger order, and where the next page starts. */
export interface TransfersPage {
  readonly transfers: TransferView[];
  /** Pass as `after` for the next page (of the same ledger and reference); `null` at the end. */
  readonly next: string | null;
}

/** Open holds in expiry order, and where the next page starts. */
export interface HoldsPage {
  readonly holds: TransferView[];
  /** Pass as `after` for the next page; `null` at the end. */
  readonly next: string | null;
}

interface AccountColumns {
  readonly account_id: string;
  readonly currency: string;
  readonly account_type: AccountType;
  readonly debits_must_not_exceed_credits: boolean;
  readonly credits_must_not_exceed_debits: boolean;
  readonly opened_version: string;
  readonly status: AccountState['status'];
  readonly debits_posted: string | null;
  readonly credits_posted: string | null;
  readonly debits_pending: string | null;
  readonly credits_pending: string | null;
}

interface TransferColumns {
  readonly ledger_id: string;
  readonly transfer_id: string;
  readonly kind: TransferKind;
  readonly postings: HeldPosting[];
  readonly reference: string | null;
  readonly pending_id: string | null;
  readonly reversal_of: string | null;
  readonly reversed_by: string | null;
  readonly metadata: Record<string, string>;
  readonly ledger_version: string;
  readonly recorded_at: Date;
  readonly effective_at: Date;
  readonly hold_status: HoldView['status'] | null;
  readonly timeout_at: Date | null;
  readonly resolved_by: string | null;
  readonly resolved_version: string | null;
}

type AsOfKind = 'ledgerVersion' | 'recordedAt' | 'effectiveAt';

const E = `${SCHEMA}.rm_account_entries`;

/**
 * The balance row's columns a read uses: not `opened_at`, which node-postgres would otherwise
 * turn into a `Date` for every row read, nor the tenant or the row's version, nor the account's
 * metadata (up to 4 KB, parsed for every row, and no balance shows it).
 */
const BALANCE_COLUMNS = `b.account_id, b.currency, b.account_type, b.debits_must_not_exceed_credits, b.credits_must_not_exceed_debits,
  b.opened_version, b.status, b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending`;
/** The balance read: `read_balance` sets the tenant for the call and reads under its policy. */
const READ_BALANCE_SQL = `SELECT ${BALANCE_COLUMNS} FROM ${SCHEMA}.read_balance($1, $2, $3) b`;
/** Several balances in one statement (read-model migration 3). */
const READ_BALANCES_STATEMENT = {
  name: 'ledgerkit_read_balances_v3',
  text: `SELECT b.ledger_id, ${BALANCE_COLUMNS} FROM ${SCHEMA}.read_balances($1, $2::text[], $3::text[]) b`,
} as const;
/** Prepared-statement name of {@link READ_BALANCE_SQL}, unique to this text on a connection. */
const READ_BALANCE_STATEMENT = 'ledgerkit_read_balance_v3';

/** The ledger's last version recorded at or before $3: "as of a recorded time" is "as of that version". */
const VERSION_AT_RECORDED = `coalesce((SELECT t.ledger_version FROM ${SCHEMA}.rm_ledger_times t
    WHERE t.tenant_id = $1 AND t.ledger_id = $2 AND t.recorded_at <= $3 ORDER BY t.recorded_at DESC LIMIT 1), 0)`;

/**
 * The account columns as of a point: the accounts opened by then, and for each its status (its
 * last status row at or before the point) and its totals after its last entry at or before the
 * point (none: zero). "Opened by the point" is read from the account's own row before anything
 * else: its opening version at or below the point's version (for a recorded time, the ledger's
 * last version recorded by then), or its opening effective time at or before an effective time,
 * as replay includes its AccountOpened event (ledger-core refuses an entry effective before its
 * account's opening, and status changes are effective when recorded, so no status row or entry
 * of an account precedes its opening on either basis). Read-model migration 8 indexes both
 * columns (partial indexes, on conditions every row meets that this statement states): the
 * accounts are a range scan of the ledger's accounts opened by the point, so those
 * opened later cost nothing, and a caller's LIMIT stops the scan. The point is compared as a
 * scalar subquery (an init plan, which the index scan takes as its condition; compared with a
 * column of `p`, it was planned as a filter on every row of the ledger), and the rows come in the index's order, which keeps the planner on the
 * index whatever it guesses of the point's selectivity. The callers sort what they return, so the
 * order is not part of the answer. Each lateral subquery is one index probe per account taken
 * (O(log n) in its history). One account (`oneAccount`) is a primary-key lookup, as before:
 * whether it was opened by the point is its status probe's answer (its first status row is its
 * opening, at its opening version and effective time).
 */
function asOfSql(kind: AsOfKind, oneAccount: boolean): string {
  const byEffective = kind === 'effectiveAt';
  const point = kind === 'ledgerVersion' ? '$3::bigint' : kind === 'recordedAt' ? VERSION_AT_RECORDED : '$3::timestamptz';
  const openedColumn = byEffective ? 'a.opened_effective_at' : 'a.opened_version';
  // Always true; stated so that the partial index on it can be used (see the predicates' comment).
  const indexPredicate = `a.${byEffective ? ACCOUNT_OPENING_INDEX_PREDICATES.effective : ACCOUNT_OPENING_INDEX_PREDICATES.version}`;
  const stateBound = byEffective ? 'st.effective_at <= p.at' : 'st.ledger_version <= p.at';
  const entry = byEffective
    ? `en.effective_at <= p.at ORDER BY en.effective_at DESC, en.ledger_version DESC, en.seq DESC`
    : `en.ledger_version <= p.at ORDER BY en.ledger_version DESC, en.seq DESC`;
  const total = (column: string): string => (byEffective ? `coalesce(en.eff_${column}, en.${column}) AS ${column}` : `en.${column}`);
  return `WITH p AS MATERIALIZED (SELECT ${point} AS at)
    SELECT a.account_id, a.currency, a.account_type, a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits,
      a.opened_version, s.status, e.debits_posted, e.credits_posted, e.debits_pending, e.credits_pending
    FROM p CROSS JOIN ${SCHEMA}.rm_accounts a
    CROSS JOIN LATERAL (SELECT st.status FROM ${SCHEMA}.rm_account_states st
      WHERE st.tenant_id = $1 AND st.ledger_id = $2 AND st.account_id = a.account_id AND ${stateBound}
      ORDER BY st.ledger_version DESC LIMIT 1) s
    LEFT JOIN LATERAL (SELECT ${total('debits_posted')}, ${total('credits_posted')}, ${total('debits_pending')}, ${total('credits_pending')}
      FROM ${E} en WHERE en.tenant_id = $1 AND en.ledger_id = $2 AND en.account_id = a.account_id AND ${entry} LIMIT 1) e ON true
    WHERE a.tenant_id = $1 AND a.ledger_id = $2 AND ${oneAccount ? 'a.account_id = $4' : `${indexPredicate} AND ${openedColumn} <= (SELECT p.at FROM p) ORDER BY ${openedColumn}`}`;
}

const AS_OF_KINDS: readonly AsOfKind[] = ['ledgerVersion', 'recordedAt', 'effectiveAt'];
const BALANCE_AT_SQL = new Map(AS_OF_KINDS.map((kind) => [kind, asOfSql(kind, true)]));
const TRIAL_BALANCE_AT_SQL = new Map(AS_OF_KINDS.map((kind) => [kind, asOfSql(kind, false)]));

const TRIAL_BALANCE_NOW_SQL = `SELECT account_id, currency, account_type, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
    opened_version, status, debits_posted, credits_posted, debits_pending, credits_pending
  FROM ${SCHEMA}.rm_balances WHERE tenant_id = $1 AND ledger_id = $2`;

/** The history projection's last applied version of a ledger: the row of its latest recorded time. */
const HISTORY_VERSION_SQL = `SELECT t.ledger_version FROM ${SCHEMA}.rm_ledger_times t WHERE t.tenant_id = $1 AND t.ledger_id = $2
  ORDER BY t.recorded_at DESC LIMIT 1`;

const ACCOUNT_SQL = `SELECT currency, account_type FROM ${SCHEMA}.rm_accounts WHERE tenant_id = $1 AND ledger_id = $2 AND account_id = $3`;

// Recorded times never decrease along a stream, so a recorded-time window of an account's
// entries is a ledger-version range; its ends come from rm_ledger_times.
const STATEMENT_SQL = `WITH bounds AS (
    SELECT greatest($4::bigint, coalesce((SELECT t.ledger_version FROM ${SCHEMA}.rm_ledger_times t WHERE t.tenant_id = $1 AND t.ledger_id = $2
             AND t.recorded_at < $5 ORDER BY t.recorded_at DESC LIMIT 1), 0)) AS after_version,
           CASE WHEN $6::timestamptz IS NULL THEN 9223372036854775807::bigint
                ELSE coalesce((SELECT t.ledger_version FROM ${SCHEMA}.rm_ledger_times t WHERE t.tenant_id = $1 AND t.ledger_id = $2
                       AND t.recorded_at < $6 ORDER BY t.recorded_at DESC LIMIT 1), 0) END AS last_version)
  SELECT en.ledger_version, en.event_type, en.transfer_id, en.side, en.bucket, en.amount, en.debits_posted, en.credits_posted, en.recorded_at, en.effective_at
  FROM ${E} en, bounds b
  WHERE en.tenant_id = $1 AND en.ledger_id = $2 AND en.account_id = $3 AND en.ledger_version > b.after_version AND en.ledger_version <= b.last_version
  ORDER BY en.ledger_version, en.seq LIMIT $7`;

const TRANSFER_COLUMNS = `ledger_id, transfer_id, kind, postings, reference, pending_id, reversal_of, reversed_by, metadata, ledger_version,
  recorded_at, effective_at, hold_status, timeout_at, resolved_by, resolved_version`;

const HOLD_ORDER = `coalesce(timeout_at, 'infinity'::timestamptz)`;

/**
 * Queries over the read models, answering in the same shapes as `Ledger` (`Balance`,
 * `TrialBalance`, `HistoryPage`) so that the fast path and the replay path can be compared
 * directly. Balances now come from the balances projection; everything "as of" a point, the
 * statements and the transfers from the history projection. Both lag the log by what their
 * status reports (except balances kept inline with the appends).
 *
 * ```ts
 * const models = new ReadModels({ pool: appPool });
 * await models.balance('acme', 'eur', 'alice');                                   // one index lookup
 * await models.balanceAt('acme', 'eur', 'alice', { effectiveAt: '2025-01-31T23:59:59Z' }); // O(log n)
 * ```
 *
 * Every method checks its arguments before any SQL and rejects bad ones with `InvalidInputError`:
 * tenant, ledger, account and transfer ids off the id pattern (a NUL character included), times
 * outside years 0001-9999 UTC, cursors it did not make, an options argument that is not an object
 * (`null` from JavaScript, say: at `options`). The first read of a pool checks its role and the
 * read models' schema version (see {@link ReadModelsOptions.pool}).
 */
export class ReadModels {
  readonly #pool: ClientPool;
  readonly #currencies: CurrencyRegistry;
  readonly #batchBalanceReads: boolean;
  /** Balance reads waiting for this turn's statement, per tenant. */
  #balanceReads = new Map<string, BalanceRead[]>();
  #balanceFlushScheduled = false;

  /**
   * Refuses `options` that are not an object with `InvalidInputError` at `options`, a `pool`
   * that is not one (no `connect` method) at `pool`, `currencies` that are not a
   * `CurrencyRegistry` (no `get` method; `null` included) at `currencies`, and a
   * `batchBalanceReads` that is not a boolean at `batchBalanceReads`.
   */
  constructor(options: ReadModelsOptions) {
    const checked = optionsOf(options, true);
    requireObjectWith(checked.pool, 'pool', ['connect']);
    const batchBalanceReads: unknown = checked.batchBalanceReads;
    if (batchBalanceReads !== undefined && typeof batchBalanceReads !== 'boolean') {
      throw new InvalidInputError([{ path: ['batchBalanceReads'], message: 'must be a boolean (or left out)' }]);
    }
    this.#pool = checked.pool;
    this.#currencies = currenciesOf(checked.currencies);
    this.#batchBalanceReads = batchBalanceReads ?? true;
  }

  /**
   * Makes now the checks a pool's first read would make: that its role is subject to row-level
   * security (`ApplicationRoleRequiredError`) and that the read models are at this release's
   * schema version (`ReadModelSchemaVersionError`, with `found` and `needed`). Call it at start-up
   * to fail there rather than on the first request. Resolves at once for a pool that passed.
   */
  async check(): Promise<void> {
    await checkPoolRole(this.#pool);
  }

  /**
   * An account's current balance: one primary-key lookup, `undefined` if it does not exist. Reads
   * asked for in the same turn of the event loop share one round trip (see `batchBalanceReads`).
   * Rejects malformed ids with `InvalidInputError`, alone: the other reads of its turn go on.
   */
  async balance(tenantId: string, ledgerId: string, accountId: string): Promise<Balance | undefined> {
    checkTenant(tenantId);
    checkId(ledgerId, 'ledgerId');
    checkId(accountId, 'accountId');
    if (!this.#batchBalanceReads) return this.#balanceAlone(tenantId, ledgerId, accountId);
    return new Promise<Balance | undefined>((resolve, reject) => {
      const reads = this.#balanceReads.get(tenantId);
      const read: BalanceRead = { ledgerId, accountId, resolve, reject };
      if (reads === undefined) this.#balanceReads.set(tenantId, [read]);
      else reads.push(read);
      if (!this.#balanceFlushScheduled) {
        this.#balanceFlushScheduled = true;
        // After the I/O of this turn: every request parsed in it has asked by then.
        setImmediate(() => this.#flushBalanceReads());
      }
    });
  }

  #flushBalanceReads(): void {
    this.#balanceFlushScheduled = false;
    const byTenant = this.#balanceReads;
    this.#balanceReads = new Map();
    for (const [tenantId, reads] of byTenant) {
      for (let start = 0; start < reads.length; start += BALANCE_READS_PER_STATEMENT_MAX) {
        void this.#readBalances(tenantId, reads.slice(start, start + BALANCE_READS_PER_STATEMENT_MAX));
      }
    }
  }

  /** Answers every read of `reads` (one tenant's) from one statement; see the catch for what a failed statement does. */
  async #readBalances(tenantId: string, reads: readonly BalanceRead[]): Promise<void> {
    const only = reads.length === 1 ? reads[0] : undefined;
    if (only !== undefined) {
      await this.#balanceAlone(tenantId, only.ledgerId, only.accountId).then(only.resolve, only.reject);
      return;
    }
    let rows: (AccountColumns & { readonly ledger_id: string })[];
    try {
      const values = [tenantId, reads.map((read) => read.ledgerId), reads.map((read) => read.accountId)];
      rows = (await this.#withClient((client) => client.query<AccountColumns & { readonly ledger_id: string }>({ ...READ_BALANCES_STATEMENT, values }))).rows;
    } catch (error) {
      // A value the database refuses (a NUL in an id, say: SQLSTATE class 22) fails the whole
      // statement: each read then goes alone, so that only the one that carries it fails.
      if (isDataException(error)) {
        await Promise.all(reads.map((read) => this.#balanceAlone(tenantId, read.ledgerId, read.accountId).then(read.resolve, read.reject)));
        return;
      }
      for (const read of reads) read.reject(error);
      return;
    }
    // Each read settles once: with its row's balance, with the error of a row that does not
    // decode, or with `undefined` when there is no row.
    const found = new Map<string, { readonly balance: Balance } | { readonly error: unknown }>();
    for (const row of rows) {
      try {
        found.set(keyOf(row.ledger_id, row.account_id), { balance: balanceOf(accountStateOf(row), this.#currencies) });
      } catch (error) {
        found.set(keyOf(row.ledger_id, row.account_id), { error });
      }
    }
    for (const read of reads) {
      const answer = found.get(keyOf(read.ledgerId, read.accountId));
      if (answer !== undefined && 'error' in answer) read.reject(answer.error);
      else read.resolve(answer?.balance);
    }
  }

  /** One balance, one round trip, one primary-key lookup. */
  async #balanceAlone(tenantId: string, ledgerId: string, accountId: string): Promise<Balance | undefined> {
    // A named statement: each connection parses and plans it once, then only binds and runs it.
    const { rows } = await this.#withClient((client) => client.query<AccountColumns>({ name: READ_BALANCE_STATEMENT, text: READ_BALANCE_SQL, values: [tenantId, ledgerId, accountId] }));
    const row = rows[0];
    return row === undefined ? undefined : balanceOf(accountStateOf(row), this.#currencies);
  }

  /**
   * Runs `fn` on a pooled connection outside any transaction. After an error the connection goes
   * back to the pool only if the server refused a statement on a session it keeps (see
   * {@link isRefusedOnLiveSession}); after anything else it is dropped.
   */
  async #withClient<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const pool = this.#pool;
    return withPooledClient(
      pool,
      async (client) => {
        if (!isRoleChecked(pool)) await checkApplicationRole(pool, client);
        return fn(client);
      },
      { keepAfter: isRefusedOnLiveSession },
    );
  }

  /**
   * An account's balance as of a ledger version, recorded time or effective time: O(log n).
   * `undefined` if not opened by then. A time must lie in years 0001-9999 UTC.
   */
  async balanceAt(tenantId: string, ledgerId: string, accountId: string, asOf: AsOf): Promise<Balance | undefined> {
    checkId(ledgerId, 'ledgerId');
    checkId(accountId, 'accountId');
    const { kind, value } = pointOf(asOf);
    const rows = await this.#read(tenantId, (client) => client.query<AccountColumns>(BALANCE_AT_SQL.get(kind) as string, [tenantId, ledgerId, value, accountId]));
    const row = rows.rows[0];
    return row === undefined ? undefined : balanceOf(accountStateOf(row), this.#currencies);
  }

  /**
   * Every account's net posted balance with per-currency totals, now or as of a point (a time in
   * years 0001-9999 UTC). A ledger with more accounts than `options.linesMax` (default
   * {@link TRIAL_BALANCE_LINES_DEFAULT}) is refused with `ResultTooLargeError` after reading one
   * row more than the limit, never all of them.
   */
  async trialBalance(tenantId: string, ledgerId: string, asOf?: AsOf, options?: TrialBalanceOptions): Promise<TrialBalance> {
    checkId(ledgerId, 'ledgerId');
    const linesMax = linesMaxOf(optionsOf(options));
    const point = asOf === undefined ? undefined : pointOf(asOf);
    const { rows } = await this.#read(tenantId, (client) => {
      if (point === undefined) return client.query<AccountColumns>(`${TRIAL_BALANCE_NOW_SQL} LIMIT $3`, [tenantId, ledgerId, linesMax + 1]);
      return client.query<AccountColumns>(`${TRIAL_BALANCE_AT_SQL.get(point.kind) as string} LIMIT $4`, [tenantId, ledgerId, point.value, linesMax + 1]);
    });
    if (rows.length > linesMax) throw new ResultTooLargeError(`the trial balance of ledger ${ledgerId}`, linesMax);
    return trialBalanceOf(rows.map(accountStateOf), this.#currencies);
  }

  /**
   * Every account's balance as of a point (ledger version, recorded or effective time), in
   * account id order: the accounts opened by then, with all four totals and their status, from
   * the history projection (one index probe per account). More accounts than `options.linesMax`
   * (default {@link TRIAL_BALANCE_LINES_DEFAULT}) is `ResultTooLargeError`, as for a trial balance.
   */
  async balancesAt(tenantId: string, ledgerId: string, asOf: AsOf, options?: TrialBalanceOptions): Promise<Balance[]> {
    checkId(ledgerId, 'ledgerId');
    const linesMax = linesMaxOf(optionsOf(options));
    const point = pointOf(asOf);
    const { rows } = await this.#read(tenantId, (client) =>
      client.query<AccountColumns>(`${TRIAL_BALANCE_AT_SQL.get(point.kind) as string} LIMIT $4`, [tenantId, ledgerId, point.value, linesMax + 1]),
    );
    if (rows.length > linesMax) throw new ResultTooLargeError(`the balances of ledger ${ledgerId}`, linesMax);
    return rows
      .map((row) => balanceOf(accountStateOf(row), this.#currencies))
      .sort((a, b) => (a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : 0));
  }

  /**
   * The last ledger version of the ledger that the history projection has applied (0 before its
   * first event): every as-of answer at or below it is final. One index probe.
   */
  async historyVersion(tenantId: string, ledgerId: string): Promise<number> {
    checkId(ledgerId, 'ledgerId');
    const { rows } = await this.#read(tenantId, (client) => client.query<{ ledger_version: string }>(HISTORY_VERSION_SQL, [tenantId, ledgerId]));
    return Number(rows[0]?.ledger_version ?? 0);
  }

  /**
   * A page of an account's entries with the running posted balance after each, in ledger order:
   * the same page as `Ledger.history` computes by replay, from an index range scan.
   */
  async statement(tenantId: string, ledgerId: string, accountId: string, statementOptions?: StatementOptions): Promise<HistoryPage> {
    const options = optionsOf(statementOptions);
    checkId(ledgerId, 'ledgerId');
    checkId(accountId, 'accountId');
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_PAGE_SIZE_MAX) {
      throw new InvalidInputError([{ path: ['limit'], message: `must be an integer in 1..${HISTORY_PAGE_SIZE_MAX}` }]);
    }
    const afterVersion = options.afterVersion ?? 0;
    if (!Number.isSafeInteger(afterVersion) || afterVersion < 0) throw new InvalidInputError([{ path: ['afterVersion'], message: 'must be a non-negative integer' }]);
    const from = options.from === undefined ? null : isoOfBound(options.from, 'from');
    const to = options.to === undefined ? null : isoOfBound(options.to, 'to');
    const result = await this.#read(tenantId, async (client) => {
      const account = (await client.query<{ currency: string; account_type: AccountType }>(ACCOUNT_SQL, [tenantId, ledgerId, accountId])).rows[0];
      if (account === undefined) return undefined;
      const entries = await client.query<EntryColumns>(STATEMENT_SQL, [tenantId, ledgerId, accountId, afterVersion, from, to, limit + ENTRIES_PER_EVENT_MAX]);
      return { account, rows: entries.rows };
      // The account and its entries from one snapshot: a rebuild committed between the two
      // statements would otherwise show the account with none of its entries.
    }, true);
    if (result === undefined) return { accountId, entries: [], nextAfterVersion: null };
    const scale = this.#currencies.get(result.account.currency).scale;
    const debitNormal = normalSideOf(result.account.account_type) === 'debit';
    const rows = result.rows;
    // A page ends between events: all of the last included entry's event is on it.
    const cut = rows.length > limit ? Number((rows[limit - 1] as EntryColumns).ledger_version) : Infinity;
    const page = rows.filter((row) => Number(row.ledger_version) <= cut);
    const entries = page.map((row): HistoryEntry => {
      const posted = BigInt(row.debits_posted) - BigInt(row.credits_posted);
      return {
        ledgerVersion: Number(row.ledger_version),
        eventType: row.event_type,
        transferId: row.transfer_id,
        side: row.side,
        bucket: row.bucket,
        amount: formatAmount(BigInt(row.amount), scale),
        balanceAfter: formatAmount(debitNormal ? posted : -posted, scale),
        recordedAt: row.recorded_at.toISOString(),
        effectiveAt: row.effective_at.toISOString(),
      };
    });
    return { accountId, entries, nextAfterVersion: rows.length > page.length ? cut : null };
  }

  /** A transfer by id (any kind: transfer, hold, post or void of a hold, reversal). */
  async transfer(tenantId: string, ledgerId: string, transferId: string): Promise<TransferView | undefined> {
    checkId(ledgerId, 'ledgerId');
    checkId(transferId, 'transferId');
    const { rows } = await this.#read(tenantId, (client) =>
      client.query<TransferColumns>(`SELECT ${TRANSFER_COLUMNS} FROM ${SCHEMA}.rm_transfers WHERE tenant_id = $1 AND ledger_id = $2 AND transfer_id = $3`, [
        tenantId,
        ledgerId,
        transferId,
      ]),
    );
    const row = rows[0];
    return row === undefined ? undefined : this.#transferOf(row);
  }

  /**
   * A page of the transfers carrying a reference, in ledger order: at most `limit` (1..1000,
   * default 100), keyset-paginated by `after`, the previous page's `next`, so a reference used by
   * any number of transfers is read in full, each page one range scan of the reference index. A
   * reference longer than ledger-core's `REFERENCE_LENGTH_MAX` or holding a NUL character or an
   * unpaired UTF-16 surrogate (which no stored reference can) is refused with `InvalidInputError` at `reference`, and a cursor of
   * another ledger or reference, or one not made here, at `after`; both before any SQL.
   */
  async transfersByReference(tenantId: string, ledgerId: string, reference: string, pageOptions?: TransfersByReferenceOptions): Promise<TransfersPage> {
    const options = optionsOf(pageOptions);
    checkId(ledgerId, 'ledgerId');
    // Text no stored reference can hold is refused, not looked up: the driver would send an
    // unpaired surrogate as U+FFFD and match references that differ from the one asked for.
    if (typeof reference !== 'string' || reference.length > REFERENCE_LENGTH_MAX || !isStorableText(reference)) {
      throw new InvalidInputError([{ path: ['reference'], message: `must be a string of at most ${REFERENCE_LENGTH_MAX} characters: it ${STORABLE_TEXT_MESSAGE}` }]);
    }
    const limit = pageSize(options.limit);
    const afterVersion = options.after == null ? 0 : referenceCursorOf(options.after, ledgerId, reference);
    // Keyset on the ledger version alone: each transfer is recorded by its own event, so no two
    // transfers of a ledger share one. One row more than the page says whether there is a next.
    const { rows } = await this.#read(tenantId, (client) =>
      client.query<TransferColumns>(
        `SELECT ${TRANSFER_COLUMNS} FROM ${SCHEMA}.rm_transfers WHERE tenant_id = $1 AND ledger_id = $2 AND reference = $3 AND ledger_version > $4
          ORDER BY ledger_version LIMIT $5`,
        [tenantId, ledgerId, reference, afterVersion, limit + 1],
      ),
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const next = rows.length > limit && last !== undefined ? referenceCursor(Number(last.ledger_version), ledgerId, reference) : null;
    return { transfers: page.map((row) => this.#transferOf(row)), next };
  }

  /**
   * Open holds, soonest expiry first (holds without a timeout last); with `expiringBefore`, only
   * those timing out before it (an instant in years 0001-9999 UTC). Keyset-paginated by `after`,
   * the previous page's `next`: anything else is refused with `InvalidInputError`.
   */
  async openHolds(tenantId: string, ledgerId: string, holdsOptions?: OpenHoldsOptions): Promise<HoldsPage> {
    const options = optionsOf(holdsOptions);
    checkId(ledgerId, 'ledgerId');
    const limit = pageSize(options.limit);
    const before = options.expiringBefore === undefined ? null : isoOfBound(options.expiringBefore, 'expiringBefore');
    const after = options.after == null ? null : holdCursorOf(options.after);
    const { rows } = await this.#read(tenantId, (client) =>
      client.query<TransferColumns>(
        `SELECT ${TRANSFER_COLUMNS} FROM ${SCHEMA}.rm_transfers
          WHERE tenant_id = $1 AND ledger_id = $2 AND hold_status = 'pending'
            AND ($3::timestamptz IS NULL OR ${HOLD_ORDER} < $3)
            AND ($4::timestamptz IS NULL OR (${HOLD_ORDER}, transfer_id) > ($4::timestamptz, $5::text))
          ORDER BY ${HOLD_ORDER}, transfer_id LIMIT $6`,
        [tenantId, ledgerId, before, after?.timeoutAt ?? null, after?.transferId ?? null, limit + 1],
      ),
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const next = rows.length > limit && last !== undefined ? `${last.timeout_at === null ? 'infinity' : last.timeout_at.toISOString()} ${last.transfer_id}` : null;
    return { holds: page.map((row) => this.#transferOf(row)), next };
  }

  /**
   * A page of the tenant's accounts with their current balances (from the balances projection),
   * in (ledger, account id) order, optionally of one ledger: keyset-paginated by the opaque
   * `next` cursor, at most 1,000 per page (`ACCOUNT_PAGE_SIZE_MAX`), each page one index range scan.
   * Rejects a bad limit, a malformed ledger id or a cursor it did not make with `InvalidInputError`,
   * before any SQL.
   */
  async accounts(tenantId: string, options?: AccountListOptions): Promise<AccountsPage> {
    const query = accountListQuery(optionsOf(options));
    return this.#read(tenantId, (client) => listAccounts(client, this.#currencies, tenantId, query));
  }

  /** Runs `fn` in a read-only transaction with the tenant set; the pool's first read checks its role and the schema version. */
  /**
   * Runs `fn` in a read-only transaction as the tenant. `snapshot`: every statement of `fn` sees
   * one snapshot (repeatable read), for a read of more than one statement, which could otherwise
   * straddle a rebuild or an append committed between its statements.
   */
  async #read<T>(tenantId: string, fn: (client: PoolClient) => Promise<T>, snapshot = false): Promise<T> {
    checkTenant(tenantId);
    const pool = this.#pool;
    const options = snapshot ? { readOnly: true, repeatableRead: true } : { readOnly: true };
    if (isRoleChecked(pool)) return withTenant(pool, tenantId, fn, options);
    return withTenant(
      pool,
      tenantId,
      async (client) => {
        await checkApplicationRole(pool, client);
        return fn(client);
      },
      options,
    );
  }

  #transferOf(row: TransferColumns): TransferView {
    return {
      ledgerId: row.ledger_id,
      transferId: row.transfer_id,
      kind: row.kind,
      postings: row.postings.map((posting) => ({
        accountId: posting.accountId,
        side: posting.side,
        amount: formatAmount(BigInt(posting.amountMinor), this.#currencies.get(posting.currency).scale),
        currency: posting.currency,
      })),
      reference: row.reference,
      pendingId: row.pending_id,
      reversalOf: row.reversal_of,
      reversedBy: row.reversed_by,
      metadata: row.metadata,
      ledgerVersion: Number(row.ledger_version),
      recordedAt: row.recorded_at.toISOString(),
      effectiveAt: row.effective_at.toISOString(),
      hold:
        row.hold_status === null
          ? null
          : {
              status: row.hold_status,
              timeoutAt: row.timeout_at === null ? null : row.timeout_at.toISOString(),
              resolvedBy: row.resolved_by,
              resolvedVersion: row.resolved_version === null ? null : Number(row.resolved_version),
            },
    };
  }
}

interface EntryColumns {
  readonly ledger_version: string;
  readonly event_type: string;
  readonly transfer_id: string;
  readonly side: Side;
  readonly bucket: 'posted' | 'pending';
  readonly amount: string;
  readonly debits_posted: string;
  readonly credits_posted: string;
  readonly recorded_at: Date;
  readonly effective_at: Date;
}

function accountStateOf(row: AccountColumns): AccountState {
  return {
    id: row.account_id,
    currency: row.currency,
    type: row.account_type,
    normalSide: normalSideOf(row.account_type),
    flags: { debitsMustNotExceedCredits: row.debits_must_not_exceed_credits, creditsMustNotExceedDebits: row.credits_must_not_exceed_debits },
    // Neither read back: no view of a balance shows them (a trial balance of 1,000,000 accounts
    // read up to 4 GB of metadata).
    metadata: {},
    openedAtVersion: Number(row.opened_version),
    openedAtMs: 0,
    status: row.status,
    debitsPosted: BigInt(row.debits_posted ?? 0),
    creditsPosted: BigInt(row.credits_posted ?? 0),
    debitsPending: BigInt(row.debits_pending ?? 0),
    creditsPending: BigInt(row.credits_pending ?? 0),
  };
}

/** Checks an `AsOf` as `replayLedger` does (ledger-core's `parseAsOf`) and returns its kind and SQL parameter. */
function pointOf(asOf: unknown): { kind: AsOfKind; value: number | string } {
  const point = parseAsOf(asOf);
  if (point.kind === 'ledgerVersion') return { kind: 'ledgerVersion', value: point.ledgerVersion };
  // Under the argument's name, as parseAsOf reports the instant's other faults.
  return { kind: point.kind, value: isoOfMs(point.atMs, 'asOf', point.kind) };
}

/**
 * An instant (a `Date`, or an ISO-8601 date-time with an offset: ledger-core's `parseInstantMs`)
 * as the UTC ISO string PostgreSQL parses exactly as JavaScript did: years 0001-9999
 * only, since a later or earlier one has no 4-digit ISO year (`+010000-…`, `-000001-…`), which
 * PostgreSQL refuses or misreads.
 */
function isoOf(value: string | Date, field: string): string {
  return isoOfMs(parseInstantMs(value, field), field);
}

/**
 * {@link isoOf} for a range's bound — `from` (at or after), `to` and `expiringBefore` (before) —
 * which must not be cut to the millisecond as an as-of point is: the ledger records whole
 * milliseconds, so a bound with a fraction below one (`…30.0005Z`) is rounded up to the next
 * millisecond, where it lets in and keeps out the same times. (`Date.parse` drops the digits
 * past the third, which would move `from` before a time it excludes and `to` onto one it includes.)
 *
 * A bound inside the last millisecond of year 9999 (`9999-12-31T23:59:59.9995Z`) is in range but
 * rounds up past the last instant a time can name: it becomes `'infinity'`, which PostgreSQL
 * compares as later than every time, and which lets in and keeps out the same times as the bound
 * does, every recorded time and timeout being at or before 9999-12-31T23:59:59.999Z. So `to` and
 * `expiringBefore` keep nothing out (a hold without timeout stays out: it never expires), and
 * `from` lets nothing in. A bound out of range is refused as before.
 */
function isoOfBound(value: string | Date, field: string): string {
  const ms = parseInstantMs(value, field);
  const fraction = typeof value === 'string' ? /T\d{2}:\d{2}:\d{2}\.(\d+)/.exec(value)?.[1] : undefined;
  if (fraction === undefined || !/[1-9]/.test(fraction.slice(3))) return isoOfMs(ms, field);
  if (ms === INSTANT_MS_MAX) return 'infinity';
  return isoOfMs(ms + 1, field);
}

/** {@link isoOf} of an instant already read as epoch ms; a refusal names `path`. */
function isoOfMs(ms: number, ...path: [string, ...string[]]): string {
  if (ms < INSTANT_MS_MIN || ms > INSTANT_MS_MAX) throw new InvalidInputError([{ path, message: 'must lie in years 0001-9999 (UTC)' }]);
  return new Date(ms).toISOString();
}

/**
 * The two halves of an `openHolds` cursor, `<timeout ISO string or infinity> <transfer id>`, as
 * `openHolds` makes it: the time exactly as `toISOString` writes it, in years 0001-9999, and a
 * well-formed transfer id. Anything else was not made here and is refused.
 */
function holdCursorOf(cursor: string): { timeoutAt: string; transferId: string } {
  const refuse = (): never => {
    throw new InvalidInputError([{ path: ['after'], message: 'not a cursor returned by openHolds' }]);
  };
  if (typeof cursor !== 'string') refuse();
  const cut = cursor.indexOf(' ');
  const timeoutAt = cursor.slice(0, cut);
  const transferId = cursor.slice(cut + 1);
  if (cut < 1 || !ID_PATTERN.test(transferId)) refuse();
  if (timeoutAt !== 'infinity') {
    const ms = Date.parse(timeoutAt);
    if (!Number.isFinite(ms) || ms < INSTANT_MS_MIN || ms > INSTANT_MS_MAX || new Date(ms).toISOString() !== timeoutAt) refuse();
  }
  return { timeoutAt, transferId };
}

/** Longest `transfersByReference` cursor accepted: a 16-digit version, a dot, a 22-character tag. */
const REFERENCE_CURSOR_LENGTH_MAX = 64;
/** `<ledger version>.<tag>`: a version as `String` writes a positive safe integer, the tag in base64url. */
const REFERENCE_CURSOR_PATTERN = /^([1-9][0-9]{0,15})\.([A-Za-z0-9_-]{22})$/;

/**
 * What binds a `transfersByReference` cursor to its ledger and reference: the first 16 bytes of
 * SHA-256 over both (the reference itself would make a cursor as long as it, and put it in URLs
 * and logs). A cursor used with another ledger or reference carries another tag and is refused,
 * rather than silently skipping that reference's transfers below its version.
 */
function referenceTag(ledgerId: string, reference: string): string {
  return createHash('sha256').update(`${ledgerId}\u0000${reference}`, 'utf8').digest().subarray(0, 16).toString('base64url');
}

/** The cursor after the transfer at `ledgerVersion` of a reference's page. */
function referenceCursor(ledgerVersion: number, ledgerId: string, reference: string): string {
  return `${ledgerVersion}.${referenceTag(ledgerId, reference)}`;
}

/**
 * The ledger version a `transfersByReference` cursor names, if {@link referenceCursor} made it for
 * this ledger and reference; anything else is refused with `InvalidInputError` at `after`. The
 * version is only a lower bound of a query that stays filtered by tenant, ledger and reference,
 * so even a forged one reads nothing the caller could not read from the first page on.
 */
function referenceCursorOf(cursor: string, ledgerId: string, reference: string): number {
  const refuse = (): never => {
    throw new InvalidInputError([{ path: ['after'], message: 'not a cursor returned by transfersByReference for this ledger and reference' }]);
  };
  if (typeof cursor !== 'string' || cursor.length > REFERENCE_CURSOR_LENGTH_MAX) refuse();
  const match = REFERENCE_CURSOR_PATTERN.exec(cursor);
  if (match === null) return refuse();
  const ledgerVersion = Number(match[1]);
  if (!Number.isSafeInteger(ledgerVersion) || match[2] !== referenceTag(ledgerId, reference)) refuse();
  return ledgerVersion;
}

/** Refuses an id off ledger-core's id pattern (which no stored id is): before any SQL, so a NUL never reaches PostgreSQL. */
function checkId(value: string, field: string): void {
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw new InvalidInputError([{ path: [field], message: ID_PATTERN_MESSAGE }]);
  }
}

function linesMaxOf(options: TrialBalanceOptions): number {
  const linesMax = options.linesMax ?? TRIAL_BALANCE_LINES_DEFAULT;
  if (!Number.isInteger(linesMax) || linesMax < 1 || linesMax > TRIAL_BALANCE_LINES_MAX) {
    throw new InvalidInputError([{ path: ['linesMax'], message: `must be an integer in 1..${TRIAL_BALANCE_LINES_MAX}` }]);
  }
  return linesMax;
}

function pageSize(limit: number | undefined): number {
  const chosen = limit ?? 100;
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > TRANSFER_PAGE_SIZE_MAX) {
    throw new InvalidInputError([{ path: ['limit'], message: `must be an integer in 1..${TRANSFER_PAGE_SIZE_MAX}` }]);
  }
  return chosen;
}

/** A PostgreSQL data exception (SQLSTATE class 22): the input, not the database, is at fault. */
function isDataException(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('22');
}

function checkTenant(tenantId: string): void {
  if (!isTenantId(tenantId)) throw new InvalidInputError([{ path: ['tenantId'], message: ID_PATTERN_MESSAGE }]);
}
