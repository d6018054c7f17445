import { InvalidInputError } from '@ledgerkit/ledger-core';

/** A global-log position: the writing transaction's id, then the row's sequence number. */
export interface Cursor {
  /** `xid8` as a decimal string. */
  readonly txid: string;
  /** `bigint` as a decimal string. */
  readonly position: string;
}

const TXID_DIGITS = 20;
const POSITION_DIGITS = 19;
const CURSOR_PATTERN = /^(\d{20})-(\d{19})$/;

/** The cursor before every event. */
export const CURSOR_START: Cursor = { txid: '0', position: '0' };

/** Fixed-width digits, so comparing two encoded cursors as strings compares them as (txid, position). */
export function encodeCursor(cursor: Cursor): string {
  return `${cursor.txid.padStart(TXID_DIGITS, '0')}-${cursor.position.padStart(POSITION_DIGITS, '0')}`;
}

/** One past the largest `xid8` (unsigned 64-bit). */
const TXID_END = 2n ** 64n;
/** One past the largest `bigint` (signed 64-bit). */
const POSITION_END = 2n ** 63n;

/**
 * Parses a cursor made by {@link encodeCursor}; throws `InvalidInputError` for anything else,
 * including a text of the right shape whose transaction id (at most 2⁶⁴ − 1) or position (at
 * most 2⁶³ − 1) no row can have, which the database would refuse or misread.
 */
export function decodeCursor(encoded: string): Cursor {
  const match = typeof encoded === 'string' ? CURSOR_PATTERN.exec(encoded) : null;
  if (match === null) throw new InvalidInputError([{ path: ['after'], message: 'not a position returned by this store' }]);
  const txid = BigInt(match[1] as string);
  const position = BigInt(match[2] as string);
  if (txid >= TXID_END || position >= POSITION_END) throw new InvalidInputError([{ path: ['after'], message: 'not a position returned by this store: out of range' }]);
  return { txid: txid.toString(), position: position.toString() };
}
