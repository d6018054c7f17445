/**
 * The hash chain is the audit trail: an event's canonical encoding, and so its hash, must never
 * change from one release to the next, or every ledger written before would fail verification.
 * The hashes below were computed by the release before the writer's encode fast paths (canonical
 * JSON without JSON.stringify for plain strings, the one-template envelope, the TransferPosted
 * data text), for every event type, with strings that need escapes (quotes, backslashes, control
 * characters, non-ASCII, a surrogate pair), back-dated effective times, envelopes with and without
 * correlation and causation ids and metadata, and a chain running through all of them.
 */
import { describe, expect, test } from 'vitest';
import { CurrencyRegistry, EventCodec, GENESIS_HASH, type LedgerEvent, type Metadata, type Posting, type StoredEvent } from '@ledgerkit/ledger-core';

const T0_MS = Date.parse('2025-03-01T12:00:00.000Z');
const posting = (accountId: string, side: 'debit' | 'credit', amount: bigint, currency = 'EUR'): Posting => ({ accountId, side, amount, currency });

const EVENTS: readonly (readonly [LedgerEvent, number])[] = [
  [{ type: 'AccountOpened', accountId: 'alice', currency: 'EUR', accountType: 'liability', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false }, metadata: { owner: 'Zoë "Z" \\ Ltd', a: 'x' } }, T0_MS],
  [{ type: 'TransferPosted', transferId: 't-1', postings: [posting('alice', 'debit', 1050n), posting('bob', 'credit', 1050n)], reference: undefined, reversalOf: undefined, metadata: {} }, T0_MS],
  [
    {
      type: 'TransferPosted',
      transferId: 't-2',
      postings: [posting('cash', 'debit', 123456789012345n, 'JPY'), posting('bob', 'credit', 123456789012345n, 'JPY')],
      reference: 'inv "42" \\ é 😀\n',
      reversalOf: 'orig-1',
      metadata: { z: '1', a: 'tab\there', ü: '\u0001' },
    },
    T0_MS - 86_400_000,
  ],
  [{ type: 'TransferPending', transferId: 'h-1', postings: [posting('alice', 'debit', 60n), posting('bob', 'credit', 60n)], timeoutMs: 60_000, reference: 'hold ref', metadata: {} }, T0_MS],
  [{ type: 'TransferPending', transferId: 'h-2', postings: [posting('alice', 'debit', 1n), posting('bob', 'credit', 1n)], timeoutMs: undefined, reference: undefined, metadata: { k: 'v' } }, T0_MS + 5],
  [{ type: 'PendingPosted', transferId: 'c-1', pendingId: 'h-1', postings: [posting('alice', 'debit', 45n), posting('bob', 'credit', 45n)], metadata: {} }, T0_MS],
  [{ type: 'PendingVoided', transferId: 'v-1', pendingId: 'h-2', metadata: { why: 'customer' } }, T0_MS],
  [{ type: 'PendingExpired', pendingId: 'h-3' }, T0_MS],
  [
    {
      type: 'TransferPosted',
      transferId: 'multi',
      postings: [posting('a', 'debit', 300n), posting('b', 'credit', 100n), posting('c', 'credit', 200n), posting('d', 'debit', 7n, 'USD'), posting('e', 'credit', 7n, 'USD')],
      reference: '',
      reversalOf: undefined,
      metadata: {},
    },
    T0_MS,
  ],
];

const ENVELOPES: readonly { readonly correlationId: string | null; readonly causationId: string | null; readonly metadata: Metadata }[] = [
  { correlationId: null, causationId: null, metadata: {} },
  { correlationId: 'corr-1', causationId: 'cause"x', metadata: { source: 'api', ü: 'x' } },
  { correlationId: 'c\\2', causationId: null, metadata: { nested: 'no "escape" \u001e' } },
];

/** Each envelope with each event, in this order, chained from the genesis hash. */
const GOLDEN_HASHES: readonly string[] = ["9976f99919adc45b51488a537a252fff3275bed866b8698b142805fb680fef25","debc321c5b6e0fb3dd71b8eea6e57d722c8d49b99af9e594f9a8a1d2ca3e30c7","c814c847abe16f0b33af90822cb20593fac2c79fc9d03583d069b8185ebfd256","4def8650e55c85c0805d76815b2db8ddf841ea40130e6e941b7dd4f124390145","12c9d4fa756bf73bcb2c042f204d9818f14bfcf27933a322b585ca4a2c4f6045","fff5ef0b3922e5f907bac44c465582f0f6801b7550321a4bacb9e98c3cac318f","0c56162f95e0e5671949ecbd1fbe1ad6e5f0c22f629cf2c3f7edc21fdd9cd24c","1aec4a84275307328b225183edd1354bd82518a0edf89c5fd5db210a1727c1e4","911f8d9201477c914ebebedb20de14a986e89f523765ddabff0617f2bc755986","ddbae1d6a029e0f3520257045b2d78de8b5b4a17d14b3a717d61b0fa0a0bc593","312a54103168290aaa41d65e43bd837375470000cb598f20f17807286f66ffe5","4f4394b25fb58a0bc27de752a554b43961f44418d1b780992aab184f067b5e09","0720aeb7df78aa65206cc450df233b8c3c6dc5a7565fe2e650625cfcc5ea7267","c049366f9fa18210e702c816bae9ff0679f7fb28e4f0c646e5c9b812fda479df","324a2bf4d443dc640300afea0f4fec0feff61f2640eb60658c0205a6ba52f293","cc8a4cec6792d5edc07b838febbc991b888c22e3e05eceb51e0b81d7b9642bbd","9b15b044565d975f72c138cb0843a3bf974320f1c0aedd95b01c28096ce8131b","c5861a8bf57b02242804a87a469fd8d8ddaa6773a003ab7a951ddd1e619e9dad","66d4f09cc9e5440e935953ff1b40659b34a29e7251508f1cea0a30f537c18527","2e0148921b322eaf8118c7eb4ec023615f3b05122bd45778a5840a9aec0994ee","3cf4d47007be1e1ded274ec7d33433d335f24a950038dc6eb57c3a904209dfe7","f93556d1fa632b1685e5ce076cac6b2b42eb0d96ba90ca4d07b678047a51109f","831210f6a51867a82a8f33b5486bf26df982246d37325d09a29cdc518af1a54b","96d8445d98ef69ebef42587c23a84e64c50b8ac7d7cf1d9043ce57e3f889ac6c","22b834d647b4ed84c76d474db44950d90f0c9cb452c9fbbd0690e672115d6016","53bdc9e755c0aa9b621abb0ab7c7ba1f2929e613ac81d85830b2f6b913843ec2","8634c15e20305e62824724cd2b14bdfc796332c96b3776184020df13e38471ea"];

describe('event hashes are stable across releases', () => {
  test('every event type, with and without escapes, hashes exactly as the earlier release did, and decodes and verifies from plain JSON', () => {
    const codec = new EventCodec({ currencies: new CurrencyRegistry() });
    const hashes: string[] = [];
    let previousHash = GENESIS_HASH;
    let version = 0;
    for (const envelope of ENVELOPES) {
      for (const [event, effectiveAtMs] of EVENTS) {
        version += 1;
        const stored = codec.encode(
          { event, effectiveAtMs },
          { eventId: `ev-${version}`, tenantId: 'tenant-a', ledgerId: 'ledger-1', ledgerVersion: version, recordedAtMs: T0_MS + version, ...envelope, previousHash },
        );
        hashes.push(stored.hash);
        // As a store gives it back: plain JSON, not the codec's own object.
        const plain = JSON.parse(JSON.stringify(stored)) as StoredEvent;
        expect(() => codec.verify(plain)).not.toThrow();
        expect(codec.decode(plain).event).toEqual(event);
        previousHash = stored.hash;
      }
    }
    expect(hashes).toEqual(GOLDEN_HASHES);
  });
});
