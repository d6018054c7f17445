/**
 * The catalogue of rejection codes. A rejected command returns one of these, with a message;
 * codes are stable and never reused for another meaning, so callers may switch on them and an
 * HTTP layer may map each to its own problem type.
 */
export const REJECTION_CODES = {
  account_not_found: 'An account named by the command does not exist in this ledger.',
  account_exists: 'An account with this id already exists with different currency, type, flags or metadata.',
  account_frozen: 'An account named by the command is frozen.',
  account_not_frozen: 'Unfreeze was asked of an account that is not frozen.',
  account_closed: 'An account named by the command is closed.',
  account_not_empty: 'Close was asked of an account with a non-zero posted balance or pending amounts.',
  currency_mismatch: "A posting's currency differs from its account's currency, or a partial amount's from its hold's.",
  amount_not_positive: 'A posting or partial amount is zero or negative (only reachable by commands built without parseCommand).',
  unbalanced_postings: 'Debits and credits of the transfer do not balance in every currency.',
  accounts_must_be_different: 'The same account appears in more than one posting of a transfer.',
  insufficient_funds: 'An account flagged debitsMustNotExceedCredits would have debits above its credits.',
  limit_exceeded: 'An account flagged creditsMustNotExceedDebits would have credits above its debits, or one was to be opened with both balance flags (only reachable by commands built without parseCommand).',
  balance_overflow: 'A balance would exceed the largest balance the ledger represents.',
  pending_not_found: 'The pending transfer to post, void or expire does not exist.',
  pending_already_resolved: 'The pending transfer was already posted, voided or expired.',
  pending_expired: 'The pending transfer timed out before it could be posted or voided.',
  pending_not_expired: 'Expiry was asked of a pending transfer whose timeout has not passed.',
  amount_exceeds_pending: 'The amount to post is greater than the amount held.',
  partial_post_not_supported: 'A partial amount was given for a hold that does not have exactly two postings.',
  transfer_not_found: 'The transfer to reverse does not exist.',
  transfer_not_reversible: 'Only posted transfers (not holds, voids or reversals) can be reversed.',
  transfer_already_reversed: 'The transfer was already reversed.',
  effective_at_in_future: 'effectiveAt is later than the recorded time.',
  effective_at_outside_window: 'effectiveAt is further in the past than the configured back-dating window.',
  effective_at_before_dependency: 'effectiveAt is earlier than an account it touches was opened, or than the transfer it resolves or reverses.',
  linked_group_failed: 'Another command of the same linked group was rejected, so none was applied.',
  ledger_full:
    "An account or hold to be opened would take the ledger's state (its accounts and open holds, as a snapshot stores them) past the writer's stateBytesMax; transfers between existing accounts still pass.",
  exists_with_different_kind: 'The id was already used for a different kind of command.',
  exists_with_different_accounts: 'The transfer id was already used with different accounts or sides.',
  exists_with_different_amount: 'The transfer id was already used with a different amount.',
  exists_with_different_currency: 'The transfer id was already used with a different currency.',
  exists_with_different_timeout: 'The transfer id was already used for a hold with a different timeout.',
  exists_with_different_pending_id: 'The transfer id was already used to resolve a different pending transfer.',
  exists_with_different_reversal_of: 'The transfer id was already used to reverse a different transfer.',
  exists_with_different_reference: 'The transfer id was already used with a different reference.',
  exists_with_different_metadata: 'The transfer id was already used with different metadata.',
  exists_with_different_effective_at: 'The transfer id was already used with a different effectiveAt.',
} as const;

/** A stable rejection code; see {@link REJECTION_CODES} for each one's meaning. */
export type RejectionCode = keyof typeof REJECTION_CODES;
