import { describe, expect, it } from 'vitest';
import { TokenVerifier } from '../src/auth.js';
import { DEFAULT_DEV_KEY_FILE, DEV_ISSUER, generateDevKeys, mintToken } from '../src/dev-tokens.js';
import { parseTokenArgs, TOKEN_TTL_SECONDS_MAX } from '../src/token-args.js';

describe('the token command\'s arguments', () => {
  it('defaults to every scope for demo-bank, and a token minted from them verifies as the API reads it', async () => {
    const args = parseTokenArgs(['--', '--tenant', 'acme.eu-1', '--scope', 'accounts:read,transfers:write', '--subject', 'ops@example.com', '--client', 'partner-7', '--ttl', '600']);
    expect(args.keyFile).toBe(DEFAULT_DEV_KEY_FILE);
    expect(args.mint).toEqual({ tenantId: 'acme.eu-1', scopes: ['accounts:read', 'transfers:write'], subject: 'ops@example.com', clientId: 'partner-7', ttlSeconds: 600, audience: 'banking-api' });
    const keys = await generateDevKeys();
    const verifier = new TokenVerifier({ issuer: DEV_ISSUER, audience: 'banking-api', key: keys.publicKey });
    const principal = await verifier.authenticate(`Bearer ${await mintToken(keys, args.mint)}`);
    expect(principal.tenantId).toBe('acme.eu-1');
    expect(principal.clientId).toBe('partner-7');
    expect([...principal.scopes].sort()).toEqual(['accounts:read', 'transfers:write']);
    expect(parseTokenArgs([]).mint).toEqual({ tenantId: 'demo-bank', scopes: ['accounts:read', 'accounts:write', 'transfers:write', 'audit:read'], subject: 'dev-client', ttlSeconds: 3_600, audience: 'banking-api' });
  });

  it('takes the longest subject and client the API accepts, and a lifetime at its bound', () => {
    const longest = 'c'.repeat(256);
    const args = parseTokenArgs(['--subject', longest, '--client', longest, '--ttl', String(TOKEN_TTL_SECONDS_MAX)]);
    expect(args.mint.subject).toBe(longest);
    expect(args.mint.clientId).toBe(longest);
    expect(args.mint.ttlSeconds).toBe(TOKEN_TTL_SECONDS_MAX);
  });

  it.each([
    [['--tenant', 'bad tenant'], /--tenant must be/],
    [['--tenant', ''], /--tenant must be/],
    [['--tenant', 't'.repeat(129)], /--tenant must be/],
    [['--subject', 's'.repeat(257)], /--subject must be 1\.\.256/],
    [['--subject', ''], /--subject must be/],
    [['--subject', 'a\u0000b'], /--subject must be .*NUL/],
    [['--client', ''], /--client must be/],
    [['--client', 'x'.repeat(257)], /--client must be/],
    [['--client', '\ud800'], /--client must be/],
    [['--client', 'app\u001fone'], /--client must hold no control character/],
    [['--client', 'tab\there'], /--client must hold no control character/],
    [['--audience', ''], /--audience must be/],
    [['--scope', 'accounts:read money:print'], /unknown scope\(s\) money:print/],
    [['--ttl', '0'], /--ttl must be/],
    [['--ttl', String(TOKEN_TTL_SECONDS_MAX + 1)], /--ttl must be/],
    [['--ttl', '1e3'], /--ttl must be/],
    [['--ttl=-5'], /--ttl must be/],
    [['--key-file', ''], /--key-file must be a path/],
    [['--tennant', 'x'], /Unknown option '--tennant'/],
    [['stray'], /Unexpected argument 'stray'/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseTokenArgs(argv)).toThrow(message);
  });
});
