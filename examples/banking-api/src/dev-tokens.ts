/**
 * Development tokens: an Ed25519 key pair kept in a git-ignored file, created on first use, and
 * a minting function. For local runs, the demo, the tests and the load test only: production
 * verifies tokens from a real authorization server (see `main.ts`: a public key or a JWKS URL).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { Scope } from './auth.js';

/** Issuer of development tokens. */
export const DEV_ISSUER = 'urn:ledgerkit:banking-api:dev-issuer';
/** Audience of the API unless configured otherwise. */
export const DEFAULT_AUDIENCE = 'banking-api';
/** The signature algorithm of development tokens. */
export const DEV_ALGORITHM = 'EdDSA';

/** Where the development key pair lives unless told otherwise: `examples/banking-api/.dev-keys/`. */
export const DEFAULT_DEV_KEY_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '.dev-keys', 'jwt-ed25519.json');

/** A development signing key pair. */
export interface DevKeys {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Key id, put in every token's header. */
  readonly kid: string;
}

interface KeyFile {
  readonly kid: string;
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
}

/** Generates a fresh key pair in memory (tests). */
export async function generateDevKeys(): Promise<DevKeys> {
  const { privateKey, publicKey } = await generateKeyPair(DEV_ALGORITHM, { extractable: true, crv: 'Ed25519' });
  return { privateKey, publicKey, kid: `dev-${Date.now().toString(36)}` };
}

/**
 * Loads the development key pair from `file`, creating it (mode 0600, in a git-ignored folder)
 * if it does not exist. Two processes racing to create it end up with the same pair.
 */
export async function loadOrCreateDevKeys(file: string = DEFAULT_DEV_KEY_FILE): Promise<DevKeys> {
  const existing = await readKeyFile(file);
  if (existing !== undefined) return existing;
  const keys = await generateDevKeys();
  const content: KeyFile = { kid: keys.kid, privateJwk: await exportJWK(keys.privateKey), publicJwk: await exportJWK(keys.publicKey) };
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    return keys;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const winner = await readKeyFile(file);
    if (winner === undefined) throw error;
    return winner;
  }
}

async function readKeyFile(file: string): Promise<DevKeys | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = JSON.parse(text) as KeyFile;
  const privateKey = (await importJWK(parsed.privateJwk, DEV_ALGORITHM)) as CryptoKey;
  const publicKey = (await importJWK(parsed.publicJwk, DEV_ALGORITHM)) as CryptoKey;
  return { privateKey, publicKey, kid: parsed.kid };
}

/** What a development token says. */
export interface MintTokenOptions {
  readonly tenantId: string;
  readonly scopes: readonly Scope[];
  /** `sub`; default `dev-client`. */
  readonly subject?: string;
  /** `client_id`; default the subject. */
  readonly clientId?: string;
  /** Lifetime in seconds; default 3,600. */
  readonly ttlSeconds?: number;
  readonly issuer?: string;
  readonly audience?: string;
  /** Issued-at, epoch seconds; default now. */
  readonly issuedAtSeconds?: number;
  /** The `typ` header; default `at+jwt` (RFC 9068 access token); `null` leaves it out (to test the verifier's check). */
  readonly tokenType?: string | null;
}

/** Signs a development access token (RFC 9068 style claims plus `tenant_id`). */
export async function mintToken(keys: DevKeys, options: MintTokenOptions): Promise<string> {
  const issuedAt = options.issuedAtSeconds ?? Math.floor(Date.now() / 1_000);
  const subject = options.subject ?? 'dev-client';
  const tokenType = options.tokenType === undefined ? 'at+jwt' : options.tokenType;
  return new SignJWT({ tenant_id: options.tenantId, scope: options.scopes.join(' '), client_id: options.clientId ?? subject })
    .setProtectedHeader({ alg: DEV_ALGORITHM, kid: keys.kid, ...(tokenType === null ? {} : { typ: tokenType }) })
    .setIssuer(options.issuer ?? DEV_ISSUER)
    .setAudience(options.audience ?? DEFAULT_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + (options.ttlSeconds ?? 3_600))
    .sign(keys.privateKey);
}
