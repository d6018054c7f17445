import { createHash } from 'node:crypto';
import { isStorableText } from '@ledgerkit/ledger-core';
import { isTenantId } from '@ledgerkit/tenant-rls';
import { errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type KeyInput } from 'jose';
import { ProblemError } from './problems.js';

/** OAuth 2.0 scopes the API knows. */
export const SCOPES = ['accounts:read', 'accounts:write', 'transfers:write', 'audit:read'] as const;

/** One of {@link SCOPES}. */
export type Scope = (typeof SCOPES)[number];

/** Who is calling: taken from a verified token only, never from the request body. */
export interface Principal {
  /**
   * The OAuth client: the unit of rate limiting and the owner of idempotency keys. The `client_id`
   * claim exactly as the token says it; a token without one is the client
   * {@link SUBJECT_CLIENT_ID_PREFIX} + `sub`, an id no `client_id` can take (so a person whose
   * `sub` happens to be an OAuth client's id never shares that client's keys or bucket). A token
   * with a longer id than 256 characters is refused, never shortened.
   */
  readonly clientId: string;
  /** The token's subject (`sub`), at most 256 characters like `clientId`. */
  readonly subject: string;
  /**
   * The client as logs, audit events and ledger event metadata name it: the `client_id` claim as
   * it is (an OAuth client id, not personal data), or {@link pseudonymOfSubject} of `sub` when the
   * token has no `client_id` (a `sub` may be an e-mail address or a person's id). Never `sub` in clear.
   */
  readonly clientLabel: string;
  /** The subject as audit events name it: always {@link pseudonymOfSubject} of `sub`, never `sub` in clear. */
  readonly subjectLabel: string;
  /** The tenant the token is for: every read and write is scoped to it. */
  readonly tenantId: string;
  readonly scopes: ReadonlySet<Scope>;
  /** When the token expires, epoch ms. */
  readonly expiresAtMs: number;
}

/** Options of a {@link TokenVerifier}. */
export interface TokenVerifierOptions {
  /** Expected `iss`. */
  readonly issuer: string;
  /** Expected `aud` (the token must list it). */
  readonly audience: string;
  /** The verification key (public key or JWK), or a key resolver such as jose's `createRemoteJWKSet`. */
  readonly key: KeyInput | JWTVerifyGetKey;
  /** Accepted signature algorithms; never `none`. Default `['EdDSA', 'ES256', 'RS256']`. */
  readonly algorithms?: readonly string[];
  /** Claim that names the tenant; default `tenant_id`. */
  readonly tenantClaim?: string;
  /**
   * Expected `typ` header: default `at+jwt`, the RFC 9068 access token type, so that an OpenID
   * ID token (`typ: JWT`) of the same issuer and audience is refused. Compared as jose does, case
   * insensitively and with or without `application/`. `null` skips the check, for identity
   * providers that do not mark their access tokens (their ID tokens then pass too, unless their
   * audience or claims differ).
   */
  readonly tokenType?: string | null;
  /** Allowed clock skew for `exp` and `nbf`, seconds: 0..300, default 5. */
  readonly clockToleranceSeconds?: number;
  /** Verified tokens remembered until they expire: 0..1,000,000, default 10,000. */
  readonly cacheMax?: number;
  /**
   * Longest a verified token is admitted from the cache after its signature check, ms:
   * 0..{@link TOKEN_CACHE_TTL_MS_MAX} (0 remembers nothing), default 60,000. A key the issuer
   * withdraws from its JWKS (a leaked one, say) stops the tokens it signed within this time plus
   * the key set's own refresh (jose's `createRemoteJWKSet` refetches after 10 minutes), rather
   * than at each token's `exp`, which may be hours away.
   */
  readonly cacheTtlMs?: number;
  /** Wall clock, epoch ms; default `Date.now`. */
  readonly clock?: () => number;
}

/**
 * Longest `sub` and `client_id` accepted, characters (UTF-16 units). OpenID Connect bounds `sub` at
 * 255 ASCII characters; identity providers issue far shorter ids (UUIDs, 20-40 characters). A
 * longer id is refused rather than shortened: two clients whose ids share a prefix would
 * otherwise share a rate-limit bucket and each other's idempotent answers.
 */
export const CLIENT_ID_LENGTH_MAX = 256;

/**
 * Longest {@link TokenVerifierOptions.cacheTtlMs}, ms: the age after which jose's
 * `createRemoteJWKSet` fetches the key set again (its `cacheMaxAge`, 10 minutes). A longer cache
 * would admit the tokens of a withdrawn key after the process itself has stopped trusting it.
 */
export const TOKEN_CACHE_TTL_MS_MAX = 600_000;

/**
 * What the client id of a token without `client_id` starts with, before its `sub`: `sub` and a
 * U+001F (unit separator). A `client_id` may hold no control character (RFC 6749 allows only
 * printable ASCII in one, and the verifier refuses C0 controls and DEL), so no token with a
 * `client_id` can ever be the client of a token without one. Not NUL: the id is stored in
 * PostgreSQL text (idempotency keys), which cannot hold it.
 */
export const SUBJECT_CLIENT_ID_PREFIX = 'sub\u001f';

/** C0 control characters and DEL: refused in a `client_id` (see {@link SUBJECT_CLIENT_ID_PREFIX}). */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * The stable pseudonym a `sub` is logged and audited by: `sub:` and the first 16 hex digits of the
 * SHA-256 of its UTF-8 text. The same `sub` always gives the same pseudonym, so the requests of
 * one subject can be followed through logs and audit events, and an operator who knows a `sub`
 * can find its events by computing this; the logs and the (append-only) audit trail never hold
 * the `sub` itself. Pseudonymous, not anonymous: a guessable `sub` (an e-mail address) can be
 * confirmed by hashing a guess.
 */
export function pseudonymOfSubject(subject: string): string {
  return `sub:${createHash('sha256').update(subject, 'utf8').digest('hex').slice(0, 16)}`;
}

/** Longest bearer token accepted, characters: a bound on work done for a garbage header. */
const TOKEN_LENGTH_MAX = 8_192;
/** The scheme name is case-insensitive (RFC 9110, section 11.1): `bearer` is `Bearer`. */
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i;

/**
 * Verifies OAuth 2.0 bearer JWTs with jose: signature, the `typ` header (`at+jwt`), `iss`, `aud`,
 * `exp` (required), `nbf`, `iat` (when present, not in the future), and a tenant claim; scopes
 * come from the space-separated `scope` claim
 * (RFC 9068). A token that verified is remembered, keyed by its exact text, until it expires or
 * `cacheTtlMs` after its check, whichever comes first, so steady traffic with one token pays for
 * one signature check a minute (by default): the cache never outlives `exp`, nor the key that
 * verified the token by more than `cacheTtlMs` (plus the key set's refresh), and a token that
 * failed is never cached.
 */
export class TokenVerifier {
  readonly #issuer: string;
  readonly #audience: string;
  readonly #key: KeyInput | JWTVerifyGetKey;
  readonly #algorithms: string[];
  readonly #tenantClaim: string;
  readonly #tokenType: string | null;
  readonly #clockToleranceSeconds: number;
  readonly #cacheMax: number;
  readonly #cacheTtlMs: number;
  readonly #clock: () => number;
  /** Least recently used first (a hit moves its token to the end), dropped first when full. */
  readonly #cache = new Map<string, CachedToken>();

  constructor(options: TokenVerifierOptions) {
    this.#issuer = options.issuer;
    this.#audience = options.audience;
    this.#key = options.key;
    this.#algorithms = [...(options.algorithms ?? ['EdDSA', 'ES256', 'RS256'])];
    if (this.#algorithms.length === 0 || this.#algorithms.some((alg) => alg.toLowerCase() === 'none')) {
      throw new RangeError('algorithms must list at least one real signature algorithm');
    }
    this.#tenantClaim = options.tenantClaim ?? 'tenant_id';
    this.#tokenType = options.tokenType === undefined ? 'at+jwt' : options.tokenType;
    if (this.#tokenType !== null && this.#tokenType.trim() === '') throw new RangeError('tokenType must be a media type such as at+jwt, or null');
    this.#clockToleranceSeconds = options.clockToleranceSeconds ?? 5;
    if (!Number.isInteger(this.#clockToleranceSeconds) || this.#clockToleranceSeconds < 0 || this.#clockToleranceSeconds > 300) {
      throw new RangeError('clockToleranceSeconds must be an integer in 0..300');
    }
    this.#cacheMax = options.cacheMax ?? 10_000;
    if (!Number.isInteger(this.#cacheMax) || this.#cacheMax < 0 || this.#cacheMax > 1_000_000) throw new RangeError('cacheMax must be an integer in 0..1,000,000');
    this.#cacheTtlMs = options.cacheTtlMs ?? 60_000;
    if (!Number.isInteger(this.#cacheTtlMs) || this.#cacheTtlMs < 0 || this.#cacheTtlMs > TOKEN_CACHE_TTL_MS_MAX) {
      throw new RangeError(`cacheTtlMs must be an integer in 0..${TOKEN_CACHE_TTL_MS_MAX}`);
    }
    this.#clock = options.clock ?? Date.now;
  }

  /**
   * The principal of an `Authorization` header value whose token verified within `cacheTtlMs`
   * and has not expired, without waiting; `undefined` when it has to be verified (call
   * `authenticate`).
   */
  cached(authorization: string | undefined): Principal | undefined {
    if (authorization === undefined || authorization.length > TOKEN_LENGTH_MAX + 7) return undefined;
    if (!authorization.startsWith('Bearer ') && authorization.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
    const token = authorization.slice(7);
    const cached = this.#cache.get(token);
    if (cached === undefined || !isFresh(cached, this.#clock())) return undefined;
    // Re-inserted as the newest: the cache drops the least recently used token when full.
    this.#cache.delete(token);
    this.#cache.set(token, cached);
    return cached.principal;
  }

  /**
   * The principal of an `Authorization` header value, or a `ProblemError` (401, with a
   * `WWW-Authenticate` challenge that never echoes the token).
   */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined || authorization === '') throw unauthorized('missing bearer token', undefined);
    const match = authorization.length <= TOKEN_LENGTH_MAX + 7 ? BEARER.exec(authorization) : null;
    const token = match?.[1];
    if (token === undefined) throw unauthorized('the Authorization header must be "Bearer <JWT>"', 'invalid_request');
    const nowMs = this.#clock();
    const cached = this.#cache.get(token);
    if (cached !== undefined) {
      this.#cache.delete(token);
      if (isFresh(cached, nowMs)) {
        // Re-inserted as the newest: the cache drops the least recently used token when full.
        this.#cache.set(token, cached);
        return cached.principal;
      }
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#key as KeyInput, {
        issuer: this.#issuer,
        audience: this.#audience,
        algorithms: this.#algorithms,
        clockTolerance: this.#clockToleranceSeconds,
        currentDate: new Date(nowMs),
        requiredClaims: ['exp', 'sub', this.#tenantClaim],
        ...(this.#tokenType === null ? {} : { typ: this.#tokenType }),
      }));
    } catch (error) {
      throw unauthorized(describeJoseError(error), 'invalid_token');
    }
    // jose checks that `iat` is a number, not that it has passed: a token issued in the future
    // (beyond the clock tolerance) comes from a misset or forged issuer clock.
    if (typeof payload.iat === 'number' && payload.iat * 1_000 > nowMs + this.#clockToleranceSeconds * 1_000) {
      throw unauthorized('the token was issued in the future (its iat claim)', 'invalid_token');
    }
    const principal = this.#principalOf(payload);
    if (this.#cacheMax > 0 && this.#cacheTtlMs > 0) {
      if (this.#cache.size >= this.#cacheMax) this.#cache.delete(this.#cache.keys().next().value as string);
      // Bounded by the time since this check too: past it the token is verified again, against
      // the key set as it is then, so a withdrawn key's tokens stop within cacheTtlMs.
      const cachedUntilMs = Math.min(principal.expiresAtMs + this.#clockToleranceSeconds * 1_000, nowMs + this.#cacheTtlMs);
      this.#cache.set(token, { principal, verifiedAtMs: nowMs, cachedUntilMs });
    }
    return principal;
  }

  #principalOf(payload: JWTPayload): Principal {
    const tenantId = payload[this.#tenantClaim];
    if (typeof tenantId !== 'string' || !isTenantId(tenantId)) throw unauthorized(`the ${this.#tenantClaim} claim is not a valid tenant id`, 'invalid_token');
    // jose checks that `sub` is present, not that it is text: a number or an object would fail
    // later as a 500, and a NUL or an unpaired surrogate cannot be stored (idempotency keys and
    // audit events carry these ids), so one such token would stop those writes for others too.
    const subject = payload.sub;
    if (typeof subject !== 'string' || subject === '' || !isStorableText(subject)) throw unauthorized('the token\'s sub claim is missing or invalid', 'invalid_token');
    if (subject.length > CLIENT_ID_LENGTH_MAX) throw unauthorized(`the token's sub claim is longer than ${CLIENT_ID_LENGTH_MAX} characters`, 'invalid_token');
    // `client_id` is optional (the client is then `sub`), but one that is present must be a
    // non-empty string: a number, `null` or `""` ignored would fall back to `sub`, and two clients
    // with `client_id` 1001 and 2002 and the same `sub` would share rate-limit buckets and
    // idempotency keys (one replayed the other's stored answer).
    const clientClaim = payload['client_id'];
    if (clientClaim !== undefined && (typeof clientClaim !== 'string' || clientClaim === '' || !isStorableText(clientClaim))) {
      throw unauthorized('the token\'s client_id claim is not a non-empty string', 'invalid_token');
    }
    if (clientClaim !== undefined && clientClaim.length > CLIENT_ID_LENGTH_MAX) {
      throw unauthorized(`the token's client_id claim is longer than ${CLIENT_ID_LENGTH_MAX} characters`, 'invalid_token');
    }
    // RFC 6749 (appendix A.1) allows only printable characters in a client_id; refusing control
    // characters keeps SUBJECT_CLIENT_ID_PREFIX, which holds one, out of reach of every client_id.
    if (clientClaim !== undefined && CONTROL_CHARACTER.test(clientClaim)) {
      throw unauthorized('the token\'s client_id claim holds a control character', 'invalid_token');
    }
    const fromClientClaim = clientClaim !== undefined;
    // A client_id is kept exactly as it is (it keys stored idempotency keys, rate-limit buckets
    // and lifecycle command ids); a sub is put in a namespace of its own, or a person whose sub
    // equals an OAuth client's id would be that client.
    const clientId = fromClientClaim ? clientClaim : `${SUBJECT_CLIENT_ID_PREFIX}${subject}`;
    const scopeClaim = payload['scope'];
    const granted = typeof scopeClaim === 'string' ? scopeClaim.split(' ') : [];
    const scopes = new Set<Scope>(granted.filter((scope): scope is Scope => (SCOPES as readonly string[]).includes(scope)));
    const subjectLabel = pseudonymOfSubject(subject);
    const clientLabel = fromClientClaim ? clientClaim : subjectLabel;
    return { clientId, subject, clientLabel, subjectLabel, tenantId, scopes, expiresAtMs: (payload.exp as number) * 1_000 };
  }
}

/** A verified token as the cache keeps it. */
interface CachedToken {
  readonly principal: Principal;
  /** When its signature was checked, epoch ms. */
  readonly verifiedAtMs: number;
  /** When it must be verified again: the earlier of `exp` + tolerance and `verifiedAtMs` + `cacheTtlMs`. */
  readonly cachedUntilMs: number;
}

/**
 * Whether a cached token may be served at `nowMs`: before its `cachedUntilMs`, and not before its
 * check (a wall clock set back would otherwise stretch the entry by the step).
 */
function isFresh(cached: CachedToken, nowMs: number): boolean {
  return nowMs < cached.cachedUntilMs && nowMs >= cached.verifiedAtMs;
}

/** Throws `insufficient_scope` (403) unless the principal holds `scope`. */
export function requireScope(principal: Principal, scope: Scope): void {
  if (!principal.scopes.has(scope)) {
    throw new ProblemError('insufficient_scope', `this operation needs the ${scope} scope`, {
      headers: { 'www-authenticate': `Bearer error="insufficient_scope", scope="${scope}"` },
    });
  }
}

function unauthorized(detail: string, error: 'invalid_request' | 'invalid_token' | undefined): ProblemError {
  // RFC 6750: a request with no credentials gets a bare challenge, a bad one names the error.
  const challenge = error === undefined ? 'Bearer' : `Bearer error="${error}"`;
  return new ProblemError('unauthorized', detail, { headers: { 'www-authenticate': challenge } });
}

/** A fixed description per failure kind: never the library's message, which may quote claims. */
function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss':
        return 'the token was not issued by the expected issuer';
      case 'aud':
        return 'the token is not meant for this API (audience)';
      case 'nbf':
        return 'the token is not valid yet';
      case 'typ':
        return 'the token is not an access token (its typ header is missing or not the expected one)';
      default:
        return `the token's ${error.claim} claim is missing or invalid`;
    }
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is not valid';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm this API does not accept';
  return 'the token is not a valid JWT';
}
