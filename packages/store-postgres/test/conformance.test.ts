import { describeEventStoreConformance } from '@ledgerkit/ledger-core/testing';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll } from 'vitest';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;
let store: PostgresEventStore;

beforeAll(async () => {
  db = await openTestDatabase();
  // Reading right after writing: wait out transactions other test files hold open on a shared server.
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
});

afterAll(async () => {
  await db?.close();
});

describeEventStoreConformance('PostgresEventStore', async () => ({ store }));
