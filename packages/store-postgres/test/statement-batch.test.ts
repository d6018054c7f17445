import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_STATEMENTS_MAX, BatchCommittedUnreadableError, runBatch, runStatement } from '../src/statement-batch.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';
import { MACADDR_UNPARSEABLE, UNPARSEABLE_MESSAGE, UNPARSEABLE_ROW_SQL } from './support/unparseable-type.js';

let db: TestDatabase;
let client: pg.Client;
/** A client with type parsers of its own (as the pool's `types` option sets them), not the global ones: a `macaddr` is unreadable to it. */
let parsing: pg.Client;

beforeAll(async () => {
  db = await openTestDatabase({ migrate: false });
  client = new pg.Client({ connectionString: db.adminUrl });
  await client.connect();
  await client.query('CREATE TABLE batch_rows (id integer PRIMARY KEY, label text NOT NULL)');
  parsing = new pg.Client({ connectionString: db.adminUrl, types: MACADDR_UNPARSEABLE });
  await parsing.connect();
});

afterAll(async () => {
  await parsing?.end();
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

describe('runStatement: one statement as client.query runs it', () => {
  /** What `send` writes to the client's socket. */
  async function bytesSent(on: pg.Client, send: () => Promise<unknown>): Promise<Buffer> {
    const stream = (on as unknown as { connection: { stream: { write: (chunk: Buffer, ...rest: unknown[]) => boolean } } }).connection.stream;
    const write = stream.write;
    const chunks: Buffer[] = [];
    stream.write = (chunk, ...rest) => {
      chunks.push(Buffer.from(chunk));
      return write.call(stream, chunk, ...rest);
    };
    try {
      await send();
    } finally {
      stream.write = write;
    }
    return Buffer.concat(chunks);
  }

  it('sends the very bytes client.query sends, and returns the rows it returns', async () => {
    const statement = { text: 'SELECT $1::bigint AS big, $2::text AS label, $3::text[] AS list', values: [42, 'é', ['a', null]] };
    let rows: unknown;
    const ours = await bytesSent(parsing, async () => {
      rows = await runStatement(parsing, statement);
    });
    const theirs = await bytesSent(parsing, () => parsing.query(statement.text, [...statement.values]));
    expect(ours.equals(theirs)).toBe(true);
    expect(rows).toEqual([{ big: '42', label: 'é', list: ['a', null] }]);
  });

  it('a statement that committed but whose answer the client cannot parse rejects with BatchCommittedUnreadableError; one the server failed after the unreadable row, with the server’s error', async () => {
    const error: unknown = await runStatement(parsing, { text: `INSERT INTO batch_rows (id, label) VALUES ($1, $2) RETURNING '08:00:2b:01:02:03'::macaddr AS unparseable`, values: [60, 'sixty'] }).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(BatchCommittedUnreadableError);
    expect(error).toMatchObject({ statementIndex: 0, retriable: true, cause: { message: UNPARSEABLE_MESSAGE } });
    expect((await client.query('SELECT id FROM batch_rows WHERE id BETWEEN 60 AND 69 ORDER BY id')).rows).toEqual([{ id: 60 }]);

    // Each row writes one; the first is sent (and cannot be parsed) before the second fails the
    // statement, which keeps nothing: the answer is the server's error.
    await client.query(`CREATE OR REPLACE FUNCTION batch_write(id integer) RETURNS integer LANGUAGE sql VOLATILE AS $$ INSERT INTO batch_rows (id, label) VALUES (id, 'written') RETURNING id $$`);
    const failing = `SELECT batch_write(60 + i) AS written, CASE WHEN i = 1 THEN '08:00:2b:01:02:03'::macaddr ELSE (1 / (i - 2))::text::macaddr END AS unparseable
      FROM generate_series(1, 2) i`;
    await expect(runStatement(parsing, { text: failing, values: [] })).rejects.toMatchObject({ code: '22012' });
    expect((await client.query('SELECT id FROM batch_rows WHERE id BETWEEN 60 AND 69 ORDER BY id')).rows).toEqual([{ id: 60 }]);
    expect((await parsing.query('SELECT 5 AS five')).rows).toEqual([{ five: 5 }]);
  });
});
