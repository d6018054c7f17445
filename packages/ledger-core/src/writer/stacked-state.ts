import type { AccountState, LedgerState, Table, TransferRecord } from '../domain/state.js';

/**
 * A copy-on-read view over a table whose base can be swapped: the writer decides batch N+1 on
 * top of batch N's view while N is being appended, and when N commits it points N+1's view at
 * the committed state instead, so views never chain deeper than one.
 */
class StackedTable<V extends object> implements Table<V> {
  base: Table<V>;
  readonly #local = new Map<string, V>();

  constructor(base: Table<V>) {
    this.base = base;
  }

  get(key: string): V | undefined {
    const local = this.#local.get(key);
    if (local !== undefined) return local;
    const below = this.base.get(key);
    if (below === undefined) return undefined;
    // evolve changes what get returns in place: the copy keeps the base untouched.
    const copy = { ...below };
    this.#local.set(key, copy);
    return copy;
  }

  set(key: string, value: V): this {
    this.#local.set(key, value);
    return this;
  }

  /** Writes every value read or written here into `target`. */
  commitTo(target: Table<V>): void {
    for (const [key, value] of this.#local) target.set(key, value);
  }
}

/** A tentative state over another state, committed into the writer's state once its batch is durable. */
export interface StackedState extends LedgerState {
  readonly accounts: StackedTable<AccountState>;
  readonly transfers: StackedTable<TransferRecord>;
}

/** A view over `base` (the committed state, or the view of the batch being appended). */
export function stackOn(base: LedgerState): StackedState {
  return {
    version: base.version,
    lastRecordedAtMs: base.lastRecordedAtMs,
    accounts: new StackedTable(base.accounts),
    transfers: new StackedTable(base.transfers),
    limitsAsserted: base.limitsAsserted,
  };
}

/**
 * Points a view at `state`. Sound only when `state` now holds everything the old base showed:
 * the batch below has just been committed into it.
 */
export function rebase(view: StackedState, state: LedgerState): void {
  view.accounts.base = state.accounts;
  view.transfers.base = state.transfers;
}

/** Applies a view's changes to `state`, the committed state. */
export function commitStacked(view: StackedState, state: LedgerState): void {
  view.accounts.commitTo(state.accounts);
  view.transfers.commitTo(state.transfers);
  state.version = view.version;
  state.lastRecordedAtMs = view.lastRecordedAtMs;
}
