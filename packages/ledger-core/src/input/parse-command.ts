import { z } from 'zod';
import { HOLD_TIMEOUT_MS_MAX, LINKED_COMMANDS_MAX, METADATA_KEYS_MAX, POSTINGS_MAX, REASON_LENGTH_MAX, REFERENCE_LENGTH_MAX } from '../domain/limits.js';
import type {
  CloseAccountCommand,
  FreezeAccountCommand,
  LinkedCommand,
  OpenAccountCommand,
  Posting,
  PostPendingCommand,
  ReverseTransferCommand,
  TransferCommand,
  TransferLikeCommand,
  UnfreezeAccountCommand,
  VoidPendingCommand,
} from '../domain/types.js';
import { InvalidAmountError, InvalidInputError, type InputIssue } from '../errors.js';
import { currencyCodeSchema, idSchema, isStorableText, metadataSchema, STORABLE_TEXT_MESSAGE } from '../events/schemas.js';
import { parseAmount } from '../money/amount.js';
import type { CurrencyRegistry } from '../money/currency.js';
import { checkCollaborator } from './options.js';

/**
 * Longest `effectiveAt` a command accepts. An ISO-8601 date-time with an offset and nanoseconds
 * (`2025-03-01T12:00:00.123456789+05:30`) has 35 characters; the rest is room for a longer
 * fraction. A longer string (a fraction megabytes long, say) is refused with `InvalidInputError`
 * at `effectiveAt`.
 */
const EFFECTIVE_AT_LENGTH_MAX = 64;
const effectiveAt = z.iso.datetime({ offset: true }).max(EFFECTIVE_AT_LENGTH_MAX);
const amount = z.unknown();
// Commands also refuse text no store could keep as it is (see isStorableText); stored events are
// decoded by the schemas alone, unchanged.
const storableString = (lengthMin: number, lengthMax: number) => z.string().min(lengthMin).max(lengthMax).refine(isStorableText, STORABLE_TEXT_MESSAGE);
const metadata = metadataSchema
  .superRefine((value, context) => {
    for (const [key, entry] of Object.entries(value)) {
      if (!isStorableText(key) || !isStorableText(entry)) context.addIssue({ code: 'custom', message: `key and value ${STORABLE_TEXT_MESSAGE}`, path: [key] });
    }
  })
  .optional();
const reference = storableString(1, REFERENCE_LENGTH_MAX).optional();

/** Input of `openAccount`. */
export const openAccountInputSchema = z.strictObject({
  accountId: idSchema,
  currency: currencyCodeSchema,
  type: z.enum(['asset', 'liability', 'equity', 'income', 'expense']),
  flags: z
    .strictObject({ debitsMustNotExceedCredits: z.boolean().optional(), creditsMustNotExceedDebits: z.boolean().optional() })
    // Both would pin the account at zero; `decide` refuses a hand-built command so flagged with
    // `limit_exceeded`, input is refused here, as malformed.
    .refine((flags) => flags.debitsMustNotExceedCredits !== true || flags.creditsMustNotExceedDebits !== true, {
      message: 'an account cannot be flagged both debitsMustNotExceedCredits and creditsMustNotExceedDebits',
    })
    .optional(),
  metadata,
});

/** A lifecycle command's optional idempotency key: an id, as a transfer id is (see `LifecycleCommandIdentity`). */
const commandId = idSchema.optional();

/** Input of `freezeAccount`. */
export const freezeAccountInputSchema = z.strictObject({ accountId: idSchema, reason: storableString(0, REASON_LENGTH_MAX).optional(), commandId });
/** Input of `unfreezeAccount` and `closeAccount`. */
export const accountIdInputSchema = z.strictObject({ accountId: idSchema, commandId });

const postingInput = z.strictObject({ accountId: idSchema, side: z.enum(['debit', 'credit']), amount, currency: currencyCodeSchema });
const transferCommon = { transferId: idSchema, effectiveAt: effectiveAt.optional(), reference, metadata };

/** Simple transfer: one debit account, one credit account, one amount. */
export const simpleTransferInputSchema = z.strictObject({
  ...transferCommon,
  debitAccountId: idSchema,
  creditAccountId: idSchema,
  amount,
  currency: currencyCodeSchema,
});
/** Multi-posting transfer: two or more postings that balance per currency. */
export const multiTransferInputSchema = z.strictObject({
  ...transferCommon,
  postings: z.array(postingInput).min(2).max(POSTINGS_MAX),
});
/** Input of `transfer`: simple or multi-posting. */
export const transferInputSchema = z.union([simpleTransferInputSchema, multiTransferInputSchema]);

const timeoutMs = z.int().positive().max(HOLD_TIMEOUT_MS_MAX).optional();
const simpleHoldInputSchema = simpleTransferInputSchema.extend({ timeoutMs });
const multiHoldInputSchema = multiTransferInputSchema.extend({ timeoutMs });
/** Input of `hold`: a transfer input plus an optional timeout. */
export const holdInputSchema = z.union([simpleHoldInputSchema, multiHoldInputSchema]);

/**
 * The branch of a simple-or-multi-posting union an input means (it has `postings` or not), so
 * that its errors name the field at fault instead of the union's bare "Invalid input".
 */
function branchOf<S extends z.ZodType, M extends z.ZodType>(input: unknown, simple: S, multi: M): S | M {
  return typeof input === 'object' && input !== null && Object.hasOwn(input, 'postings') ? multi : simple;
}

/** Input of `postPending`. `amount` (with its `currency`) posts part of a two-posting hold. */
export const postPendingInputSchema = z
  .strictObject({
    transferId: idSchema,
    pendingId: idSchema,
    amount: amount.optional(),
    currency: currencyCodeSchema.optional(),
    effectiveAt: effectiveAt.optional(),
    metadata,
  })
  .refine((value) => (value.amount === undefined) === (value.currency === undefined), {
    message: 'amount and currency go together',
    path: ['currency'],
  });

/** Input of `voidPending`. */
export const voidPendingInputSchema = z.strictObject({ transferId: idSchema, pendingId: idSchema, effectiveAt: effectiveAt.optional(), metadata });

/** Input of `reverse`. */
export const reverseInputSchema = z.strictObject({ transferId: idSchema, reversalOf: idSchema, effectiveAt: effectiveAt.optional(), reference, metadata });

/** One member of a linked group: the input of one transfer-like call, tagged with its kind. */
export const linkedMemberInputSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('transfer'), input: z.unknown() }),
  z.strictObject({ kind: z.literal('hold'), input: z.unknown() }),
  z.strictObject({ kind: z.literal('postPending'), input: z.unknown() }),
  z.strictObject({ kind: z.literal('voidPending'), input: z.unknown() }),
  z.strictObject({ kind: z.literal('reverse'), input: z.unknown() }),
]);
/** Input of `linked`. */
export const linkedInputSchema = z.array(linkedMemberInputSchema).min(1).max(LINKED_COMMANDS_MAX);

/** Input schema of each kind of linked-group member. */
export type LinkedMemberInput = z.input<typeof linkedMemberInputSchema>;

/** The path prefix of a command that is not a member of a linked group. */
const NO_PREFIX: readonly (string | number)[] = [];

/**
 * The first bound of a collection `input` goes past — linked members, postings, metadata entries
 * — found by counting alone, before the schema parses a single element: the schema checks these
 * bounds only after it has parsed every element, which for a million metadata keys or linked
 * members took seconds of the event loop to refuse what one count tells.
 */
function oversizedIssue(input: unknown, prefix: readonly (string | number)[]): InputIssue | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const { postings, metadata } = input as { readonly postings?: unknown; readonly metadata?: unknown };
  if (Array.isArray(postings) && postings.length > POSTINGS_MAX) return { path: [...prefix, 'postings'], message: `must hold at most ${POSTINGS_MAX} postings` };
  if (typeof metadata === 'object' && metadata !== null && Object.keys(metadata).length > METADATA_KEYS_MAX) {
    return { path: [...prefix, 'metadata'], message: `at most ${METADATA_KEYS_MAX} metadata entries` };
  }
  return undefined;
}

function validate<S extends z.ZodType>(schema: S, input: unknown, prefix: readonly (string | number)[] = NO_PREFIX): z.output<S> {
  const oversized = oversizedIssue(input, prefix);
  if (oversized !== undefined) throw new InvalidInputError([oversized]);
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new InvalidInputError(
      result.error.issues.map((issue) => ({ path: [...prefix, ...issue.path.map((p) => (typeof p === 'number' ? p : String(p)))], message: issue.message })),
    );
  }
  // zod's record schema leaves a `__proto__` key out of its copy (so that it cannot set the
  // copy's prototype) and reports nothing: the command would lose that entry without a word.
  const metadata = typeof input === 'object' && input !== null ? (input as { metadata?: unknown }).metadata : undefined;
  if (typeof metadata === 'object' && metadata !== null && Object.hasOwn(metadata, '__proto__')) {
    throw new InvalidInputError([{ path: [...prefix, 'metadata', '__proto__'], message: 'the metadata key "__proto__" is not allowed' }]);
  }
  return result.data;
}

function toMs(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Date.parse(value);
}

/**
 * Parses an amount; its path in the input (`prefix`, then `postings.<posting>` for a posting's
 * amount, then `amount`) is built only for the error, not on every valid input.
 */
function money(value: unknown, currencies: CurrencyRegistry, code: string, prefix: readonly (string | number)[], posting?: number): bigint {
  try {
    return parseAmount(value, currencies.get(code));
  } catch (error) {
    if (!(error instanceof InvalidAmountError)) throw error;
    const path = posting === undefined ? [...prefix, 'amount'] : [...prefix, 'postings', posting, 'amount'];
    throw new InvalidAmountError(error.reason, error.message, path);
  }
}

const REGISTRY_METHODS: readonly string[] = ['get'];

/**
 * Refuses, with `InvalidInputError` at `currencies` or `prefix`, the arguments besides the input a
 * JavaScript caller may get wrong: a registry that is not an object with a `get` method (left out,
 * `undefined`, only where it is optional; `null` never), and a path prefix that is not an array of
 * strings and numbers. Checked before the input, so that the answer never depends on it.
 */
function checkArguments(currencies: unknown, required: boolean, prefix: readonly (string | number)[] = NO_PREFIX): void {
  checkCollaborator(currencies, 'currencies', REGISTRY_METHODS, 'a CurrencyRegistry', required);
  if (prefix === NO_PREFIX) return;
  if (!Array.isArray(prefix) || !prefix.every((part) => typeof part === 'string' || typeof part === 'number')) {
    throw new InvalidInputError([{ path: ['prefix'], message: 'must be an array of strings and numbers (a path), or undefined' }]);
  }
}

/**
 * Turns untrusted input into decider commands. Each function validates shape, ids, limits and
 * metadata with zod, and amounts exactly against their currency's scale. It throws
 * `InvalidInputError`, `InvalidAmountError` or `UnknownCurrencyError`; it never returns a
 * partially valid command. A `currencies` argument that is not a {@link CurrencyRegistry} (an
 * object with a `get` method; `null`, or left out where it is required, say) is refused with
 * `InvalidInputError` at `currencies`, and a `prefix` that is not an array of strings and numbers
 * at `prefix`, whatever the input.
 */
export const parseCommand = {
  openAccount(input: unknown, currencies?: CurrencyRegistry): OpenAccountCommand {
    checkArguments(currencies, false);
    const v = validate(openAccountInputSchema, input);
    // An account in an undeclared currency could never be decoded again from the log.
    currencies?.get(v.currency);
    return {
      kind: 'openAccount',
      accountId: v.accountId,
      currency: v.currency,
      type: v.type,
      flags: {
        debitsMustNotExceedCredits: v.flags?.debitsMustNotExceedCredits ?? false,
        creditsMustNotExceedDebits: v.flags?.creditsMustNotExceedDebits ?? false,
      },
      metadata: v.metadata ?? {},
    };
  },

  freezeAccount(input: unknown): FreezeAccountCommand {
    const v = validate(freezeAccountInputSchema, input);
    return { kind: 'freezeAccount', accountId: v.accountId, reason: v.reason, ...withCommandId(v.commandId) };
  },

  unfreezeAccount(input: unknown): UnfreezeAccountCommand {
    const v = validate(accountIdInputSchema, input);
    return { kind: 'unfreezeAccount', accountId: v.accountId, ...withCommandId(v.commandId) };
  },

  closeAccount(input: unknown): CloseAccountCommand {
    const v = validate(accountIdInputSchema, input);
    return { kind: 'closeAccount', accountId: v.accountId, ...withCommandId(v.commandId) };
  },

  transfer(input: unknown, currencies: CurrencyRegistry, prefix: readonly (string | number)[] = NO_PREFIX): TransferCommand {
    checkArguments(currencies, true, prefix);
    return transferCommand(validate(branchOf(input, simpleTransferInputSchema, multiTransferInputSchema), input, prefix), undefined, currencies, prefix);
  },

  hold(input: unknown, currencies: CurrencyRegistry, prefix: readonly (string | number)[] = NO_PREFIX): TransferCommand {
    checkArguments(currencies, true, prefix);
    const v = validate(branchOf(input, simpleHoldInputSchema, multiHoldInputSchema), input, prefix);
    return transferCommand(v, { timeoutMs: v.timeoutMs }, currencies, prefix);
  },

  postPending(input: unknown, currencies: CurrencyRegistry, prefix: readonly (string | number)[] = NO_PREFIX): PostPendingCommand {
    // Required even when the input posts the whole hold and no amount is read.
    checkArguments(currencies, true, prefix);
    const v = validate(postPendingInputSchema, input, prefix);
    return {
      kind: 'postPending',
      transferId: v.transferId,
      pendingId: v.pendingId,
      amount: v.currency === undefined ? undefined : money(v.amount, currencies, v.currency, prefix),
      currency: v.currency,
      effectiveAtMs: toMs(v.effectiveAt),
      metadata: v.metadata ?? {},
    };
  },

  voidPending(input: unknown, currencies?: CurrencyRegistry, prefix: readonly (string | number)[] = NO_PREFIX): VoidPendingCommand {
    checkArguments(currencies, false, prefix);
    const v = validate(voidPendingInputSchema, input, prefix);
    return { kind: 'voidPending', transferId: v.transferId, pendingId: v.pendingId, effectiveAtMs: toMs(v.effectiveAt), metadata: v.metadata ?? {} };
  },

  reverse(input: unknown, currencies?: CurrencyRegistry, prefix: readonly (string | number)[] = NO_PREFIX): ReverseTransferCommand {
    checkArguments(currencies, false, prefix);
    const v = validate(reverseInputSchema, input, prefix);
    return {
      kind: 'reverseTransfer',
      transferId: v.transferId,
      reversalOf: v.reversalOf,
      effectiveAtMs: toMs(v.effectiveAt),
      reference: v.reference,
      metadata: v.metadata ?? {},
    };
  },

  linked(input: unknown, currencies: CurrencyRegistry): LinkedCommand {
    checkArguments(currencies, true);
    // The group's bounds by counting first, as `validate` does for each command's (see oversizedIssue).
    if (Array.isArray(input)) {
      if (input.length > LINKED_COMMANDS_MAX) throw new InvalidInputError([{ path: [], message: `must hold at most ${LINKED_COMMANDS_MAX} commands` }]);
      for (let index = 0; index < input.length; index += 1) {
        const member = input[index] as { readonly input?: unknown } | null | undefined;
        const issue = oversizedIssue(typeof member === 'object' && member !== null ? member.input : undefined, [index, 'input']);
        if (issue !== undefined) throw new InvalidInputError([issue]);
      }
    }
    const members = validate(linkedInputSchema, input);
    const commands: TransferLikeCommand[] = members.map((member, index) => parseCommand[member.kind](member.input, currencies, [index, 'input']));
    const ids = new Set<string>();
    commands.forEach((command, index) => {
      if (ids.has(command.transferId)) {
        throw new InvalidInputError([{ path: [index, 'input', 'transferId'], message: `transfer id ${command.transferId} appears twice in the group` }]);
      }
      ids.add(command.transferId);
    });
    return { kind: 'linked', commands };
  },
};

/** `{ commandId }` when the input has one, else nothing: the command is then exactly what it was before command ids. */
function withCommandId(id: string | undefined): { readonly commandId?: string } {
  return id === undefined ? {} : { commandId: id };
}

function transferCommand(
  v: z.output<typeof transferInputSchema>,
  pending: TransferCommand['pending'],
  currencies: CurrencyRegistry,
  prefix: readonly (string | number)[],
): TransferCommand {
  let postings: Posting[];
  if ('postings' in v) {
    postings = v.postings.map((p, index) => ({
      accountId: p.accountId,
      side: p.side,
      amount: money(p.amount, currencies, p.currency, prefix, index),
      currency: p.currency,
    }));
  } else {
    const minor = money(v.amount, currencies, v.currency, prefix);
    postings = [
      { accountId: v.debitAccountId, side: 'debit', amount: minor, currency: v.currency },
      { accountId: v.creditAccountId, side: 'credit', amount: minor, currency: v.currency },
    ];
  }
  return {
    kind: 'transfer',
    transferId: v.transferId,
    postings,
    pending,
    effectiveAtMs: toMs(v.effectiveAt),
    reference: v.reference,
    metadata: v.metadata ?? {},
  };
}
