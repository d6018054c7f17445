/**
 * Two API instances (two processes, as far as the database can tell: pools, writers and
 * idempotency stores of their own) on one database: an Idempotency-Key sent to both runs once, a
 * transfer id sent to both writers of one ledger moves money once, money cannot be spent twice
 * through the two writers, and balances read from either agree once both settle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, eventually, openTestDatabase, startTestApi, type Reply, type TestApi, type TestDatabase } from './support/harness.js';
import { expectProblem } from './support/expect-problem.js';

let db: TestDatabase;
let first: TestApi;
let second: TestApi;

beforeAll(async () => {
  db = await openTestDatabase();
  first = await startTestApi(db);
  second = await startTestApi(db);
});

afterAll(async () => {
  await Promise.allSettled([first?.close(), second?.close()]);
  await db?.close();
});

/** One client of `tenant` on each instance: the same client id, in a token each instance trusts. */
async function clientsOf(tenant: string): Promise<[ReturnType<typeof client>, ReturnType<typeof client>]> {
  return [client(first.url, await first.token(tenant)), client(second.url, await second.token(tenant))];
}

async function openAccounts(bank: ReturnType<typeof client>, wallet = '1000.00'): Promise<void> {
  expect((await bank.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
  expect((await bank.post('/accounts', { accountId: 'wallet', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } })).status).toBe(201);
  expect((await bank.post('/accounts', { accountId: 'shop', currency: 'EUR', type: 'liability' })).status).toBe(201);
  expect((await bank.post('/transfers', { transferId: 'top-up', debitAccountId: 'cash', creditAccountId: 'wallet', amount: wallet, currency: 'EUR' })).status).toBe(201);
}

async function postedTransfers(tenant: string): Promise<number> {
  const { rows } = await db.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = $1 AND type = 'TransferPosted'", [tenant]);
  return rows[0]?.n ?? 0;
}

async function balancesAgree(a: ReturnType<typeof client>, b: ReturnType<typeof client>, accountId: string, expected: string): Promise<void> {
  await eventually(async () => {
    const [fromFirst, fromSecond] = await Promise.all([a.get(`/accounts/${accountId}/balance`), b.get(`/accounts/${accountId}/balance`)]);
    expect(fromFirst.status).toBe(200);
    expect(fromFirst.body.posted).toBe(expected);
    expect(fromSecond.body).toEqual(fromFirst.body);
  });
}

describe('two instances on one database', () => {
  it('an Idempotency-Key sent to both at once runs once: the other is told it is in progress, or gets the replay byte for byte', async () => {
    const tenant = 'two-keys';
    const [a, b] = await clientsOf(tenant);
    await openAccounts(a);
    const rounds = 20;
    const replies = await Promise.all(
      Array.from({ length: rounds }, (_, n) => {
        const body = { transferId: `key-${n}`, debitAccountId: 'wallet', creditAccountId: 'shop', amount: '1.00', currency: 'EUR' };
        return Promise.all([a.post('/transfers', body, { key: `same-key-${n}` }), b.post('/transfers', body, { key: `same-key-${n}` })]);
      }),
    );
    for (const pair of replies) {
      const ran = pair.filter((reply) => reply.status === 201 && reply.headers.get('idempotent-replayed') === null);
      expect(ran).toHaveLength(1);
      const other = pair.find((reply) => reply !== ran[0]) as Reply;
      if (other.status === 409) expectProblem(other, 409, 'idempotency_request_in_progress');
      else expect([other.status, other.headers.get('idempotent-replayed'), other.text]).toEqual([201, 'true', ran[0]?.text]);
    }
    expect(await postedTransfers(tenant)).toBe(1 + rounds);
    await balancesAgree(a, b, 'shop', `${rounds}.00`);
  });

  it('a transfer id sent to both writers at once moves money once: one 201, the other 200 duplicate of the same ledger version', async () => {
    const tenant = 'two-writers';
    const [a, b] = await clientsOf(tenant);
    await openAccounts(a);
    // Both instances have a writer of this ledger open before the race.
    expect((await b.get('/accounts/wallet/balance')).status).toBe(200);
    expect((await b.post('/transfers', { transferId: 'warm-up', debitAccountId: 'wallet', creditAccountId: 'shop', amount: '1.00', currency: 'EUR' })).status).toBe(201);
    const rounds = 20;
    const replies = await Promise.all(
      Array.from({ length: rounds }, (_, n) => {
        const body = { transferId: `both-${n}`, debitAccountId: 'wallet', creditAccountId: 'shop', amount: '2.00', currency: 'EUR' };
        return Promise.all([a.post('/transfers', body), b.post('/transfers', body)]);
      }),
    );
    for (const pair of replies) {
      expect(pair.map((reply) => reply.status).sort()).toEqual([200, 201]);
      expect(pair.map((reply) => reply.body.duplicate).sort()).toEqual([false, true]);
      expect(pair[0]?.body.ledgerVersion).toBe(pair[1]?.body.ledgerVersion);
    }
    expect(await postedTransfers(tenant)).toBe(2 + rounds);
    await balancesAgree(a, b, 'shop', `${1 + 2 * rounds}.00`);
    await balancesAgree(a, b, 'wallet', `${1000 - 1 - 2 * rounds}.00`);
  });

  it('money cannot be spent twice through the two writers: of two transfers that each need most of a balance, one is refused insufficient_funds', async () => {
    const tenant = 'two-spends';
    const [a, b] = await clientsOf(tenant);
    await openAccounts(a, '10.00');
    expect((await b.get('/accounts/wallet/balance')).status).toBe(200);
    const rounds = 10;
    let spent = 0;
    for (let n = 0; n < rounds; n += 1) {
      // Each round refills the wallet to 10.00 and races two spends of 7.00 through the two instances.
      if (n > 0) expect((await (n % 2 === 0 ? a : b).post('/transfers', { transferId: `refill-${n}`, debitAccountId: 'cash', creditAccountId: 'wallet', amount: '7.00', currency: 'EUR' })).status).toBe(201);
      const spend = (id: string) => ({ transferId: id, debitAccountId: 'wallet', creditAccountId: 'shop', amount: '7.00', currency: 'EUR' });
      const pair = await Promise.all([a.post('/transfers', spend(`spend-a-${n}`)), b.post('/transfers', spend(`spend-b-${n}`))]);
      const statuses = pair.map((reply) => reply.status).sort();
      expect(statuses).toEqual([201, 422]);
      expectProblem(pair.find((reply) => reply.status === 422) as Reply, 422, 'insufficient_funds');
      spent += 7;
    }
    await balancesAgree(a, b, 'shop', `${spent}.00`);
    await balancesAgree(a, b, 'wallet', '3.00');
    const [trialA, trialB] = await Promise.all([a.get('/trial-balance'), b.get('/trial-balance')]);
    expect(trialA.status).toBe(200);
    expect(trialB.body).toEqual(trialA.body);
  });
});
