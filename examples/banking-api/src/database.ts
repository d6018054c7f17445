/**
 * Database set-up for the demo, the tests and the load test: every schema migrated (event store,
 * read models, the API's own) by an administrator, and the application role's connection string.
 */
import { migrateReadModels } from '@ledgerkit/projections';
import { migrate } from '@ledgerkit/store-postgres';
import { DEFAULT_ROLES, type RoleNames } from '@ledgerkit/tenant-rls';
import pg from 'pg';
import { migrateBankingApi } from './migrations.js';

/** Options of {@link prepareDatabase}. */
export interface PrepareDatabaseOptions {
  /** A superuser (or owner-role member with CREATEROLE) connection string to the target database. */
  readonly adminUrl: string;
  /** Password of the application role, set if the role is created now. */
  readonly appPassword: string;
  readonly roles?: RoleNames;
}

/** Migrates every schema the API needs and returns the application role's connection string. */
export async function prepareDatabase(options: PrepareDatabaseOptions): Promise<{ appUrl: string }> {
  const roles = options.roles ?? DEFAULT_ROLES;
  const admin = new pg.Pool({ connectionString: options.adminUrl, max: 2 });
  try {
    await migrate({ pool: admin, roles, appPassword: options.appPassword });
    await migrateReadModels({ pool: admin, roles });
    await migrateBankingApi({ pool: admin, roles });
  } finally {
    await admin.end();
  }
  const appUrl = new URL(options.adminUrl);
  appUrl.username = roles.app;
  appUrl.password = options.appPassword;
  return { appUrl: appUrl.toString() };
}
