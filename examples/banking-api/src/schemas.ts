/**
 * Every request and response shape of the API as zod schemas. The same objects validate
 * requests (and, in tests, responses) and generate the OpenAPI document's components, so the
 * document cannot drift from what the server does. Request bodies build on ledger-core's own
 * input schemas (`inputSchemas`); the ledger still re-validates every command it receives.
 */
import {
  AMOUNT_DIGITS_MAX,
  AMOUNT_STRING_LENGTH_MAX,
  CURRENCY_SCALE_MAX,
  HISTORY_PAGE_SIZE_MAX,
  ID_PATTERN,
  inputSchemas,
  LINKED_COMMANDS_MAX,
  METADATA_BYTES_MAX,
  METADATA_KEY_LENGTH_MAX,
  METADATA_KEYS_MAX,
  METADATA_VALUE_LENGTH_MAX,
  REFERENCE_LENGTH_MAX,
} from '@ledgerkit/ledger-core';
import { z } from 'zod';

/** Components of request shapes (rendered with their input types). */
export const requestComponents = z.registry<{ id: string }>();
/** Components of response shapes (rendered with their output types). */
export const responseComponents = z.registry<{ id: string }>();

/** Most accounts one page of `GET /accounts` returns. */
export const ACCOUNT_PAGE_SIZE_MAX = 500;
/** Most statement entries one page returns (ledger-core's history page limit). */
export const STATEMENT_PAGE_SIZE_MAX = HISTORY_PAGE_SIZE_MAX;

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/** An account, transfer or ledger id, as ledger-core accepts it. */
export const idSchema = z
  .string()
  .regex(ID_PATTERN)
  .meta({ description: '1-128 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit.', example: 'acc-alice' });

/**
 * A positive decimal amount as a string; its decimals may not exceed the currency's minor units,
 * and in minor units it has at most {@link AMOUNT_DIGITS_MAX} digits (the ledger refuses more). The
 * pattern bounds what no currency accepts (more than 36 digits before the point, more than
 * {@link CURRENCY_SCALE_MAX} after it), so the document is never looser than the server; the
 * bound that depends on the currency is in the description.
 */
export const amountSchema = z
  .string()
  .max(AMOUNT_STRING_LENGTH_MAX)
  .regex(new RegExp(`^(0|[1-9][0-9]{0,${AMOUNT_DIGITS_MAX - 1}})(\\.[0-9]{1,${CURRENCY_SCALE_MAX}})?$`))
  .meta({
    description: `Decimal string, never a JSON number; at most the currency's minor-unit digits after the point (EUR: 2), and at most ${AMOUNT_DIGITS_MAX} digits in minor units: the digits before the point plus the currency's minor-unit digits (EUR: at most ${AMOUNT_DIGITS_MAX - 2} before the point). A longer amount answers 400.`,
    example: '125.50',
  });

/**
 * Request metadata: ledger-core's schema (the same checks), documented with every bound it
 * enforces, `maxProperties` included, and the byte bound (which JSON Schema cannot state) in words.
 */
const metadataInSchema = inputSchemas.openAccountInputSchema.shape.metadata.meta({
  maxProperties: METADATA_KEYS_MAX,
  description: `String-to-string metadata: at most ${METADATA_KEYS_MAX} entries, keys of 1-${METADATA_KEY_LENGTH_MAX} characters, values of at most ${METADATA_VALUE_LENGTH_MAX}, and at most ${METADATA_BYTES_MAX.toLocaleString('en-US')} bytes as UTF-8 JSON in all. More answers 400.`,
  example: { channel: 'mobile' },
});

/** A signed decimal amount as the API returns it. */
export const signedAmountSchema = z
  .string()
  .regex(/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/)
  .meta({ description: 'Decimal string in the currency of the account, formatted to its minor units.', example: '1250.00' });

const currencySchema = z.string().regex(/^[A-Z][A-Z0-9_]{1,11}$/).meta({ example: 'EUR' });
/** Earliest and latest instants with a four-digit UTC year (0001-01-01 to 9999-12-31), epoch ms. */
const INSTANT_MS_MIN = Date.parse('0001-01-01T00:00:00.000Z');
const INSTANT_MS_MAX = Date.parse('9999-12-31T23:59:59.999Z');
const instantSchema = z.iso
  .datetime({ offset: true })
  .refine((value) => {
    const ms = Date.parse(value);
    return ms >= INSTANT_MS_MIN && ms <= INSTANT_MS_MAX;
  }, 'must be between 0001-01-01 and 9999-12-31 in UTC')
  .meta({ description: 'ISO-8601 date-time with offset, between 0001-01-01 and 9999-12-31 in UTC.', example: '2026-01-31T23:59:59Z' });
const isoOutSchema = z.string().meta({ description: 'ISO-8601 UTC date-time.', example: '2026-01-31T23:59:59.999Z' });
const metadataOutSchema = z.record(z.string(), z.string());
const accountTypeSchema = z.enum(['asset', 'liability', 'equity', 'income', 'expense']);
const sideSchema = z.enum(['debit', 'credit']);

/** `limit` query parameter: a decimal integer in 1..max. */
function limitQuery(max: number) {
  return z
    .string()
    .regex(/^[1-9][0-9]{0,6}$/)
    .transform(Number)
    .pipe(z.number().int().min(1).max(max))
    .optional()
    // Documented as what it is to a client, an integer in 1..max (the query string carries it as
    // text, which the pattern checks first): not a string of up to seven digits.
    .meta({ description: `Page size, 1..${max}.`, type: 'integer', minimum: 1, maximum: max, pattern: undefined });
}

// ---------------------------------------------------------------------------------------------
// Headers, path and query
// ---------------------------------------------------------------------------------------------

/**
 * The query of a protected route that declares none: no key at all. An unknown key answers 400 (at
 * `query`) as on the routes with a query schema, rather than being ignored: `POST
 * /transfers?dryRun=true` must not move money. Not rendered in the OpenAPI document (no parameters).
 */
export const noQuerySchema = z.strictObject({});

/** The ledger a request addresses; the process default (`main`) when absent. */
export const ledgerHeaderSchema = idSchema.optional().meta({ description: 'The ledger (book) within your tenant; default `main`.', example: 'main' });
/** `Idempotency-Key`: printable ASCII, 1-255 characters. */
export const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7E]{1,255}$/)
  .meta({ description: 'Unique per request you intend once; a retry with the same key and body returns the original answer.', example: '6f1c2e7a-9b1d-4c1e-8f57-1a2b3c4d5e6f' });

export const accountParamsSchema = z.strictObject({ accountId: idSchema });
export const transferParamsSchema = z.strictObject({ transferId: idSchema });
export const holdParamsSchema = z.strictObject({ holdId: idSchema });
export const problemParamsSchema = z.strictObject({ code: z.string().regex(/^[a-z_]{1,64}$/) });

export const listAccountsQuerySchema = z.strictObject({
  limit: limitQuery(ACCOUNT_PAGE_SIZE_MAX),
  after: idSchema.optional().meta({ description: 'The `nextCursor` of the previous page.' }),
});

const timeBasisSchema = z
  .enum(['effective', 'recorded'])
  .optional()
  .meta({ description: 'What `asOf` is measured in: `effective` (business time, the default) or `recorded` (when the ledger learned of it). Only with `asOf`: alone it answers 400.' });

export const asOfQuerySchema = z
  .strictObject({
    asOf: instantSchema.optional().meta({ description: 'Point in time; now when absent.' }),
    timeBasis: timeBasisSchema,
  })
  // "Now" has no time basis: a timeBasis alone is a client that forgot asOf, not one to ignore.
  .refine((query) => query.timeBasis === undefined || query.asOf !== undefined, { message: 'timeBasis needs asOf', path: ['timeBasis'] });

export const statementQuerySchema = z.strictObject({
  from: instantSchema.optional().meta({ description: 'Only entries recorded at or after this instant.' }),
  to: instantSchema.optional().meta({ description: 'Only entries recorded before this instant; not before `from`.' }),
  limit: limitQuery(STATEMENT_PAGE_SIZE_MAX),
  after: z
    .string()
    // At most 15 digits: every such number is a safe integer, as the ledger's versions are.
    .regex(/^[1-9][0-9]{0,14}$/)
    .optional()
    .meta({ description: 'The `nextCursor` of the previous page.' }),
}).refine((query) => query.from === undefined || query.to === undefined || Date.parse(query.from) <= Date.parse(query.to), {
  message: 'must not be before from',
  path: ['to'],
});

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

export const openAccountBodySchema = inputSchemas.openAccountInputSchema.extend({ metadata: metadataInSchema }).register(requestComponents, { id: 'OpenAccountRequest' });

export const freezeAccountBodySchema = z
  .strictObject({ reason: z.string().max(256).optional() })
  .register(requestComponents, { id: 'FreezeAccountRequest' });

export const emptyBodySchema = z.strictObject({}).register(requestComponents, { id: 'EmptyRequest' });

const postingSchema = z.strictObject({ accountId: idSchema, side: sideSchema, amount: amountSchema, currency: currencySchema });

export const simpleTransferBodySchema = inputSchemas.simpleTransferInputSchema
  .extend({ amount: amountSchema, metadata: metadataInSchema })
  .register(requestComponents, { id: 'SimpleTransferRequest' });

export const multiTransferBodySchema = inputSchemas.multiTransferInputSchema
  .extend({ postings: z.array(postingSchema).min(2).max(32), metadata: metadataInSchema })
  .register(requestComponents, { id: 'MultiPostingTransferRequest' });

/** `POST /transfers`: a simple transfer, or one with postings when the body has `postings`. */
export const transferBodySchema = z.union([simpleTransferBodySchema, multiTransferBodySchema]);

const timeoutMs = z
  .int()
  .positive()
  .max(366 * 86_400_000)
  .optional()
  .meta({ description: 'Hold expiry in milliseconds after it is recorded; it holds until posted or voided when absent.' });

export const simpleHoldBodySchema = simpleTransferBodySchema.extend({ timeoutMs }).register(requestComponents, { id: 'SimpleHoldRequest' });
export const multiHoldBodySchema = multiTransferBodySchema.extend({ timeoutMs }).register(requestComponents, { id: 'MultiPostingHoldRequest' });
/** `POST /holds`. */
export const holdBodySchema = z.union([simpleHoldBodySchema, multiHoldBodySchema]);

/**
 * A partial post names its amount with its currency, a full post neither (the ledger refuses one
 * without the other at `body.currency`): stated in the document as `dependentRequired`, which a
 * client generated from it or a request validator enforces.
 */
const POST_HOLD_PAIRING = { dependentRequired: { amount: ['currency'], currency: ['amount'] } };

export const postHoldBodySchema = z
  .strictObject({
    transferId: idSchema,
    amount: amountSchema.optional().meta({ description: 'Part of a two-posting hold to post, with `currency` (both or neither); all of it when absent.' }),
    currency: currencySchema.optional().meta({ description: 'The currency of `amount`, given with it (both or neither).' }),
    effectiveAt: instantSchema.optional(),
    metadata: metadataInSchema,
  })
  .meta(POST_HOLD_PAIRING)
  .register(requestComponents, { id: 'PostHoldRequest' });

export const voidHoldBodySchema = z
  .strictObject({ transferId: idSchema, effectiveAt: instantSchema.optional(), metadata: metadataInSchema })
  .register(requestComponents, { id: 'VoidHoldRequest' });

export const reverseBodySchema = z
  .strictObject({
    transferId: idSchema.meta({ description: 'Id of the new, reversing transfer.' }),
    reference: z.string().min(1).max(REFERENCE_LENGTH_MAX).optional(),
    effectiveAt: instantSchema.optional(),
    metadata: metadataInSchema,
  })
  .register(requestComponents, { id: 'ReverseTransferRequest' });

/** Most transfers in one linked group (ledger-core's limit). */
export const TRANSFER_GROUP_SIZE_MAX = LINKED_COMMANDS_MAX;

const groupKind = <K extends string>(kind: K) => z.literal(kind).meta({ description: `\`${kind}\`` });

/** A linked-group member of each kind and shape: the body of the single-transfer endpoint plus its `kind`. */
export const groupMemberSchemas = {
  transfer: simpleTransferBodySchema.extend({ kind: groupKind('transfer') }).register(requestComponents, { id: 'GroupSimpleTransfer' }),
  multiTransfer: multiTransferBodySchema.extend({ kind: groupKind('transfer') }).register(requestComponents, { id: 'GroupMultiPostingTransfer' }),
  hold: simpleHoldBodySchema.extend({ kind: groupKind('hold') }).register(requestComponents, { id: 'GroupSimpleHold' }),
  multiHold: multiHoldBodySchema.extend({ kind: groupKind('hold') }).register(requestComponents, { id: 'GroupMultiPostingHold' }),
  postHold: postHoldBodySchema.extend({ kind: groupKind('postHold'), holdId: idSchema.meta({ description: 'The hold to post.' }) }).meta(POST_HOLD_PAIRING).register(requestComponents, { id: 'GroupPostHold' }),
  voidHold: voidHoldBodySchema.extend({ kind: groupKind('voidHold'), holdId: idSchema.meta({ description: 'The hold to void.' }) }).register(requestComponents, { id: 'GroupVoidHold' }),
  reversal: reverseBodySchema.extend({ kind: groupKind('reversal'), reversalOf: idSchema.meta({ description: 'The posted transfer to reverse.' }) }).register(requestComponents, { id: 'GroupReversal' }),
} as const;

/** Any member of a linked group (for the document; requests are checked member by member, see {@link groupMemberSchemaFor}). */
export const groupMemberSchema = z.union(Object.values(groupMemberSchemas));

const GROUP_KINDS = ['transfer', 'hold', 'postHold', 'voidHold', 'reversal'] as const;
const groupKindSchema = z.looseObject({ kind: z.enum(GROUP_KINDS).meta({ description: 'What the member does.' }) });

/** `POST /transfer-groups`. */
export const transferGroupBodySchema = z
  .strictObject({
    transfers: z
      .array(groupMemberSchema)
      .min(1)
      .max(TRANSFER_GROUP_SIZE_MAX)
      .meta({ description: `1..${TRANSFER_GROUP_SIZE_MAX} transfers, applied in order, all or none. Each is tagged with its \`kind\`.` }),
  })
  .register(requestComponents, { id: 'TransferGroupRequest' });

/**
 * The schema of one raw group member, picked by its `kind` and shape (`postings` or not), so that
 * a bad member is told what is wrong with the shape it meant rather than with every shape.
 */
export function groupMemberSchemaFor(raw: unknown): z.ZodType {
  const tagged = groupKindSchema.safeParse(raw);
  if (!tagged.success) return groupKindSchema;
  const hasPostings = Object.hasOwn(raw as object, 'postings');
  switch (tagged.data.kind) {
    case 'transfer':
      return hasPostings ? groupMemberSchemas.multiTransfer : groupMemberSchemas.transfer;
    case 'hold':
      return hasPostings ? groupMemberSchemas.multiHold : groupMemberSchemas.hold;
    default:
      return groupMemberSchemas[tagged.data.kind];
  }
}

/** The request schema of one raw group body: each member checked with {@link groupMemberSchemaFor}. */
export function transferGroupBodySchemaFor(raw: unknown): z.ZodType {
  const transfers = typeof raw === 'object' && raw !== null ? (raw as { transfers?: unknown }).transfers : undefined;
  if (!Array.isArray(transfers) || transfers.length < 1 || transfers.length > TRANSFER_GROUP_SIZE_MAX) return transferGroupBodySchema;
  const members = transfers.map(groupMemberSchemaFor) as [z.ZodType, ...z.ZodType[]];
  return z.strictObject({ transfers: z.tuple(members) });
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

export const accountSchema = z
  .strictObject({
    ledgerId: z.string(),
    accountId: z.string(),
    currency: z.string(),
    type: accountTypeSchema,
    normalSide: sideSchema,
    flags: z.strictObject({ debitsMustNotExceedCredits: z.boolean(), creditsMustNotExceedDebits: z.boolean() }),
    metadata: metadataOutSchema,
    status: z.enum(['open', 'frozen', 'closed']),
    openedAt: isoOutSchema,
    openedLedgerVersion: z.int(),
  })
  .register(responseComponents, { id: 'Account' });

export const accountPageSchema = z
  .strictObject({
    accounts: z.array(accountSchema),
    nextCursor: z.string().nullable().meta({ description: 'Pass as `after` for the next page; null on the last page.' }),
  })
  .register(responseComponents, { id: 'AccountPage' });

export const balanceSchema = z
  .strictObject({
    ledgerId: z.string(),
    accountId: z.string(),
    currency: z.string(),
    type: accountTypeSchema,
    normalSide: sideSchema,
    status: z.enum(['open', 'frozen', 'closed']),
    posted: signedAmountSchema.meta({ description: 'Posted balance on the normal side (credits − debits for a liability).' }),
    pending: signedAmountSchema.meta({ description: 'Held amounts that will reduce the balance when posted.' }),
    available: signedAmountSchema.meta({ description: '`posted` minus `pending`.' }),
    debitsPosted: signedAmountSchema,
    creditsPosted: signedAmountSchema,
    debitsPending: signedAmountSchema,
    creditsPending: signedAmountSchema,
    asOf: isoOutSchema.nullable().meta({ description: 'The point asked for; null for now.' }),
    timeBasis: z.enum(['effective', 'recorded']).nullable(),
  })
  .register(responseComponents, { id: 'Balance' });

export const statementEntrySchema = z
  .strictObject({
    ledgerVersion: z.int(),
    transferId: z.string(),
    eventType: z.string(),
    side: sideSchema,
    bucket: z.enum(['posted', 'pending']),
    amount: signedAmountSchema,
    balanceAfter: signedAmountSchema.meta({ description: 'Posted balance on the normal side after this entry (running balance).' }),
    recordedAt: isoOutSchema,
    effectiveAt: isoOutSchema,
  })
  .register(responseComponents, { id: 'StatementEntry' });

export const statementSchema = z
  .strictObject({
    ledgerId: z.string(),
    accountId: z.string(),
    currency: z.string(),
    entries: z.array(statementEntrySchema),
    nextCursor: z.string().nullable().meta({ description: 'Pass as `after` for the next page; null on the last page.' }),
  })
  .register(responseComponents, { id: 'Statement' });

const transferKindSchema = z.enum(['transfer', 'hold', 'postPending', 'voidPending', 'reversal']);

export const transferSchema = z
  .strictObject({
    ledgerId: z.string(),
    transferId: z.string(),
    kind: transferKindSchema,
    postings: z.array(z.strictObject({ accountId: z.string(), side: sideSchema, amount: signedAmountSchema, currency: z.string() })),
    reference: z.string().nullable(),
    pendingId: z.string().nullable(),
    reversalOf: z.string().nullable(),
    reversedBy: z.string().nullable(),
    metadata: metadataOutSchema,
    ledgerVersion: z.int(),
    recordedAt: isoOutSchema,
    effectiveAt: isoOutSchema,
    hold: z
      .strictObject({
        status: z.enum(['pending', 'posted', 'voided', 'expired']),
        timeoutAt: isoOutSchema.nullable(),
        resolvedBy: z.string().nullable(),
        resolvedVersion: z.int().nullable(),
      })
      .nullable(),
  })
  .register(responseComponents, { id: 'Transfer' });

export const transferReceiptSchema = z
  .strictObject({
    ledgerId: z.string(),
    transferId: z.string(),
    kind: transferKindSchema,
    pendingId: z.string().nullable(),
    reversalOf: z.string().nullable(),
    ledgerVersion: z.int().meta({ description: 'Ledger version of the event that recorded it.' }),
    recordedAt: isoOutSchema,
    duplicate: z.boolean().meta({ description: 'True when this transfer id had already been applied with the same content: nothing new was written.' }),
  })
  .register(responseComponents, { id: 'TransferReceipt' });

export const transferGroupReceiptSchema = z
  .strictObject({
    ledgerId: z.string(),
    ledgerVersion: z.int().meta({ description: 'Ledger version of the group\'s last event.' }),
    recordedAt: isoOutSchema,
    duplicate: z.boolean().meta({ description: 'True when every transfer of the group had already been applied with the same content: nothing new was written.' }),
    transfers: z.array(transferReceiptSchema).meta({ description: 'One receipt per transfer, in request order.' }),
  })
  .register(responseComponents, { id: 'TransferGroupReceipt' });

export const trialBalanceSchema = z
  .strictObject({
    ledgerId: z.string(),
    asOf: isoOutSchema.nullable(),
    timeBasis: z.enum(['effective', 'recorded']).nullable(),
    lines: z.array(z.strictObject({ accountId: z.string(), currency: z.string(), type: accountTypeSchema, debit: signedAmountSchema, credit: signedAmountSchema })),
    totals: z.array(z.strictObject({ currency: z.string(), debits: signedAmountSchema, credits: signedAmountSchema, balanced: z.boolean() })),
  })
  .register(responseComponents, { id: 'TrialBalance' });

export const problemSchema = z
  .strictObject({
    type: z.string().meta({ description: 'Stable URI of the problem type, `/problems/<code>`.' }),
    title: z.string(),
    status: z.int(),
    code: z.string().meta({ description: 'Stable code: a ledger rejection code or one of the API\'s own.' }),
    detail: z.string().optional(),
    instance: z.string().optional(),
    requestId: z.string().optional(),
    errors: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
    retryAfterSeconds: z.int().optional(),
  })
  .register(responseComponents, { id: 'Problem' });

export const problemTypeSchema = z
  .strictObject({ type: z.string(), code: z.string(), status: z.int(), title: z.string() })
  .register(responseComponents, { id: 'ProblemType' });

export const problemTypeListSchema = z.strictObject({ problems: z.array(problemTypeSchema) }).register(responseComponents, { id: 'ProblemTypeList' });

export const healthSchema = z
  .strictObject({
    status: z.enum(['ok', 'ready', 'not_ready']),
    checks: z.record(z.string(), z.strictObject({ ok: z.boolean(), detail: z.string().optional() })).optional(),
  })
  .register(responseComponents, { id: 'Health' });

/** The OpenAPI document: an object, not checked further. */
export const openApiDocumentSchema = z.record(z.string(), z.unknown());
