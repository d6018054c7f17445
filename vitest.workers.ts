/**
 * How many test files run at once, and where each finds its PostgreSQL server.
 *
 * Files that share one server disturb each other through it: a transaction one file holds open
 * holds back every global read on the server (the store's commit-order horizon is cluster-wide),
 * so another file's projections wait and its read-your-writes checks time out. So with a server
 * given by DATABASE_URL the files run one at a time, and without one the run starts an embedded
 * server per worker (vitest.global-setup.ts) and each worker uses its own
 * (vitest.worker-setup.ts). Most suites wait on PostgreSQL rather than compute, so two workers
 * pay even on 2 cores (vitest's default there, cores - 1, is one).
 */
import { availableParallelism } from 'node:os';

/** The environment variable through which the global set-up hands the workers their servers (a JSON array of URLs). */
export const WORKER_DATABASE_URLS = 'LEDGERKIT_TEST_DATABASE_URLS';

/** Most embedded servers (and so workers) a run starts. */
const WORKERS_MAX = 4;

/** Test files at once: one on a given server, else 2..WORKERS_MAX (cores - 1), each with its own embedded server. */
export function testWorkers(env: NodeJS.ProcessEnv = process.env): number {
  const given = env['DATABASE_URL'];
  if (given !== undefined && given !== '') return 1;
  return Math.min(WORKERS_MAX, Math.max(2, availableParallelism() - 1));
}
