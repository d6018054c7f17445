import { ProjectionRunner, type ProjectionStatus } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll } from 'vitest';
import { createSeenTable, currencies } from './fixtures.js';
import { openTestDatabase, type TestDatabase } from './test-database.js';

/** What a runner test file shares: its database, a store on it, and runners stopped at the end. */
export interface RunnerFile {
  /** The file's database (set once `beforeAll` ran). */
  readonly db: TestDatabase;
  /** A store on it that waits up to 10 s for the global-read horizon. */
  readonly store: PostgresEventStore;
  /** A runner of one tenant, polling and taking over every 50 ms, with `overrides`; stopped after the file. */
  runnerFor(tenantId: string, overrides: Partial<ConstructorParameters<typeof ProjectionRunner>[0]>): ProjectionRunner;
  /** A runner made elsewhere, stopped after the file (before the database closes, even when a test fails). */
  track(runner: ProjectionRunner): ProjectionRunner;
}

/**
 * Registers the file's `beforeAll` (a database with the `seen` table, a store) and `afterAll`
 * (every tracked runner stopped, then the database closed), and returns access to them.
 */
export function useRunnerFile(): RunnerFile {
  let db: TestDatabase | undefined;
  let store: PostgresEventStore | undefined;
  const runners: ProjectionRunner[] = [];
  beforeAll(async () => {
    db = await openTestDatabase();
    store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
    await createSeenTable(db);
  });
  afterAll(async () => {
    await Promise.all(runners.map((runner) => runner.stop().catch(() => undefined)));
    await db?.close();
  });
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is set in beforeAll`);
    return value;
  };
  const file: RunnerFile = {
    get db() {
      return ready(db, 'db');
    },
    get store() {
      return ready(store, 'store');
    },
    runnerFor(tenantId, overrides) {
      return file.track(new ProjectionRunner({ pool: file.db.app, store: file.store, tenantIds: [tenantId], projections: [], currencies, pollIntervalMs: 50, takeoverIntervalMs: 50, ...overrides }));
    },
    track(runner) {
      runners.push(runner);
      return runner;
    },
  };
  return file;
}

/** A runner's status of one projection; throws when the runner has none by that name. */
export async function statusOf(runner: ProjectionRunner, projection: string): Promise<ProjectionStatus> {
  const found = (await runner.status()).find((status) => status.projection === projection);
  if (found === undefined) throw new Error(`no status for ${projection}`);
  return found;
}
