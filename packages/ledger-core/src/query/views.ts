import type { AccountState } from '../domain/state.js';
import type { AccountType, Side } from '../domain/types.js';
import { InvalidInputError } from '../errors.js';
import { checkCollaborator } from '../input/options.js';
import { formatAmount } from '../money/amount.js';
import type { CurrencyRegistry } from '../money/currency.js';

/** An account's balances as decimal strings in its currency. */
export interface Balance {
  readonly accountId: string;
  readonly currency: string;
  readonly type: AccountType;
  readonly normalSide: Side;
  readonly status: AccountState['status'];
  readonly debitsPosted: string;
  readonly creditsPosted: string;
  readonly debitsPending: string;
  readonly creditsPending: string;
  /** Posted balance on the normal side (credits − debits for a liability), may be negative. */
  readonly posted: string;
  /** Pending amounts that will reduce the normal-side balance when posted. */
  readonly pending: string;
  /** `posted` minus what pending holds reserve against it. */
  readonly available: string;
}

/**
 * Formats an account's state as a {@link Balance}. An `account` that is not an object is refused
 * with `InvalidInputError` at `account`, and `currencies` that are not a `CurrencyRegistry` (an
 * object with `get`) at `currencies`.
 */
export function balanceOf(account: AccountState, currencies: CurrencyRegistry): Balance {
  // Two type checks only: this runs for every account a read returns.
  if (typeof account !== 'object' || account === null) throw new InvalidInputError([{ path: ['account'], message: 'must be an account state (an object)' }]);
  checkCollaborator(currencies, 'currencies', ['get'], 'a CurrencyRegistry', true);
  const scale = currencies.get(account.currency).scale;
  const debitNormal = account.normalSide === 'debit';
  const posted = debitNormal ? account.debitsPosted - account.creditsPosted : account.creditsPosted - account.debitsPosted;
  const reserving = debitNormal ? account.creditsPending : account.debitsPending;
  return {
    accountId: account.id,
    currency: account.currency,
    type: account.type,
    normalSide: account.normalSide,
    status: account.status,
    debitsPosted: formatAmount(account.debitsPosted, scale),
    creditsPosted: formatAmount(account.creditsPosted, scale),
    debitsPending: formatAmount(account.debitsPending, scale),
    creditsPending: formatAmount(account.creditsPending, scale),
    posted: formatAmount(posted, scale),
    pending: formatAmount(reserving, scale),
    available: formatAmount(posted - reserving, scale),
  };
}

/** One account's line of a trial balance: its net posted balance on the debit or credit column. */
export interface TrialBalanceLine {
  readonly accountId: string;
  readonly currency: string;
  readonly type: AccountType;
  readonly debit: string;
  readonly credit: string;
}

/** Column totals of one currency; `balanced` is true when debits equal credits. */
export interface TrialBalanceTotal {
  readonly currency: string;
  readonly debits: string;
  readonly credits: string;
  readonly balanced: boolean;
}

/** Every account's net posted balance, and per-currency totals that must be equal. */
export interface TrialBalance {
  readonly lines: TrialBalanceLine[];
  readonly totals: TrialBalanceTotal[];
}

/**
 * Builds a trial balance from account states, sorted by currency then account id. `accounts` that
 * are not an iterable are refused with `InvalidInputError` at `accounts`, one of them that is not
 * an object at `accounts.<index>`, and `currencies` that are not a `CurrencyRegistry` (an object
 * with `get`) at `currencies`.
 */
export function trialBalanceOf(accounts: Iterable<AccountState>, currencies: CurrencyRegistry): TrialBalance {
  const iterable = accounts as Partial<Iterable<AccountState>> | null | undefined;
  if (typeof iterable !== 'object' || iterable === null || typeof iterable[Symbol.iterator] !== 'function') {
    throw new InvalidInputError([{ path: ['accounts'], message: 'must be an iterable of account states' }]);
  }
  checkCollaborator(currencies, 'currencies', ['get'], 'a CurrencyRegistry', true);
  const listed = [...accounts];
  for (const [index, account] of listed.entries()) {
    if (typeof account !== 'object' || account === null) throw new InvalidInputError([{ path: ['accounts', index], message: 'must be an account state (an object)' }]);
  }
  const sorted = listed.sort((a, b) => (a.currency === b.currency ? compare(a.id, b.id) : compare(a.currency, b.currency)));
  const sums = new Map<string, { debits: bigint; credits: bigint }>();
  const lines = sorted.map((account): TrialBalanceLine => {
    const scale = currencies.get(account.currency).scale;
    const net = account.debitsPosted - account.creditsPosted;
    const sum = sums.get(account.currency) ?? { debits: 0n, credits: 0n };
    if (net >= 0n) sum.debits += net;
    else sum.credits -= net;
    sums.set(account.currency, sum);
    return {
      accountId: account.id,
      currency: account.currency,
      type: account.type,
      debit: formatAmount(net > 0n ? net : 0n, scale),
      credit: formatAmount(net < 0n ? -net : 0n, scale),
    };
  });
  const totals = [...sums].map(([currency, sum]) => {
    const scale = currencies.get(currency).scale;
    return { currency, debits: formatAmount(sum.debits, scale), credits: formatAmount(sum.credits, scale), balanced: sum.debits === sum.credits };
  });
  return { lines, totals };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
