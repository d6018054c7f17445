import type { AccountType, EventMeta, LedgerEvent, Side } from '@ledgerkit/ledger-core';

/** A decoded event of one ledger, as the read models fold it. */
export interface LedgerEventOf {
  readonly ledgerId: string;
  readonly event: LedgerEvent;
  readonly meta: EventMeta;
}

/** A held posting, kept until its hold is resolved: amounts in minor units, as a decimal string in JSON. */
export interface HeldPosting {
  readonly accountId: string;
  readonly side: Side;
  readonly amountMinor: string;
  readonly currency: string;
}

/** The four balances of an account, minor units. */
export interface Totals {
  debitsPosted: bigint;
  creditsPosted: bigint;
  debitsPending: bigint;
  creditsPending: bigint;
}

/** An account's fixed attributes, as the read models store them. */
export interface AccountAttributes {
  readonly currency: string;
  readonly accountType: AccountType;
  readonly debitsMustNotExceedCredits: boolean;
  readonly creditsMustNotExceedDebits: boolean;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Adds a signed amount to one of the four balances. */
export function addTo(totals: Totals, side: Side, bucket: 'posted' | 'pending', amount: bigint): void {
  if (bucket === 'posted') {
    if (side === 'debit') totals.debitsPosted += amount;
    else totals.creditsPosted += amount;
  } else if (side === 'debit') totals.debitsPending += amount;
  else totals.creditsPending += amount;
}

/** `(ledger, id)` as one map key; ids cannot hold a NUL. */
export function keyOf(ledgerId: string, id: string): string {
  return `${ledgerId}\u0000${id}`;
}

/** The two halves of a {@link keyOf} key, as parallel arrays for an `unnest($1::text[], $2::text[])`. */
export function splitKeys(keys: Iterable<string>): [string[], string[]] {
  const ledgers: string[] = [];
  const ids: string[] = [];
  for (const key of keys) {
    const cut = key.indexOf('\u0000');
    ledgers.push(key.slice(0, cut));
    ids.push(key.slice(cut + 1));
  }
  return [ledgers, ids];
}

/** An error a projection raises when the events contradict its rows (a missing account or hold). */
export function inconsistent(message: string): never {
  throw new Error(`read model inconsistent with the event: ${message}`);
}

/**
 * A write that lost a race with another writer of the same rows (the inline hook against the
 * runner). SQLSTATE 40001 makes the runner roll back and retry the batch.
 */
export function concurrentUpdate(message: string): Error {
  return Object.assign(new Error(message), { code: '40001' });
}

/** Epoch ms as the ISO-8601 string the events carry. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;

/**
 * A string as one element of a PostgreSQL array literal: quoted (so `NULL` stays a string), its
 * quotes and backslashes escaped. For a caller that builds a literal from elements it made once
 * and reuses (see {@link arrayLiteralOf}).
 */
export function arrayElement(value: string): string {
  return NEEDS_ESCAPE.test(value) ? `"${value.replace(ESCAPED, '\\$&')}"` : `"${value}"`;
}

/** A PostgreSQL array literal of elements already in literal form ({@link arrayElement}, numbers, `NULL`). */
export function arrayLiteralOf(elements: readonly string[]): string {
  return `{${elements.join(',')}}`;
}

/**
 * A PostgreSQL array literal (`{"a","b",NULL,3}`) for one `unnest($n::type[])` parameter: built in
 * one pass, it spares node-postgres its per-element escaping of a JavaScript array, which is most
 * of a large batch's serialisation cost. Strings are quoted (so `NULL` stays a string) and their
 * quotes and backslashes escaped; numbers and bigints are written as they are.
 */
export function arrayLiteral(values: readonly (string | number | bigint | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i];
    if (value === null || value === undefined) parts[i] = 'NULL';
    else if (typeof value === 'string') parts[i] = arrayElement(value);
    else parts[i] = String(value);
  }
  return `{${parts.join(',')}}`;
}
