import type { Ledger } from '@ledgerkit/ledger-core';
import { ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, eventually, openFixtureLedger, projectToEnd, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// What a balance read does with its pooled connection after an error: a statement the server
// refused on a live session leaves the connection usable, a session the server ended does not.

const TENANT = 'connections';

let db: TestDatabase;
let ledger: Ledger;
const pools: pg.Pool[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  ledger = await openFixtureLedger(store, TENANT);
  await writeTransfers(ledger, 't', 3);
  await projectToEnd(db.app, store, [TENANT]);
});

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
  await ledger?.close();
  await db?.close();
});

/** A one-connection pool of the application role that counts the connections it opens. */
function countingPool(config: pg.PoolConfig = {}): { pool: pg.Pool; connections: () => number } {
  const pool = new pg.Pool({ connectionString: db.appUrl, max: 1, ...config });
  pool.on('error', () => undefined);
  let opened = 0;
  pool.on('connect', () => {
    opened += 1;
  });
  pools.push(pool);
  return { pool, connections: () => opened };
}

/** Runs `during` while an administrator holds an ACCESS EXCLUSIVE lock on the balances table, so that every balance read waits. */
async function withBalancesLocked(during: () => Promise<void>): Promise<void> {
  const admin = await db.admin.connect();
  try {
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE ledgerkit.rm_balances IN ACCESS EXCLUSIVE MODE');
    await during();
  } finally {
    await admin.query('ROLLBACK');
    admin.release();
  }
}

describe('ReadModels connections after an error', () => {
  it('a balance read the server refused (a statement timeout) leaves its connection in the pool: the next read reuses it', async () => {
    const { pool, connections } = countingPool({ statement_timeout: 300 });
    const models = new ReadModels({ pool, currencies });
    expect(await models.balance(TENANT, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    expect(connections()).toBe(1);
    await withBalancesLocked(async () => {
      await expect(models.balance(TENANT, 'eur', 'alice')).rejects.toMatchObject({ code: '57014' });
    });
    expect(await models.balance(TENANT, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    expect(await models.balance(TENANT, 'eur', 'bob')).toEqual(ledger.balance('bob'));
    expect(connections()).toBe(1);
  });

  it('a batched balance read the server refused leaves its connection in the pool too', async () => {
    const { pool, connections } = countingPool({ statement_timeout: 300 });
    const models = new ReadModels({ pool, currencies });
    expect(await models.balance(TENANT, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    await withBalancesLocked(async () => {
      const reads = await Promise.allSettled([models.balance(TENANT, 'eur', 'alice'), models.balance(TENANT, 'eur', 'bob')]);
      for (const read of reads) expect(read).toMatchObject({ status: 'rejected', reason: { code: '57014' } });
    });
    expect(await Promise.all([models.balance(TENANT, 'eur', 'alice'), models.balance(TENANT, 'eur', 'bob')])).toEqual([ledger.balance('alice'), ledger.balance('bob')]);
    expect(connections()).toBe(1);
  });

  it('a balance read whose session the server terminated drops the connection: the next read opens a new one', async () => {
    const { pool, connections } = countingPool();
    const models = new ReadModels({ pool, currencies });
    expect(await models.balance(TENANT, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = (rows[0] as { pid: number }).pid;
    await withBalancesLocked(async () => {
      // Its outcome, held from the start: it fails while the test still waits for the termination.
      const read = models.balance(TENANT, 'eur', 'alice').then(
        () => undefined,
        (error: unknown) => error,
      );
      await eventually(async () => {
        const waiting = await db.admin.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [pid]);
        return waiting.rowCount === 1;
      });
      await db.admin.query('SELECT pg_terminate_backend($1)', [pid]);
      expect(await read).toMatchObject({ code: '57P01' });
    });
    expect(await models.balance(TENANT, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    expect(connections()).toBe(2);
    const after = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(after.rows[0]?.pid).not.toBe(pid);
  });
});
