import { HOLD_TIMEOUT_MS_MAX, ID_PATTERN, LINKED_COMMANDS_MAX, POSTINGS_MAX, REASON_LENGTH_MAX, REFERENCE_LENGTH_MAX, ID_PATTERN_MESSAGE } from '../domain/limits.js';
import type { LedgerCommand, TransferLikeCommand } from '../domain/types.js';
import { InvalidInputError, UnknownCurrencyError, type InputIssue, type LedgerError } from '../errors.js';
import { isPlainMetadata } from '../events/fast-checks.js';
import { CORRELATION_ID_LENGTH_MAX, CURRENCY_CODE_PATTERN, isStorableText, metadataSchema, STORABLE_TEXT_MESSAGE } from '../events/schemas.js';
import { AMOUNT_MINOR_MAX } from '../money/amount.js';
import type { CurrencyRegistry } from '../money/currency.js';
import type { CommandContext } from '../writer/ledger-writer.js';

// The writer's admission check of a command built in code, without `parseCommand`: the shape
// every field must have for the events `decide` makes of it to be encoded and decoded again.
// `decide` checks what depends on the ledger (accounts, currencies matching them, balances,
// amounts' sign and the balances' size, times against the clock); this checks the rest (an
// amount above AMOUNT_MINOR_MAX included), by hand, because it runs on every command the writer
// takes (a few hundred nanoseconds for a transfer). A command that passes both never becomes an
// event the decoder refuses: `test/command-checks.test.ts` holds them to that with randomly
// broken commands, reopening the ledger after each.

type Path = readonly (string | number)[];

const ACCOUNT_TYPES: ReadonlySet<unknown> = new Set(['asset', 'liability', 'equity', 'income', 'expense']);
const NO_PATH: Path = [];
const CONTEXT_PATH: Path = ['context'];

/**
 * Why the writer must refuse a command, or `undefined` when it may decide it: an
 * `InvalidInputError` naming the first field (with its path) whose shape is wrong or, in a linked
 * group, the first member whose transfer id an earlier member already has; or an
 * `UnknownCurrencyError` for an account opened in a currency the ledger's registry lacks (as
 * `parseCommand.openAccount` would throw).
 * @internal
 */
export function commandError(command: LedgerCommand, context: CommandContext | undefined, currencies: CurrencyRegistry): LedgerError | undefined {
  const found = contextIssue(context) ?? topLevelIssue(command);
  if (found !== undefined) return new InvalidInputError([found]);
  if (command.kind === 'openAccount' && currencies.find(command.currency) === undefined) return new UnknownCurrencyError(command.currency);
  return undefined;
}

function topLevelIssue(command: LedgerCommand): InputIssue | undefined {
  if (!isObject(command)) return issue(NO_PATH, 'must be a command object');
  switch (command.kind) {
    case 'openAccount':
      return (
        idIssue(command.accountId, 'accountId') ??
        currencyIssue(command.currency, NO_PATH, 'currency') ??
        (ACCOUNT_TYPES.has(command.type) ? undefined : issue(['type'], 'must be one of asset, liability, equity, income, expense')) ??
        flagsIssue(command.flags) ??
        metadataIssue(command.metadata, NO_PATH, 'metadata')
      );
    case 'freezeAccount':
      return (
        idIssue(command.accountId, 'accountId') ??
        optionalStringIssue(command.reason, REASON_LENGTH_MAX, NO_PATH, 'reason') ??
        optionalIdIssue(command.commandId, 'commandId')
      );
    case 'unfreezeAccount':
    case 'closeAccount':
      return idIssue(command.accountId, 'accountId') ?? optionalIdIssue(command.commandId, 'commandId');
    case 'expirePending':
      return idIssue(command.pendingId, 'pendingId');
    case 'linked': {
      const commands: unknown = command.commands;
      if (!Array.isArray(commands) || commands.length < 1 || commands.length > LINKED_COMMANDS_MAX) {
        return issue(['commands'], `must be an array of 1 to ${LINKED_COMMANDS_MAX} commands`);
      }
      // A member reusing an earlier member's id would be decided as a retry of it (as parseCommand.linked refuses it too).
      const transferIds = new Set<string>();
      for (let i = 0; i < commands.length; i++) {
        const member = commands[i] as TransferLikeCommand;
        const found = isObject(member) ? transferLikeIssue(member, ['commands', i]) : issue(['commands', i], 'must be a command object');
        if (found !== undefined) return found;
        if (transferIds.has(member.transferId)) return issue(['commands', i, 'transferId'], `transfer id ${member.transferId} appears twice in the group`);
        transferIds.add(member.transferId);
      }
      return undefined;
    }
    default:
      return transferLikeIssue(command, NO_PATH);
  }
}

function transferLikeIssue(command: TransferLikeCommand, at: Path): InputIssue | undefined {
  switch (command.kind) {
    case 'transfer':
      return (
        idIssue(command.transferId, 'transferId', at) ??
        postingsIssue(command.postings, at) ??
        pendingIssue(command.pending, at) ??
        effectiveAtIssue(command.effectiveAtMs, at) ??
        optionalStringIssue(command.reference, REFERENCE_LENGTH_MAX, at, 'reference') ??
        metadataIssue(command.metadata, at, 'metadata')
      );
    case 'postPending':
      return (
        idIssue(command.transferId, 'transferId', at) ??
        idIssue(command.pendingId, 'pendingId', at) ??
        (command.amount === undefined || typeof command.amount === 'bigint' ? undefined : issue([...at, 'amount'], 'must be a bigint of minor units, or undefined')) ??
        (command.currency === undefined ? undefined : currencyIssue(command.currency, at, 'currency')) ??
        // As parseCommand.postPending: a partial post names its currency, a full post names none.
        ((command.amount === undefined) === (command.currency === undefined) ? undefined : issue([...at, 'currency'], 'amount and currency go together')) ??
        effectiveAtIssue(command.effectiveAtMs, at) ??
        metadataIssue(command.metadata, at, 'metadata')
      );
    case 'voidPending':
      return (
        idIssue(command.transferId, 'transferId', at) ??
        idIssue(command.pendingId, 'pendingId', at) ??
        effectiveAtIssue(command.effectiveAtMs, at) ??
        metadataIssue(command.metadata, at, 'metadata')
      );
    case 'reverseTransfer':
      return (
        idIssue(command.transferId, 'transferId', at) ??
        idIssue(command.reversalOf, 'reversalOf', at) ??
        effectiveAtIssue(command.effectiveAtMs, at) ??
        optionalStringIssue(command.reference, REFERENCE_LENGTH_MAX, at, 'reference') ??
        metadataIssue(command.metadata, at, 'metadata')
      );
    default: {
      const kind: unknown = (command as { kind?: unknown }).kind;
      return issue([...at, 'kind'], `unknown command kind ${typeof kind === 'string' ? JSON.stringify(kind.slice(0, 64)) : typeof kind}`);
    }
  }
}

function postingsIssue(postings: unknown, at: Path): InputIssue | undefined {
  if (!Array.isArray(postings) || postings.length < 1 || postings.length > POSTINGS_MAX) {
    return issue([...at, 'postings'], `must be an array of 1 to ${POSTINGS_MAX} postings`);
  }
  for (let i = 0; i < postings.length; i++) {
    const posting: unknown = postings[i];
    if (!isObject(posting)) return issue([...at, 'postings', i], 'must be a posting object');
    const p = posting as Record<string, unknown>;
    if (typeof p['accountId'] !== 'string' || !ID_PATTERN.test(p['accountId'])) return issue([...at, 'postings', i, 'accountId'], ID_PATTERN_MESSAGE);
    if (p['side'] !== 'debit' && p['side'] !== 'credit') return issue([...at, 'postings', i, 'side'], 'must be debit or credit');
    if (typeof p['amount'] !== 'bigint') return issue([...at, 'postings', i, 'amount'], 'must be a bigint of minor units');
    // The decoder reads no amount above AMOUNT_MINOR_MAX (parseAmount's bound), and balances can
    // hold one, so decide would accept it and the ledger could never be read back.
    if (p['amount'] > AMOUNT_MINOR_MAX) return issue([...at, 'postings', i, 'amount'], `must be at most ${AMOUNT_MINOR_MAX} minor units`);
    if (typeof p['currency'] !== 'string' || !CURRENCY_CODE_PATTERN.test(p['currency'])) return issue([...at, 'postings', i, 'currency'], CURRENCY_MESSAGE);
  }
  return undefined;
}

function pendingIssue(pending: unknown, at: Path): InputIssue | undefined {
  if (pending === undefined) return undefined;
  if (!isObject(pending)) return issue([...at, 'pending'], 'must be { timeoutMs } for a hold, or undefined');
  const timeoutMs = (pending as { timeoutMs?: unknown }).timeoutMs;
  if (timeoutMs === undefined || (Number.isSafeInteger(timeoutMs) && (timeoutMs as number) > 0 && (timeoutMs as number) <= HOLD_TIMEOUT_MS_MAX)) return undefined;
  return issue([...at, 'pending', 'timeoutMs'], `must be a whole number of ms from 1 to ${HOLD_TIMEOUT_MS_MAX}, or undefined`);
}

function effectiveAtIssue(effectiveAtMs: unknown, at: Path): InputIssue | undefined {
  // Whole milliseconds that make a date (decide then keeps it within the back-dating window).
  if (effectiveAtMs === undefined || (Number.isSafeInteger(effectiveAtMs) && Number.isFinite(new Date(effectiveAtMs as number).getTime()))) return undefined;
  return issue([...at, 'effectiveAtMs'], 'must be whole epoch milliseconds of a real date, or undefined');
}

function flagsIssue(flags: unknown): InputIssue | undefined {
  if (!isObject(flags)) return issue(['flags'], 'must be { debitsMustNotExceedCredits, creditsMustNotExceedDebits }');
  const f = flags as Record<string, unknown>;
  for (const name of ['debitsMustNotExceedCredits', 'creditsMustNotExceedDebits']) {
    if (typeof f[name] !== 'boolean') return issue(['flags', name], 'must be a boolean');
  }
  return undefined;
}

function contextIssue(context: CommandContext | undefined): InputIssue | undefined {
  if (context === undefined) return undefined;
  if (!isObject(context)) return issue(['context'], 'must be an object, or undefined');
  return (
    optionalStringIssue(context.correlationId, CORRELATION_ID_LENGTH_MAX, CONTEXT_PATH, 'correlationId') ??
    optionalStringIssue(context.causationId, CORRELATION_ID_LENGTH_MAX, CONTEXT_PATH, 'causationId') ??
    (context.metadata === undefined ? undefined : metadataIssue(context.metadata, CONTEXT_PATH, 'metadata'))
  );
}

/**
 * The problem with a metadata object: what `metadataSchema` says, or, where the schema would
 * accept a copy that silently drops or gains a key, why that is refused. @internal
 */
export function metadataIssue(metadata: unknown, at: Path, name: string): InputIssue | undefined {
  if (isPlainMetadata(metadata)) {
    const entries = metadata as Record<string, string>;
    for (const key in entries) {
      if (!isStorableText(key) || !isStorableText(entries[key] as string)) return issue([...at, name, key], `key and value ${STORABLE_TEXT_MESSAGE}`);
    }
    return undefined;
  }
  if (isObject(metadata) && Object.hasOwn(metadata, '__proto__')) return issue([...at, name, '__proto__'], 'the metadata key "__proto__" is not allowed');
  const parsed = metadataSchema.safeParse(metadata);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return issue([...at, name, ...(first?.path ?? []).map((p) => (typeof p === 'number' ? p : String(p)))], first?.message ?? 'invalid metadata');
  }
  return issue([...at, name], 'must be a plain object of its own string keys and string values (use {} for none)');
}

const CURRENCY_MESSAGE = 'must be a currency code';

function currencyIssue(currency: unknown, at: Path, name: string): InputIssue | undefined {
  return typeof currency === 'string' && CURRENCY_CODE_PATTERN.test(currency) ? undefined : issue([...at, name], CURRENCY_MESSAGE);
}

function optionalStringIssue(value: unknown, lengthMax: number, at: Path, name: string): InputIssue | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > lengthMax) return issue([...at, name], `must be a string of at most ${lengthMax} characters, or undefined`);
  return isStorableText(value) ? undefined : issue([...at, name], STORABLE_TEXT_MESSAGE);
}

function idIssue(value: unknown, name: string, at: Path = NO_PATH): InputIssue | undefined {
  return typeof value === 'string' && ID_PATTERN.test(value) ? undefined : issue([...at, name], ID_PATTERN_MESSAGE);
}

/** An id's problem, as {@link idIssue}, for a field that may also be `undefined` (a lifecycle command's `commandId`). */
function optionalIdIssue(value: unknown, name: string): InputIssue | undefined {
  return value === undefined ? undefined : idIssue(value, name);
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function issue(path: Path, message: string): InputIssue {
  return { path, message };
}
