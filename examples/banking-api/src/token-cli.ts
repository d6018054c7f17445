/**
 * `pnpm --silent --filter banking-api token [-- options]`: prints a development access token,
 * signed with the key pair in `.dev-keys/` (created on first use). Only servers that trust the
 * development key (`pnpm demo:api`, or `start` with `BANKING_API_DEV_TOKENS=1`) accept it.
 *
 *   --tenant <id>        tenant claim (default demo-bank)
 *   --scope "<a b>"      scopes (default: all four)
 *   --subject <sub>      subject (default dev-client)
 *   --client <id>        client_id (default: the subject)
 *   --ttl <seconds>      lifetime (default 3600)
 *   --audience <aud>     audience (default banking-api)
 *   --key-file <path>    key pair file (default examples/banking-api/.dev-keys/jwt-ed25519.json)
 */
import { parseArgs } from 'node:util';
import { SCOPES, type Scope } from './auth.js';
import { DEFAULT_AUDIENCE, DEFAULT_DEV_KEY_FILE, loadOrCreateDevKeys, mintToken } from './dev-tokens.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== '--'),
    options: {
      tenant: { type: 'string', default: 'demo-bank' },
      scope: { type: 'string', default: SCOPES.join(' ') },
      subject: { type: 'string', default: 'dev-client' },
      client: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
      audience: { type: 'string', default: DEFAULT_AUDIENCE },
      'key-file': { type: 'string', default: DEFAULT_DEV_KEY_FILE },
    },
  });
  const scopes = (values.scope ?? '').split(/[\s,]+/).filter((scope) => scope !== '');
  const unknown = scopes.filter((scope) => !(SCOPES as readonly string[]).includes(scope));
  if (unknown.length > 0) throw new Error(`unknown scope(s) ${unknown.join(', ')}; known: ${SCOPES.join(', ')}`);
  const ttlSeconds = Number(values.ttl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 30 * 86_400) throw new Error('--ttl must be 1..2592000 seconds');
  const keys = await loadOrCreateDevKeys(values['key-file']);
  const token = await mintToken(keys, {
    tenantId: values.tenant ?? 'demo-bank',
    scopes: scopes as Scope[],
    subject: values.subject ?? 'dev-client',
    ...(values.client === undefined ? {} : { clientId: values.client }),
    ttlSeconds,
    audience: values.audience ?? DEFAULT_AUDIENCE,
  });
  process.stdout.write(`${token}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`token: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
