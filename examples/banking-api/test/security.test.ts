/**
 * Every security rule over real HTTP: bearer tokens (missing, malformed, expired, wrong
 * audience, wrong issuer, foreign key, unsigned, not an access token, no tenant), scopes, tenant
 * isolation (another tenant's account is 404), idempotency keys (replay, conflict, concurrency,
 * per client, stored under row-level security), body limits, malformed and empty JSON, logs
 * without tokens or personal data, audit events, and Cache-Control.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { SignJWT, type JWTVerifyGetKey } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudonymOfSubject } from '../src/auth.js';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER, generateDevKeys, mintToken } from '../src/dev-tokens.js';
import { createLogger } from '../src/logger.js';
import { createBankingApi } from '../src/server.js';
import { call, client, eventually, openTestDatabase, startTestApi, type TestApi, type TestDatabase } from './support/harness.js';
import { expectProblem } from './support/expect-problem.js';

let db: TestDatabase;
let api: TestApi;
let alpha: ReturnType<typeof client>;
let beta: ReturnType<typeof client>;
let metricsUrl: string;
const ALPHA = 'tenant-alpha';
const BETA = 'tenant-beta';
/** An id that stands for personal data: it must never reach the logs. */
const PERSONAL_ACCOUNT = 'customer-jane-doe-19840212';

beforeAll(async () => {
  db = await openTestDatabase();
  api = await startTestApi(db);
  metricsUrl = await api.api.listenMetrics({ port: 0 });
  alpha = client(api.url, await api.token(ALPHA));
  beta = client(api.url, await api.token(BETA));
  expect((await alpha.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
  expect((await alpha.post('/accounts', { accountId: PERSONAL_ACCOUNT, currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } })).status).toBe(201);
  expect((await alpha.post('/transfers', { transferId: 'alpha-dep', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '100.00', currency: 'EUR' })).status).toBe(201);
  expect((await beta.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await db?.close();
});

const balancePath = `/accounts/${PERSONAL_ACCOUNT}/balance`;

describe('bearer tokens', () => {
  it('a request without a token answers 401 with a bare Bearer challenge', async () => {
    const reply = await call(api.url, 'GET', balancePath);
    expectProblem(reply, 401, 'unauthorized');
    expect(reply.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('a malformed Authorization header answers 401 invalid_request', async () => {
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer not-a-jwt', `Bearer ${'a'.repeat(9_000)}.b.c`]) {
      const reply = await call(api.url, 'GET', balancePath, { headers: { authorization: header } });
      expectProblem(reply, 401, 'unauthorized');
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_request"');
    }
  });

  it('the scheme name is case-insensitive (RFC 9110): bearer and BEARER are accepted, the first time and once the token is cached', async () => {
    const token = await api.token(ALPHA, ['accounts:read']);
    for (const scheme of ['bearer', 'BEARER', 'bearer', 'Bearer']) {
      const reply = await call(api.url, 'GET', balancePath, { headers: { authorization: `${scheme} ${token}` } });
      expect({ scheme, status: reply.status }).toEqual({ scheme, status: 200 });
    }
  });

  it('an expired token answers 401 invalid_token', async () => {
    const token = await api.token(ALPHA, undefined, { issuedAtSeconds: Math.floor(Date.now() / 1000) - 7_200, ttlSeconds: 60 });
    const reply = await call(api.url, 'GET', balancePath, { token });
    expectProblem(reply, 401, 'unauthorized');
    expect(reply.body.detail).toBe('the token has expired');
    expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });

  it('a token issued in the future (iat past the clock tolerance) answers 401 invalid_token; within the tolerance it is accepted', async () => {
    const nowSeconds = Math.floor(Date.now() / 1000);
    const future = await call(api.url, 'GET', balancePath, { token: await api.token(ALPHA, undefined, { issuedAtSeconds: nowSeconds + 3_600, ttlSeconds: 7_200 }) });
    expectProblem(future, 401, 'unauthorized');
    expect(future.body.detail).toMatch(/issued in the future/);
    expect(future.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    const skewed = await call(api.url, 'GET', balancePath, { token: await api.token(ALPHA, undefined, { issuedAtSeconds: nowSeconds + 2, ttlSeconds: 600 }) });
    expect(skewed.status).toBe(200);
  });

  it('a token for another audience answers 401', async () => {
    const reply = await call(api.url, 'GET', balancePath, { token: await api.token(ALPHA, undefined, { audience: 'another-api' }) });
    expectProblem(reply, 401, 'unauthorized');
    expect(reply.body.detail).toMatch(/audience/);
  });

  it('a token from another issuer answers 401', async () => {
    const reply = await call(api.url, 'GET', balancePath, { token: await api.token(ALPHA, undefined, { issuer: 'https://evil.example' }) });
    expectProblem(reply, 401, 'unauthorized');
    expect(reply.body.detail).toMatch(/issuer/);
  });

  it('a token signed with another key, or not signed at all, answers 401', async () => {
    const foreign = await mintToken(await generateDevKeys(), { tenantId: ALPHA, scopes: ['accounts:read'] });
    expectProblem(await call(api.url, 'GET', balancePath, { token: foreign }), 401, 'unauthorized');
    const [header, payload] = (await api.token(ALPHA)).split('.');
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.`;
    expectProblem(await call(api.url, 'GET', balancePath, { token: unsigned }), 401, 'unauthorized');
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()), tenant_id: BETA })).toString('base64url')}.${'A'.repeat(86)}`;
    expectProblem(await call(api.url, 'GET', balancePath, { token: tampered }), 401, 'unauthorized');
    const hmac = await new SignJWT({ tenant_id: ALPHA, scope: 'accounts:read' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
      .setAudience('banking-api')
      .setSubject('x')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('a-shared-secret-that-is-long-enough!!'));
    expectProblem(await call(api.url, 'GET', balancePath, { token: hmac }), 401, 'unauthorized');
  });

  it('only access tokens are accepted: a typ header other than at+jwt (an ID token of the same issuer, say), or none, answers 401 invalid_token', async () => {
    for (const tokenType of ['JWT', 'id_token+jwt', null]) {
      const reply = await call(api.url, 'GET', balancePath, { token: await api.token(ALPHA, undefined, { tokenType }) });
      expectProblem(reply, 401, 'unauthorized');
      expect(reply.body.detail).toMatch(/access token/);
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
    // RFC 7515: typ may leave out the application/ prefix, and media types ignore case.
    for (const tokenType of ['application/at+jwt', 'AT+JWT']) {
      expect((await call(api.url, 'GET', balancePath, { token: await api.token(ALPHA, undefined, { tokenType }) })).status).toBe(200);
    }
  });

  it('with tokenType null (an identity provider that does not mark access tokens) any typ is accepted', async () => {
    // The default refuses what the lax server below accepts.
    expectProblem(await call(api.url, 'GET', '/accounts', { token: await api.token(ALPHA, undefined, { tokenType: 'JWT' }) }), 401, 'unauthorized');
    const lax = await startTestApi(db, {}, { tokenType: null });
    try {
      for (const tokenType of ['JWT', null, 'at+jwt']) {
        expect((await call(lax.url, 'GET', '/accounts', { token: await lax.token(ALPHA, undefined, { tokenType }) })).status).toBe(200);
      }
    } finally {
      await lax.close();
    }
  });

  it('a token whose sub or client_id is not plain storable text answers 401 invalid_token, never 500', async () => {
    const signed = (claims: Record<string, unknown>) =>
      new SignJWT({ tenant_id: ALPHA, scope: 'accounts:read', ...claims })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
        .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
        .setAudience('banking-api')
        .setExpirationTime('1h')
        .sign(api.keys.privateKey);
    for (const claims of [{ sub: 123 }, { sub: { id: 'x' } }, { sub: 'nul\u0000sub' }, { sub: 'ok', client_id: 'nul\u0000client' }, { sub: 'lone\ud800' }]) {
      const reply = await call(api.url, 'GET', '/accounts', { token: await signed(claims) });
      expectProblem(reply, 401, 'unauthorized');
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
  });

  it('a client_id claim that is present but not a non-empty string answers 401 invalid_token, never falls back to sub: two such clients never share keys', async () => {
    const signed = (claims: Record<string, unknown>) =>
      new SignJWT({ tenant_id: ALPHA, scope: 'accounts:write accounts:read', sub: 'shared-app', ...claims })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
        .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
        .setAudience('banking-api')
        .setExpirationTime('1h')
        .sign(api.keys.privateKey);
    const key = randomUUID();
    for (const clientId of [1001, 2002, null, '', true, { id: 'x' }, ['a']]) {
      const reply = await call(api.url, 'POST', '/accounts', { token: await signed({ client_id: clientId }), key, body: { accountId: `numeric-${String(clientId)}`, currency: 'EUR', type: 'asset' } });
      expectProblem(reply, 401, 'unauthorized');
      expect(reply.body.detail).toMatch(/client_id/);
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
    // The same ids as text are two clients: one key, two requests, neither replaying the other.
    const first = await call(api.url, 'POST', '/accounts', { token: await signed({ client_id: '1001' }), key, body: { accountId: 'numeric-1001', currency: 'EUR', type: 'asset' } });
    const second = await call(api.url, 'POST', '/accounts', { token: await signed({ client_id: '2002' }), key, body: { accountId: 'numeric-2002', currency: 'EUR', type: 'asset' } });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    // No client_id at all is still allowed: the client is the sub.
    expect((await call(api.url, 'GET', '/accounts/numeric-1001', { token: await signed({}) })).status).toBe(200);
  });

  it('a token whose sub or client_id is longer than 256 characters answers 401 invalid_token, so ids that differ past the bound never share a client; 256 are accepted', async () => {
    const signed = (claims: Record<string, unknown>) =>
      new SignJWT({ tenant_id: ALPHA, scope: 'accounts:write', ...claims })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
        .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
        .setAudience('banking-api')
        .setExpirationTime('1h')
        .sign(api.keys.privateKey);
    const shared = 'c'.repeat(256);
    for (const claims of [{ sub: 'app', client_id: `${shared}1` }, { sub: 'app', client_id: `${shared}2` }, { sub: `${shared}1` }, { sub: `${shared}2`, client_id: 'app' }]) {
      const reply = await call(api.url, 'POST', '/accounts', { token: await signed(claims), body: { accountId: 'long-id', currency: 'EUR', type: 'asset' } });
      expectProblem(reply, 401, 'unauthorized');
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
    // At the bound, ids that differ in their last character are two clients: one key, two requests.
    const key = randomUUID();
    const first = await call(api.url, 'POST', '/accounts', { token: await signed({ sub: `${shared.slice(1)}1` }), key, body: { accountId: 'long-id-1', currency: 'EUR', type: 'asset' } });
    const second = await call(api.url, 'POST', '/accounts', { token: await signed({ sub: 'app', client_id: `${shared.slice(1)}2` }), key, body: { accountId: 'long-id-2', currency: 'EUR', type: 'asset' } });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(second.body.accountId).toBe('long-id-2');
  });

  it('a token without client_id is a client of its own: a person whose sub is an OAuth client\'s client_id shares neither its idempotency keys nor its rate-limit bucket', async () => {
    const personToken = (): Promise<string> =>
      new SignJWT({ tenant_id: ALPHA, scope: 'accounts:read accounts:write' })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
        .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
        .setAudience('banking-api')
        .setSubject('payments-app')
        .setExpirationTime('1h')
        .sign(api.keys.privateKey);
    // The client "payments-app" (client_id claim) and a person whose sub happens to be "payments-app".
    const app = client(api.url, await api.token(ALPHA, undefined, { subject: 'svc-uuid-1', clientId: 'payments-app' }));
    const key = randomUUID();
    expect((await app.post('/accounts', { accountId: 'collide-app', currency: 'EUR', type: 'asset' }, { key })).status).toBe(201);
    // The same key with another body is the person's own request, not 422 idempotency_key_reused.
    const person = await call(api.url, 'POST', '/accounts', { token: await personToken(), key, body: { accountId: 'collide-person', currency: 'EUR', type: 'asset' } });
    expect(person.status).toBe(201);
    expect(person.body.accountId).toBe('collide-person');
    // Nor do they share a bucket: the app's used-up bucket leaves the person's full.
    const limited = await startTestApi(db, { rateLimitPerSecond: 1, rateLimitBurst: 2 }, {}, { rateLimitClockMs: () => 0 });
    try {
      const limitedApp = await limited.token(ALPHA, undefined, { subject: 'svc-uuid-1', clientId: 'payments-app' });
      const statuses = [];
      for (let n = 0; n < 3; n += 1) statuses.push((await call(limited.url, 'GET', '/accounts', { token: limitedApp })).status);
      expect(statuses).toEqual([200, 200, 429]);
      const limitedPerson = await new SignJWT({ tenant_id: ALPHA, scope: 'accounts:read' })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
        .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
        .setAudience('banking-api')
        .setSubject('payments-app')
        .setExpirationTime('1h')
        .sign(limited.keys.privateKey);
      expect((await call(limited.url, 'GET', '/accounts', { token: limitedPerson })).status).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it('a token without a valid tenant claim answers 401', async () => {
    const keys = api.keys;
    const noTenant = await new SignJWT({ scope: 'accounts:read' })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
      .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
      .setAudience('banking-api')
      .setSubject('x')
      .setExpirationTime('1h')
      .sign(keys.privateKey);
    expectProblem(await call(api.url, 'GET', balancePath, { token: noTenant }), 401, 'unauthorized');
    const badTenant = await api.token('not a tenant!');
    expectProblem(await call(api.url, 'GET', balancePath, { token: badTenant }), 401, 'unauthorized');
  });
});

describe('tokens and the rate limit of an address', () => {
  it('forged tokens pipelined on one connection cost at most the address bucket in signature checks; a token that verifies gives its address\'s token back', async () => {
    const keys = await generateDevKeys();
    let signatureChecks = 0;
    const key: JWTVerifyGetKey = async () => {
      signatureChecks += 1;
      return keys.publicKey;
    };
    const limited = await createBankingApi({
      databaseUrl: db.appUrl,
      poolSize: 4,
      auth: { issuer: DEV_ISSUER, audience: DEFAULT_AUDIENCE, algorithms: [DEV_ALGORITHM], key },
      settings: { rateLimitPerSecond: 1, rateLimitBurst: 2, tenantsMax: 4 },
      logger: createLogger({ level: 'info', destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }) }),
      rateLimitClockMs: () => 0,
    });
    const url = await limited.listen({ port: 0 });
    try {
      // Good tokens never seen before, more than the address's burst, one after the other: each is
      // charged to the address while it is verified and given back, so none is refused.
      const good = await Promise.all(Array.from({ length: 4 }, (_, n) => mintToken(keys, { tenantId: ALPHA, scopes: ['accounts:read'], subject: `pipelined-good-${n}` })));
      for (const token of good) expect((await call(url, 'GET', '/accounts', { token })).status).toBe(200);
      expect(signatureChecks).toBe(4);
      // 50 requests with a forged token (well-formed, signed by a key the API does not trust)
      // pipelined in one write: parsed in one turn of the event loop, before any check ends.
      const forged = await mintToken(await generateDevKeys(), { tenantId: ALPHA, scopes: ['accounts:read'] });
      const one = `GET /accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${forged}\r\n\r\n`;
      const text = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(url).port), '127.0.0.1', () => {
          socket.write(one.repeat(49) + one.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
        });
        let received = '';
        socket.on('data', (chunk: Buffer) => {
          received += chunk.toString('utf8');
        });
        socket.on('close', () => resolve(received));
        socket.on('error', reject);
      });
      const statuses = (text.match(/HTTP\/1\.1 \d+/g) ?? []).map((line) => Number(line.slice(9)));
      expect(statuses).toHaveLength(50);
      expect(statuses.filter((status) => status === 401)).toHaveLength(2);
      expect(statuses.filter((status) => status === 429)).toHaveLength(48);
      expect(signatureChecks - 4, 'signature checks of forged tokens with an address bucket of 2').toBe(2);
      // The address used its bucket up: a new token from it waits, one verified before does not.
      const fresh = await mintToken(keys, { tenantId: ALPHA, scopes: ['accounts:read'], subject: 'pipelined-fresh' });
      expectProblem(await call(url, 'GET', '/accounts', { token: fresh }), 429, 'rate_limited');
      expect((await call(url, 'GET', '/accounts', { token: good[0] as string })).status).toBe(200);
      expect(signatureChecks).toBe(6);
    } finally {
      await limited.close();
    }
  });
});

describe('scopes', () => {
  it('each operation needs its scope and answers 403 insufficient_scope naming it', async () => {
    const reader = client(api.url, await api.token(ALPHA, ['accounts:read']));
    const writer = client(api.url, await api.token(ALPHA, ['transfers:write']));
    expect((await reader.get(balancePath)).status).toBe(200);
    const denied = await reader.post('/transfers', { transferId: 'r1', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '1.00', currency: 'EUR' });
    expectProblem(denied, 403, 'insufficient_scope');
    expect(denied.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="transfers:write"');
    expectProblem(await reader.post('/accounts', { accountId: 'r2', currency: 'EUR', type: 'asset' }), 403, 'insufficient_scope');
    expectProblem(await reader.get('/trial-balance'), 403, 'insufficient_scope');
    expectProblem(await writer.get(balancePath), 403, 'insufficient_scope');
    expectProblem(await writer.post(`/accounts/${PERSONAL_ACCOUNT}/freeze`), 403, 'insufficient_scope');
    const auditor = client(api.url, await api.token(ALPHA, ['audit:read']));
    expect((await auditor.get('/trial-balance')).status).toBe(200);
  });
});

describe('tenant isolation', () => {
  it("another tenant's account answers 404 on every account route, never 403", async () => {
    for (const path of [`/accounts/${PERSONAL_ACCOUNT}`, balancePath, `/accounts/${PERSONAL_ACCOUNT}/transactions`, `${balancePath}?asOf=${encodeURIComponent(new Date().toISOString())}`]) {
      expectProblem(await beta.get(path), 404, 'not_found');
    }
    for (const action of ['freeze', 'unfreeze', 'close']) expectProblem(await beta.post(`/accounts/${PERSONAL_ACCOUNT}/${action}`), 404, 'account_not_found');
    expectProblem(await beta.post('/transfers', { transferId: 'steal', debitAccountId: PERSONAL_ACCOUNT, creditAccountId: 'cash', amount: '1.00', currency: 'EUR' }), 404, 'account_not_found');
    expectProblem(await beta.get('/transfers/alpha-dep'), 404, 'not_found');
    expectProblem(await beta.post('/transfers/alpha-dep/reversal', { transferId: 'beta-rev' }), 404, 'transfer_not_found');
    expect((await beta.get('/accounts')).body.accounts.map((account: { accountId: string }) => account.accountId)).toEqual(['cash']);
    expect((await client(api.url, await api.token(BETA, ['audit:read'])).get('/trial-balance')).body.lines.map((line: { accountId: string }) => line.accountId)).toEqual(['cash']);
    expect((await alpha.get(balancePath)).body.posted).toBe('100.00');
  });

  it('the tenant comes from the token only: a tenant in the body is refused', async () => {
    expectProblem(await beta.post('/accounts', { accountId: 'x', currency: 'EUR', type: 'asset', tenantId: ALPHA }), 400, 'invalid_request');
  });
});

describe('idempotency keys', () => {
  it('a retry with the same key and body returns the original answer without writing again', async () => {
    const key = randomUUID();
    const body = { transferId: 'idem-1', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '2.00', currency: 'EUR' };
    const first = await alpha.post('/transfers', body, { key });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const retry = await alpha.post('/transfers', { currency: 'EUR', amount: '2.00', creditAccountId: PERSONAL_ACCOUNT, debitAccountId: 'cash', transferId: 'idem-1' }, { key });
    expect(retry.status).toBe(201);
    expect(retry.text).toBe(first.text);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.headers.get('location')).toBe('/transfers/idem-1');
    expect((await alpha.get(balancePath)).body.posted).toBe('102.00');
  });

  it('a rejected request is replayed with the same problem', async () => {
    const key = randomUUID();
    const body = { transferId: 'idem-2', debitAccountId: PERSONAL_ACCOUNT, creditAccountId: 'cash', amount: '1000000.00', currency: 'EUR' };
    const first = await alpha.post('/transfers', body, { key });
    expectProblem(first, 422, 'insufficient_funds');
    const retry = await alpha.post('/transfers', body, { key });
    expectProblem(retry, 422, 'insufficient_funds');
    expect(retry.text).toBe(first.text);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
  });

  it('the same key with a different body answers 422 idempotency_key_reused, and a missing or malformed key 400', async () => {
    const key = randomUUID();
    expect((await alpha.post('/transfers', { transferId: 'idem-3', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '1.00', currency: 'EUR' }, { key })).status).toBe(201);
    expectProblem(await alpha.post('/transfers', { transferId: 'idem-3', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '9.00', currency: 'EUR' }, { key }), 422, 'idempotency_key_reused');
    expectProblem(await alpha.post('/accounts', { accountId: 'other', currency: 'EUR', type: 'asset' }, { key }), 422, 'idempotency_key_reused');
    expectProblem(await alpha.post('/transfers', { transferId: 'idem-4', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '1.00', currency: 'EUR' }, { key: null }), 400, 'idempotency_key_missing');
    expectProblem(await alpha.post('/transfers', { transferId: 'idem-4', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '1.00', currency: 'EUR' }, { key: 'has space' }), 400, 'invalid_request');
    expectProblem(await alpha.post('/transfers', { transferId: 'idem-4', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '1.00', currency: 'EUR' }, { key: 'k'.repeat(256) }), 400, 'invalid_request');
  });

  it('concurrent requests with one key run once: the others are told it is in progress or get the replay', async () => {
    const key = randomUUID();
    const body = { transferId: 'idem-5', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '3.00', currency: 'EUR' };
    const before = (await alpha.get(balancePath)).body.posted as string;
    const replies = await Promise.all(Array.from({ length: 8 }, () => alpha.post('/transfers', body, { key })));
    const statuses = replies.map((reply) => reply.status);
    expect(statuses.filter((status) => status === 201).length).toBeGreaterThanOrEqual(1);
    expect(statuses.every((status) => status === 201 || status === 409)).toBe(true);
    for (const reply of replies.filter((r) => r.status === 409)) {
      expectProblem(reply, 409, 'idempotency_request_in_progress');
      expect(reply.headers.get('retry-after')).toBe('1');
    }
    expect(replies.filter((reply) => reply.status === 201 && reply.headers.get('idempotent-replayed') === null)).toHaveLength(1);
    expect(Number((await alpha.get(balancePath)).body.posted) - Number(before)).toBe(3);
  });

  it('an answer that fails its response schema is a 500 that gives its key back, as any 5xx: the retry runs again and gets the ledger\'s own outcome, not "in progress"', async () => {
    // A directory row that breaks the account schema (metadata values are strings), written
    // inside the append that opens the account: the ledger has acted, the answer is refused.
    await db.admin.query(`CREATE FUNCTION public.break_account_metadata() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.metadata := '{"n": 1}'; RETURN NEW; END $$`);
    await db.admin.query(
      `CREATE TRIGGER break_account_metadata BEFORE INSERT ON banking_api.accounts FOR EACH ROW WHEN (NEW.account_id = 'schema-broken') EXECUTE FUNCTION public.break_account_metadata()`,
    );
    try {
      const key = randomUUID();
      const body = { accountId: 'schema-broken', currency: 'EUR', type: 'asset' };
      expectProblem(await alpha.post('/accounts', body, { key }), 500, 'internal');
      await db.admin.query(`UPDATE banking_api.accounts SET metadata = '{}' WHERE tenant_id = $1 AND account_id = 'schema-broken'`, [ALPHA]);
      const retry = await alpha.post('/accounts', body, { key });
      // Run again, not replayed: the ledger answers the account it opened the first time.
      expect({ status: retry.status, replayed: retry.headers.get('idempotent-replayed') }).toEqual({ status: 200, replayed: null });
      expect(retry.body).toMatchObject({ accountId: 'schema-broken', metadata: {} });
    } finally {
      await db.admin.query('DROP TRIGGER IF EXISTS break_account_metadata ON banking_api.accounts');
      await db.admin.query('DROP FUNCTION IF EXISTS public.break_account_metadata()');
    }
  });

  it('an account the ledger opened but the directory does not show yet is a 503 that gives the key back, not a 404 replayed for the whole life of the key', async () => {
    // The directory's projection runner waits its longest before it applies an append made with
    // the inline hooks, so that the answer is made before it repairs the row.
    const slow = await startTestApi(db, { inlineProjectionBatchDelayMs: 1_000 });
    try {
      const bank = client(slow.url, await slow.token(ALPHA));
      // The inline hook's row is lost once (the runner's is kept): the append succeeds, the row is not there.
      await db.admin.query('CREATE TABLE public.directory_rows_lost (account_id text PRIMARY KEY)');
      await db.admin.query(
        `CREATE FUNCTION public.lose_directory_row() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN
           INSERT INTO public.directory_rows_lost VALUES (NEW.account_id) ON CONFLICT DO NOTHING;
           IF FOUND THEN RETURN NULL; END IF; RETURN NEW; END $$`,
      );
      await db.admin.query(
        `CREATE TRIGGER lose_directory_row BEFORE INSERT ON banking_api.accounts FOR EACH ROW WHEN (NEW.account_id = 'directory-late') EXECUTE FUNCTION public.lose_directory_row()`,
      );
      const key = randomUUID();
      const body = { accountId: 'directory-late', currency: 'EUR', type: 'asset' };
      const first = await bank.post('/accounts', body, { key });
      expectProblem(first, 503, 'unavailable');
      expect(first.headers.get('retry-after')).toBe('1');
      await eventually(async () => expect((await bank.get('/accounts/directory-late')).status).toBe(200));
      const retry = await bank.post('/accounts', body, { key });
      expect({ status: retry.status, replayed: retry.headers.get('idempotent-replayed') }).toEqual({ status: 200, replayed: null });
      expect(retry.body).toMatchObject({ accountId: 'directory-late', status: 'open' });
    } finally {
      await slow.close();
      await db.admin.query('DROP TRIGGER IF EXISTS lose_directory_row ON banking_api.accounts');
      await db.admin.query('DROP FUNCTION IF EXISTS public.lose_directory_row()');
      await db.admin.query('DROP TABLE IF EXISTS public.directory_rows_lost');
    }
  });

  it('keys belong to one client of one tenant: another client may use the same key for its own request', async () => {
    const key = randomUUID();
    expect((await alpha.post('/accounts', { accountId: 'k-alpha', currency: 'EUR', type: 'asset' }, { key })).status).toBe(201);
    expect((await beta.post('/accounts', { accountId: 'k-beta', currency: 'EUR', type: 'asset' }, { key })).status).toBe(201);
    const otherClient = client(api.url, await api.token(ALPHA, undefined, { subject: 'second-app' }));
    expect((await otherClient.post('/accounts', { accountId: 'k-alpha-2', currency: 'EUR', type: 'asset' }, { key })).status).toBe(201);
  });

  it('keys are stored per tenant under forced row-level security: the application role sees none without a tenant', async () => {
    const { rows } = await db.admin.query<{ tenant_id: string; n: number }>('SELECT tenant_id, count(*)::int AS n FROM banking_api.idempotency_keys GROUP BY tenant_id ORDER BY tenant_id');
    expect(rows.map((row) => row.tenant_id)).toEqual([ALPHA, BETA]);
    const app = new pg.Client({ connectionString: db.appUrl });
    await app.connect();
    try {
      expect((await app.query('SELECT count(*)::int AS n FROM banking_api.idempotency_keys')).rows[0].n).toBe(0);
      await app.query('BEGIN');
      await app.query("SELECT set_config('ledgerkit.tenant_id', $1, true)", [BETA]);
      const visible = await app.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM banking_api.idempotency_keys');
      expect(visible.rows.map((row) => row.tenant_id)).toEqual([BETA]);
      await app.query('ROLLBACK');
    } finally {
      await app.end();
    }
  });

  it("with no tenant set, a connection whose earlier transaction set one sees no row whose tenant_id is '' and cannot write one (API migration 5)", async () => {
    await db.admin.query(`INSERT INTO banking_api.accounts (tenant_id, ledger_id, account_id, currency, account_type, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, status, opened_version, opened_at, version)
      VALUES ('', 'main', 'empty-tenant', 'EUR', 'asset', false, false, '{}', 'open', 1, now(), 1)`);
    const app = new pg.Client({ connectionString: db.appUrl });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query("SELECT set_config('ledgerkit.tenant_id', $1, true)", [ALPHA]);
      await app.query('COMMIT');
      // The transaction-local setting is gone, and the session's value is now '' (not NULL).
      expect((await app.query<{ setting: string | null }>("SELECT current_setting('ledgerkit.tenant_id', true) AS setting")).rows[0]?.setting).toBe('');
      for (const table of ['accounts', 'idempotency_keys', 'audit_segments']) {
        expect((await app.query(`SELECT count(*)::int AS n FROM banking_api.${table}`)).rows[0].n, table).toBe(0);
      }
      await expect(
        app.query(`INSERT INTO banking_api.accounts (tenant_id, ledger_id, account_id, currency, account_type, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, status, opened_version, opened_at, version)
          VALUES ('', 'main', 'empty-tenant-2', 'EUR', 'asset', false, false, '{}', 'open', 1, now(), 1)`),
      ).rejects.toMatchObject({ code: '42501' });
    } finally {
      await app.end();
      await db.admin.query("DELETE FROM banking_api.accounts WHERE tenant_id = ''");
    }
  });
});

describe('request bodies', () => {
  it('a body over the limit answers 413 payload_too_large', async () => {
    const reply = await alpha.post('/accounts', { accountId: 'big', currency: 'EUR', type: 'asset', metadata: { note: 'x'.repeat(70_000) } });
    expectProblem(reply, 413, 'payload_too_large');
  });

  it('malformed JSON answers 400 malformed_json; an empty JSON body too; another content type 415', async () => {
    expectProblem(await alpha.post('/transfers', undefined, { raw: '{"transferId": "x",' }), 400, 'malformed_json');
    expectProblem(await alpha.post('/transfers', undefined, { raw: '' , headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
    expectProblem(await alpha.post('/transfers', undefined, { raw: 'transferId=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported_media_type');
    expectProblem(await alpha.post('/transfers', undefined, { raw: '{}', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
  });

  it('an empty body sent as JSON counts as no body: a command whose fields are all optional runs, one that needs a body answers 400', async () => {
    expect((await alpha.post('/accounts', { accountId: 'empty-json', currency: 'EUR', type: 'asset' })).status).toBe(201);
    const key = randomUUID();
    const frozen = await alpha.post('/accounts/empty-json/freeze', undefined, { raw: '', key, headers: { 'content-type': 'application/json' } });
    expect(frozen.status).toBe(200);
    expect(frozen.body).toMatchObject({ accountId: 'empty-json', status: 'frozen' });
    // The same request as a missing body: the same key without a body replays it, no 422 for another body.
    const withoutBody = await alpha.post('/accounts/empty-json/freeze', undefined, { key });
    expect(withoutBody.status).toBe(200);
    expect(withoutBody.headers.get('idempotent-replayed')).toBe('true');
    expect(withoutBody.text).toBe(frozen.text);
    const unfrozen = await alpha.post('/accounts/empty-json/unfreeze', undefined, { raw: '', headers: { 'content-type': 'application/json; charset=utf-8' } });
    expect(unfrozen.status).toBe(200);
    expect(unfrozen.body).toMatchObject({ accountId: 'empty-json', status: 'open' });
    expectProblem(await alpha.post('/transfers', undefined, { raw: '', headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
    expectProblem(await alpha.post('/accounts', undefined, { raw: '', headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
    // Only an empty body counts as none: blanks are not JSON.
    expectProblem(await alpha.post('/accounts/empty-json/freeze', undefined, { raw: ' ', headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
  });

  it('JSON bodies are UTF-8: another charset answers 415 and bytes that are not UTF-8 400 malformed_json, never text stored with replacement characters', async () => {
    const latin1 = Buffer.from('{"accountId":"latin-1","currency":"EUR","type":"asset","metadata":{"name":"café"}}', 'latin1');
    expectProblem(await alpha.post('/accounts', undefined, { raw: latin1, headers: { 'content-type': 'application/json; charset=iso-8859-1' } }), 415, 'unsupported_media_type');
    expectProblem(await alpha.post('/accounts', undefined, { raw: latin1 }), 400, 'malformed_json');
    expectProblem(await alpha.post('/accounts', undefined, { raw: latin1, headers: { 'content-type': 'application/json; charset=utf-8' } }), 400, 'malformed_json');
    expectProblem(await alpha.post('/accounts/latin-1/freeze', undefined, { raw: '{}', headers: { 'content-type': 'application/json; charset=utf-16' } }), 415, 'unsupported_media_type');
    expectProblem(await alpha.get('/accounts/latin-1'), 404, 'not_found');
    // UTF-8 however its name is written, quoted or in any case.
    const utf8 = Buffer.from('{"accountId":"utf-8","currency":"EUR","type":"asset","metadata":{"name":"café"}}', 'utf8');
    expect((await alpha.post('/accounts', undefined, { raw: utf8, headers: { 'content-type': 'application/json; charset="UTF-8"' } })).status).toBe(201);
    expect((await alpha.get('/accounts/utf-8')).body.metadata).toEqual({ name: 'café' });
  });

  it('a body with a content coding (gzip) answers 415 unsupported_media_type naming it, with Accept-Encoding: identity (RFC 9110); identity is no coding', async () => {
    const body = JSON.stringify({ accountId: 'coded', currency: 'EUR', type: 'asset' });
    for (const [coding, raw] of [['gzip', gzipSync(body)], ['br', Buffer.from(body)], ['identity, gzip', gzipSync(body)]] as const) {
      const reply = await alpha.post('/accounts', undefined, { raw, headers: { 'content-encoding': coding } });
      expectProblem(reply, 415, 'unsupported_media_type');
      expect(reply.body.detail).toContain(coding.replace('identity, ', ''));
      expect(reply.headers.get('accept-encoding')).toBe('identity');
    }
    expectProblem(await alpha.get('/accounts/coded'), 404, 'not_found');
    const plain = await alpha.post('/accounts', undefined, { raw: body, headers: { 'content-encoding': 'Identity' } });
    expect(plain.status).toBe(201);
    expect(plain.headers.get('accept-encoding')).toBeNull();
  });

  it('a client sending its request too slowly is answered 408 request_timeout and cut off, not held open for ever', async () => {
    const slow = await startTestApi(db, { requestTimeoutMs: 1_000 });
    try {
      const token = await slow.token(ALPHA);
      const started = Date.now();
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        const socket = connect(Number(new URL(slow.url).port), '127.0.0.1', () => {
          socket.write(`POST /accounts HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${token}\r\nIdempotency-Key: ${randomUUID()}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"accountId":`);
        });
        // A byte now and then: the socket is never idle, the request never complete.
        const drip = setInterval(() => socket.write(' '), 100);
        const giveUp = setTimeout(() => socket.destroy(), 8_000);
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearInterval(drip);
          clearTimeout(giveUp);
          resolve(text);
        });
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toMatch(/content-type: application\/problem\+json/i);
      expect(answer).toContain('"code":"request_timeout"');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await slow.close();
    }
  });

  it('prototype pollution keys are refused', async () => {
    expectProblem(await alpha.post('/accounts', undefined, { raw: '{"accountId":"p","currency":"EUR","type":"asset","__proto__":{"admin":true}}' }), 400, 'malformed_json');
    expectProblem(await alpha.post('/accounts', undefined, { raw: '{"accountId":"p","currency":"EUR","type":"asset","constructor":{"prototype":{"x":1}}}' }), 400, 'malformed_json');
  });
});

describe('logs, audit and caching', () => {
  it('logs carry the route pattern, status and ids of tenant and client, never tokens, account ids or bodies', async () => {
    const token = await api.token(ALPHA);
    await call(api.url, 'GET', balancePath, { token });
    await call(api.url, 'GET', balancePath, { token: `${token}x` });
    const text = api.logText();
    expect(text).not.toContain(token.split('.')[2]);
    expect(text).not.toContain(token.split('.')[1]);
    expect(text).not.toMatch(/Bearer/i);
    expect(text).not.toContain(PERSONAL_ACCOUNT);
    expect(text).not.toContain('100.00');
    const lines = api.logs.filter((line) => line['msg'] === 'request' && line['route'] === '/accounts/{accountId}/balance' && line['status'] === 200);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatchObject({ method: 'GET', tenant: ALPHA, client: `client-of-${ALPHA}`, ms: expect.any(Number) });
  });

  it('a 5xx logs the error\'s class, code and SQLSTATE with the request id, never the database\'s message, detail or stack (they can name account ids)', async () => {
    // A database error whose words name the data, as a constraint violation's do:
    // `Key (tenant_id, account_id)=(...)`. Raised inside the append that opens the account.
    const marker = 'marker-jane-doe-4711';
    await db.admin.query(
      `CREATE FUNCTION public.refuse_marked_account() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         RAISE EXCEPTION 'Key (tenant_id, account_id)=(%, %) refused', NEW.tenant_id, NEW.account_id USING ERRCODE = 'P0001', DETAIL = 'detail ' || NEW.account_id, HINT = 'hint ' || NEW.account_id;
       END $$`,
    );
    await db.admin.query(
      `CREATE TRIGGER refuse_marked_account BEFORE INSERT ON banking_api.accounts FOR EACH ROW WHEN (NEW.account_id = '${marker}') EXECUTE FUNCTION public.refuse_marked_account()`,
    );
    try {
      const reply = await alpha.post('/accounts', { accountId: marker, currency: 'EUR', type: 'asset' });
      expect(reply.status).toBeGreaterThanOrEqual(500);
      const requestId = reply.headers.get('x-request-id');
      const failed = api.logs.filter((line) => line['msg'] === 'request failed' && line['reqId'] === requestId);
      expect(failed).toHaveLength(1);
      const line = JSON.stringify(failed[0]);
      expect(line).not.toContain(marker);
      expect(line).not.toMatch(/Key \(tenant_id|refused|"stack"|"message"|"detail"/);
      // What explains it stays: the library's error and code, the SQLSTATE of the database error under it.
      expect(failed[0]).toMatchObject({ error: { type: 'WriterFailedError', code: 'writer_failed', sqlState: 'P0001' }, route: '/accounts' });
      expect(api.logText()).not.toContain(marker);
    } finally {
      await db.admin.query('DROP TRIGGER IF EXISTS refuse_marked_account ON banking_api.accounts');
      await db.admin.query('DROP FUNCTION IF EXISTS public.refuse_marked_account()');
    }
  });

  it("a projection's error is logged with its class, codes and SQLSTATE only, never the database's words naming the account", async () => {
    const marker = 'marker-john-roe-0815';
    expect((await alpha.post('/accounts', { accountId: marker, currency: 'EUR', type: 'liability' })).status).toBe(201);
    // The history projection (kept by the async runner) refuses entries of the marked account, in words that name it.
    await db.admin.query(
      `CREATE FUNCTION public.refuse_marked_entry() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         RAISE EXCEPTION 'Key (tenant_id, account_id)=(%, %) refused', NEW.tenant_id, NEW.account_id USING ERRCODE = 'P0001', DETAIL = 'detail ' || NEW.account_id;
       END $$`,
    );
    await db.admin.query(
      `CREATE TRIGGER refuse_marked_entry BEFORE INSERT ON ledgerkit.rm_account_entries FOR EACH ROW WHEN (NEW.account_id = '${marker}') EXECUTE FUNCTION public.refuse_marked_entry()`,
    );
    const failures = (): Record<string, unknown>[] => api.logs.filter((line) => String(line['msg']).startsWith('projection error') && line['projection'] === 'history');
    try {
      expect((await alpha.post('/transfers', { transferId: 'marked-1', debitAccountId: 'cash', creditAccountId: marker, amount: '1.00', currency: 'EUR' })).status).toBe(201);
      await eventually(async () => expect(failures().length).toBeGreaterThan(0), 20_000);
      expect(failures()[0]).toMatchObject({ tenant: ALPHA, error: { sqlState: 'P0001' } });
      // The operator sees it stopped on the metrics port (the lag alone only grows), and only that projection.
      const failedGauge = async (projection: string): Promise<string | undefined> => {
        const text = await (await fetch(metricsUrl)).text();
        return new RegExp(`^banking_api_projection_failed\\{projection="${projection}",tenant="${ALPHA}"\\} (\\d+)$`, 'm').exec(text)?.[1];
      };
      await eventually(async () => expect(await failedGauge('history')).toBe('1'), 20_000);
      expect(await failedGauge('balances')).toBe('0');
      expect(JSON.stringify(failures())).not.toMatch(/Key \(tenant_id|refused|"stack"|"message"|"detail"/);
      expect(api.logText()).not.toContain(marker);
    } finally {
      await db.admin.query('DROP TRIGGER IF EXISTS refuse_marked_entry ON ledgerkit.rm_account_entries');
      await db.admin.query('DROP FUNCTION IF EXISTS public.refuse_marked_entry()');
    }
  });

  it('a sub (an e-mail address, say) never reaches the logs, the audit trail or the ledger events in clear: without client_id the client is named by a stable pseudonym', async () => {
    const email = 'jane.doe@example.com';
    const pseudonym = pseudonymOfSubject(email);
    expect(pseudonym).toMatch(/^sub:[0-9a-f]{16}$/);
    expect(pseudonymOfSubject(email)).toBe(pseudonym);
    expect(pseudonymOfSubject('john.doe@example.com')).not.toBe(pseudonym);
    const token = await new SignJWT({ tenant_id: ALPHA, scope: 'accounts:read transfers:write' })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
      .setIssuer('urn:ledgerkit:banking-api:dev-issuer')
      .setAudience('banking-api')
      .setSubject(email)
      .setExpirationTime('1h')
      .sign(api.keys.privateKey);
    const person = client(api.url, token);
    expect((await person.get(balancePath)).status).toBe(200);
    expect((await person.post('/transfers', { transferId: 'by-a-person', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '1.00', currency: 'EUR' })).status).toBe(201);
    const lines = await eventually(async () => {
      const found = api.logs.filter((line) => line['msg'] === 'request' && line['client'] === pseudonym);
      expect(found).toHaveLength(2);
      return found;
    });
    expect(lines.map((line) => line['route'])).toEqual(['/accounts/{accountId}/balance', '/transfers']);
    expect(api.logText()).not.toContain(email);
    const rows = await eventually(async () => {
      const { rows: found } = await db.admin.query<{ client_id: string; subject: string }>(
        'SELECT client_id, subject FROM banking_api.audit_events WHERE tenant_id = $1 AND client_id = $2',
        [ALPHA, pseudonym],
      );
      expect(found).toHaveLength(2);
      return found;
    });
    for (const row of rows) expect(row).toEqual({ client_id: pseudonym, subject: pseudonym });
    const { rows: leaks } = await db.admin.query(
      "SELECT 1 FROM banking_api.audit_segments WHERE events::text LIKE '%' || $1 || '%' UNION ALL SELECT 1 FROM ledgerkit.events e WHERE e::text LIKE '%' || $1 || '%'",
      [email],
    );
    expect(leaks).toEqual([]);
  });

  it('money reads and moves are audited off the request path: who, tenant, what, outcome', async () => {
    const auditor = client(api.url, await api.token(ALPHA, ['accounts:read'], { subject: 'audited-app' }));
    await auditor.get(balancePath);
    await auditor.post('/transfers', { transferId: 'audited', debitAccountId: 'cash', creditAccountId: PERSONAL_ACCOUNT, amount: '1.00', currency: 'EUR' });
    const rows = await eventually(async () => {
      const { rows: found } = await db.admin.query<Record<string, unknown>>(
        "SELECT tenant_id, client_id, subject, action, resource_id, status, outcome, problem_code, replayed, request_id, occurred_at FROM banking_api.audit_events WHERE client_id = 'audited-app' ORDER BY segment_id, seq",
      );
      expect(found).toHaveLength(2);
      return found;
    });
    expect(rows[0]).toMatchObject({ tenant_id: ALPHA, action: 'balance.read', resource_id: PERSONAL_ACCOUNT, status: 200, outcome: 'success', problem_code: null });
    expect(rows[1]).toMatchObject({ tenant_id: ALPHA, action: 'transfer.create', status: 403, outcome: 'rejected', problem_code: 'insufficient_scope' });
    for (const row of rows) {
      expect(row).toMatchObject({ subject: pseudonymOfSubject('audited-app'), replayed: false, request_id: expect.any(String) });
      expect(Math.abs(Date.now() - (row['occurred_at'] as Date).getTime())).toBeLessThan(60_000);
    }
    // The segment row carries the tenant; its events do not repeat it.
    const { rows: segments } = await db.admin.query<{ events: string }>(
      "SELECT events::text AS events FROM banking_api.audit_segments WHERE events::text LIKE '%audited-app%'",
    );
    expect(segments.length).toBeGreaterThan(0);
    for (const segment of segments) expect(segment.events).not.toContain('tenantId');
    const app = new pg.Client({ connectionString: db.appUrl });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query("SELECT set_config('ledgerkit.tenant_id', $1, true)", [ALPHA]);
      await expect(app.query('UPDATE banking_api.audit_segments SET event_count = 1')).rejects.toThrow(/permission denied/);
      await app.query('ROLLBACK');
    } finally {
      await app.end();
    }
    // Not even a superuser may rewrite the audit trail: the append-only trigger refuses.
    await expect(db.admin.query('UPDATE banking_api.audit_segments SET event_count = 1')).rejects.toThrow(/append-only/);
    await expect(db.admin.query('DELETE FROM banking_api.audit_segments')).rejects.toThrow(/append-only/);
    expect(api.api.auditStats().dropped).toBe(0);
  });

  it('a request with a path parameter the database cannot store (a NUL) does not stop the audit trail of anyone', async () => {
    expectProblem(await alpha.get('/accounts/%00/balance'), 400, 'invalid_request');
    expectProblem(await beta.post('/accounts/%00/freeze'), 400, 'invalid_request');
    const after = client(api.url, await api.token(BETA, ['accounts:read'], { subject: 'after-nul-app' }));
    expect((await after.get('/accounts/cash')).status).toBe(200);
    await eventually(async () => {
      const { rows } = await db.admin.query("SELECT action, resource_id FROM banking_api.audit_events WHERE client_id = 'after-nul-app'");
      expect(rows).toEqual([{ action: 'account.read', resource_id: 'cash' }]);
    });
    const { rows: invalid } = await db.admin.query<{ resource_id: string | null }>(
      "SELECT resource_id FROM banking_api.audit_events WHERE status = 400 AND action IN ('balance.read', 'account.freeze') AND problem_code = 'invalid_request'",
    );
    expect(invalid.length).toBeGreaterThanOrEqual(2);
    for (const row of invalid) expect(row.resource_id).toBeNull();
  });

  it('every answer with account data, and every error, says Cache-Control: no-store', async () => {
    for (const reply of [await alpha.get(balancePath), await alpha.get('/accounts'), await alpha.get(`/accounts/${PERSONAL_ACCOUNT}/transactions`), await alpha.get('/transfers/alpha-dep'), await beta.get(balancePath)]) {
      expect(reply.headers.get('cache-control')).toBe('no-store');
    }
  });
});
