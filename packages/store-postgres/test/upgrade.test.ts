import { DuplicateIndexKeyError, indexKeysOf, type StoredEvent } from '@ledgerkit/ledger-core';
import { migrate, PostgresEventStore, SCHEMA_VERSION } from '@ledgerkit/store-postgres';
import { withTenant } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOpened, emptyHead, encodeAfter, headAfter, transferPosted } from './support/events.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// A database written by the version-2 schema (keys in index_keys, jsonb payloads) is upgraded
// in place: its events, keys and duplicate protection must all survive migration 3.

let db: TestDatabase;

beforeAll(async () => {
  db = await openTestDatabase({ migrateTo: 2 });
});

afterAll(async () => {
  await db?.close();
});

/** The version-1 append call (jsonb arrays, one key array with versions), as the store sent it before migration 3. */
function appendV1(tenantId: string, ledgerId: string, expectedVersion: number, events: readonly StoredEvent[]): { text: string; values: unknown[] } {
  const keys: string[] = [];
  const keyVersions: number[] = [];
  for (const event of events) {
    for (const key of indexKeysOf(event)) {
      keys.push(key);
      keyVersions.push(event.ledgerVersion);
    }
  }
  return {
    text: `SELECT ledgerkit.append_events($1, $2, $3, $4::text[], $5::text[], $6::integer[], $7::jsonb[], $8::text[],
      $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::text[], $14::text[], $15::text[], $16::bigint[]) AS version`,
    values: [
      tenantId,
      ledgerId,
      expectedVersion,
      events.map((e) => e.eventId),
      events.map((e) => e.type),
      events.map((e) => e.schemaVersion),
      events.map((e) => JSON.stringify(e.data)),
      events.map((e) => e.recordedAt),
      events.map((e) => e.effectiveAt),
      events.map((e) => e.correlationId),
      events.map((e) => e.causationId),
      events.map((e) => JSON.stringify(e.metadata)),
      events.map((e) => e.previousHash),
      events.map((e) => e.hash),
      keys,
      keyVersions,
    ],
  };
}

describe('migrations 3 to 7 on a database that already holds events', () => {
  it('moves every idempotency key into its event, keeps the events as they were, and still refuses a duplicate; the chain fence accepts the last hash of the old events', async () => {
    const tenantId = 'upgrade-tenant';
    const ledgerId = 'eur';
    const head = emptyHead(tenantId, ledgerId);
    const first = encodeAfter(head, [accountOpened('cash'), accountOpened('bank'), transferPosted('t-1'), transferPosted('t-2')]);
    const call = appendV1(tenantId, ledgerId, 0, first);
    expect(await withTenant(db.app, tenantId, async (client) => (await client.query<{ version: string }>(call.text, call.values)).rows)).toEqual([{ version: '4' }]);

    // A store of this release refuses a schema it would fail on, before anything else.
    await expect(PostgresEventStore.open({ pool: db.app })).rejects.toThrow(/not migrated to this release's version/);
    expect(await migrate({ pool: db.admin, roles: db.roles })).toEqual({
      // 3 and every migration after it.
      applied: Array.from({ length: SCHEMA_VERSION - 2 }, (_, index) => 3 + index),
      schemaVersion: SCHEMA_VERSION,
    });
    const { rows: tables } = await db.admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'ledgerkit' AND c.relname = 'index_keys'`);
    expect(tables).toEqual([{ n: 0 }]);

    // A transaction open anywhere on the server (another suite's, on a shared server) holds global
    // reads below it: wait for it rather than read the log's head short.
    const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
    expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', limit: 100 })).toEqual(first);
    const found = await store.findByIndexKeys({ tenantId, ledgerId, keys: ['transfer:t-1', 'transfer:t-2', 'transfer:t-3'] });
    expect([...found.keys()].sort()).toEqual(['transfer:t-1', 'transfer:t-2']);
    expect(found.get('transfer:t-2')).toEqual(first[3]);

    const again = encodeAfter(headAfter(head, first), [transferPosted('t-3'), transferPosted('t-1')]);
    await expect(store.append({ tenantId, ledgerId, expectedVersion: 4, events: again })).rejects.toEqual(new DuplicateIndexKeyError('transfer:t-1'));
    const next = encodeAfter(headAfter(head, first), [transferPosted('t-3')]);
    expect(await store.append({ tenantId, ledgerId, expectedVersion: 4, events: next })).toEqual({ ledgerVersion: 5 });
    expect((await store.findByIndexKeys({ tenantId, ledgerId, keys: ['transfer:t-3'] })).get('transfer:t-3')).toEqual(next[0]);
    // The global log (migration 6's function) holds the old events and the new one, in commit order.
    const page = await store.readAll({ tenantId, after: null, limit: 100 });
    expect(page.map((entry) => entry.event)).toEqual([...first, ...next]);
    expect(await store.readAll({ tenantId, after: page[1]?.position ?? null, limit: 2 })).toEqual(page.slice(2, 4));
  });
});
