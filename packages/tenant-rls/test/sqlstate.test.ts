import { describe, expect, it } from 'vitest';
import { isTransientSqlstate } from '@ledgerkit/tenant-rls';

describe('isTransientSqlstate', () => {
  it('says "try again" for connection, rollback, resource, operator and system errors, and for a lock not granted in time', () => {
    for (const code of ['08006', '08P01', '40001', '40P01', '53100', '53300', '57014', '57P01', '58030', '55P03']) expect(isTransientSqlstate(code), code).toBe(true);
  });

  it('says no for constraint, data, permission and set-up errors, the rest of class 55 included, and for anything that is not a SQLSTATE', () => {
    for (const code of ['23505', '23514', '22P02', '42501', '42P01', '25006', '28000', '0A000', '55000', '55006', 'P0001', 'XX000']) expect(isTransientSqlstate(code), code).toBe(false);
    for (const code of ['ECONNRESET', '40', '400010', '40p01', '']) expect(isTransientSqlstate(code), code).toBe(false);
  });
});
