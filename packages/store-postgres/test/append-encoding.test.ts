import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { joinedColumn, metadataJson } from '../src/postgres-event-store.js';

/** The append's column text as it was built before `joinedColumn` checked fewer values and joined in one go. */
function referenceJoined(values: readonly (string | number | null)[]): string | undefined {
  let joined = '';
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i];
    let text: string;
    if (value === null || value === undefined) text = '\u001f';
    else if (typeof value === 'number') text = String(value);
    else {
      if (value.length === 0 || value.includes('\u001e') || value.includes('\u001f')) return undefined;
      text = value;
    }
    joined = i === 0 ? text : `${joined}\u001e${text}`;
  }
  return joined;
}

// Strings of every kind: separators, NUL, quotes, backslashes, braces, commas, astral and lone
// surrogates, and mostly repeats of a few values (as a batch's types and times repeat).
const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: fc.constantFrom('\u001e', '\u001f', '\u0000', '"', '\\', '{', '}', ',', 'NULL', 'a', '\ud800', '😀', ' '), maxLength: 6 }),
  fc.constantFrom('', 'TransferPosted', '2025-01-01T00:00:00.000Z'),
);
const value = fc.oneof({ weight: 6, arbitrary: nasty }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer() });

describe('joinedColumn (the append’s parameters)', () => {
  test('property: checking every value, gives exactly the text (or the refusal) of value-by-value joining', () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 12 }), (values) => {
        expect(joinedColumn(values)).toBe(referenceJoined(values));
      }),
      { numRuns: 5_000 },
    );
  });

  test('property: on values that need no check after the first few, gives the same text', () => {
    // Safe values (what the caller promises after `checkFirst`): no separator, not empty.
    const safe = fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }).filter((text) => !/[\u001e\u001f]/.test(text)), fc.constant(null));
    fc.assert(
      fc.property(fc.array(value, { maxLength: 3 }), fc.array(safe, { maxLength: 12 }), (first, rest) => {
        const values = [...first, ...rest];
        expect(joinedColumn(values, first.length)).toBe(referenceJoined(values));
      }),
      { numRuns: 3_000 },
    );
  });

  test('a value equal to the one before it is refused all the same when it holds a separator', () => {
    expect(joinedColumn(['a\u001eb', 'a\u001eb'])).toBeUndefined();
    expect(joinedColumn(['x', '', ''])).toBeUndefined();
    expect(joinedColumn([null, null])).toBe('\u001f\u001e\u001f');
    expect(joinedColumn([1, null, 'a'])).toBe('1\u001e\u001f\u001ea');
    expect(joinedColumn([])).toBe('');
  });
});

describe('metadataJson', () => {
  test('is JSON.stringify for every kind of value, empty plain objects included', () => {
    const nullPrototype = Object.create(null) as Record<string, string>;
    const inherited = Object.create({ inherited: 'x' }) as Record<string, string>;
    const hidden = Object.defineProperty({}, 'hidden', { value: 'x', enumerable: false });
    const ownToJson = Object.defineProperty({}, 'toJSON', { value: () => 'custom', enumerable: false });
    const inheritedToJson = Object.create({ toJSON: () => ({ a: 1 }) }) as object;
    const samples: unknown[] = [{}, { a: 'b' }, { '\u001e': '\u0000"\\' }, [], [1], nullPrototype, inherited, hidden, ownToJson, inheritedToJson, new Date(0), new Map(), Object(''), Object(7), Object(true), null, undefined, 'text', 3];
    for (const sample of samples) expect(metadataJson(sample)).toBe(JSON.stringify(sample));
  });

  test('property: is JSON.stringify for dictionaries of any strings', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 6 }), { maxKeys: 4 }), (metadata) => {
        expect(metadataJson(metadata)).toBe(JSON.stringify(metadata));
      }),
    );
  });
});
