/**
 * TokenVerifier as a unit, on a clock the test moves: how long the verified-token cache serves a
 * token (never past `exp`, never more than `cacheTtlMs` after its check, so a key withdrawn from
 * the key set stops its tokens), its bound, and the client id a token is given (a `client_id`
 * as it is, a `sub` in a namespace no `client_id` can take).
 */
import { generateKeyPair, SignJWT, type CryptoKey, type JWTVerifyGetKey } from 'jose';
import { describe, expect, it } from 'vitest';
import { pseudonymOfSubject, SUBJECT_CLIENT_ID_PREFIX, TOKEN_CACHE_TTL_MS_MAX, TokenVerifier, type TokenVerifierOptions } from '../src/auth.js';
import { ProblemError } from '../src/problems.js';

const ISSUER = 'https://issuer.example';
const AUDIENCE = 'banking-api';
/** The test's "now", epoch seconds. */
const NOW_S = 1_800_000_000;

interface Keys {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

async function keys(): Promise<Keys> {
  return generateKeyPair('EdDSA', { crv: 'Ed25519' });
}

/** A token valid at NOW_S for 10 minutes; a claim given as `undefined` is left out. */
async function sign(key: Keys, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const body: Record<string, unknown> = { iss: ISSUER, aud: AUDIENCE, sub: 'client-1', tenant_id: 'tenant-a', scope: 'accounts:read', iat: NOW_S, exp: NOW_S + 600, ...claims };
  for (const [name, value] of Object.entries(body)) if (value === undefined) delete body[name];
  return new SignJWT(body).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', ...header }).sign(key.privateKey);
}

function verifier(key: TokenVerifierOptions['key'], clockMs: () => number, extra: Partial<TokenVerifierOptions> = {}): TokenVerifier {
  return new TokenVerifier({ issuer: ISSUER, audience: AUDIENCE, key, algorithms: ['EdDSA'], clock: clockMs, ...extra });
}

async function refused(promise: Promise<unknown>): Promise<ProblemError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a refusal').toBeInstanceOf(ProblemError);
  return error as ProblemError;
}

/**
 * A key set as jose's createRemoteJWKSet serves it after a refresh: keys by `kid`, and an error
 * for a `kid` it no longer publishes. Counts the look-ups (each one is a signature check).
 */
function keySet(published: Record<string, CryptoKey>): { resolver: JWTVerifyGetKey; publish(keys: Record<string, CryptoKey>): void; lookups(): number } {
  let current = published;
  let lookups = 0;
  return {
    resolver: async (header) => {
      lookups += 1;
      const found = header.kid === undefined ? undefined : current[header.kid];
      if (found === undefined) throw new Error('no such key');
      return found;
    },
    publish: (next) => {
      current = next;
    },
    lookups: () => lookups,
  };
}

describe('verified-token cache', () => {
  it('serves a token for at most cacheTtlMs after its check: a key withdrawn from the key set stops its tokens then, not at their exp', async () => {
    const oldKey = await keys();
    const newKey = await keys();
    const jwks = keySet({ old: oldKey.publicKey });
    let nowMs = NOW_S * 1_000;
    const v = verifier(jwks.resolver, () => nowMs, { cacheTtlMs: 30_000 });
    // A 12-hour token (the demo's), signed with the key that is about to be withdrawn.
    const token = await sign(oldKey, { exp: NOW_S + 12 * 3_600 }, { kid: 'old' });
    expect((await v.authenticate(`Bearer ${token}`)).tenantId).toBe('tenant-a');
    expect(jwks.lookups()).toBe(1);
    // The issuer withdraws the key (say it leaked) and publishes another.
    jwks.publish({ new: newKey.publicKey });
    // Within cacheTtlMs of the check the token is still served from the cache, without a check.
    nowMs += 30_000 - 1;
    expect(v.cached(`Bearer ${token}`)?.tenantId).toBe('tenant-a');
    expect((await v.authenticate(`Bearer ${token}`)).tenantId).toBe('tenant-a');
    expect(jwks.lookups()).toBe(1);
    // From cacheTtlMs on it is verified again, against the key set as it is now: refused.
    nowMs += 1;
    expect(v.cached(`Bearer ${token}`)).toBeUndefined();
    await refused(v.authenticate(`Bearer ${token}`));
    expect(jwks.lookups()).toBe(2);
    expect(v.cached(`Bearer ${token}`)).toBeUndefined();
    // A token of the new key is served from the cache again once verified.
    const renewed = await sign(newKey, { exp: NOW_S + 12 * 3_600 }, { kid: 'new' });
    await v.authenticate(`Bearer ${renewed}`);
    expect(v.cached(`Bearer ${renewed}`)?.tenantId).toBe('tenant-a');
  });

  it('defaults to 60 s, and a token verified again is served for another cacheTtlMs', async () => {
    const key = await keys();
    const jwks = keySet({ k: key.publicKey });
    let nowMs = NOW_S * 1_000;
    const v = verifier(jwks.resolver, () => nowMs);
    const token = await sign(key, { exp: NOW_S + 3_600 }, { kid: 'k' });
    await v.authenticate(`Bearer ${token}`);
    nowMs += 59_999;
    expect(v.cached(`Bearer ${token}`)).toBeDefined();
    nowMs += 1;
    expect(v.cached(`Bearer ${token}`)).toBeUndefined();
    await v.authenticate(`Bearer ${token}`);
    expect(jwks.lookups()).toBe(2);
    nowMs += 59_999;
    expect(v.cached(`Bearer ${token}`)).toBeDefined();
  });

  it('never serves a token past exp + tolerance, through cached() or authenticate(), however long cacheTtlMs is', async () => {
    const key = await keys();
    let nowMs = NOW_S * 1_000;
    const v = verifier(key.publicKey, () => nowMs, { cacheTtlMs: TOKEN_CACHE_TTL_MS_MAX });
    const token = await sign(key, { exp: NOW_S + 10 });
    await v.authenticate(`Bearer ${token}`);
    expect(v.cached(`Bearer ${token}`)).toBeDefined();
    nowMs = (NOW_S + 10 + 5) * 1_000 - 1;
    expect(v.cached(`Bearer ${token}`)).toBeDefined();
    nowMs = (NOW_S + 10 + 5) * 1_000;
    expect(v.cached(`Bearer ${token}`)).toBeUndefined();
    await refused(v.authenticate(`Bearer ${token}`));
  });

  it('a wall clock set back before a token\'s check does not stretch its entry: the token is verified again', async () => {
    const key = await keys();
    const jwks = keySet({ k: key.publicKey });
    let nowMs = NOW_S * 1_000;
    const v = verifier(jwks.resolver, () => nowMs);
    const token = await sign(key, { iat: NOW_S - 3_600, exp: NOW_S + 3_600 }, { kid: 'k' });
    await v.authenticate(`Bearer ${token}`);
    nowMs -= 600_000;
    expect(v.cached(`Bearer ${token}`)).toBeUndefined();
    await v.authenticate(`Bearer ${token}`);
    expect(jwks.lookups()).toBe(2);
  });

  it('cacheTtlMs is an integer in 0..600,000 (jose\'s key-set refresh age); 0 remembers nothing', async () => {
    const key = await keys();
    for (const cacheTtlMs of [-1, TOKEN_CACHE_TTL_MS_MAX + 1, 1.5, Number.NaN]) {
      expect(() => verifier(key.publicKey, () => NOW_S * 1_000, { cacheTtlMs }), String(cacheTtlMs)).toThrow(new RangeError(`cacheTtlMs must be an integer in 0..${TOKEN_CACHE_TTL_MS_MAX}`));
    }
    expect(TOKEN_CACHE_TTL_MS_MAX).toBe(600_000);
    const jwks = keySet({ k: key.publicKey });
    const v = verifier(jwks.resolver, () => NOW_S * 1_000, { cacheTtlMs: 0 });
    const token = await sign(key, {}, { kid: 'k' });
    await v.authenticate(`Bearer ${token}`);
    expect(v.cached(`Bearer ${token}`)).toBeUndefined();
    await v.authenticate(`Bearer ${token}`);
    expect(jwks.lookups()).toBe(2);
  });

  it('is keyed by the exact token: two tokens never share an entry, each keeps its own tenant, client and scopes', async () => {
    const key = await keys();
    const v = verifier(key.publicKey, () => NOW_S * 1_000);
    const a = await sign(key, { tenant_id: 'tenant-a', sub: 'same', scope: 'accounts:read' });
    const b = await sign(key, { tenant_id: 'tenant-b', sub: 'same', scope: 'audit:read' });
    expect((await v.authenticate(`Bearer ${a}`)).tenantId).toBe('tenant-a');
    expect((await v.authenticate(`Bearer ${b}`)).tenantId).toBe('tenant-b');
    expect(v.cached(`bearer ${a}`)?.tenantId).toBe('tenant-a');
    expect([...(v.cached(`Bearer ${b}`)?.scopes ?? [])]).toEqual(['audit:read']);
    // A prefix of a cached token, or a cached token with more after it, is not a hit.
    expect(v.cached(`Bearer ${a.slice(0, -1)}`)).toBeUndefined();
    expect(v.cached(`Bearer ${a}x`)).toBeUndefined();
  });

  it('stays within cacheMax', async () => {
    const key = await keys();
    const v = verifier(key.publicKey, () => NOW_S * 1_000, { cacheMax: 3 });
    const tokens = await Promise.all(Array.from({ length: 6 }, (_, n) => sign(key, { sub: `c${n}` })));
    for (const token of tokens) await v.authenticate(`Bearer ${token}`);
    expect(tokens.filter((token) => v.cached(`Bearer ${token}`) !== undefined)).toHaveLength(3);
  });
});

describe('client ids', () => {
  it('a token without client_id is a client of its own, never the client whose client_id equals its sub; a client_id is kept exactly as it is', async () => {
    const key = await keys();
    const v = verifier(key.publicKey, () => NOW_S * 1_000);
    const app = await v.authenticate(`Bearer ${await sign(key, { sub: 'svc-uuid-1', client_id: 'payments-app' })}`);
    const person = await v.authenticate(`Bearer ${await sign(key, { sub: 'payments-app' })}`);
    // The ids that key stored idempotency keys, buckets and lifecycle command ids: a client_id's
    // is unchanged, a sub's is in the namespace of SUBJECT_CLIENT_ID_PREFIX.
    expect(app.clientId).toBe('payments-app');
    expect(person.clientId).toBe(`${SUBJECT_CLIENT_ID_PREFIX}payments-app`);
    expect(person.clientId).not.toBe(app.clientId);
    // What logs and audit show does not change.
    expect(app.clientLabel).toBe('payments-app');
    expect(person.clientLabel).toBe(pseudonymOfSubject('payments-app'));
    expect(person.subject).toBe('payments-app');
    // Not even a client_id that spells the prefix out takes the sub's id: it cannot hold U+001F.
    const lookalike = await sign(key, { sub: 'x', client_id: `${SUBJECT_CLIENT_ID_PREFIX}payments-app` });
    expect((await refused(v.authenticate(`Bearer ${lookalike}`))).message).toMatch(/client_id/);
  });

  it('refuses a client_id holding a control character (RFC 6749 allows printable characters only); a sub may hold one', async () => {
    const key = await keys();
    const v = verifier(key.publicKey, () => NOW_S * 1_000);
    for (const clientId of ['a\u0001b', 'tab\there', 'line\n', 'unit\u001f', 'del\u007f']) {
      const error = await refused(v.authenticate(`Bearer ${await sign(key, { client_id: clientId })}`));
      expect(error.status, JSON.stringify(clientId)).toBe(401);
      expect(error.message).toBe('the token\'s client_id claim holds a control character');
    }
    // Printable text beyond ASCII is still a client_id as it is.
    expect((await v.authenticate(`Bearer ${await sign(key, { client_id: 'app-é' })}`)).clientId).toBe('app-é');
    expect((await v.authenticate(`Bearer ${await sign(key, { sub: 'odd\u001fsub' })}`)).clientId).toBe(`${SUBJECT_CLIENT_ID_PREFIX}odd\u001fsub`);
  });
});
