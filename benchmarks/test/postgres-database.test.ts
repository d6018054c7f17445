import { startEmbeddedPostgres } from '@ledgerkit/store-postgres';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { durabilityProblems, openBenchDatabase } from '../src/postgres-database.js';

const DURABLE = { synchronousCommit: 'on', fsync: 'on', fullPageWrites: 'on' } as const;

describe('the benchmark database', () => {
  it('names each durability setting that is off, and none on a durable server', () => {
    expect(durabilityProblems(DURABLE)).toEqual([]);
    expect(durabilityProblems({ ...DURABLE, synchronousCommit: 'off' }).join('\n')).toMatch(/synchronous_commit is 'off'/);
    expect(durabilityProblems({ ...DURABLE, fsync: 'off' })).toEqual([`fsync is 'off' on the server, expected 'on'`]);
    expect(durabilityProblems({ ...DURABLE, fullPageWrites: 'off' })).toEqual([`full_page_writes is 'off' on the server, expected 'on'`]);
  });

  it('refuses a server with fsync and full_page_writes off (synchronous_commit on), and drops what it created', async () => {
    const server = await startEmbeddedPostgres({ settings: { fsync: 'off', full_page_writes: 'off' } });
    try {
      await expect(openBenchDatabase({ databaseUrl: server.connectionString })).rejects.toThrow(/fsync is 'off' on the server.*full_page_writes is 'off' on the server.*refuses to run/);
      const client = new pg.Client({ connectionString: server.connectionString });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'lk_bench_%'`);
        expect(rows[0]?.n).toBe(0);
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
  }, 60_000);
});
