/**
 * Runs in each test worker before its files: points DATABASE_URL at this worker's own embedded
 * server when the global set-up started one per worker (see vitest.workers.ts). Child processes
 * the tests start inherit it.
 */
import { WORKER_DATABASE_URLS } from './vitest.workers.js';

const urls = JSON.parse(process.env[WORKER_DATABASE_URLS] ?? '[]') as string[];
if (urls.length > 0) {
  // VITEST_POOL_ID numbers the workers 1..maxWorkers.
  const worker = Math.max(1, Number(process.env['VITEST_POOL_ID'] ?? '1'));
  process.env['DATABASE_URL'] = urls[(worker - 1) % urls.length];
}
