import type { LedgerErrorCode } from './errors.js';

/**
 * Whether `error` is a library error with one of `codes`, judged by its stable `code`, not by
 * `instanceof`. An error that crosses the store port or a package boundary may come from another
 * copy of ledger-core (an application's own beside the one a store depends on): it is an instance
 * of that copy's classes, not of these, but its `code` means the same. Internal: not exported
 * from the package.
 */
export function hasErrorCode(error: unknown, codes: readonly LedgerErrorCode[]): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code: unknown = (error as { readonly code?: unknown }).code;
  return typeof code === 'string' && (codes as readonly string[]).includes(code);
}
