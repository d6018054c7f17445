import { EventCodec, type AppendRequest, type CurrencyRegistry, type UpcasterRegistry } from '@ledgerkit/ledger-core';
import type { PoolClient } from 'pg';
import type { Projection, ProjectionEvent } from '../projection.js';
import { INLINE_PLAN_CHECK_FUNCTION, INLINE_PLAN_DECLINED_SQLSTATE, SCHEMA } from '../schema.js';
import { checkReadModelSchemaVersion } from '../schema-version.js';
import { currenciesOf, optionsOf } from './options.js';
import { TenantCaches } from './tenant-caches.js';
import { addTo, arrayElement, arrayLiteral, arrayLiteralOf, concurrentUpdate, inconsistent, iso, keyOf, splitKeys, type AccountAttributes, type HeldPosting, type LedgerEventOf, type Totals } from './rows.js';

/** Name of the balances projection (its checkpoint and lock). */
export const BALANCES_PROJECTION = 'balances';

interface BalanceRow extends AccountAttributes, Totals {
  readonly ledgerId: string;
  readonly accountId: string;
  readonly openedVersion: number;
  readonly openedAt: string;
  status: 'open' | 'frozen' | 'closed';
  ledgerVersion: number;
  dirty: boolean;
  /** Whether its row exists in the table (else it is inserted). */
  stored: boolean;
  /** Whether the events changed its status, or its pending totals, since it was last written. */
  statusChanged: boolean;
  pendingChanged: boolean;
  /**
   * Its key and totals as array-literal elements, made when first written and kept while they
   * do not change (ids for good, a total until an event changes it): a row kept between batches
   * is quoted once, and a total the batch left alone (the pending ones, under transfers) is not
   * converted again.
   */
  text: RowText | undefined;
}

/** A {@link BalanceRow}'s key and totals as array-literal elements; a total is `undefined` once changed. */
interface RowText {
  readonly ledger: string;
  readonly account: string;
  debitsPosted: string | undefined;
  creditsPosted: string | undefined;
  debitsPending: string | undefined;
  creditsPending: string | undefined;
}

interface RawBalanceRow {
  readonly ledger_id: string;
  readonly account_id: string;
  readonly currency: string;
  readonly account_type: BalanceRow['accountType'];
  readonly debits_must_not_exceed_credits: boolean;
  readonly credits_must_not_exceed_debits: boolean;
  readonly metadata: Record<string, string>;
  readonly opened_version: string;
  readonly opened_at: Date;
  readonly status: BalanceRow['status'];
  readonly debits_posted: string;
  readonly credits_posted: string;
  readonly debits_pending: string;
  readonly credits_pending: string;
  readonly ledger_version: string;
}

// Every statement that looks rows up by a batch of keys drives the lookup from the keys: each
// key is one probe of the primary key, whatever the planner believes about the table. (A join
// left to the planner, with the statistics of a table analysed while it was still empty, chose a
// nested loop over the tenant's rows with the key list inside it, quadratic in the batch: 290 ms
// for 1,000 accounts.) `OFFSET 0` keeps the lateral subquery from being flattened into a join
// the planner could reorder.
const SELECT_ACCOUNTS_SQL = `SELECT b.* FROM unnest($2::text[], $3::text[]) AS k(ledger_id, account_id)
  CROSS JOIN LATERAL (SELECT * FROM ${SCHEMA}.rm_balances x
    WHERE x.tenant_id = $1 AND x.ledger_id = k.ledger_id AND x.account_id = k.account_id OFFSET 0) b`;

const SELECT_HOLDS_SQL = `SELECT h.ledger_id, h.transfer_id, h.postings FROM unnest($2::text[], $3::text[]) AS k(ledger_id, transfer_id)
  CROSS JOIN LATERAL (SELECT x.ledger_id, x.transfer_id, x.postings FROM ${SCHEMA}.rm_balance_holds x
    WHERE x.tenant_id = $1 AND x.ledger_id = k.ledger_id AND x.transfer_id = k.transfer_id OFFSET 0) h`;

const UPSERT_ACCOUNTS_SQL = `INSERT INTO ${SCHEMA}.rm_balances AS b (tenant_id, ledger_id, account_id, currency, account_type,
    debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, opened_version, opened_at, status,
    debits_posted, credits_posted, debits_pending, credits_pending, ledger_version)
  SELECT $1, r.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[], $8::jsonb[], $9::bigint[],
    $10::timestamptz[], $11::text[], $12::numeric[], $13::numeric[], $14::numeric[], $15::numeric[], $16::bigint[]) AS r
  ON CONFLICT (tenant_id, ledger_id, account_id) DO UPDATE SET status = EXCLUDED.status, debits_posted = EXCLUDED.debits_posted,
    credits_posted = EXCLUDED.credits_posted, debits_pending = EXCLUDED.debits_pending, credits_pending = EXCLUDED.credits_pending,
    ledger_version = EXCLUDED.ledger_version`;

// Rows that exist: only what a batch changes (the account's attributes never do). Written as an
// upsert of the stored row with the new totals, found by one key probe each, so that no join is
// planned; a key with no row yields nothing, and the row count tells.
//
// A column no row of the batch changed is not sent: the stored row's value is kept. Transfers
// change only the posted totals, so most batches send neither the status nor the pending totals
// (two numeric and one text array fewer to build in Node and to parse on the server per row).
// One statement per combination, each named so that a connection prepares it once.
const updateAccountsStatement = (withStatus: boolean, withPending: boolean): { readonly name: string; readonly text: string } => {
  const columns = ['ledger_id', 'account_id', ...(withStatus ? ['status'] : []), 'debits_posted', 'credits_posted', ...(withPending ? ['debits_pending', 'credits_pending'] : []), 'ledger_version'];
  const types: Record<string, string> = { ledger_id: 'text', account_id: 'text', status: 'text', ledger_version: 'bigint' };
  const sent = (column: string, stored = `x.${column}`): string => (columns.includes(column) ? `r.${column}` : stored);
  const set = columns.slice(2).map((column) => `${column} = EXCLUDED.${column}`).join(', ');
  return {
    name: `ledgerkit_balances_update_v2_${withStatus ? 's' : ''}${withPending ? 'p' : ''}`,
    text: `INSERT INTO ${SCHEMA}.rm_balances AS b (tenant_id, ledger_id, account_id, currency, account_type,
    debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, opened_version, opened_at, status,
    debits_posted, credits_posted, debits_pending, credits_pending, ledger_version)
  SELECT x.tenant_id, x.ledger_id, x.account_id, x.currency, x.account_type, x.debits_must_not_exceed_credits,
    x.credits_must_not_exceed_debits, x.metadata, x.opened_version, x.opened_at, ${sent('status')},
    r.debits_posted, r.credits_posted, ${sent('debits_pending')}, ${sent('credits_pending')}, r.ledger_version
  FROM unnest(${columns.map((column, i) => `$${i + 2}::${types[column] ?? 'numeric'}[]`).join(', ')})
    AS r(${columns.join(', ')})
  CROSS JOIN LATERAL (SELECT * FROM ${SCHEMA}.rm_balances y
    WHERE y.tenant_id = $1 AND y.ledger_id = r.ledger_id AND y.account_id = r.account_id OFFSET 0) x
  ON CONFLICT (tenant_id, ledger_id, account_id) DO UPDATE SET ${set}`,
  };
};

/** An update of existing rows, as the runner sends it and as the plan path sends it (guarded). */
interface UpdateStatement {
  readonly name: string;
  readonly text: string;
  /** Its parameters plus one, the number of rows it must find, as the plan path's guard. */
  readonly guardedText: string;
  /** Number of its parameters. */
  readonly parameters: number;
}

// Indexed by (status sent ? 2 : 0) + (pending sent ? 1 : 0).
const UPDATE_ACCOUNTS_STATEMENTS: readonly UpdateStatement[] = [false, true].flatMap((withStatus) =>
  [false, true].map((withPending) => {
    const statement = updateAccountsStatement(withStatus, withPending);
    const parameters = 6 + (withStatus ? 1 : 0) + (withPending ? 2 : 0);
    return {
      ...statement,
      parameters,
      guardedText: `WITH updated AS (${statement.text} RETURNING 1)
  SELECT ${SCHEMA}.${INLINE_PLAN_CHECK_FUNCTION}((SELECT count(*) FROM updated) = $${parameters + 1}, 'balance rows to update are missing')`,
    };
  }),
);

const INSERT_HOLDS_SQL = `INSERT INTO ${SCHEMA}.rm_balance_holds (tenant_id, ledger_id, transfer_id, postings)
  SELECT $1, h.* FROM unnest($2::text[], $3::text[], $4::json[]) AS h`;

// One ledger's holds, by id: the ids are an index condition of the primary key (no join planned).
const DELETE_HOLDS_SQL = `DELETE FROM ${SCHEMA}.rm_balance_holds h WHERE h.tenant_id = $1 AND h.ledger_id = $2 AND h.transfer_id = ANY ($3::text[])`;

const SELECT_LEDGER_VERSIONS_SQL = `SELECT ledger_id, ledger_version FROM ${SCHEMA}.rm_balance_ledgers WHERE tenant_id = $1 AND ledger_id = ANY($2::text[])`;
const INSERT_LEDGER_VERSION_SQL = `INSERT INTO ${SCHEMA}.rm_balance_ledgers (tenant_id, ledger_id, ledger_version) VALUES ($1, $2, $3)
  ON CONFLICT (tenant_id, ledger_id) DO NOTHING`;
const MOVE_LEDGER_VERSION_SQL = `UPDATE ${SCHEMA}.rm_balance_ledgers SET ledger_version = $4 WHERE tenant_id = $1 AND ledger_id = $2 AND ledger_version = $3`;

// The plan path's guarded statements (see inlineBalances): in one batch with the append, so
// nothing can be checked between them; each refuses, failing the batch, when the model is not as
// the plan assumed, and the store appends again through the general path.
const MOVE_LEDGER_VERSION_GUARDED_SQL = `WITH moved AS (${MOVE_LEDGER_VERSION_SQL} RETURNING 1)
  SELECT ${SCHEMA}.${INLINE_PLAN_CHECK_FUNCTION}((SELECT count(*) FROM moved) = 1, 'the balances of this ledger are not at the expected version')`;

/** Whether an error is an inline plan's guard refusing (see {@link INLINE_PLAN_DECLINED_SQLSTATE}). */
function isPlanDeclined(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === INLINE_PLAN_DECLINED_SQLSTATE;
}

/**
 * The statements that look rows up by a batch of keys, for the test that checks their plans are
 * driven from the keys. @internal
 */
export const BALANCES_KEYED_SQL: readonly string[] = [SELECT_ACCOUNTS_SQL, SELECT_HOLDS_SQL, ...UPDATE_ACCOUNTS_STATEMENTS.map((statement) => statement.text)];

/** The hold deletion, for the same test. @internal */
export const BALANCES_DELETE_HOLDS_SQL = DELETE_HOLDS_SQL;

/**
 * The current-balances read model: one row per account in `ledgerkit.rm_balances` with posted and
 * pending debits and credits, so reading a balance is one primary-key lookup.
 *
 * Each ledger's progress is also kept in `rm_balance_ledgers` and moved with a compare-and-set in
 * the same transaction as the rows, so this projection and {@link inlineBalances} may both run: a
 * ledger version is applied by whichever gets there first, and skipped by the other.
 *
 * Memory: between batches the projection keeps the balance rows its batches read or wrote, so
 * that the next batch of the same tenant need not read them again: at most 100,000 rows in all
 * (in the order of 100 MB), over every tenant it serves. When a tenant's rows would go over that,
 * the rows of the tenants least recently projected are dropped first (they are read again when
 * needed); a tenant with more rows than that keeps none. Beyond that bound, only the batches in
 * flight hold rows. Use one projection object per runner: the bound is per object.
 */
export function balancesProjection(): Projection {
  return balancesProjectionWithCache(ROWS_CACHED_MAX);
}

/** {@link balancesProjection} with another bound on the rows it keeps, for tests. @internal */
export function balancesProjectionWithCache(rowsCachedMax: number): Projection {
  // The balance rows as the last batch of each tenant left them, tagged with its last position
  // and, per ledger, the version applied: the next batch trusts a ledger's rows only if it starts
  // from that position (so that batch committed) and the ledger is still at that version (the
  // inline hook has not moved it since). Saves reading the rows back on every batch.
  const cache = new TenantCaches<BalancesCache>(rowsCachedMax);
  return {
    name: BALANCES_PROJECTION,
    async apply({ client, tenantId, after }, events) {
      const cached = cache.take(tenantId);
      const state = cached !== undefined && cached.after === after ? cached : { versions: new Map<string, number>(), rows: new Map<string, BalanceRow>() };
      await applyFromRunner(client, tenantId, events, state);
      const last = events[events.length - 1];
      if (last !== undefined) cache.put(tenantId, { after: last.position, versions: state.versions, rows: state.rows }, state.rows.size);
    },
    // A skipped event leaves the rows as they are but must not stop its ledger: every later event
    // of the ledger would fail the version check above (applied up to v - 1, next is v + 1) and
    // be skipped in turn, and the inline hook would never find the ledger at its append's version.
    // So the ledger's version moves past the event, with the same compare-and-set (a no-op when
    // the inline hook already applied past it).
    async skipped({ client, tenantId }, { ledgerId, ledgerVersion }) {
      cache.take(tenantId);
      if (ledgerVersion === 1) await client.query(INSERT_LEDGER_VERSION_SQL, [tenantId, ledgerId, 1]);
      else await client.query(MOVE_LEDGER_VERSION_SQL, [tenantId, ledgerId, ledgerVersion - 1, ledgerVersion]);
    },
    async reset({ client, tenantId }) {
      cache.take(tenantId);
      // Ledger versions first: the lock order of the inline hook (version, then balances, then holds).
      await client.query(`DELETE FROM ${SCHEMA}.rm_balance_ledgers WHERE tenant_id = $1`, [tenantId]);
      // Then the rows of every ledger that has no version row now. Each statement sees what
      // committed before it began, and a ledger's first inline append inserts its version row
      // (nothing for the delete above to wait on): one that commits after that delete keeps its
      // version row, so it must keep its rows too, or the runner would skip the versions the hook
      // applied and the hook would find the ledger's rows missing at its next append.
      await client.query(
        `DELETE FROM ${SCHEMA}.rm_balances b WHERE b.tenant_id = $1
           AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.rm_balance_ledgers l WHERE l.tenant_id = b.tenant_id AND l.ledger_id = b.ledger_id)`,
        [tenantId],
      );
      await client.query(
        `DELETE FROM ${SCHEMA}.rm_balance_holds h WHERE h.tenant_id = $1
           AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.rm_balance_ledgers l WHERE l.tenant_id = h.tenant_id AND l.ledger_id = h.ledger_id)`,
        [tenantId],
      );
    },
  };
}

/** Options of {@link inlineBalances}. */
export interface InlineBalancesOptions {
  /** Currencies of the ledgers written through the store; default ISO 4217. */
  readonly currencies?: CurrencyRegistry;
  /** Upcasters for older event versions; default the built-in ones. */
  readonly upcasters?: UpcasterRegistry;
}

/** A statement of an {@link InlineBalances} plan (the shape of `@ledgerkit/store-postgres`' `BatchStatement`). */
export interface InlineStatement {
  readonly text: string;
  readonly values: readonly unknown[];
}

/** The statements {@link InlineBalances} asks to run with one append (the shape of `@ledgerkit/store-postgres`' `InlinePlan`). */
export interface InlineBalancesPlan {
  readonly statements: readonly InlineStatement[];
  /** Whether the batch failed because a statement found the model not as planned. */
  readonly declined: (error: unknown) => boolean;
}

/**
 * {@link inlineBalances}' hook, an `InlineProjection` of `@ledgerkit/store-postgres`: called as a
 * function inside the append's transaction (the general path), or asked for a `plan` (the fast
 * path, one round trip with the append).
 */
export interface InlineBalances {
  (client: PoolClient, append: AppendRequest): Promise<void>;
  /**
   * The writes for `append` when the rows it touches are remembered from the ledger's previous
   * append (it continues that chain) and no open hold has to be read: a guarded move of the
   * ledger's version, then the rows. `undefined` otherwise: the general path reads what it needs.
   */
  readonly plan: (append: AppendRequest) => InlineBalancesPlan | undefined;
}

/**
 * The balances read model updated inside each append's transaction: pass it as
 * `PostgresEventStore.open({ pool, inline: inlineBalances() })` and a balance read after an
 * append returns already includes it (read-your-writes). A ledger the model is not current for
 * (during a rebuild, say) is left to the runner's {@link balancesProjection}, which should run
 * too: it applies whatever the hook did not.
 *
 * Most appends take its `plan`: the hook remembers the rows each ledger's last append left, so
 * an append that continues that chain needs nothing read, and its writes go to PostgreSQL with the
 * append in one round trip. The plan's first statement moves the ledger's version from the one
 * the rows were computed at and refuses (SQLSTATE {@link INLINE_PLAN_DECLINED_SQLSTATE}) when the
 * model is elsewhere; the store then appends again through the general path, which skips.
 *
 * The hook checks the read-model schema version at its first append, as the runner's `start()`
 * and `ReadModels` do: on read models at another version than this release's
 * `READ_MODEL_SCHEMA_VERSION` (not migrated far enough, or migrated by a newer release) that
 * append rejects with a non-retriable `AppendRefusedError` whose `cause` is a
 * `ReadModelSchemaVersionError` (`found`, `needed`), and rolls back, events included, before the
 * hook writes anything (a `LedgerWriter` answers its commands with a `WriterFailedError` saying
 * they were not applied). The check (two short catalog reads, in the append's
 * transaction) is made until one passes and then never again, so later appends pay nothing for
 * it; the plan path is taken only after it has passed. Give each store its own hook: the check
 * is made once per hook, not per database.
 *
 * Refuses, when called, `options` that are not an object (`null` from JavaScript, say) with
 * `InvalidInputError` at `options`, and `currencies` or `upcasters` that are not a registry (an
 * object with `get`, with `upcast`; `null` included) at `currencies` or `upcasters`.
 */
export function inlineBalances(options?: InlineBalancesOptions): InlineBalances {
  const { currencies, upcasters } = optionsOf(options);
  const codec = new EventCodec({ currencies: currenciesOf(currencies), ...(upcasters === undefined ? {} : { upcasters }) });
  // The rows each ledger's last append through this hook left, tagged with the version and the
  // hash of its last event. The next append trusts them only if it continues exactly that chain
  // (its expected version and first previous hash): then the rows in the database are these,
  // whichever way the earlier transaction ended. Anything else (another writer, a rolled-back
  // append, a rebuild) starts from the database again. Saves reading the rows on every append.
  // Rows are remembered as soon as they are computed, before the append commits: an append
  // stacked on one still in flight continues from them (and fails with it if it fails).
  const cache = new InlineRowsCache();
  const decode = (append: AppendRequest): LedgerEventOf[] => append.events.map((stored) => ({ ledgerId: stored.ledgerId, ...codec.decode(stored) }));
  // Set once the read models were found at this release's schema version; a refusal leaves it
  // unset, so the next append checks again (the read models may have been migrated since).
  let schemaChecked = false;
  const general = async (client: PoolClient, append: AppendRequest): Promise<void> => {
    if (!schemaChecked) {
      await checkReadModelSchemaVersion(client);
      schemaChecked = true;
    }
    const key = keyOf(append.tenantId, append.ledgerId);
    const cached = cache.take(key);
    const last = append.expectedVersion + append.events.length;
    const moved =
      append.expectedVersion === 0
        ? await client.query(INSERT_LEDGER_VERSION_SQL, [append.tenantId, append.ledgerId, last])
        : await client.query(MOVE_LEDGER_VERSION_SQL, [append.tenantId, append.ledgerId, append.expectedVersion, last]);
    // Not current for this ledger: the runner will apply these events in order.
    if (moved.rowCount !== 1) return;
    const first = append.events[0];
    const lastEvent = append.events[append.events.length - 1];
    if (first === undefined || lastEvent === undefined) return;
    const continues = cached !== undefined && cached.version === append.expectedVersion && cached.hash === first.previousHash;
    const rows = continues ? cached.rows : new Map<string, BalanceRow>();
    const touched = await applyEvents(client, append.tenantId, decode(append), rows);
    for (const [rowKey, row] of touched) rows.set(rowKey, row);
    cache.put(key, { version: last, hash: lastEvent.hash, rows });
  };
  const plan = (append: AppendRequest): InlineBalancesPlan | undefined => {
    // The general path checks the schema version first (a plan cannot read anything).
    if (!schemaChecked) return undefined;
    const key = keyOf(append.tenantId, append.ledgerId);
    const cached = cache.take(key);
    const first = append.events[0];
    const lastEvent = append.events[append.events.length - 1];
    if (cached === undefined) return undefined;
    if (first === undefined || lastEvent === undefined || cached.version !== append.expectedVersion || cached.hash !== first.previousHash) {
      // Not this append's chain (maybe that of an append still in flight ahead of it, whose
      // general path is yet to run): left for whoever continues it.
      cache.put(key, cached);
      return undefined;
    }
    const events = decode(append);
    const accounts = new Map<string, BalanceRow>();
    let complete = holdsWanted(events).size === 0;
    for (const wanted of accountsWanted(events, new Map())) {
      const row = cached.rows.get(wanted);
      if (row === undefined) complete = false;
      else accounts.set(wanted, row);
    }
    if (!complete) {
      // Something to read first: the general path does, continuing from the remembered rows
      // (untouched so far), so that they grow to cover the ledger's busy accounts.
      cache.put(key, cached);
      return undefined;
    }
    let folded: Folded;
    try {
      // The remembered rows are changed in place: the entry is out of the cache, and only goes
      // back (tagged with this append) once the statements are made.
      folded = foldEvents(events, accounts, new Map());
    } catch {
      // An event the rows contradict: the general path reads the rows and reports it.
      return undefined;
    }
    const last = append.expectedVersion + append.events.length;
    const writes = writesOf(append.tenantId, folded);
    if (writes.deleteHolds.length > 0) return undefined;
    const statements: InlineStatement[] = [{ text: MOVE_LEDGER_VERSION_GUARDED_SQL, values: [append.tenantId, append.ledgerId, append.expectedVersion, last] }];
    if (writes.update !== undefined) statements.push({ text: writes.update.statement.guardedText, values: [...writes.update.values, writes.updateCount] });
    if (writes.insert !== undefined) statements.push({ text: UPSERT_ACCOUNTS_SQL, values: writes.insert });
    if (writes.insertHolds !== undefined) statements.push({ text: INSERT_HOLDS_SQL, values: writes.insertHolds });
    const rows = cached.rows;
    for (const [rowKey, row] of folded.accounts) rows.set(rowKey, row);
    cache.put(key, { version: last, hash: lastEvent.hash, rows });
    return { statements, declined: isPlanDeclined };
  };
  return Object.assign(general, { plan });
}

/** A ledger's balance rows as an inline append left them. */
interface InlineRows {
  readonly version: number;
  /** Hash of the ledger's event at `version`. */
  readonly hash: string;
  /** By `keyOf(ledgerId, accountId)`. */
  readonly rows: Map<string, BalanceRow>;
}

/** {@link inlineBalances}' rows per (tenant, ledger), at most {@link ROWS_CACHED_MAX} rows in all; the least recently used ledger goes first. */
class InlineRowsCache {
  readonly #entries = new Map<string, InlineRows>();
  #rows = 0;

  /** Removes and returns the entry: a failed append leaves nothing behind. */
  take(key: string): InlineRows | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    this.#rows -= entry.rows.size;
    return entry;
  }

  put(key: string, entry: InlineRows): void {
    this.take(key);
    if (entry.rows.size > ROWS_CACHED_MAX) return;
    while (this.#rows + entry.rows.size > ROWS_CACHED_MAX) {
      const oldest = this.#entries.keys().next().value as string;
      this.take(oldest);
    }
    this.#entries.set(key, entry);
    this.#rows += entry.rows.size;
  }
}

/** Most balance rows kept in memory between batches, over all tenants: by a runner's projection, and by an inline hook. */
const ROWS_CACHED_MAX = 100_000;

/** A tenant's balance rows as its runner's last batch left them. */
interface BalancesCache {
  readonly after: string;
  /** Per ledger, the version its rows are current at. */
  readonly versions: Map<string, number>;
  /**
   * The rows, by `keyOf(ledgerId, accountId)`: one map for every ledger, so that a batch looks
   * its rows up in it directly rather than in a map rebuilt from per-ledger maps each time.
   */
  readonly rows: Map<string, BalanceRow>;
}

/**
 * Applies a runner's batch: per ledger, the events after the version the model is at (the inline
 * hook may have applied some), moving that version with a compare-and-set. `cache` holds rows
 * known to be current at their ledger's version; it is brought up to date in place.
 */
async function applyFromRunner(client: PoolClient, tenantId: string, events: readonly ProjectionEvent[], cache: Pick<BalancesCache, 'versions' | 'rows'>): Promise<void> {
  const byLedger = new Map<string, LedgerEventOf[]>();
  for (const { stored, event, meta } of events) {
    const list = byLedger.get(stored.ledgerId) ?? [];
    list.push({ ledgerId: stored.ledgerId, event, meta });
    byLedger.set(stored.ledgerId, list);
  }
  const ledgerIds = [...byLedger.keys()].sort();
  const { rows } = await client.query<{ ledger_id: string; ledger_version: string }>(SELECT_LEDGER_VERSIONS_SQL, [tenantId, ledgerIds]);
  const applied = new Map(rows.map((row) => [row.ledger_id, Number(row.ledger_version)]));
  const todo: LedgerEventOf[] = [];
  for (const ledgerId of ledgerIds) {
    const ledgerEvents = byLedger.get(ledgerId) as LedgerEventOf[];
    const done = applied.get(ledgerId);
    const fresh = ledgerEvents.filter((entry) => entry.meta.ledgerVersion > (done ?? 0));
    const first = fresh[0];
    const last = fresh[fresh.length - 1];
    if (first === undefined || last === undefined) continue;
    if (done !== undefined && first.meta.ledgerVersion !== done + 1) {
      inconsistent(`ledger ${ledgerId} is applied up to version ${done}, the next event is version ${first.meta.ledgerVersion}`);
    }
    const moved =
      done === undefined
        ? await client.query(INSERT_LEDGER_VERSION_SQL, [tenantId, ledgerId, last.meta.ledgerVersion])
        : await client.query(MOVE_LEDGER_VERSION_SQL, [tenantId, ledgerId, done, last.meta.ledgerVersion]);
    if (moved.rowCount !== 1) throw concurrentUpdate(`ledger ${ledgerId} of the balances read model moved during the batch`);
    todo.push(...fresh);
  }
  // Rows of a ledger someone else moved (the inline hook) are stale: read them again. (Rare: the
  // pass over every row kept is paid only then.)
  const stale = new Set(ledgerIds.filter((ledgerId) => cache.versions.has(ledgerId) && cache.versions.get(ledgerId) !== (applied.get(ledgerId) ?? 0)));
  if (stale.size > 0) {
    for (const ledgerId of stale) cache.versions.delete(ledgerId);
    for (const [key, row] of cache.rows) if (stale.has(row.ledgerId)) cache.rows.delete(key);
  }
  if (todo.length === 0) return;
  const touched = await applyEvents(client, tenantId, todo, cache.rows);
  for (const [key, row] of touched) cache.rows.set(key, row);
  for (const ledgerId of ledgerIds) {
    const last = byLedger.get(ledgerId)?.at(-1);
    if (last !== undefined) cache.versions.set(ledgerId, Math.max(applied.get(ledgerId) ?? 0, last.meta.ledgerVersion));
  }
}

/** What folding a batch of events changed: the rows (changed ones marked dirty), the holds opened and resolved. */
interface Folded {
  /** Every row the events touch, by `keyOf(ledgerId, accountId)`. */
  readonly accounts: Map<string, BalanceRow>;
  readonly createdHolds: ReadonlyMap<string, HeldPosting[]>;
  /** Holds opened before this batch and resolved in it. */
  readonly resolvedHolds: ReadonlySet<string>;
}

/**
 * Folds events (each ledger's in version order, none applied before) into the balance rows, and
 * returns every row it read or wrote. `known` holds rows known to be current: they are not read.
 */
async function applyEvents(client: PoolClient, tenantId: string, events: readonly LedgerEventOf[], known: ReadonlyMap<string, BalanceRow> = new Map()): Promise<Map<string, BalanceRow>> {
  const holds = await loadHolds(client, tenantId, events);
  const accounts = await loadAccounts(client, tenantId, events, holds, known);
  const writes = writesOf(tenantId, foldEvents(events, accounts, holds));
  if (writes.update !== undefined) {
    const { name, text } = writes.update.statement;
    const { rowCount } = await client.query({ name, text, values: writes.update.values });
    if (rowCount !== writes.updateCount) inconsistent(`${writes.updateCount - (rowCount ?? 0)} balance row(s) to update do not exist`);
  }
  if (writes.insert !== undefined) await client.query(UPSERT_ACCOUNTS_SQL, writes.insert);
  if (writes.insertHolds !== undefined) await client.query(INSERT_HOLDS_SQL, writes.insertHolds);
  for (const values of writes.deleteHolds) await client.query(DELETE_HOLDS_SQL, values);
  return accounts;
}

/**
 * Applies the events to `accounts` (which must hold every row they touch that exists already;
 * an `AccountOpened` adds one) and `holds` (every hold opened before and resolved by them). Pure:
 * it reads nothing, and throws (`inconsistent`) when the events contradict the rows.
 */
function foldEvents(events: readonly LedgerEventOf[], accounts: Map<string, BalanceRow>, holds: ReadonlyMap<string, HeldPosting[]>): Folded {
  const createdHolds = new Map<string, HeldPosting[]>();
  const resolvedHolds = new Set<string>();
  const account = (ledgerId: string, accountId: string): BalanceRow => {
    const row = accounts.get(keyOf(ledgerId, accountId));
    if (row === undefined) inconsistent(`account ${accountId} of ledger ${ledgerId} does not exist`);
    return row;
  };
  const apply = (ledgerId: string, version: number, postings: readonly { accountId: string; side: 'debit' | 'credit'; amount: bigint }[], bucket: 'posted' | 'pending', sign: 1n | -1n): void => {
    for (const posting of postings) {
      const row = account(ledgerId, posting.accountId);
      addTo(row, posting.side, bucket, sign * posting.amount);
      row.ledgerVersion = version;
      row.dirty = true;
      if (bucket === 'pending') row.pendingChanged = true;
      const text = row.text;
      if (text !== undefined) {
        if (bucket === 'posted') {
          if (posting.side === 'debit') text.debitsPosted = undefined;
          else text.creditsPosted = undefined;
        } else if (posting.side === 'debit') text.debitsPending = undefined;
        else text.creditsPending = undefined;
      }
    }
  };
  const release = (ledgerId: string, version: number, pendingId: string): void => {
    const key = keyOf(ledgerId, pendingId);
    const held = createdHolds.get(key) ?? holds.get(key);
    if (held === undefined || resolvedHolds.has(key)) inconsistent(`hold ${pendingId} of ledger ${ledgerId} is not open`);
    apply(ledgerId, version, held.map((posting) => ({ accountId: posting.accountId, side: posting.side, amount: BigInt(posting.amountMinor) })), 'pending', -1n);
    if (createdHolds.delete(key)) return;
    resolvedHolds.add(key);
  };

  for (const { ledgerId, event, meta } of events) {
    const version = meta.ledgerVersion;
    switch (event.type) {
      case 'AccountOpened': {
        const key = keyOf(ledgerId, event.accountId);
        if (accounts.has(key)) inconsistent(`account ${event.accountId} of ledger ${ledgerId} opened twice`);
        accounts.set(key, {
          ledgerId,
          accountId: event.accountId,
          currency: event.currency,
          accountType: event.accountType,
          debitsMustNotExceedCredits: event.flags.debitsMustNotExceedCredits,
          creditsMustNotExceedDebits: event.flags.creditsMustNotExceedDebits,
          metadata: event.metadata,
          openedVersion: version,
          openedAt: iso(meta.recordedAtMs),
          status: 'open',
          debitsPosted: 0n,
          creditsPosted: 0n,
          debitsPending: 0n,
          creditsPending: 0n,
          ledgerVersion: version,
          dirty: true,
          stored: false,
          statusChanged: false,
          pendingChanged: false,
          text: undefined,
        });
        break;
      }
      case 'AccountFrozen':
      case 'AccountUnfrozen':
      case 'AccountClosed': {
        const row = account(ledgerId, event.accountId);
        row.status = event.type === 'AccountFrozen' ? 'frozen' : event.type === 'AccountUnfrozen' ? 'open' : 'closed';
        row.ledgerVersion = version;
        row.dirty = true;
        row.statusChanged = true;
        break;
      }
      case 'TransferPosted':
        apply(ledgerId, version, event.postings, 'posted', 1n);
        break;
      case 'TransferPending':
        apply(ledgerId, version, event.postings, 'pending', 1n);
        createdHolds.set(
          keyOf(ledgerId, event.transferId),
          event.postings.map((posting) => ({ accountId: posting.accountId, side: posting.side, amountMinor: posting.amount.toString(), currency: posting.currency })),
        );
        break;
      case 'PendingPosted':
        release(ledgerId, version, event.pendingId);
        apply(ledgerId, version, event.postings, 'posted', 1n);
        break;
      case 'PendingVoided':
      case 'PendingExpired':
        release(ledgerId, version, event.pendingId);
        break;
    }
  }
  return { accounts, createdHolds, resolvedHolds };
}

/** Statement values of a fold's writes (see {@link writesOf}). */
interface Writes {
  /** The update of changed rows that exist, and its values. */
  readonly update: { readonly statement: UpdateStatement; readonly values: unknown[] } | undefined;
  readonly updateCount: number;
  /** `UPSERT_ACCOUNTS_SQL`'s values: rows opened by the events. */
  readonly insert: unknown[] | undefined;
  /** `INSERT_HOLDS_SQL`'s values. */
  readonly insertHolds: unknown[] | undefined;
  /** `DELETE_HOLDS_SQL`'s values, one statement per ledger. */
  readonly deleteHolds: unknown[][];
}

/** Orders rows by key: the table's order for ASCII ids (it compares bytes), so the server updates a page's rows one after the other. */
function byKey(a: BalanceRow, b: BalanceRow): number {
  if (a.ledgerId !== b.ledgerId) return a.ledgerId < b.ledgerId ? -1 : 1;
  return a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : 0;
}

/** A row's {@link RowText}, made on its first write and completed for the totals changed since the last. */
function textOf(row: BalanceRow): RowText {
  let text = row.text;
  if (text === undefined) {
    text = { ledger: arrayElement(row.ledgerId), account: arrayElement(row.accountId), debitsPosted: undefined, creditsPosted: undefined, debitsPending: undefined, creditsPending: undefined };
    row.text = text;
  }
  text.debitsPosted ??= row.debitsPosted.toString();
  text.creditsPosted ??= row.creditsPosted.toString();
  text.debitsPending ??= row.debitsPending.toString();
  text.creditsPending ??= row.creditsPending.toString();
  return text;
}

/**
 * The writes a fold needs: a narrow update of the changed rows that exist, an insert of the new
 * ones, the holds opened and closed. Marks the changed rows as written.
 *
 * Each array parameter is a PostgreSQL array literal built in one pass from the rows' kept text
 * ({@link RowText}) rather than one JavaScript array per column that node-postgres escapes
 * element by element; the rows go in key order.
 */
function writesOf(tenantId: string, folded: Folded): Writes {
  const existing: BalanceRow[] = [];
  const opened: BalanceRow[] = [];
  let withStatus = false;
  let withPending = false;
  for (const row of folded.accounts.values()) {
    if (!row.dirty) continue;
    if (row.stored) {
      existing.push(row);
      withStatus ||= row.statusChanged;
      withPending ||= row.pendingChanged;
    } else opened.push(row);
    row.dirty = false;
    row.stored = true;
    row.statusChanged = false;
    row.pendingChanged = false;
  }
  let update: Writes['update'];
  if (existing.length > 0) {
    existing.sort(byKey);
    const count = existing.length;
    const ledgers = new Array<string>(count);
    const accounts = new Array<string>(count);
    const statuses = withStatus ? new Array<string>(count) : undefined;
    const debitsPosted = new Array<string>(count);
    const creditsPosted = new Array<string>(count);
    const debitsPending = withPending ? new Array<string>(count) : undefined;
    const creditsPending = withPending ? new Array<string>(count) : undefined;
    const versions = new Array<number>(count);
    for (let i = 0; i < count; i += 1) {
      const row = existing[i] as BalanceRow;
      const text = textOf(row);
      ledgers[i] = text.ledger;
      accounts[i] = text.account;
      // Statuses and totals are valid elements as they are (a word, an optionally signed integer).
      if (statuses !== undefined) statuses[i] = row.status;
      debitsPosted[i] = text.debitsPosted as string;
      creditsPosted[i] = text.creditsPosted as string;
      if (debitsPending !== undefined && creditsPending !== undefined) {
        debitsPending[i] = text.debitsPending as string;
        creditsPending[i] = text.creditsPending as string;
      }
      versions[i] = row.ledgerVersion;
    }
    const values: unknown[] = [tenantId, arrayLiteralOf(ledgers), arrayLiteralOf(accounts)];
    if (statuses !== undefined) values.push(arrayLiteralOf(statuses));
    values.push(arrayLiteralOf(debitsPosted), arrayLiteralOf(creditsPosted));
    if (debitsPending !== undefined && creditsPending !== undefined) values.push(arrayLiteralOf(debitsPending), arrayLiteralOf(creditsPending));
    values.push(`{${versions.join(',')}}`);
    update = { statement: UPDATE_ACCOUNTS_STATEMENTS[(withStatus ? 2 : 0) + (withPending ? 1 : 0)] as UpdateStatement, values };
  }
  // Opened rows: once per account, so plain per-column literals.
  const insert =
    opened.length === 0
      ? undefined
      : [
          tenantId,
          arrayLiteral(opened.map((row) => row.ledgerId)),
          arrayLiteral(opened.map((row) => row.accountId)),
          arrayLiteral(opened.map((row) => row.currency)),
          arrayLiteral(opened.map((row) => row.accountType)),
          arrayLiteralOf(opened.map((row) => (row.debitsMustNotExceedCredits ? 't' : 'f'))),
          arrayLiteralOf(opened.map((row) => (row.creditsMustNotExceedDebits ? 't' : 'f'))),
          arrayLiteral(opened.map((row) => JSON.stringify(row.metadata))),
          arrayLiteral(opened.map((row) => row.openedVersion)),
          arrayLiteral(opened.map((row) => row.openedAt)),
          arrayLiteral(opened.map((row) => row.status)),
          arrayLiteral(opened.map((row) => row.debitsPosted)),
          arrayLiteral(opened.map((row) => row.creditsPosted)),
          arrayLiteral(opened.map((row) => row.debitsPending)),
          arrayLiteral(opened.map((row) => row.creditsPending)),
          arrayLiteral(opened.map((row) => row.ledgerVersion)),
        ];
  let insertHolds: unknown[] | undefined;
  if (folded.createdHolds.size > 0) {
    const [ledgers, ids] = splitKeys(folded.createdHolds.keys());
    insertHolds = [tenantId, ledgers, ids, [...folded.createdHolds.values()].map((postings) => JSON.stringify(postings))];
  }
  const deleteHolds: unknown[][] = [];
  if (folded.resolvedHolds.size > 0) {
    const [ledgers, ids] = splitKeys(folded.resolvedHolds);
    const byLedger = new Map<string, string[]>();
    ledgers.forEach((ledgerId, i) => {
      const list = byLedger.get(ledgerId);
      if (list === undefined) byLedger.set(ledgerId, [ids[i] as string]);
      else list.push(ids[i] as string);
    });
    for (const [ledgerId, holdIds] of byLedger) deleteHolds.push([tenantId, ledgerId, holdIds]);
  }
  return { update, updateCount: existing.length, insert, insertHolds, deleteHolds };
}

/** Holds opened before these events and resolved by them (keys), which must be read. */
function holdsWanted(events: readonly LedgerEventOf[]): Set<string> {
  const created = new Set<string>();
  const wanted = new Set<string>();
  for (const { ledgerId, event } of events) {
    if (event.type === 'TransferPending') created.add(keyOf(ledgerId, event.transferId));
    else if ((event.type === 'PendingPosted' || event.type === 'PendingVoided' || event.type === 'PendingExpired') && !created.has(keyOf(ledgerId, event.pendingId))) {
      wanted.add(keyOf(ledgerId, event.pendingId));
    }
  }
  return wanted;
}

/** The open holds the events resolve, other than those they create themselves. */
async function loadHolds(client: PoolClient, tenantId: string, events: readonly LedgerEventOf[]): Promise<Map<string, HeldPosting[]>> {
  const wanted = holdsWanted(events);
  const holds = new Map<string, HeldPosting[]>();
  if (wanted.size === 0) return holds;
  const { rows } = await client.query<{ ledger_id: string; transfer_id: string; postings: HeldPosting[] }>(SELECT_HOLDS_SQL, [tenantId, ...splitKeys(wanted)]);
  for (const row of rows) holds.set(keyOf(row.ledger_id, row.transfer_id), row.postings);
  return holds;
}

/** Keys of every account the events touch (postings, released holds, status changes) but do not open. */
function accountsWanted(events: readonly LedgerEventOf[], holds: ReadonlyMap<string, HeldPosting[]>): Set<string> {
  const wanted = new Set<string>();
  for (const { ledgerId, event } of events) {
    switch (event.type) {
      case 'AccountOpened':
        break;
      case 'AccountFrozen':
      case 'AccountUnfrozen':
      case 'AccountClosed':
        wanted.add(keyOf(ledgerId, event.accountId));
        break;
      case 'TransferPosted':
      case 'TransferPending':
        for (const posting of event.postings) wanted.add(keyOf(ledgerId, posting.accountId));
        break;
      case 'PendingPosted':
        for (const posting of event.postings) wanted.add(keyOf(ledgerId, posting.accountId));
        for (const posting of holds.get(keyOf(ledgerId, event.pendingId)) ?? []) wanted.add(keyOf(ledgerId, posting.accountId));
        break;
      case 'PendingVoided':
      case 'PendingExpired':
        for (const posting of holds.get(keyOf(ledgerId, event.pendingId)) ?? []) wanted.add(keyOf(ledgerId, posting.accountId));
        break;
    }
  }
  return wanted;
}

/** Every account the events touch (see {@link accountsWanted}) that already has a row: from `known`, else read. */
async function loadAccounts(
  client: PoolClient,
  tenantId: string,
  events: readonly LedgerEventOf[],
  holds: ReadonlyMap<string, HeldPosting[]>,
  known: ReadonlyMap<string, BalanceRow>,
): Promise<Map<string, BalanceRow>> {
  const wanted = accountsWanted(events, holds);
  const accounts = new Map<string, BalanceRow>();
  for (const key of wanted) {
    const row = known.get(key);
    if (row === undefined) continue;
    accounts.set(key, row);
    wanted.delete(key);
  }
  if (wanted.size === 0) return accounts;
  const { rows } = await client.query<RawBalanceRow>(SELECT_ACCOUNTS_SQL, [tenantId, ...splitKeys(wanted)]);
  for (const row of rows) {
    accounts.set(keyOf(row.ledger_id, row.account_id), {
      ledgerId: row.ledger_id,
      accountId: row.account_id,
      currency: row.currency,
      accountType: row.account_type,
      debitsMustNotExceedCredits: row.debits_must_not_exceed_credits,
      creditsMustNotExceedDebits: row.credits_must_not_exceed_debits,
      metadata: row.metadata,
      openedVersion: Number(row.opened_version),
      openedAt: row.opened_at.toISOString(),
      status: row.status,
      debitsPosted: BigInt(row.debits_posted),
      creditsPosted: BigInt(row.credits_posted),
      debitsPending: BigInt(row.debits_pending),
      creditsPending: BigInt(row.credits_pending),
      ledgerVersion: Number(row.ledger_version),
      dirty: false,
      stored: true,
      statusChanged: false,
      pendingChanged: false,
      text: undefined,
    });
  }
  return accounts;
}
