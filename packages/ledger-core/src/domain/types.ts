/**
 * The ledger's domain vocabulary: accounts, postings, commands and events, in their internal,
 * already-validated form (amounts are exact bigint minor units). Untrusted input is turned into
 * these by `parseCommand`; stored events by the event codec.
 */

/** Account type; it fixes the account's normal balance side. */
export type AccountType = 'asset' | 'liability' | 'equity' | 'income' | 'expense';

/** Which side of the books increases an account of the given type. */
export function normalSideOf(type: AccountType): Side {
  return type === 'asset' || type === 'expense' ? 'debit' : 'credit';
}

/** Debit or credit. */
export type Side = 'debit' | 'credit';

/** Balance constraints of an account, checked on every transfer that touches it. */
export interface AccountFlags {
  /** Debits (posted + pending) may never exceed posted credits: a customer deposit account. */
  readonly debitsMustNotExceedCredits: boolean;
  /** Credits (posted + pending) may never exceed posted debits: a loan or credit-limit account. */
  readonly creditsMustNotExceedDebits: boolean;
}

/** Bounded string-to-string metadata (see `METADATA_*` limits). */
export type Metadata = Readonly<Record<string, string>>;

/** One leg of a transfer: an account, a side and a positive amount in that account's currency. */
export interface Posting {
  readonly accountId: string;
  readonly side: Side;
  /** Positive amount in minor units of `currency`. */
  readonly amount: bigint;
  readonly currency: string;
}

/** Open a new account. */
export interface OpenAccountCommand {
  readonly kind: 'openAccount';
  readonly accountId: string;
  readonly currency: string;
  readonly type: AccountType;
  readonly flags: AccountFlags;
  readonly metadata: Metadata;
}

/**
 * Freeze an account: no new transfers or holds touch it until it is unfrozen.
 *
 * With a `commandId`, a retry is answered as a duplicate of the original (see
 * {@link LifecycleCommandIdentity}); without one, freezing a frozen account is `account_frozen`.
 */
export interface FreezeAccountCommand extends LifecycleCommandIdentity {
  readonly kind: 'freezeAccount';
  readonly accountId: string;
  readonly reason: string | undefined;
}

/**
 * Unfreeze a frozen account.
 *
 * With a `commandId`, a retry is answered as a duplicate of the original (see
 * {@link LifecycleCommandIdentity}); without one, unfreezing an open account is `account_not_frozen`.
 */
export interface UnfreezeAccountCommand extends LifecycleCommandIdentity {
  readonly kind: 'unfreezeAccount';
  readonly accountId: string;
}

/**
 * Close an account for good; allowed only at zero balance with nothing pending.
 *
 * With a `commandId`, a retry is answered as a duplicate of the original (see
 * {@link LifecycleCommandIdentity}); without one, closing a closed account is `account_closed`.
 */
export interface CloseAccountCommand extends LifecycleCommandIdentity {
  readonly kind: 'closeAccount';
  readonly accountId: string;
}

/** The kind of an account lifecycle command: one that changes an account's status. */
export type LifecycleCommandKind = 'freezeAccount' | 'unfreezeAccount' | 'closeAccount';

/** A command that changes an account's status. */
export type LifecycleCommand = FreezeAccountCommand | UnfreezeAccountCommand | CloseAccountCommand;

/**
 * The optional idempotency key of an account lifecycle command (freeze, unfreeze, close).
 *
 * A lifecycle command is not idempotent by itself: freezing a frozen account is refused. A caller
 * that may send the same command twice (a retry after a timeout, or after an error that leaves
 * the outcome unknown) gives it a caller-chosen `commandId`, an id under the rules of a transfer
 * id ({@link ID_PATTERN}, at most {@link ID_LENGTH_MAX} characters). The accepted command records
 * it in its event, and the account remembers the ids of its last
 * {@link LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX} such changes (`AccountState.recentLifecycleCommands`).
 * A command whose id is among them is then decided before any status check:
 *
 * - with the same kind, it is a retry: accepted, no events, `duplicateOf` the original's ledger
 *   version and recorded time (the writer answers `duplicate: true`), whatever the status is now;
 * - with another kind (an id used for a freeze, then for a close), it is rejected
 *   `exists_with_different_kind`.
 *
 * Ids are scoped to their account (the same id may name one change on each of two accounts), and
 * a retry's other fields (a freeze's `reason`) are not compared: the original stands. An id older
 * than the account's last {@link LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX} is forgotten, and a command
 * naming it is decided as a new one. Without a `commandId` a command behaves as it always has.
 */
export interface LifecycleCommandIdentity {
  /** Caller-chosen id of this change; its idempotency key within the account. Optional. */
  readonly commandId?: string | undefined;
}

/** Move money now (`pending` absent) or place a hold (`pending` present). */
export interface TransferCommand {
  readonly kind: 'transfer';
  /** Caller-chosen id; it is the idempotency key. */
  readonly transferId: string;
  /** Two or more postings that balance per currency. */
  readonly postings: readonly Posting[];
  /** Present for a hold: funds are reserved until posted, voided or expired. */
  readonly pending: { readonly timeoutMs: number | undefined } | undefined;
  /** Business time, epoch milliseconds; defaults to the recorded time. Never in the future. */
  readonly effectiveAtMs: number | undefined;
  readonly reference: string | undefined;
  readonly metadata: Metadata;
}

/** Post a pending hold, fully or (for a two-posting hold) partially. */
export interface PostPendingCommand {
  readonly kind: 'postPending';
  readonly transferId: string;
  readonly pendingId: string;
  /** Amount to post in minor units of `currency`; defaults to the full held amount. */
  readonly amount: bigint | undefined;
  /** Currency of `amount`; must be the hold's. Ignored when `amount` is absent. */
  readonly currency: string | undefined;
  readonly effectiveAtMs: number | undefined;
  readonly metadata: Metadata;
}

/** Release a pending hold without moving money. */
export interface VoidPendingCommand {
  readonly kind: 'voidPending';
  readonly transferId: string;
  readonly pendingId: string;
  readonly effectiveAtMs: number | undefined;
  readonly metadata: Metadata;
}

/** Reverse a posted transfer with a new transfer that swaps every posting's side. */
export interface ReverseTransferCommand {
  readonly kind: 'reverseTransfer';
  readonly transferId: string;
  readonly reversalOf: string;
  readonly effectiveAtMs: number | undefined;
  readonly reference: string | undefined;
  readonly metadata: Metadata;
}

/** A command that creates a transfer record and may join a linked group. */
export type TransferLikeCommand = TransferCommand | PostPendingCommand | VoidPendingCommand | ReverseTransferCommand;

/** Transfers that apply all together or not at all. */
export interface LinkedCommand {
  readonly kind: 'linked';
  readonly commands: readonly TransferLikeCommand[];
}

/** Expire a hold whose timeout has passed. Issued by the writer, not by callers. */
export interface ExpirePendingCommand {
  readonly kind: 'expirePending';
  readonly pendingId: string;
}

/** Every command the decider accepts. */
export type LedgerCommand =
  | OpenAccountCommand
  | FreezeAccountCommand
  | UnfreezeAccountCommand
  | CloseAccountCommand
  | TransferLikeCommand
  | LinkedCommand
  | ExpirePendingCommand;

/** An account was opened. */
export interface AccountOpened {
  readonly type: 'AccountOpened';
  readonly accountId: string;
  readonly currency: string;
  readonly accountType: AccountType;
  readonly flags: AccountFlags;
  readonly metadata: Metadata;
}
/** An account was frozen. */
export interface AccountFrozen {
  readonly type: 'AccountFrozen';
  readonly accountId: string;
  readonly reason: string | undefined;
  /** The `commandId` of the freeze command, when it carried one (see {@link LifecycleCommandIdentity}). */
  readonly commandId?: string | undefined;
}
/** A frozen account was unfrozen. */
export interface AccountUnfrozen {
  readonly type: 'AccountUnfrozen';
  readonly accountId: string;
  /** The `commandId` of the unfreeze command, when it carried one (see {@link LifecycleCommandIdentity}). */
  readonly commandId?: string | undefined;
}
/** An account was closed. */
export interface AccountClosed {
  readonly type: 'AccountClosed';
  readonly accountId: string;
  /** The `commandId` of the close command, when it carried one (see {@link LifecycleCommandIdentity}). */
  readonly commandId?: string | undefined;
}
/** Money moved: postings applied to posted balances. `reversalOf` names the transfer it reverses. */
export interface TransferPosted {
  readonly type: 'TransferPosted';
  readonly transferId: string;
  readonly postings: readonly Posting[];
  readonly reference: string | undefined;
  readonly reversalOf: string | undefined;
  readonly metadata: Metadata;
}
/** A hold was placed: postings applied to pending balances. */
export interface TransferPending {
  readonly type: 'TransferPending';
  readonly transferId: string;
  readonly postings: readonly Posting[];
  /** Hold timeout from the event's recorded time; `undefined` holds until posted or voided. */
  readonly timeoutMs: number | undefined;
  readonly reference: string | undefined;
  readonly metadata: Metadata;
}
/** A hold was posted: its pending postings released, `postings` (≤ held) applied to posted balances. */
export interface PendingPosted {
  readonly type: 'PendingPosted';
  readonly transferId: string;
  readonly pendingId: string;
  readonly postings: readonly Posting[];
  readonly metadata: Metadata;
}
/** A hold was voided: its pending postings released. */
export interface PendingVoided {
  readonly type: 'PendingVoided';
  readonly transferId: string;
  readonly pendingId: string;
  readonly metadata: Metadata;
}
/** A hold timed out: its pending postings released. */
export interface PendingExpired {
  readonly type: 'PendingExpired';
  readonly pendingId: string;
}

/** Every event of a ledger stream. */
export type LedgerEvent =
  | AccountOpened
  | AccountFrozen
  | AccountUnfrozen
  | AccountClosed
  | TransferPosted
  | TransferPending
  | PendingPosted
  | PendingVoided
  | PendingExpired;

/** The name of an event type. */
export type LedgerEventType = LedgerEvent['type'];
