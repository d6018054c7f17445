/**
 * @ledgerkit/tenant-rls — tenant isolation enforced by PostgreSQL: validated tenant ids, a
 * transaction-local tenant setting ({@link withTenant}), the owner and application roles,
 * forced row-level security policies, and append-only tables with a narrow retention path.
 * @packageDocumentation
 */
export { TENANT_ID_PATTERN, TENANT_ID_LENGTH_MAX, InvalidTenantIdError, isTenantId, assertTenantId } from './tenant-id.js';
export { withTenant, TransactionAbortedError, TransactionEndedError, TENANT_SETTING, type ClientPool, type WithTenantOptions } from './with-tenant.js';
export { withPooledClient, checkOutClient, stopListeningForErrors, type PooledClientOptions } from './pooled-client.js';
export { ensureRoles, checkRoles, DEFAULT_ROLES, RoleRefusedError, type RoleRefusalReason, type RoleNames, type EnsureRolesOptions } from './roles.js';
export { tenantIsolationSql, tenantIsolationSqlV1, tenantPolicyUpdateSql, tenantScopedFunctionSql, appendOnlyFunctionSql, appendOnlySql, APPEND_ONLY_SQLSTATE, TENANT_PREDICATE_SQL, TENANT_PREDICATE_SQL_V1, type TenantScopedFunction } from './policies.js';
export { withRetention, RETENTION_SETTING, RetentionRoleError, type WithRetentionOptions } from './retention.js';
export { quoteName, quoteLiteral, qualifiedName, SQL_NAME_PATTERN, type TableName } from './sql.js';
export { isTransientSqlstate } from './sqlstate.js';
export { runMigrations, type SchemaMigration, type RunMigrationsOptions, type RunMigrationsResult } from './run-migrations.js';
