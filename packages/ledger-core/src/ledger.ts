import { InvalidInputError } from './errors.js';
import { checkCollaborator, checkOptions } from './input/options.js';
import { parseCommand, type LinkedMemberInput } from './input/parse-command.js';
import { CurrencyRegistry } from './money/currency.js';
import { formatAmount } from './money/amount.js';
import { accountEntriesOptions, parseAsOf, replayAccountEntries, replayLedger, readLedger, type AccountEntriesOptions, type AsOf, type LedgerSource, type ReplayedState } from './query/replay.js';
import { balanceOf, trialBalanceOf, type Balance, type TrialBalance } from './query/views.js';
import { verifyChain, type ChainVerification } from './events/verify-chain.js';
import { LedgerWriter, type CommandContext, type CommandResult, type LedgerWriterOptions } from './writer/ledger-writer.js';

/** A statement line with amounts as decimal strings. */
export interface HistoryEntry {
  readonly ledgerVersion: number;
  readonly eventType: string;
  readonly transferId: string;
  readonly side: 'debit' | 'credit';
  readonly bucket: 'posted' | 'pending';
  readonly amount: string;
  /** Posted balance on the account's normal side after this entry. */
  readonly balanceAfter: string;
  readonly recordedAt: string;
  readonly effectiveAt: string;
}

/** A page of an account's history. */
export interface HistoryPage {
  readonly accountId: string;
  readonly entries: HistoryEntry[];
  /** Pass as `afterVersion` to read the next page; `null` at the end. */
  readonly nextAfterVersion: number | null;
}

/**
 * One ledger of one tenant: the public facade a product team uses. Commands take untrusted
 * input (validated, amounts as decimal strings) and resolve with a `CommandResult`: `ok`, or a
 * rejection with a stable code. Invalid input rejects the returned promise with a typed error
 * (`InvalidInputError`, `InvalidAmountError`, `UnknownCurrencyError`) and writes nothing. Reads of the current state are served from memory; reads "as of"
 * a past point replay the event log, the auditable path.
 *
 * ```ts
 * const ledger = await Ledger.open({ store: new InMemoryEventStore(), tenantId: 'acme', ledgerId: 'main' });
 * await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
 * await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } });
 * await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '100.00', currency: 'EUR' });
 * ledger.balance('alice')?.posted; // '100.00'
 * ```
 */
export class Ledger {
  readonly #writer: LedgerWriter;
  readonly #currencies: CurrencyRegistry;
  readonly #source: LedgerSource;

  private constructor(writer: LedgerWriter, currencies: CurrencyRegistry, source: LedgerSource) {
    this.#writer = writer;
    this.#currencies = currencies;
    this.#source = source;
  }

  /**
   * Opens a ledger (creating it on its first event) and starts its writer. Throws
   * `InvalidInputError` for options that are not an object (at `options`), for `currencies` that
   * is given but has no `get` method (at `currencies`: `null` is refused, not replaced by the
   * default registry; checked by shape, so a registry of another copy of ledger-core serves), both
   * before anything is read from the store, and for a tenant or ledger id off the id pattern.
   */
  static async open(options: LedgerWriterOptions): Promise<Ledger> {
    checkOptions(options);
    // As LedgerWriter.open refuses them: the `??` below would otherwise turn a null into the default.
    checkCollaborator(options.currencies, 'currencies', ['get'], 'a CurrencyRegistry');
    const currencies = options.currencies ?? new CurrencyRegistry();
    const writer = await LedgerWriter.open({ ...options, currencies });
    return new Ledger(writer, currencies, { store: options.store, codec: writer.codec, tenantId: options.tenantId, ledgerId: options.ledgerId });
  }

  /** The writer behind this facade, for batching tools and metrics. */
  get writer(): LedgerWriter {
    return this.#writer;
  }

  /** Current ledger version (number of events). */
  get version(): number {
    return this.#writer.version;
  }

  /** Opens an account: `{ accountId, currency, type, flags?, metadata? }`. */
  async openAccount(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.openAccount(input, this.#currencies), context);
  }

  /** Freezes an account: `{ accountId, reason?, commandId? }` (`commandId` makes it retryable: see `LifecycleCommandIdentity`). */
  async freezeAccount(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.freezeAccount(input), context);
  }

  /** Unfreezes an account: `{ accountId, commandId? }` (`commandId` makes it retryable: see `LifecycleCommandIdentity`). */
  async unfreezeAccount(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.unfreezeAccount(input), context);
  }

  /** Closes an account with zero balance and nothing pending: `{ accountId, commandId? }` (`commandId` makes it retryable: see `LifecycleCommandIdentity`). */
  async closeAccount(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.closeAccount(input), context);
  }

  /**
   * Moves money: `{ transferId, debitAccountId, creditAccountId, amount, currency }` or
   * `{ transferId, postings: [{ accountId, side, amount, currency }, ...] }`, with optional
   * `effectiveAt`, `reference` and `metadata`. Retrying the same `transferId` with the same
   * content returns the original outcome.
   */
  async transfer(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.transfer(input, this.#currencies), context);
  }

  /** Places a hold: the same input as `transfer`, plus an optional `timeoutMs`. */
  async hold(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.hold(input, this.#currencies), context);
  }

  /** Posts a hold: `{ transferId, pendingId, amount?, currency? }` (partial amount for two-posting holds). */
  async postPending(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.postPending(input, this.#currencies), context);
  }

  /** Voids a hold: `{ transferId, pendingId }`. */
  async voidPending(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.voidPending(input), context);
  }

  /** Reverses a posted transfer with a new one: `{ transferId, reversalOf, reference? }`. */
  async reverse(input: unknown, context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.reverse(input), context);
  }

  /** Applies transfer-like commands all together or not at all: `[{ kind: 'transfer' | 'hold' | ..., input }]`. */
  async linked(members: readonly LinkedMemberInput[], context?: CommandContext): Promise<CommandResult> {
    return this.#writer.submit(parseCommand.linked(members, this.#currencies), context);
  }

  /** An account's current balance, from memory: O(1). `undefined` if it does not exist. */
  balance(accountId: string): Balance | undefined {
    const account = this.#writer.account(accountId);
    return account === undefined ? undefined : balanceOf(account, this.#currencies);
  }

  /**
   * An account's balance as of a ledger version, recorded time or effective time, by replay.
   * A point `parseAsOf` refuses, and a ledger version past the ledger's head (at
   * `asOf.ledgerVersion`), are refused with `InvalidInputError`.
   */
  async balanceAt(accountId: string, asOf: AsOf): Promise<Balance | undefined> {
    const state = await this.#replayAt(asOf);
    const account = state.accounts.get(accountId);
    return account === undefined ? undefined : balanceOf(account, this.#currencies);
  }

  /**
   * Every account's net posted balance with per-currency totals, now or as of a point (by
   * replay). A point is refused as `balanceAt` refuses it.
   */
  async trialBalance(asOf?: AsOf): Promise<TrialBalance> {
    if (asOf === undefined) return trialBalanceOf(this.#writer.accounts(), this.#currencies);
    const state = await this.#replayAt(asOf);
    return trialBalanceOf(state.accounts.values(), this.#currencies);
  }

  /**
   * The ledger's state as of `asOf`, by replay. Replay stops at the head, so a ledger version
   * past it would be answered with the head's state, as if that version existed: it is refused
   * with `InvalidInputError` at `asOf.ledgerVersion` (after the replay, which alone knows the
   * head of the log: this writer's version may lag another writer's appends).
   */
  async #replayAt(asOf: AsOf): Promise<ReplayedState> {
    // Checked here as well as by replay, which reads a missing point as "now".
    const point = parseAsOf(asOf);
    const state = await replayLedger(this.#source, asOf);
    if (point.kind === 'ledgerVersion' && point.ledgerVersion > state.version) {
      throw new InvalidInputError([{ path: ['asOf', 'ledgerVersion'], message: `is past the ledger's head, version ${state.version}` }]);
    }
    return state;
  }

  /**
   * An account's entries with running balance, by replay, keyset-paginated by ledger version.
   * Options that are not an object (at `options`), a `limit` outside 1..`HISTORY_PAGE_SIZE_MAX`
   * (1,000) and an `afterVersion` that is not a non-negative integer are refused with
   * `InvalidInputError`, whether the account exists or not.
   */
  async history(accountId: string, options: AccountEntriesOptions = {}): Promise<HistoryPage> {
    const checked = accountEntriesOptions(options);
    const account = this.#writer.account(accountId);
    // Accounts are never deleted, so one unknown now never had entries.
    if (account === undefined) return { accountId, entries: [], nextAfterVersion: null };
    const scale = this.#currencies.get(account.currency).scale;
    const page = await replayAccountEntries(this.#source, accountId, checked);
    return {
      accountId,
      entries: page.entries.map((entry) => ({
        ledgerVersion: entry.ledgerVersion,
        eventType: entry.eventType,
        transferId: entry.transferId,
        side: entry.side,
        bucket: entry.bucket,
        amount: formatAmount(entry.amountMinor, scale),
        balanceAfter: formatAmount(entry.postedBalanceMinor, scale),
        recordedAt: new Date(entry.recordedAtMs).toISOString(),
        effectiveAt: new Date(entry.effectiveAtMs).toISOString(),
      })),
      nextAfterVersion: page.nextAfterVersion,
    };
  }

  /** Recomputes the ledger's whole hash chain from the store and reports the first broken link. */
  verifyChain(): Promise<ChainVerification> {
    return verifyChain(readLedger(this.#source, { verify: false }));
  }

  /** Drains queued commands and stops the writer. */
  close(): Promise<void> {
    return this.#writer.close();
  }
}
