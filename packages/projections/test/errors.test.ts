import { describe, expect, it } from 'vitest';
import { environmentSqlstateOf, isTransientError } from '../src/errors.js';

// How the runner reads an error: retry the batch later, stop, or blame (and maybe skip) the event.

function pgError(code: string, cause?: unknown): Error {
  return Object.assign(new Error(`SQLSTATE ${code}`, cause === undefined ? undefined : { cause }), { code });
}

describe('isTransientError: the database or the network failing, retried later', () => {
  it('connection, serialization, resource, shutdown and lock-timeout codes and socket errors are transient, also as a cause', () => {
    for (const code of ['08006', '40001', '40P01', '53300', '57P01', '57014', '58030', '55P03', 'ECONNRESET', 'ECONNREFUSED']) expect(isTransientError(pgError(code)), code).toBe(true);
    expect(isTransientError(new Error('wrapped', { cause: pgError('57P01') }))).toBe(true);
    expect(isTransientError(new Error('Connection terminated unexpectedly'))).toBe(true);
  });

  it("a store's StoreUnavailableError is transient, also one of another copy of ledger-core (same code, another class)", () => {
    class StoreUnavailableError extends Error {
      readonly code = 'store_unavailable';
    }
    expect(isTransientError(new StoreUnavailableError('the store could not be reached'))).toBe(true);
    expect(isTransientError(new Error('batch failed', { cause: new StoreUnavailableError('down') }))).toBe(true);
  });

  it('what the event or the setup causes is not', () => {
    for (const code of ['23505', '22P02', '42P01', '42501', '25006', '55000']) expect(isTransientError(pgError(code)), code).toBe(false);
    expect(isTransientError('a string')).toBe(false);
  });
});

describe("environmentSqlstateOf: the database's setup at fault, never a reason to skip an event", () => {
  it('a missing table, column, grant or schema, a read-only standby, a refused login, a lacking feature, also as a cause', () => {
    for (const code of ['42P01', '42703', '42501', '3F000', '25006', '28000', '55000', '0A000']) expect(environmentSqlstateOf(pgError(code)), code).toBe(code);
    expect(environmentSqlstateOf(new Error('handler failed', { cause: pgError('42501') }))).toBe('42501');
  });

  it("data and constraint errors are the event's; a statement after a failed one follows that failure", () => {
    for (const code of ['23505', '22P02', '22003', '25P02', 'P0001']) expect(environmentSqlstateOf(pgError(code)), code).toBeUndefined();
    expect(environmentSqlstateOf(new Error('no code'))).toBeUndefined();
  });
});
