/**
 * Retries of freeze, unfreeze and close whose first answer was lost: the `Idempotency-Key`'s
 * stored answer is gone (deleted here, as when the first attempt ended in a 5xx after the ledger
 * acted, which gives the key back, or when the key store lost its last moments), so the retry runs
 * again and must be answered by the ledger's own idempotency (the command id derived from the key)
 * with the original outcome: 200 with the account, and no second event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lifecycleCommandIdOf } from '../src/routes/accounts.js';
import { expectProblem } from './support/expect-problem.js';
import { client, openTestDatabase, startTestApi, type TestApi, type TestDatabase } from './support/harness.js';

const TENANT = 'lc-retry-tenant';

let db: TestDatabase;
let api: TestApi;
let bank: ReturnType<typeof client>;

beforeAll(async () => {
  db = await openTestDatabase();
  api = await startTestApi(db);
  bank = client(api.url, await api.token(TENANT));
  expect((await bank.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await db?.close();
});

/**
 * Deletes a key's stored answer once it is written (until then the process answers a retry from
 * memory, which is not the case under test), returning the client id it was stored under.
 */
async function forgetAnswer(key: string): Promise<{ clientId: string; nonce: string | null }> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    // As when the answer was never stored: the claim stays, its lease run out, the same request may take it over.
    const { rows } = await db.admin.query<{ client_id: string; claim_nonce: string | null }>(
      `UPDATE banking_api.idempotency_keys SET state = 'pending', locked_until = now() - interval '1 second', response_status = NULL, response_headers = NULL, response_body = NULL
        WHERE tenant_id = $1 AND idem_key = $2 AND state = 'done' RETURNING client_id, claim_nonce`,
      [TENANT, key],
    );
    if (rows.length === 1) return { clientId: (rows[0] as { client_id: string }).client_id, nonce: (rows[0] as { claim_nonce: string | null }).claim_nonce };
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the answer of key ${key} was never stored`);
}

async function eventsOf(accountId: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const { rows } = await db.admin.query<{ type: string; data: Record<string, unknown> }>(
    "SELECT type, data FROM ledgerkit.events WHERE tenant_id = $1 AND data->>'accountId' = $2 ORDER BY ledger_version",
    [TENANT, accountId],
  );
  return rows;
}

describe('freeze, unfreeze and close retried after their answer was lost', () => {
  it('a freeze retried with the same Idempotency-Key answers 200 with the frozen account and appends no second AccountFrozen; another key still gets 409', async () => {
    expect((await bank.post('/accounts', { accountId: 'erin', currency: 'EUR', type: 'liability' })).status).toBe(201);
    const key = 'freeze-erin-1';
    const first = await bank.post('/accounts/erin/freeze', { reason: 'kyc review' }, { key });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ accountId: 'erin', status: 'frozen' });
    const { clientId, nonce } = await forgetAnswer(key);

    const retry = await bank.post('/accounts/erin/freeze', { reason: 'kyc review' }, { key });
    expect(retry.status).toBe(200);
    // Run again, not replayed from the key store: the ledger answered it.
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    expect(retry.body).toMatchObject({ accountId: 'erin', status: 'frozen' });
    expect(retry.body).toEqual(first.body);

    const events = await eventsOf('erin');
    expect(events.map((event) => event.type)).toEqual(['AccountOpened', 'AccountFrozen']);
    expect(events[1]?.data).toEqual({ accountId: 'erin', reason: 'kyc review', commandId: lifecycleCommandIdOf(TENANT, clientId, key, nonce) });

    // A new request (another key) to freeze the frozen account is refused as before.
    expectProblem(await bank.post('/accounts/erin/freeze', { reason: 'kyc review' }, { key: 'freeze-erin-2' }), 409, 'account_frozen');
    // The retry's answer is stored under the key again: a further retry is replayed from the key store.
    const replayed = await bank.post('/accounts/erin/freeze', { reason: 'kyc review' }, { key });
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.status).toBe(200);
  });

  it('an unfreeze and a close retried after their answers were lost answer 200 with the account, each change logged once; a freeze retried after an unfreeze still answers 200', async () => {
    expect((await bank.post('/accounts', { accountId: 'finn', currency: 'EUR', type: 'liability' })).status).toBe(201);
    expect((await bank.post('/accounts/finn/freeze', undefined, { key: 'finn-freeze' })).status).toBe(200);
    const unfrozen = await bank.post('/accounts/finn/unfreeze', undefined, { key: 'finn-unfreeze' });
    expect(unfrozen.body).toMatchObject({ accountId: 'finn', status: 'open' });

    await forgetAnswer('finn-unfreeze');
    const unfreezeRetry = await bank.post('/accounts/finn/unfreeze', undefined, { key: 'finn-unfreeze' });
    expect(unfreezeRetry.status).toBe(200);
    expect(unfreezeRetry.body).toMatchObject({ accountId: 'finn', status: 'open' });
    expectProblem(await bank.post('/accounts/finn/unfreeze', undefined, { key: 'finn-unfreeze-2' }), 409, 'account_not_frozen');

    // The freeze before the unfreeze is remembered too: its retry is its original success, not account_not_frozen's mirror.
    await forgetAnswer('finn-freeze');
    const freezeRetry = await bank.post('/accounts/finn/freeze', undefined, { key: 'finn-freeze' });
    expect(freezeRetry.status).toBe(200);
    expect(freezeRetry.body).toMatchObject({ accountId: 'finn', status: 'open' });

    const closed = await bank.post('/accounts/finn/close', undefined, { key: 'finn-close' });
    expect(closed.body).toMatchObject({ accountId: 'finn', status: 'closed' });
    await forgetAnswer('finn-close');
    const closeRetry = await bank.post('/accounts/finn/close', undefined, { key: 'finn-close' });
    expect(closeRetry.status).toBe(200);
    expect(closeRetry.body).toMatchObject({ accountId: 'finn', status: 'closed' });
    expectProblem(await bank.post('/accounts/finn/close', undefined, { key: 'finn-close-2' }), 409, 'account_closed');

    expect((await eventsOf('finn')).map((event) => event.type)).toEqual(['AccountOpened', 'AccountFrozen', 'AccountUnfrozen', 'AccountClosed']);
  });

  it('a retry that reaches a restarted API (its writer rebuilt from the store) is answered from the ledger as well', async () => {
    expect((await bank.post('/accounts', { accountId: 'gus', currency: 'EUR', type: 'liability' })).status).toBe(201);
    expect((await bank.post('/accounts/gus/freeze', { reason: 'fraud check' }, { key: 'gus-freeze' })).status).toBe(200);
    await forgetAnswer('gus-freeze');
    await api.close();
    api = await startTestApi(db);
    bank = client(api.url, await api.token(TENANT));

    const retry = await bank.post('/accounts/gus/freeze', { reason: 'fraud check' }, { key: 'gus-freeze' });
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ accountId: 'gus', status: 'frozen' });
    expect((await eventsOf('gus')).map((event) => event.type)).toEqual(['AccountOpened', 'AccountFrozen']);
  });

  it('the same Idempotency-Key sent again after it expired is a new request: a freeze after an unfreeze freezes again, not a duplicate the ledger remembers', async () => {
    expect((await bank.post('/accounts', { accountId: 'hal', currency: 'EUR', type: 'liability' })).status).toBe(201);
    expect((await bank.post('/accounts/hal/freeze', { reason: 'review' }, { key: 'hal-freeze' })).body).toMatchObject({ status: 'frozen' });
    expect((await bank.post('/accounts/hal/unfreeze', undefined, { key: 'hal-unfreeze' })).body).toMatchObject({ status: 'open' });
    // The key's time is up (as after idempotencyTtlMs): its stored answer no longer counts.
    for (let attempt = 0; attempt < 200; attempt += 1) {
      const { rowCount } = await db.admin.query(
        "UPDATE banking_api.idempotency_keys SET expires_at = now() - interval '1 second' WHERE tenant_id = $1 AND idem_key = 'hal-freeze' AND state = 'done'",
        [TENANT],
      );
      if (rowCount === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const again = await bank.post('/accounts/hal/freeze', { reason: 'review' }, { key: 'hal-freeze' });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(again.body).toMatchObject({ accountId: 'hal', status: 'frozen' });
    expect((await eventsOf('hal')).map((event) => event.type)).toEqual(['AccountOpened', 'AccountFrozen', 'AccountUnfrozen', 'AccountFrozen']);
  });

  it('the OpenAPI document says what a retry of freeze, unfreeze and close answers', async () => {
    const document = await bank.get('/openapi.json');
    expect(document.status).toBe(200);
    for (const action of ['freeze', 'unfreeze', 'close']) {
      const description: unknown = document.body.paths[`/accounts/{accountId}/${action}`]?.post?.description;
      expect(description, action).toMatch(/A retry with the same `Idempotency-Key` answers with the original outcome, also after a 5xx/);
    }
  });

  it('the command id is the same for the same tenant, client and key, and differs when any of them does; it is always a valid id', () => {
    const id = lifecycleCommandIdOf('t', 'c', 'k');
    expect(id).toBe(lifecycleCommandIdOf('t', 'c', 'k'));
    expect(id).toMatch(/^key:[0-9a-f]{64}$/);
    expect(new Set([id, lifecycleCommandIdOf('t2', 'c', 'k'), lifecycleCommandIdOf('t', 'c2', 'k'), lifecycleCommandIdOf('t', 'c', 'k2'), lifecycleCommandIdOf('t:c', '', 'k')]).size).toBe(5);
    // Any printable key, as long as a key may be, gives an id of the same shape.
    expect(lifecycleCommandIdOf('t', 'c', '~'.repeat(255))).toMatch(/^key:[0-9a-f]{64}$/);
  });
});
