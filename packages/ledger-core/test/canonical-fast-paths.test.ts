import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { canonicalEncodingWithData, envelopeEncoding, isPlainJsonText, jsonString } from '../src/events/canonical.js';
import { canonicalJson, CurrencyRegistry, dataJsonOf, EventCodec, GENESIS_HASH, type EventDraft, type JsonObject, type StoredEvent } from '@ledgerkit/ledger-core';

// Strings JSON must escape, or that JSON.stringify writes with care: quotes, backslashes, every
// control character, NUL, U+001E/U+001F, lone and paired surrogates, non-ASCII.
const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 10 }),
  fc.string({ unit: fc.constantFrom('"', '\\', '\u0000', '\n', '\u001e', '\u001f', '\u007f', '\u2028', '\ud800', '\udfff', '😀', 'é', 'a', '/'), maxLength: 8 }),
  fc.string({ maxLength: 10 }),
);

describe('jsonString', () => {
  test('property: is JSON.stringify of any string', () => {
    fc.assert(
      fc.property(nasty, (text) => {
        expect(jsonString(text)).toBe(JSON.stringify(text));
        // Both ways: plain exactly where JSON.stringify writes the text unchanged, save a paired
        // surrogate (written unchanged, but left to JSON.stringify on purpose). One way only would
        // pass a test that called nothing plain and never took the fast path.
        expect(isPlainJsonText(text), JSON.stringify(text)).toBe(JSON.stringify(text) === `"${text}"` && !/[\ud800-\udfff]/.test(text));
      }),
      { numRuns: 5_000 },
    );
  });

  test('every code unit: plain exactly where JSON.stringify writes it unchanged', () => {
    for (let code = 0; code <= 0xffff; code += 1) {
      const text = String.fromCharCode(code);
      expect(jsonString(text)).toBe(JSON.stringify(text));
      // Both ways (a lone surrogate is escaped, so no exception here): one way only would pass a
      // test that called nothing plain.
      expect(isPlainJsonText(text), `U+${code.toString(16).padStart(4, '0')}`).toBe(JSON.stringify(text) === `"${text}"`);
    }
  });
});

describe('canonicalEncodingWithData (the one-template envelope)', () => {
  const maybe = <T>(arbitrary: fc.Arbitrary<T>) => fc.oneof(arbitrary, fc.constant(undefined), fc.constant(null));
  const envelope = fc.record({
    eventId: fc.oneof(fc.uuid(), nasty),
    tenantId: nasty,
    ledgerId: nasty,
    ledgerVersion: fc.oneof(fc.maxSafeInteger(), fc.constant(1.5), fc.constant(Number.MAX_SAFE_INTEGER + 1)),
    type: fc.oneof(fc.constantFrom('TransferPosted', 'AccountOpened'), nasty),
    schemaVersion: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constant(undefined)),
    recordedAt: fc.oneof(fc.constant('2025-03-01T12:00:00.000Z'), nasty),
    effectiveAt: fc.oneof(fc.constant('2025-03-01T12:00:00.000Z'), nasty),
    correlationId: maybe(nasty),
    causationId: maybe(nasty),
    metadata: fc.oneof(fc.dictionary(nasty, nasty, { maxKeys: 3 }), fc.constant(undefined), fc.constant(null)),
    previousHash: fc.constant(GENESIS_HASH),
  });

  test('property: the same bytes (or the same error) as the generic writer and as canonicalJson of the envelope', () => {
    fc.assert(
      fc.property(envelope, fc.dictionary(nasty, nasty, { maxKeys: 2 }), (fields, data) => {
        const event = { ...fields, data } as unknown as Omit<StoredEvent, 'hash'>;
        const dataJson = canonicalJson(data);
        let expected: string | Error;
        try {
          expected = envelopeEncoding(event, dataJson);
        } catch (error) {
          expected = error as Error;
        }
        if (expected instanceof Error) {
          expect(() => canonicalEncodingWithData(event, dataJson)).toThrow(expected.message);
          return;
        }
        expect(canonicalEncodingWithData(event, dataJson)).toBe(expected);
        const { previousHash: _previousHash, ...withoutHashes } = fields;
        expect(expected).toBe(canonicalJson({ ...withoutHashes, data } as unknown as JsonObject));
      }),
      { numRuns: 3_000 },
    );
  });
});

describe('EventCodec.encode of a TransferPosted (its data text written from the known shape)', () => {
  const codec = new EventCodec({ currencies: new CurrencyRegistry() });
  const posting = fc.record({ accountId: nasty, side: fc.constantFrom('debit' as const, 'credit' as const), amount: fc.bigInt({ min: 1n, max: 10n ** 12n }), currency: fc.constantFrom('EUR', 'JPY') });
  const draft = fc.record(
    {
      transferId: nasty,
      postings: fc.array(posting, { minLength: 1, maxLength: 4 }),
      metadata: fc.dictionary(nasty, nasty, { maxKeys: 3 }),
      reference: nasty,
      reversalOf: nasty,
    },
    { requiredKeys: ['transferId', 'postings', 'metadata'] },
  );

  test('property: the data text is canonicalJson of the data, and the hash that of the generic encoding', () => {
    fc.assert(
      fc.property(draft, nasty, fc.option(nasty, { nil: null }), (fields, eventId, correlationId) => {
        const encoded = codec.encode({ event: { type: 'TransferPosted', ...fields }, effectiveAtMs: 1_700_000_000_000 } as EventDraft, {
          eventId,
          tenantId: 'tenant',
          ledgerId: 'ledger',
          ledgerVersion: 1,
          recordedAtMs: 1_700_000_000_001,
          correlationId,
          causationId: null,
          metadata: { actor: eventId },
          previousHash: GENESIS_HASH,
        });
        expect(dataJsonOf(encoded)).toBe(canonicalJson(encoded.data));
        const { hash: _hash, previousHash: _previousHash, ...envelope } = encoded;
        const expected = createHash('sha256').update(Buffer.from(GENESIS_HASH, 'hex')).update(canonicalJson(envelope as unknown as JsonObject)).digest('hex');
        expect(encoded.hash).toBe(expected);
      }),
      { numRuns: 2_000 },
    );
  });

  test('a reference inherited from a prototype is not part of the data text, as canonical JSON reads own keys', () => {
    const proto = Object.prototype as unknown as Record<string, unknown>;
    proto['reference'] = 'from-prototype';
    try {
      const encoded = codec.encode({ event: { type: 'TransferPosted', transferId: 't', postings: [{ accountId: 'a', side: 'debit', amount: 1n, currency: 'EUR' }, { accountId: 'b', side: 'credit', amount: 1n, currency: 'EUR' }], metadata: {} }, effectiveAtMs: 0 } as unknown as EventDraft, {
        eventId: 'e', tenantId: 't', ledgerId: 'l', ledgerVersion: 1, recordedAtMs: 0, correlationId: null, causationId: null, metadata: {}, previousHash: GENESIS_HASH,
      });
      expect(dataJsonOf(encoded)).toBe(canonicalJson(encoded.data));
    } finally {
      delete proto['reference'];
    }
  });
});
