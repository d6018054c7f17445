import { BatchCommittedUnreadableError, composeInlineProjections, INLINE_PLAN_STATEMENTS_MAX, PostgresEventStore, EVENTS_CHANNEL, type InlinePlan, type InlineProjection } from '@ledgerkit/store-postgres';
import { AppendRefusedError, Ledger, LimitExceededError, StoreUnavailableError, VersionConflictError, WriterFailedError, type AppendRequest } from '@ledgerkit/ledger-core';
import { TransactionEndedError } from '@ledgerkit/tenant-rls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOpened, emptyHead, encodeAfter, headAfter, transferPosted } from './support/events.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';
import { INT8_UNPARSEABLE_MESSAGE, int8UnparseableWhile, MACADDR_UNPARSEABLE, UNPARSEABLE_MESSAGE, UNPARSEABLE_ROW_SQL } from './support/unparseable-type.js';

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

  it('a hook that throws rolls the whole append back and rejects with AppendRefusedError (nothing written), its error as the cause, retriable only if that says so', async () => {
    const thrown = new Error('read model unavailable');
    const failing = await PostgresEventStore.open({
      pool: db.app,
      inline: async () => {
        throw thrown;
      },
    });
    const events = encodeAfter(emptyHead('inline-b', 'eur'), [accountOpened('cash')]);
    const refusal = await failing.append({ tenantId: 'inline-b', ledgerId: 'eur', expectedVersion: 0, events }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(AppendRefusedError);
    expect(refusal).toMatchObject({ code: 'append_refused', retriable: false, message: expect.stringContaining('read model unavailable') });
    expect((refusal as Error).cause).toBe(thrown);
    // An error that says it may pass next time keeps that; so does a server error of a transient class.
    for (const [error, retriable] of [
      [Object.assign(new Error('busy'), { retriable: true }), true],
      [Object.assign(new Error('could not obtain lock'), { code: '55P03', severity: 'ERROR' }), true],
      [Object.assign(new Error('permission denied'), { code: '42501', severity: 'ERROR' }), false],
      // Class 55 is the database's set-up (an object not in the state the statement needs), 55P03 aside.
      [Object.assign(new Error('object not in prerequisite state'), { code: '55000', severity: 'ERROR' }), false],
    ] as const) {
      const store = await PostgresEventStore.open({
        pool: db.app,
        inline: async () => {
          throw error;
        },
      });
      await expect(store.append({ tenantId: 'inline-b', ledgerId: 'eur', expectedVersion: 0, events })).rejects.toMatchObject({ code: 'append_refused', retriable, cause: error });
    }
    const plain = await PostgresEventStore.open({ pool: db.app });
    expect(await plain.readStream({ tenantId: 'inline-b', ledgerId: 'eur', direction: 'forward', limit: 10 })).toEqual([]);
    expect(await plain.append({ tenantId: 'inline-b', ledgerId: 'eur', expectedVersion: 0, events })).toEqual({ ledgerVersion: 1 });
  });

  it('a hook’s StoreUnavailableError made by another copy of ledger-core (a projection package’s own) is passed on as it is, not wrapped again', async () => {
    const path = '../../ledger-core/src/errors.ts?another-copy';
    const copy = (await import(/* @vite-ignore */ path)) as typeof import('../../ledger-core/src/errors.js');
    const lost = new copy.StoreUnavailableError('the read model’s server went away', Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' }));
    expect(lost).not.toBeInstanceOf(StoreUnavailableError);
    const failing = await PostgresEventStore.open({
      pool: db.app,
      inline: async () => {
        throw lost;
      },
    });
    const events = encodeAfter(emptyHead('inline-d', 'eur'), [accountOpened('cash')]);
    await expect(failing.append({ tenantId: 'inline-d', ledgerId: 'eur', expectedVersion: 0, events })).rejects.toBe(lost);
  });

  it('a hook that catches the error of a statement it ran cannot commit the append: it rejects, writes nothing, and the stream goes on', async () => {
    const swallowing = await PostgresEventStore.open({
      pool: db.app,
      inline: async (client) => {
        // The statement's error is caught, but PostgreSQL has aborted the transaction: its COMMIT rolls back.
        await client.query('SELECT 1 / 0').catch(() => undefined);
      },
    });
    const events = encodeAfter(emptyHead('inline-c', 'eur'), [accountOpened('cash')]);
    const refusal = await swallowing.append({ tenantId: 'inline-c', ledgerId: 'eur', expectedVersion: 0, events }).catch((error: unknown) => error);
    // The COMMIT answered ROLLBACK: refused, nothing written; the caught statement error is the
    // reason, and a division by zero will fail again.
    expect(refusal).toBeInstanceOf(AppendRefusedError);
    expect(refusal).toMatchObject({ code: 'append_refused', retriable: false, cause: { code: '22012' } });
    expect((refusal as Error).message).toContain('SQLSTATE 22012');
    expect((refusal as Error).message).toContain('rolled back at its COMMIT');
    // A caught error of a class that may pass next time (a serialization failure) leaves it retriable.
    const transient = await PostgresEventStore.open({
      pool: db.app,
      inline: async (client) => {
        await client.query(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`).catch(() => undefined);
      },
    });
    await expect(transient.append({ tenantId: 'inline-c', ledgerId: 'eur', expectedVersion: 0, events })).rejects.toMatchObject({ code: 'append_refused', retriable: true, cause: { code: '40001' } });
    // node-postgres' callback style, a last-argument callback or a config's, is watched as well.
    const ignoring = (run: (client: pg.PoolClient, done: () => void) => void) =>
      PostgresEventStore.open({ pool: db.app, inline: (client) => new Promise<void>((resolve) => run(client as pg.PoolClient, resolve)) });
    for (const store of [
      await ignoring((client, done) => void client.query('SELECT 1 / 0', [], () => done())),
      await ignoring((client, done) => void client.query({ text: 'SELECT 1 / 0', callback: () => done() } as unknown as string)),
    ]) {
      await expect(store.append({ tenantId: 'inline-c', ledgerId: 'eur', expectedVersion: 0, events })).rejects.toMatchObject({ code: 'append_refused', retriable: false, cause: { code: '22012' } });
    }
    const plain = await PostgresEventStore.open({ pool: db.app });
    expect(await plain.readStream({ tenantId: 'inline-c', ledgerId: 'eur', direction: 'forward', limit: 10 })).toEqual([]);
    expect(await plain.append({ tenantId: 'inline-c', ledgerId: 'eur', expectedVersion: 0, events })).toEqual({ ledgerVersion: 1 });
  });
});

describe('an inline hook that ends the append’s transaction itself', () => {
  it('rejects with TransactionEndedError — never resolved as if committed, nor refused as "nothing written" — whether the hook rolled back or committed', async () => {
    const events = encodeAfter(emptyHead('inline-e', 'eur'), [accountOpened('cash')]);
    const rollingBack = await PostgresEventStore.open({
      pool: db.app,
      inline: async (client) => {
        // A ROLLBACK after a savepoint ends the whole transaction, the append with it.
        await client.query('SAVEPOINT a');
        await client.query('ROLLBACK');
      },
    });
    const lost = await rollingBack.append({ tenantId: 'inline-e', ledgerId: 'eur', expectedVersion: 0, events }).catch((error: unknown) => error);
    expect(lost).toBeInstanceOf(TransactionEndedError);
    const plain = await PostgresEventStore.open({ pool: db.app });
    expect(await plain.readStream({ tenantId: 'inline-e', ledgerId: 'eur', direction: 'forward', limit: 10 })).toEqual([]);

    const thrown = new Error('after its own COMMIT');
    const committing = await PostgresEventStore.open({
      pool: db.app,
      inline: async (client) => {
        await client.query('COMMIT');
        throw thrown;
      },
    });
    const kept = await committing.append({ tenantId: 'inline-e', ledgerId: 'eur', expectedVersion: 0, events }).catch((error: unknown) => error);
    expect(kept).toBeInstanceOf(TransactionEndedError);
    expect(kept).not.toBeInstanceOf(AppendRefusedError);
    // The append did commit: the error says so may have happened, and it did.
    expect(await plain.readStream({ tenantId: 'inline-e', ledgerId: 'eur', direction: 'forward', limit: 10 })).toHaveLength(1);
  });
});

describe('a writer whose append the inline hook refuses', () => {
  it('fails the batch with WriterFailedError saying its commands were not applied, retriable as the refusal; a plan that throws refuses too; the same ids then apply as new commands', async () => {
    let failWith: unknown;
    let planThrows = false;
    const inline: InlineProjection = Object.assign(
      async () => {
        if (failWith !== undefined) throw failWith;
      },
      {
        plan: (): InlinePlan | undefined => {
          if (planThrows) throw new Error('plan could not be made');
          return undefined;
        },
      },
    );
    const store = await PostgresEventStore.open({ pool: db.app, inline });
    const where = { tenantId: 'inline-refused', ledgerId: 'eur' };
    const ledger = await Ledger.open({ store, ...where, snapshotEveryEvents: 0 });
    try {
      await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
      await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
      const transfer = { transferId: 'r1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR' };
      const settle = (promise: Promise<unknown>): Promise<unknown> => promise.then((value) => value, (error: unknown) => error);

      for (const [cause, retriable] of [
        [Object.assign(new Error('read models busy'), { retriable: true }), true],
        [new Error('read models at another version'), false],
      ] as const) {
        failWith = cause;
        const failure = await settle(ledger.transfer(transfer));
        expect(failure).toBeInstanceOf(WriterFailedError);
        expect(failure).not.toBeInstanceOf(StoreUnavailableError);
        expect(failure).toMatchObject({ code: 'writer_failed', retriable, message: expect.stringContaining('they were not applied'), cause: { code: 'append_refused', retriable, cause } });
      }
      failWith = undefined;
      planThrows = true;
      expect(await settle(ledger.transfer(transfer))).toMatchObject({ retriable: false, message: expect.stringContaining('were not applied'), cause: { code: 'append_refused', message: expect.stringContaining('plan could not be made') } });

      // Nothing of them was written: the same id is a new transfer once the hook lets it through.
      planThrows = false;
      expect(await ledger.transfer(transfer)).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 3 });
      const logged = await db.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = $1 AND ledger_id = $2', [where.tenantId, where.ledgerId]);
      expect(logged.rows).toEqual([{ n: 3 }]);
    } finally {
      await ledger.close();
    }
  });
});

describe('the inline hook’s plan (its statements sent with the append, one round trip)', () => {
  beforeAll(async () => {
    await db.admin.query(`CREATE TABLE IF NOT EXISTS public.plan_log (tenant text, seen_events integer, xid text)`);
    await db.admin.query(`GRANT SELECT, INSERT ON public.plan_log TO ${db.roles.app}`);
  });

  /** A hook whose plan logs, from inside the append's transaction, the tenant setting and the events it sees. */
  function loggingHook(calls: { general: number; planned: number }, failWith?: () => string | undefined): InlineProjection {
    return Object.assign(
      async () => {
        calls.general += 1;
      },
      {
        plan: (request: AppendRequest) => {
          calls.planned += 1;
          const failing = failWith?.();
          return {
            statements: [
              {
                text: `INSERT INTO public.plan_log SELECT current_setting('ledgerkit.tenant_id', true), (SELECT count(*)::int FROM ledgerkit.events WHERE ledger_id = $1), pg_current_xact_id()::text`,
                values: [request.ledgerId],
              },
              ...(failing === undefined ? [] : [{ text: failing, values: [] }]),
            ],
            declined: (error: unknown) => (error as { code?: string }).code === 'P0001',
          };
        },
      },
    );
  }

  it('runs the plan after the append, in its transaction, with the tenant set; the general path is not called', async () => {
    const calls = { general: 0, planned: 0 };
    const store = await PostgresEventStore.open({ pool: db.app, inline: loggingHook(calls) });
    const events = encodeAfter(emptyHead('plan-a', 'eur'), [accountOpened('cash'), accountOpened('revenue')]);
    expect(await store.append({ tenantId: 'plan-a', ledgerId: 'eur', expectedVersion: 0, events })).toEqual({ ledgerVersion: 2 });
    expect(calls).toEqual({ general: 0, planned: 1 });
    const { rows } = await db.admin.query(`SELECT l.tenant, l.seen_events, l.xid = e.txid::text AS same_transaction FROM public.plan_log l JOIN ledgerkit.events e ON e.tenant_id = 'plan-a' AND e.ledger_version = 1 WHERE l.tenant = 'plan-a'`);
    expect(rows).toEqual([{ tenant: 'plan-a', seen_events: 2, same_transaction: true }]);
  });

  it('a plan statement that fails rolls the append back and rejects with AppendRefusedError, the server’s error as the cause', async () => {
    const calls = { general: 0, planned: 0 };
    const store = await PostgresEventStore.open({ pool: db.app, inline: loggingHook(calls, () => 'SELECT 1 / 0') });
    const events = encodeAfter(emptyHead('plan-b', 'eur'), [accountOpened('cash')]);
    const refusal = await store.append({ tenantId: 'plan-b', ledgerId: 'eur', expectedVersion: 0, events }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(AppendRefusedError);
    // Division by zero (class 22, a data exception) will fail again: not retriable.
    expect(refusal).toMatchObject({ code: 'append_refused', retriable: false, message: expect.stringContaining('SQLSTATE 22012'), cause: { code: '22012' } });
    const plain = await PostgresEventStore.open({ pool: db.app });
    expect(await plain.readStream({ tenantId: 'plan-b', ledgerId: 'eur', direction: 'forward', limit: 10 })).toEqual([]);
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM public.plan_log WHERE tenant = 'plan-b'`)).rows).toEqual([{ n: 0 }]);
    expect(calls.general).toBe(0);
  });

  it('a plan that declines (its own error) rolls back and the append goes through the general path once', async () => {
    const calls = { general: 0, planned: 0 };
    const raise = `DO $$ BEGIN RAISE EXCEPTION 'declined'; END $$`;
    const store = await PostgresEventStore.open({ pool: db.app, inline: loggingHook(calls, () => raise) });
    const events = encodeAfter(emptyHead('plan-c', 'eur'), [accountOpened('cash')]);
    expect(await store.append({ tenantId: 'plan-c', ledgerId: 'eur', expectedVersion: 0, events })).toEqual({ ledgerVersion: 1 });
    expect(calls).toEqual({ general: 1, planned: 1 });
    // The declined batch left nothing; the event is in once.
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM public.plan_log WHERE tenant = 'plan-c'`)).rows).toEqual([{ n: 0 }]);
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = 'plan-c'`)).rows).toEqual([{ n: 1 }]);
  });

  it('a version conflict is reported as one, plan or not', async () => {
    const calls = { general: 0, planned: 0 };
    const store = await PostgresEventStore.open({ pool: db.app, inline: loggingHook(calls) });
    const events = encodeAfter(emptyHead('plan-d', 'eur'), [accountOpened('cash')]);
    await store.append({ tenantId: 'plan-d', ledgerId: 'eur', expectedVersion: 0, events });
    await expect(store.append({ tenantId: 'plan-d', ledgerId: 'eur', expectedVersion: 0, events })).rejects.toBeInstanceOf(VersionConflictError);
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM public.plan_log WHERE tenant = 'plan-d'`)).rows).toEqual([{ n: 1 }]);
  });

  it('composed projections batch their plans only when every one has a plan, and run in order either way', async () => {
    const order: string[] = [];
    const withPlan = (name: string): InlineProjection =>
      Object.assign(
        async () => {
          order.push(`${name}:general`);
        },
        { plan: () => (order.push(`${name}:plan`), { statements: [{ text: 'SELECT $1::text AS name', values: [name] }] }) },
      );
    const withoutPlan: InlineProjection = async () => {
      order.push('c:general');
    };
    const both = await PostgresEventStore.open({ pool: db.app, inline: composeInlineProjections(withPlan('a'), withPlan('b')) });
    await both.append({ tenantId: 'plan-e', ledgerId: 'eur', expectedVersion: 0, events: encodeAfter(emptyHead('plan-e', 'eur'), [accountOpened('cash')]) });
    expect(order).toEqual(['a:plan', 'b:plan']);
    order.length = 0;
    const mixed = await PostgresEventStore.open({ pool: db.app, inline: composeInlineProjections(withPlan('a'), withoutPlan, withPlan('b')) });
    await mixed.append({ tenantId: 'plan-f', ledgerId: 'eur', expectedVersion: 0, events: encodeAfter(emptyHead('plan-f', 'eur'), [accountOpened('cash')]) });
    expect(order).toEqual(['a:plan', 'a:general', 'c:general', 'b:general']);
  });

  it(`refuses a plan of more than ${INLINE_PLAN_STATEMENTS_MAX} statements, with nothing written`, async () => {
    const store = await PostgresEventStore.open({
      pool: db.app,
      inline: Object.assign(async () => undefined, { plan: () => ({ statements: Array.from({ length: INLINE_PLAN_STATEMENTS_MAX + 1 }, () => ({ text: 'SELECT 1', values: [] })) }) }),
    });
    await expect(store.append({ tenantId: 'plan-g', ledgerId: 'eur', expectedVersion: 0, events: encodeAfter(emptyHead('plan-g', 'eur'), [accountOpened('cash')]) })).rejects.toBeInstanceOf(LimitExceededError);
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = 'plan-g'`)).rows).toEqual([{ n: 0 }]);
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

// An append sent as one statement batch (the append with an inline plan's statements) commits at
// the end of the batch; if the client then cannot parse a row of the answer (a type parser of the
// user's that throws), the append happened all the same. The writer must treat it as an append of
// unknown outcome, never as one that wrote nothing.
describe('an append whose batch committed but whose answer the client cannot parse', () => {
  it('fails its commands with a retriable WriterFailedError saying they may have been applied, not a rejection; it is not appended again, and a retry answers duplicate', async () => {
    // The parsers are this pool's own: the global ones, shared with every other test, are left alone.
    const pool = new pg.Pool({ connectionString: db.appUrl, max: 4, types: MACADDR_UNPARSEABLE });
    pool.on('error', () => undefined);
    let unreadable = false;
    const calls = { general: 0, declined: 0 };
    const inline: InlineProjection = Object.assign(
      async () => {
        calls.general += 1;
      },
      {
        plan: (): InlinePlan => ({
          statements: unreadable ? [{ text: UNPARSEABLE_ROW_SQL, values: [] }] : [],
          // A careless plan that takes any error for its own refusal: an append that committed must
          // still not be sent again down the general path.
          declined: () => {
            calls.declined += 1;
            return true;
          },
        }),
      },
    );
    const where = { tenantId: 'unreadable-answer', ledgerId: 'eur' };
    const transfer = { transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' };
    try {
      const store = await PostgresEventStore.open({ pool, inline });
      const ledger = await Ledger.open({ store, ...where, snapshotEveryEvents: 0 });
      await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
      await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
      await ledger.openAccount({ accountId: 'bob', currency: 'EUR', type: 'liability' });

      unreadable = true;
      // A transfer, and a freeze: decided again on the committed tail, the freeze would be
      // rejected (`account_frozen`), a committed command reported as one that failed.
      for (const command of [() => ledger.transfer(transfer), () => ledger.freezeAccount({ accountId: 'bob' })]) {
        const failure: unknown = await command().then(
          (result) => result,
          (error: unknown) => error,
        );
        expect(failure).toBeInstanceOf(WriterFailedError);
        expect(failure).not.toBeInstanceOf(StoreUnavailableError);
        expect(failure).toMatchObject({
          retriable: true,
          message: expect.stringContaining('they may have been applied'),
          cause: { name: 'BatchCommittedUnreadableError', cause: { message: UNPARSEABLE_MESSAGE } },
        });
      }
      expect(calls).toEqual({ general: 0, declined: 0 });
      const logged = await db.admin.query<{ ledger_version: string; type: string }>(
        'SELECT ledger_version, type FROM ledgerkit.events WHERE tenant_id = $1 AND ledger_id = $2 ORDER BY ledger_version',
        [where.tenantId, where.ledgerId],
      );
      expect(logged.rows.map((row) => [Number(row.ledger_version), row.type])).toEqual([
        [1, 'AccountOpened'],
        [2, 'AccountOpened'],
        [3, 'AccountOpened'],
        [4, 'TransferPosted'],
        [5, 'AccountFrozen'],
      ]);

      // The writer reads the tail before it decides anything else: the retry learns the original outcome.
      unreadable = false;
      expect(await ledger.transfer(transfer)).toMatchObject({ ok: true, duplicate: true, ledgerVersion: 4 });
      expect(ledger.balance('alice')?.posted).toBe('10.00');
      expect(ledger.balance('bob')?.status).toBe('frozen');
      expect(await ledger.transfer({ ...transfer, transferId: 't2' })).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 6 });
      expect(calls).toEqual({ general: 0, declined: 0 });
      await ledger.close();
    } finally {
      await pool.end();
    }
  });

  it('sent alone (no inline projection: one autocommitted statement), its unreadable answer is the same typed error, not the parser’s own; the stream goes on after the committed events', async () => {
    let unreadable = false;
    const pool = new pg.Pool({ connectionString: db.appUrl, max: 4, types: int8UnparseableWhile(() => unreadable) });
    pool.on('error', () => undefined);
    const where = { tenantId: 'unreadable-plain', ledgerId: 'eur' };
    const transfer = { transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' };
    try {
      const store = await PostgresEventStore.open({ pool });
      const events = encodeAfter(emptyHead(where.tenantId, where.ledgerId), [accountOpened('cash'), accountOpened('alice')]);
      unreadable = true;
      const failure: unknown = await store.append({ ...where, expectedVersion: 0, events }).then(
        (result) => result,
        (error: unknown) => error,
      );
      unreadable = false;
      expect(failure).toBeInstanceOf(BatchCommittedUnreadableError);
      expect(failure).toMatchObject({ code: 'writer_failed', retriable: true, statementIndex: 0, cause: { message: INT8_UNPARSEABLE_MESSAGE } });
      expect(await store.readStream({ ...where, direction: 'forward', limit: 10 }), 'the append committed').toEqual(events);

      // Through the writer: its commands may have been applied, and a retry answers duplicate.
      const ledger = await Ledger.open({ store, ...where, snapshotEveryEvents: 0 });
      unreadable = true;
      const lost: unknown = await ledger.transfer(transfer).then(
        (result) => result,
        (error: unknown) => error,
      );
      unreadable = false;
      expect(lost).toBeInstanceOf(WriterFailedError);
      expect(lost).toMatchObject({ message: expect.stringContaining('they may have been applied'), cause: { name: 'BatchCommittedUnreadableError' } });
      expect(await ledger.transfer(transfer)).toMatchObject({ ok: true, duplicate: true, ledgerVersion: 3 });
      expect(await ledger.transfer({ ...transfer, transferId: 't2' })).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 4 });
      expect(ledger.writer.account('alice')).toMatchObject({ creditsPosted: 2_000n, debitsPosted: 0n });
      await ledger.close();
    } finally {
      await pool.end();
    }
  });
});
