import { describe, expect, it } from 'vitest';
import { assertTenantId, InvalidTenantIdError, isTenantId, quoteLiteral, quoteName, TENANT_ID_LENGTH_MAX, withTenant, type ClientPool } from '@ledgerkit/tenant-rls';

const injections = [
  "acme'; DROP TABLE ledgerkit.events; --",
  "acme' OR '1'='1",
  'acme"',
  'acme\\',
  'acme;',
  'acme bank',
  'acme\nother',
  'acme\0',
  '',
  '-acme',
  '.acme',
  'ācme',
  'a'.repeat(TENANT_ID_LENGTH_MAX + 1),
];

describe('tenant ids', () => {
  it('ids of 1-128 letters, digits and . _ : - that start with a letter or digit are accepted', () => {
    for (const id of ['a', 'acme', 'ACME-01', 'tenant.eu-west:42_x', '9', 'a'.repeat(TENANT_ID_LENGTH_MAX)]) {
      expect(isTenantId(id), id).toBe(true);
      expect(assertTenantId(id)).toBe(id);
    }
  });

  it('quotes, semicolons, spaces, control characters, non-ASCII, empty and over-long ids are rejected', () => {
    for (const id of injections) {
      expect(isTenantId(id), JSON.stringify(id)).toBe(false);
      expect(() => assertTenantId(id)).toThrow(InvalidTenantIdError);
    }
  });

  it('non-strings are rejected', () => {
    for (const value of [undefined, null, 42, {}, ['acme']]) expect(isTenantId(value)).toBe(false);
  });

  it('withTenant rejects an injection attempt before it takes a connection', async () => {
    let connects = 0;
    const pool: ClientPool = {
      connect: async () => {
        connects += 1;
        throw new Error('must not connect');
      },
    };
    for (const id of injections) {
      await expect(withTenant(pool, id, async () => 'ran')).rejects.toBeInstanceOf(InvalidTenantIdError);
    }
    expect(connects).toBe(0);
  });
});

describe('SQL names and literals', () => {
  it('names must be lower-case identifiers of at most 63 characters and come back double-quoted', () => {
    expect(quoteName('ledgerkit_app', 'role')).toBe('"ledgerkit_app"');
    for (const bad of ['', 'App', 'a-b', 'a"b', 'a b', '1abc', 'x'.repeat(64), 'app; DROP ROLE postgres']) {
      expect(() => quoteName(bad, 'role'), bad).toThrow(TypeError);
    }
  });

  it('names that are not strings are refused, not coerced (undefined would become the role "undefined")', () => {
    for (const bad of [undefined, null, ['ok'], 42, { toString: () => 'ok' }]) {
      expect(() => quoteName(bad as unknown as string, 'role'), String(bad)).toThrow(TypeError);
    }
  });

  it('literals double their single quotes and refuse NUL', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(() => quoteLiteral('a\0b')).toThrow(TypeError);
    for (const bad of [undefined, null, 42, ['x']]) expect(() => quoteLiteral(bad as unknown as string), String(bad)).toThrow(/must be a string/);
  });
});
