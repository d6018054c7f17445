import { evolve } from './evolve.js';
import { BALANCE_MINOR_MAX } from './limits.js';
import { accountBytes, holdBytes } from './state-bytes.js';
import type { RejectionCode } from './rejections.js';
import { overlayState, type AccountState, type LedgerState, type LifecycleCommandRecord, type TransferKind, type TransferRecord } from './state.js';
import type {
  CloseAccountCommand,
  ExpirePendingCommand,
  FreezeAccountCommand,
  LedgerCommand,
  LedgerEvent,
  LifecycleCommand,
  LinkedCommand,
  Metadata,
  OpenAccountCommand,
  Posting,
  PostPendingCommand,
  ReverseTransferCommand,
  TransferCommand,
  TransferLikeCommand,
  UnfreezeAccountCommand,
  VoidPendingCommand,
} from './types.js';

/** What `decide` needs besides the command and the state. Time is an input, never read inside. */
export interface DecideContext {
  /** The recorded time of the command, epoch ms. */
  readonly nowMs: number;
  /** How far in the past `effectiveAtMs` may be, in ms. */
  readonly backdateWindowMs: number;
  /**
   * Most bytes the state's accounts and open holds may take as a snapshot stores them
   * (`LedgerState.stateBytes`): a new account or hold that would pass it is refused with
   * `ledger_full`. `undefined`: no bound (the writer always passes one).
   */
  readonly stateBytesMax?: number | undefined;
}

/** An event the decider wants appended, with its business (effective) time. */
export interface EventDraft {
  readonly event: LedgerEvent;
  readonly effectiveAtMs: number;
}

/** Where an earlier, identical command was recorded: the original outcome of a retry. */
export interface OriginalOutcome {
  readonly ledgerVersion: number;
  readonly recordedAtMs: number;
}

/** The command is accepted: append `events`, or nothing if it repeats `duplicateOf`. */
export interface Accepted {
  readonly ok: true;
  readonly events: readonly EventDraft[];
  /** Set when the command repeats one already recorded; `events` is then empty. */
  readonly duplicateOf: OriginalOutcome | undefined;
  /** Per-member decisions of a linked group. */
  readonly members: readonly Decision[] | undefined;
}

/** The command is rejected with a stable code; nothing is appended. */
export interface Rejected {
  readonly ok: false;
  readonly code: RejectionCode;
  readonly message: string;
  /** Per-member decisions of a linked group: the failing one and `linked_group_failed` for the rest. */
  readonly members: readonly Decision[] | undefined;
}

/** The outcome of deciding one command. */
export type Decision = Accepted | Rejected;

const reject = (code: RejectionCode, message: string): Rejected => ({ ok: false, code, message, members: undefined });
const accept = (events: readonly EventDraft[]): Accepted => ({ ok: true, events, duplicateOf: undefined, members: undefined });
const duplicate = (ledgerVersion: number, recordedAtMs: number): Accepted => ({
  ok: true,
  events: [],
  duplicateOf: { ledgerVersion, recordedAtMs },
  members: undefined,
});

/**
 * Decides a command against a ledger's state: the events to append, or a rejection with a code.
 * Pure and deterministic: it reads `state` and `context` only and never changes `state`.
 */
export function decide(command: LedgerCommand, state: LedgerState, context: DecideContext): Decision {
  switch (command.kind) {
    // The commonest command first: a plain transfer is decided after one comparison of its kind
    // rather than seven (six here, then `decideTransferLike`'s first).
    case 'transfer':
      return decideTransfer(command, state, context);
    case 'openAccount':
      return decideOpenAccount(command, state, context);
    case 'freezeAccount':
      return decideFreeze(command, state, context);
    case 'unfreezeAccount':
      return decideUnfreeze(command, state, context);
    case 'closeAccount':
      return decideClose(command, state, context);
    case 'linked':
      return decideLinked(command, state, context);
    case 'expirePending':
      return decideExpire(command, state, context);
    default:
      return decideTransferLike(command, state, context);
  }
}

function decideTransferLike(command: TransferLikeCommand, state: LedgerState, context: DecideContext): Decision {
  switch (command.kind) {
    case 'transfer':
      return decideTransfer(command, state, context);
    case 'postPending':
      return decidePostPending(command, state, context);
    case 'voidPending':
      return decideVoidPending(command, state, context);
    case 'reverseTransfer':
      return decideReverse(command, state, context);
  }
}

function decideOpenAccount(command: OpenAccountCommand, state: LedgerState, context: DecideContext): Decision {
  const existing = state.accounts.get(command.accountId);
  if (existing !== undefined) {
    const same =
      existing.currency === command.currency &&
      existing.type === command.type &&
      existing.flags.debitsMustNotExceedCredits === command.flags.debitsMustNotExceedCredits &&
      existing.flags.creditsMustNotExceedDebits === command.flags.creditsMustNotExceedDebits &&
      sameMetadata(existing.metadata, command.metadata);
    return same
      ? duplicate(existing.openedAtVersion, existing.openedAtMs)
      : reject('account_exists', `account ${command.accountId} already exists with different attributes`);
  }
  if (command.flags.debitsMustNotExceedCredits && command.flags.creditsMustNotExceedDebits) {
    // Both flags at once would pin the account at zero forever; refuse it as a limit that can never be met.
    return reject('limit_exceeded', 'an account cannot have both debitsMustNotExceedCredits and creditsMustNotExceedDebits');
  }
  const full = checkRoom(state, context, accountBytes(command.accountId, command.currency, command.metadata), `account ${command.accountId}`);
  if (full !== undefined) return full;
  return accept([
    {
      event: {
        type: 'AccountOpened',
        accountId: command.accountId,
        currency: command.currency,
        accountType: command.type,
        flags: command.flags,
        metadata: command.metadata,
      },
      effectiveAtMs: context.nowMs,
    },
  ]);
}

function decideFreeze(command: FreezeAccountCommand, state: LedgerState, context: DecideContext): Decision {
  const account = state.accounts.get(command.accountId);
  if (account === undefined) return reject('account_not_found', `account ${command.accountId} does not exist`);
  const retried = lifecycleRetry(account, command);
  if (retried !== undefined) return retried;
  if (account.status === 'closed') return reject('account_closed', `account ${command.accountId} is closed`);
  if (account.status === 'frozen') return reject('account_frozen', `account ${command.accountId} is already frozen`);
  return accept([
    {
      event: { type: 'AccountFrozen', accountId: command.accountId, reason: command.reason, ...withCommandId(command) },
      effectiveAtMs: context.nowMs,
    },
  ]);
}

function decideUnfreeze(command: UnfreezeAccountCommand, state: LedgerState, context: DecideContext): Decision {
  const account = state.accounts.get(command.accountId);
  if (account === undefined) return reject('account_not_found', `account ${command.accountId} does not exist`);
  const retried = lifecycleRetry(account, command);
  if (retried !== undefined) return retried;
  if (account.status === 'closed') return reject('account_closed', `account ${command.accountId} is closed`);
  if (account.status !== 'frozen') return reject('account_not_frozen', `account ${command.accountId} is not frozen`);
  return accept([{ event: { type: 'AccountUnfrozen', accountId: command.accountId, ...withCommandId(command) }, effectiveAtMs: context.nowMs }]);
}

function decideClose(command: CloseAccountCommand, state: LedgerState, context: DecideContext): Decision {
  const account = state.accounts.get(command.accountId);
  if (account === undefined) return reject('account_not_found', `account ${command.accountId} does not exist`);
  const retried = lifecycleRetry(account, command);
  if (retried !== undefined) return retried;
  if (account.status === 'closed') return reject('account_closed', `account ${command.accountId} is already closed`);
  if (account.debitsPosted !== account.creditsPosted || account.debitsPending !== 0n || account.creditsPending !== 0n) {
    return reject('account_not_empty', `account ${command.accountId} has a balance or pending amounts`);
  }
  return accept([{ event: { type: 'AccountClosed', accountId: command.accountId, ...withCommandId(command) }, effectiveAtMs: context.nowMs }]);
}

/**
 * The answer to a lifecycle command whose `commandId` the account remembers: a duplicate of the
 * recorded change if it was of the same kind, else `exists_with_different_kind`; `undefined` for a
 * command without an id or with one the account does not (or no longer) remember(s). Decided
 * before the status checks, as a transfer's retry is: the retry of a freeze finds the account frozen.
 */
function lifecycleRetry(account: AccountState, command: LifecycleCommand): Decision | undefined {
  const id = command.commandId;
  const recent = account.recentLifecycleCommands;
  if (id === undefined || recent === undefined) return undefined;
  // Newest first: an id forgotten and then used again names its latest use.
  for (let i = recent.length - 1; i >= 0; i -= 1) {
    const recorded = recent[i] as LifecycleCommandRecord;
    if (recorded.commandId !== id) continue;
    return recorded.kind === command.kind
      ? duplicate(recorded.ledgerVersion, recorded.recordedAtMs)
      : reject('exists_with_different_kind', `command id ${id} was already used for ${recorded.kind} of account ${account.id}`);
  }
  return undefined;
}

/** `{ commandId }` for a command that carries one, else nothing: an event without one keeps its old encoding. */
function withCommandId(command: LifecycleCommand): { readonly commandId?: string } {
  return command.commandId === undefined ? {} : { commandId: command.commandId };
}

/**
 * `ledger_full` when something that takes `bytes` of the state (an account or an open hold) would
 * take it past `context.stateBytesMax`. Only what grows the state is refused: transfers between
 * existing accounts, resolutions and lifecycle changes always pass.
 */
function checkRoom(state: LedgerState, context: DecideContext, bytes: number, what: string): Rejected | undefined {
  const max = context.stateBytesMax;
  const taken = state.stateBytes ?? 0;
  if (max === undefined || taken + bytes <= max) return undefined;
  return reject('ledger_full', `${what} (about ${bytes} bytes of state) would take the ledger's accounts and open holds past ${max} bytes, the writer's stateBytesMax (${taken} taken)`);
}

function decideTransfer(command: TransferCommand, state: LedgerState, context: DecideContext): Decision {
  const kind: TransferKind = command.pending === undefined ? 'transfer' : 'hold';
  const existing = state.transfers.get(command.transferId);
  if (existing !== undefined) return compareRetry(existing, command, kind, command.postings);

  const structural = checkPostingsShape(command.postings);
  if (structural !== undefined) return structural;
  const effective = checkEffective(command.effectiveAtMs, context, 0, 'now');
  if (typeof effective !== 'number') return effective;
  const applied = checkPostings(state, command.postings, command.pending === undefined ? 'posted' : 'pending', effective);
  if (applied !== undefined) return applied;
  if (command.pending !== undefined) {
    const full = checkRoom(state, context, holdBytes(command), `hold ${command.transferId}`);
    if (full !== undefined) return full;
  }

  const event: LedgerEvent =
    command.pending === undefined
      ? {
          type: 'TransferPosted',
          transferId: command.transferId,
          postings: command.postings,
          reference: command.reference,
          reversalOf: undefined,
          metadata: command.metadata,
        }
      : {
          type: 'TransferPending',
          transferId: command.transferId,
          postings: command.postings,
          timeoutMs: command.pending.timeoutMs,
          reference: command.reference,
          metadata: command.metadata,
        };
  return accept([{ event, effectiveAtMs: effective }]);
}

/** The currency of a partial post that names none: equal to no currency code. */
const NO_CURRENCY = '';

function decidePostPending(command: PostPendingCommand, state: LedgerState, context: DecideContext): Decision {
  const hold = state.transfers.get(command.pendingId);
  const existing = state.transfers.get(command.transferId);
  if (existing !== undefined) {
    const requested = command.amount ?? (hold === undefined ? undefined : fullAmountOf(hold));
    // A partial post names its currency: a retry in another one, or in none, is another request,
    // as a fresh post would be refused (currency_mismatch). A full post takes the hold's.
    const asked =
      requested === undefined
        ? undefined
        : (hold?.postings ?? existing.postings).map((p) => ({ ...p, amount: requested, currency: command.amount === undefined ? p.currency : (command.currency ?? NO_CURRENCY) }));
    return compareRetry(existing, command, 'postPending', asked);
  }
  const usable = checkHoldUsable(hold, command.pendingId, context);
  if (usable !== undefined) return usable;
  const held = hold as TransferRecord;
  const effective = checkEffective(command.effectiveAtMs, context, held.effectiveAtMs, `pending transfer ${held.id}`);
  if (typeof effective !== 'number') return effective;

  let postings = held.postings;
  if (command.amount !== undefined) {
    const full = fullAmountOf(held);
    if (full === undefined) return reject('partial_post_not_supported', `pending transfer ${held.id} has ${held.postings.length} postings`);
    const heldCurrency = (held.postings[0] as Posting).currency;
    if (command.currency !== heldCurrency) {
      return reject('currency_mismatch', `pending transfer ${held.id} is in ${heldCurrency}, amount is in ${command.currency ?? 'no currency'}`);
    }
    if (command.amount <= 0n) return reject('amount_not_positive', 'the amount to post must be greater than zero');
    if (command.amount > full) return reject('amount_exceeds_pending', `amount exceeds the ${full} minor units held by ${held.id}`);
    const amount = command.amount;
    postings = held.postings.map((posting) => ({ ...posting, amount }));
  }
  for (const posting of held.postings) {
    const account = state.accounts.get(posting.accountId);
    if (account === undefined) return reject('account_not_found', `account ${posting.accountId} does not exist`);
    if (account.status !== 'open') return reject(account.status === 'frozen' ? 'account_frozen' : 'account_closed', `account ${account.id} is ${account.status}`);
  }
  for (let i = 0; i < postings.length; i += 1) {
    const posting = postings[i] as Posting;
    const account = state.accounts.get(posting.accountId) as AccountState;
    const heldAmount = (held.postings[i] as Posting).amount;
    const debit = posting.side === 'debit';
    const limit = checkBalances(
      account,
      debit ? posting.amount : 0n,
      debit ? 0n : posting.amount,
      debit ? -heldAmount : 0n,
      debit ? 0n : -heldAmount,
    );
    if (limit !== undefined) return limit;
  }
  return accept([
    {
      event: { type: 'PendingPosted', transferId: command.transferId, pendingId: held.id, postings, metadata: command.metadata },
      effectiveAtMs: effective,
    },
  ]);
}

function decideVoidPending(command: VoidPendingCommand, state: LedgerState, context: DecideContext): Decision {
  const existing = state.transfers.get(command.transferId);
  if (existing !== undefined) return compareRetry(existing, command, 'voidPending', undefined);
  const hold = state.transfers.get(command.pendingId);
  const usable = checkHoldUsable(hold, command.pendingId, context);
  if (usable !== undefined) return usable;
  const held = hold as TransferRecord;
  const effective = checkEffective(command.effectiveAtMs, context, held.effectiveAtMs, `pending transfer ${held.id}`);
  if (typeof effective !== 'number') return effective;
  return accept([
    {
      event: { type: 'PendingVoided', transferId: command.transferId, pendingId: held.id, metadata: command.metadata },
      effectiveAtMs: effective,
    },
  ]);
}

function decideReverse(command: ReverseTransferCommand, state: LedgerState, context: DecideContext): Decision {
  const original = state.transfers.get(command.reversalOf);
  const existing = state.transfers.get(command.transferId);
  if (existing !== undefined) {
    return compareRetry(existing, command, 'reversal', original === undefined ? undefined : swapSides(original.postings));
  }
  if (original === undefined) return reject('transfer_not_found', `transfer ${command.reversalOf} does not exist`);
  if (original.kind !== 'transfer' && original.kind !== 'postPending') {
    return reject('transfer_not_reversible', `transfer ${original.id} is a ${original.kind} and cannot be reversed`);
  }
  if (original.reversedBy !== undefined) {
    return reject('transfer_already_reversed', `transfer ${original.id} was already reversed by ${original.reversedBy}`);
  }
  const effective = checkEffective(command.effectiveAtMs, context, original.effectiveAtMs, `transfer ${original.id}`);
  if (typeof effective !== 'number') return effective;
  const postings = swapSides(original.postings);
  const applied = checkPostings(state, postings, 'posted', effective);
  if (applied !== undefined) return applied;
  return accept([
    {
      event: {
        type: 'TransferPosted',
        transferId: command.transferId,
        postings,
        reference: command.reference,
        reversalOf: original.id,
        metadata: command.metadata,
      },
      effectiveAtMs: effective,
    },
  ]);
}

function decideExpire(command: ExpirePendingCommand, state: LedgerState, context: DecideContext): Decision {
  const hold = state.transfers.get(command.pendingId);
  if (hold === undefined || hold.kind !== 'hold') return reject('pending_not_found', `pending transfer ${command.pendingId} does not exist`);
  if (hold.resolution !== 'pending') return reject('pending_already_resolved', `pending transfer ${hold.id} is already ${hold.resolution ?? 'resolved'}`);
  if (hold.timeoutAtMs === undefined || hold.timeoutAtMs > context.nowMs) {
    return reject('pending_not_expired', `pending transfer ${hold.id} has not timed out`);
  }
  return accept([{ event: { type: 'PendingExpired', pendingId: hold.id }, effectiveAtMs: context.nowMs }]);
}

function decideLinked(command: LinkedCommand, state: LedgerState, context: DecideContext): Decision {
  const scratch = overlayState(state);
  const members: Decision[] = [];
  const events: EventDraft[] = [];
  let failedAt = -1;
  for (const member of command.commands) {
    const decision = decideTransferLike(member, scratch, context);
    members.push(decision);
    if (!decision.ok) {
      failedAt = members.length - 1;
      break;
    }
    for (const draft of decision.events) {
      evolve(scratch, draft.event, { ledgerVersion: scratch.version + 1, recordedAtMs: context.nowMs, effectiveAtMs: draft.effectiveAtMs });
      events.push(draft);
    }
  }
  if (failedAt < 0) {
    // A group whose every member repeats a recorded transfer is itself a retry: answer with the
    // original outcome (the latest member's), as a single command's retry does.
    const originals = members.map((member) => (member.ok ? member.duplicateOf : undefined));
    const repeated = originals.length > 0 && originals.every((original) => original !== undefined);
    const duplicateOf = repeated
      ? (originals as OriginalOutcome[]).reduce((latest, original) => (original.ledgerVersion > latest.ledgerVersion ? original : latest))
      : undefined;
    return { ok: true, events, duplicateOf, members };
  }
  const failed = members[failedAt] as Rejected;
  const outcome = command.commands.map((_, index): Decision =>
    index === failedAt ? failed : reject('linked_group_failed', `command ${failedAt} of the linked group was rejected: ${failed.code}`),
  );
  return { ok: false, code: failed.code, message: `linked command ${failedAt} rejected: ${failed.message}`, members: outcome };
}

function checkHoldUsable(hold: TransferRecord | undefined, pendingId: string, context: DecideContext): Rejected | undefined {
  if (hold === undefined || hold.kind !== 'hold') return reject('pending_not_found', `pending transfer ${pendingId} does not exist`);
  if (hold.resolution !== 'pending') return reject('pending_already_resolved', `pending transfer ${pendingId} is already ${hold.resolution ?? 'resolved'}`);
  if (hold.timeoutAtMs !== undefined && hold.timeoutAtMs <= context.nowMs) return reject('pending_expired', `pending transfer ${pendingId} has timed out`);
  return undefined;
}

function checkEffective(requestedMs: number | undefined, context: DecideContext, notBeforeMs: number, dependency: string): number | Rejected {
  const effective = requestedMs ?? context.nowMs;
  if (effective > context.nowMs) return reject('effective_at_in_future', 'effectiveAt is in the future');
  if (effective < context.nowMs - context.backdateWindowMs) {
    return reject('effective_at_outside_window', `effectiveAt is more than ${context.backdateWindowMs} ms in the past`);
  }
  if (effective < notBeforeMs) return reject('effective_at_before_dependency', `effectiveAt is before ${dependency}`);
  return effective;
}

function checkPostingsShape(postings: readonly Posting[]): Rejected | undefined {
  for (let i = 0; i < postings.length; i += 1) {
    const posting = postings[i] as Posting;
    if (posting.amount <= 0n) return reject('amount_not_positive', `posting on ${posting.accountId} has a non-positive amount`);
  }
  if (postings.length === 2) {
    const a = postings[0] as Posting;
    const b = postings[1] as Posting;
    if (a.accountId === b.accountId) return reject('accounts_must_be_different', `account ${a.accountId} appears twice`);
    if (a.side === b.side || a.currency !== b.currency || a.amount !== b.amount) {
      return reject('unbalanced_postings', 'debits and credits do not balance');
    }
    return undefined;
  }
  if (postings.length < 2) return reject('unbalanced_postings', 'a transfer needs at least two postings');
  const seen = new Set<string>();
  const net = new Map<string, bigint>();
  for (const posting of postings) {
    if (seen.has(posting.accountId)) return reject('accounts_must_be_different', `account ${posting.accountId} appears twice`);
    seen.add(posting.accountId);
    const delta = posting.side === 'debit' ? posting.amount : -posting.amount;
    net.set(posting.currency, (net.get(posting.currency) ?? 0n) + delta);
  }
  for (const [currency, sum] of net) {
    if (sum !== 0n) return reject('unbalanced_postings', `postings in ${currency} do not balance`);
  }
  return undefined;
}

/** Checks every posting's account and that applying it to `bucket` keeps every limit. */
function checkPostings(state: LedgerState, postings: readonly Posting[], bucket: 'posted' | 'pending', effectiveAtMs: number): Rejected | undefined {
  const accounts = state.accounts;
  for (let i = 0; i < postings.length; i += 1) {
    const posting = postings[i] as Posting;
    const account = accounts.get(posting.accountId);
    if (account === undefined) return reject('account_not_found', `account ${posting.accountId} does not exist`);
    if (account.currency !== posting.currency) {
      return reject('currency_mismatch', `account ${account.id} is in ${account.currency}, posting is in ${posting.currency}`);
    }
    if (account.status !== 'open') return reject(account.status === 'frozen' ? 'account_frozen' : 'account_closed', `account ${account.id} is ${account.status}`);
    if (effectiveAtMs < account.openedAtMs) return reject('effective_at_before_dependency', `effectiveAt is before account ${account.id} was opened`);
    const limit = checkIncrease(account, posting.side, bucket, posting.amount);
    if (limit !== undefined) return limit;
  }
  return undefined;
}

// Two amounts of at most half the largest balance cannot sum past it, so the exact (allocating)
// bigint sum is needed only when one of them is that large.
const BALANCE_HALF_MAX = BALANCE_MINOR_MAX / 2n;

/** Would adding `amount` to one balance keep the account within its flags and the balance range? */
function checkIncrease(account: AccountState, side: 'debit' | 'credit', bucket: 'posted' | 'pending', amount: bigint): Rejected | undefined {
  const debit = side === 'debit';
  const posted = debit ? account.debitsPosted : account.creditsPosted;
  const pending = debit ? account.debitsPending : account.creditsPending;
  const balance = bucket === 'posted' ? posted : pending;
  if ((balance > BALANCE_HALF_MAX || amount > BALANCE_HALF_MAX) && balance + amount > BALANCE_MINOR_MAX) {
    return reject('balance_overflow', `account ${account.id} would exceed the largest representable balance`);
  }
  if (debit ? !account.flags.debitsMustNotExceedCredits : !account.flags.creditsMustNotExceedDebits) return undefined;
  // Either bucket: this side's posted + pending after the increase against the other side's posted.
  const exposure = pending === 0n ? posted + amount : posted + pending + amount;
  if (exposure <= (debit ? account.creditsPosted : account.debitsPosted)) return undefined;
  return debit
    ? reject('insufficient_funds', `account ${account.id} has insufficient funds`)
    : reject('limit_exceeded', `account ${account.id} would exceed its credit limit`);
}

/** Would these balance deltas keep the account within its flags and the balance range? */
function checkBalances(account: AccountState, debitsPosted: bigint, creditsPosted: bigint, debitsPending: bigint, creditsPending: bigint): Rejected | undefined {
  const dPosted = account.debitsPosted + debitsPosted;
  const cPosted = account.creditsPosted + creditsPosted;
  const dPending = account.debitsPending + debitsPending;
  const cPending = account.creditsPending + creditsPending;
  if (dPosted > BALANCE_MINOR_MAX || cPosted > BALANCE_MINOR_MAX || dPending > BALANCE_MINOR_MAX || cPending > BALANCE_MINOR_MAX) {
    return reject('balance_overflow', `account ${account.id} would exceed the largest representable balance`);
  }
  if (account.flags.debitsMustNotExceedCredits && dPosted + dPending > cPosted) {
    return reject('insufficient_funds', `account ${account.id} has insufficient funds`);
  }
  if (account.flags.creditsMustNotExceedDebits && cPosted + cPending > dPosted) {
    return reject('limit_exceeded', `account ${account.id} would exceed its credit limit`);
  }
  return undefined;
}

/** Compares a retried command with the record its id already names. */
function compareRetry(
  existing: TransferRecord,
  command: TransferLikeCommand,
  kind: TransferKind,
  postings: readonly Posting[] | undefined,
): Decision {
  const id = command.transferId;
  if (existing.kind !== kind) return reject('exists_with_different_kind', `transfer ${id} exists as a ${existing.kind}`);
  // The transfer a retry resolves or reverses is compared before the postings, because the asked
  // postings are derived from it: naming another hold or original must not read as other accounts.
  if ((command.kind === 'postPending' || command.kind === 'voidPending') && command.pendingId !== existing.pendingId) {
    return reject('exists_with_different_pending_id', `transfer ${id} resolves ${existing.pendingId ?? 'another transfer'}`);
  }
  if (command.kind === 'reverseTransfer' && command.reversalOf !== existing.reversalOf) {
    return reject('exists_with_different_reversal_of', `transfer ${id} reverses ${existing.reversalOf ?? 'another transfer'}`);
  }
  if (postings !== undefined) {
    const different = comparePostings(existing.postings, postings);
    if (different !== undefined) return reject(different, `transfer ${id} exists with different postings`);
  }
  if (command.kind === 'transfer' && command.pending !== undefined && command.pending.timeoutMs !== existing.timeoutMs) {
    return reject('exists_with_different_timeout', `transfer ${id} exists with a different timeout`);
  }
  if ((command.kind === 'transfer' || command.kind === 'reverseTransfer') && command.reference !== existing.reference) {
    return reject('exists_with_different_reference', `transfer ${id} exists with a different reference`);
  }
  if (!sameMetadata(existing.metadata, command.metadata)) {
    return reject('exists_with_different_metadata', `transfer ${id} exists with different metadata`);
  }
  if (command.effectiveAtMs !== undefined && command.effectiveAtMs !== existing.effectiveAtMs) {
    return reject('exists_with_different_effective_at', `transfer ${id} exists with a different effectiveAt`);
  }
  return duplicate(existing.ledgerVersion, existing.recordedAtMs);
}

function comparePostings(recorded: readonly Posting[], asked: readonly Posting[]): RejectionCode | undefined {
  if (recorded.length !== asked.length) return 'exists_with_different_accounts';
  for (let i = 0; i < recorded.length; i += 1) {
    const a = recorded[i] as Posting;
    const b = asked[i] as Posting;
    if (a.accountId !== b.accountId || a.side !== b.side) return 'exists_with_different_accounts';
  }
  for (let i = 0; i < recorded.length; i += 1) {
    if ((recorded[i] as Posting).currency !== (asked[i] as Posting).currency) return 'exists_with_different_currency';
  }
  for (let i = 0; i < recorded.length; i += 1) {
    if ((recorded[i] as Posting).amount !== (asked[i] as Posting).amount) return 'exists_with_different_amount';
  }
  return undefined;
}

/** The single amount of a two-posting hold, or `undefined` for a multi-posting one. */
function fullAmountOf(hold: TransferRecord): bigint | undefined {
  return hold.postings.length === 2 ? (hold.postings[0] as Posting).amount : undefined;
}

function swapSides(postings: readonly Posting[]): Posting[] {
  return postings.map((posting) => ({ ...posting, side: posting.side === 'debit' ? 'credit' : 'debit' }));
}

function sameMetadata(a: Metadata, b: Metadata): boolean {
  const keysA = Object.keys(a);
  if (keysA.length !== Object.keys(b).length) return false;
  for (const key of keysA) if (a[key] !== b[key]) return false;
  return true;
}
