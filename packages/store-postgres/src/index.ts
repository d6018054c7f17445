/**
 * @ledgerkit/store-postgres — the PostgreSQL `EventStore` for Ledgerkit: versioned migrations,
 * fenced batch appends in one statement, global reads in commit order that never skip an event,
 * the idempotency index and snapshots, all under forced row-level security per tenant.
 *
 * Start with {@link migrate} (as an administrator), then {@link PostgresEventStore.open} (as
 * the application role). {@link startEmbeddedPostgres} runs a throwaway server for demos and tests.
 * @packageDocumentation
 */
export {
  PostgresEventStore,
  HORIZON_WAIT_MS_MAX,
  INLINE_PLAN_STATEMENTS_MAX,
  composeInlineProjections,
  type PostgresEventStoreOptions,
  type GlobalReadLag,
  type InlineProjection,
  type InlinePlan,
} from './postgres-event-store.js';
export { BatchCommittedUnreadableError, type BatchStatement } from './statement-batch.js';
export { migrate, SCHEMA_VERSION, type MigrateOptions, type MigrateResult } from './migrate.js';
export { StoreSchemaVersionError } from './schema-version.js';
export { MIGRATIONS, SCHEMA, EVENTS_CHANNEL, VERSION_CONFLICT_SQLSTATE, DUPLICATE_INDEX_KEY_SQLSTATE, RECORDED_EARLIER_SQLSTATE, type Migration } from './migrations.js';
export { startEmbeddedPostgres, EMBEDDED_SETTINGS_MAX, type EmbeddedPostgresOptions, type EmbeddedPostgresServer } from './embedded.js';
