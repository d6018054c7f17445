/**
 * The audit trail as it is really written to `banking_api.audit_events`, and graceful shutdown:
 * one event per money request whatever became of it (refused early, answered to a client that
 * had gone), naming the ledger and the resource the request addressed; a shutdown that writes
 * every answered request's event and idempotent answer, and that never outlasts its timeout.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER, generateDevKeys } from '../src/dev-tokens.js';
import { createLogger } from '../src/logger.js';
import { createBankingApi } from '../src/server.js';
import { call, client, eventually, openTestDatabase, startTestApi, type TestApi, type TestDatabase } from './support/harness.js';
import { expectProblem } from './support/expect-problem.js';

let db: TestDatabase;
const apis: TestApi[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
});

afterEach(async () => {
  await Promise.allSettled(apis.splice(0).map((api) => api.close()));
});

afterAll(async () => {
  await db?.close();
});

async function start(settings: Parameters<typeof startTestApi>[1] = {}): Promise<TestApi> {
  const api = await startTestApi(db, settings);
  apis.push(api);
  return api;
}

interface AuditRow {
  readonly request_id: string;
  readonly action: string;
  readonly ledger_id: string | null;
  readonly resource_id: string | null;
  readonly status: number;
  readonly outcome: string;
  readonly problem_code: string | null;
  readonly replayed: boolean;
}

async function auditRows(clientId: string): Promise<AuditRow[]> {
  const { rows } = await db.admin.query<AuditRow>(
    'SELECT request_id, action, ledger_id, resource_id, status, outcome, problem_code, replayed FROM banking_api.audit_events WHERE client_id = $1 ORDER BY occurred_at, segment_id, seq',
    [clientId],
  );
  return rows;
}

/** Holds an exclusive lock on the event table, so that every append waits until `release()`. */
async function lockEvents(): Promise<{ release: () => Promise<void> }> {
  const locker = new pg.Client({ connectionString: db.adminUrl });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE ledgerkit.events IN EXCLUSIVE MODE');
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      await locker.query('ROLLBACK');
      await locker.end();
    },
  };
}

/** Waits until `count` sessions of the application role wait for a lock. */
async function appSessionsWaitingForLock(count: number): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'", [db.roles.app]);
    expect(rows[0]?.n).toBeGreaterThanOrEqual(count);
  }, 15_000);
}

async function openAccounts(bank: ReturnType<typeof client>): Promise<void> {
  expect((await bank.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
  expect((await bank.post('/accounts', { accountId: 'sink', currency: 'EUR', type: 'liability' })).status).toBe(201);
}

describe('audit events', () => {
  it('a transfer whose client hung up before the answer is still audited, with the status the server answered', async () => {
    const api = await start();
    const tenant = 'aud-hangup';
    await openAccounts(client(api.url, await api.token(tenant)));
    const token = await api.token(tenant, undefined, { subject: 'hangup-app' });
    const body = JSON.stringify({ transferId: 'hung-up', debitAccountId: 'cash', creditAccountId: 'sink', amount: '5.00', currency: 'EUR' });
    const connections = (): Promise<number> =>
      new Promise((resolve, reject) => api.api.app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
    const lock = await lockEvents();
    try {
      const before = await connections();
      const { hostname, port } = new URL(api.url);
      const socket = connect({ host: hostname, port: Number(port) });
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(
        `POST /transfers HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nIdempotency-Key: ${randomUUID()}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      // The transfer waits in the writer's append; the client gives up meanwhile.
      await appSessionsWaitingForLock(1);
      socket.destroy();
      // The server has seen the hang-up (the client's keep-alive connections may only close).
      await eventually(async () => expect(await connections()).toBeLessThanOrEqual(before));
    } finally {
      await lock.release();
    }
    await eventually(async () => {
      const { rows } = await db.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = $1 AND type = 'TransferPosted'", [tenant]);
      expect(rows[0]?.n).toBe(1);
    });
    const rows = await eventually(async () => {
      const found = await auditRows('hangup-app');
      expect(found).toHaveLength(1);
      return found;
    });
    expect(rows[0]).toMatchObject({ action: 'transfer.create', status: 201, outcome: 'success', problem_code: null, replayed: false });
  });

  it('a client that closes its connection before its body is read whole is a rejected request, not a database that is unavailable', async () => {
    const api = await start();
    const tenant = 'aud-abort';
    await openAccounts(client(api.url, await api.token(tenant)));
    const token = await api.token(tenant, undefined, { subject: 'abort-app' });
    const { hostname, port } = new URL(api.url);
    const socket = connect({ host: hostname, port: Number(port) });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // 50 bytes declared, 7 sent, then the connection closed.
    socket.write(
      `POST /transfers HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nIdempotency-Key: ${randomUUID()}\r\nContent-Length: 50\r\n\r\n{"trans`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    const rows = await eventually(async () => {
      const found = await auditRows('abort-app');
      expect(found).toHaveLength(1);
      return found;
    });
    expect(rows[0]).toMatchObject({ action: 'transfer.create', status: 400, outcome: 'rejected', problem_code: 'invalid_request' });
    // Nothing at error level: on-call is not paged for a client's hang-up.
    expect(api.logs.filter((line) => (line['level'] as number) >= 50)).toEqual([]);
  });

  it('an event names the ledger the request addressed, also when it was refused before the ledger was read; an invalid Ledger-Id is named as none', async () => {
    const api = await start();
    const tenant = 'aud-ledger';
    const reader = client(api.url, await api.token(tenant, ['accounts:read'], { subject: 'ledger-app' }), 'books-2');
    expectProblem(await reader.get('/accounts/%00/balance'), 400, 'invalid_request');
    expectProblem(await reader.get('/accounts?limit=-1'), 400, 'invalid_request');
    expectProblem(await reader.post('/transfers', { transferId: 't', debitAccountId: 'cash', creditAccountId: 'sink', amount: '1.00', currency: 'EUR' }), 403, 'insufficient_scope');
    expectProblem(await reader.get('/accounts/cash'), 404, 'not_found');
    const badLedger = client(api.url, await api.token(tenant, ['accounts:read'], { subject: 'bad-ledger-app' }), 'not a ledger');
    expectProblem(await badLedger.get('/accounts/cash'), 400, 'invalid_request');
    const rows = await eventually(async () => {
      const found = [...(await auditRows('ledger-app')), ...(await auditRows('bad-ledger-app'))];
      expect(found).toHaveLength(5);
      return found;
    });
    expect(rows.slice(0, 4).map((row) => [row.action, row.status, row.ledger_id])).toEqual([
      ['balance.read', 400, 'books-2'],
      ['account.list', 400, 'books-2'],
      ['transfer.create', 403, 'books-2'],
      ['account.read', 404, 'books-2'],
    ]);
    expect(rows[4]).toMatchObject({ action: 'account.read', status: 400, ledger_id: null, problem_code: 'invalid_request' });
  });

  it('opening an account, a transfer or a hold is audited with the id its body names, refused and replayed ones too', async () => {
    const api = await start();
    const bank = client(api.url, await api.token('aud-resource', undefined, { subject: 'resource-app' }));
    await openAccounts(bank);
    const transfer = { transferId: 'res-transfer', debitAccountId: 'cash', creditAccountId: 'sink', amount: '2.00', currency: 'EUR' };
    expect((await bank.post('/transfers', transfer, { key: 'res-key' })).status).toBe(201);
    const replay = await bank.post('/transfers', transfer, { key: 'res-key' });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await bank.post('/holds', { ...transfer, transferId: 'res-hold' })).status).toBe(201);
    expectProblem(await bank.post('/transfers', { ...transfer, transferId: 'res-missing', creditAccountId: 'nobody' }), 404, 'account_not_found');
    const rows = await eventually(async () => {
      const found = await auditRows('resource-app');
      expect(found).toHaveLength(6);
      return found;
    });
    expect(rows.map((row) => [row.action, row.resource_id, row.status, row.replayed])).toEqual([
      ['account.open', 'cash', 201, false],
      ['account.open', 'sink', 201, false],
      ['transfer.create', 'res-transfer', 201, false],
      ['transfer.create', 'res-transfer', 201, true],
      ['hold.create', 'res-hold', 201, false],
      ['transfer.create', 'res-missing', 404, false],
    ]);
  });

  it("posting or voiding a hold and reversing a transfer name the new transfer as the resource and the hold or transfer acted on as the target, refused ones too", async () => {
    const api = await start();
    const bank = client(api.url, await api.token('aud-target', undefined, { subject: 'target-app' }));
    await openAccounts(bank);
    const transfer = { debitAccountId: 'cash', creditAccountId: 'sink', amount: '2.00', currency: 'EUR' };
    for (const [path, transferId] of [['/holds', 'tgt-hold-1'], ['/holds', 'tgt-hold-2'], ['/transfers', 'tgt-pay']] as const) {
      expect((await bank.post(path, { ...transfer, transferId })).status).toBe(201);
    }
    expect((await bank.post('/holds/tgt-hold-1/post', { transferId: 'tgt-post' })).status).toBe(201);
    expect((await bank.post('/holds/tgt-hold-2/void', { transferId: 'tgt-void' })).status).toBe(201);
    expect((await bank.post('/transfers/tgt-pay/reversal', { transferId: 'tgt-back' })).status).toBe(201);
    expectProblem(await bank.post('/holds/tgt-hold-1/post', { transferId: 'tgt-post-again' }), 409, 'pending_already_resolved');
    expectProblem(await bank.post('/transfers/tgt-pay/reversal', {}), 400, 'invalid_request');
    const rows = await eventually(async () => {
      const { rows: found } = await db.admin.query<{ action: string; resource_id: string | null; target_id: string | null; status: number }>(
        "SELECT action, resource_id, target_id, status FROM banking_api.audit_events WHERE client_id = 'target-app' AND action NOT LIKE 'account.%' ORDER BY occurred_at, segment_id, seq",
      );
      expect(found).toHaveLength(8);
      return found;
    });
    expect(rows.map((row) => [row.action, row.resource_id, row.target_id, row.status])).toEqual([
      ['hold.create', 'tgt-hold-1', null, 201],
      ['hold.create', 'tgt-hold-2', null, 201],
      ['transfer.create', 'tgt-pay', null, 201],
      ['hold.post', 'tgt-post', 'tgt-hold-1', 201],
      ['hold.void', 'tgt-void', 'tgt-hold-2', 201],
      ['transfer.reverse', 'tgt-back', 'tgt-pay', 201],
      ['hold.post', 'tgt-post-again', 'tgt-hold-1', 409],
      ['transfer.reverse', null, 'tgt-pay', 400],
    ]);
  });

  it('a linked group names its transfers in order, applied, already applied (200) or refused; other requests and a group refused by its schema name none', async () => {
    const api = await start();
    const bank = client(api.url, await api.token('aud-group', undefined, { subject: 'group-app' }));
    await openAccounts(bank);
    const leg = (transferId: string, amount: string) => ({ kind: 'transfer', transferId, debitAccountId: 'cash', creditAccountId: 'sink', amount, currency: 'EUR' });
    const group = { transfers: [leg('grp-b', '1.00'), leg('grp-a', '2.00'), { ...leg('grp-hold', '3.00'), kind: 'hold' }] };
    expect((await bank.post('/transfer-groups', group)).status).toBe(201);
    expect((await bank.post('/transfer-groups', group)).status).toBe(200);
    expectProblem(await bank.post('/transfer-groups', { transfers: [leg('grp-c', '1.00'), { ...leg('grp-ghost', '1.00'), creditAccountId: 'ghost' }] }), 404, 'account_not_found');
    expectProblem(await bank.post('/transfer-groups', { transfers: [] }), 400, 'invalid_request');
    const { kind: _kind, ...single } = leg('grp-single', '1.00');
    expect((await bank.post('/transfers', single)).status).toBe(201);
    const rows = await eventually(async () => {
      const { rows: found } = await db.admin.query<{ action: string; resource_id: string | null; member_ids: string[] | null; status: number; replayed: boolean }>(
        "SELECT action, resource_id, member_ids, status, replayed FROM banking_api.audit_events WHERE client_id = 'group-app' AND action NOT LIKE 'account.%' ORDER BY occurred_at, segment_id, seq",
      );
      expect(found).toHaveLength(5);
      return found;
    });
    expect(rows.map((row) => [row.action, row.resource_id, row.member_ids, row.status, row.replayed])).toEqual([
      ['transfer.group', null, ['grp-b', 'grp-a', 'grp-hold'], 201, false],
      ['transfer.group', null, ['grp-b', 'grp-a', 'grp-hold'], 200, false],
      ['transfer.group', null, ['grp-c', 'grp-ghost'], 404, false],
      ['transfer.group', null, null, 400, false],
      ['transfer.create', 'grp-single', null, 201, false],
    ]);
  });
});

describe('audit events while the database is away', () => {
  it('a request that failed because the database was down is audited as an error once the database is back: retried (failed writes in the metrics), not dropped', async () => {
    const api = await start();
    const tenant = 'aud-down';
    await openAccounts(client(api.url, await api.token(tenant)));
    const bank = client(api.url, await api.token(tenant, undefined, { subject: 'down-app' }));
    await db.admin.query(`ALTER ROLE ${db.roles.app} NOLOGIN`);
    let failed: Awaited<ReturnType<typeof bank.get>>;
    try {
      await db.admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [db.roles.app]);
      failed = await bank.get('/accounts/cash/balance');
      expect(failed.status).toBeGreaterThanOrEqual(500);
      await eventually(async () => expect(api.api.auditStats().failedWrites).toBeGreaterThan(0), 15_000);
      // Operators see the failed writes where they see the drops: in the metrics.
      const failedWrites = /^banking_api_audit_failed_writes_total (\d+)$/m.exec(await api.api.metricsText())?.[1];
      expect(Number(failedWrites)).toBeGreaterThan(0);
    } finally {
      await db.admin.query(`ALTER ROLE ${db.roles.app} LOGIN`);
    }
    const rows = await eventually(async () => {
      const found = await auditRows('down-app');
      expect(found).toHaveLength(1);
      return found;
    }, 15_000);
    expect(rows[0]).toMatchObject({ request_id: failed.headers.get('x-request-id'), action: 'balance.read', resource_id: 'cash', status: failed.status, outcome: 'error', problem_code: failed.body.code });
    expect(api.api.auditStats().dropped).toBe(0);
  });
});

describe('graceful shutdown', () => {
  it('every answered request has its audit event and the idempotent answer it was sent, and every 201 is in the ledger', async () => {
    const api = await start({ auditFlushIntervalMs: 10_000 });
    const tenant = 'sd-audit';
    await openAccounts(client(api.url, await api.token(tenant)));
    const bank = client(api.url, await api.token(tenant, undefined, { subject: 'sd-app' }));
    const inFlight = Array.from({ length: 60 }, (_, n) => {
      const key = `sd-key-${n}`;
      return bank.post('/transfers', { transferId: `sd-${n}`, debitAccountId: 'cash', creditAccountId: 'sink', amount: '1.00', currency: 'EUR' }, { key }).then(
        (reply) => ({ key, reply }),
        () => ({ key, reply: undefined }),
      );
    });
    await Promise.race(inFlight);
    await api.close();
    const outcomes = await Promise.all(inFlight);
    const answered = outcomes.filter((outcome) => outcome.reply !== undefined && outcome.reply.status !== 503);
    expect(answered.length).toBeGreaterThan(0);
    const { rows: posted } = await db.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = $1 AND type = 'TransferPosted'", [tenant]);
    expect(posted[0]?.n).toBe(answered.filter((outcome) => outcome.reply?.status === 201).length);
    const audited = await auditRows('sd-app');
    const requestIds = new Set(audited.map((row) => row.request_id));
    for (const { reply } of answered) expect(requestIds.has(reply?.headers.get('x-request-id') ?? '')).toBe(true);
    const { rows: keys } = await db.admin.query<{ key: string; status: number; body: string }>(
      "SELECT idem_key AS key, response_status AS status, response_body AS body FROM banking_api.idempotency_keys WHERE tenant_id = $1 AND client_id = 'sd-app' AND state = 'done'",
      [tenant],
    );
    const stored = new Map(keys.map((row) => [row.key, row]));
    for (const { key, reply } of answered) expect(stored.get(key)).toMatchObject({ status: reply?.status, body: reply?.text });
    expect(api.api.auditStats().dropped).toBe(0);
  });

  it('close() returns within shutdownTimeoutMs even while a request waits on the database, and a second close() is the same shutdown', async () => {
    const api = await start({ shutdownTimeoutMs: 1_000 });
    const tenant = 'sd-stuck';
    const bank = client(api.url, await api.token(tenant));
    await openAccounts(bank);
    const lock = await lockEvents();
    try {
      const stuck = bank.post('/transfers', { transferId: 'stuck', debitAccountId: 'cash', creditAccountId: 'sink', amount: '1.00', currency: 'EUR' }).catch(() => undefined);
      await appSessionsWaitingForLock(1);
      const startedMs = performance.now();
      const first = api.close();
      expect(api.close()).toBe(first);
      // Well past the timeout, but far short of the lock being held until the test releases it.
      const outcome = await Promise.race([first.then(() => 'closed' as const), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000))]);
      expect(outcome).toBe('closed');
      // close() gives the steps shutdownTimeoutMs (1 s), then the pools what is left of it plus
      // POOL_END_GRACE_MS (1 s, server.ts): 2 s at most, and 1.5 s of margin for a loaded machine.
      // A deadline that outlasts the setting (5 s, say) takes 5 s or more and fails here.
      expect(performance.now() - startedMs).toBeLessThan(1_000 + 1_000 + 1_500);
      await lock.release();
      await stuck;
    } finally {
      await lock.release();
    }
  });

  it('close() while listen() is starting leaves nothing listening', async () => {
    const keys = await generateDevKeys();
    const api = await createBankingApi({
      databaseUrl: db.appUrl,
      poolSize: 2,
      auth: { issuer: DEV_ISSUER, audience: DEFAULT_AUDIENCE, algorithms: [DEV_ALGORITHM], key: keys.publicKey },
      settings: { tenantsMax: 2 },
      logger: createLogger({ level: 'silent' }),
    });
    const listening = api.listen({ port: 0 }).then(
      (url) => url,
      () => undefined,
    );
    await api.close();
    const url = await listening;
    expect(api.app.server.listening).toBe(false);
    if (url !== undefined) await expect(call(url, 'GET', '/health/live')).rejects.toThrow();
    await expect(api.listen({ port: 0 })).rejects.toThrow(/closing/);
    expect(api.app.server.listening).toBe(false);
  });
});
