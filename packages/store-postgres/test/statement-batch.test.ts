import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_STATEMENTS_MAX, BatchCommittedUnreadableError, runBatch } from '../src/statement-batch.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';
import { MACADDR_UNPARSEABLE, UNPARSEABLE_MESSAGE, UNPARSEABLE_ROW_SQL } from './support/unparseable-type.js';

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await openTestDatabase({ migrate: false });
  client = new pg.Client({ connectionString: db.adminUrl });
  await client.connect();
  await client.query('CREATE TABLE batch_rows (id integer PRIMARY KEY, label text NOT NULL)');
});

afterAll(async () => {
  await client?.end();
  await db?.close();
});

async function rowsOf(): Promise<{ id: number; label: string }[]> {
  return (await client.query<{ id: number; label: string }>('SELECT id, label FROM batch_rows ORDER BY id')).rows;
}

describe('runBatch: several statements, one round trip, one transaction', () => {
  it('returns each statement’s rows and row count, in order, with values of every kind', async () => {
    const results = await runBatch(client, [
      { text: 'INSERT INTO batch_rows (id, label) SELECT * FROM unnest($1::int[], $2::text[])', values: [[1, 2], ['one', 'two']] },
      { text: 'SELECT $1::bigint AS big, $2::text AS nothing, $3::jsonb AS doc, $4::timestamptz AS at', values: [42n, null, { a: [1, 'é'] }, new Date('2026-01-02T03:04:05Z')] },
      { text: 'UPDATE batch_rows SET label = upper(label) WHERE id = ANY($1::int[])', values: [[1, 2, 3]] },
      { text: 'SELECT id FROM batch_rows WHERE id > $1 ORDER BY id', values: [0] },
    ]);
    expect(results.map((result) => result.rowCount)).toEqual([2, 1, 2, 2]);
    expect(results[1]?.rows).toEqual([{ big: '42', nothing: null, doc: { a: [1, 'é'] }, at: new Date('2026-01-02T03:04:05Z') }]);
    expect(results[3]?.rows).toEqual([{ id: 1 }, { id: 2 }]);
    expect(await rowsOf()).toEqual([
      { id: 1, label: 'ONE' },
      { id: 2, label: 'TWO' },
    ]);
  });

  it('runs as one transaction: a transaction id shared by all, a local setting seen by the later statements', async () => {
    const results = await runBatch(client, [
      { text: `SELECT set_config('batch.test', $1, true) AS set, pg_current_xact_id()::text AS xid`, values: ['seen'] },
      { text: `SELECT current_setting('batch.test', true) AS value, pg_current_xact_id()::text AS xid`, values: [] },
    ]);
    expect(results[1]?.rows[0]?.['value']).toBe('seen');
    expect(results[1]?.rows[0]?.['xid']).toBe(results[0]?.rows[0]?.['xid']);
    // Local to that transaction: gone after it.
    expect((await client.query(`SELECT coalesce(current_setting('batch.test', true), '') AS value`)).rows[0]?.value).toBe('');
  });

  it('a failing statement rolls back the ones before it, skips the ones after, and leaves the client usable', async () => {
    await expect(
      runBatch(client, [
        { text: 'INSERT INTO batch_rows (id, label) VALUES ($1, $2)', values: [10, 'ten'] },
        { text: 'INSERT INTO batch_rows (id, label) VALUES ($1, $2)', values: [1, 'duplicate'] },
        { text: 'INSERT INTO batch_rows (id, label) VALUES ($1, $2)', values: [11, 'eleven'] },
      ]),
    ).rejects.toMatchObject({ code: '23505' });
    expect((await rowsOf()).map((row) => row.id)).toEqual([1, 2]);
    // Not left inside an aborted transaction.
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    const [count] = await runBatch(client, [{ text: 'SELECT count(*)::int AS n FROM batch_rows', values: [] }]);
    expect(count?.rows).toEqual([{ n: 2 }]);
  });

  it('a statement the server cannot parse fails the batch before anything runs', async () => {
    await expect(
      runBatch(client, [
        { text: 'INSERT INTO batch_rows (id, label) VALUES ($1, $2)', values: [20, 'twenty'] },
        { text: 'SELEKT nonsense', values: [] },
      ]),
    ).rejects.toMatchObject({ code: '42601' });
    expect((await rowsOf()).map((row) => row.id)).toEqual([1, 2]);
  });

  it('a value the driver cannot send fails the batch with nothing sent', async () => {
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    await expect(
      runBatch(client, [
        { text: 'INSERT INTO batch_rows (id, label) VALUES ($1, $2)', values: [30, 'thirty'] },
        { text: 'SELECT $1::jsonb', values: [circular] },
      ]),
    ).rejects.toThrow();
    expect((await rowsOf()).map((row) => row.id)).toEqual([1, 2]);
    expect((await client.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
  });

  it('bounds the batch and accepts an empty one', async () => {
    expect(await runBatch(client, [])).toEqual([]);
    const tooMany = Array.from({ length: BATCH_STATEMENTS_MAX + 1 }, () => ({ text: 'SELECT 1', values: [] }));
    await expect(runBatch(client, tooMany)).rejects.toThrow(RangeError);
  });
});

describe('runBatch: an answer the client cannot parse', () => {
  let parsing: pg.Client;

  beforeAll(async () => {
    // The client's own type parsers (as the pool's `types` option sets them), not the global ones.
    parsing = new pg.Client({ connectionString: db.adminUrl, types: MACADDR_UNPARSEABLE });
    await parsing.connect();
  });

  afterAll(async () => {
    await parsing?.end();
  });

  const insert = (id: number, label: string): { text: string; values: unknown[] } => ({ text: 'INSERT INTO batch_rows (id, label) VALUES ($1, $2)', values: [id, label] });

  it('parses rows with the client’s type parsers; a committed batch whose answer it cannot parse rejects, once committed, with BatchCommittedUnreadableError; one a later statement rolled back, with that statement’s error', async () => {
    const error: unknown = await runBatch(parsing, [insert(40, 'forty'), { text: UNPARSEABLE_ROW_SQL, values: [] }, insert(41, 'forty-one')]).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(BatchCommittedUnreadableError);
    expect(error).toMatchObject({ name: 'BatchCommittedUnreadableError', statementIndex: 1, retriable: true, cause: { message: UNPARSEABLE_MESSAGE } });
    expect((error as Error).message).toMatch(/committed/);
    // By the time it rejects the batch has committed, the statements after the unreadable row included.
    expect((await client.query('SELECT id FROM batch_rows WHERE id BETWEEN 40 AND 49 ORDER BY id')).rows).toEqual([{ id: 40 }, { id: 41 }]);
    expect((await parsing.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);

    // A statement after the unreadable row fails: the batch rolled back, and the caller learns that.
    await expect(runBatch(parsing, [{ text: UNPARSEABLE_ROW_SQL, values: [] }, insert(42, 'forty-two'), insert(40, 'taken')])).rejects.toMatchObject({ code: '23505' });
    expect((await client.query('SELECT id FROM batch_rows WHERE id BETWEEN 40 AND 49 ORDER BY id')).rows).toEqual([{ id: 40 }, { id: 41 }]);
    expect((await parsing.query('SELECT 4 AS four')).rows).toEqual([{ four: 4 }]);
  });
});
