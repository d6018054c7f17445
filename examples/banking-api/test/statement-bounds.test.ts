/**
 * The statement's recorded-time range at the year-9999 edge, and where the read model's refusal of
 * a query input is reported. `9999-12-31T23:59:59.9995Z` passes the API's schema (it lies in year
 * 9999); the read model rounded it up past the last instant a time can name and refused it, which
 * the API answered as a 400 at `body.to`, a body this GET does not have.
 */
import { InvalidInputError } from '@ledgerkit/ledger-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemFromError } from '../src/error-mapping.js';
import { ProblemError } from '../src/problems.js';
import type { RequestContext } from '../src/route.js';
import { accountRoutes } from '../src/routes/accounts.js';
import type { Services } from '../src/services.js';
import { client, eventually, openTestDatabase, startTestApi, type TestApi, type TestDatabase } from './support/harness.js';

const TENANT = 'statement-bounds';
/** In year 9999, past its last whole millisecond. */
const LAST_MS_AND_A_HALF = encodeURIComponent('9999-12-31T23:59:59.9995Z');

let db: TestDatabase;
let api: TestApi;
let bank: ReturnType<typeof client>;

beforeAll(async () => {
  db = await openTestDatabase();
  api = await startTestApi(db);
  bank = client(api.url, await api.token(TENANT));
  for (const [accountId, type] of [['cash', 'asset'], ['alice', 'liability']] as const) {
    expect((await bank.post('/accounts', { accountId, currency: 'EUR', type })).status).toBe(201);
  }
  for (let n = 1; n <= 3; n += 1) {
    expect((await bank.post('/transfers', { transferId: `t-${n}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: `${n}.00`, currency: 'EUR' })).status).toBe(201);
  }
  await eventually(async () => expect((await bank.get('/accounts/alice/transactions')).body.entries).toHaveLength(3));
});

afterAll(async () => {
  await api?.close();
  await db?.close();
});

describe('a statement bound inside the last millisecond of 9999', () => {
  it('as to, answers 200 with every entry, as without to', async () => {
    const all = await bank.get('/accounts/alice/transactions');
    const bounded = await bank.get(`/accounts/alice/transactions?to=${LAST_MS_AND_A_HALF}`);
    expect(bounded.status).toBe(200);
    expect(bounded.body).toEqual(all.body);
    const paged = await bank.get(`/accounts/alice/transactions?to=${LAST_MS_AND_A_HALF}&limit=2`);
    expect(paged.status).toBe(200);
    expect(paged.body).toEqual((await bank.get('/accounts/alice/transactions?limit=2')).body);
  });

  it('as from, answers 200 with no entry', async () => {
    for (const query of [`from=${LAST_MS_AND_A_HALF}`, `from=${LAST_MS_AND_A_HALF}&to=${LAST_MS_AND_A_HALF}`]) {
      const reply = await bank.get(`/accounts/alice/transactions?${query}`);
      expect(reply.status, query).toBe(200);
      expect(reply.body, query).toMatchObject({ accountId: 'alice', entries: [], nextCursor: null });
    }
  });
});

describe("the read model's refusal of a statement option", () => {
  const context = { requestId: 'r-1', principal: {}, tenantId: TENANT, ledgerId: 'eur' } as unknown as RequestContext;

  /** The statement route over read models that know the account and refuse the read with `error`. */
  async function statementFailure(error: unknown): Promise<unknown> {
    const models = {
      balance: async () => ({ accountId: 'alice', currency: 'EUR' }),
      statement: async () => {
        throw error;
      },
    };
    const route = accountRoutes({ models } as unknown as Services).find((each) => each.operationId === 'getStatement');
    if (route === undefined) throw new Error('no getStatement route');
    return route.handle({ params: { accountId: 'alice' }, query: { to: '9999-12-31T23:59:59.9995Z' }, body: undefined, context }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
  }

  it('is reported at the query parameter the option came from, as a 400', async () => {
    for (const [option, parameter] of [
      ['to', 'query.to'],
      ['from', 'query.from'],
      ['limit', 'query.limit'],
      ['afterVersion', 'query.after'],
    ] as const) {
      const failure = await statementFailure(new InvalidInputError([{ path: [option], message: 'must lie in years 0001-9999 (UTC)' }]));
      expect(failure, option).toBeInstanceOf(ProblemError);
      const problem = problemFromError(failure);
      expect({ code: problem.code, status: problem.status, errors: problem.errors }, option).toEqual({
        code: 'invalid_request',
        status: 400,
        errors: [{ path: parameter, message: 'must lie in years 0001-9999 (UTC)' }],
      });
      expect(problem.message, option).toBe('invalid query: must lie in years 0001-9999 (UTC)');
    }
  });

  it('of anything not from the query, or any other error, passes through unchanged', async () => {
    const notQuery = new InvalidInputError([{ path: ['tenantId'], message: 'bad' }]);
    expect(await statementFailure(notQuery)).toBe(notQuery);
    const mixed = new InvalidInputError([{ path: ['to'], message: 'bad' }, { path: ['accountId'], message: 'bad' }]);
    expect(await statementFailure(mixed)).toBe(mixed);
    const other = new Error('connection lost');
    expect(await statementFailure(other)).toBe(other);
  });
});
