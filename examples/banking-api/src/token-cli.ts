/**
 * `pnpm --silent --filter banking-api token [-- options]`: prints a development access token,
 * signed with the key pair in `.dev-keys/` (created on first use). Only servers that trust the
 * development key (`pnpm demo:api`, or `start` with `BANKING_API_DEV_TOKENS=1`) accept it.
 * Arguments the API would refuse are refused here first (see `token-args.ts`).
 *
 *   --tenant <id>        tenant claim (default demo-bank)
 *   --scope "<a b>"      scopes (default: all four)
 *   --subject <sub>      subject (default dev-client)
 *   --client <id>        client_id (default: the subject)
 *   --ttl <seconds>      lifetime, 1..2592000 (default 3600)
 *   --audience <aud>     audience (default banking-api)
 *   --key-file <path>    key pair file (default examples/banking-api/.dev-keys/jwt-ed25519.json)
 */
import { loadOrCreateDevKeys, mintToken } from './dev-tokens.js';
import { parseTokenArgs } from './token-args.js';

async function main(): Promise<void> {
  const args = parseTokenArgs(process.argv.slice(2));
  const keys = await loadOrCreateDevKeys(args.keyFile);
  process.stdout.write(`${await mintToken(keys, args.mint)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`token: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
