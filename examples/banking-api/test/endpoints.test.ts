/**
 * Every endpoint over real HTTP against PostgreSQL: success and failure paths of accounts,
 * balances, statements, transfers, holds, reversals, trial balance, health, the OpenAPI document
 * and the problem-type pages. Responses are checked against their zod schemas by the server
 * itself (`validateResponses`), so a shape that drifted from its schema fails here as a 500.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { requestFingerprint } from '../src/idempotency.js';
import { call, client, eventually, openTestDatabase, startTestApi, type Reply, type TestApi, type TestDatabase } from './support/harness.js';
import { expectProblem } from './support/expect-problem.js';

let db: TestDatabase;
let api: TestApi;
let bank: ReturnType<typeof client>;
const TENANT = 'endpoints-bank';

beforeAll(async () => {
  db = await openTestDatabase();
  api = await startTestApi(db);
  bank = client(api.url, await api.token(TENANT));
  for (const [accountId, type, flags] of [
    ['cash', 'asset', undefined],
    ['alice', 'liability', { debitsMustNotExceedCredits: true }],
    ['bob', 'liability', { debitsMustNotExceedCredits: true }],
    ['fees', 'income', undefined],
  ] as const) {
    const reply = await bank.post('/accounts', { accountId, currency: 'EUR', type, ...(flags === undefined ? {} : { flags }) });
    expect(reply.status).toBe(201);
  }
});

afterAll(async () => {
  await api?.close();
  await db?.close();
});

/** Response headers the API sets itself: the document must declare each where it is sent. */
const API_HEADERS = ['location', 'retry-after', 'idempotent-replayed', 'www-authenticate', 'accept-encoding'];

/** What an answer to `method path` carries that the document does not declare: its status, or one of {@link API_HEADERS}. */
function undeclared(document: any, method: 'GET' | 'POST', path: string, status: number, headers: Headers): string[] {
  const response = document.paths[path]?.[method.toLowerCase()]?.responses?.[String(status)];
  if (response === undefined) return [`${method} ${path} ${status}`];
  const declared = new Set(Object.keys(response.headers ?? {}).map((name) => name.toLowerCase()));
  return API_HEADERS.filter((name) => headers.get(name) !== null && !declared.has(name)).map((name) => `${method} ${path} ${status} ${name}`);
}

/** Writes `request` on a raw connection and reads the answer until the server closes it (at most 8 s). */
async function exchange(base: string, request: string): Promise<{ status: number; headers: Headers; text: string }> {
  const text = await new Promise<string>((resolve) => {
    let received = '';
    const socket = connect(Number(new URL(base).port), '127.0.0.1', () => socket.write(request));
    const giveUp = setTimeout(() => socket.destroy(), 8_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve(received);
    });
  });
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = new Headers();
  for (const line of lines) headers.append(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim());
  return { status: Number(statusLine.split(' ')[1]), headers, text: body };
}

describe('accounts', () => {
  it('opening an account answers 201 with the account and its Location; the same again answers 200, different attributes 409 account_exists', async () => {
    const body = { accountId: 'carol', currency: 'EUR', type: 'liability', metadata: { segment: 'retail' } };
    const created = await bank.post('/accounts', body);
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/accounts/carol');
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.body).toMatchObject({ accountId: 'carol', ledgerId: 'main', currency: 'EUR', type: 'liability', normalSide: 'credit', status: 'open', metadata: { segment: 'retail' } });
    expect((await bank.post('/accounts', body)).status).toBe(200);
    expectProblem(await bank.post('/accounts', { ...body, currency: 'USD' }), 409, 'account_exists');
  });

  it('an invalid account body answers 400 invalid_request naming each bad field', async () => {
    const reply = await bank.post('/accounts', { accountId: 'bad id!', currency: 'eur', type: 'savings', extra: 1 });
    expectProblem(reply, 400, 'invalid_request');
    const paths = (reply.body.errors as { path: string }[]).map((issue) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(['body.accountId', 'body.currency', 'body.type']));
    expectProblem(await bank.post('/accounts', { accountId: 'x1', currency: 'XXZ', type: 'asset' }), 400, 'invalid_request');
  });

  it('an account with both balance flags is malformed: 400 invalid_request at body.flags, and no account opened', async () => {
    const reply = await bank.post('/accounts', { accountId: 'pinned', currency: 'EUR', type: 'asset', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: true } });
    expectProblem(reply, 400, 'invalid_request');
    expect((reply.body.errors as { path: string }[]).map((issue) => issue.path)).toEqual(['body.flags']);
    expectProblem(await bank.get('/accounts/pinned'), 404, 'not_found');
  });

  it('get answers the account, and 404 not_found for an unknown one', async () => {
    const reply = await bank.get('/accounts/alice');
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ accountId: 'alice', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false }, openedLedgerVersion: expect.any(Number) });
    expectProblem(await bank.get('/accounts/nobody'), 404, 'not_found');
    expectProblem(await bank.get('/accounts/bad%20id'), 400, 'invalid_request');
  });

  it('an account whose id has the longest length ids may have (128) is reachable on every account route', async () => {
    const longId = `long-${'x'.repeat(123)}`;
    expect(longId).toHaveLength(128);
    expect((await bank.post('/accounts', { accountId: longId, currency: 'EUR', type: 'liability' })).status).toBe(201);
    expect((await bank.post('/transfers', { transferId: `t-${'y'.repeat(126)}`, debitAccountId: 'cash', creditAccountId: longId, amount: '1.00', currency: 'EUR' })).status).toBe(201);
    expect((await bank.get(`/accounts/${longId}`)).body).toMatchObject({ accountId: longId });
    expect((await bank.get(`/accounts/${longId}/balance`)).body).toMatchObject({ accountId: longId, posted: '1.00' });
    expect((await bank.get(`/accounts/${longId}/transactions`)).status).toBe(200);
    expect((await bank.get(`/transfers/t-${'y'.repeat(126)}`)).status).toBe(200);
    expect((await bank.post(`/accounts/${longId}/freeze`)).body).toMatchObject({ accountId: longId, status: 'frozen' });
    // One character more is a 400 problem about the path parameter, like any other bad id.
    expectProblem(await bank.get(`/accounts/${'z'.repeat(129)}`), 400, 'invalid_request');
    expectProblem(await bank.get(`/accounts/${'z'.repeat(5_000)}/balance`), 400, 'invalid_request');
  });

  it('a path that is not valid percent-encoding answers a 400 problem document, not a framework error', async () => {
    const reply = await bank.get('/accounts/%E0%A4%A/balance');
    expectProblem(reply, 400, 'invalid_request');
    expect(reply.text).not.toContain('FST_');
  });

  it('an Expect header other than 100-continue answers 417 and a request without Host 400, both as problem documents with no-store (not Node\'s empty answers)', async () => {
    for (const [request, status, code] of [
      ['GET /health/live HTTP/1.1\r\nHost: api\r\nExpect: the-moon\r\n\r\n', 417, 'expectation_failed'],
      ['GET /health/live HTTP/1.1\r\n\r\n', 400, 'invalid_request'],
      ['GET /accounts HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n', 400, 'invalid_request'],
    ] as const) {
      const reply = await exchange(api.url, request);
      expect({ request, status: reply.status }).toEqual({ request, status });
      expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(reply.headers.get('cache-control')).toBe('no-store');
      expect(JSON.parse(reply.text)).toMatchObject({ status, code, type: `/problems/${code}` });
    }
    // HTTP/1.0 has no Host requirement, and 100-continue is still answered as Node does.
    expect((await exchange(api.url, 'GET /health/live HTTP/1.0\r\n\r\n')).status).toBe(200);
  });

  it('request headers over the server limit answer 431 as a problem document', async () => {
    const reply = await bank.get('/accounts', { headers: { 'x-padding': 'p'.repeat(20_000) } });
    expectProblem(reply, 431, 'request_headers_too_large');
  });

  it('list pages through accounts in id order with a keyset cursor, and bounds the page size', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page += 1) {
      const reply = await bank.get(`/accounts?limit=2${after === null ? '' : `&after=${after}`}`);
      expect(reply.status).toBe(200);
      expect(reply.body.accounts.length).toBeLessThanOrEqual(2);
      seen.push(...reply.body.accounts.map((account: { accountId: string }) => account.accountId));
      after = reply.body.nextCursor;
      if (after === null) break;
    }
    expect(seen).toEqual([...seen].sort());
    expect(seen).toEqual(expect.arrayContaining(['alice', 'bob', 'cash', 'fees']));
    expect(new Set(seen).size).toBe(seen.length);
    expectProblem(await bank.get('/accounts?limit=0'), 400, 'invalid_request');
    expectProblem(await bank.get('/accounts?limit=501'), 400, 'invalid_request');
    expectProblem(await bank.get('/accounts?unknown=1'), 400, 'invalid_request');
  });

  it('freeze, unfreeze and close change the status, and each refuses what the ledger refuses', async () => {
    await bank.post('/accounts', { accountId: 'dave', currency: 'EUR', type: 'liability' });
    const frozen = await bank.post('/accounts/dave/freeze', { reason: 'kyc review' });
    expect(frozen.status).toBe(200);
    expect(frozen.body.status).toBe('frozen');
    expectProblem(await bank.post('/accounts/dave/freeze'), 409, 'account_frozen');
    expectProblem(await bank.post('/transfers', { transferId: 'to-frozen', debitAccountId: 'cash', creditAccountId: 'dave', amount: '1.00', currency: 'EUR' }), 409, 'account_frozen');
    const unfrozen = await bank.post('/accounts/dave/unfreeze');
    expect(unfrozen.body.status).toBe('open');
    expectProblem(await bank.post('/accounts/dave/unfreeze', {}), 409, 'account_not_frozen');
    expect((await bank.post('/transfers', { transferId: 'to-dave', debitAccountId: 'cash', creditAccountId: 'dave', amount: '1.00', currency: 'EUR' })).status).toBe(201);
    expectProblem(await bank.post('/accounts/dave/close'), 409, 'account_not_empty');
    expect((await bank.post('/transfers', { transferId: 'from-dave', debitAccountId: 'dave', creditAccountId: 'cash', amount: '1.00', currency: 'EUR' })).status).toBe(201);
    const closed = await bank.post('/accounts/dave/close');
    expect(closed.body.status).toBe('closed');
    expectProblem(await bank.post('/accounts/dave/close'), 409, 'account_closed');
    expectProblem(await bank.post('/accounts/nobody/freeze'), 404, 'account_not_found');
    expectProblem(await bank.post('/accounts/dave/freeze', { reason: 'x', other: true }), 400, 'invalid_request');
  });

  it('accounts live in the ledger named by Ledger-Id: another ledger of the same tenant has its own', async () => {
    const usd = client(api.url, await api.token(TENANT), 'usd-book');
    expect((await usd.post('/accounts', { accountId: 'alice', currency: 'USD', type: 'liability' })).status).toBe(201);
    expect((await usd.get('/accounts/alice')).body).toMatchObject({ ledgerId: 'usd-book', currency: 'USD' });
    expect((await bank.get('/accounts/alice')).body).toMatchObject({ ledgerId: 'main', currency: 'EUR' });
    expectProblem(await bank.get('/accounts/alice', { headers: { 'ledger-id': 'not a ledger' } }), 400, 'invalid_request');
  });
});

describe('transfers', () => {
  it('a simple transfer answers 201 with a receipt; its id again with the same content 200 duplicate, with another amount 409', async () => {
    const body = { transferId: 'dep-1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '500.00', currency: 'EUR', reference: 'deposit' };
    const created = await bank.post('/transfers', body);
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/transfers/dep-1');
    expect(created.body).toMatchObject({ transferId: 'dep-1', kind: 'transfer', ledgerId: 'main', duplicate: false, ledgerVersion: expect.any(Number) });
    const again = await bank.post('/transfers', body);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ duplicate: true, ledgerVersion: created.body.ledgerVersion, recordedAt: created.body.recordedAt });
    expectProblem(await bank.post('/transfers', { ...body, amount: '501.00' }), 409, 'exists_with_different_amount');
  });

  it('ledger rules answer with their own problem type: insufficient_funds, unbalanced_postings, currency_mismatch, account_not_found', async () => {
    expectProblem(await bank.post('/transfers', { transferId: 'over', debitAccountId: 'bob', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' }), 422, 'insufficient_funds');
    const unbalanced = {
      transferId: 'unbalanced',
      postings: [
        { accountId: 'cash', side: 'debit', amount: '10.00', currency: 'EUR' },
        { accountId: 'alice', side: 'credit', amount: '9.99', currency: 'EUR' },
      ],
    };
    expectProblem(await bank.post('/transfers', unbalanced), 422, 'unbalanced_postings');
    expectProblem(await bank.post('/transfers', { transferId: 'usd', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'USD' }), 422, 'currency_mismatch');
    expectProblem(await bank.post('/transfers', { transferId: 'ghost', debitAccountId: 'cash', creditAccountId: 'ghost', amount: '1.00', currency: 'EUR' }), 404, 'account_not_found');
  });

  it('amounts must be decimal strings within the currency scale: numbers, 3 decimals and negatives answer 400', async () => {
    const base = { transferId: 'amt', debitAccountId: 'cash', creditAccountId: 'alice', currency: 'EUR' };
    for (const amount of [10, '1.001', '-5.00', '1e3', '', '0']) {
      const reply = await bank.post('/transfers', { ...base, amount });
      expectProblem(reply, 400, 'invalid_request');
      expect(reply.body.errors.some((issue: { path: string }) => issue.path === 'body.amount')).toBe(true);
    }
    const multi = await bank.post('/transfers', { transferId: 'amt-m', postings: [{ accountId: 'cash', side: 'debit', amount: 'x', currency: 'EUR' }] });
    expectProblem(multi, 400, 'invalid_request');
    expect(multi.body.errors.map((issue: { path: string }) => issue.path)).toEqual(expect.arrayContaining(['body.postings', 'body.postings.0.amount']));
  });

  it('amounts and metadata are refused past the bounds the OpenAPI document states: 36 digits in minor units, 16 metadata entries, 4,096 bytes', async () => {
    const base = { debitAccountId: 'cash', creditAccountId: 'alice', currency: 'EUR' };
    // EUR has 2 minor-unit digits: 34 before the point is the most (36 digits in minor units).
    for (const amount of ['1'.repeat(35), '1'.repeat(37), `1.${'0'.repeat(19)}`]) {
      const reply = await bank.post('/transfers', { ...base, transferId: 'amt-long', amount });
      expectProblem(reply, 400, 'invalid_request');
      expect(reply.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['body.amount']);
    }
    const entries = (count: number, value = 'v') => Object.fromEntries(Array.from({ length: count }, (_, n) => [`k${n}`, value]));
    const account = { currency: 'EUR', type: 'asset' } as const;
    for (const metadata of [entries(17), entries(9, 'x'.repeat(500))]) {
      const reply = await bank.post('/accounts', { ...account, accountId: 'meta-over', metadata });
      expectProblem(reply, 400, 'invalid_request');
      expect(reply.body.errors[0].path).toMatch(/^body\.metadata/);
    }
    expect((await bank.post('/accounts', { ...account, accountId: 'meta-16', metadata: entries(16) })).status).toBe(201);
    const document = (await client(api.url, '').get('/openapi.json')).body;
    const amount = document.components.schemas.SimpleTransferRequest.properties.amount;
    const pattern = new RegExp(amount.pattern);
    expect(['1'.repeat(36), '0.05', `1.${'0'.repeat(18)}`].every((value) => pattern.test(value))).toBe(true);
    expect(['1'.repeat(37), `1.${'0'.repeat(19)}`, '01', '1.'].some((value) => pattern.test(value))).toBe(false);
    expect(amount.description).toMatch(/36 digits/);
    for (const [name, schema] of Object.entries(document.components.schemas as Record<string, { properties?: Record<string, any> }>)) {
      const metadata = schema.properties?.['metadata'];
      if (metadata === undefined || name === 'Account' || name === 'Transfer') continue;
      expect({ name, maxProperties: metadata.maxProperties }).toEqual({ name, maxProperties: 16 });
      expect(metadata.description, name).toMatch(/4,096 bytes/);
    }
    expect(document.components.schemas.OpenAccountRequest.properties.metadata.maxProperties).toBe(16);
  });

  it('text PostgreSQL could not keep as sent (a NUL, an unpaired surrogate) answers 400 and leaves the read models working', async () => {
    const base = { debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' };
    const refused = [
      await bank.post('/transfers', { ...base, transferId: 'nul-ref', reference: 'inv\u00001' }),
      await bank.post('/transfers', { ...base, transferId: 'nul-meta', metadata: { note: 'a\u0000b' } }),
      await bank.post('/holds', { ...base, transferId: 'sur-meta', metadata: { 'k\ud800': 'v' } }),
      await bank.post('/accounts', { accountId: 'nul-acct', currency: 'EUR', type: 'asset', metadata: { note: 'x\udc00' } }),
      await bank.post('/accounts/bob/freeze', { reason: 'r\u0000' }),
    ];
    for (const reply of refused) expectProblem(reply, 400, 'invalid_request');
    expectProblem(await bank.get('/transfers/nul-ref'), 404, 'not_found');
    expectProblem(await bank.get('/accounts/nul-acct'), 404, 'not_found');
    // The projections did not stop on anything: a transfer after them reaches the balance.
    const receipt = await bank.post('/transfers', { ...base, transferId: 'after-nul', reference: 'clean' });
    expect(receipt.status).toBe(201);
    await eventually(async () => expect((await bank.get('/transfers/after-nul')).status).toBe(200));
  });

  it('a multi-posting transfer moves money between several accounts and balances per currency', async () => {
    await bank.post('/transfers', { transferId: 'dep-bob', debitAccountId: 'cash', creditAccountId: 'bob', amount: '100.00', currency: 'EUR' });
    const reply = await bank.post('/transfers', {
      transferId: 'pay-1',
      postings: [
        { accountId: 'alice', side: 'debit', amount: '51.50', currency: 'EUR' },
        { accountId: 'bob', side: 'credit', amount: '50.00', currency: 'EUR' },
        { accountId: 'fees', side: 'credit', amount: '1.50', currency: 'EUR' },
      ],
      metadata: { purpose: 'rent' },
    });
    expect(reply.status).toBe(201);
    const transfer = await bank.get('/transfers/pay-1');
    expect(transfer.status).toBe(200);
    expect(transfer.body).toMatchObject({ kind: 'transfer', metadata: { purpose: 'rent' }, reversedBy: null, hold: null });
    expect(transfer.body.postings).toEqual([
      { accountId: 'alice', side: 'debit', amount: '51.50', currency: 'EUR' },
      { accountId: 'bob', side: 'credit', amount: '50.00', currency: 'EUR' },
      { accountId: 'fees', side: 'credit', amount: '1.50', currency: 'EUR' },
    ]);
  });

  it('get transfer answers 404 not_found for an unknown id', async () => {
    expectProblem(await bank.get('/transfers/no-such-transfer'), 404, 'not_found');
  });

  it('a hold reserves funds (available drops), posts partly once, and a second post or an over-amount is refused', async () => {
    await bank.post('/accounts', { accountId: 'erin', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } });
    await bank.post('/transfers', { transferId: 'dep-erin', debitAccountId: 'cash', creditAccountId: 'erin', amount: '100.00', currency: 'EUR' });
    const hold = await bank.post('/holds', { transferId: 'hold-1', debitAccountId: 'erin', creditAccountId: 'fees', amount: '30.00', currency: 'EUR', timeoutMs: 3_600_000 });
    expect(hold.status).toBe(201);
    expect(hold.body.kind).toBe('hold');
    const balance = await bank.get('/accounts/erin/balance');
    expect(balance.body).toMatchObject({ posted: '100.00', pending: '30.00', available: '70.00' });
    expectProblem(await bank.post('/transfers', { transferId: 'too-much', debitAccountId: 'erin', creditAccountId: 'fees', amount: '70.01', currency: 'EUR' }), 422, 'insufficient_funds');
    expectProblem(await bank.post('/holds/hold-1/post', { transferId: 'post-1x', amount: '30.01', currency: 'EUR' }), 422, 'amount_exceeds_pending');
    const posted = await bank.post('/holds/hold-1/post', { transferId: 'post-1', amount: '20.00', currency: 'EUR' });
    expect(posted.status).toBe(201);
    expect(posted.body).toMatchObject({ kind: 'postPending', pendingId: 'hold-1' });
    expect((await bank.get('/accounts/erin/balance')).body).toMatchObject({ posted: '80.00', pending: '0.00', available: '80.00' });
    expectProblem(await bank.post('/holds/hold-1/post', { transferId: 'post-2' }), 409, 'pending_already_resolved');
    const view = await eventually(async () => {
      const reply = await bank.get('/transfers/hold-1');
      expect(reply.body.hold.status).toBe('posted');
      return reply.body;
    });
    expect(view.hold).toMatchObject({ status: 'posted', resolvedBy: 'post-1', timeoutAt: expect.any(String) });
  });

  it('a hold can be voided, releasing its funds; voiding an unknown hold answers 404 pending_not_found', async () => {
    await bank.post('/holds', { transferId: 'hold-2', debitAccountId: 'erin', creditAccountId: 'fees', amount: '10.00', currency: 'EUR' });
    expect((await bank.get('/accounts/erin/balance')).body.available).toBe('70.00');
    const voided = await bank.post('/holds/hold-2/void', { transferId: 'void-2' });
    expect(voided.status).toBe(201);
    expect(voided.body).toMatchObject({ kind: 'voidPending', pendingId: 'hold-2' });
    expect((await bank.get('/accounts/erin/balance')).body.available).toBe('80.00');
    expectProblem(await bank.post('/holds/hold-9/void', { transferId: 'void-9' }), 404, 'pending_not_found');
    expectProblem(await bank.post('/holds/hold-2/void', { transferId: 'void-2b', amount: '1.00' }), 400, 'invalid_request');
  });

  it('a posted transfer is reversed once; reversing again, an unknown transfer or a hold is refused', async () => {
    await bank.post('/transfers', { transferId: 'to-reverse', debitAccountId: 'cash', creditAccountId: 'erin', amount: '5.00', currency: 'EUR' });
    const reversal = await bank.post('/transfers/to-reverse/reversal', { transferId: 'rev-1', reference: 'refund' });
    expect(reversal.status).toBe(201);
    expect(reversal.body).toMatchObject({ kind: 'reversal', reversalOf: 'to-reverse' });
    expectProblem(await bank.post('/transfers/to-reverse/reversal', { transferId: 'rev-2' }), 409, 'transfer_already_reversed');
    expectProblem(await bank.post('/transfers/nothing/reversal', { transferId: 'rev-3' }), 404, 'transfer_not_found');
    expectProblem(await bank.post('/transfers/hold-2/reversal', { transferId: 'rev-4' }), 422, 'transfer_not_reversible');
    const original = await eventually(async () => {
      const reply = await bank.get('/transfers/to-reverse');
      expect(reply.body.reversedBy).toBe('rev-1');
      return reply.body;
    });
    expect(original.kind).toBe('transfer');
    expect((await bank.get('/transfers/rev-1')).body.postings).toEqual([
      { accountId: 'cash', side: 'credit', amount: '5.00', currency: 'EUR' },
      { accountId: 'erin', side: 'debit', amount: '5.00', currency: 'EUR' },
    ]);
  });
});

describe('balances and statements', () => {
  it('balance as of an effective time sees a back-dated transfer that the same recorded time does not; before the account opened answers 404', async () => {
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const opened = await bank.post('/accounts', { accountId: 'frank', currency: 'EUR', type: 'liability' });
    await sleep(30);
    const between = new Date().toISOString();
    await sleep(30);
    expect((await bank.post('/transfers', { transferId: 'frank-1', debitAccountId: 'cash', creditAccountId: 'frank', amount: '10.00', currency: 'EUR' })).status).toBe(201);
    const backdated = await bank.post('/transfers', { transferId: 'frank-2', debitAccountId: 'cash', creditAccountId: 'frank', amount: '5.00', currency: 'EUR', effectiveAt: between });
    expect(backdated.status).toBe(201);
    expect((await bank.get('/accounts/frank/balance')).body).toMatchObject({ posted: '15.00', asOf: null, timeBasis: null });
    const effective = await eventually(async () => {
      const reply = await bank.get(`/accounts/frank/balance?asOf=${encodeURIComponent(between)}`);
      expect(reply.body.posted).toBe('5.00');
      return reply.body;
    });
    expect(effective).toMatchObject({ asOf: between, timeBasis: 'effective' });
    expect((await bank.get(`/accounts/frank/balance?asOf=${encodeURIComponent(between)}&timeBasis=recorded`)).body.posted).toBe('0.00');
    const beforeOpening = new Date(Date.parse(opened.body.openedAt) - 1_000).toISOString();
    expectProblem(await bank.get(`/accounts/frank/balance?asOf=${encodeURIComponent(beforeOpening)}&timeBasis=recorded`), 404, 'not_found');
    expectProblem(await bank.post('/transfers', { transferId: 'frank-3', debitAccountId: 'cash', creditAccountId: 'frank', amount: '1.00', currency: 'EUR', effectiveAt: beforeOpening }), 422, 'effective_at_before_dependency');
    expectProblem(await bank.get('/accounts/frank/balance?asOf=yesterday'), 400, 'invalid_request');
    // Year 10000 in UTC, and year 0: outside what the read models and the events can hold.
    for (const asOf of ['9999-12-31T23:59:59-14:00', '0000-12-31T23:00:00Z']) {
      expectProblem(await bank.get(`/accounts/frank/balance?asOf=${encodeURIComponent(asOf)}`), 400, 'invalid_request');
    }
    expect((await bank.get(`/accounts/frank/balance?asOf=${encodeURIComponent('9999-12-31T23:59:59Z')}`)).status).toBe(200);
    expectProblem(await bank.get('/accounts/nobody/balance'), 404, 'not_found');
  });

  it('the statement lists entries with the running balance, pages by cursor without gaps, and filters by recorded time', async () => {
    await bank.post('/accounts', { accountId: 'gina', currency: 'EUR', type: 'liability' });
    for (let n = 1; n <= 5; n += 1) await bank.post('/transfers', { transferId: `gina-${n}`, debitAccountId: 'cash', creditAccountId: 'gina', amount: `${n}.00`, currency: 'EUR' });
    const all = await eventually(async () => {
      const reply = await bank.get('/accounts/gina/transactions');
      expect(reply.body.entries).toHaveLength(5);
      return reply.body;
    });
    expect(all.entries.map((entry: { balanceAfter: string }) => entry.balanceAfter)).toEqual(['1.00', '3.00', '6.00', '10.00', '15.00']);
    expect(all.nextCursor).toBeNull();
    const pages: string[] = [];
    let after: string | null = null;
    do {
      const reply = await bank.get(`/accounts/gina/transactions?limit=2${after === null ? '' : `&after=${after}`}`);
      pages.push(...reply.body.entries.map((entry: { transferId: string }) => entry.transferId));
      after = reply.body.nextCursor;
    } while (after !== null);
    expect(pages).toEqual(['gina-1', 'gina-2', 'gina-3', 'gina-4', 'gina-5']);
    const third = all.entries[2].recordedAt as string;
    const fifth = all.entries[4].recordedAt as string;
    const ranged = await bank.get(`/accounts/gina/transactions?from=${encodeURIComponent(third)}&to=${encodeURIComponent(fifth)}`);
    expect(ranged.body.entries.every((entry: { recordedAt: string }) => entry.recordedAt >= third && entry.recordedAt < fifth)).toBe(true);
    expect(ranged.body.entries.map((entry: { transferId: string }) => entry.transferId)).toContain('gina-3');
    expectProblem(await bank.get('/accounts/nobody/transactions'), 404, 'not_found');
    expectProblem(await bank.get('/accounts/gina/transactions?limit=1001'), 400, 'invalid_request');
    expectProblem(await bank.get('/accounts/gina/transactions?after=abc'), 400, 'invalid_request');
    // A cursor past the integers the ledger can count is refused as the query parameter it is.
    const huge = await bank.get('/accounts/gina/transactions?after=9999999999999999');
    expectProblem(huge, 400, 'invalid_request');
    expect(huge.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['query.after']);
  });
});

describe('statement ranges', () => {
  it('a statement range that ends before it starts answers 400 naming query.to, instead of an empty statement', async () => {
    const reply = await bank.get(`/accounts/cash/transactions?from=${encodeURIComponent('2026-02-01T00:00:00Z')}&to=${encodeURIComponent('2026-01-01T00:00:00Z')}`);
    expectProblem(reply, 400, 'invalid_request');
    expect(reply.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['query.to']);
    // Compared as instants, not as text: the same instant written with an offset is no earlier.
    const sameInstant = await bank.get(`/accounts/cash/transactions?from=${encodeURIComponent('2026-01-01T01:00:00+01:00')}&to=${encodeURIComponent('2026-01-01T00:00:00Z')}`);
    expect(sameInstant.status).toBe(200);
  });
});

describe('query and header errors', () => {
  it('timeBasis without asOf answers 400 naming query.timeBasis on the balance and the trial balance, instead of being ignored', async () => {
    for (const path of ['/accounts/cash/balance?timeBasis=recorded', '/trial-balance?timeBasis=effective']) {
      const reply = await bank.get(path);
      expectProblem(reply, 400, 'invalid_request');
      expect(reply.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['query.timeBasis']);
    }
    expect((await bank.get(`/accounts/cash/balance?asOf=${encodeURIComponent(new Date().toISOString())}&timeBasis=recorded`)).status).toBe(200);
    const document = (await client(api.url, '').get('/openapi.json')).body;
    const parameter = document.paths['/accounts/{accountId}/balance'].get.parameters.find((candidate: { name: string }) => candidate.name === 'timeBasis');
    expect(parameter.description).toMatch(/only with `asOf`/i);
  });

  it('a route without query parameters refuses any query key with 400 at query, POSTs included: POST /transfers?dryRun=true moves no money', async () => {
    const before = (await bank.get('/accounts/alice/balance')).body.posted as string;
    const transfer = { transferId: 'dry-run', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR' };
    const refused = [
      await bank.post('/transfers?dryRun=true', transfer),
      await bank.post('/accounts/alice/freeze?force=1'),
      await bank.post('/accounts?validateOnly', { accountId: 'query-account', currency: 'EUR', type: 'asset' }),
      await bank.get('/accounts/alice?expand=balance'),
      await bank.get('/transfers/dry-run?x=1'),
    ];
    for (const reply of refused) {
      expectProblem(reply, 400, 'invalid_request');
      expect(reply.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['query']);
    }
    expect((await bank.get('/accounts/alice/balance')).body).toMatchObject({ posted: before, status: 'open' });
    expectProblem(await bank.get('/accounts/query-account'), 404, 'not_found');
    // The same requests without the query are served; an empty query string is no key.
    expect((await bank.post('/transfers?', transfer)).status).toBe(201);
    // The document declares no query parameter for them.
    const document = (await client(api.url, '').get('/openapi.json')).body;
    for (const [path, method] of [['/transfers', 'post'], ['/accounts', 'post'], ['/accounts/{accountId}/freeze', 'post'], ['/accounts/{accountId}', 'get']] as const) {
      expect(document.paths[path][method].parameters.filter((parameter: { in?: string }) => parameter.in === 'query'), `${method} ${path}`).toEqual([]);
    }
  });

  it('the page-size parameters are documented as the integers the server takes, with the bounds it enforces, and every 413 states the body limit', async () => {
    const document = (await client(api.url, '').get('/openapi.json')).body;
    for (const [path, operations] of Object.entries(document.paths as Record<string, Record<string, { responses: Record<string, { description: string }> }>>)) {
      const post = operations['post'];
      if (post !== undefined) expect(post.responses['413']?.description, path).toContain(`${api.api.settings.bodyLimitBytes} bytes`);
    }
    for (const [path, max] of [['/accounts', 500], ['/accounts/{accountId}/transactions', 1_000]] as const) {
      const limit = document.paths[path].get.parameters.find((candidate: { name: string }) => candidate.name === 'limit');
      expect(limit.schema, path).toEqual({ type: 'integer', minimum: 1, maximum: max });
      const at = path.replace('{accountId}', 'alice');
      expect((await bank.get(`${at}?limit=${max}`)).status, `${at} limit ${max}`).toBe(200);
      expectProblem(await bank.get(`${at}?limit=${max + 1}`), 400, 'invalid_request');
    }
  });

  it('a hold post\'s amount and currency go together, in the document (dependentRequired) as on the server (400 at body.currency)', async () => {
    const document = (await client(api.url, '').get('/openapi.json')).body;
    for (const component of ['PostHoldRequest', 'GroupPostHold']) {
      expect(document.components.schemas[component].dependentRequired, component).toEqual({ amount: ['currency'], currency: ['amount'] });
    }
    const reply = await bank.post('/holds/no-such-hold/post', { transferId: 'pairing-1', amount: '1.00' });
    expectProblem(reply, 400, 'invalid_request');
    expect(reply.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['body.currency']);
  });

  it('serves the OpenAPI document from text made once, not serialised per request', async () => {
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      const replies = [];
      for (let n = 0; n < 3; n += 1) replies.push(await client(api.url, '').get('/openapi.json'));
      for (const reply of replies) {
        expect(reply.status).toBe(200);
        expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
        expect(reply.body.openapi).toBe('3.1.0');
      }
      expect(replies[1]?.body).toEqual(replies[0]?.body);
      const serialisedDocuments = stringify.mock.calls.filter(([value]) => typeof value === 'object' && value !== null && 'openapi' in value);
      expect(serialisedDocuments).toEqual([]);
    } finally {
      stringify.mockRestore();
    }
  });

  it('a path the API serves, asked with a method it does not take, answers 405 method_not_allowed with Allow; an unknown path stays 404', async () => {
    const token = await api.token(TENANT);
    for (const [method, path, allow] of [
      ['PUT', '/accounts/alice', 'GET, HEAD'],
      ['DELETE', '/accounts/alice', 'GET, HEAD'],
      ['GET', '/transfers', 'POST'],
      ['PUT', '/accounts', 'GET, HEAD, POST'],
    ] as const) {
      const reply = await call(api.url, method, path, { token });
      expectProblem(reply, 405, 'method_not_allowed');
      expect(reply.headers.get('allow'), `${method} ${path}`).toBe(allow);
      expect(reply.headers.get('cache-control')).toBe('no-store');
    }
    expectProblem(await call(api.url, 'PUT', '/no-such-thing', { token }), 404, 'not_found');
    expectProblem(await call(api.url, 'GET', '/accounts/alice/nothing', { token }), 404, 'not_found');
    // A route's path is matched literally but for its parameters: the dot of /openapi.json is a dot.
    expectProblem(await call(api.url, 'PUT', '/openapi.json', { token }), 405, 'method_not_allowed');
    expectProblem(await call(api.url, 'PUT', '/openapiXjson', { token }), 404, 'not_found');
  });

  it('a header that fails its schema is named in the issue path (header.idempotency-key, header.ledger-id), as query and body issues are', async () => {
    const badKey = await bank.post('/accounts', { accountId: 'header-key', currency: 'EUR', type: 'asset' }, { key: 'has space' });
    expectProblem(badKey, 400, 'invalid_request');
    expect(badKey.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['header.idempotency-key']);
    const badLedger = await bank.get('/accounts', { headers: { 'ledger-id': 'not a ledger!' } });
    expectProblem(badLedger, 400, 'invalid_request');
    expect(badLedger.body.errors.map((issue: { path: string }) => issue.path)).toEqual(['header.ledger-id']);
  });
});

describe('trial balance', () => {
  it('answers every account with balanced totals per currency, now and as of a time', async () => {
    const now = await bank.get('/trial-balance');
    expect(now.status).toBe(200);
    expect(now.body.totals.length).toBeGreaterThan(0);
    expect(now.body.totals.every((total: { balanced: boolean }) => total.balanced)).toBe(true);
    expect(now.body.lines.map((line: { accountId: string }) => line.accountId)).toEqual(expect.arrayContaining(['alice', 'cash']));
    const asOf = new Date(Date.now() - 10 * 86_400_000).toISOString();
    const past = await eventually(async () => {
      const reply = await bank.get(`/trial-balance?asOf=${encodeURIComponent(asOf)}&timeBasis=recorded`);
      expect(reply.status).toBe(200);
      return reply.body;
    });
    expect(past).toMatchObject({ asOf, timeBasis: 'recorded', lines: [] });
  });
});

describe('documents and health', () => {
  it('serves an OpenAPI 3.1 document with every route, scopes, problem responses and resolvable references', async () => {
    const reply = await client(api.url, '').get('/openapi.json', { headers: {} });
    expect(reply.status).toBe(200);
    const document = reply.body;
    expect(document.openapi).toBe('3.1.0');
    const operations = Object.values(document.paths as Record<string, Record<string, { operationId: string }>>).flatMap((path) => Object.values(path).map((op) => op.operationId));
    expect(operations).toEqual(
      expect.arrayContaining(['openAccount', 'listAccounts', 'getAccount', 'freezeAccount', 'unfreezeAccount', 'closeAccount', 'getBalance', 'getStatement', 'createTransfer', 'createHold', 'postHold', 'voidHold', 'reverseTransfer', 'getTransfer', 'getTrialBalance', 'live', 'ready']),
    );
    expect(document.paths['/transfers'].post.security).toEqual([{ bearerAuth: ['transfers:write'] }]);
    expect(document.paths['/trial-balance'].get.security).toEqual([{ bearerAuth: ['audit:read'] }]);
    expect(document.paths['/transfers'].post.responses['422'].content['application/problem+json']).toBeDefined();
    expect(document.components.schemas.SimpleTransferRequest.properties.amount).toMatchObject({ type: 'string', pattern: expect.any(String) });
    const refs: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value !== null && typeof value === 'object') for (const [key, inner] of Object.entries(value)) key === '$ref' ? refs.push(inner as string) : walk(inner);
    };
    walk(document);
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) {
      const target = ref.replace(/^#\//, '').split('/').reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], document);
      expect(target, ref).toBeDefined();
    }
  });

  it('every status and API header a real answer carries is declared for its operation: Location, Idempotent-Replayed, Retry-After, WWW-Authenticate, Accept-Encoding, 408 and 431', async () => {
    const document = (await client(api.url, '').get('/openapi.json')).body;
    const seen: string[] = [];
    const check = (method: 'GET' | 'POST', path: string, reply: { status: number; headers: Headers }, expected: { status: number; headers?: string[] }): void => {
      expect({ status: reply.status, headers: (expected.headers ?? []).filter((name) => reply.headers.get(name) === null) }, `${method} ${path}`).toEqual({ status: expected.status, headers: [] });
      seen.push(...undeclared(document, method, path, reply.status, reply.headers));
    };
    const account = { accountId: 'documented', currency: 'EUR', type: 'asset' };
    const key = randomUUID();
    check('POST', '/accounts', await bank.post('/accounts', account, { key }), { status: 201, headers: ['location'] });
    check('POST', '/accounts', await bank.post('/accounts', account, { key }), { status: 201, headers: ['location', 'idempotent-replayed'] });
    check('POST', '/accounts', await bank.post('/accounts', account), { status: 200, headers: ['location'] });
    const conflictKey = randomUUID();
    check('POST', '/accounts', await bank.post('/accounts', { ...account, currency: 'USD' }, { key: conflictKey }), { status: 409 });
    check('POST', '/accounts', await bank.post('/accounts', { ...account, currency: 'USD' }, { key: conflictKey }), { status: 409, headers: ['idempotent-replayed'] });
    const transfer = { transferId: 'documented-1', debitAccountId: 'cash', creditAccountId: 'documented', amount: '1.00', currency: 'EUR' };
    const transferKey = randomUUID();
    check('POST', '/transfers', await bank.post('/transfers', transfer, { key: transferKey }), { status: 201, headers: ['location'] });
    check('POST', '/transfers', await bank.post('/transfers', transfer, { key: transferKey }), { status: 201, headers: ['location', 'idempotent-replayed'] });
    check('POST', '/transfers', await bank.post('/transfers', transfer), { status: 200, headers: ['location'] });
    // A claim still running (as another process holds it): the retry is told to come back.
    const running = { accountId: 'documented-running', currency: 'EUR', type: 'asset' };
    const runningKey = randomUUID();
    await db.admin.query(
      `INSERT INTO banking_api.idempotency_keys (tenant_id, client_id, idem_key, fingerprint, state, locked_until, expires_at)
       VALUES ($1, $2, $3, $4, 'pending', now() + interval '1 hour', now() + interval '1 day')`,
      [TENANT, `client-of-${TENANT}`, runningKey, requestFingerprint({ method: 'POST', route: '/accounts', params: undefined, ledgerId: 'main', body: running })],
    );
    const inProgress = await bank.post('/accounts', running, { key: runningKey });
    expectProblem(inProgress, 409, 'idempotency_request_in_progress');
    check('POST', '/accounts', inProgress, { status: 409, headers: ['retry-after'] });
    check('POST', '/accounts', await bank.post('/accounts', undefined, { raw: gzipSync(JSON.stringify(account)), headers: { 'content-encoding': 'gzip' } }), { status: 415, headers: ['accept-encoding'] });
    check('GET', '/accounts', await call(api.url, 'GET', '/accounts'), { status: 401, headers: ['www-authenticate'] });
    check('GET', '/trial-balance', await client(api.url, await api.token(TENANT, ['accounts:read'])).get('/trial-balance'), { status: 403, headers: ['www-authenticate'] });
    check('GET', '/accounts', await bank.get('/accounts', { headers: { 'x-padding': 'p'.repeat(20_000) } }), { status: 431 });
    const limited = await startTestApi(db, { requestTimeoutMs: 1_000, rateLimitPerSecond: 1, rateLimitBurst: 1 });
    try {
      const token = await limited.token(TENANT);
      const replies = [await call(limited.url, 'GET', '/accounts', { token }), await call(limited.url, 'GET', '/accounts', { token })];
      check('GET', '/accounts', replies[1] as Reply, { status: 429, headers: ['retry-after'] });
      // Headers never finished: node answers 408 before any route is known.
      const timedOut = await exchange(limited.url, `POST /accounts HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${token}\r\n`);
      check('POST', '/accounts', timedOut, { status: 408 });
    } finally {
      await limited.close();
    }
    expect(seen).toEqual([]);
  });

  it('every operation that validates a path or query parameter documents the 400 it answers for a bad one', async () => {
    const document = (await client(api.url, '').get('/openapi.json', { headers: {} })).body;
    const anonymous = client(api.url, '');
    expectProblem(await anonymous.get('/problems/NOT_A_CODE'), 400, 'invalid_request');
    for (const [path, operations] of Object.entries(document.paths as Record<string, Record<string, { parameters: { in: string }[]; responses: Record<string, unknown> }>>)) {
      for (const [method, operation] of Object.entries(operations)) {
        if (!operation.parameters.some((parameter) => parameter.in === 'path' || parameter.in === 'query')) continue;
        expect(operation.responses['400'], `${method} ${path}`).toMatchObject({ content: { 'application/problem+json': expect.any(Object) } });
      }
    }
  });

  it('each problem type is documented at its type address', async () => {
    const anonymous = client(api.url, '');
    const reply = await anonymous.get('/problems/insufficient_funds', { headers: {} });
    expect(reply.body).toMatchObject({ type: '/problems/insufficient_funds', status: 422, code: 'insufficient_funds' });
    expect((await anonymous.get('/problems')).body.problems.length).toBeGreaterThan(40);
    expectProblem(await anonymous.get('/problems/no_such_problem'), 404, 'not_found');
    expectProblem(await anonymous.get('/no/such/route'), 404, 'not_found');
  });

  it('liveness and readiness answer without a token', async () => {
    expect((await client(api.url, '').get('/health/live')).body).toEqual({ status: 'ok' });
    const ready = await client(api.url, '').get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', checks: { database: { ok: true }, writers: { ok: true }, audit: { ok: true } } });
    // Public: no internal counts (writers open, tenants served) in the details.
    expect(ready.body.checks).toEqual({ database: { ok: true }, writers: { ok: true }, audit: { ok: true } });
  });
});
