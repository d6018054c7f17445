/**
 * Reconciliation: the read models against the log, at run time. The agreement tests check on
 * random workloads that every read-model answer equals replay; this checks a real ledger the
 * same way, for an operator or an auditor who wants to know that the fast path (the history
 * projection) still tells the truth: it replays the ledger's log to a version, verifying the
 * hash chain, and compares every account's balance there with the read model's.
 */
import {
  balanceOf,
  EventCodec,
  InvalidInputError,
  replayLedger,
  type AccountState,
  type Balance,
  type CurrencyRegistry,
  type EventStore,
  type UpcasterRegistry,
} from '@ledgerkit/ledger-core';
import { TRIAL_BALANCE_LINES_DEFAULT, TRIAL_BALANCE_LINES_MAX, type ReadModels } from './read-models/read-models.js';
import { currenciesOf, optionsOf, requireObjectWith } from './read-models/options.js';

/** Most mismatches one reconciliation lists (it counts them all). */
export const RECONCILE_MISMATCHES_MAX = 1_000;

/** Options of {@link reconcileLedger}. */
export interface ReconcileOptions {
  /** The store holding the ledger's log (read as the tenant). */
  readonly store: EventStore;
  /** The read models to check (their pool is the application role's). */
  readonly models: ReadModels;
  readonly tenantId: string;
  readonly ledgerId: string;
  /**
   * The version to compare at; default: the last one the history projection has applied. A
   * version past that is refused (the read model cannot know it yet), one past the log's head
   * is compared at the head.
   */
  readonly ledgerVersion?: number;
  /** Currencies of the ledger (custom assets included), as the runner was given; default ISO 4217. */
  readonly currencies?: CurrencyRegistry;
  /** Upcasters of older event versions, as the runner was given. */
  readonly upcasters?: UpcasterRegistry;
  /** Most accounts compared: 1..1,000,000, default 100,000; more is `LimitExceededError` (replay) or `ResultTooLargeError` (read model). */
  readonly accountsMax?: number;
  /** Most mismatches listed: 0..{@link RECONCILE_MISMATCHES_MAX}, default 100. */
  readonly mismatchesListedMax?: number;
}

/** One account on which the two paths disagree; `null` where one of them has no such account. */
export interface AccountMismatch {
  readonly accountId: string;
  readonly readModel: Balance | null;
  readonly replay: Balance | null;
}

/** What {@link reconcileLedger} found. */
export interface Reconciliation {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** The version compared at. */
  readonly ledgerVersion: number;
  /** Accounts opened by that version, on either path. */
  readonly accountsCompared: number;
  /** Accounts that differ in any field (totals, status, type). */
  readonly mismatchCount: number;
  /** The first of them in account id order, at most `mismatchesListedMax`. */
  readonly mismatches: readonly AccountMismatch[];
  /** No mismatch. */
  readonly agrees: boolean;
}

/**
 * Replays a ledger to a version (checking its hash chain: a broken link is `ChainBrokenError`, a
 * bad event `CorruptEventError`) and compares every account's balance there — all four totals,
 * status and type — with the history read model's answer as of the same version. Memory is
 * bounded by the number of accounts (`accountsMax`); time is one pass over the log up to the
 * version and one statement on the read model. Options that are not an object, or lack a store
 * or read models, are refused with `InvalidInputError` at `options`, `store` or `models`, and
 * `currencies` or `upcasters` that are not registries (`null` included) at their names, before
 * any SQL.
 *
 * ```ts
 * const result = await reconcileLedger({ store, models, tenantId: 'acme', ledgerId: 'eur' });
 * if (!result.agrees) alert(result.mismatches);
 * ```
 */
export async function reconcileLedger(options: ReconcileOptions): Promise<Reconciliation> {
  const { store, models, tenantId, ledgerId } = optionsOf(options, true);
  requireObjectWith(store, 'store', ['readStream']);
  requireObjectWith(models, 'models', ['historyVersion', 'balancesAt']);
  const accountsMax = options.accountsMax ?? TRIAL_BALANCE_LINES_DEFAULT;
  if (!Number.isInteger(accountsMax) || accountsMax < 1 || accountsMax > TRIAL_BALANCE_LINES_MAX) {
    throw new InvalidInputError([{ path: ['accountsMax'], message: `must be an integer in 1..${TRIAL_BALANCE_LINES_MAX}` }]);
  }
  const listedMax = options.mismatchesListedMax ?? 100;
  if (!Number.isInteger(listedMax) || listedMax < 0 || listedMax > RECONCILE_MISMATCHES_MAX) {
    throw new InvalidInputError([{ path: ['mismatchesListedMax'], message: `must be an integer in 0..${RECONCILE_MISMATCHES_MAX}` }]);
  }
  // Checks the currencies and upcasters before any SQL.
  const currencies = currenciesOf(options.currencies);
  const codec = new EventCodec({ currencies, ...(options.upcasters === undefined ? {} : { upcasters: options.upcasters }) });
  // Also checks the tenant and ledger ids, before the log is read.
  const applied = await models.historyVersion(tenantId, ledgerId);
  const wanted = options.ledgerVersion ?? applied;
  if (!Number.isSafeInteger(wanted) || wanted < 0) throw new InvalidInputError([{ path: ['ledgerVersion'], message: 'must be a non-negative integer' }]);
  if (wanted > applied) {
    throw new InvalidInputError([{ path: ['ledgerVersion'], message: `is past version ${applied}, the last the history read model has applied` }]);
  }
  // Stops as soon as the ledger holds more than accountsMax accounts: memory stays bounded.
  const state = await replayLedger({ store, codec, tenantId, ledgerId }, { ledgerVersion: wanted }, { accountsMax });
  // replayLedger keeps the accounts in a Map (as `Ledger.trialBalance` relies on too).
  const accounts = state.accounts as Map<string, AccountState>;
  // Compared where replay stopped: the head, when the version asked for is past it.
  const ledgerVersion = Math.min(wanted, state.version);
  const fromModel = new Map((await models.balancesAt(tenantId, ledgerId, { ledgerVersion }, { linesMax: accountsMax })).map((balance) => [balance.accountId, balance]));
  const ids = [...new Set([...accounts.keys(), ...fromModel.keys()])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const mismatches: AccountMismatch[] = [];
  let mismatchCount = 0;
  for (const accountId of ids) {
    const account = accounts.get(accountId);
    const replay = account === undefined ? null : balanceOf(account, currencies);
    const readModel = fromModel.get(accountId) ?? null;
    if (sameBalance(replay, readModel)) continue;
    mismatchCount += 1;
    if (mismatches.length < listedMax) mismatches.push({ accountId, readModel, replay });
  }
  return { tenantId, ledgerId, ledgerVersion, accountsCompared: ids.length, mismatchCount, mismatches, agrees: mismatchCount === 0 };
}

const BALANCE_FIELDS = ['currency', 'type', 'normalSide', 'status', 'debitsPosted', 'creditsPosted', 'debitsPending', 'creditsPending', 'posted', 'pending', 'available'] as const;

function sameBalance(a: Balance | null, b: Balance | null): boolean {
  if (a === null || b === null) return a === b;
  return BALANCE_FIELDS.every((field) => a[field] === b[field]);
}
