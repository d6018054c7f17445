import type { EventMeta, Posting, Side, TransferKind } from '@ledgerkit/ledger-core';
import type { PoolClient } from 'pg';
import type { Projection, ProjectionEvent } from '../projection.js';
import { SCHEMA } from '../schema.js';
import { TenantCaches } from './tenant-caches.js';
import { addTo, arrayElement, arrayLiteral, arrayLiteralOf, inconsistent, iso, keyOf, splitKeys, type AccountAttributes, type HeldPosting, type Totals } from './rows.js';

/** Name of the history projection (its checkpoint and lock). */
export const HISTORY_PROJECTION = 'history';

type AccountStatus = 'open' | 'frozen' | 'closed';

/** An account's head: attributes, status and running totals after its last entry. */
interface AccountHead extends AccountAttributes, Totals {
  readonly ledgerId: string;
  readonly accountId: string;
  readonly openedVersion: number;
  readonly openedRecordedAt: string;
  readonly openedEffectiveAt: string;
  status: AccountStatus;
  /**
   * Latest effective time of the account's entries, epoch ms; `null` before the first entry;
   * `undefined` while not loaded (only a back-dated event needs it).
   */
  maxEffectiveMs: number | null | undefined;
  /** Entries so far in the current event, for their `seq`. */
  seqVersion: number;
  seq: number;
  /** Its row must be written: it is new, or its status changed. */
  dirty: boolean;
  /** The account id as an array-literal element, quoted once per head rather than once per entry. */
  readonly accountElement: string;
  /** The running totals as decimal text: each converted when it changes, not four times per entry. */
  debitsPostedText: string;
  creditsPostedText: string;
  debitsPendingText: string;
  creditsPendingText: string;
}

/**
 * An event's columns as the insert sends them (array-literal elements, ISO times), made once for
 * all its entries and its transfer row.
 */
interface EventText {
  readonly meta: EventMeta;
  readonly transferId: string;
  readonly ledgerElement: string;
  readonly version: string;
  readonly eventTypeElement: string;
  readonly transferElement: string;
  /** ISO-8601 times (valid array-literal elements as they are: no quote, comma, brace or space). */
  readonly recordedAt: string;
  readonly effectiveAt: string;
  /** Positions (from 1, as text) of the times in the batch's list of times it sends once. */
  readonly recordedSlot: string;
  readonly effectiveSlot: string;
}

/** One entry: its running totals in ledger order are its own {@link Totals} fields. */
interface EntryRow extends Totals {
  readonly account: AccountHead;
  readonly event: EventText;
  readonly seq: number;
  readonly side: Side;
  readonly bucket: 'posted' | 'pending';
  readonly amount: bigint;
  readonly effectiveAtMs: number;
  /** The ledger-order totals as decimal text (the head's, shared while they do not change). */
  readonly debitsPostedText: string;
  readonly creditsPostedText: string;
  readonly debitsPendingText: string;
  readonly creditsPendingText: string;
  /** Running totals in effective-time order, when they differ from `totals`; set once the batch is complete. */
  effectiveTotals: Totals | null;
}

/** What a batch does to one account's entries, for the effective-time order. */
interface AccountEntries {
  readonly account: AccountHead;
  /** Its totals before the batch. */
  readonly before: Totals;
  /** Its latest effective time before the batch, as the head knew it then. */
  readonly maxEffectiveMsBefore: number | null | undefined;
  /** Whether an entry is effective before it was recorded (only then can it be back-dated). */
  backdatedByTime: boolean;
  /** The batch's entries of the account, in ledger order. */
  readonly entries: EntryRow[];
}

interface StateRow {
  readonly ledgerId: string;
  readonly accountId: string;
  readonly ledgerVersion: number;
  readonly recordedAt: string;
  readonly effectiveAt: string;
  readonly status: AccountStatus;
}

interface TransferRow {
  readonly event: EventText;
  readonly kind: TransferKind;
  /** The postings' JSON as an array-literal element. */
  readonly postingsElement: string;
  readonly reference: string | null;
  readonly pendingId: string | null;
  readonly reversalOf: string | null;
  reversedBy: string | null;
  /** The metadata's JSON as an array-literal element. */
  readonly metadataElement: string;
  holdStatus: 'pending' | 'posted' | 'voided' | 'expired' | null;
  readonly timeoutAt: string | null;
  resolvedBy: string | null;
  resolvedVersion: number | null;
}

/** A change to a transfer row written before this batch. */
interface TransferUpdate {
  reversedBy: string | null;
  holdStatus: TransferRow['holdStatus'];
  resolvedBy: string | null;
  resolvedVersion: number | null;
}

const TOTAL_COLUMNS = ['debits_posted', 'credits_posted', 'debits_pending', 'credits_pending'] as const;

// Statements that look rows up by a batch of keys drive the lookup from the keys, one index probe
// per key, whatever the planner believes about the tables (see the balances projection): the
// lateral subqueries are fenced with OFFSET 0 or LIMIT so that they are not flattened into joins.

// An account's head: its row, and the totals of its last entry (one backward probe of the key).
const SELECT_ACCOUNTS_SQL = `SELECT a.ledger_id, a.account_id, a.currency, a.account_type, a.debits_must_not_exceed_credits,
    a.credits_must_not_exceed_debits, a.metadata, a.opened_version, a.opened_recorded_at, a.opened_effective_at, a.status,
    e.debits_posted, e.credits_posted, e.debits_pending, e.credits_pending
  FROM unnest($2::text[], $3::text[]) AS k(ledger_id, account_id)
  CROSS JOIN LATERAL (SELECT * FROM ${SCHEMA}.rm_accounts x
    WHERE x.tenant_id = $1 AND x.ledger_id = k.ledger_id AND x.account_id = k.account_id OFFSET 0) a
  LEFT JOIN LATERAL (SELECT en.debits_posted, en.credits_posted, en.debits_pending, en.credits_pending FROM ${SCHEMA}.rm_account_entries en
    WHERE en.tenant_id = $1 AND en.ledger_id = a.ledger_id AND en.account_id = a.account_id
    ORDER BY en.ledger_version DESC, en.seq DESC LIMIT 1) e ON true`;

// The latest effective time of each account's entries (one backward probe of the effective-time index each).
const MAX_EFFECTIVE_SQL = `SELECT k.ledger_id, k.account_id, m.effective_at
  FROM unnest($2::text[], $3::text[]) AS k(ledger_id, account_id)
  CROSS JOIN LATERAL (SELECT en.effective_at FROM ${SCHEMA}.rm_account_entries en
    WHERE en.tenant_id = $1 AND en.ledger_id = k.ledger_id AND en.account_id = k.account_id
    ORDER BY en.effective_at DESC, en.ledger_version DESC, en.seq DESC LIMIT 1) m`;

const SELECT_HOLDS_SQL = `SELECT t.ledger_id, t.transfer_id, t.postings, t.hold_status FROM unnest($2::text[], $3::text[]) AS k(ledger_id, transfer_id)
  CROSS JOIN LATERAL (SELECT x.ledger_id, x.transfer_id, x.postings, x.hold_status FROM ${SCHEMA}.rm_transfers x
    WHERE x.tenant_id = $1 AND x.ledger_id = k.ledger_id AND x.transfer_id = k.transfer_id AND x.kind = 'hold' OFFSET 0) t`;

const UPSERT_ACCOUNTS_SQL = `INSERT INTO ${SCHEMA}.rm_accounts AS a (tenant_id, ledger_id, account_id, currency, account_type,
    debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, opened_version, opened_recorded_at, opened_effective_at, status)
  SELECT $1, r.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[], $8::jsonb[], $9::bigint[],
    $10::timestamptz[], $11::timestamptz[], $12::text[]) AS r
  ON CONFLICT (tenant_id, ledger_id, account_id) DO UPDATE SET status = EXCLUDED.status`;

// Every batch runs the next ones: named, so each connection prepares them once.
// A ledger's recorded times never decrease along its stream, so only a batch's times at or before
// the ledger's latest stored one can be there already: those are upserted, the later ones (all
// of them, mostly) inserted, at about half the server's work per row of an upsert. Each ledger
// of the batch is one backward probe of the primary key for its latest time.
const UPSERT_LEDGER_TIMES_SQL = {
  name: 'ledgerkit_history_ledger_times_v2',
  text: `WITH r AS MATERIALIZED (SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::bigint[]) AS r(ledger_id, recorded_at, ledger_version)),
  latest AS MATERIALIZED (SELECT k.ledger_id, l.recorded_at FROM (SELECT DISTINCT r.ledger_id FROM r) k
    CROSS JOIN LATERAL (SELECT x.recorded_at FROM ${SCHEMA}.rm_ledger_times x WHERE x.tenant_id = $1 AND x.ledger_id = k.ledger_id
      ORDER BY x.recorded_at DESC LIMIT 1) l),
  later AS (INSERT INTO ${SCHEMA}.rm_ledger_times (tenant_id, ledger_id, recorded_at, ledger_version)
    SELECT $1, r.ledger_id, r.recorded_at, r.ledger_version FROM r
    WHERE NOT EXISTS (SELECT FROM latest l WHERE l.ledger_id = r.ledger_id AND l.recorded_at >= r.recorded_at))
  INSERT INTO ${SCHEMA}.rm_ledger_times AS t (tenant_id, ledger_id, recorded_at, ledger_version)
  SELECT $1, r.ledger_id, r.recorded_at, r.ledger_version FROM r JOIN latest l ON l.ledger_id = r.ledger_id AND l.recorded_at >= r.recorded_at
  ON CONFLICT (tenant_id, ledger_id, recorded_at) DO UPDATE SET ledger_version = greatest(t.ledger_version, EXCLUDED.ledger_version)`,
};

// The entries and transfers of a batch share few distinct times (a writer's batch is recorded at
// one): the batch sends each time once, in $2, and every row the position of its times there.
// A batch with no back-dated entry (the common case) leaves the eff_* columns NULL: it sends
// them not at all rather than as four arrays of NULLs.
const ENTRY_TOTALS = 'debits_posted, credits_posted, debits_pending, credits_pending';
const ENTRY_EFFECTIVE_TOTALS = 'eff_debits_posted, eff_credits_posted, eff_debits_pending, eff_credits_pending';
const insertEntriesSql = (withEffective: boolean): string => `INSERT INTO ${SCHEMA}.rm_account_entries (tenant_id, ledger_id, account_id, ledger_version,
    seq, event_type, transfer_id, side, bucket, amount, recorded_at, effective_at, ${ENTRY_TOTALS}${withEffective ? `, ${ENTRY_EFFECTIVE_TOTALS}` : ''})
  SELECT $1, e.ledger_id, e.account_id, e.ledger_version, e.seq, e.event_type, e.transfer_id, e.side, e.bucket, e.amount,
    ($2::timestamptz[])[e.recorded], ($2::timestamptz[])[e.effective], ${ENTRY_TOTALS}${withEffective ? `, ${ENTRY_EFFECTIVE_TOTALS}` : ''}
  FROM unnest($3::text[], $4::text[], $5::bigint[], $6::smallint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::numeric[], $12::int[], $13::int[],
    $14::numeric[], $15::numeric[], $16::numeric[], $17::numeric[]${withEffective ? ', $18::numeric[], $19::numeric[], $20::numeric[], $21::numeric[]' : ''})
    AS e(ledger_id, account_id, ledger_version, seq, event_type, transfer_id, side, bucket, amount, recorded, effective, ${ENTRY_TOTALS}${withEffective ? `, ${ENTRY_EFFECTIVE_TOTALS}` : ''})`;

// Every batch runs the next one: named, so each connection prepares it once.
const INSERT_ENTRIES_SQL = { name: 'ledgerkit_history_entries_v2', text: insertEntriesSql(false) };
const INSERT_ENTRIES_EFFECTIVE_SQL = { name: 'ledgerkit_history_entries_effective_v2', text: insertEntriesSql(true) };

const INSERT_STATES_SQL = `INSERT INTO ${SCHEMA}.rm_account_states (tenant_id, ledger_id, account_id, ledger_version, recorded_at, effective_at, status)
  SELECT $1, s.* FROM unnest($2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[]) AS s`;

const INSERT_TRANSFERS_SQL = {
  name: 'ledgerkit_history_transfers_v2',
  text: `INSERT INTO ${SCHEMA}.rm_transfers (tenant_id, ledger_id, transfer_id, kind, postings, reference, pending_id,
    reversal_of, reversed_by, metadata, ledger_version, recorded_at, effective_at, hold_status, timeout_at, resolved_by, resolved_version)
  SELECT $1, t.ledger_id, t.transfer_id, t.kind, t.postings, t.reference, t.pending_id, t.reversal_of, t.reversed_by, t.metadata, t.ledger_version,
    ($2::timestamptz[])[t.recorded], ($2::timestamptz[])[t.effective], t.hold_status, t.timeout_at, t.resolved_by, t.resolved_version
  FROM unnest($3::text[], $4::text[], $5::text[], $6::json[], $7::text[], $8::text[], $9::text[], $10::text[], $11::json[],
    $12::bigint[], $13::int[], $14::int[], $15::text[], $16::timestamptz[], $17::text[], $18::bigint[])
    AS t(ledger_id, transfer_id, kind, postings, reference, pending_id, reversal_of, reversed_by, metadata, ledger_version, recorded, effective,
      hold_status, timeout_at, resolved_by, resolved_version)`,
};

// Changes to stored transfers: an upsert of each stored row (one key probe) with the changed
// columns, so that no join is planned; a key with no row yields nothing, and the row count tells.
const UPDATE_TRANSFERS_SQL = `INSERT INTO ${SCHEMA}.rm_transfers AS t (tenant_id, ledger_id, transfer_id, kind, postings, reference, pending_id,
    reversal_of, reversed_by, metadata, ledger_version, recorded_at, effective_at, hold_status, timeout_at, resolved_by, resolved_version)
  SELECT x.tenant_id, x.ledger_id, x.transfer_id, x.kind, x.postings, x.reference, x.pending_id, x.reversal_of,
    coalesce(u.reversed_by, x.reversed_by), x.metadata, x.ledger_version, x.recorded_at, x.effective_at,
    coalesce(u.hold_status, x.hold_status), x.timeout_at, coalesce(u.resolved_by, x.resolved_by), coalesce(u.resolved_version, x.resolved_version)
  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
    AS u(ledger_id, transfer_id, reversed_by, hold_status, resolved_by, resolved_version)
  CROSS JOIN LATERAL (SELECT * FROM ${SCHEMA}.rm_transfers y
    WHERE y.tenant_id = $1 AND y.ledger_id = u.ledger_id AND y.transfer_id = u.transfer_id OFFSET 0) x
  ON CONFLICT (tenant_id, ledger_id, transfer_id) DO UPDATE SET reversed_by = EXCLUDED.reversed_by, hold_status = EXCLUDED.hold_status,
    resolved_by = EXCLUDED.resolved_by, resolved_version = EXCLUDED.resolved_version`;

// For each back-dated entry (by its index in the batch), the effective-order totals of the
// account's last stored entry at or before its effective time: everything already stored sorts
// before a new entry at equal effective time (the new one has the higher version).
const PREDECESSORS_SQL = `SELECT k.i, coalesce(p.debits_posted, 0) AS debits_posted, coalesce(p.credits_posted, 0) AS credits_posted,
    coalesce(p.debits_pending, 0) AS debits_pending, coalesce(p.credits_pending, 0) AS credits_pending
  FROM unnest($2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY AS k(ledger_id, account_id, effective_at, i)
  LEFT JOIN LATERAL (SELECT coalesce(en.eff_debits_posted, en.debits_posted) AS debits_posted, coalesce(en.eff_credits_posted, en.credits_posted) AS credits_posted,
      coalesce(en.eff_debits_pending, en.debits_pending) AS debits_pending, coalesce(en.eff_credits_pending, en.credits_pending) AS credits_pending
    FROM ${SCHEMA}.rm_account_entries en
    WHERE en.tenant_id = $1 AND en.ledger_id = k.ledger_id AND en.account_id = k.account_id AND en.effective_at <= k.effective_at
    ORDER BY en.effective_at DESC, en.ledger_version DESC, en.seq DESC LIMIT 1) p ON true`;

// Back-dated entries move the effective-order totals of every stored entry of their account that
// is effective after them, by the sum of their amounts: the entries within the back-dating
// window, at most, in one statement for the whole batch. Each back-dated entry is one range probe
// of the effective-time index; each entry moved is an upsert of its stored row (one key probe).
const SHIFT_SUCCESSORS_SQL = `INSERT INTO ${SCHEMA}.rm_account_entries AS en (tenant_id, ledger_id, account_id, ledger_version, seq, event_type,
    transfer_id, side, bucket, amount, recorded_at, effective_at, debits_posted, credits_posted, debits_pending, credits_pending,
    eff_debits_posted, eff_credits_posted, eff_debits_pending, eff_credits_pending)
  SELECT s.tenant_id, s.ledger_id, s.account_id, s.ledger_version, s.seq, s.event_type, s.transfer_id, s.side, s.bucket, s.amount,
    s.recorded_at, s.effective_at, s.debits_posted, s.credits_posted, s.debits_pending, s.credits_pending,
    coalesce(s.eff_debits_posted, s.debits_posted) + d.debits_posted, coalesce(s.eff_credits_posted, s.credits_posted) + d.credits_posted,
    coalesce(s.eff_debits_pending, s.debits_pending) + d.debits_pending, coalesce(s.eff_credits_pending, s.credits_pending) + d.credits_pending
  FROM (SELECT m.ledger_id, m.account_id, m.ledger_version, m.seq, sum(b.debits_posted) AS debits_posted, sum(b.credits_posted) AS credits_posted,
          sum(b.debits_pending) AS debits_pending, sum(b.credits_pending) AS credits_pending
        FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[])
          AS b(ledger_id, account_id, effective_at, debits_posted, credits_posted, debits_pending, credits_pending)
        CROSS JOIN LATERAL (SELECT y.ledger_id, y.account_id, y.ledger_version, y.seq FROM ${SCHEMA}.rm_account_entries y
          WHERE y.tenant_id = $1 AND y.ledger_id = b.ledger_id AND y.account_id = b.account_id AND y.effective_at > b.effective_at OFFSET 0) m
        GROUP BY m.ledger_id, m.account_id, m.ledger_version, m.seq) d
  CROSS JOIN LATERAL (SELECT * FROM ${SCHEMA}.rm_account_entries z WHERE z.tenant_id = $1 AND z.ledger_id = d.ledger_id
    AND z.account_id = d.account_id AND z.ledger_version = d.ledger_version AND z.seq = d.seq OFFSET 0) s
  ON CONFLICT (tenant_id, ledger_id, account_id, ledger_version, seq) DO UPDATE SET eff_debits_posted = EXCLUDED.eff_debits_posted,
    eff_credits_posted = EXCLUDED.eff_credits_posted, eff_debits_pending = EXCLUDED.eff_debits_pending, eff_credits_pending = EXCLUDED.eff_credits_pending`;

/**
 * The statements that look rows up by a batch of keys, for the test that checks their plans are
 * driven from the keys. @internal
 */
export const HISTORY_KEYED_SQL: readonly string[] = [
  SELECT_ACCOUNTS_SQL,
  MAX_EFFECTIVE_SQL,
  SELECT_HOLDS_SQL,
  UPDATE_TRANSFERS_SQL,
  PREDECESSORS_SQL,
  SHIFT_SUCCESSORS_SQL,
  UPSERT_LEDGER_TIMES_SQL.text,
];

/**
 * The history read model, from which every past balance is one index probe:
 * - `rm_account_entries`: one row per change of an account's balances (as `replayAccountEntries`
 *   lists them) with the running totals after it, in ledger order and in effective-time order;
 *   statements page through it by ledger version.
 * - `rm_accounts` and `rm_account_states`: each account and every status it has had;
 * - `rm_ledger_times`: each ledger's last version per recorded time, which turns "as of a
 *   recorded time" into "as of a version";
 * - `rm_transfers`: transfers by id and by reference, holds with their expiry and resolution.
 *
 * A back-dated entry (effective before the account's latest) also moves the effective-order
 * totals of the account's later-effective entries: write work bounded by the ledger's
 * back-dating window, so that reads stay one probe.
 *
 * Memory: between batches the projection keeps the account heads (attributes and running
 * totals) its batches read or wrote, so that the next batch of the same tenant need not read them
 * again: at most 100,000 heads in all (in the order of 100 MB), over every tenant it serves. When
 * a tenant's heads would go over that, the heads of the tenants least recently projected are
 * dropped first (they are read again when needed); a tenant with more heads than that keeps none.
 * Beyond that bound, only the batches in flight hold heads. Use one projection object per runner:
 * the bound is per object.
 */
export function historyProjection(): Projection {
  return historyProjectionWithCache(HEADS_CACHED_MAX);
}

/** {@link historyProjection} with another bound on the heads it keeps, for tests. @internal */
export function historyProjectionWithCache(headsCachedMax: number): Projection {
  // The account heads as the last batch of each tenant left them, tagged with its last position:
  // the next batch trusts them only if it starts from that position (so that batch committed),
  // and saves reading them back. A failed batch leaves nothing here.
  const heads = new TenantCaches<{ readonly after: string; readonly accounts: Map<string, AccountHead> }>(headsCachedMax);
  return {
    name: HISTORY_PROJECTION,
    async apply({ client, tenantId, after }, events) {
      const cached = heads.take(tenantId);
      const batch = new HistoryBatch(client, tenantId, cached !== undefined && cached.after === after ? cached.accounts : new Map());
      const accounts = await batch.apply(events);
      const last = events[events.length - 1];
      if (last !== undefined) heads.put(tenantId, { after: last.position, accounts }, accounts.size);
    },
    async reset({ client, tenantId }) {
      heads.take(tenantId);
      for (const table of ['rm_account_entries', 'rm_account_states', 'rm_accounts', 'rm_ledger_times', 'rm_transfers']) {
        await client.query(`DELETE FROM ${SCHEMA}.${table} WHERE tenant_id = $1`, [tenantId]);
      }
    },
  };
}

/** Most account heads kept in memory between batches, over all tenants. */
const HEADS_CACHED_MAX = 100_000;

/** One batch of the history projection: rows are gathered in memory and written together. */
class HistoryBatch {
  readonly #client: PoolClient;
  readonly #tenantId: string;
  readonly #accounts: Map<string, AccountHead>;
  /** Held postings of open holds, by (ledger, hold id). */
  #holds = new Map<string, readonly HeldPosting[]>();
  /** Entries of the batch so far. */
  #entryCount = 0;
  /** The batch's entries by account, for the effective-time order and the insert. */
  #byAccount = new Map<AccountHead, AccountEntries>();
  #states: StateRow[] = [];
  #newTransfers = new Map<string, TransferRow>();
  #transferUpdates = new Map<string, TransferUpdate>();
  /** Last version per (ledger, recorded time) of the batch. */
  #ledgerTimes = new Map<string, number>();
  /** The last event's (ledger, recorded time) and its {@link keyOf} key: a writer's batch shares one. */
  #lastLedgerTime: { readonly ledgerId: string; readonly recordedAt: string; readonly key: string } | undefined;
  /** The last event's columns, formatted. */
  #lastEvent: EventText | undefined;
  /** Ledger ids as array-literal elements (the batch's ledgers). */
  #ledgerElements = new Map<string, string>();
  /** The distinct times of the batch's entries and transfers, ISO, each sent once. */
  #times: string[] = [];
  /** Position (from 1, as text) in `#times` by epoch ms. */
  #timeSlots = new Map<number, string>();
  // The last two times formatted (recorded and effective times repeat from event to event).
  #isoMs0 = Number.NaN;
  #isoText0 = '';
  #isoMs1 = Number.NaN;
  #isoText1 = '';

  /** @param accounts heads known to be current (they are updated in place), or an empty map. */
  constructor(client: PoolClient, tenantId: string, accounts: Map<string, AccountHead>) {
    this.#client = client;
    this.#tenantId = tenantId;
    this.#accounts = accounts;
  }

  /** Applies the events and returns the account heads after them. */
  async apply(events: readonly ProjectionEvent[]): Promise<Map<string, AccountHead>> {
    await this.#load(events);
    for (const { stored, event, meta } of events) {
      const ledgerId = stored.ledgerId;
      const recordedAt = this.#iso(meta.recordedAtMs);
      let ledgerTime = this.#lastLedgerTime;
      if (ledgerTime === undefined || ledgerTime.ledgerId !== ledgerId || ledgerTime.recordedAt !== recordedAt) {
        ledgerTime = { ledgerId, recordedAt, key: keyOf(ledgerId, recordedAt) };
        this.#lastLedgerTime = ledgerTime;
      }
      this.#ledgerTimes.set(ledgerTime.key, meta.ledgerVersion);
      switch (event.type) {
        case 'AccountOpened': {
          const key = keyOf(ledgerId, event.accountId);
          if (this.#accounts.has(key)) inconsistent(`account ${event.accountId} of ledger ${ledgerId} opened twice`);
          this.#accounts.set(key, {
            ledgerId,
            accountId: event.accountId,
            currency: event.currency,
            accountType: event.accountType,
            debitsMustNotExceedCredits: event.flags.debitsMustNotExceedCredits,
            creditsMustNotExceedDebits: event.flags.creditsMustNotExceedDebits,
            metadata: event.metadata,
            openedVersion: meta.ledgerVersion,
            openedRecordedAt: recordedAt,
            openedEffectiveAt: this.#iso(meta.effectiveAtMs),
            status: 'open',
            debitsPosted: 0n,
            creditsPosted: 0n,
            debitsPending: 0n,
            creditsPending: 0n,
            maxEffectiveMs: null,
            seqVersion: 0,
            seq: 0,
            dirty: true,
            accountElement: arrayElement(event.accountId),
            debitsPostedText: '0',
            creditsPostedText: '0',
            debitsPendingText: '0',
            creditsPendingText: '0',
          });
          this.#state(ledgerId, event.accountId, meta, 'open');
          break;
        }
        case 'AccountFrozen':
          this.#state(ledgerId, event.accountId, meta, 'frozen');
          break;
        case 'AccountUnfrozen':
          this.#state(ledgerId, event.accountId, meta, 'open');
          break;
        case 'AccountClosed':
          this.#state(ledgerId, event.accountId, meta, 'closed');
          break;
        case 'TransferPosted':
          this.#postAll(ledgerId, event.type, event.transferId, event.postings, 'posted', meta);
          this.#newTransfer(ledgerId, event.type, event.transferId, event.reversalOf === undefined ? 'transfer' : 'reversal', postingsElement(event.postings), meta, {
            reference: event.reference ?? null,
            reversalOf: event.reversalOf ?? null,
            metadata: event.metadata,
          });
          if (event.reversalOf !== undefined) this.#updateTransfer(ledgerId, event.reversalOf, { reversedBy: event.transferId });
          break;
        case 'TransferPending':
          this.#postAll(ledgerId, event.type, event.transferId, event.postings, 'pending', meta);
          this.#newTransfer(ledgerId, event.type, event.transferId, 'hold', postingsElement(event.postings), meta, {
            reference: event.reference ?? null,
            metadata: event.metadata,
            holdStatus: 'pending',
            timeoutAt: event.timeoutMs === undefined ? null : iso(meta.recordedAtMs + event.timeoutMs),
          });
          this.#holds.set(keyOf(ledgerId, event.transferId), heldPostingsOf(event.postings));
          break;
        case 'PendingPosted':
          this.#release(ledgerId, event.type, event.transferId, event.pendingId, meta);
          this.#postAll(ledgerId, event.type, event.transferId, event.postings, 'posted', meta);
          this.#newTransfer(ledgerId, event.type, event.transferId, 'postPending', postingsElement(event.postings), meta, { pendingId: event.pendingId, metadata: event.metadata });
          this.#updateTransfer(ledgerId, event.pendingId, { holdStatus: 'posted', resolvedBy: event.transferId, resolvedVersion: meta.ledgerVersion });
          break;
        case 'PendingVoided':
          this.#release(ledgerId, event.type, event.transferId, event.pendingId, meta);
          this.#newTransfer(ledgerId, event.type, event.transferId, 'voidPending', postingsElement([]), meta, { pendingId: event.pendingId, metadata: event.metadata });
          this.#updateTransfer(ledgerId, event.pendingId, { holdStatus: 'voided', resolvedBy: event.transferId, resolvedVersion: meta.ledgerVersion });
          break;
        case 'PendingExpired':
          this.#release(ledgerId, event.type, event.pendingId, event.pendingId, meta);
          this.#updateTransfer(ledgerId, event.pendingId, { holdStatus: 'expired', resolvedVersion: meta.ledgerVersion });
          break;
      }
    }
    await this.#effectiveOrder();
    await this.#flushEntries();
    await this.#flushRest();
    return this.#accounts;
  }

  /** Loads the heads of the accounts the batch touches and the holds it resolves. */
  async #load(events: readonly ProjectionEvent[]): Promise<void> {
    const createdHolds = new Set<string>();
    const wantedHolds = new Set<string>();
    for (const { stored, event } of events) {
      if (event.type === 'TransferPending') createdHolds.add(keyOf(stored.ledgerId, event.transferId));
      else if (event.type === 'PendingPosted' || event.type === 'PendingVoided' || event.type === 'PendingExpired') {
        const key = keyOf(stored.ledgerId, event.pendingId);
        if (!createdHolds.has(key)) wantedHolds.add(key);
      }
    }
    if (wantedHolds.size > 0) {
      const { rows } = await this.#client.query<{ ledger_id: string; transfer_id: string; postings: HeldPosting[]; hold_status: string }>(SELECT_HOLDS_SQL, [
        this.#tenantId,
        ...splitKeys(wantedHolds),
      ]);
      for (const row of rows) if (row.hold_status === 'pending') this.#holds.set(keyOf(row.ledger_id, row.transfer_id), row.postings);
    }
    // The accounts whose heads are not known already (the heads kept from the batch before are
    // not gone through: there may be many more of them than the batch touches).
    // Nor those the batch opens (it has no row yet).
    const wantedAccounts = new Set<string>();
    const opened = new Set<string>();
    const accounts = this.#accounts;
    const want = (ledgerId: string, accountId: string): void => {
      const key = keyOf(ledgerId, accountId);
      if (!accounts.has(key) && !opened.has(key)) wantedAccounts.add(key);
    };
    for (const { stored, event } of events) {
      const ledgerId = stored.ledgerId;
      switch (event.type) {
        case 'AccountOpened':
          opened.add(keyOf(ledgerId, event.accountId));
          break;
        case 'AccountFrozen':
        case 'AccountUnfrozen':
        case 'AccountClosed':
          want(ledgerId, event.accountId);
          break;
        case 'TransferPosted':
        case 'TransferPending':
          for (const posting of event.postings) want(ledgerId, posting.accountId);
          break;
        case 'PendingPosted':
        case 'PendingVoided':
        case 'PendingExpired':
          if (event.type === 'PendingPosted') for (const posting of event.postings) want(ledgerId, posting.accountId);
          for (const posting of this.#holds.get(keyOf(ledgerId, event.pendingId)) ?? []) want(ledgerId, posting.accountId);
          break;
      }
    }
    if (wantedAccounts.size === 0) return;
    const { rows } = await this.#client.query<RawAccountRow>(SELECT_ACCOUNTS_SQL, [this.#tenantId, ...splitKeys(wantedAccounts)]);
    for (const row of rows) this.#accounts.set(keyOf(row.ledger_id, row.account_id), accountHeadOf(row));
  }

  #account(ledgerId: string, accountId: string): AccountHead {
    const account = this.#accounts.get(keyOf(ledgerId, accountId));
    if (account === undefined) inconsistent(`account ${accountId} of ledger ${ledgerId} does not exist`);
    return account;
  }

  #state(ledgerId: string, accountId: string, meta: EventMeta, status: AccountStatus): void {
    const account = this.#account(ledgerId, accountId);
    account.status = status;
    account.dirty = true;
    this.#states.push({ ledgerId, accountId, ledgerVersion: meta.ledgerVersion, recordedAt: this.#iso(meta.recordedAtMs), effectiveAt: this.#iso(meta.effectiveAtMs), status });
  }

  #postAll(ledgerId: string, eventType: string, transferId: string, postings: readonly Posting[], bucket: 'posted' | 'pending', meta: EventMeta): void {
    for (const posting of postings) this.#entry(ledgerId, posting.accountId, eventType, transferId, posting.side, bucket, posting.amount, meta);
  }

  #release(ledgerId: string, eventType: string, transferId: string, pendingId: string, meta: EventMeta): void {
    const key = keyOf(ledgerId, pendingId);
    const held = this.#holds.get(key);
    if (held === undefined) inconsistent(`hold ${pendingId} of ledger ${ledgerId} is not open`);
    this.#holds.delete(key);
    for (const posting of held) this.#entry(ledgerId, posting.accountId, eventType, transferId, posting.side, 'pending', -BigInt(posting.amountMinor), meta);
  }

  /**
   * One entry: the account's running totals move, and the entry records them. Its totals in
   * effective-time order are worked out once the batch is complete ({@link #effectiveOrder}).
   */
  #entry(ledgerId: string, accountId: string, eventType: string, transferId: string, side: Side, bucket: 'posted' | 'pending', amount: bigint, meta: EventMeta): void {
    const account = this.#account(ledgerId, accountId);
    let group = this.#byAccount.get(account);
    if (group === undefined) {
      group = { account, before: totalsOf(account), maxEffectiveMsBefore: account.maxEffectiveMs, backdatedByTime: false, entries: [] };
      this.#byAccount.set(account, group);
    }
    moveHead(account, side, bucket, amount);
    if (account.seqVersion !== meta.ledgerVersion) {
      account.seqVersion = meta.ledgerVersion;
      account.seq = 0;
    }
    const seq = account.seq;
    account.seq += 1;
    // An entry effective when recorded is effective no earlier than any before it (recorded times
    // never decrease, effective never passes recorded): only one recorded after it took effect
    // can be back-dated.
    if (meta.effectiveAtMs < meta.recordedAtMs) group.backdatedByTime = true;
    const entry: EntryRow = {
      account,
      event: this.#eventText(ledgerId, eventType, transferId, meta),
      seq,
      side,
      bucket,
      amount,
      effectiveAtMs: meta.effectiveAtMs,
      debitsPosted: account.debitsPosted,
      creditsPosted: account.creditsPosted,
      debitsPending: account.debitsPending,
      creditsPending: account.creditsPending,
      debitsPostedText: account.debitsPostedText,
      creditsPostedText: account.creditsPostedText,
      debitsPendingText: account.debitsPendingText,
      creditsPendingText: account.creditsPendingText,
      effectiveTotals: null,
    };
    group.entries.push(entry);
    this.#entryCount += 1;
  }

  /** The event's columns, formatted once for all its rows. */
  #eventText(ledgerId: string, eventType: string, transferId: string, meta: EventMeta): EventText {
    const last = this.#lastEvent;
    if (last !== undefined && last.meta === meta && last.transferId === transferId) return last;
    const recordedAt = this.#iso(meta.recordedAtMs);
    const effectiveAt = meta.effectiveAtMs === meta.recordedAtMs ? recordedAt : this.#iso(meta.effectiveAtMs);
    const recordedSlot = this.#timeSlot(meta.recordedAtMs, recordedAt);
    const text: EventText = {
      meta,
      transferId,
      ledgerElement: this.#ledgerElement(ledgerId),
      version: String(meta.ledgerVersion),
      eventTypeElement: arrayElement(eventType),
      transferElement: arrayElement(transferId),
      recordedAt,
      effectiveAt,
      recordedSlot,
      effectiveSlot: meta.effectiveAtMs === meta.recordedAtMs ? recordedSlot : this.#timeSlot(meta.effectiveAtMs, effectiveAt),
    };
    this.#lastEvent = text;
    return text;
  }

  /** The time's position in the batch's list of times, added if new. */
  #timeSlot(ms: number, text: string): string {
    let slot = this.#timeSlots.get(ms);
    if (slot === undefined) {
      this.#times.push(text);
      slot = String(this.#times.length);
      this.#timeSlots.set(ms, slot);
    }
    return slot;
  }

  #ledgerElement(ledgerId: string): string {
    let element = this.#ledgerElements.get(ledgerId);
    if (element === undefined) {
      element = arrayElement(ledgerId);
      this.#ledgerElements.set(ledgerId, element);
    }
    return element;
  }

  /** Epoch ms as an ISO string; the last two times are remembered (an event's, mostly the event before's too). */
  #iso(ms: number): string {
    if (ms === this.#isoMs0) return this.#isoText0;
    if (ms === this.#isoMs1) return this.#isoText1;
    const text = iso(ms);
    this.#isoMs1 = this.#isoMs0;
    this.#isoText1 = this.#isoText0;
    this.#isoMs0 = ms;
    this.#isoText0 = text;
    return text;
  }


  /**
   * The batch's entries in effective-time order, set-based: an entry's effective-order totals are
   * those of the account's last stored entry at or before its effective time (one probe per
   * back-dated entry, all in one statement) plus the batch's own entries at or before it; stored
   * entries effective after a back-dated one move by its amount (one statement for the batch).
   * Entries of an account in effective order already (nothing back-dated) keep `null`: their
   * effective-order totals are their ledger-order totals.
   */
  async #effectiveOrder(): Promise<void> {
    const groups = [...this.#byAccount.values()];
    // The latest stored effective time, for the accounts that may have a back-dated entry and whose head does not know it.
    const unknown = groups.filter((group) => group.backdatedByTime && group.maxEffectiveMsBefore === undefined);
    const maxBefore = new Map<AccountEntries, number | null>();
    if (unknown.length > 0) {
      const { rows } = await this.#client.query<{ ledger_id: string; account_id: string; effective_at: Date }>(MAX_EFFECTIVE_SQL, [
        this.#tenantId,
        unknown.map((group) => group.account.ledgerId),
        unknown.map((group) => group.account.accountId),
      ]);
      const found = new Map(rows.map((row) => [keyOf(row.ledger_id, row.account_id), row.effective_at.getTime()]));
      for (const group of unknown) maxBefore.set(group, found.get(keyOf(group.account.ledgerId, group.account.accountId)) ?? null);
    }
    const probes: EntryRow[] = [];
    const reordered: AccountEntries[] = [];
    for (const group of groups) {
      const stored = maxBefore.has(group) ? (maxBefore.get(group) ?? null) : (group.maxEffectiveMsBefore ?? null);
      let latest = stored ?? -Infinity;
      let inOrder = true;
      for (const entry of group.entries) {
        if (stored !== null && entry.effectiveAtMs < stored) probes.push(entry);
        if (entry.effectiveAtMs < latest) inOrder = false;
        latest = Math.max(latest, entry.effectiveAtMs);
      }
      // Known now whether or not it was before: a later batch needs no probe for it.
      group.account.maxEffectiveMs = latest === -Infinity ? null : latest;
      if (!inOrder) reordered.push(group);
    }
    if (reordered.length === 0) return;
    const predecessors = new Map<EntryRow, Totals>();
    if (probes.length > 0) {
      const { rows } = await this.#client.query<Record<(typeof TOTAL_COLUMNS)[number] | 'i', string>>(PREDECESSORS_SQL, [
        this.#tenantId,
        probes.map((entry) => entry.account.ledgerId),
        probes.map((entry) => entry.account.accountId),
        probes.map((entry) => entry.event.effectiveAt),
      ]);
      for (const row of rows) predecessors.set(probes[Number(row.i) - 1] as EntryRow, totalsOfRow(row));
      const deltas = probes.map((entry) => deltaOf(entry));
      await this.#client.query(SHIFT_SUCCESSORS_SQL, [
        this.#tenantId,
        probes.map((entry) => entry.account.ledgerId),
        probes.map((entry) => entry.account.accountId),
        probes.map((entry) => entry.event.effectiveAt),
        deltas.map((delta) => delta.debitsPosted.toString()),
        deltas.map((delta) => delta.creditsPosted.toString()),
        deltas.map((delta) => delta.debitsPending.toString()),
        deltas.map((delta) => delta.creditsPending.toString()),
      ]);
    }
    for (const group of reordered) {
      // The batch's entries of the account in effective-time order (ties by version, then seq:
      // ledger order, which `entries` is in), each with the sum of those up to it.
      const sorted = group.entries.map((entry, index) => ({ entry, index })).sort((a, b) => a.entry.effectiveAtMs - b.entry.effectiveAtMs || a.index - b.index);
      const running: Totals = { debitsPosted: 0n, creditsPosted: 0n, debitsPending: 0n, creditsPending: 0n };
      for (const { entry } of sorted) {
        addTo(running, entry.side, entry.bucket, entry.amount);
        // Stored entries before it: all of them, unless it is back-dated past some.
        const base = predecessors.get(entry) ?? group.before;
        const effective: Totals = {
          debitsPosted: base.debitsPosted + running.debitsPosted,
          creditsPosted: base.creditsPosted + running.creditsPosted,
          debitsPending: base.debitsPending + running.debitsPending,
          creditsPending: base.creditsPending + running.creditsPending,
        };
        entry.effectiveTotals = sameTotals(effective, entry) ? null : effective;
      }
    }
  }

  #newTransfer(
    ledgerId: string,
    eventType: string,
    transferId: string,
    kind: TransferKind,
    postings: string,
    meta: EventMeta,
    extra: { reference?: string | null; pendingId?: string; reversalOf?: string | null; metadata: Readonly<Record<string, string>>; holdStatus?: 'pending'; timeoutAt?: string | null },
  ): void {
    const key = keyOf(ledgerId, transferId);
    if (this.#newTransfers.has(key)) inconsistent(`transfer ${transferId} of ledger ${ledgerId} recorded twice`);
    this.#newTransfers.set(key, {
      event: this.#eventText(ledgerId, eventType, transferId, meta),
      kind,
      postingsElement: postings,
      reference: extra.reference ?? null,
      pendingId: extra.pendingId ?? null,
      reversalOf: extra.reversalOf ?? null,
      reversedBy: null,
      metadataElement: metadataElement(extra.metadata),
      holdStatus: extra.holdStatus ?? null,
      timeoutAt: extra.timeoutAt ?? null,
      resolvedBy: null,
      resolvedVersion: null,
    });
  }

  #updateTransfer(ledgerId: string, transferId: string, change: Partial<TransferUpdate>): void {
    const key = keyOf(ledgerId, transferId);
    const target: TransferUpdate | TransferRow = this.#newTransfers.get(key) ?? this.#transferUpdates.get(key) ?? { reversedBy: null, holdStatus: null, resolvedBy: null, resolvedVersion: null };
    if (change.reversedBy !== undefined) target.reversedBy = change.reversedBy;
    if (change.holdStatus !== undefined) target.holdStatus = change.holdStatus;
    if (change.resolvedBy !== undefined) target.resolvedBy = change.resolvedBy;
    if (change.resolvedVersion !== undefined) target.resolvedVersion = change.resolvedVersion;
    if (!this.#newTransfers.has(key)) this.#transferUpdates.set(key, target as TransferUpdate);
  }

  /**
   * The entries in one statement: each column one array literal, built in one pass over the rows
   * from the text the rows share (an account's id and totals, an event's columns), so that a row
   * costs a few array stores rather than a string conversion per column. The rows go in key
   * order (by account, then ledger order), so that the server inserts an account's entries
   * one after the other into the same index pages: about a tenth less of its work than in
   * ledger order, where they are spread over the whole of both indexes.
   */
  async #flushEntries(): Promise<void> {
    const n = this.#entryCount;
    if (n === 0) return;
    const rows = new Array<EntryRow>(n);
    let at = 0;
    for (const group of [...this.#byAccount.values()].sort(byAccountKey)) for (const entry of group.entries) rows[at++] = entry;
    const ledgers = new Array<string>(n);
    const accounts = new Array<string>(n);
    const versions = new Array<string>(n);
    const seqs = new Array<string>(n);
    const eventTypes = new Array<string>(n);
    const transfers = new Array<string>(n);
    const sides = new Array<string>(n);
    const buckets = new Array<string>(n);
    const amounts = new Array<string>(n);
    const recorded = new Array<string>(n);
    const effective = new Array<string>(n);
    const debitsPosted = new Array<string>(n);
    const creditsPosted = new Array<string>(n);
    const debitsPending = new Array<string>(n);
    const creditsPending = new Array<string>(n);
    let reordered = false;
    for (let i = 0; i < n; i += 1) {
      const row = rows[i] as EntryRow;
      const event = row.event;
      ledgers[i] = event.ledgerElement;
      accounts[i] = row.account.accountElement;
      versions[i] = event.version;
      seqs[i] = String(row.seq);
      eventTypes[i] = event.eventTypeElement;
      transfers[i] = event.transferElement;
      // 'debit' | 'credit', 'posted' | 'pending': elements as they are.
      sides[i] = row.side;
      buckets[i] = row.bucket;
      amounts[i] = row.amount.toString();
      recorded[i] = event.recordedSlot;
      effective[i] = event.effectiveSlot;
      debitsPosted[i] = row.debitsPostedText;
      creditsPosted[i] = row.creditsPostedText;
      debitsPending[i] = row.debitsPendingText;
      creditsPending[i] = row.creditsPendingText;
      if (row.effectiveTotals !== null) reordered = true;
    }
    const values: string[] = [
      this.#tenantId,
      arrayLiteralOf(this.#times),
      arrayLiteralOf(ledgers),
      arrayLiteralOf(accounts),
      arrayLiteralOf(versions),
      arrayLiteralOf(seqs),
      arrayLiteralOf(eventTypes),
      arrayLiteralOf(transfers),
      arrayLiteralOf(sides),
      arrayLiteralOf(buckets),
      arrayLiteralOf(amounts),
      arrayLiteralOf(recorded),
      arrayLiteralOf(effective),
      arrayLiteralOf(debitsPosted),
      arrayLiteralOf(creditsPosted),
      arrayLiteralOf(debitsPending),
      arrayLiteralOf(creditsPending),
    ];
    if (!reordered) {
      await this.#client.query(INSERT_ENTRIES_SQL, values);
      return;
    }
    const effectiveTotals = (pick: (totals: Totals) => bigint): string => arrayLiteral(rows.map((row) => (row.effectiveTotals === null ? null : pick(row.effectiveTotals))));
    await this.#client.query(INSERT_ENTRIES_EFFECTIVE_SQL, [
      ...values,
      effectiveTotals((totals) => totals.debitsPosted),
      effectiveTotals((totals) => totals.creditsPosted),
      effectiveTotals((totals) => totals.debitsPending),
      effectiveTotals((totals) => totals.creditsPending),
    ]);
  }

  async #flushRest(): Promise<void> {
    const client = this.#client;
    const tenantId = this.#tenantId;
    const accounts = [...this.#accounts.values()].filter((account) => account.dirty);
    if (accounts.length > 0) {
      await client.query(UPSERT_ACCOUNTS_SQL, [
        tenantId,
        accounts.map((a) => a.ledgerId),
        accounts.map((a) => a.accountId),
        accounts.map((a) => a.currency),
        accounts.map((a) => a.accountType),
        accounts.map((a) => a.debitsMustNotExceedCredits),
        accounts.map((a) => a.creditsMustNotExceedDebits),
        accounts.map((a) => JSON.stringify(a.metadata)),
        accounts.map((a) => a.openedVersion),
        accounts.map((a) => a.openedRecordedAt),
        accounts.map((a) => a.openedEffectiveAt),
        accounts.map((a) => a.status),
      ]);
      for (const account of accounts) account.dirty = false;
    }
    if (this.#ledgerTimes.size > 0) {
      const [ledgers, times] = splitKeys(this.#ledgerTimes.keys());
      await client.query(UPSERT_LEDGER_TIMES_SQL, [tenantId, ledgers, times, [...this.#ledgerTimes.values()]]);
    }
    const states = this.#states;
    if (states.length > 0) {
      await client.query(INSERT_STATES_SQL, [
        tenantId,
        states.map((s) => s.ledgerId),
        states.map((s) => s.accountId),
        states.map((s) => s.ledgerVersion),
        states.map((s) => s.recordedAt),
        states.map((s) => s.effectiveAt),
        states.map((s) => s.status),
      ]);
    }
    const transfers = [...this.#newTransfers.values()];
    const n = transfers.length;
    if (n > 0) {
      const ledgers = new Array<string>(n);
      const ids = new Array<string>(n);
      const kinds = new Array<string>(n);
      const postings = new Array<string>(n);
      const references = new Array<string>(n);
      const pendingIds = new Array<string>(n);
      const reversalOf = new Array<string>(n);
      const reversedBy = new Array<string>(n);
      const metadata = new Array<string>(n);
      const versions = new Array<string>(n);
      const recorded = new Array<string>(n);
      const effective = new Array<string>(n);
      const holdStatus = new Array<string>(n);
      const timeoutAt = new Array<string>(n);
      const resolvedBy = new Array<string>(n);
      const resolvedVersion = new Array<string>(n);
      for (let i = 0; i < n; i += 1) {
        const t = transfers[i] as TransferRow;
        const event = t.event;
        ledgers[i] = event.ledgerElement;
        ids[i] = event.transferElement;
        // The kinds and hold statuses are elements as they are; times are ISO strings.
        kinds[i] = t.kind;
        postings[i] = t.postingsElement;
        references[i] = elementOrNull(t.reference);
        pendingIds[i] = elementOrNull(t.pendingId);
        reversalOf[i] = elementOrNull(t.reversalOf);
        reversedBy[i] = elementOrNull(t.reversedBy);
        metadata[i] = t.metadataElement;
        versions[i] = event.version;
        recorded[i] = event.recordedSlot;
        effective[i] = event.effectiveSlot;
        holdStatus[i] = t.holdStatus ?? 'NULL';
        timeoutAt[i] = t.timeoutAt ?? 'NULL';
        resolvedBy[i] = elementOrNull(t.resolvedBy);
        resolvedVersion[i] = t.resolvedVersion === null ? 'NULL' : String(t.resolvedVersion);
      }
      await client.query(INSERT_TRANSFERS_SQL, [
        tenantId,
        arrayLiteralOf(this.#times),
        arrayLiteralOf(ledgers),
        arrayLiteralOf(ids),
        arrayLiteralOf(kinds),
        arrayLiteralOf(postings),
        arrayLiteralOf(references),
        arrayLiteralOf(pendingIds),
        arrayLiteralOf(reversalOf),
        arrayLiteralOf(reversedBy),
        arrayLiteralOf(metadata),
        arrayLiteralOf(versions),
        arrayLiteralOf(recorded),
        arrayLiteralOf(effective),
        arrayLiteralOf(holdStatus),
        arrayLiteralOf(timeoutAt),
        arrayLiteralOf(resolvedBy),
        arrayLiteralOf(resolvedVersion),
      ]);
    }
    if (this.#transferUpdates.size > 0) {
      const [ledgers, ids] = splitKeys(this.#transferUpdates.keys());
      const updates = [...this.#transferUpdates.values()];
      const { rowCount } = await client.query(UPDATE_TRANSFERS_SQL, [
        tenantId,
        ledgers,
        ids,
        updates.map((u) => u.reversedBy),
        updates.map((u) => u.holdStatus),
        updates.map((u) => u.resolvedBy),
        updates.map((u) => u.resolvedVersion),
      ]);
      if (rowCount !== updates.length) inconsistent(`${updates.length - (rowCount ?? 0)} transfer(s) to update do not exist`);
    }
  }
}

interface RawAccountRow {
  readonly ledger_id: string;
  readonly account_id: string;
  readonly currency: string;
  readonly account_type: AccountHead['accountType'];
  readonly debits_must_not_exceed_credits: boolean;
  readonly credits_must_not_exceed_debits: boolean;
  readonly metadata: Record<string, string>;
  readonly opened_version: string;
  readonly opened_recorded_at: Date;
  readonly opened_effective_at: Date;
  readonly status: AccountStatus;
  /** `null`: no entry yet. */
  readonly debits_posted: string | null;
  readonly credits_posted: string | null;
  readonly debits_pending: string | null;
  readonly credits_pending: string | null;
}

function accountHeadOf(row: RawAccountRow): AccountHead {
  const debitsPosted = BigInt(row.debits_posted ?? 0);
  const creditsPosted = BigInt(row.credits_posted ?? 0);
  const debitsPending = BigInt(row.debits_pending ?? 0);
  const creditsPending = BigInt(row.credits_pending ?? 0);
  return {
    ledgerId: row.ledger_id,
    accountId: row.account_id,
    currency: row.currency,
    accountType: row.account_type,
    debitsMustNotExceedCredits: row.debits_must_not_exceed_credits,
    creditsMustNotExceedDebits: row.credits_must_not_exceed_debits,
    metadata: row.metadata,
    openedVersion: Number(row.opened_version),
    openedRecordedAt: row.opened_recorded_at.toISOString(),
    openedEffectiveAt: row.opened_effective_at.toISOString(),
    status: row.status,
    debitsPosted,
    creditsPosted,
    debitsPending,
    creditsPending,
    maxEffectiveMs: row.debits_posted === null ? null : undefined,
    seqVersion: 0,
    seq: 0,
    dirty: false,
    accountElement: arrayElement(row.account_id),
    debitsPostedText: debitsPosted.toString(),
    creditsPostedText: creditsPosted.toString(),
    debitsPendingText: debitsPending.toString(),
    creditsPendingText: creditsPending.toString(),
  };
}

/** Adds a signed amount to one of the head's four balances, and writes that one's text again. */
function moveHead(account: AccountHead, side: Side, bucket: 'posted' | 'pending', amount: bigint): void {
  if (bucket === 'posted') {
    if (side === 'debit') {
      account.debitsPosted += amount;
      account.debitsPostedText = account.debitsPosted.toString();
    } else {
      account.creditsPosted += amount;
      account.creditsPostedText = account.creditsPosted.toString();
    }
  } else if (side === 'debit') {
    account.debitsPending += amount;
    account.debitsPendingText = account.debitsPending.toString();
  } else {
    account.creditsPending += amount;
    account.creditsPendingText = account.creditsPending.toString();
  }
}

/** A string or NULL as an array-literal element. */
function elementOrNull(value: string | null): string {
  return value === null ? 'NULL' : arrayElement(value);
}

/** What needs no escaping in a JSON string nor, quoted, in an array-literal element. */
const PLAIN_TEXT = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/**
 * The postings as `heldPostingsOf` would store them, `JSON.stringify`'d, as an array-literal
 * element: written directly when the ids and currencies need no escaping (ids cannot, by their
 * pattern), which spares an object per posting and escaping the JSON's quotes one by one.
 */
function postingsElement(postings: readonly Posting[]): string {
  let text = '"[';
  for (let i = 0; i < postings.length; i += 1) {
    const posting = postings[i] as Posting;
    if (!PLAIN_TEXT.test(posting.accountId) || !PLAIN_TEXT.test(posting.currency) || !PLAIN_TEXT.test(posting.side)) {
      return arrayElement(JSON.stringify(heldPostingsOf(postings)));
    }
    text += `${i === 0 ? '' : ','}{\\"accountId\\":\\"${posting.accountId}\\",\\"side\\":\\"${posting.side}\\",\\"amountMinor\\":\\"${posting.amount.toString()}\\",\\"currency\\":\\"${posting.currency}\\"}`;
  }
  return `${text}]"`;
}

/** Metadata's JSON as an array-literal element (most transfers have none). */
function metadataElement(metadata: Readonly<Record<string, string>>): string {
  for (const key in metadata) if (Object.hasOwn(metadata, key)) return arrayElement(JSON.stringify(metadata));
  return EMPTY_OBJECT_ELEMENT;
}

const EMPTY_OBJECT_ELEMENT = arrayElement('{}');

function totalsOfRow(row: Record<(typeof TOTAL_COLUMNS)[number], string>): Totals {
  return { debitsPosted: BigInt(row.debits_posted), creditsPosted: BigInt(row.credits_posted), debitsPending: BigInt(row.debits_pending), creditsPending: BigInt(row.credits_pending) };
}

/** An entry's amount as a change of the four totals. */
function deltaOf(entry: EntryRow): Totals {
  const delta: Totals = { debitsPosted: 0n, creditsPosted: 0n, debitsPending: 0n, creditsPending: 0n };
  addTo(delta, entry.side, entry.bucket, entry.amount);
  return delta;
}

function sameTotals(a: Totals, b: Totals): boolean {
  return a.debitsPosted === b.debitsPosted && a.creditsPosted === b.creditsPosted && a.debitsPending === b.debitsPending && a.creditsPending === b.creditsPending;
}

/** Key order of the accounts' entry groups: by ledger, then account (as strings; the server's order is byte-wise, close enough for locality). */
function byAccountKey(a: AccountEntries, b: AccountEntries): number {
  const x = a.account;
  const y = b.account;
  if (x.ledgerId !== y.ledgerId) return x.ledgerId < y.ledgerId ? -1 : 1;
  return x.accountId < y.accountId ? -1 : x.accountId > y.accountId ? 1 : 0;
}

/** A copy of an account's four balances. */
function totalsOf(totals: Totals): Totals {
  return { debitsPosted: totals.debitsPosted, creditsPosted: totals.creditsPosted, debitsPending: totals.debitsPending, creditsPending: totals.creditsPending };
}

function heldPostingsOf(postings: readonly Posting[]): HeldPosting[] {
  return postings.map((posting) => ({ accountId: posting.accountId, side: posting.side, amountMinor: posting.amount.toString(), currency: posting.currency }));
}
