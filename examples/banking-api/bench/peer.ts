/**
 * The load test's peer: a bare HTTP server for the two operations of the closed-loop scenarios
 * (the raw ceiling for transfers; for reads see run.ts's header), doing the minimum a service
 * must do and nothing of the API's (no JWT, no Idempotency-Key, no rate limit, no audit, no
 * request log, no ledger library, no zod). `run.ts`
 * starts it as the API server is started (a process of its own, the same Node flags, a pg pool of
 * the same size, the same embedded PostgreSQL, in a database of its own: DATABASE_URL) and
 * measures it with the same autocannon settings right after the API's scenario, so that
 * "API req/s ÷ peer req/s" says what the API costs next to fastify + pg alone.
 *
 * - `GET /accounts/:id/balance`: one primary-key SELECT from a plain balances table (seeded here
 *   with the load test's 1,000 accounts), the row as JSON; 404 when there is none.
 * - `POST /transfers`: the JSON body parsed (fastify's parser) and its fields checked to be
 *   strings, one INSERT into a plain transfers table with a primary key, committed with
 *   synchronous_commit on (durable, as the API's transfers), 201 with the row as JSON.
 *
 * Prints `READY <url>` once listening; closes on SIGTERM.
 */
import Fastify from 'fastify';
import pg from 'pg';

const ACCOUNTS = 1_000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS balances (
    account_id text PRIMARY KEY,
    currency text NOT NULL,
    posted numeric NOT NULL,
    pending numeric NOT NULL,
    available numeric NOT NULL
  );
  CREATE TABLE IF NOT EXISTS transfers (
    id text PRIMARY KEY,
    from_account text NOT NULL,
    to_account text NOT NULL,
    amount numeric NOT NULL,
    currency text NOT NULL
  );
  INSERT INTO balances (account_id, currency, posted, pending, available)
    SELECT 'c' || n, 'EUR', 0, 0, 0 FROM generate_series(0, ${ACCOUNTS - 1}) AS n
    ON CONFLICT (account_id) DO NOTHING;
`;

interface TransferBody {
  readonly transferId: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: string;
  readonly currency: string;
}

function isTransferBody(body: unknown): body is TransferBody {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  return typeof b['transferId'] === 'string' && typeof b['debitAccountId'] === 'string' && typeof b['creditAccountId'] === 'string' && typeof b['amount'] === 'string' && typeof b['currency'] === 'string';
}

async function main(): Promise<void> {
  const databaseUrl = process.env['DATABASE_URL'];
  if (databaseUrl === undefined) throw new Error('DATABASE_URL is required');
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: Number(process.env['BENCH_POOL_SIZE'] ?? 8),
    connectionTimeoutMillis: 5_000,
    // The default, stated: every transfer's commit waits for its WAL flush, as the API's do.
    options: '-c synchronous_commit=on',
  });
  await pool.query(SCHEMA);

  const app = Fastify({ logger: false, keepAliveTimeout: 10_000 });
  app.get<{ Params: { id: string } }>('/accounts/:id/balance', async (request, reply) => {
    const { rows } = await pool.query<{ account_id: string; currency: string; posted: string; pending: string; available: string }>({
      name: 'peer-balance',
      text: 'SELECT account_id, currency, posted, pending, available FROM balances WHERE account_id = $1',
      values: [request.params.id],
    });
    const row = rows[0];
    if (row === undefined) return reply.code(404).send({ error: 'no such account' });
    return { accountId: row.account_id, currency: row.currency, posted: row.posted, pending: row.pending, available: row.available };
  });
  app.post('/transfers', async (request, reply) => {
    const body = request.body;
    if (!isTransferBody(body)) return reply.code(400).send({ error: 'transferId, debitAccountId, creditAccountId, amount and currency are required strings' });
    await pool.query({
      name: 'peer-transfer',
      text: 'INSERT INTO transfers (id, from_account, to_account, amount, currency) VALUES ($1, $2, $3, $4, $5)',
      values: [body.transferId, body.debitAccountId, body.creditAccountId, body.amount, body.currency],
    });
    return reply.code(201).send({ transferId: body.transferId, debitAccountId: body.debitAccountId, creditAccountId: body.creditAccountId, amount: body.amount, currency: body.currency });
  });

  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  process.stdout.write(`READY ${url}\n`);
  process.once('SIGTERM', () => {
    void app
      .close()
      .then(() => pool.end())
      .finally(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench peer failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
