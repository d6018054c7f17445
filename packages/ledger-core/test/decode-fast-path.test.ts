import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isPlainEnvelope } from '../src/events/fast-checks.js';
import { storedEventSchema } from '../src/events/schemas.js';
import { CurrencyRegistry, EventCodec, GENESIS_HASH, type LedgerEvent, type StoredEvent } from '@ledgerkit/ledger-core';

const codec = new EventCodec({ currencies: new CurrencyRegistry() });
const T0 = Date.parse('2025-03-01T12:00:00.000Z');

/**
 * `row` with a prototype that holds only a non-enumerable key: the envelope schema accepts it as
 * it accepts `row` (it reads the same own keys), the fast check does not (not a plain object), so
 * `decode` takes its checked path, every step, for the same content.
 */
function viaCheckedPath(row: Record<string, unknown>): StoredEvent {
  const prototype = Object.defineProperty({}, 'hidden', { value: 1, enumerable: false });
  return Object.assign(Object.create(prototype) as Record<string, unknown>, row) as unknown as StoredEvent;
}

/** What `decode` gives, or the error it throws, by the fields a caller sees. */
function decodeOutcome(stored: StoredEvent): unknown {
  try {
    return { decoded: codec.decode(stored) };
  } catch (error) {
    // Every field of the error (reason, ledgerVersion, …), its class and its message.
    const { name, message } = error as Error;
    return { ...(error as object), class: (error as object).constructor, name, message };
  }
}

const hashArb = fc.oneof(
  fc.nat(50).map((n) => createHash('sha256').update(String(n)).digest('hex')),
  fc.constantFrom(GENESIS_HASH, 'F'.repeat(64), `${'0'.repeat(63)}g`, '0'.repeat(63), '', 'ABC'),
);
const timeArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0, 0, 1, 3_600_000).map((offset) => new Date(T0 - offset).toISOString()) },
  { weight: 1, arbitrary: fc.constantFrom('2025-02-30T00:00:00.000Z', '2025-03-01T12:00:00Z', '2025-03-01T12:00:00.000+00:00', 'x') },
);
const eventArb: fc.Arbitrary<LedgerEvent> = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    type: fc.constant('TransferPosted' as const),
    transferId: fc.constantFrom('t-1', 't-2', 'bad id'),
    postings: fc.array(
      fc.record({ accountId: fc.constantFrom('cash', 'alice'), side: fc.constantFrom<'debit' | 'credit'>('debit', 'credit'), amount: fc.bigInt({ min: 1n, max: 10n ** 6n }), currency: fc.constantFrom('EUR', 'JPY') }),
      { minLength: 1, maxLength: 3 },
    ),
    reference: fc.option(fc.constantFrom('inv-1', ''), { nil: undefined }),
    reversalOf: fc.option(fc.constantFrom('t-0'), { nil: undefined }),
    metadata: fc.constantFrom({}, { actor: 'ops' }),
  }) },
  { weight: 1, arbitrary: fc.constant({ type: 'PendingExpired' as const, pendingId: 'p-1' }) },
  { weight: 1, arbitrary: fc.constant({ type: 'AccountClosed' as const, accountId: 'alice', commandId: undefined }) },
);
/** A change to the row as the store returns it, after encoding: each of the fields the fast path reads. */
const changeArb = fc.oneof(
  fc.record({ field: fc.constantFrom('tenantId', 'ledgerId'), value: fc.constantFrom<unknown>('acme', 'main', 'other', 'bad id', '', 7) }),
  fc.record({ field: fc.constantFrom('recordedAt', 'effectiveAt'), value: timeArb }),
  fc.record({ field: fc.constantFrom('previousHash', 'hash'), value: hashArb }),
  fc.record({ field: fc.constant('schemaVersion'), value: fc.constantFrom<unknown>(1, 2, 3, '2') }),
  fc.record({ field: fc.constant('type'), value: fc.constantFrom<unknown>('TransferPosted', 'PendingExpired', 'Unknown', 'toString') }),
  fc.record({ field: fc.constant('amount'), value: fc.constantFrom<unknown>('1.234', '0', '1e3', 12, '99999999999999999999') }),
  fc.record({ field: fc.constant('currency'), value: fc.constantFrom<unknown>('EUR', 'ZZZ', 'eur') }),
);
const rowArb = fc.record({
  event: eventArb,
  tenantId: fc.constantFrom('acme', 'globex'),
  ledgerId: fc.constantFrom('main', 'side'),
  recordedAtMs: fc.constantFrom(T0, T0, T0 + 1),
  effectiveBackMs: fc.constantFrom(0, 0, 0, 5, -5),
  chained: fc.boolean(),
  changes: fc.array(changeArb, { maxLength: 2 }),
});

describe('EventCodec.decode: the fast path for plain transfers gives what the checked path gives', () => {
  // First in this file (its own module instance): before any envelope was accepted, nothing is
  // remembered, and no value (an empty one included) passes for remembered.
  test('before any envelope is accepted, empty or missing values are checked, not taken for remembered ones', () => {
    const row = JSON.parse(
      JSON.stringify(
        codec.encode(
          { event: { type: 'PendingExpired', pendingId: 'p' }, effectiveAtMs: T0 },
          { eventId: 'e', tenantId: 'acme', ledgerId: 'main', ledgerVersion: 1, recordedAtMs: T0, correlationId: null, causationId: null, metadata: {}, previousHash: GENESIS_HASH },
        ),
      ),
    ) as Record<string, unknown>;
    for (const field of ['tenantId', 'ledgerId', 'recordedAt', 'effectiveAt', 'previousHash', 'hash']) {
      for (const value of ['', undefined]) {
        const changed = { ...row, [field]: value };
        expect(isPlainEnvelope(changed), `${field} ${String(value)}`).toBe(false);
        expect(() => codec.decode(changed as unknown as StoredEvent)).toThrow(expect.objectContaining({ name: 'CorruptEventError' }));
      }
    }
    expect(isPlainEnvelope(row)).toBe(true);
  });

  test('property: runs of events as a page of the log holds them (repeated ids, times and chained hashes), changed at random', () => {
    fc.assert(
      fc.property(fc.array(rowArb, { minLength: 1, maxLength: 12 }), (specs) => {
        let previousHash = GENESIS_HASH;
        specs.forEach((spec, index) => {
          const stored = codec.encode(
            { event: spec.event, effectiveAtMs: spec.recordedAtMs - spec.effectiveBackMs },
            { eventId: `e-${index}`, tenantId: spec.tenantId, ledgerId: spec.ledgerId, ledgerVersion: index + 1, recordedAtMs: spec.recordedAtMs, correlationId: null, causationId: null, metadata: {}, previousHash: spec.chained ? previousHash : GENESIS_HASH },
          );
          previousHash = stored.hash;
          // As a row arrives: plain objects, not the encoder's instance (which decodes to itself).
          const row = JSON.parse(JSON.stringify(stored)) as Record<string, unknown>;
          const data = row['data'] as Record<string, unknown>;
          const postings = Array.isArray(data['postings']) ? (data['postings'] as Record<string, unknown>[]) : [];
          for (const { field, value } of spec.changes) {
            if (field === 'amount' || field === 'currency') {
              if (postings[0] !== undefined) postings[0][field] = value;
            } else row[field] = value;
          }
          const expected = decodeOutcome(viaCheckedPath(row));
          expect(decodeOutcome(row as unknown as StoredEvent)).toStrictEqual(expected);
          if (isPlainEnvelope(row)) expect(storedEventSchema.safeParse(row).success).toBe(true);
        });
      }),
      { numRuns: 2_000 },
    );
  });

  test('a value equal to the last accepted one is trusted, any other is checked: a bad hash, id or time after a good one is refused', () => {
    const good = (version: number, previousHash: string): Record<string, unknown> =>
      JSON.parse(
        JSON.stringify(
          codec.encode(
            { event: { type: 'PendingExpired', pendingId: 'p' }, effectiveAtMs: T0 },
            { eventId: `e-${version}`, tenantId: 'acme', ledgerId: 'main', ledgerVersion: version, recordedAtMs: T0, correlationId: null, causationId: null, metadata: {}, previousHash },
          ),
        ),
      ) as Record<string, unknown>;
    const first = good(1, GENESIS_HASH);
    expect(isPlainEnvelope(first)).toBe(true);
    // The next event of the stream: its previousHash is the hash just accepted.
    const second = good(2, first['hash'] as string);
    expect(isPlainEnvelope(second)).toBe(true);
    const bad: [string, unknown][] = [
      ['previousHash', (second['hash'] as string).toUpperCase()],
      ['previousHash', `${(second['hash'] as string).slice(0, 63)}g`],
      ['hash', second['hash'] as string + '0'],
      ['tenantId', 'acme '],
      ['ledgerId', ''],
      ['recordedAt', '2025-03-01T12:00:00.000'],
      ['effectiveAt', '2025-02-30T12:00:00.000Z'],
    ];
    for (const [field, value] of bad) {
      expect(isPlainEnvelope(second)).toBe(true);
      const row = { ...second, [field]: value };
      expect(isPlainEnvelope(row), field).toBe(false);
      expect(() => codec.decode(row as unknown as StoredEvent), field).toThrow(expect.objectContaining({ name: 'CorruptEventError', ledgerVersion: 2 }));
    }
  });

  test('an effective time after the recorded time is refused on the fast path’s shape as before', () => {
    const stored = codec.encode(
      { event: { type: 'TransferPosted', transferId: 't', postings: [{ accountId: 'a', side: 'debit', amount: 1n, currency: 'EUR' }, { accountId: 'b', side: 'credit', amount: 1n, currency: 'EUR' }], reference: undefined, reversalOf: undefined, metadata: {} }, effectiveAtMs: T0 + 1 },
      { eventId: 'e', tenantId: 'acme', ledgerId: 'main', ledgerVersion: 4, recordedAtMs: T0, correlationId: null, causationId: null, metadata: {}, previousHash: GENESIS_HASH },
    );
    const row = JSON.parse(JSON.stringify(stored)) as StoredEvent;
    expect(isPlainEnvelope(row)).toBe(true);
    expect(() => codec.decode(row)).toThrow(expect.objectContaining({ name: 'CorruptEventError', reason: 'effectiveAt is after recordedAt', ledgerVersion: 4 }));
  });
});
