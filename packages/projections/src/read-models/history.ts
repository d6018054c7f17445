import type { EventMeta, Posting, Side, TransferKind } from '@ledgerkit/ledger-core';
import type { PoolClient } from 'pg';
import type { Projection, ProjectionEvent } from '../projection.js';
import { SCHEMA } from '../schema.js';
import { TenantCaches } from './tenant-caches.js';
import { addTo, arrayLiteral, inconsistent, iso, keyOf, splitKeys, type AccountAttributes, type HeldPosting, type Totals } from './rows.js';

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
}

interface EntryRow {
  readonly ledgerId: string;
  readonly accountId: string;
  readonly ledgerVersion: number;
  readonly seq: number;
  readonly eventType: string;
  readonly transferId: string;
  readonly side: Side;
  readonly bucket: 'posted' | 'pending';
  readonly amount: bigint;
  readonly recordedAt: string;
  readonly effectiveAt: string;
  readonly effectiveAtMs: number;
  readonly totals: Totals;
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
  readonly ledgerId: string;
  readonly transferId: string;
  readonly kind: TransferKind;
  readonly postings: readonly HeldPosting[];
  readonly reference: string | null;
  readonly pendingId: string | null;
  readonly reversalOf: string | null;
  reversedBy: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly ledgerVersion: number;
  readonly recordedAt: string;
  readonly effectiveAt: string;
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

// Every batch runs the next three: named, so each connection prepares them once.
const UPSERT_LEDGER_TIMES_SQL = {
  name: 'ledgerkit_history_ledger_times',
  text: `INSERT INTO ${SCHEMA}.rm_ledger_times AS t (tenant_id, ledger_id, recorded_at, ledger_version)
  SELECT $1, r.* FROM unnest($2::text[], $3::timestamptz[], $4::bigint[]) AS r
  ON CONFLICT (tenant_id, ledger_id, recorded_at) DO UPDATE SET ledger_version = greatest(t.ledger_version, EXCLUDED.ledger_version)`,
};

const INSERT_ENTRIES_SQL = {
  name: 'ledgerkit_history_entries',
  text: `INSERT INTO ${SCHEMA}.rm_account_entries (tenant_id, ledger_id, account_id, ledger_version, seq, event_type,
    transfer_id, side, bucket, amount, recorded_at, effective_at, debits_posted, credits_posted, debits_pending, credits_pending,
    eff_debits_posted, eff_credits_posted, eff_debits_pending, eff_credits_pending)
  SELECT $1, e.* FROM unnest($2::text[], $3::text[], $4::bigint[], $5::smallint[], $6::text[], $7::text[], $8::text[], $9::text[],
    $10::numeric[], $11::timestamptz[], $12::timestamptz[], $13::numeric[], $14::numeric[], $15::numeric[], $16::numeric[],
    $17::numeric[], $18::numeric[], $19::numeric[], $20::numeric[]) AS e`,
};

const INSERT_STATES_SQL = `INSERT INTO ${SCHEMA}.rm_account_states (tenant_id, ledger_id, account_id, ledger_version, recorded_at, effective_at, status)
  SELECT $1, s.* FROM unnest($2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[]) AS s`;

const INSERT_TRANSFERS_SQL = {
  name: 'ledgerkit_history_transfers',
  text: `INSERT INTO ${SCHEMA}.rm_transfers (tenant_id, ledger_id, transfer_id, kind, postings, reference, pending_id,
    reversal_of, reversed_by, metadata, ledger_version, recorded_at, effective_at, hold_status, timeout_at, resolved_by, resolved_version)
  SELECT $1, t.* FROM unnest($2::text[], $3::text[], $4::text[], $5::json[], $6::text[], $7::text[], $8::text[], $9::text[], $10::json[],
    $11::bigint[], $12::timestamptz[], $13::timestamptz[], $14::text[], $15::timestamptz[], $16::text[], $17::bigint[]) AS t`,
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
export const HISTORY_KEYED_SQL: readonly string[] = [SELECT_ACCOUNTS_SQL, MAX_EFFECTIVE_SQL, SELECT_HOLDS_SQL, UPDATE_TRANSFERS_SQL, PREDECESSORS_SQL, SHIFT_SUCCESSORS_SQL];

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
  #entries: EntryRow[] = [];
  /** The batch's entries by account, for the effective-time order. */
  #byAccount = new Map<string, AccountEntries>();
  #states: StateRow[] = [];
  #newTransfers = new Map<string, TransferRow>();
  #transferUpdates = new Map<string, TransferUpdate>();
  /** Last version per (ledger, recorded time) of the batch. */
  #ledgerTimes = new Map<string, number>();
  /** The last event's times, formatted. */
  #lastTimes: { readonly meta: EventMeta; readonly recordedAt: string; readonly effectiveAt: string } | undefined;

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
      this.#ledgerTimes.set(keyOf(ledgerId, this.#times(meta).recordedAt), meta.ledgerVersion);
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
            openedRecordedAt: iso(meta.recordedAtMs),
            openedEffectiveAt: iso(meta.effectiveAtMs),
            status: 'open',
            debitsPosted: 0n,
            creditsPosted: 0n,
            debitsPending: 0n,
            creditsPending: 0n,
            maxEffectiveMs: null,
            seqVersion: 0,
            seq: 0,
            dirty: true,
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
          this.#newTransfer(ledgerId, event.transferId, event.reversalOf === undefined ? 'transfer' : 'reversal', event.postings, meta, {
            reference: event.reference ?? null,
            reversalOf: event.reversalOf ?? null,
            metadata: event.metadata,
          });
          if (event.reversalOf !== undefined) this.#updateTransfer(ledgerId, event.reversalOf, { reversedBy: event.transferId });
          break;
        case 'TransferPending':
          this.#postAll(ledgerId, event.type, event.transferId, event.postings, 'pending', meta);
          this.#newTransfer(ledgerId, event.transferId, 'hold', event.postings, meta, {
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
          this.#newTransfer(ledgerId, event.transferId, 'postPending', event.postings, meta, { pendingId: event.pendingId, metadata: event.metadata });
          this.#updateTransfer(ledgerId, event.pendingId, { holdStatus: 'posted', resolvedBy: event.transferId, resolvedVersion: meta.ledgerVersion });
          break;
        case 'PendingVoided':
          this.#release(ledgerId, event.type, event.transferId, event.pendingId, meta);
          this.#newTransfer(ledgerId, event.transferId, 'voidPending', [], meta, { pendingId: event.pendingId, metadata: event.metadata });
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
    const wantedAccounts = new Set<string>();
    for (const { stored, event } of events) {
      const ledgerId = stored.ledgerId;
      const add = (accountId: string): void => {
        wantedAccounts.add(keyOf(ledgerId, accountId));
      };
      switch (event.type) {
        case 'AccountOpened':
          break;
        case 'AccountFrozen':
        case 'AccountUnfrozen':
        case 'AccountClosed':
          add(event.accountId);
          break;
        case 'TransferPosted':
        case 'TransferPending':
          for (const posting of event.postings) add(posting.accountId);
          break;
        case 'PendingPosted':
        case 'PendingVoided':
        case 'PendingExpired':
          if (event.type === 'PendingPosted') for (const posting of event.postings) add(posting.accountId);
          for (const posting of this.#holds.get(keyOf(ledgerId, event.pendingId)) ?? []) add(posting.accountId);
          break;
      }
    }
    for (const key of this.#accounts.keys()) wantedAccounts.delete(key);
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
    this.#states.push({ ledgerId, accountId, ledgerVersion: meta.ledgerVersion, recordedAt: iso(meta.recordedAtMs), effectiveAt: iso(meta.effectiveAtMs), status });
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
    const key = keyOf(ledgerId, accountId);
    const account = this.#account(ledgerId, accountId);
    let group = this.#byAccount.get(key);
    if (group === undefined) {
      group = { account, before: totalsOf(account), maxEffectiveMsBefore: account.maxEffectiveMs, backdatedByTime: false, entries: [] };
      this.#byAccount.set(key, group);
    }
    addTo(account, side, bucket, amount);
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
    const times = this.#times(meta);
    const entry: EntryRow = {
      ledgerId,
      accountId,
      ledgerVersion: meta.ledgerVersion,
      seq,
      eventType,
      transferId,
      side,
      bucket,
      amount,
      recordedAt: times.recordedAt,
      effectiveAt: times.effectiveAt,
      effectiveAtMs: meta.effectiveAtMs,
      totals: totalsOf(account),
      effectiveTotals: null,
    };
    group.entries.push(entry);
    this.#entries.push(entry);
  }

  /** The event's times as ISO strings, formatted once per event. */
  #times(meta: EventMeta): { readonly recordedAt: string; readonly effectiveAt: string } {
    if (this.#lastTimes?.meta !== meta) {
      const recordedAt = iso(meta.recordedAtMs);
      this.#lastTimes = { meta, recordedAt, effectiveAt: meta.effectiveAtMs === meta.recordedAtMs ? recordedAt : iso(meta.effectiveAtMs) };
    }
    return this.#lastTimes;
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
        probes.map((entry) => entry.ledgerId),
        probes.map((entry) => entry.accountId),
        probes.map((entry) => entry.effectiveAt),
      ]);
      for (const row of rows) predecessors.set(probes[Number(row.i) - 1] as EntryRow, totalsOfRow(row));
      const deltas = probes.map((entry) => deltaOf(entry));
      await this.#client.query(SHIFT_SUCCESSORS_SQL, [
        this.#tenantId,
        probes.map((entry) => entry.ledgerId),
        probes.map((entry) => entry.accountId),
        probes.map((entry) => entry.effectiveAt),
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
        entry.effectiveTotals = sameTotals(effective, entry.totals) ? null : effective;
      }
    }
  }

  #newTransfer(
    ledgerId: string,
    transferId: string,
    kind: TransferKind,
    postings: readonly Posting[],
    meta: EventMeta,
    extra: { reference?: string | null; pendingId?: string; reversalOf?: string | null; metadata: Readonly<Record<string, string>>; holdStatus?: 'pending'; timeoutAt?: string | null },
  ): void {
    const key = keyOf(ledgerId, transferId);
    if (this.#newTransfers.has(key)) inconsistent(`transfer ${transferId} of ledger ${ledgerId} recorded twice`);
    this.#newTransfers.set(key, {
      ledgerId,
      transferId,
      kind,
      postings: heldPostingsOf(postings),
      reference: extra.reference ?? null,
      pendingId: extra.pendingId ?? null,
      reversalOf: extra.reversalOf ?? null,
      reversedBy: null,
      metadata: extra.metadata,
      ledgerVersion: meta.ledgerVersion,
      recordedAt: iso(meta.recordedAtMs),
      effectiveAt: iso(meta.effectiveAtMs),
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

  async #flushEntries(): Promise<void> {
    const rows = this.#entries;
    if (rows.length === 0) return;
    this.#entries = [];
    const effective = (pick: (totals: Totals) => bigint): string => arrayLiteral(rows.map((row) => (row.effectiveTotals === null ? null : pick(row.effectiveTotals))));
    await this.#client.query(INSERT_ENTRIES_SQL, [
      this.#tenantId,
      arrayLiteral(rows.map((row) => row.ledgerId)),
      arrayLiteral(rows.map((row) => row.accountId)),
      arrayLiteral(rows.map((row) => row.ledgerVersion)),
      arrayLiteral(rows.map((row) => row.seq)),
      arrayLiteral(rows.map((row) => row.eventType)),
      arrayLiteral(rows.map((row) => row.transferId)),
      arrayLiteral(rows.map((row) => row.side)),
      arrayLiteral(rows.map((row) => row.bucket)),
      arrayLiteral(rows.map((row) => row.amount)),
      arrayLiteral(rows.map((row) => row.recordedAt)),
      arrayLiteral(rows.map((row) => row.effectiveAt)),
      arrayLiteral(rows.map((row) => row.totals.debitsPosted)),
      arrayLiteral(rows.map((row) => row.totals.creditsPosted)),
      arrayLiteral(rows.map((row) => row.totals.debitsPending)),
      arrayLiteral(rows.map((row) => row.totals.creditsPending)),
      effective((totals) => totals.debitsPosted),
      effective((totals) => totals.creditsPosted),
      effective((totals) => totals.debitsPending),
      effective((totals) => totals.creditsPending),
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
    if (transfers.length > 0) {
      await client.query(INSERT_TRANSFERS_SQL, [
        tenantId,
        arrayLiteral(transfers.map((t) => t.ledgerId)),
        arrayLiteral(transfers.map((t) => t.transferId)),
        arrayLiteral(transfers.map((t) => t.kind)),
        arrayLiteral(transfers.map((t) => JSON.stringify(t.postings))),
        arrayLiteral(transfers.map((t) => t.reference)),
        arrayLiteral(transfers.map((t) => t.pendingId)),
        arrayLiteral(transfers.map((t) => t.reversalOf)),
        arrayLiteral(transfers.map((t) => t.reversedBy)),
        arrayLiteral(transfers.map((t) => JSON.stringify(t.metadata))),
        arrayLiteral(transfers.map((t) => t.ledgerVersion)),
        arrayLiteral(transfers.map((t) => t.recordedAt)),
        arrayLiteral(transfers.map((t) => t.effectiveAt)),
        arrayLiteral(transfers.map((t) => t.holdStatus)),
        arrayLiteral(transfers.map((t) => t.timeoutAt)),
        arrayLiteral(transfers.map((t) => t.resolvedBy)),
        arrayLiteral(transfers.map((t) => t.resolvedVersion)),
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
    debitsPosted: BigInt(row.debits_posted ?? 0),
    creditsPosted: BigInt(row.credits_posted ?? 0),
    debitsPending: BigInt(row.debits_pending ?? 0),
    creditsPending: BigInt(row.credits_pending ?? 0),
    maxEffectiveMs: row.debits_posted === null ? null : undefined,
    seqVersion: 0,
    seq: 0,
    dirty: false,
  };
}

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

function totalsOf(totals: Totals): Totals {
  return { debitsPosted: totals.debitsPosted, creditsPosted: totals.creditsPosted, debitsPending: totals.debitsPending, creditsPending: totals.creditsPending };
}

function heldPostingsOf(postings: readonly Posting[]): HeldPosting[] {
  return postings.map((posting) => ({ accountId: posting.accountId, side: posting.side, amountMinor: posting.amount.toString(), currency: posting.currency }));
}
