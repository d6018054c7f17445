/**
 * The token command's arguments, checked before anything is signed: a development token the API
 * would refuse (a tenant id it does not accept, a `sub` or `client_id` too long or not storable
 * text, an unknown scope, a lifetime out of range) is an error naming the argument, not a token
 * that answers 401 later.
 */
import { parseArgs } from 'node:util';
import { isStorableText, STORABLE_TEXT_MESSAGE } from '@ledgerkit/ledger-core';
import { isTenantId, TENANT_ID_LENGTH_MAX } from '@ledgerkit/tenant-rls';
import { CLIENT_ID_LENGTH_MAX, SCOPES, type Scope } from './auth.js';
import { DEFAULT_AUDIENCE, DEFAULT_DEV_KEY_FILE, type MintTokenOptions } from './dev-tokens.js';

/** Longest token lifetime the command mints, seconds (30 days). */
export const TOKEN_TTL_SECONDS_MAX = 30 * 86_400;

/** What the token command signs, and with which key file. */
export interface TokenArgs {
  readonly mint: MintTokenOptions;
  readonly keyFile: string;
}

/**
 * Parses and checks the token command's arguments (`--tenant`, `--scope`, `--subject`, `--client`,
 * `--ttl`, `--audience`, `--key-file`; a bare `--` is ignored). Throws an `Error` naming the
 * argument on anything the API would refuse or the command does not know.
 */
export function parseTokenArgs(argv: readonly string[]): TokenArgs {
  const { values } = parseArgs({
    args: argv.filter((arg) => arg !== '--'),
    options: {
      tenant: { type: 'string', default: 'demo-bank' },
      scope: { type: 'string', default: SCOPES.join(' ') },
      subject: { type: 'string', default: 'dev-client' },
      client: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
      audience: { type: 'string', default: DEFAULT_AUDIENCE },
      'key-file': { type: 'string', default: DEFAULT_DEV_KEY_FILE },
    },
    strict: true,
    allowPositionals: false,
  });
  const tenantId = values.tenant ?? 'demo-bank';
  if (!isTenantId(tenantId)) {
    throw new Error(`--tenant must be 1..${TENANT_ID_LENGTH_MAX} characters of letters, digits and . _ : - (starting with a letter or digit)`);
  }
  const scopes = (values.scope ?? '').split(/[\s,]+/).filter((scope) => scope !== '');
  const unknown = scopes.filter((scope) => !(SCOPES as readonly string[]).includes(scope));
  if (unknown.length > 0) throw new Error(`unknown scope(s) ${unknown.join(', ')}; known: ${SCOPES.join(', ')}`);
  const subject = claimText('--subject', values.subject ?? 'dev-client');
  const clientId = values.client === undefined ? undefined : claimText('--client', values.client);
  // The verifier refuses a client_id with a control character (see SUBJECT_CLIENT_ID_PREFIX).
  if (clientId !== undefined && /[\u0000-\u001f\u007f]/.test(clientId)) throw new Error('--client must hold no control character (U+0000..U+001F, U+007F)');
  const ttlText = values.ttl ?? '3600';
  const ttlSeconds = /^[0-9]{1,8}$/.test(ttlText) ? Number(ttlText) : Number.NaN;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > TOKEN_TTL_SECONDS_MAX) {
    throw new Error(`--ttl must be a whole number of seconds in 1..${TOKEN_TTL_SECONDS_MAX}`);
  }
  const audience = claimText('--audience', values.audience ?? DEFAULT_AUDIENCE);
  const keyFile = values['key-file'] ?? DEFAULT_DEV_KEY_FILE;
  if (keyFile === '') throw new Error('--key-file must be a path');
  return {
    mint: { tenantId, scopes: scopes as Scope[], subject, ...(clientId === undefined ? {} : { clientId }), ttlSeconds, audience },
    keyFile,
  };
}

/** A `sub`, `client_id` or `aud` as the API's verifier accepts it: 1..256 characters of storable text. */
function claimText(flag: string, value: string): string {
  if (value === '' || value.length > CLIENT_ID_LENGTH_MAX || !isStorableText(value)) {
    throw new Error(`${flag} must be 1..${CLIENT_ID_LENGTH_MAX} characters; it ${STORABLE_TEXT_MESSAGE}`);
  }
  return value;
}
