import { invariant } from '../errors.js';
import { BALANCE_MINOR_MAX } from './limits.js';
import type { AccountState, LedgerState, TransferRecord } from './state.js';
import { normalSideOf, type LedgerEvent, type Posting } from './types.js';

/** Where an event sits in its stream and when it happened. */
export interface EventMeta {
  readonly ledgerVersion: number;
  readonly recordedAtMs: number;
  readonly effectiveAtMs: number;
}

/**
 * Applies one event to the state, in place, and returns it. Deterministic: the same events in
 * the same order always give the same state. It mutates rather than copies because copying a
 * ledger's state per event would cost O(accounts) per event; callers that need a tentative
 * state use `overlayState`.
 *
 * Invariants are asserted here, where balances change: accounts exist and match the posting's
 * currency, no balance goes negative or above {@link BALANCE_MINOR_MAX}, and, when
 * `state.limitsAsserted`, no constrained account passes its limit.
 */
export function evolve(state: LedgerState, event: LedgerEvent, meta: EventMeta): LedgerState {
  switch (event.type) {
    case 'AccountOpened': {
      invariant(state.accounts.get(event.accountId) === undefined, () => `account ${event.accountId} opened twice`);
      state.accounts.set(event.accountId, {
        id: event.accountId,
        currency: event.currency,
        type: event.accountType,
        normalSide: normalSideOf(event.accountType),
        flags: event.flags,
        metadata: event.metadata,
        openedAtVersion: meta.ledgerVersion,
        openedAtMs: meta.recordedAtMs,
        status: 'open',
        debitsPosted: 0n,
        creditsPosted: 0n,
        debitsPending: 0n,
        creditsPending: 0n,
      });
      break;
    }
    case 'AccountFrozen':
      mustGetAccount(state, event.accountId).status = 'frozen';
      break;
    case 'AccountUnfrozen':
      mustGetAccount(state, event.accountId).status = 'open';
      break;
    case 'AccountClosed': {
      const account = mustGetAccount(state, event.accountId);
      invariant(
        account.debitsPosted === account.creditsPosted && account.debitsPending === 0n && account.creditsPending === 0n,
        () => `account ${account.id} closed with a balance`,
      );
      account.status = 'closed';
      break;
    }
    case 'TransferPosted': {
      applyPostings(state, event.postings, 'posted', 1n);
      if (event.reversalOf !== undefined) {
        const original = state.transfers.get(event.reversalOf);
        if (original !== undefined) {
          invariant(original.reversedBy === undefined, () => `transfer ${event.reversalOf} reversed twice`);
          original.reversedBy = event.transferId;
          state.transfers.set(original.id, original);
        }
      }
      recordTransfer(state, event, meta);
      break;
    }
    case 'TransferPending':
      applyPostings(state, event.postings, 'pending', 1n);
      recordTransfer(state, event, meta);
      break;
    case 'PendingPosted':
      resolveHold(state, event.pendingId, 'posted');
      applyPostings(state, event.postings, 'posted', 1n);
      recordTransfer(state, event, meta);
      break;
    case 'PendingVoided':
      resolveHold(state, event.pendingId, 'voided');
      recordTransfer(state, event, meta);
      break;
    case 'PendingExpired':
      resolveHold(state, event.pendingId, 'expired');
      break;
    default:
      return assertNever(event);
  }
  invariant(meta.ledgerVersion > state.version, () => `event version ${meta.ledgerVersion} after ${state.version}`);
  state.version = meta.ledgerVersion;
  if (meta.recordedAtMs > state.lastRecordedAtMs) state.lastRecordedAtMs = meta.recordedAtMs;
  return state;
}

/** The transfer record an event creates, or `undefined` for events that create none. */
export function transferRecordOf(event: LedgerEvent, meta: EventMeta): TransferRecord | undefined {
  const common = {
    ledgerVersion: meta.ledgerVersion,
    recordedAtMs: meta.recordedAtMs,
    effectiveAtMs: meta.effectiveAtMs,
    reversedBy: undefined,
    timeoutMs: undefined,
    timeoutAtMs: undefined,
    pendingId: undefined,
    reversalOf: undefined,
    reference: undefined,
    resolution: undefined,
  };
  switch (event.type) {
    case 'TransferPosted':
      return {
        ...common,
        id: event.transferId,
        kind: event.reversalOf === undefined ? 'transfer' : 'reversal',
        postings: event.postings,
        reversalOf: event.reversalOf,
        reference: event.reference,
        metadata: event.metadata,
      };
    case 'TransferPending':
      return {
        ...common,
        id: event.transferId,
        kind: 'hold',
        postings: event.postings,
        timeoutMs: event.timeoutMs,
        timeoutAtMs: event.timeoutMs === undefined ? undefined : meta.recordedAtMs + event.timeoutMs,
        reference: event.reference,
        metadata: event.metadata,
        resolution: 'pending',
      };
    case 'PendingPosted':
      return { ...common, id: event.transferId, kind: 'postPending', postings: event.postings, pendingId: event.pendingId, metadata: event.metadata };
    case 'PendingVoided':
      return { ...common, id: event.transferId, kind: 'voidPending', postings: [], pendingId: event.pendingId, metadata: event.metadata };
    default:
      return undefined;
  }
}

function recordTransfer(state: LedgerState, event: LedgerEvent, meta: EventMeta): void {
  const record = transferRecordOf(event, meta) as TransferRecord;
  invariant(state.transfers.get(record.id) === undefined, () => `transfer id ${record.id} recorded twice`);
  state.transfers.set(record.id, record);
}

function resolveHold(state: LedgerState, pendingId: string, resolution: 'posted' | 'voided' | 'expired'): void {
  const hold = state.transfers.get(pendingId);
  invariant(hold !== undefined && hold.kind === 'hold', () => `pending transfer ${pendingId} is unknown`);
  invariant(hold.resolution === 'pending', () => `pending transfer ${pendingId} resolved twice`);
  applyPostings(state, hold.postings, 'pending', -1n);
  hold.resolution = resolution;
  state.transfers.set(pendingId, hold);
}

function mustGetAccount(state: LedgerState, accountId: string): AccountState {
  const account = state.accounts.get(accountId);
  invariant(account !== undefined, () => `account ${accountId} does not exist`);
  return account;
}

function applyPostings(state: LedgerState, postings: readonly Posting[], bucket: 'posted' | 'pending', sign: 1n | -1n): void {
  for (const posting of postings) {
    const account = mustGetAccount(state, posting.accountId);
    invariant(account.currency === posting.currency, () => `posting in ${posting.currency} on ${account.currency} account ${account.id}`);
    invariant(posting.amount > 0n, () => `non-positive posting on ${account.id}`);
    const delta = sign * posting.amount;
    if (bucket === 'posted') {
      if (posting.side === 'debit') account.debitsPosted += delta;
      else account.creditsPosted += delta;
    } else if (posting.side === 'debit') account.debitsPending += delta;
    else account.creditsPending += delta;
    assertAccountBalances(account, state.limitsAsserted);
    state.accounts.set(account.id, account);
  }
}

function assertAccountBalances(account: AccountState, limitsAsserted: boolean): void {
  invariant(
    inRange(account.debitsPosted) && inRange(account.creditsPosted) && inRange(account.debitsPending) && inRange(account.creditsPending),
    () => `account ${account.id} balance out of range`,
  );
  if (!limitsAsserted) return;
  invariant(
    !account.flags.debitsMustNotExceedCredits || account.debitsPosted + account.debitsPending <= account.creditsPosted,
    () => `account ${account.id} debits exceed credits`,
  );
  invariant(
    !account.flags.creditsMustNotExceedDebits || account.creditsPosted + account.creditsPending <= account.debitsPosted,
    () => `account ${account.id} credits exceed debits`,
  );
}

function inRange(balance: bigint): boolean {
  return balance >= 0n && balance <= BALANCE_MINOR_MAX;
}

function assertNever(value: never): never {
  throw new Error(`unhandled event ${JSON.stringify(value)}`);
}
