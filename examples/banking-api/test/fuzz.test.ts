/**
 * Fuzzing every POST route over HTTP with fast-check: random JSON, near-valid bodies built from
 * the real field names with random values, malformed JSON text, odd path parameters and reused
 * idempotency keys. Every answer must be a success or a 4xx problem document, never a 5xx; and
 * afterwards the ledger's invariants must hold: the trial balance balances in every currency
 * (from the read models and from the writer's memory, which must agree) and the hash chain
 * verifies from the first event.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemSchema } from '../src/schemas.js';
import { call, client, openTestDatabase, startTestApi, type TestApi, type TestDatabase } from './support/harness.js';

let db: TestDatabase;
let api: TestApi;
let token: string;
const TENANT = 'fuzz-bank';
const ACCOUNTS = ['cash', 'alice', 'bob', 'fees', 'usd-cash'];
const RUNS = fuzzRuns(150);

/**
 * Runs of each route's property: `FUZZ_RUNS`, a positive integer, or `fallback` when it is unset
 * or empty (as the projections tests' `propertyRuns` reads its variable). Anything else is refused:
 * `Number('')` or `Number('0')` would make 0 runs, and every route test pass asserting nothing.
 */
function fuzzRuns(fallback: number): number {
  const raw = process.env['FUZZ_RUNS'];
  if (raw === undefined || raw === '') return fallback;
  const runs = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(runs) || runs < 1) throw new RangeError(`FUZZ_RUNS must be a positive integer, got ${JSON.stringify(raw)}`);
  return runs;
}

beforeAll(async () => {
  db = await openTestDatabase();
  api = await startTestApi(db);
  token = await api.token(TENANT);
  const bank = client(api.url, token);
  const opened = await Promise.all([
    bank.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' }),
    bank.post('/accounts', { accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } }),
    bank.post('/accounts', { accountId: 'bob', currency: 'EUR', type: 'liability' }),
    bank.post('/accounts', { accountId: 'fees', currency: 'EUR', type: 'income' }),
    bank.post('/accounts', { accountId: 'usd-cash', currency: 'USD', type: 'asset' }),
  ]);
  expect(opened.map((reply) => reply.status)).toEqual([201, 201, 201, 201, 201]);
  expect((await bank.post('/transfers', { transferId: 'seed', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1000.00', currency: 'EUR' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await db?.close();
});

const id = fc.oneof(fc.constantFrom(...ACCOUNTS, 'h1', 'h2', 't1', 't2', 'seed'), fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,20}$/), fc.string({ maxLength: 12 }));
const amount = fc.oneof(
  fc.constantFrom('1.00', '0.01', '999999.99', '1.001', '0', '-1.00', '1e2', '', ' 1.00', '00.10', '1.'),
  fc.stringMatching(/^[0-9]{1,6}(\.[0-9]{1,3})?$/),
  fc.double(),
  fc.integer(),
);
const currency = fc.oneof(fc.constantFrom('EUR', 'USD', 'JPY', 'XXZ', 'eur'), fc.string({ maxLength: 5 }));
const anything = fc.jsonValue({ maxDepth: 3 });
/** A field: usually a plausible value, sometimes anything at all. */
const field = <T>(plausible: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: plausible }, { weight: 1, arbitrary: anything });
const timestamp = fc.oneof(
  fc.date({ min: new Date(Date.now() - 40 * 86_400_000), max: new Date(Date.now() + 86_400_000), noInvalidDate: true }).map((date) => date.toISOString()),
  fc.constantFrom('yesterday', '2026-13-01T00:00:00Z', ''),
);
const metadata = fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(fc.string({ maxLength: 20 }), fc.integer()), { maxKeys: 18 });
const posting = fc.record(
  { accountId: field(id), side: field(fc.constantFrom('debit', 'credit', 'both')), amount, currency: field(currency) },
  { requiredKeys: [] },
);
const transferFields = {
  transferId: field(id),
  debitAccountId: field(id),
  creditAccountId: field(id),
  amount,
  currency: field(currency),
  postings: field(fc.array(posting, { maxLength: 5 })),
  effectiveAt: field(timestamp),
  reference: field(fc.string({ maxLength: 300 })),
  metadata: field(metadata),
  timeoutMs: field(fc.oneof(fc.integer(), fc.constantFrom(1_000, 60_000, 0, -1, 1e20))),
  tenantId: fc.constant('someone-else'),
  extra: anything,
};

/** Near-valid bodies: random subsets of the route's real fields with random values. */
function nearValid(keys: readonly (keyof typeof transferFields | 'accountId' | 'type' | 'flags' | 'reason' | 'pendingId' | 'reversalOf')[]) {
  const arbitraries: Record<string, fc.Arbitrary<unknown>> = {
    ...transferFields,
    accountId: field(id),
    type: field(fc.constantFrom('asset', 'liability', 'equity', 'income', 'expense', 'savings')),
    flags: field(fc.record({ debitsMustNotExceedCredits: field(fc.boolean()), creditsMustNotExceedDebits: field(fc.boolean()) }, { requiredKeys: [] })),
    reason: field(fc.string({ maxLength: 300 })),
    pendingId: field(id),
    reversalOf: field(id),
  };
  const chosen = Object.fromEntries(keys.map((key) => [key, arbitraries[key] as fc.Arbitrary<unknown>]));
  return fc.record(chosen, { requiredKeys: [] });
}

/** Well-formed commands with plausible values, so that many reach the ledger and its rules. */
const someId = fc.integer({ min: 1, max: 60 }).map((n) => `t${n}`);
const someAccount = fc.constantFrom(...ACCOUNTS, 'ghost');
const someAmount = fc.constantFrom('0.01', '1.00', '5.50', '99.99', '2000.00');
const someCurrency = fc.constantFrom('EUR', 'EUR', 'EUR', 'USD');
const validPair = fc.constantFrom(['cash', 'alice'], ['alice', 'bob'], ['cash', 'bob'], ['bob', 'fees'], ['alice', 'fees']);
const simpleTransfer = fc.oneof(
  { weight: 3, arbitrary: fc.record({ transferId: someId, pair: validPair, amount: someAmount }).map(({ transferId, pair, amount: value }) => ({ transferId, debitAccountId: pair[0], creditAccountId: pair[1], amount: value, currency: 'EUR' })) },
  { weight: 1, arbitrary: fc.record({ transferId: someId, debitAccountId: someAccount, creditAccountId: someAccount, amount: someAmount, currency: someCurrency }) },
);
const multiTransfer = fc.record({
  transferId: someId,
  postings: fc.array(fc.record({ accountId: someAccount, side: fc.constantFrom('debit', 'credit'), amount: someAmount, currency: someCurrency }), { minLength: 2, maxLength: 4 }),
});
const PLAUSIBLE = {
  account: fc.record(
    { accountId: fc.integer({ min: 1, max: 10 }).map((n) => `acct-${n}`), currency: someCurrency, type: fc.constantFrom('asset', 'liability', 'income'), flags: fc.record({ debitsMustNotExceedCredits: fc.boolean() }) },
    { requiredKeys: ['accountId', 'currency', 'type'] },
  ),
  accountCommand: fc.oneof(fc.constant({}), fc.record({ reason: fc.string({ maxLength: 20 }) })),
  transfer: fc.oneof(simpleTransfer, multiTransfer),
  hold: fc.oneof(simpleTransfer, multiTransfer).chain((body) => fc.record({ timeoutMs: fc.constantFrom(1_000, 3_600_000) }, { requiredKeys: [] }).map((extra) => ({ ...body, ...extra }))),
  post: fc.record({ transferId: someId, amount: someAmount, currency: someCurrency }, { requiredKeys: ['transferId'] }),
  void: fc.record({ transferId: someId }),
  reversal: fc.record({ transferId: someId, reference: fc.string({ maxLength: 10 }) }, { requiredKeys: ['transferId'] }),
};

/** Linked-group members: plausible ones of every kind, sometimes mistagged or untagged, sometimes anything. */
const groupMember = fc.oneof(
  { weight: 3, arbitrary: PLAUSIBLE.transfer.map((body) => ({ kind: 'transfer', ...body })) },
  { weight: 1, arbitrary: PLAUSIBLE.hold.map((body) => ({ kind: 'hold', ...body })) },
  { weight: 1, arbitrary: fc.record({ body: PLAUSIBLE.post, holdId: someId }).map(({ body, holdId }) => ({ kind: 'postHold', holdId, ...body })) },
  { weight: 1, arbitrary: fc.record({ body: PLAUSIBLE.void, holdId: someId }).map(({ body, holdId }) => ({ kind: 'voidHold', holdId, ...body })) },
  { weight: 1, arbitrary: fc.record({ body: PLAUSIBLE.reversal, reversalOf: someId }).map(({ body, reversalOf }) => ({ kind: 'reversal', reversalOf, ...body })) },
  { weight: 1, arbitrary: fc.record({ kind: field(fc.constantFrom('transfer', 'hold', 'postHold', 'voidHold', 'reversal', 'linked', 'reverse')), body: nearValid(['transferId', 'debitAccountId', 'creditAccountId', 'amount', 'currency', 'postings', 'pendingId', 'reversalOf', 'extra']) }, { requiredKeys: [] }).map(({ kind, body }) => ({ kind, ...body })) },
  { weight: 1, arbitrary: anything },
);
const GROUP_BODIES: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 6, arbitrary: fc.array(groupMember, { minLength: 1, maxLength: 5 }).map((transfers) => JSON.stringify({ transfers })) },
  { weight: 1, arbitrary: fc.array(groupMember, { maxLength: 70 }).map((transfers) => JSON.stringify({ transfers })) },
  { weight: 1, arbitrary: fc.record({ transfers: field(fc.array(anything, { maxLength: 3 })), extra: anything }, { requiredKeys: [] }).map((body) => JSON.stringify(body)) },
  { weight: 1, arbitrary: anything.map((value) => JSON.stringify(value)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 1, arbitrary: fc.constantFrom('{"transfers":[{"kind":"__proto__"}]}', '{"transfers":{"0":{}}}', '{"transfers":[null]}', '{"transfers":[]}', undefined) },
);

/** What to send as the body text. */
function bodies(keys: Parameters<typeof nearValid>[0], plausible: fc.Arbitrary<unknown>): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 5, arbitrary: plausible.map((body) => JSON.stringify(body)) },
    { weight: 5, arbitrary: nearValid(keys).map((body) => JSON.stringify(body)) },
    { weight: 2, arbitrary: anything.map((value) => JSON.stringify(value)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
    { weight: 1, arbitrary: nearValid(keys).chain((body) => fc.nat({ max: 40 }).map((cut) => JSON.stringify(body).slice(0, cut))) },
    { weight: 1, arbitrary: fc.constantFrom('{"__proto__":{"x":1}}', '[]', 'null', '""', '{"a":1,"a":2}', '\u0000', '{"transferId":"\ud800"}', undefined) },
  );
}

const pathParam = fc.oneof({ weight: 4, arbitrary: fc.oneof(fc.constantFrom(...ACCOUNTS, 'seed', 'missing'), someId) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) });
const idempotencyKey = fc.oneof({ weight: 3, arbitrary: fc.uuid() }, { weight: 1, arbitrary: fc.constantFrom('reused-1', 'reused-2') }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) });

const ROUTES: { name: string; path: fc.Arbitrary<string>; body: fc.Arbitrary<string | undefined> }[] = [
  { name: 'POST /transfers', path: fc.constant('/transfers'), body: bodies(['transferId', 'debitAccountId', 'creditAccountId', 'amount', 'currency', 'postings', 'effectiveAt', 'reference', 'metadata', 'tenantId'], PLAUSIBLE.transfer) },
  { name: 'POST /holds', path: fc.constant('/holds'), body: bodies(['transferId', 'debitAccountId', 'creditAccountId', 'amount', 'currency', 'postings', 'timeoutMs', 'effectiveAt'], PLAUSIBLE.hold) },
  { name: 'POST /holds/{id}/post', path: pathParam.map((param) => `/holds/${encodeURIComponent(param)}/post`), body: bodies(['transferId', 'amount', 'currency', 'effectiveAt', 'metadata', 'pendingId'], PLAUSIBLE.post) },
  { name: 'POST /holds/{id}/void', path: pathParam.map((param) => `/holds/${encodeURIComponent(param)}/void`), body: bodies(['transferId', 'effectiveAt', 'metadata'], PLAUSIBLE.void) },
  { name: 'POST /transfers/{id}/reversal', path: pathParam.map((param) => `/transfers/${encodeURIComponent(param)}/reversal`), body: bodies(['transferId', 'reference', 'effectiveAt', 'metadata', 'reversalOf'], PLAUSIBLE.reversal) },
  { name: 'POST /transfer-groups', path: fc.constant('/transfer-groups'), body: GROUP_BODIES },
  { name: 'POST /accounts', path: fc.constant('/accounts'), body: bodies(['accountId', 'currency', 'type', 'flags', 'metadata', 'extra'], PLAUSIBLE.account) },
  ...(['freeze', 'unfreeze', 'close'] as const).map((action) => ({
    name: `POST /accounts/{id}/${action}`,
    path: pathParam.map((param) => `/accounts/${encodeURIComponent(param)}/${action}`),
    body: bodies(['reason', 'extra'], PLAUSIBLE.accountCommand),
  })),
];

describe('fuzzing the POST routes', () => {
  for (const route of ROUTES) {
    it(`${route.name}: every answer to random and malformed input is a success or a 4xx problem document, never a 5xx`, async () => {
      await fc.assert(
        fc.asyncProperty(route.path, route.body, idempotencyKey, fc.boolean(), async (path, body, key, jsonType) => {
          const reply = await call(api.url, 'POST', path, {
            token,
            key,
            ...(body === undefined ? {} : { raw: body }),
            headers: body === undefined || jsonType ? { 'content-type': 'application/json' } : { 'content-type': 'application/json; charset=utf-8' },
          });
          expect(reply.status, `${path} ${body} → ${reply.text}`).toBeLessThan(500);
          if (reply.status >= 400) {
            expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
            expect(problemSchema.safeParse(reply.body).success, reply.text).toBe(true);
            expect(reply.body.status).toBe(reply.status);
          } else {
            expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
          }
        }),
        { numRuns: RUNS },
      );
    });
  }

  it("afterwards the ledger's invariants hold: balanced trial balance per currency (read models = writer memory) and an intact hash chain", async () => {
    const ledger = await api.api.ledgers.ledger(TENANT, 'main');
    expect(ledger).toBeDefined();
    if (ledger === undefined) return;
    const trial = await call(api.url, 'GET', '/trial-balance', { token });
    expect(trial.status).toBe(200);
    expect(trial.body.totals.length).toBeGreaterThanOrEqual(1);
    for (const total of trial.body.totals) expect(total, JSON.stringify(total)).toMatchObject({ balanced: true, debits: total.credits });
    const memory = await ledger.trialBalance();
    expect(trial.body.lines).toEqual(memory.lines);
    expect(trial.body.totals).toEqual(memory.totals);
    const chain = await ledger.verifyChain();
    expect(chain.ok).toBe(true);
    expect(ledger.version).toBeGreaterThan(6);
  });
});
