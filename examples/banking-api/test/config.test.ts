/**
 * Settings from `BANKING_API_*` environment variables: decimal digits in the setting's range only,
 * so that a typo fails at start-up instead of setting a limit the operator did not mean.
 */
import { describe, expect, it } from 'vitest';
import { resolveSettings, settingsFromEnv } from '../src/config.js';

/** One setting of each kind: bytes, a rate that may be 0, a count, milliseconds, the burst (its own range). */
const KINDS = [
  { variable: 'BANKING_API_BODY_LIMIT_BYTES', setting: 'bodyLimitBytes', range: '1024..1048576', good: '2048' },
  { variable: 'BANKING_API_RATE_LIMIT_PER_SECOND', setting: 'rateLimitPerSecond', range: '0..100000', good: '0' },
  { variable: 'BANKING_API_TENANTS_MAX', setting: 'tenantsMax', range: '1..1000', good: '12' },
  { variable: 'BANKING_API_IDEMPOTENCY_TTL_MS', setting: 'idempotencyTtlMs', range: '60000..2592000000', good: '2592000000' },
  { variable: 'BANKING_API_RATE_LIMIT_BURST', setting: 'rateLimitBurst', range: '1..100000', good: '7' },
] as const;

/** Forms `Number()` reads as a number (or as 0) that no one writes for a limit on purpose. */
const BAD_FORMS = ['0x10', '1e3', '', ' ', ' 12', '12 ', '+12', '-1', '12.0', '1_000', '0b11', 'Infinity', '99999999999999999999'];

describe('settingsFromEnv', () => {
  for (const kind of KINDS) {
    it(`reads ${kind.variable} as decimal digits only, in ${kind.range}`, () => {
      expect(settingsFromEnv({ [kind.variable]: kind.good })).toEqual({ [kind.setting]: Number(kind.good) });
      expect(resolveSettings(settingsFromEnv({ [kind.variable]: kind.good }))[kind.setting]).toBe(Number(kind.good));
      for (const bad of BAD_FORMS) {
        const message = `${kind.variable} must be an integer in ${kind.range}, got ${JSON.stringify(bad.slice(0, 40))}`;
        expect(() => settingsFromEnv({ [kind.variable]: bad }), JSON.stringify(bad)).toThrow(new RangeError(message));
      }
    });
  }

  it('refuses a value outside the range with the variable and the range', () => {
    expect(() => settingsFromEnv({ BANKING_API_TENANTS_MAX: '0' })).toThrow(new RangeError('BANKING_API_TENANTS_MAX must be an integer in 1..1000, got "0"'));
    expect(() => settingsFromEnv({ BANKING_API_TENANTS_MAX: '1001' })).toThrow(new RangeError('BANKING_API_TENANTS_MAX must be an integer in 1..1000, got "1001"'));
    expect(() => settingsFromEnv({ BANKING_API_RATE_LIMIT_BURST: '0' })).toThrow(/BANKING_API_RATE_LIMIT_BURST must be an integer in 1\.\.100000/);
  });

  it('reads BANKING_API_TRUSTED_PROXIES as comma-separated addresses or CIDR ranges, refusing anything else at start-up', () => {
    expect(settingsFromEnv({ BANKING_API_TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1,fd00::/8' })).toEqual({ trustedProxies: ['10.0.0.0/8', '127.0.0.1', 'fd00::/8'] });
    expect(resolveSettings(settingsFromEnv({ BANKING_API_TRUSTED_PROXIES: '10.0.0.0/8, ::1' })).trustedProxies).toEqual(['10.0.0.0/8', '::1']);
    expect(resolveSettings({}).trustedProxies).toEqual([]);
    for (const bad of ['true', 'loopback', '10.0.0.0/33', '::1/129', '1.2.3.4/8/8', '', '10.0.0.0/', '999.1.1.1']) {
      expect(() => resolveSettings(settingsFromEnv({ BANKING_API_TRUSTED_PROXIES: `127.0.0.1,${bad}` })), bad).toThrow(RangeError);
    }
    expect(() => resolveSettings({ trustedProxies: Array.from({ length: 65 }, (_, n) => `10.0.0.${n}`) })).toThrow(/at most 64/);
  });

  it('reads BANKING_API_TOKEN_CACHE_TTL_MS in 0..600000 (jose\'s key-set refresh age), 60 s by default', () => {
    expect(resolveSettings({}).tokenCacheTtlMs).toBe(60_000);
    expect(settingsFromEnv({ BANKING_API_TOKEN_CACHE_TTL_MS: '600000' })).toEqual({ tokenCacheTtlMs: 600_000 });
    expect(resolveSettings(settingsFromEnv({ BANKING_API_TOKEN_CACHE_TTL_MS: '0' })).tokenCacheTtlMs).toBe(0);
    for (const bad of ['600001', '-1', '1e4', '']) {
      expect(() => settingsFromEnv({ BANKING_API_TOKEN_CACHE_TTL_MS: bad }), bad).toThrow(new RangeError(`BANKING_API_TOKEN_CACHE_TTL_MS must be an integer in 0..600000, got ${JSON.stringify(bad)}`));
    }
    expect(() => resolveSettings({ tokenCacheTtlMs: 600_001 })).toThrow(/tokenCacheTtlMs must be an integer in 0\.\.600000/);
  });

  it('leaves unset variables at their defaults and reads the default ledger as text', () => {
    expect(settingsFromEnv({})).toEqual({});
    expect(settingsFromEnv({ BANKING_API_DEFAULT_LEDGER_ID: 'books', BANKING_API_SHUTDOWN_TIMEOUT_MS: '00500' })).toEqual({ defaultLedgerId: 'books', shutdownTimeoutMs: 500 });
  });
});
