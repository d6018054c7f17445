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

/** Parses a cursor made by {@link encodeCursor}; throws `InvalidInputError` for anything else. */
export function decodeCursor(encoded: string): Cursor {
  const match = CURSOR_PATTERN.exec(encoded);
  if (match === null) throw new InvalidInputError([{ path: ['after'], message: 'not a position returned by this store' }]);
  return { txid: BigInt(match[1] as string).toString(), position: BigInt(match[2] as string).toString() };
}
