import { PostgresEventStore, EVENTS_CHANNEL } from '@ledgerkit/store-postgres';
import type { AppendRequest } from '@ledgerkit/ledger-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOpened, emptyHead, encodeAfter, headAfter, transferPosted } from './support/events.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await openTestDatabase();
});

afterAll(async () => {
  await db?.close();
});

describe('the inline hook', () => {
  it('runs inside the append’s transaction: it sees the new events with the tenant set, and its writes commit with them', async () => {
    const seen: { count: number; tenant: string; request: AppendRequest }[] = [];
    const store = await PostgresEventStore.open({
      pool: db.app,
      inline: async (client, request) => {
        const { rows } = await client.query<{ n: number; tenant: string }>(
          `SELECT count(*)::int AS n, current_setting('ledgerkit.tenant_id', true) AS tenant FROM ledgerkit.events WHERE ledger_id = $1`,
          [request.ledgerId],
        );
        seen.push({ count: rows[0]?.n ?? -1, tenant: rows[0]?.tenant ?? '', request });
      },
    });
    const events = encodeAfter(emptyHead('inline-a', 'eur'), [accountOpened('cash'), accountOpened('revenue')]);
    await store.append({ tenantId: 'inline-a', ledgerId: 'eur', expectedVersion: 0, events });
    expect(seen).toEqual([{ count: 2, tenant: 'inline-a', request: { tenantId: 'inline-a', ledgerId: 'eur', expectedVersion: 0, events } }]);
    // An empty append writes nothing and calls nothing.
    await store.append({ tenantId: 'inline-a', ledgerId: 'eur', expectedVersion: 2, events: [] });
    expect(seen).toHaveLength(1);
  });

  it('a hook that throws rolls the whole append back and rejects with its error', async () => {
    const failing = await PostgresEventStore.open({
      pool: db.app,
      inline: async () => {
        throw new Error('read model unavailable');
      },
    });
    const events = encodeAfter(emptyHead('inline-b', 'eur'), [accountOpened('cash')]);
    await expect(failing.append({ tenantId: 'inline-b', ledgerId: 'eur', expectedVersion: 0, events })).rejects.toThrow('read model unavailable');
    const plain = await PostgresEventStore.open({ pool: db.app });
    expect(await plain.readStream({ tenantId: 'inline-b', ledgerId: 'eur', direction: 'forward', limit: 10 })).toEqual([]);
    expect(await plain.append({ tenantId: 'inline-b', ledgerId: 'eur', expectedVersion: 0, events })).toEqual({ ledgerVersion: 1 });
  });
});

describe('the append notification', () => {
  it(`notifies ${EVENTS_CHANNEL} with the tenant id when an append commits, once per append, and never for one that rolls back`, async () => {
    const listener = new pg.Client({ connectionString: db.appUrl });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (message) => {
      if (message.channel === EVENTS_CHANNEL) heard.push(message.payload ?? '');
    });
    try {
      await listener.query(`LISTEN ${EVENTS_CHANNEL}`);
      const store = await PostgresEventStore.open({ pool: db.app });
      let head = emptyHead('notify-a', 'eur');
      const opened = encodeAfter(head, [accountOpened('cash'), accountOpened('revenue')]);
      await store.append({ tenantId: 'notify-a', ledgerId: 'eur', expectedVersion: 0, events: opened });
      head = headAfter(head, opened);
      const moved = encodeAfter(head, [transferPosted('t1'), transferPosted('t2')]);
      await store.append({ tenantId: 'notify-a', ledgerId: 'eur', expectedVersion: 2, events: moved });
      // A conflicting append (wrong expected version) rolls back: no notification.
      await expect(store.append({ tenantId: 'notify-a', ledgerId: 'eur', expectedVersion: 2, events: moved })).rejects.toThrow();
      await store.append({ tenantId: 'notify-b', ledgerId: 'eur', expectedVersion: 0, events: encodeAfter(emptyHead('notify-b', 'eur'), [accountOpened('cash')]) });
      const deadline = Date.now() + 5_000;
      while (heard.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(heard).toEqual(['notify-a', 'notify-a', 'notify-b']);
    } finally {
      await listener.end();
    }
  });
});
