import { z } from 'zod';
import {
  ID_PATTERN,
  METADATA_BYTES_MAX,
  METADATA_KEY_LENGTH_MAX,
  METADATA_KEYS_MAX,
  METADATA_VALUE_LENGTH_MAX,
  POSTINGS_MAX,
  REASON_LENGTH_MAX,
  REFERENCE_LENGTH_MAX,
  HOLD_TIMEOUT_MS_MAX,
  ID_PATTERN_MESSAGE,
} from '../domain/limits.js';
import type { LedgerEventType } from '../domain/types.js';

/** An account, transfer, ledger or tenant id. */
export const idSchema = z.string().regex(ID_PATTERN, ID_PATTERN_MESSAGE);

/**
 * Whether a string can be stored as text by every store and read model as it is: no NUL (which
 * PostgreSQL text and jsonb refuse) and no unpaired UTF-16 surrogate (which has no UTF-8 form, so
 * a driver would write U+FFFD instead and the event would no longer match its hash).
 */
export function isStorableText(value: string): boolean {
  return !value.includes('\u0000') && (value as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** Why {@link isStorableText} said no. */
export const STORABLE_TEXT_MESSAGE = 'must not contain a NUL character or an unpaired UTF-16 surrogate';

/** Bounded string-to-string metadata. */
export const metadataSchema = z
  .record(z.string().min(1).max(METADATA_KEY_LENGTH_MAX), z.string().max(METADATA_VALUE_LENGTH_MAX))
  .refine((value) => Object.keys(value).length <= METADATA_KEYS_MAX, `at most ${METADATA_KEYS_MAX} metadata entries`)
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= METADATA_BYTES_MAX, `metadata must encode to at most ${METADATA_BYTES_MAX} bytes`);

// Patterns and lengths of the stored shapes, shared with the decoder's hand checks
// (fast-checks.ts), which must never be looser than these schemas.
export const DECIMAL_STRING_PATTERN = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;
export const DECIMAL_STRING_LENGTH_MAX = 64;
export const CURRENCY_CODE_PATTERN = /^[A-Z][A-Z0-9_]{1,11}$/;
export const ISO_UTC_MS_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const HEX_64_PATTERN = /^[0-9a-f]{64}$/;
export const EVENT_ID_LENGTH_MAX = 64;
export const EVENT_TYPE_LENGTH_MAX = 64;
export const CORRELATION_ID_LENGTH_MAX = 128;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

/** The number written by the two ASCII digits of `value` at `at`. */
function twoDigits(value: string, at: number): number {
  return (value.charCodeAt(at) - 48) * 10 + value.charCodeAt(at + 1) - 48;
}

/**
 * Whether `value` is a time as the writer stores it (`toISOString()` of years 0000-9999: the
 * shape {@link ISO_UTC_MS_PATTERN}) and names a real instant: month 01-12, a day its month has (29
 * February in leap years only), hour 00-23, minute and second 00-59. `Date.parse` takes
 * `2025-02-30` or hour 24 and rolls them into another day, so an event would be read as of a day
 * its text does not say. Read from the digits (a few tens of nanoseconds): it runs twice on every
 * event decoded.
 */
export function isIsoUtcMsTime(value: string): boolean {
  if (!ISO_UTC_MS_PATTERN.test(value)) return false;
  const year = twoDigits(value, 0) * 100 + twoDigits(value, 2);
  const month = twoDigits(value, 5);
  const day = twoDigits(value, 8);
  if (month < 1 || month > 12 || day < 1 || twoDigits(value, 11) > 23 || twoDigits(value, 14) > 59 || twoDigits(value, 17) > 59) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] as number));
}

/** A plain decimal string (the scale is checked against the currency by the codec). */
export const decimalStringSchema = z.string().max(DECIMAL_STRING_LENGTH_MAX).regex(DECIMAL_STRING_PATTERN, 'must be a plain decimal string');

/** Currency code. */
export const currencyCodeSchema = z.string().regex(CURRENCY_CODE_PATTERN, 'must be a currency code');

const wirePosting = z.strictObject({
  accountId: idSchema,
  side: z.enum(['debit', 'credit']),
  amount: decimalStringSchema,
  currency: currencyCodeSchema,
});
const wirePostings = z.array(wirePosting).min(1).max(POSTINGS_MAX);
const flags = z.strictObject({ debitsMustNotExceedCredits: z.boolean(), creditsMustNotExceedDebits: z.boolean() });

/** Wire (stored) shape of each event type's data at its current schema version. */
export const eventDataSchemas = {
  AccountOpened: z.strictObject({
    accountId: idSchema,
    currency: currencyCodeSchema,
    accountType: z.enum(['asset', 'liability', 'equity', 'income', 'expense']),
    flags,
    metadata: metadataSchema,
  }),
  // `commandId` was added without a schema version: it is optional, absent from events written
  // before it (and from those of commands without one), which keep their bytes and hashes.
  AccountFrozen: z.strictObject({ accountId: idSchema, reason: z.string().max(REASON_LENGTH_MAX).optional(), commandId: idSchema.optional() }),
  AccountUnfrozen: z.strictObject({ accountId: idSchema, commandId: idSchema.optional() }),
  AccountClosed: z.strictObject({ accountId: idSchema, commandId: idSchema.optional() }),
  TransferPosted: z.strictObject({
    transferId: idSchema,
    postings: wirePostings,
    reference: z.string().max(REFERENCE_LENGTH_MAX).optional(),
    reversalOf: idSchema.optional(),
    metadata: metadataSchema,
  }),
  TransferPending: z.strictObject({
    transferId: idSchema,
    postings: wirePostings,
    timeoutMs: z.int().positive().max(HOLD_TIMEOUT_MS_MAX).optional(),
    reference: z.string().max(REFERENCE_LENGTH_MAX).optional(),
    metadata: metadataSchema,
  }),
  PendingPosted: z.strictObject({ transferId: idSchema, pendingId: idSchema, postings: wirePostings, metadata: metadataSchema }),
  PendingVoided: z.strictObject({ transferId: idSchema, pendingId: idSchema, metadata: metadataSchema }),
  PendingExpired: z.strictObject({ pendingId: idSchema }),
} as const satisfies Record<LedgerEventType, z.ZodType>;

/** Wire data of one event type. */
export type WireEventData<T extends LedgerEventType> = z.infer<(typeof eventDataSchemas)[T]>;

/** The schema version every event type is written at. */
export const CURRENT_SCHEMA_VERSIONS: Readonly<Record<LedgerEventType, number>> = {
  AccountOpened: 1,
  AccountFrozen: 1,
  AccountUnfrozen: 1,
  AccountClosed: 1,
  // v1 was the single debit/credit shape of the first design draft; see upcasters.ts.
  TransferPosted: 2,
  TransferPending: 1,
  PendingPosted: 1,
  PendingVoided: 1,
  PendingExpired: 1,
};

const isoTime = z.string().regex(ISO_UTC_MS_PATTERN, 'must be ISO-8601 UTC with milliseconds').refine(isIsoUtcMsTime, 'must be a real date');
const hex64 = z.string().regex(HEX_64_PATTERN, 'must be 64 lowercase hex digits');

/** The stored envelope: validated on every read before the data is decoded. */
export const storedEventSchema = z.strictObject({
  eventId: z.string().min(1).max(EVENT_ID_LENGTH_MAX),
  tenantId: idSchema,
  ledgerId: idSchema,
  ledgerVersion: z.int().positive(),
  type: z.string().min(1).max(EVENT_TYPE_LENGTH_MAX),
  schemaVersion: z.int().positive(),
  data: z.record(z.string(), z.unknown()),
  recordedAt: isoTime,
  effectiveAt: isoTime,
  correlationId: z.string().max(CORRELATION_ID_LENGTH_MAX).nullable(),
  causationId: z.string().max(CORRELATION_ID_LENGTH_MAX).nullable(),
  metadata: metadataSchema,
  previousHash: hex64,
  hash: hex64,
});
