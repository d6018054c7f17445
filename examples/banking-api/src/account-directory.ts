/**
 * The account directory (`banking_api.accounts`): every account with its attributes and status,
 * for `GET /accounts` (keyset-paginated by id) and `GET /accounts/{id}`. The projections
 * package has no account listing, so the API keeps its own read model, built only on public
 * APIs: an inline hook runs inside every append (read-your-writes: an opened account is listed
 * when the POST returns), and a projection run by the `ProjectionRunner` applies whatever an
 * append without the hook wrote. Both apply a row's change only when it comes from a newer
 * ledger version than the row's, so they may both run and in any order.
 */
import { EventCodec, normalSideOf, type AccountType, type AppendRequest, type CurrencyRegistry, type LedgerEvent } from '@ledgerkit/ledger-core';
import { eventProjection, type Projection } from '@ledgerkit/projections';
import type { InlinePlan, InlineProjection } from '@ledgerkit/store-postgres';
import { withPooledClient, type ClientPool } from '@ledgerkit/tenant-rls';
import type { PoolClient } from 'pg';
import { API_SCHEMA } from './migrations.js';

/** Name of the directory projection (its checkpoint). */
export const ACCOUNT_DIRECTORY_PROJECTION = 'banking-api-accounts';

/** An account as the directory holds it. */
export interface DirectoryAccount {
  readonly ledgerId: string;
  readonly accountId: string;
  readonly currency: string;
  readonly type: AccountType;
  readonly normalSide: 'debit' | 'credit';
  readonly flags: { readonly debitsMustNotExceedCredits: boolean; readonly creditsMustNotExceedDebits: boolean };
  readonly metadata: Readonly<Record<string, string>>;
  readonly status: 'open' | 'frozen' | 'closed';
  readonly openedAt: string;
  readonly openedLedgerVersion: number;
}

interface AccountRow {
  readonly ledger_id: string;
  readonly account_id: string;
  readonly currency: string;
  readonly account_type: AccountType;
  readonly debits_must_not_exceed_credits: boolean;
  readonly credits_must_not_exceed_debits: boolean;
  readonly metadata: Record<string, string>;
  readonly status: DirectoryAccount['status'];
  readonly opened_version: string;
  readonly opened_at: Date;
}

const INSERT_SQL = `INSERT INTO ${API_SCHEMA}.accounts (tenant_id, ledger_id, account_id, currency, account_type, debits_must_not_exceed_credits,
    credits_must_not_exceed_debits, metadata, status, opened_version, opened_at, version)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, 'open', $9, $10, $9)
  ON CONFLICT (tenant_id, ledger_id, account_id) DO NOTHING`;
const STATUS_SQL = `UPDATE ${API_SCHEMA}.accounts SET status = $4, version = $5
  WHERE tenant_id = $1 AND ledger_id = $2 AND account_id = $3 AND version < $5`;

/** Applies one event to the directory through `client` (a transaction with the tenant set). */
async function applyEvent(client: PoolClient, tenantId: string, ledgerId: string, event: LedgerEvent, version: number, recordedAtMs: number): Promise<void> {
  switch (event.type) {
    case 'AccountOpened':
      await client.query(INSERT_SQL, [
        tenantId,
        ledgerId,
        event.accountId,
        event.currency,
        event.accountType,
        event.flags.debitsMustNotExceedCredits,
        event.flags.creditsMustNotExceedDebits,
        JSON.stringify(event.metadata),
        version,
        new Date(recordedAtMs).toISOString(),
      ]);
      return;
    case 'AccountFrozen':
      await client.query(STATUS_SQL, [tenantId, ledgerId, event.accountId, 'frozen', version]);
      return;
    case 'AccountUnfrozen':
      await client.query(STATUS_SQL, [tenantId, ledgerId, event.accountId, 'open', version]);
      return;
    case 'AccountClosed':
      await client.query(STATUS_SQL, [tenantId, ledgerId, event.accountId, 'closed', version]);
      return;
    default:
      return;
  }
}

const ACCOUNT_EVENT_TYPES: ReadonlySet<string> = new Set(['AccountOpened', 'AccountFrozen', 'AccountUnfrozen', 'AccountClosed']);

/**
 * The inline half: pass it to `PostgresEventStore.open({ inline })` (composed with
 * `inlineBalances`). Appends of transfers only (the hot path) touch nothing.
 */
export function inlineAccountDirectory(currencies: CurrencyRegistry): InlineProjection {
  const codec = new EventCodec({ currencies });
  const general = async (client: PoolClient, append: AppendRequest): Promise<void> => {
    for (const stored of append.events) {
      if (!ACCOUNT_EVENT_TYPES.has(stored.type)) continue;
      const { event, meta } = codec.decode(stored);
      await applyEvent(client, append.tenantId, append.ledgerId, event, meta.ledgerVersion, meta.recordedAtMs);
    }
  };
  // Nothing to write for an append without account events: an empty plan, so that the balances'
  // plan can go with the append in one round trip. Account events take the general path.
  const plan = (append: AppendRequest): InlinePlan | undefined => (append.events.some((stored) => ACCOUNT_EVENT_TYPES.has(stored.type)) ? undefined : NOTHING_TO_WRITE);
  return Object.assign(general, { plan });
}

const NOTHING_TO_WRITE: InlinePlan = { statements: [] };

/** The projection half, for the `ProjectionRunner`; `liveBatchDelayMs` as `Projection.liveBatchDelayMs`. */
export function accountDirectoryProjection(options: { readonly liveBatchDelayMs?: number } = {}): Projection {
  return eventProjection({
    name: ACCOUNT_DIRECTORY_PROJECTION,
    ...(options.liveBatchDelayMs === undefined ? {} : { liveBatchDelayMs: options.liveBatchDelayMs }),
    async handle({ client, tenantId }, { stored, event, meta }) {
      if (!ACCOUNT_EVENT_TYPES.has(event.type)) return;
      await applyEvent(client, tenantId, stored.ledgerId, event, meta.ledgerVersion, meta.recordedAtMs);
    },
    async reset({ client, tenantId }) {
      await client.query(`DELETE FROM ${API_SCHEMA}.accounts WHERE tenant_id = $1`, [tenantId]);
    },
  });
}

/** Reads the directory: one round trip per call, tenant set inside the statement. */
export class AccountDirectory {
  readonly #pool: ClientPool;

  constructor(pool: ClientPool) {
    this.#pool = pool;
  }

  /** One account, or `undefined` (also for another tenant's account: row-level security hides it). */
  async get(tenantId: string, ledgerId: string, accountId: string): Promise<DirectoryAccount | undefined> {
    const rows = await this.#query(`SELECT * FROM ${API_SCHEMA}.read_account($1, $2, $3)`, [tenantId, ledgerId, accountId]);
    const row = rows[0];
    return row === undefined ? undefined : accountOf(row);
  }

  /** Up to `limit` accounts with ids after `after`, in id order (byte order), and whether more follow. */
  async list(tenantId: string, ledgerId: string, after: string | undefined, limit: number): Promise<{ accounts: DirectoryAccount[]; nextCursor: string | null }> {
    const rows = await this.#query(`SELECT * FROM ${API_SCHEMA}.list_accounts($1, $2, $3, $4)`, [tenantId, ledgerId, after ?? null, limit + 1]);
    const page = rows.slice(0, limit).map(accountOf);
    const last = page[page.length - 1];
    return { accounts: page, nextCursor: rows.length > limit && last !== undefined ? last.accountId : null };
  }

  #query(text: string, values: unknown[]): Promise<AccountRow[]> {
    return withPooledClient(this.#pool, async (client) => (await client.query<AccountRow>(text, values)).rows);
  }
}

function accountOf(row: AccountRow): DirectoryAccount {
  return {
    ledgerId: row.ledger_id,
    accountId: row.account_id,
    currency: row.currency,
    type: row.account_type,
    normalSide: normalSideOf(row.account_type),
    flags: { debitsMustNotExceedCredits: row.debits_must_not_exceed_credits, creditsMustNotExceedDebits: row.credits_must_not_exceed_debits },
    metadata: row.metadata,
    status: row.status,
    openedAt: row.opened_at.toISOString(),
    openedLedgerVersion: Number(row.opened_version),
  };
}
