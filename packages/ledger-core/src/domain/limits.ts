/**
 * Limits on everything a caller can send. Each is checked when untrusted input is parsed, before
 * anything is decided or written; the decider asserts the structural ones again.
 */

/** Longest id (account, transfer, command, ledger, tenant). */
export const ID_LENGTH_MAX = 128;
/** Ids are printable, URL-safe and never empty. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** What {@link ID_PATTERN} asks, in words, for errors. */
export const ID_PATTERN_MESSAGE = 'must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit';
/** Most postings in one transfer. */
export const POSTINGS_MAX = 32;
/** Most commands in one linked group. */
export const LINKED_COMMANDS_MAX = 64;
/** Most metadata entries on one account, transfer or event envelope. */
export const METADATA_KEYS_MAX = 16;
/** Longest metadata key. */
export const METADATA_KEY_LENGTH_MAX = 64;
/** Longest metadata value. */
export const METADATA_VALUE_LENGTH_MAX = 512;
/** Most bytes of a metadata object encoded as JSON. */
export const METADATA_BYTES_MAX = 4_096;
/** Longest transfer reference. */
export const REFERENCE_LENGTH_MAX = 256;
/** Longest freeze reason. */
export const REASON_LENGTH_MAX = 256;
/**
 * Most lifecycle command ids (freeze, unfreeze, close) an account remembers, counted in command
 * ids. A lifecycle command carrying a `commandId` that is among its account's last this many
 * recorded ones, with the same kind, is answered as a duplicate of the original; an older one is
 * decided afresh, by the account's status. Changes made without a command id take no place in it.
 */
export const LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX = 16;
/** Longest hold timeout: one year. */
export const HOLD_TIMEOUT_MS_MAX = 366 * 24 * 60 * 60 * 1000;
/** Largest balance, in minor units, that any of an account's four balances may reach. */
export const BALANCE_MINOR_MAX = 10n ** 38n - 1n;
/** Default back-dating window for effectiveAt: 31 days. */
export const BACKDATE_WINDOW_MS_DEFAULT = 31 * 24 * 60 * 60 * 1000;
