import { balanceOf, ID_PATTERN, InvalidInputError, normalSideOf, type AccountState, type AccountType, type Balance, type CurrencyRegistry, ID_PATTERN_MESSAGE } from '@ledgerkit/ledger-core';
import type { PoolClient } from 'pg';
import { SCHEMA } from '../schema.js';

/** Most accounts one page of {@link ReadModels.accounts} returns. */
export const ACCOUNT_PAGE_SIZE_MAX = 1_000;
/** Accounts per page when no `limit` is given. */
export const ACCOUNT_PAGE_SIZE_DEFAULT = 100;

/** Options of `ReadModels.accounts`. */
export interface AccountListOptions {
  /** Only this ledger's accounts (a well-formed ledger id); default every ledger of the tenant. */
  readonly ledgerId?: string;
  /** Where the page starts: the previous page's `next`; default the first account. */
  readonly after?: string | null;
  /** Most accounts on the page: 1..{@link ACCOUNT_PAGE_SIZE_MAX}, default {@link ACCOUNT_PAGE_SIZE_DEFAULT}. */
  readonly limit?: number;
}

/** An account with its current balance, as the balances read model holds it. */
export interface AccountBalanceView {
  readonly ledgerId: string;
  /** `Balance` as `Ledger.balance` returns it (its `accountId`, currency, type, status and amounts). */
  readonly balance: Balance;
  readonly debitsMustNotExceedCredits: boolean;
  readonly creditsMustNotExceedDebits: boolean;
  readonly metadata: Readonly<Record<string, string>>;
  /** Ledger version of the event that opened it. */
  readonly openedVersion: number;
  /** When it was opened (recorded time), ISO-8601. */
  readonly openedAt: string;
}

/** A page of accounts, in (ledger, account id) order, and where the next page starts. */
export interface AccountsPage {
  readonly accounts: AccountBalanceView[];
  /** Pass as `after` for the next page; `null` when this page is the last. */
  readonly next: string | null;
}

interface ListedRow {
  readonly ledger_id: string;
  readonly account_id: string;
  readonly currency: string;
  readonly account_type: AccountType;
  readonly debits_must_not_exceed_credits: boolean;
  readonly credits_must_not_exceed_debits: boolean;
  readonly metadata: Record<string, string>;
  readonly opened_version: string;
  readonly opened_at: Date;
  readonly status: AccountState['status'];
  readonly debits_posted: string;
  readonly credits_posted: string;
  readonly debits_pending: string;
  readonly credits_pending: string;
}

const COLUMNS = `ledger_id, account_id, currency, account_type, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata,
  opened_version, opened_at, status, debits_posted, credits_posted, debits_pending, credits_pending`;

// Keyset pagination over the primary key (tenant_id, ledger_id, account_id): one index range
// scan whatever the page's depth. Ids compare byte-wise (COLLATE "C"), as the keys do.
const ALL_LEDGERS_SQL = `SELECT ${COLUMNS} FROM ${SCHEMA}.rm_balances
  WHERE tenant_id = $1 AND ($2::text IS NULL OR (ledger_id, account_id) > ($2::text COLLATE "C", $3::text COLLATE "C"))
  ORDER BY ledger_id, account_id LIMIT $4`;
const ONE_LEDGER_SQL = `SELECT ${COLUMNS} FROM ${SCHEMA}.rm_balances
  WHERE tenant_id = $1 AND ledger_id = $2 AND ($3::text IS NULL OR account_id > $3::text COLLATE "C")
  ORDER BY account_id LIMIT $4`;

/**
 * Checks `options` (`InvalidInputError`: a bad limit, a malformed ledger id, a cursor
 * {@link listAccounts} did not make, a cursor of another ledger) and returns what the query needs.
 * Sends nothing: call it before taking a connection.
 */
export function accountListQuery(options: AccountListOptions): AccountListQuery {
  const limit = options.limit ?? ACCOUNT_PAGE_SIZE_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > ACCOUNT_PAGE_SIZE_MAX) {
    throw new InvalidInputError([{ path: ['limit'], message: `must be an integer in 1..${ACCOUNT_PAGE_SIZE_MAX}` }]);
  }
  if (options.ledgerId !== undefined && (typeof options.ledgerId !== 'string' || !ID_PATTERN.test(options.ledgerId))) {
    throw new InvalidInputError([{ path: ['ledgerId'], message: ID_PATTERN_MESSAGE }]);
  }
  const cursor = options.after == null ? null : accountCursorOf(options.after);
  if (cursor !== null && options.ledgerId !== undefined && cursor.ledgerId !== options.ledgerId) {
    throw new InvalidInputError([{ path: ['after'], message: 'not a cursor of this ledger' }]);
  }
  return { limit, ledgerId: options.ledgerId, cursor };
}

/** {@link AccountListOptions} once checked by {@link accountListQuery}. */
export interface AccountListQuery {
  readonly limit: number;
  readonly ledgerId: string | undefined;
  readonly cursor: { readonly ledgerId: string; readonly accountId: string } | null;
}

/**
 * One page of a tenant's accounts with their current balances, from the balances read model, in
 * (ledger, account id) order. Runs on `client`, a connection in a read-only transaction with the
 * tenant set: row-level security keeps other tenants' accounts out whatever the arguments.
 */
export async function listAccounts(client: PoolClient, currencies: CurrencyRegistry, tenantId: string, query: AccountListQuery): Promise<AccountsPage> {
  const { limit, cursor } = query;
  // One more than the page: whether there is a next page, without a count.
  const { rows } =
    query.ledgerId === undefined
      ? await client.query<ListedRow>(ALL_LEDGERS_SQL, [tenantId, cursor?.ledgerId ?? null, cursor?.accountId ?? null, limit + 1])
      : await client.query<ListedRow>(ONE_LEDGER_SQL, [tenantId, query.ledgerId, cursor?.accountId ?? null, limit + 1]);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    accounts: page.map((row) => accountViewOf(row, currencies)),
    next: rows.length > limit && last !== undefined ? accountCursor(last.ledger_id, last.account_id) : null,
  };
}

/** An opaque cursor naming the last account of a page. */
function accountCursor(ledgerId: string, accountId: string): string {
  return Buffer.from(JSON.stringify([ledgerId, accountId]), 'utf8').toString('base64url');
}

function accountCursorOf(cursor: string): { ledgerId: string; accountId: string } {
  const invalid = (): never => {
    throw new InvalidInputError([{ path: ['after'], message: 'not a cursor returned by accounts()' }]);
  };
  if (cursor.length > 1_024 || !/^[A-Za-z0-9_-]+$/.test(cursor)) invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string') invalid();
  const [ledgerId, accountId] = parsed as [string, string];
  // Made from stored ids, which match the id pattern: anything else (a NUL, say) was not made here.
  if (!ID_PATTERN.test(ledgerId) || !ID_PATTERN.test(accountId)) invalid();
  return { ledgerId, accountId };
}

function accountViewOf(row: ListedRow, currencies: CurrencyRegistry): AccountBalanceView {
  const state: AccountState = {
    id: row.account_id,
    currency: row.currency,
    type: row.account_type,
    normalSide: normalSideOf(row.account_type),
    flags: { debitsMustNotExceedCredits: row.debits_must_not_exceed_credits, creditsMustNotExceedDebits: row.credits_must_not_exceed_debits },
    metadata: row.metadata,
    openedAtVersion: Number(row.opened_version),
    openedAtMs: row.opened_at.getTime(),
    status: row.status,
    debitsPosted: BigInt(row.debits_posted),
    creditsPosted: BigInt(row.credits_posted),
    debitsPending: BigInt(row.debits_pending),
    creditsPending: BigInt(row.credits_pending),
  };
  return {
    ledgerId: row.ledger_id,
    balance: balanceOf(state, currencies),
    debitsMustNotExceedCredits: row.debits_must_not_exceed_credits,
    creditsMustNotExceedDebits: row.credits_must_not_exceed_debits,
    metadata: row.metadata,
    openedVersion: Number(row.opened_version),
    openedAt: row.opened_at.toISOString(),
  };
}
