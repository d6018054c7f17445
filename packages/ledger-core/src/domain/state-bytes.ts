import type { AccountState, LifecycleCommandRecord, TransferRecord } from './state.js';
import type { Metadata, Posting } from './types.js';

/**
 * What a ledger's state takes as a snapshot stores it: an upper bound, in bytes of UTF-8 JSON, of
 * each account and each open hold as `serializeState` writes them. `evolve` keeps the sum in
 * `LedgerState.stateBytes`, and `decide` refuses to open an account or a hold that would take it
 * past the writer's bound (`ledger_full`), so a ledger's state never outgrows what one snapshot
 * can hold and what the writer keeps in memory grows with it, within a known bound.
 *
 * Fixed parts are bounded by their largest values (38-digit balances, 16-digit versions, 14-digit
 * times); text is counted exactly, escapes included, since metadata and references may hold any
 * characters. Ids are ASCII by their pattern, but counted the same way.
 */

/** An account's fields other than its id, currency and metadata, at their largest. */
export const ACCOUNT_FIXED_BYTES = 420;
/** One remembered lifecycle command other than its id, at its largest (the list's name included). */
export const LIFECYCLE_RECORD_FIXED_BYTES = 88;
/** A hold's fields other than its id, reference, metadata and postings, at their largest. */
export const HOLD_FIXED_BYTES = 240;
/** One posting of a hold other than its account id and currency, at its largest. */
export const HOLD_POSTING_FIXED_BYTES = 64;

// Characters JSON writes as themselves in one byte: printable ASCII other than the quote and the backslash.
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Bytes of `text` as a JSON string, quotes included. */
export function jsonStringBytes(text: string): number {
  return PLAIN_ASCII.test(text) ? text.length + 2 : Buffer.byteLength(JSON.stringify(text), 'utf8');
}

/** Bytes of a metadata object as JSON. */
export function metadataBytes(metadata: Metadata): number {
  for (const _key in metadata) return Buffer.byteLength(JSON.stringify(metadata), 'utf8');
  return 2;
}

/** An account as a snapshot stores it, without its remembered lifecycle commands (see {@link lifecycleRecordBytes}). */
export function accountBytes(accountId: string, currency: string, metadata: Metadata): number {
  return ACCOUNT_FIXED_BYTES + jsonStringBytes(accountId) + jsonStringBytes(currency) + metadataBytes(metadata);
}

/** One remembered lifecycle command as a snapshot stores it. */
export function lifecycleRecordBytes(record: Pick<LifecycleCommandRecord, 'commandId'>): number {
  return LIFECYCLE_RECORD_FIXED_BYTES + jsonStringBytes(record.commandId);
}

/** An open hold as a snapshot stores it (from its record, or from the command or event that makes it: the same fields). */
export function holdBytes(hold: { readonly postings: readonly Posting[]; readonly reference: string | undefined; readonly metadata: Metadata } & ({ readonly id: string } | { readonly transferId: string })): number {
  const id = 'id' in hold ? hold.id : hold.transferId;
  let bytes = HOLD_FIXED_BYTES + jsonStringBytes(id) + metadataBytes(hold.metadata);
  if (hold.reference !== undefined) bytes += jsonStringBytes(hold.reference);
  for (let i = 0; i < hold.postings.length; i += 1) {
    const posting = hold.postings[i] as Posting;
    bytes += HOLD_POSTING_FIXED_BYTES + jsonStringBytes(posting.accountId) + jsonStringBytes(posting.currency);
  }
  return bytes;
}

/** The sum over `accounts` (with their remembered commands) and the open holds among `transfers`. */
export function stateBytesOf(accounts: Iterable<AccountState>, transfers: Iterable<TransferRecord>): number {
  let bytes = 0;
  for (const account of accounts) {
    bytes += accountBytes(account.id, account.currency, account.metadata);
    for (const record of account.recentLifecycleCommands ?? []) bytes += lifecycleRecordBytes(record);
  }
  for (const transfer of transfers) {
    if (transfer.kind === 'hold' && transfer.resolution === 'pending') bytes += holdBytes(transfer);
  }
  return bytes;
}
