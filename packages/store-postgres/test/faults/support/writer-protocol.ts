/**
 * What a test tells a writer process (one JSON object in an environment variable) and what the
 * process reports back (one JSON object per line on stdout). A line is written only after what
 * it reports has happened, and stdout to a pipe is written synchronously on Linux, so a line the
 * test has read survives a SIGKILL that comes right after it.
 */

/** The environment variable that carries a {@link WriterProcessConfig}. */
export const CONFIG_VARIABLE = 'LEDGERKIT_FAULT_WRITER';

/** How a writer process is set to work. */
export interface WriterProcessConfig {
  /** Connection string of the application role. */
  readonly appUrl: string;
  readonly tenantId: string;
  readonly ledgerId: string;
  /** Ids submitted first (retries of ids an earlier process sent), before any new one. */
  readonly retryIds: readonly string[];
  /** New ids are `<idPrefix>-<n>` for n = 0 .. newIds - 1. */
  readonly idPrefix: string;
  readonly newIds: number;
  /**
   * Every `crossEvery`-th new id n, also submit `<crossPrefix>-<n - crossLag>`: an id another
   * process submits too, usually after that process has decided it (`crossLag` ids earlier).
   */
  readonly crossPrefix?: string;
  readonly crossEvery?: number;
  readonly crossLag?: number;
  /** Callers submitting at once, each one id at a time. */
  readonly concurrency: number;
  /** Attempts per id when the call fails with a retriable error. */
  readonly attemptsMax: number;
  readonly batchSizeMax?: number;
  readonly conflictRetriesMax?: number;
  readonly snapshotEveryEvents?: number;
  /** Wait after `ready` for a line on stdin before submitting: lets a test start several processes at once. */
  readonly awaitGo?: boolean;
}

/** The wall clock in epoch milliseconds with sub-millisecond precision, comparable between processes of one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** One line of a writer process's report. Times `t` are {@link nowMs}. */
export type WriterLine =
  /** The ledger is open at version `v`; submissions start. */
  | { readonly e: 'ready'; readonly v: number }
  /** The id is about to be submitted (once per attempt), at `t`. */
  | { readonly e: 'sent'; readonly id: string; readonly t: number }
  /** Acknowledged at `t`: applied at `v` (a linked group's members at `m`), or already applied before (`dup`). */
  | { readonly e: 'ok'; readonly id: string; readonly v: number; readonly dup: boolean; readonly m?: readonly number[]; readonly t: number }
  /** Refused by a business rule at `t`; nothing was written for it. */
  | { readonly e: 'rejected'; readonly id: string; readonly code: string; readonly t: number }
  /** An attempt failed with an error (`code` of a `LedgerError`, else the error's name). */
  | { readonly e: 'error'; readonly id: string; readonly code: string; readonly retriable: boolean; readonly message: string }
  /** No definite outcome after every attempt. */
  | { readonly e: 'gave-up'; readonly id: string }
  /** Every id has an outcome; `conflicts` counts appends another writer beat. */
  | { readonly e: 'done'; readonly conflicts: number };
