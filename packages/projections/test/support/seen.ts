import { eventProjection, type Projection } from '@ledgerkit/projections';
import type pg from 'pg';
import type { TestDatabase } from './test-database.js';

/** A table a test projection records the events it applied in; its key catches a double apply. */
export async function createSeenTable(db: TestDatabase): Promise<void> {
  await db.admin.query(`
    CREATE SCHEMA IF NOT EXISTS test_seen;
    CREATE TABLE IF NOT EXISTS test_seen.events (tenant_id text, projection text, ledger_id text, ledger_version bigint,
      PRIMARY KEY (tenant_id, projection, ledger_id, ledger_version));
    GRANT USAGE ON SCHEMA test_seen TO ${db.roles.app};
    GRANT SELECT, INSERT, DELETE ON test_seen.events TO ${db.roles.app};`);
}

/**
 * A projection that records each event it applies in `test_seen.events`, and throws on the
 * transfer `poison` while `poisoned()` says so.
 */
export function seenProjection(name: string, poisoned: () => boolean, errorPolicy?: 'stop' | 'skip-with-record'): Projection {
  return eventProjection({
    name,
    ...(errorPolicy === undefined ? {} : { errorPolicy }),
    async handle({ client, tenantId }, { stored }) {
      if (stored.data['transferId'] === 'poison' && poisoned()) throw new Error('this projection cannot handle the poison transfer');
      await client.query('INSERT INTO test_seen.events (tenant_id, projection, ledger_id, ledger_version) VALUES ($1, $2, $3, $4)', [tenantId, name, stored.ledgerId, stored.ledgerVersion]);
    },
    async reset({ client, tenantId }) {
      await client.query('DELETE FROM test_seen.events WHERE tenant_id = $1 AND projection = $2', [tenantId, name]);
    },
  });
}

/** Ledger versions a seen-projection applied, in order. */
export async function seenVersions(admin: pg.Pool, tenantId: string, projection: string): Promise<number[]> {
  const { rows } = await admin.query<{ v: string }>('SELECT ledger_version AS v FROM test_seen.events WHERE tenant_id = $1 AND projection = $2 ORDER BY 1', [tenantId, projection]);
  return rows.map((row) => Number(row.v));
}
