/**
 * A runner in a process of its own, for the crash test to kill: it projects one tenant with the
 * standard read models and a seen-projection (whose key catches a double apply) until it is killed.
 * Environment: APP_URL, TENANT_ID, BATCH_SIZE. Prints `started` once its runner runs.
 */
import { balancesProjection, historyProjection, ProjectionRunner } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import pg from 'pg';
import { seenProjection } from './seen.js';

const appUrl = process.env['APP_URL'];
const tenantId = process.env['TENANT_ID'];
if (appUrl === undefined || tenantId === undefined) throw new Error('APP_URL and TENANT_ID are required');

const pool = new pg.Pool({ connectionString: appUrl, max: 6 });
pool.on('error', () => undefined);
const store = await PostgresEventStore.open({ pool, horizonWaitMs: 10_000 });
const runner = new ProjectionRunner({
  pool,
  store,
  tenantIds: [tenantId],
  projections: [balancesProjection(), historyProjection(), seenProjection('seen', () => false)],
  batchSize: Number(process.env['BATCH_SIZE'] ?? '20'),
  takeoverIntervalMs: 20,
  onError: (error) => process.stderr.write(`runner error: ${error.message}\n`),
});
runner.start();
process.stdout.write('started\n');
// Runs until killed.
setInterval(() => undefined, 60_000);
