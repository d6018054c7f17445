import { describe, expect, it } from 'vitest';
import { LedgerError, VersionConflictError } from '@ledgerkit/ledger-core';

describe('VersionConflictError', () => {
  it('names both versions when they differ, and says what the fence refused when the stream is at the expected version', () => {
    expect(new VersionConflictError(6, 7).message).toBe('expected ledger version 6, found 7');
    expect(new VersionConflictError(6).message).toBe('expected ledger version 6, found a different one');
    const atExpected = new VersionConflictError(6, 6);
    expect(atExpected.message).toMatch(/^the stream is at the expected ledger version 6, but the event there is not the one this batch was decided after/);
    expect(atExpected).toBeInstanceOf(LedgerError);
    expect(atExpected).toMatchObject({ code: 'version_conflict', retriable: true, expectedVersion: 6, actualVersion: 6 });
  });
});
