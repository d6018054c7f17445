import { InvariantViolationError, invariant } from '../errors.js';
import { BALANCE_MINOR_MAX, LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX } from './limits.js';
import { accountBytes, holdBytes, lifecycleRecordBytes } from './state-bytes.js';
import type { AccountState, LedgerState, LifecycleCommandRecord, TransferRecord } from './state.js';
import { transferRecordOf, type EventMeta } from './transfer-record.js';
import { TransferStore } from './transfer-store.js';
import { normalSideOf, type LedgerEvent, type LifecycleCommandKind, type PendingPosted, type PendingVoided, type Posting, type TransferPending, type TransferPosted } from './types.js';

export { transferRecordOf, type EventMeta } from './transfer-record.js';

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
  // Before anything changes: an event out of order must leave the state as it was.
  if (meta.ledgerVersion <= state.version) violated(`event version ${meta.ledgerVersion} after ${state.version}`);
  switch (event.type) {
    case 'AccountOpened': {
      if (state.accounts.get(event.accountId) !== undefined) violated(`account ${event.accountId} opened twice`);
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
        recentLifecycleCommands: undefined,
      });
      addStateBytes(state, accountBytes(event.accountId, event.currency, event.metadata));
      break;
    }
    case 'AccountFrozen': {
      const account = mustGetAccount(state, event.accountId);
      account.status = 'frozen';
      rememberLifecycleCommand(state, account, event.commandId, 'freezeAccount', meta);
      break;
    }
    case 'AccountUnfrozen': {
      const account = mustGetAccount(state, event.accountId);
      account.status = 'open';
      rememberLifecycleCommand(state, account, event.commandId, 'unfreezeAccount', meta);
      break;
    }
    case 'AccountClosed': {
      const account = mustGetAccount(state, event.accountId);
      invariant(
        account.debitsPosted === account.creditsPosted && account.debitsPending === 0n && account.creditsPending === 0n,
        () => `account ${account.id} closed with a balance`,
      );
      account.status = 'closed';
      rememberLifecycleCommand(state, account, event.commandId, 'closeAccount', meta);
      break;
    }
    case 'TransferPosted': {
      applyPostings(state, event.postings, 'posted', 1);
      if (event.reversalOf !== undefined) {
        const original = state.transfers.get(event.reversalOf);
        if (original !== undefined) {
          if (original.reversedBy !== undefined) violated(`transfer ${event.reversalOf} reversed twice`);
          original.reversedBy = event.transferId;
          state.transfers.set(original.id, original);
        }
      }
      recordTransfer(state, event, meta);
      break;
    }
    case 'TransferPending':
      applyPostings(state, event.postings, 'pending', 1);
      recordTransfer(state, event, meta);
      addStateBytes(state, holdBytes(event));
      break;
    case 'PendingPosted':
      resolveHold(state, event.pendingId, 'posted');
      applyPostings(state, event.postings, 'posted', 1);
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
  state.version = meta.ledgerVersion;
  if (meta.recordedAtMs > state.lastRecordedAtMs) state.lastRecordedAtMs = meta.recordedAtMs;
  return state;
}

/**
 * Adds a lifecycle change's command id, if it has one, to the account's recent ones, dropping the
 * oldest past {@link LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX}. A new array each time: copies of the
 * account (overlays, `LedgerWriter.account`) share the old one, and lifecycle changes are rare.
 */
function rememberLifecycleCommand(state: LedgerState, account: AccountState, commandId: string | undefined, kind: LifecycleCommandKind, meta: EventMeta): void {
  if (commandId === undefined) return;
  const recent = account.recentLifecycleCommands ?? [];
  const dropped = recent.length >= LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX ? recent.length - LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX + 1 : 0;
  const kept = recent.slice(dropped);
  const record = { commandId, kind, ledgerVersion: meta.ledgerVersion, recordedAtMs: meta.recordedAtMs };
  kept.push(record);
  account.recentLifecycleCommands = kept;
  let bytes = lifecycleRecordBytes(record);
  for (let i = 0; i < dropped; i += 1) bytes -= lifecycleRecordBytes(recent[i] as LifecycleCommandRecord);
  addStateBytes(state, bytes);
}

function recordTransfer(state: LedgerState, event: TransferPosted | TransferPending | PendingPosted | PendingVoided, meta: EventMeta): void {
  const transfers = state.transfers;
  // The store records most transfers without building their record object (see TransferStore).
  if (transfers instanceof TransferStore) {
    if (!transfers.record(event, meta)) violated(`transfer id ${event.transferId} recorded twice`);
    return;
  }
  const record = transferRecordOf(event, meta) as TransferRecord;
  if (state.transfers.get(record.id) !== undefined) violated(`transfer id ${record.id} recorded twice`);
  state.transfers.set(record.id, record);
}

function resolveHold(state: LedgerState, pendingId: string, resolution: 'posted' | 'voided' | 'expired'): void {
  const hold = state.transfers.get(pendingId);
  if (hold === undefined || hold.kind !== 'hold') violated(`pending transfer ${pendingId} is unknown`);
  if (hold.resolution !== 'pending') violated(`pending transfer ${pendingId} resolved twice`);
  applyPostings(state, hold.postings, 'pending', -1);
  hold.resolution = resolution;
  state.transfers.set(pendingId, hold);
  addStateBytes(state, -holdBytes(hold));
}

/** Adds `bytes` (negative: gives them back) to the state's size; a state built without one starts at 0. */
function addStateBytes(state: LedgerState, bytes: number): void {
  state.stateBytes = (state.stateBytes ?? 0) + bytes;
}

function mustGetAccount(state: LedgerState, accountId: string): AccountState {
  const account = state.accounts.get(accountId);
  if (account === undefined) violated(`account ${accountId} does not exist`);
  return account;
}

// `sign` is a number, not a bigint: testing it is then a plain compare, where `sign === 1n` was a
// bigint comparison per posting.
function applyPostings(state: LedgerState, postings: readonly Posting[], bucket: 'posted' | 'pending', sign: 1 | -1): void {
  for (let i = 0; i < postings.length; i += 1) {
    const posting = postings[i] as Posting;
    const account = mustGetAccount(state, posting.accountId);
    if (account.currency !== posting.currency) violated(`posting in ${posting.currency} on ${account.currency} account ${account.id}`);
    if (posting.amount <= 0n) violated(`non-positive posting on ${account.id}`);
    const amount = sign === 1 ? posting.amount : -posting.amount;
    let changed: bigint;
    if (bucket === 'posted') {
      if (posting.side === 'debit') changed = account.debitsPosted += amount;
      else changed = account.creditsPosted += amount;
    } else if (posting.side === 'debit') changed = account.debitsPending += amount;
    else changed = account.creditsPending += amount;
    // Only the balance that changed can leave its range, and only an increase on one side can
    // break that side's limit; a release (sign -1) only ever moves an account away from its limit.
    if (!inRange(changed)) violated(`account ${account.id} balance out of range`);
    if (state.limitsAsserted && sign === 1) assertLimits(account, posting.side);
  }
}

function assertLimits(account: AccountState, side: 'debit' | 'credit'): void {
  // A sum allocates a bigint: only for a flagged account, and only when something is pending.
  if (side === 'debit') {
    if (account.flags.debitsMustNotExceedCredits) {
      const exposure = account.debitsPending === 0n ? account.debitsPosted : account.debitsPosted + account.debitsPending;
      if (exposure > account.creditsPosted) violated(`account ${account.id} debits exceed credits`);
    }
  } else if (account.flags.creditsMustNotExceedDebits) {
    const exposure = account.creditsPending === 0n ? account.creditsPosted : account.creditsPosted + account.creditsPending;
    if (exposure > account.debitsPosted) violated(`account ${account.id} credits exceed debits`);
  }
}

function inRange(balance: bigint): boolean {
  return balance >= 0n && balance <= BALANCE_MINOR_MAX;
}

// Invariant checks on the hot path test the condition inline and build their message only on
// failure: a message closure per check would be allocated on every event.
function violated(message: string): never {
  throw new InvariantViolationError(message);
}

function assertNever(value: never): never {
  throw new Error(`unhandled event ${JSON.stringify(value)}`);
}
