import fc from 'fast-check';
import { describe, expect, test, vi } from 'vitest';
import { CurrencyRegistry, dataJsonOf, EventCodec, GENESIS_HASH, type LedgerEvent } from '@ledgerkit/ledger-core';
import { parseEventDataJson, parseMetadataJson } from '../src/postgres-event-store.js';

/** What `JSON.parse` makes of `text`, or the class of error it throws. */
function reference(text: string): { readonly value: unknown } | { readonly error: string } {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (error) {
    return { error: (error as Error).name };
  }
}

/** What `parse` makes of `text`, in the same form as {@link reference}. */
function outcome(parse: (text: string) => unknown, text: string): { readonly value: unknown } | { readonly error: string } {
  try {
    return { value: parse(text) };
  } catch (error) {
    return { error: (error as Error).name };
  }
}

/**
 * The same value as `JSON.parse` gives: equal, with own keys in the same order at every level
 * (`JSON.stringify` writes them in that order), plain prototypes (`toStrictEqual`).
 */
function expectSameAsJsonParse(text: string): void {
  const expected = reference(text);
  const got = outcome(parseEventDataJson, text);
  expect(got).toStrictEqual(expected);
  if ('value' in expected && 'value' in got) expect(JSON.stringify(got.value)).toBe(JSON.stringify(expected.value));
}

const codec = new EventCodec({ currencies: new CurrencyRegistry() });

/** The data text the writer stores for `event` (canonical JSON, as the `json` column returns it). */
function storedDataText(event: LedgerEvent): string {
  const stored = codec.encode(
    { event, effectiveAtMs: 0 },
    { eventId: 'e', tenantId: 't', ledgerId: 'l', ledgerVersion: 1, recordedAtMs: 0, correlationId: null, causationId: null, metadata: {}, previousHash: GENESIS_HASH },
  );
  return dataJsonOf(stored);
}

// Strings of every kind a text may hold: quotes, backslashes, control characters, braces and
// commas, astral characters and lone surrogates, `__proto__`, integer-like keys.
const nastyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.string({ unit: fc.constantFrom('"', '\\', '\u0000', '\u001f', '\n', '{', '}', ',', ':', '[', ']', 'a', 'Z', '0', '\ud800', '😀', ' ', '\u007f'), maxLength: 5 }),
  fc.constantFrom('', '__proto__', 'constructor', '0', '1', '10', 'actor', 'acc-1', '12.50', 'EUR', 'debit', 'credit'),
);
const plainId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,12}$/);
const postingArb = fc.record({
  accountId: fc.oneof({ weight: 4, arbitrary: plainId }, { weight: 1, arbitrary: nastyString }),
  side: fc.constantFrom<'debit' | 'credit'>('debit', 'credit'),
  amount: fc.bigInt({ min: 1n, max: 10n ** 20n }),
  currency: fc.constantFrom('EUR', 'USD', 'JPY'),
});
const transferArb = fc.record({
  transferId: fc.oneof({ weight: 4, arbitrary: plainId }, { weight: 1, arbitrary: nastyString }),
  postings: fc.array(postingArb, { minLength: 1, maxLength: 4 }),
  reference: fc.option(nastyString, { nil: undefined }),
  reversalOf: fc.option(plainId, { nil: undefined }),
  metadata: fc.oneof(fc.constant({}), fc.dictionary(nastyString, nastyString, { maxKeys: 4 })),
});

describe('parseEventDataJson (the global read’s data column)', () => {
  test('reads the transfers the writer stores without JSON.parse, to the same value', () => {
    const text = storedDataText({
      type: 'TransferPosted',
      transferId: 't-1',
      postings: [
        { accountId: 'cash', side: 'debit', amount: 1_250n, currency: 'EUR' },
        { accountId: 'alice', side: 'credit', amount: 1_250n, currency: 'EUR' },
      ],
      reference: 'inv-7',
      reversalOf: 't-0',
      metadata: { channel: 'web', actor: 'ops' },
    });
    expect(text).toBe(
      '{"metadata":{"actor":"ops","channel":"web"},"postings":[{"accountId":"cash","amount":"12.50","currency":"EUR","side":"debit"},{"accountId":"alice","amount":"12.50","currency":"EUR","side":"credit"}],"reference":"inv-7","reversalOf":"t-0","transferId":"t-1"}',
    );
    expectSameAsJsonParse(text);
    // Each call builds its own objects, as JSON.parse does.
    expect(parseEventDataJson(text)).not.toBe(parseEventDataJson(text));
    const parse = vi.spyOn(JSON, 'parse');
    try {
      parseEventDataJson(text);
      parseEventDataJson(text.replace('"metadata":{"actor":"ops","channel":"web"}', '"metadata":{}'));
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
  });

  test('property: the writer’s transfer texts, with any strings in them, give what JSON.parse gives', () => {
    fc.assert(
      fc.property(transferArb, (transfer) => {
        expectSameAsJsonParse(storedDataText({ type: 'TransferPosted', ...transfer }));
      }),
      { numRuns: 3_000 },
    );
  });

  test('property: texts changed at random (or not JSON at all) give what JSON.parse gives, or throw as it does', () => {
    const editArb = fc.record({ at: fc.nat(400), remove: fc.nat(3), insert: fc.oneof(fc.constant(''), nastyString, fc.constantFrom(' ', '"', ',', '}', ']', '{"a":"b"}', '\\"', '\\u0041')) });
    fc.assert(
      fc.property(transferArb, fc.array(editArb, { minLength: 1, maxLength: 3 }), (transfer, edits) => {
        let text = storedDataText({ type: 'TransferPosted', ...transfer });
        for (const { at, remove, insert } of edits) {
          const cut = at % (text.length + 1);
          text = text.slice(0, cut) + insert + text.slice(cut + remove);
        }
        expectSameAsJsonParse(text);
      }),
      { numRuns: 5_000 },
    );
  });

  test('texts the fast reading leaves to JSON.parse give what JSON.parse gives', () => {
    const transfer = '{"metadata":{},"postings":[{"accountId":"a","amount":"1","currency":"EUR","side":"debit"}],"transferId":"t"}';
    const samples = [
      transfer,
      // Whitespace, escapes, keys out of order or unknown, a `__proto__` key, integer-like keys.
      transfer.replace('"postings":', '"postings": '),
      `${transfer} `,
      transfer.replace('"a"', '"\\u0061"'),
      transfer.replace('"t"}', '"t\\"x"}'),
      transfer.replace('{"accountId":"a","amount":"1"', '{"amount":"1","accountId":"a"'),
      transfer.replace('"side":"debit"', '"side":"debit","extra":"x"'),
      transfer.replace('"metadata":{}', '"metadata":{"__proto__":"x"}'),
      transfer.replace('"metadata":{}', '"metadata":{"b":"1","1":"x","a":"2","b":"3"}'),
      transfer.replace('"metadata":{}', '"metadata":{"a":1}'),
      transfer.replace('"postings":[', '"postings":[]').replace('}],"transferId"', '}]],"transferId"'),
      transfer.replace('"transferId":"t"', '"transferId":"t","transferId":"u"'),
      transfer.replace('"metadata":{}', '"metadata":{"a":"\u0001"}'),
      '{"metadata":{},"postings":[],"transferId":"t"}',
      '{"accountId":"a","accountType":"asset","currency":"EUR","flags":{"creditsMustNotExceedDebits":false,"debitsMustNotExceedCredits":false},"metadata":{}}',
      '{"pendingId":"p"}',
      '{}',
      '[]',
      'null',
      '"text"',
      '',
      '{"metadata":{',
    ];
    for (const text of samples) expectSameAsJsonParse(text);
  });
});

describe('parseMetadataJson (the global read’s metadata column)', () => {
  test('is JSON.parse, with a new object for each empty one', () => {
    for (const text of ['{}', '{"actor":"ops"}', '{"__proto__":"x"}', '{ }', 'null', '[]']) expect(outcome(parseMetadataJson, text)).toStrictEqual(reference(text));
    const first = parseMetadataJson('{}');
    expect(first).not.toBe(parseMetadataJson('{}'));
    expect(Object.getPrototypeOf(first)).toBe(Object.prototype);
    expect(() => parseMetadataJson('{')).toThrow(SyntaxError);
  });
});
