import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { METADATA_BYTES_MAX, METADATA_KEY_LENGTH_MAX, METADATA_KEYS_MAX, METADATA_VALUE_LENGTH_MAX } from '../src/domain/limits.js';
import { isPlainEnvelope, isPlainMetadata, isPlainTransferPostedData } from '../src/events/fast-checks.js';
import { eventDataSchemas, metadataSchema, storedEventSchema } from '../src/events/schemas.js';
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

/** `count` entries `k0…` with the value `value`. */
function entries(count: number, value: string): Record<string, string> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, value]));
}

/** Metadata at and past each of its limits, in the shapes a row or a caller could hand over. */
const metadataEdgeArb = fc.constantFrom<unknown>(
  {},
  { actor: 'tests' },
  { 'api.client': 'bench-admin', channel: 'web' },
  entries(METADATA_KEYS_MAX, 'v'),
  entries(METADATA_KEYS_MAX + 1, 'v'),
  { ['k'.repeat(METADATA_KEY_LENGTH_MAX)]: 'v' },
  { ['k'.repeat(METADATA_KEY_LENGTH_MAX + 1)]: 'v' },
  { '': 'v' },
  { a: 'x'.repeat(METADATA_VALUE_LENGTH_MAX) },
  { a: 'x'.repeat(METADATA_VALUE_LENGTH_MAX + 1) },
  // Within every per-entry limit, over the byte limit once encoded: multi-byte characters, and
  // control characters that JSON writes as six-byte escapes.
  entries(METADATA_KEYS_MAX, 'é'.repeat(METADATA_VALUE_LENGTH_MAX)),
  entries(8, '\u0001'.repeat(METADATA_VALUE_LENGTH_MAX)),
  entries(2, '\u0001'.repeat(METADATA_VALUE_LENGTH_MAX)),
  entries(3, '€'.repeat(METADATA_VALUE_LENGTH_MAX)),
  // 4,109 bytes encoded: over the limit only by counting every escape as its full six bytes.
  { k0: '\u0001'.repeat(METADATA_VALUE_LENGTH_MAX), k1: '\u0001'.repeat(170) },
  { k0: '\u0001'.repeat(METADATA_VALUE_LENGTH_MAX), k1: '\u0001'.repeat(167) },
  entries(7, 'x'.repeat(METADATA_VALUE_LENGTH_MAX)),
  entries(8, 'x'.repeat(METADATA_VALUE_LENGTH_MAX)),
  { a: 1 },
  { a: null },
  { a: ['b'] },
  { a: { b: 'c' } },
  ['a'],
  'a=b',
  null,
  Object.assign(Object.create(null) as object, { a: 'b' }),
  Object.assign(Object.create({ inherited: 'x' }) as object, { a: 'b' }),
  JSON.parse('{"__proto__":"x"}') as unknown,
  Object.defineProperty({ a: 'b' }, 'hidden', { value: 'h', enumerable: false }),
  { a: 'b', [Symbol('s')]: 'c' },
  new Date(T0),
);

/** Any metadata-like value: the edges above, or random dictionaries of random values. */
const metadataArb = fc.oneof(
  metadataEdgeArb,
  fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(fc.string({ maxLength: 600 }), fc.anything()), { maxKeys: 20 }),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 400 }), { maxKeys: 16 }),
);

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
      '2025-02-29T12:00:00.000Z',
      '2024-02-29T12:00:00.000Z',
      '2025-02-28T24:00:00.000Z',
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
  fc.record({ kind: fc.constant('set' as const), key: fc.constant('metadata'), value: metadataArb }),
);

describe('isPlainEnvelope (the decoder skips the envelope schema when it says yes)', () => {
  test('says yes to the envelopes the store returns, so the fast path is taken', () => {
    for (let version = 1; version <= 20; version += 1) expect(isPlainEnvelope(storedRow(version))).toBe(true);
  });

  test('says yes to envelopes with metadata within its limits, so events with metadata take the fast path too', () => {
    for (const metadata of [{ actor: 'tests' }, { 'api.client': 'bench-admin' }, entries(METADATA_KEYS_MAX, 'v')]) {
      const row = storedRow(1, metadata);
      expect(isPlainEnvelope(row)).toBe(true);
      expect(storedEventSchema.safeParse(row).success).toBe(true);
    }
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

  test('a recordedAt or effectiveAt that names no real instant is refused by both, not rolled into another day by Date.parse', () => {
    // Each is refused in either field: a non-leap 29 February, days a month lacks, hour 24.
    const impossible = ['2025-02-29T00:00:00.000Z', '2025-02-30T00:00:00.000Z', '2025-04-31T00:00:00.000Z', '2025-02-28T24:00:00.000Z', '1900-02-29T00:00:00.000Z'];
    for (const field of ['recordedAt', 'effectiveAt'] as const) {
      for (const value of impossible) {
        // The other field is kept earlier (or later) than any of them, so only this one can be at fault.
        const row = { ...storedRow(1), recordedAt: '2025-12-31T00:00:00.000Z', effectiveAt: '1900-01-01T00:00:00.000Z', [field]: value };
        expect(isPlainEnvelope(row), `${field} ${value}`).toBe(false);
        expect(storedEventSchema.safeParse(row).success, `${field} ${value}`).toBe(false);
        expect(() => codec.decode(row as unknown as StoredEvent), `${field} ${value}`).toThrow(expect.objectContaining({ name: 'CorruptEventError', message: expect.stringMatching(new RegExp(`invalid envelope.*${field}`)) }));
      }
    }
    // Real instants at the edges of months, leap days and days are read exactly as written.
    for (const value of ['2024-02-29T12:00:00.000Z', '2000-02-29T00:00:00.000Z', '2025-02-28T23:59:59.999Z', '2025-04-30T00:00:00.000Z', '0000-01-01T00:00:00.000Z']) {
      const row = { ...storedRow(1), recordedAt: '9999-12-31T23:59:59.999Z', effectiveAt: value };
      expect(isPlainEnvelope(row), value).toBe(true);
      expect(storedEventSchema.safeParse(row).success, value).toBe(true);
      expect(new Date(codec.decode(row as unknown as StoredEvent).meta.effectiveAtMs).toISOString()).toBe(value);
    }
  });

  test('an inherited enumerable key is refused by both', () => {
    const row = Object.assign(Object.create({ extra: 1 }) as Record<string, unknown>, storedRow(1));
    expect(isPlainEnvelope(row)).toBe(false);
    expect(() => codec.decode(row as unknown as StoredEvent)).toThrow(CorruptEventError);
  });

  test('decoding gives the same event through the fast path as through the schema', () => {
    const row = storedRow(7, { actor: 'x' });
    expect(isPlainEnvelope(row)).toBe(true);
    const fast = codec.decode(row as unknown as StoredEvent);
    // A non-enumerable metadata key is left to the schema, which accepts it: the schema path.
    const slowRow = storedRow(7, { actor: 'x' });
    Object.defineProperty(slowRow['metadata'], 'hidden', { value: 'h', enumerable: false });
    expect(isPlainEnvelope(slowRow)).toBe(false);
    expect(storedEventSchema.safeParse(slowRow).success).toBe(true);
    expect(fast).toStrictEqual(codec.decode(slowRow as unknown as StoredEvent));
  });
});

describe('isPlainMetadata', () => {
  test('is never looser than the metadata schema, for metadata at its limits and at random', () => {
    fc.assert(
      fc.property(metadataArb, (metadata) => {
        if (isPlainMetadata(metadata)) expect(metadataSchema.safeParse(metadata).success).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });

  test('says yes at the limits and no just past them', () => {
    expect(isPlainMetadata({})).toBe(true);
    expect(isPlainMetadata(entries(METADATA_KEYS_MAX, 'v'))).toBe(true);
    expect(isPlainMetadata(entries(METADATA_KEYS_MAX + 1, 'v'))).toBe(false);
    expect(isPlainMetadata({ ['k'.repeat(METADATA_KEY_LENGTH_MAX)]: 'v' })).toBe(true);
    expect(isPlainMetadata({ ['k'.repeat(METADATA_KEY_LENGTH_MAX + 1)]: 'v' })).toBe(false);
    expect(isPlainMetadata({ a: 'x'.repeat(METADATA_VALUE_LENGTH_MAX) })).toBe(true);
    expect(isPlainMetadata({ a: 'x'.repeat(METADATA_VALUE_LENGTH_MAX + 1) })).toBe(false);
    // 7 full values encode under the byte limit, 8 over it.
    expect(Buffer.byteLength(JSON.stringify(entries(8, 'x'.repeat(METADATA_VALUE_LENGTH_MAX))))).toBeGreaterThan(METADATA_BYTES_MAX);
    expect(isPlainMetadata(entries(7, 'x'.repeat(METADATA_VALUE_LENGTH_MAX)))).toBe(true);
    expect(isPlainMetadata(entries(8, 'x'.repeat(METADATA_VALUE_LENGTH_MAX)))).toBe(false);
    expect(metadataSchema.safeParse(entries(8, 'x'.repeat(METADATA_VALUE_LENGTH_MAX))).success).toBe(false);
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
  fc.record({ kind: fc.constant('set' as const), key: fc.constant('metadata'), value: metadataArb }),
);

describe('isPlainTransferPostedData (the decoder skips the data schema when it says yes)', () => {
  test('says yes to transfers as the store returns them', () => {
    expect(isPlainTransferPostedData(storedRow(3)['data'])).toBe(true);
    expect(isPlainTransferPostedData({ ...(storedRow(3)['data'] as object), reference: 'inv-1', reversalOf: 't-1' })).toBe(true);
    expect(isPlainTransferPostedData({ ...(storedRow(3)['data'] as object), metadata: { invoice: 'inv-1', channel: 'web' } })).toBe(true);
  });

  test('a transfer with metadata decodes the same through the fast path as through the schema, into its own copy', () => {
    const row = storedRow(5);
    const metadata = { invoice: 'inv-1', channel: 'web' };
    row['data'] = { ...(row['data'] as object), metadata };
    const viaSchema = { ...row, data: { ...(row['data'] as object), reference: undefined } };
    expect(isPlainTransferPostedData(row['data'])).toBe(true);
    expect(isPlainTransferPostedData(viaSchema.data)).toBe(false);
    const fast = codec.decode(row as unknown as StoredEvent);
    expect(fast).toStrictEqual(codec.decode(viaSchema as unknown as StoredEvent));
    expect(fast.event.type === 'TransferPosted' && fast.event.metadata).toEqual(metadata);
    expect(fast.event.type === 'TransferPosted' && fast.event.metadata).not.toBe(metadata);
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
