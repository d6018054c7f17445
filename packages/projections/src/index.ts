/**
 * @ledgerkit/projections — projections of Ledgerkit's event log into PostgreSQL read models.
 *
 * {@link ProjectionRunner} runs projections with exactly-once checkpoints (the read-model rows and
 * the checkpoint commit in one transaction), catch-up, live updates on NOTIFY, rebuild, and one
 * active runner per projection and tenant across processes. {@link balancesProjection} and
 * {@link historyProjection} are the standard read models; {@link ReadModels} queries them:
 * balances now in one lookup, balances, statements and trial balances as of any point in O(log n).
 * Start with {@link migrateReadModels} (as an administrator, after the event store's `migrate`).
 * @packageDocumentation
 */
export {
  ProjectionRunner,
  rebuildProjection,
  DEFAULT_NOTIFY_CHANNEL,
  RUNNER_TENANTS_MAX,
  RUNNER_PROJECTIONS_MAX,
  type ProjectionRunnerOptions,
  type BatchCommitted,
  type ProjectionStatus,
  type ProjectionState,
  type ProjectionErrorInfo,
  type RebuildProjectionOptions,
} from './runner.js';
export { eventProjection, PROJECTION_NAME_PATTERN, type Projection, type ProjectionEvent, type ProjectionContext, type ErrorPolicy, type EventProjectionDefinition } from './projection.js';
export {
  ProjectionFailedError,
  CheckpointMovedError,
  ResultTooLargeError,
  ApplicationRoleRequiredError,
  RunnerNotRunningError,
  StopTimeoutError,
  ReadModelSchemaVersionError,
  isTransientError,
  type FailedEvent,
  type RoleRefusal,
  type RunnerNotRunningReason,
  type AbandonedProjection,
} from './errors.js';
export type { Checkpoint } from './checkpoints.js';
export { balancesProjection, inlineBalances, BALANCES_PROJECTION, type InlineBalancesOptions, type InlineBalances, type InlineBalancesPlan, type InlineStatement } from './read-models/balances.js';
export { historyProjection, HISTORY_PROJECTION } from './read-models/history.js';
export { reconcileLedger, RECONCILE_MISMATCHES_MAX, type ReconcileOptions, type Reconciliation, type AccountMismatch } from './reconcile.js';
export {
  ReadModels,
  BALANCE_READS_PER_STATEMENT_MAX,
  TRANSFER_PAGE_SIZE_MAX,
  TRIAL_BALANCE_LINES_MAX,
  TRIAL_BALANCE_LINES_DEFAULT,
  type TrialBalanceOptions,
  type ReadModelsOptions,
  type StatementOptions,
  type TransferView,
  type TransferPostingView,
  type HoldView,
  type HoldsPage,
  type TransfersPage,
  type TransfersByReferenceOptions,
  type OpenHoldsOptions,
} from './read-models/read-models.js';
export {
  ACCOUNT_PAGE_SIZE_MAX,
  ACCOUNT_PAGE_SIZE_DEFAULT,
  type AccountListOptions,
  type AccountsPage,
  type AccountBalanceView,
} from './read-models/account-list.js';
export { migrateReadModels, READ_MODEL_SCHEMA_VERSION, type MigrateReadModelsOptions, type MigrateReadModelsResult } from './migrate.js';
export { READ_MODEL_MIGRATIONS, READ_MODEL_TABLES, INLINE_PLAN_DECLINED_SQLSTATE, type ReadModelMigration } from './schema.js';
