import { TransferStore } from './transfer-store.js';
import type { AccountFlags, AccountType, LifecycleCommandKind, Metadata, Posting, Side } from './types.js';

/**
 * The minimal map interface the state needs; a `Map` satisfies it. `get` returns the stored
 * object itself: `evolve` changes an account in place, and an overlay hands out its own copy.
 */
export interface Table<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): unknown;
}

/** An account's current state. Balances are minor units of `currency`, never negative. */
export interface AccountState {
  readonly id: string;
  readonly currency: string;
  readonly type: AccountType;
  readonly normalSide: Side;
  readonly flags: AccountFlags;
  readonly metadata: Metadata;
  readonly openedAtVersion: number;
  readonly openedAtMs: number;
  status: 'open' | 'frozen' | 'closed';
  debitsPosted: bigint;
  creditsPosted: bigint;
  debitsPending: bigint;
  creditsPending: bigint;
  /**
   * The account's most recent lifecycle changes that carried a `commandId`, oldest first, at most
   * {@link LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX}: what `decide` answers a retried freeze,
   * unfreeze or close with (see `LifecycleCommandIdentity`). `undefined` (or absent) when there
   * are none, as for every account folded from events without command ids. `evolve` replaces the
   * array rather than changing it, so a copy of the account may share it.
   */
  recentLifecycleCommands?: readonly LifecycleCommandRecord[] | undefined;
}

/** A recorded lifecycle change that carried a command id: enough to answer its retries. */
export interface LifecycleCommandRecord {
  /** The command's `commandId`. */
  readonly commandId: string;
  /** The kind of command it was; a retry must be of the same kind to count as one. */
  readonly kind: LifecycleCommandKind;
  /** Ledger version of the event that recorded it: the original outcome of a retry. */
  readonly ledgerVersion: number;
  /** When that event was recorded, epoch ms. */
  readonly recordedAtMs: number;
}

/** What kind of command created a transfer record. */
export type TransferKind = 'transfer' | 'hold' | 'postPending' | 'voidPending' | 'reversal';

/** A transfer the ledger has recorded: enough to answer retries, resolve holds and reverse. */
export interface TransferRecord {
  readonly id: string;
  readonly kind: TransferKind;
  /** Posted postings (transfer, reversal, postPending), held postings (hold), none (voidPending). */
  readonly postings: readonly Posting[];
  readonly pendingId: string | undefined;
  readonly reversalOf: string | undefined;
  readonly timeoutMs: number | undefined;
  readonly timeoutAtMs: number | undefined;
  readonly reference: string | undefined;
  readonly metadata: Metadata;
  readonly ledgerVersion: number;
  readonly recordedAtMs: number;
  readonly effectiveAtMs: number;
  /** Holds only: `pending` until posted, voided or expired. */
  resolution: 'pending' | 'posted' | 'voided' | 'expired' | undefined;
  /** Id of the transfer that reversed this one. */
  reversedBy: string | undefined;
}

/**
 * A ledger's state, folded from its events. The writer owns one and mutates it through
 * `evolve`; `decide` only reads it.
 */
export interface LedgerState {
  /** Ledger version of the last event applied; 0 for an empty ledger. */
  version: number;
  /** Recorded time of the last event applied, epoch ms. */
  lastRecordedAtMs: number;
  /**
   * Bytes the accounts (with their remembered lifecycle commands) and the open holds take as a
   * snapshot stores them, bounded from above (see `state-bytes.ts`); kept by `evolve`. `decide`
   * refuses a new account or hold that would take it past `DecideContext.stateBytesMax`. Absent
   * (a state built by hand) counts as 0 and is set by the first event that changes it.
   */
  stateBytes?: number;
  readonly accounts: Table<AccountState>;
  /**
   * Transfer records. The writer keeps every unresolved hold here and a bounded set of recent
   * transfers; older ones are fetched from the store's index before a command that names them.
   */
  readonly transfers: Table<TransferRecord>;
  /**
   * Whether `evolve` asserts account limits. True for any prefix of the log (the limits held
   * when each event was decided); false for views filtered by effective time, where a back-dated
   * transfer can legitimately appear before the credit that funded it.
   */
  readonly limitsAsserted: boolean;
}

/**
 * An empty ledger's state. Its transfers table is a `Map` (a `TransferStore`, internal) that keeps
 * plain posted transfers compactly until they are read.
 */
export function initialState(options: { limitsAsserted?: boolean } = {}): LedgerState {
  return {
    version: 0,
    lastRecordedAtMs: 0,
    stateBytes: 0,
    accounts: new Map<string, AccountState>(),
    transfers: new TransferStore(),
    limitsAsserted: options.limitsAsserted ?? true,
  };
}

/**
 * A copy-on-write view over a table: reads fall through to the base, and the first read of a
 * key copies its value so writes never reach the base until {@link OverlayTable.commit}.
 */
export class OverlayTable<V> implements Table<V> {
  #base: Table<V>;
  readonly #copy: (value: V) => V;
  readonly #local = new Map<string, V>();

  /**
   * @param base the table reads fall through to; it is written only by {@link commit}.
   * @param copy makes an independent copy of one of `base`'s values, so that changes made to the
   *   copy (the overlay's value from then on) never reach the value in `base`.
   */
  constructor(base: Table<V>, copy: (value: V) => V) {
    this.#base = base;
    this.#copy = copy;
  }

  /**
   * The value for `key`: this overlay's own if it has one, else a copy of the base's (kept from
   * then on as the overlay's own, so a caller may change it in place), or `undefined` if neither
   * has one.
   */
  get(key: string): V | undefined {
    const local = this.#local.get(key);
    if (local !== undefined) return local;
    const base = this.#base.get(key);
    if (base === undefined) return undefined;
    const copy = this.#copy(base);
    this.#local.set(key, copy);
    return copy;
  }

  /** Sets `key` in this overlay only; the base sees it at {@link commit}. Returns the overlay. */
  set(key: string, value: V): this {
    this.#local.set(key, value);
    return this;
  }

  /** Keys written or read through this overlay. */
  keys(): IterableIterator<string> {
    return this.#local.keys();
  }

  /**
   * Reads through to `base` from now on. Sound only when `base` shows everything the old base
   * showed: the writer decides a batch over the overlay of the batch being appended, and points
   * it at the committed state once that batch is committed into it, so overlays never chain.
   */
  rebase(base: Table<V>): void {
    this.#base = base;
  }

  /** Writes every local value into the base table. */
  commit(): void {
    for (const [key, value] of this.#local) this.#base.set(key, value);
  }
}

/** A state whose changes stay local until {@link commitOverlay}. */
export interface OverlayState extends LedgerState {
  readonly accounts: OverlayTable<AccountState>;
  readonly transfers: OverlayTable<TransferRecord>;
}

/**
 * Field by field rather than a spread: every account then has one hidden class, where spreads of
 * spreads gave V8 several and made each copy a slow generic clone (a tenth of the writer's CPU).
 */
const copyAccount = (account: AccountState): AccountState => ({
  id: account.id,
  currency: account.currency,
  type: account.type,
  normalSide: account.normalSide,
  flags: account.flags,
  metadata: account.metadata,
  openedAtVersion: account.openedAtVersion,
  openedAtMs: account.openedAtMs,
  status: account.status,
  debitsPosted: account.debitsPosted,
  creditsPosted: account.creditsPosted,
  debitsPending: account.debitsPending,
  creditsPending: account.creditsPending,
  // Never changed in place (evolve replaces it), so the copy shares it.
  recentLifecycleCommands: account.recentLifecycleCommands,
});
const copyTransfer = (transfer: TransferRecord): TransferRecord => ({ ...transfer });

/** A tentative view of `base`: evolve it freely, then commit or drop it. */
export function overlayState(base: LedgerState): OverlayState {
  return {
    version: base.version,
    lastRecordedAtMs: base.lastRecordedAtMs,
    stateBytes: base.stateBytes ?? 0,
    accounts: new OverlayTable(base.accounts, copyAccount),
    transfers: new OverlayTable(base.transfers, copyTransfer),
    limitsAsserted: base.limitsAsserted,
  };
}

/** Points an overlay's tables at `base` (see {@link OverlayTable.rebase}). */
export function rebaseOverlay(overlay: OverlayState, base: LedgerState): void {
  overlay.accounts.rebase(base.accounts);
  overlay.transfers.rebase(base.transfers);
}

/** Applies an overlay's changes to the state it was made from (or was rebased onto). */
export function commitOverlay(overlay: OverlayState, base: LedgerState): void {
  overlay.accounts.commit();
  overlay.transfers.commit();
  base.version = overlay.version;
  base.lastRecordedAtMs = overlay.lastRecordedAtMs;
  base.stateBytes = overlay.stateBytes ?? 0;
}
