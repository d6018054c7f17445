import type { CurrencyRegistry } from '@ledgerkit/ledger-core';
import type { ReadModels } from '@ledgerkit/projections';
import type { AccountDirectory } from './account-directory.js';
import type { ApiSettings } from './config.js';
import type { LedgerRegistry } from './ledgers.js';

/** One readiness check's result. */
export interface CheckResult {
  readonly ok: boolean;
  readonly detail?: string;
}

/** What the route handlers use. */
export interface Services {
  readonly settings: ApiSettings;
  readonly currencies: CurrencyRegistry;
  readonly ledgers: LedgerRegistry;
  readonly models: ReadModels;
  readonly directory: AccountDirectory;
  /** Readiness checks by name (database, writers, audit, ...). */
  readiness(): Promise<Record<string, CheckResult>>;
}
