/**
 * Linked transfer groups (`POST /transfer-groups`: all or nothing) and the Prometheus metrics
 * listener, over real HTTP against PostgreSQL: success, duplicate and rejection paths of the
 * group, its input errors (pointing into the group), scope and tenant rules; the metrics port's
 * exposition text, its isolation from the API port and its bounded labels.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, client, eventually, openTestDatabase, startTestApi, type TestApi, type TestDatabase } from './support/harness.js';
import { expectProblem } from './support/expect-problem.js';

let db: TestDatabase;
let api: TestApi;
let bank: ReturnType<typeof client>;
let metricsUrl: string;
const TENANT = 'groups-bank';
const OTHER = 'groups-other-bank';

beforeAll(async () => {
  db = await openTestDatabase();
  api = await startTestApi(db);
  metricsUrl = await api.api.listenMetrics({ port: 0 });
  bank = client(api.url, await api.token(TENANT));
  for (const [accountId, type, flags] of [
    ['cash', 'asset', undefined],
    ['alice', 'liability', { debitsMustNotExceedCredits: true }],
    ['bob', 'liability', { debitsMustNotExceedCredits: true }],
    ['fees', 'income', undefined],
  ] as const) {
    expect((await bank.post('/accounts', { accountId, currency: 'EUR', type, ...(flags === undefined ? {} : { flags }) })).status).toBe(201);
  }
  expect((await bank.post('/transfers', { transferId: 'fund-alice', debitAccountId: 'cash', creditAccountId: 'alice', amount: '100.00', currency: 'EUR' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await db?.close();
});

async function posted(accountId: string): Promise<string> {
  const reply = await bank.get(`/accounts/${accountId}/balance`);
  expect(reply.status).toBe(200);
  return reply.body.posted as string;
}

describe('linked transfer groups', () => {
  it('a group applies every transfer at once and answers 201 with one receipt per transfer in order; the same group again answers 200 duplicate', async () => {
    const group = {
      transfers: [
        { kind: 'transfer', transferId: 'g1-pay', debitAccountId: 'alice', creditAccountId: 'bob', amount: '30.00', currency: 'EUR' },
        {
          kind: 'transfer',
          transferId: 'g1-fee',
          postings: [
            { accountId: 'bob', side: 'debit', amount: '1.00', currency: 'EUR' },
            { accountId: 'fees', side: 'credit', amount: '1.00', currency: 'EUR' },
          ],
        },
        { kind: 'hold', transferId: 'g1-hold', debitAccountId: 'alice', creditAccountId: 'cash', amount: '5.00', currency: 'EUR' },
      ],
    };
    const reply = await bank.post('/transfer-groups', group);
    expect(reply.status, reply.text).toBe(201);
    expect(reply.body).toMatchObject({ ledgerId: 'main', duplicate: false, ledgerVersion: expect.any(Number) });
    expect(reply.body.transfers.map((receipt: { transferId: string; kind: string }) => [receipt.transferId, receipt.kind])).toEqual([
      ['g1-pay', 'transfer'],
      ['g1-fee', 'transfer'],
      ['g1-hold', 'hold'],
    ]);
    const versions = reply.body.transfers.map((receipt: { ledgerVersion: number }) => receipt.ledgerVersion);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    expect(reply.body.ledgerVersion).toBe(versions[versions.length - 1]);
    expect(await posted('alice')).toBe('70.00');
    expect(await posted('bob')).toBe('29.00');
    expect(await posted('fees')).toBe('1.00');
    expect((await bank.get('/accounts/alice/balance')).body.available).toBe('65.00');

    const again = await bank.post('/transfer-groups', group);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ duplicate: true, ledgerVersion: reply.body.ledgerVersion });
    expect(await posted('alice')).toBe('70.00');
  });

  it('a group that posts and voids holds and reverses a transfer applies them in order', async () => {
    expect((await bank.post('/holds', { transferId: 'g2-hold-a', debitAccountId: 'alice', creditAccountId: 'cash', amount: '10.00', currency: 'EUR' })).status).toBe(201);
    expect((await bank.post('/holds', { transferId: 'g2-hold-b', debitAccountId: 'alice', creditAccountId: 'cash', amount: '10.00', currency: 'EUR' })).status).toBe(201);
    const reply = await bank.post('/transfer-groups', {
      transfers: [
        { kind: 'postHold', transferId: 'g2-post', holdId: 'g2-hold-a', amount: '4.00', currency: 'EUR' },
        { kind: 'voidHold', transferId: 'g2-void', holdId: 'g2-hold-b' },
        { kind: 'reversal', transferId: 'g2-rev', reversalOf: 'g1-fee', reference: 'fee refund' },
      ],
    });
    expect(reply.status, reply.text).toBe(201);
    expect(reply.body.transfers).toMatchObject([
      { transferId: 'g2-post', kind: 'postPending', pendingId: 'g2-hold-a', reversalOf: null },
      { transferId: 'g2-void', kind: 'voidPending', pendingId: 'g2-hold-b' },
      { transferId: 'g2-rev', kind: 'reversal', reversalOf: 'g1-fee', pendingId: null },
    ]);
    // alice: 70 − 4 posted, only g1-hold (5.00) still held; bob gets the fee back.
    expect(await posted('alice')).toBe('66.00');
    expect(await posted('bob')).toBe('30.00');
    expect((await bank.get('/accounts/alice/balance')).body.pending).toBe('5.00');
    const transfer = await eventually(async () => {
      const read = await bank.get('/transfers/g2-rev');
      expect(read.status).toBe(200);
      return read.body;
    });
    expect(transfer).toMatchObject({ kind: 'reversal', reversalOf: 'g1-fee' });
  });

  it('one rejected transfer rejects the whole group: its own problem, a path naming it, and nothing written', async () => {
    const before = { alice: await posted('alice'), bob: await posted('bob') };
    const reply = await bank.post('/transfer-groups', {
      transfers: [
        { kind: 'transfer', transferId: 'g3-ok', debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' },
        { kind: 'transfer', transferId: 'g3-over', debitAccountId: 'bob', creditAccountId: 'alice', amount: '5000.00', currency: 'EUR' },
        { kind: 'transfer', transferId: 'g3-after', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' },
      ],
    });
    expectProblem(reply, 422, 'insufficient_funds');
    expect(reply.body.errors).toEqual([{ path: 'body.transfers.1', message: expect.stringMatching(/^insufficient_funds: /) }]);
    expect({ alice: await posted('alice'), bob: await posted('bob') }).toEqual(before);
    expectProblem(await bank.get('/transfers/g3-ok'), 404, 'not_found');
    // The ids of a rejected group are free: the same first transfer alone is applied.
    expect((await bank.post('/transfers', { transferId: 'g3-ok', debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' })).status).toBe(201);
  });

  it('rejections keep their status: an unknown account 404, a posted hold again 409, a reused id with other content 409', async () => {
    expectProblem(
      await bank.post('/transfer-groups', { transfers: [{ kind: 'transfer', transferId: 'g4-ghost', debitAccountId: 'cash', creditAccountId: 'ghost', amount: '1.00', currency: 'EUR' }] }),
      404,
      'account_not_found',
    );
    expectProblem(await bank.post('/transfer-groups', { transfers: [{ kind: 'postHold', transferId: 'g4-post', holdId: 'g2-hold-a' }] }), 409, 'pending_already_resolved');
    const reused = await bank.post('/transfer-groups', { transfers: [{ kind: 'transfer', transferId: 'g1-pay', debitAccountId: 'alice', creditAccountId: 'bob', amount: '31.00', currency: 'EUR' }] });
    expect(reused.status).toBe(409);
    expect(reused.body.code).toMatch(/^exists_with_different_/);
  });

  it('invalid groups answer 400 invalid_request with paths into the group: empty, too many, unknown kind, bad member, repeated id, too many decimals', async () => {
    const transfer = (n: number) => ({ kind: 'transfer', transferId: `g5-${n}`, debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' });
    expectProblem(await bank.post('/transfer-groups', { transfers: [] }), 400, 'invalid_request');
    expectProblem(await bank.post('/transfer-groups', { transfers: Array.from({ length: 65 }, (_, n) => transfer(n)) }), 400, 'invalid_request');
    expectProblem(await bank.post('/transfer-groups', {}), 400, 'invalid_request');
    const unknownKind = await bank.post('/transfer-groups', { transfers: [transfer(1), { ...transfer(2), kind: 'linked' }] });
    expectProblem(unknownKind, 400, 'invalid_request');
    expect(unknownKind.body.errors[0].path).toBe('body.transfers.1.kind');
    const badMember = await bank.post('/transfer-groups', { transfers: [transfer(1), { ...transfer(2), amount: 1, debitAccountId: 'bad id!' }] });
    expectProblem(badMember, 400, 'invalid_request');
    expect(badMember.body.errors.map((issue: { path: string }) => issue.path)).toEqual(expect.arrayContaining(['body.transfers.1.amount', 'body.transfers.1.debitAccountId']));
    const repeated = await bank.post('/transfer-groups', { transfers: [transfer(1), transfer(1)] });
    expectProblem(repeated, 400, 'invalid_request');
    expect(repeated.body.errors[0].path).toBe('body.transfers.1.transferId');
    const decimals = await bank.post('/transfer-groups', { transfers: [transfer(1), { ...transfer(2), amount: '1.001' }] });
    expectProblem(decimals, 400, 'invalid_request');
    expect(decimals.body.errors[0].path).toBe('body.transfers.1.amount');
    expectProblem(await bank.post('/transfer-groups', { transfers: [{ ...transfer(3), tenantId: OTHER }] }), 400, 'invalid_request');
  });

  it('needs transfers:write and an Idempotency-Key; a retry with the key replays, another body with it is 422', async () => {
    const body = { transfers: [{ kind: 'transfer', transferId: 'g6', debitAccountId: 'cash', creditAccountId: 'bob', amount: '2.00', currency: 'EUR' }] };
    expectProblem(await client(api.url, await api.token(TENANT, ['accounts:read', 'accounts:write'])).post('/transfer-groups', body), 403, 'insufficient_scope');
    expectProblem(await call(api.url, 'POST', '/transfer-groups', { body }), 401, 'unauthorized');
    expectProblem(await bank.post('/transfer-groups', body, { key: null }), 400, 'idempotency_key_missing');
    const first = await bank.post('/transfer-groups', body, { key: 'group-key-1' });
    expect(first.status).toBe(201);
    const replay = await bank.post('/transfer-groups', body, { key: 'group-key-1' });
    expect(replay.status).toBe(201);
    expect(replay.text).toBe(first.text);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expectProblem(await bank.post('/transfer-groups', { transfers: [{ ...body.transfers[0], amount: '3.00' }] }, { key: 'group-key-1' }), 422, 'idempotency_key_reused');
  });

  it("another tenant's accounts do not exist for a group: 404 account_not_found, and nothing is written", async () => {
    const other = client(api.url, await api.token(OTHER));
    expect((await other.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
    const before = await posted('alice');
    const reply = await other.post('/transfer-groups', {
      transfers: [{ kind: 'transfer', transferId: 'steal', debitAccountId: 'alice', creditAccountId: 'cash', amount: '1.00', currency: 'EUR' }],
    });
    expectProblem(reply, 404, 'account_not_found');
    expect(await posted('alice')).toBe(before);
  });

  it('the OpenAPI document describes the group request and receipt', async () => {
    const document = (await client(api.url, '').get('/openapi.json')).body;
    const operation = document.paths['/transfer-groups'].post;
    expect(operation.operationId).toBe('createTransferGroup');
    expect(operation.security).toEqual([{ bearerAuth: ['transfers:write'] }]);
    expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['200', '201', '400', '404', '409', '422']));
    expect(document.components.schemas.TransferGroupRequest.properties.transfers).toMatchObject({ type: 'array', maxItems: 64, minItems: 1 });
    expect(document.components.schemas.GroupPostHold.properties.holdId).toBeDefined();
    expect(document.components.schemas.TransferGroupReceipt).toBeDefined();
  });
});

describe('metrics', () => {
  it('the metrics port serves Prometheus text: requests by route pattern and status, latency histograms, writer queues, projection lag, audit', async () => {
    await bank.get('/accounts/alice/balance');
    await bank.get('/accounts/nobody/balance');
    await call(api.url, 'GET', '/no/such/route/alice');
    const response = await fetch(metricsUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    const value = (line: RegExp): number => Number(text.split('\n').find((candidate) => line.test(candidate))?.split(' ').pop());
    expect(value(/^banking_api_requests_total\{route="\/accounts\/\{accountId\}\/balance",method="GET",status="200"\} /)).toBeGreaterThanOrEqual(1);
    expect(value(/^banking_api_requests_total\{route="\/accounts\/\{accountId\}\/balance",method="GET",status="404"\} /)).toBeGreaterThanOrEqual(1);
    expect(value(/^banking_api_requests_total\{route="\/transfer-groups",method="POST",status="201"\} /)).toBeGreaterThanOrEqual(1);
    expect(value(/^banking_api_requests_total\{route="unmatched",method="GET",status="404"\} /)).toBeGreaterThanOrEqual(1);
    // The histogram counts every answered request of the route (the two above at least, and as
    // many as its requests_total series): a missing line reads as NaN, which no check below admits.
    const count = value(/^banking_api_request_duration_seconds_count\{route="\/accounts\/\{accountId\}\/balance",method="GET"\} /);
    const answered = text
      .split('\n')
      .filter((line) => line.startsWith('banking_api_requests_total{route="/accounts/{accountId}/balance",method="GET",'))
      .reduce((total, line) => total + Number(line.split(' ').pop()), 0);
    expect(Number.isFinite(count), 'the _count line').toBe(true);
    expect(count).toBeGreaterThanOrEqual(2);
    expect(count).toBe(answered);
    expect(value(/^banking_api_request_duration_seconds_bucket\{route="\/accounts\/\{accountId\}\/balance",method="GET",le="\+Inf"\} /)).toBe(count);
    const sum = value(/^banking_api_request_duration_seconds_sum\{route="\/accounts\/\{accountId\}\/balance",method="GET"\} /);
    expect(Number.isFinite(sum), 'the _sum line').toBe(true);
    // Each request takes some time, so requests observed add up to more than nothing.
    expect(sum).toBeGreaterThan(0);
    expect(text).toContain('# TYPE banking_api_request_duration_seconds histogram');
    expect(text).toMatch(new RegExp(`^banking_api_writer_queue_depth\\{tenant="${TENANT}",ledger="main"\\} \\d+$`, 'm'));
    expect(text).toMatch(new RegExp(`^banking_api_projection_lag_seconds\\{projection="[^"]+",tenant="${TENANT}"\\} [0-9.e-]+$`, 'm'));
    expect(text).toMatch(/^banking_api_audit_written_total \d+$/m);
    expect(text).toMatch(/^banking_api_db_pool_connections\{pool="app",state="total"\} \d+$/m);
    // Concrete paths, account ids and tokens never become labels.
    expect(text).not.toContain('alice');
    expect(text).not.toContain('nobody');
    expect(text).not.toContain('Bearer');
  });

  it('histogram buckets are cumulative and end at the count', async () => {
    // Requests of its own, so that the histogram has observations whatever ran before.
    const requests = 3;
    for (let n = 0; n < requests; n += 1) expect((await bank.get('/accounts/alice/balance')).status).toBe(200);
    const text = await (await fetch(metricsUrl)).text();
    const series = (suffix: string): string[] =>
      text.split('\n').filter((line) => line.startsWith(`banking_api_request_duration_seconds_${suffix}{route="/accounts/{accountId}/balance",method="GET"`));
    const buckets = series('bucket').map((line) => Number(line.split(' ').pop()));
    const counts = series('count').map((line) => Number(line.split(' ').pop()));
    expect(buckets.length).toBe(13);
    expect(counts.length).toBe(1);
    const count = counts[0] as number;
    // NaN and Infinity would pass the comparisons below vacuously or wrongly: every value is a number.
    for (const bucket of [...buckets, count]) expect(Number.isFinite(bucket), String(bucket)).toBe(true);
    expect(count).toBeGreaterThanOrEqual(requests);
    for (let index = 1; index < buckets.length; index += 1) expect(buckets[index]).toBeGreaterThanOrEqual(buckets[index - 1] as number);
    // The last bucket (+Inf) holds every observation.
    expect(buckets[buckets.length - 1]).toBe(count);
  });

  it('only GET /metrics is served there, and the API port has no /metrics', async () => {
    const base = metricsUrl.replace(/\/metrics$/, '');
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(404);
    expectProblem(await call(api.url, 'GET', '/metrics'), 404, 'not_found');
  });
});
