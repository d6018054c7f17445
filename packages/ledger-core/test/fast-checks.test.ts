import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isPlainEnvelope, isPlainTransferPostedData } from '../src/events/fast-checks.js';
import { eventDataSchemas, storedEventSchema } from '../src/events/schemas.js';
import { CorruptEventError, CurrencyRegistry, EventCodec, GENESIS_HASH, type StoredEvent } from '@ledgerkit/ledger-core';

const codec = new EventCodec({ currencies: new CurrencyRegistry() });
const T0 = Date.parse('2025-03-01T12:00:00.000Z');

/** A stored event as a database row arrives: a plain object, not the encoder's own instance. */
function storedRow(version: number, metadata: Record<string, string> = {}): Record<string, unknown> {
  const event = codec.encode(
    {
      event: {
        type: 'TransferPosted',
        transferId: `t-${version}`,
        postings: [
          { accountId: 'cash', side: 'debit', amount: 1_250n, currency: 'EUR' },
          { accountId: 'alice', side: 'credit', amount: 1_250n, currency: 'EUR' },
        ],
        reference: undefined,
        reversalOf: undefined,
        metadata: {},
      },
      effectiveAtMs: T0 + version,
    },
    { eventId: `evt-${version}`, tenantId: 'acme', ledgerId: 'main', ledgerVersion: version, recordedAtMs: T0 + version, correlationId: null, causationId: null, metadata, previousHash: GENESIS_HASH },
  );
  return JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
}

const KEYS = Object.keys(storedRow(1));

/** One change to an envelope: a key removed, added or replaced by any value, or an edge value. */
const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }),
  fc.record({ kind: fc.constant('add' as const), key: fc.string({ maxLength: 12 }), value: fc.anything() }),
  fc.record({ kind: fc.constant('set' as const), key: fc.constantFrom(...KEYS), value: fc.anything() }),
  fc.record({
    kind: fc.constant('set' as const),
    key: fc.constantFrom(...KEYS),
    value: fc.constantFrom<unknown>(
      '',
      'x'.repeat(64),
      'x'.repeat(65),
      'x'.repeat(128),
      'x'.repeat(129),
      '0'.repeat(64),
      'A'.repeat(64),
      '2025-02-30T12:00:00.000Z',
      '2025-03-01T12:00:00Z',
      '9999-12-31T23:59:59.999Z',
      '-acme',
      0,
      -1,
      1.5,
      2 ** 53,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      null,
      undefined,
      [],
      {},
      { a: 'b' },
      Object.create(null) as object,
      new Date(T0),
    ),
  }),
  fc.record({ kind: fc.constant('prototype' as const), value: fc.constantFrom<object | null>(null, {}, Object.prototype, Array.prototype) }),
);

describe('isPlainEnvelope (the decoder skips the envelope schema when it says yes)', () => {
  test('says yes to the envelopes the store returns, so the fast path is taken', () => {
    for (let version = 1; version <= 20; version += 1) expect(isPlainEnvelope(storedRow(version))).toBe(true);
  });

  test('leaves envelopes with metadata to the schema (the answer is the same, only slower)', () => {
    const row = storedRow(1, { actor: 'tests' });
    expect(isPlainEnvelope(row)).toBe(false);
    expect(storedEventSchema.safeParse(row).success).toBe(true);
  });

  test('is never looser than the schema: yes implies the schema accepts, for envelopes with random changes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000 }), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (version, mutations) => {
        let row: Record<string, unknown> = storedRow(version);
        for (const mutation of mutations) {
          if (mutation.kind === 'delete') delete row[mutation.key];
          else if (mutation.kind === 'prototype') row = Object.assign(Object.create(mutation.value) as Record<string, unknown>, row);
          else row[mutation.key] = mutation.value;
        }
        if (isPlainEnvelope(row)) expect(storedEventSchema.safeParse(row).success).toBe(true);
      }),
      { numRuns: 3_000 },
    );
  });

  test('an inherited enumerable key is refused by both', () => {
    const row = Object.assign(Object.create({ extra: 1 }) as Record<string, unknown>, storedRow(1));
    expect(isPlainEnvelope(row)).toBe(false);
    expect(() => codec.decode(row as unknown as StoredEvent)).toThrow(CorruptEventError);
  });

  test('decoding gives the same event through the fast path as through the schema', () => {
    const row = storedRow(7);
    const fast = codec.decode(row as unknown as StoredEvent);
    // The same row with metadata takes the schema path; everything but the envelope metadata is equal.
    const slow = codec.decode({ ...storedRow(7, { actor: 'x' }) } as unknown as StoredEvent);
    expect(fast).toEqual(slow);
  });
});

const DATA_KEYS = ['transferId', 'postings', 'metadata', 'reference', 'reversalOf'];
const POSTING_KEYS = ['accountId', 'side', 'amount', 'currency'];
const edgeValueArb = fc.constantFrom<unknown>(
  '',
  'cash',
  '-cash',
  'x'.repeat(128),
  'x'.repeat(129),
  'x'.repeat(256),
  'x'.repeat(257),
  'debit',
  'credit',
  'Debit',
  '0',
  '00',
  '12.50',
  '12.',
  '-1',
  '1e3',
  '9'.repeat(64),
  '9'.repeat(65),
  'EUR',
  'eur',
  'E',
  'EURO_DOLLAR_12',
  0,
  1,
  null,
  undefined,
  [],
  {},
  { a: 'b' },
);

/** One change to TransferPosted data: to the object itself or to one of its postings. */
const dataMutationArb = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom(...DATA_KEYS) }),
  fc.record({ kind: fc.constant('set' as const), key: fc.oneof(fc.constantFrom(...DATA_KEYS), fc.string({ maxLength: 8 })), value: fc.oneof(edgeValueArb, fc.anything()) }),
  fc.record({ kind: fc.constant('posting-delete' as const), index: fc.nat(3), key: fc.constantFrom(...POSTING_KEYS) }),
  fc.record({ kind: fc.constant('posting-set' as const), index: fc.nat(3), key: fc.oneof(fc.constantFrom(...POSTING_KEYS), fc.string({ maxLength: 8 })), value: fc.oneof(edgeValueArb, fc.anything()) }),
  fc.record({ kind: fc.constant('postings' as const), count: fc.constantFrom(0, 1, 32, 33) }),
);

describe('isPlainTransferPostedData (the decoder skips the data schema when it says yes)', () => {
  test('says yes to transfers as the store returns them', () => {
    expect(isPlainTransferPostedData(storedRow(3)['data'])).toBe(true);
    expect(isPlainTransferPostedData({ ...(storedRow(3)['data'] as object), reference: 'inv-1', reversalOf: 't-1' })).toBe(true);
  });

  test('is never looser than the schema: yes implies the schema accepts, for data with random changes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000 }), fc.array(dataMutationArb, { minLength: 1, maxLength: 3 }), (version, mutations) => {
        const data = storedRow(version)['data'] as Record<string, unknown>;
        for (const mutation of mutations) {
          const postings = data['postings'];
          if (mutation.kind === 'delete') delete data[mutation.key];
          else if (mutation.kind === 'set') data[mutation.key] = mutation.value;
          else if (mutation.kind === 'postings') {
            const first = Array.isArray(postings) ? (postings[0] as unknown) : undefined;
            data['postings'] = Array.from({ length: mutation.count }, () => (typeof first === 'object' && first !== null ? { ...first } : first));
          } else if (Array.isArray(postings) && typeof postings[mutation.index] === 'object' && postings[mutation.index] !== null) {
            const posting = postings[mutation.index] as Record<string, unknown>;
            if (mutation.kind === 'posting-delete') delete posting[mutation.key];
            else posting[mutation.key] = mutation.value;
          }
        }
        if (isPlainTransferPostedData(data)) expect(eventDataSchemas.TransferPosted.safeParse(data).success).toBe(true);
      }),
      { numRuns: 3_000 },
    );
  });

  test('decoding gives the same event through the fast path as through the schema', () => {
    const cases: [Record<string, string>, Record<string, undefined>][] = [
      [{}, { reference: undefined }],
      [{ reference: 'inv-9' }, { reversalOf: undefined }],
      [{ reversalOf: 't-2' }, { reference: undefined }],
    ];
    for (const [extra, absent] of cases) {
      const row = storedRow(9);
      row['data'] = { ...(row['data'] as object), ...extra };
      // An optional key present as undefined is the schema's to accept: the fast check leaves it, and the answer must not change.
      const viaSchema = { ...row, data: { ...(row['data'] as object), ...absent } };
      expect(isPlainTransferPostedData(row['data'])).toBe(true);
      expect(isPlainTransferPostedData(viaSchema.data)).toBe(false);
      expect(codec.decode(row as unknown as StoredEvent)).toStrictEqual(codec.decode(viaSchema as unknown as StoredEvent));
    }
  });
});
