import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, LimitExceededError, SNAPSHOT_STATE_BYTES_MAX, snapshotStateJson, type Snapshot } from '@ledgerkit/ledger-core';

const snapshot = (state: Snapshot['state']): Snapshot => ({ tenantId: 't', ledgerId: 'l', ledgerVersion: 1, hash: GENESIS_HASH, schemaVersion: 1, state });

describe('snapshotStateJson', () => {
  it('refuses a state one byte over SNAPSHOT_STATE_BYTES_MAX bytes of JSON with LimitExceededError', () => {
    // `{"s":"…"}` is 8 bytes around the string.
    expect(() => snapshotStateJson(snapshot({ s: 'x'.repeat(SNAPSHOT_STATE_BYTES_MAX - 7) }))).toThrow(LimitExceededError);
  });

  it('counts UTF-8 bytes, not characters: at the limit in bytes it is taken, one character (3 bytes) more is refused', () => {
    // 8 bytes around the string, then 3 bytes a character: (limit - 8) / 3 of them is the limit exactly, as 2^27 - 8 is a multiple of 3.
    const euros = (SNAPSHOT_STATE_BYTES_MAX - 8) / 3;
    expect(Number.isInteger(euros)).toBe(true);
    expect(Buffer.byteLength(snapshotStateJson(snapshot({ s: '€'.repeat(euros) })))).toBe(SNAPSHOT_STATE_BYTES_MAX);
    expect(() => snapshotStateJson(snapshot({ s: '€'.repeat(euros + 1) }))).toThrow(LimitExceededError);
  });
});
