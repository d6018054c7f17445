import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Decimal } from 'decimal.js';
import {
  AMOUNT_MINOR_MAX,
  AMOUNT_STRING_LENGTH_MAX,
  CURRENCY_SCALE_MAX,
  FROM_DECIMAL_STRING_LENGTH_MAX,
  CUSTOM_CURRENCIES_MAX,
  CurrencyRegistry,
  InvalidAmountError,
  InvalidInputError,
  LimitExceededError,
  UnknownCurrencyError,
  convert,
  formatAmount,
  fromDecimal,
  parseAmount,
  toDecimal,
  type Currency,
  type InvalidAmountReason,
  type RoundingMode,
} from '@ledgerkit/ledger-core';
import { issuePathsOf } from './support/issue-paths.js';

const currencies = new CurrencyRegistry([
  { code: 'POINTS', scale: 0 },
  { code: 'TOKEN18', scale: 18 },
]);
const EUR = currencies.get('EUR');
const USD = currencies.get('USD');
const JPY = currencies.get('JPY');
const KWD = currencies.get('KWD');
const TOKEN = currencies.get('TOKEN18');

/** The reason `run` fails with; fails the test if it does not throw an InvalidAmountError. */
function reasonOf(run: () => unknown): InvalidAmountReason {
  try {
    run();
  } catch (error) {
    if (error instanceof InvalidAmountError) return error.reason;
    throw error;
  }
  throw new Error('expected an InvalidAmountError, but nothing was thrown');
}

describe('CurrencyRegistry', () => {
  test.each([
    ['EUR', 2],
    ['USD', 2],
    ['JPY', 0],
    ['KRW', 0],
    ['KWD', 3],
    ['BHD', 3],
    ['CLF', 4],
  ])('the ISO 4217 currency %s has scale %i', (code, scale) => {
    expect(new CurrencyRegistry().get(code)).toEqual({ code, scale });
  });

  test('custom assets are declared with their own scale, from 0 (points) to 18 (tokens)', () => {
    expect(currencies.get('POINTS').scale).toBe(0);
    expect(currencies.get('TOKEN18').scale).toBe(18);
    expect(currencies.list().map((currency) => currency.code)).toEqual(expect.arrayContaining(['EUR', 'POINTS', 'TOKEN18']));
  });

  test('redefining an ISO code with another scale throws; repeating its own scale is allowed', () => {
    expect(() => new CurrencyRegistry([{ code: 'EUR', scale: 3 }])).toThrow(LimitExceededError);
    expect(() => new CurrencyRegistry([{ code: 'JPY', scale: 2 }])).toThrow(/already has scale 0/);
    expect(new CurrencyRegistry([{ code: 'EUR', scale: 2 }]).get('EUR').scale).toBe(2);
  });

  test('a custom asset needs an upper-case code and an integer scale within 0..CURRENCY_SCALE_MAX', () => {
    expect(() => new CurrencyRegistry([{ code: 'points', scale: 0 }])).toThrow(LimitExceededError);
    expect(() => new CurrencyRegistry([{ code: 'X', scale: 0 }])).toThrow(LimitExceededError);
    expect(() => new CurrencyRegistry([{ code: 'BIG', scale: CURRENCY_SCALE_MAX + 1 }])).toThrow(LimitExceededError);
    expect(() => new CurrencyRegistry([{ code: 'NEG', scale: -1 }])).toThrow(LimitExceededError);
    expect(() => new CurrencyRegistry([{ code: 'HALF', scale: 1.5 }])).toThrow(LimitExceededError);
  });

  test('a registry accepts at most CUSTOM_CURRENCIES_MAX custom assets', () => {
    const many: Currency[] = Array.from({ length: CUSTOM_CURRENCIES_MAX + 1 }, (_, index) => ({ code: `A${index}`, scale: 0 }));
    expect(() => new CurrencyRegistry(many)).toThrow(LimitExceededError);
    expect(new CurrencyRegistry(many.slice(0, CUSTOM_CURRENCIES_MAX)).get(`A${CUSTOM_CURRENCIES_MAX - 1}`).scale).toBe(0);
  });

  test('an undeclared currency throws UnknownCurrencyError from get and is undefined from find', () => {
    expect(() => currencies.get('XYZ')).toThrow(UnknownCurrencyError);
    let caught: unknown;
    try {
      currencies.get('DOGE');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UnknownCurrencyError);
    expect(caught).toMatchObject({ currency: 'DOGE', code: 'unknown_currency' });
    expect(currencies.find('XYZ')).toBeUndefined();
    expect(currencies.find('EUR')).toEqual({ code: 'EUR', scale: 2 });
  });

  test('custom assets that are not an array, or an entry that is not an object, are InvalidInputError at custom, not a TypeError', () => {
    for (const custom of [null, 'POINTS', 42, { code: 'POINTS', scale: 0 }]) {
      expect(issuePathsOf(() => new CurrencyRegistry(custom as unknown as Currency[])), String(custom)).toEqual([['custom']]);
    }
    for (const entry of [null, undefined, 'POINTS', 7]) {
      expect(issuePathsOf(() => new CurrencyRegistry([{ code: 'POINTS', scale: 0 }, entry as unknown as Currency])), String(entry)).toEqual([['custom', 1]]);
    }
    // A code that is not a string breaks the code rule like any other bad code, even a symbol.
    for (const code of [Symbol('POINTS'), 12n, 42, { toString: () => 'POINTS' }]) {
      expect(() => new CurrencyRegistry([{ code, scale: 0 } as unknown as Currency]), String(typeof code)).toThrow(LimitExceededError);
    }
    // Left out, they still mean no custom asset.
    expect(new CurrencyRegistry(undefined).find('POINTS')).toBeUndefined();
  });

  test('get of a code that is not a string is InvalidInputError at code, not a TypeError; find answers undefined', () => {
    for (const code of [123, null, undefined, 12n, Symbol('EUR'), { code: 'EUR' }, ['EUR']]) {
      let caught: unknown;
      try {
        currencies.get(code as unknown as string);
      } catch (error) {
        caught = error;
      }
      expect(caught, String(typeof code)).toBeInstanceOf(InvalidInputError);
      expect(caught).toMatchObject({ code: 'invalid_input', issues: [{ path: ['code'] }] });
      expect(currencies.find(code as unknown as string)).toBeUndefined();
    }
  });

  test('custom assets of one registry are unknown to another', () => {
    expect(() => new CurrencyRegistry().get('POINTS')).toThrow(UnknownCurrencyError);
  });
});

describe('parseAmount', () => {
  test('plain decimals parse to exact minor units of the currency', () => {
    expect(parseAmount('12', EUR)).toBe(1_200n);
    expect(parseAmount('12.5', EUR)).toBe(1_250n);
    expect(parseAmount('0.05', EUR)).toBe(5n);
    expect(parseAmount('1500', JPY)).toBe(1_500n);
    expect(parseAmount('1.234', KWD)).toBe(1_234n);
  });

  test('18-decimal token amounts parse exactly, beyond the precision of a float', () => {
    expect(parseAmount('0.000000000000000001', TOKEN)).toBe(1n);
    expect(parseAmount('123456789.123456789123456789', TOKEN)).toBe(123_456_789_123_456_789_123_456_789n);
    expect(parseAmount('1.1', TOKEN)).toBe(1_100_000_000_000_000_000n);
  });

  test('a number instead of a string is rejected as not_a_string', () => {
    expect(reasonOf(() => parseAmount(12.5, EUR))).toBe('not_a_string');
    expect(reasonOf(() => parseAmount(12n, EUR))).toBe('not_a_string');
    expect(reasonOf(() => parseAmount(undefined, EUR))).toBe('not_a_string');
  });

  test('an empty string is rejected as empty', () => {
    expect(reasonOf(() => parseAmount('', EUR))).toBe('empty');
  });

  test.each(['abc', '1.', '.5', '01', '1,00', ' 1', '1 ', '+1', '1.2.3', '0x10'])('%j is rejected as malformed', (input) => {
    expect(reasonOf(() => parseAmount(input, EUR))).toBe('malformed');
  });

  test('exponent notation is rejected as exponent', () => {
    expect(reasonOf(() => parseAmount('1e5', EUR))).toBe('exponent');
    expect(reasonOf(() => parseAmount('1.5E-2', EUR))).toBe('exponent');
  });

  test('NaN and Infinity are rejected as not_finite', () => {
    expect(reasonOf(() => parseAmount('NaN', EUR))).toBe('not_finite');
    expect(reasonOf(() => parseAmount('Infinity', EUR))).toBe('not_finite');
  });

  test('a negative amount is rejected as negative', () => {
    expect(reasonOf(() => parseAmount('-1', EUR))).toBe('negative');
    expect(reasonOf(() => parseAmount('-0.01', EUR))).toBe('negative');
  });

  test('zero is rejected as zero unless allowZero is set', () => {
    expect(reasonOf(() => parseAmount('0', EUR))).toBe('zero');
    expect(reasonOf(() => parseAmount('0.00', EUR))).toBe('zero');
    expect(parseAmount('0', EUR, { allowZero: true })).toBe(0n);
    expect(parseAmount('0.00', EUR, { allowZero: true })).toBe(0n);
  });

  test('more decimals than the currency scale are rejected as too_many_decimals, never rounded, even trailing zeros', () => {
    expect(reasonOf(() => parseAmount('1.001', EUR))).toBe('too_many_decimals');
    expect(reasonOf(() => parseAmount('1.500', EUR))).toBe('too_many_decimals');
    expect(reasonOf(() => parseAmount('1.0', JPY))).toBe('too_many_decimals');
    expect(reasonOf(() => parseAmount('0.0000000000000000001', TOKEN))).toBe('too_many_decimals');
    expect(parseAmount('1.50', EUR)).toBe(150n);
  });

  test('an amount above AMOUNT_MINOR_MAX minor units is rejected as too_large', () => {
    const max = AMOUNT_MINOR_MAX.toString();
    expect(parseAmount(max, JPY)).toBe(AMOUNT_MINOR_MAX);
    expect(reasonOf(() => parseAmount((AMOUNT_MINOR_MAX + 1n).toString(), JPY))).toBe('too_large');
    expect(parseAmount(formatAmount(AMOUNT_MINOR_MAX, 2), EUR)).toBe(AMOUNT_MINOR_MAX);
    expect(reasonOf(() => parseAmount(max, EUR))).toBe('too_large');
  });

  test('a string longer than AMOUNT_STRING_LENGTH_MAX is rejected as too_large before it is parsed', () => {
    expect(reasonOf(() => parseAmount('1'.repeat(AMOUNT_STRING_LENGTH_MAX + 1), EUR))).toBe('too_large');
    expect(reasonOf(() => parseAmount(`1.${'0'.repeat(AMOUNT_STRING_LENGTH_MAX)}`, EUR))).toBe('too_large');
  });

  test('InvalidAmountError carries the stable invalid_amount code', () => {
    try {
      parseAmount('1e5', EUR);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidAmountError);
      expect((error as InvalidAmountError).code).toBe('invalid_amount');
      expect((error as InvalidAmountError).retriable).toBe(false);
    }
  });
});

describe('formatAmount', () => {
  test('minor units format with exactly the scale number of decimals, zero-padded', () => {
    expect(formatAmount(150n, 2)).toBe('1.50');
    expect(formatAmount(5n, 2)).toBe('0.05');
    expect(formatAmount(0n, 2)).toBe('0.00');
    expect(formatAmount(1n, 18)).toBe('0.000000000000000001');
    expect(formatAmount(1_234n, 3)).toBe('1.234');
  });

  test('scale 0 formats as a plain integer', () => {
    expect(formatAmount(1_500n, 0)).toBe('1500');
    expect(formatAmount(0n, 0)).toBe('0');
  });

  test('negative amounts keep their sign in front of the padded digits', () => {
    expect(formatAmount(-5n, 2)).toBe('-0.05');
    expect(formatAmount(-150n, 2)).toBe('-1.50');
    expect(formatAmount(-7n, 0)).toBe('-7');
  });

  test('formatting is exact for amounts beyond the float range', () => {
    expect(formatAmount(AMOUNT_MINOR_MAX, 18)).toBe(`${'9'.repeat(18)}.${'9'.repeat(18)}`);
  });

  test('property: parseAmount reads back what formatAmount writes, for any valid minor amount and scale', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: AMOUNT_MINOR_MAX }), fc.integer({ min: 0, max: CURRENCY_SCALE_MAX }), (minor, scale) => {
        const currency: Currency = { code: 'ANY', scale };
        const text = formatAmount(minor, scale);
        expect(parseAmount(text, currency)).toBe(minor);
        expect(formatAmount(parseAmount(text, currency), scale)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  test('property: any plain decimal within the scale parses and formats back to itself, padded to the scale', () => {
    const digits = fc.constantFrom(...'0123456789');
    const decimal = fc
      .integer({ min: 0, max: CURRENCY_SCALE_MAX })
      .chain((scale) => fc.record({ scale: fc.constant(scale), whole: fc.bigInt({ min: 0n, max: 10n ** 15n }), fraction: fc.string({ unit: digits, maxLength: scale }) }))
      .filter(({ whole, fraction }) => whole > 0n || /[1-9]/.test(fraction));
    fc.assert(
      fc.property(decimal, ({ scale, whole, fraction }) => {
        const text = fraction === '' ? `${whole}` : `${whole}.${fraction}`;
        const expected = scale === 0 ? text : `${whole}.${fraction.padEnd(scale, '0')}`;
        expect(formatAmount(parseAmount(text, { code: 'ANY', scale }), scale)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('toDecimal, fromDecimal and convert', () => {
  test('toDecimal gives the exact value in major units', () => {
    expect(toDecimal(150n, 2).toString()).toBe('1.5');
    expect(toDecimal(-5n, 2).toString()).toBe('-0.05');
    expect(toDecimal(1n, 18).toString()).toBe('0.000000000000000001');
    expect(toDecimal(AMOUNT_MINOR_MAX, 0).toFixed()).toBe(AMOUNT_MINOR_MAX.toString());
  });

  const modes: readonly [RoundingMode, bigint, bigint, bigint][] = [
    // mode, 2.345 → , -2.345 → , 2.355 →  (at scale 2)
    ['up', 235n, -235n, 236n],
    ['down', 234n, -234n, 235n],
    ['ceil', 235n, -234n, 236n],
    ['floor', 234n, -235n, 235n],
    ['half-up', 235n, -235n, 236n],
    ['half-down', 234n, -234n, 235n],
    ['half-even', 234n, -234n, 236n],
  ];
  test.each(modes)('fromDecimal rounds with %s', (mode, positive, negative, otherTie) => {
    expect(fromDecimal('2.345', 2, mode)).toBe(positive);
    expect(fromDecimal('-2.345', 2, mode)).toBe(negative);
    expect(fromDecimal('2.355', 2, mode)).toBe(otherTie);
    expect(fromDecimal('2.34', 2, mode)).toBe(234n);
  });

  test('fromDecimal rounds values off a tie the same in every nearest mode', () => {
    for (const mode of ['half-up', 'half-down', 'half-even'] as const) {
      expect(fromDecimal('2.3451', 2, mode)).toBe(235n);
      expect(fromDecimal('2.3449', 2, mode)).toBe(234n);
    }
  });

  test('fromDecimal is the inverse of toDecimal at the same scale', () => {
    for (const minor of [0n, 1n, -1n, 123_456_789n, AMOUNT_MINOR_MAX]) {
      expect(fromDecimal(toDecimal(minor, 18), 18, 'down')).toBe(minor);
    }
  });

  test('fromDecimal rejects non-finite values and results beyond AMOUNT_MINOR_MAX', () => {
    expect(reasonOf(() => fromDecimal('NaN', 2, 'half-even'))).toBe('not_finite');
    expect(reasonOf(() => fromDecimal('Infinity', 2, 'half-even'))).toBe('not_finite');
    expect(reasonOf(() => fromDecimal(AMOUNT_MINOR_MAX.toString(), 2, 'half-even'))).toBe('too_large');
    expect(reasonOf(() => fromDecimal(`-${AMOUNT_MINOR_MAX.toString()}`, 2, 'half-even'))).toBe('too_large');
    expect(fromDecimal(`-${AMOUNT_MINOR_MAX.toString()}`, 0, 'half-even')).toBe(-AMOUNT_MINOR_MAX);
  });

  test('an unknown rounding mode is InvalidInputError at rounding, never a silent half-even', () => {
    // 1.005 is a tie at scale 2: half-even would give 100n where the caller asked half-up (101n).
    for (const mode of ['half_up', 'HALF-UP', '', 'toString', 'constructor']) {
      const rounding = mode as RoundingMode;
      expect(() => fromDecimal('1.005', 2, rounding)).toThrow(InvalidInputError);
      expect(() => convert(1_005n, KWD, USD, '1', rounding)).toThrow(InvalidInputError);
      const error = (() => {
        try {
          fromDecimal('1.005', 2, rounding);
        } catch (caught) {
          return caught as InvalidInputError;
        }
        return undefined;
      })();
      expect(error?.issues[0]?.path).toEqual(['rounding']);
    }
    expect(fromDecimal('1.005', 2, 'half-up')).toBe(101n);
  });

  test('fromDecimal refuses a value that is not a number with InvalidAmountError, and a scale outside 0..CURRENCY_SCALE_MAX with InvalidInputError', () => {
    for (const value of ['abc', '', '1,5', '0x1g']) expect(reasonOf(() => fromDecimal(value, 2, 'half-even'))).toBe('malformed');
    for (const scale of [-1, 1.5, CURRENCY_SCALE_MAX + 1, Number.NaN]) {
      expect(() => fromDecimal('1.5', scale, 'half-even')).toThrow(InvalidInputError);
      expect(() => toDecimal(150n, scale)).toThrow(InvalidInputError);
    }
    expect(fromDecimal('1.5', CURRENCY_SCALE_MAX, 'half-even')).toBe(15n * 10n ** 17n);
    expect(toDecimal(1n, CURRENCY_SCALE_MAX).toString()).toBe('0.000000000000000001');
  });

  test('convert applies an explicit decimal rate and rounds once, at the end, with the given mode', () => {
    expect(convert(10_000n, EUR, USD, '1.0842', 'half-even')).toBe(10_842n);
    // 1.00 EUR at 1.085 is 108.5 US cents: a tie, settled by the mode alone.
    expect(convert(100n, EUR, USD, '1.085', 'half-even')).toBe(108n);
    expect(convert(100n, EUR, USD, '1.085', 'half-down')).toBe(108n);
    expect(convert(100n, EUR, USD, '1.085', 'half-up')).toBe(109n);
    expect(convert(100n, EUR, USD, '1.085', 'floor')).toBe(108n);
    expect(convert(100n, EUR, USD, '1.085', 'ceil')).toBe(109n);
    // 108.45 cents is below the tie, so every nearest mode goes down; only 'up' goes up.
    expect(convert(100n, EUR, USD, '1.0845', 'half-up')).toBe(108n);
    expect(convert(100n, EUR, USD, '1.0845', 'up')).toBe(109n);
  });

  test('convert moves between scales: JPY (0) to EUR (2) to KWD (3)', () => {
    expect(convert(1_000n, JPY, EUR, '0.0061', 'half-even')).toBe(610n); // ¥1000 → 6.10 EUR
    expect(convert(12_345n, EUR, KWD, '0.3333', 'down')).toBe(41_145n); // 123.45 × 0.3333 = 41.145885
    expect(convert(12_345n, EUR, KWD, '0.3333', 'up')).toBe(41_146n);
    expect(convert(1n, EUR, JPY, '163.9', 'half-even')).toBe(2n); // 0.01 EUR → ¥1.639
  });

  test('convert is exact with 18-decimal tokens, where a float would lose digits', () => {
    expect(convert(1n, TOKEN, TOKEN, '1.000000000000000001', 'down')).toBe(1n);
    expect(convert(10n ** 18n, TOKEN, TOKEN, '1.000000000000000001', 'down')).toBe(10n ** 18n + 1n);
  });

  test('convert refuses a rate that is not a positive plain decimal string', () => {
    expect(reasonOf(() => convert(100n, EUR, USD, '1e3', 'half-even'))).toBe('malformed');
    expect(reasonOf(() => convert(100n, EUR, USD, '-1.1', 'half-even'))).toBe('malformed');
    expect(reasonOf(() => convert(100n, EUR, USD, '', 'half-even'))).toBe('malformed');
    expect(reasonOf(() => convert(100n, EUR, USD, '0', 'half-even'))).toBe('zero');
    expect(reasonOf(() => convert(100n, EUR, USD, '0.000', 'half-even'))).toBe('zero');
    expect(reasonOf(() => convert(100n, EUR, USD, 1.1 as unknown as string, 'half-even'))).toBe('malformed');
  });
});

describe('parseAmount given options or a currency of the wrong shape', () => {
  test('options that are not an object are InvalidInputError at options whatever the amount, not a TypeError or a result', () => {
    for (const options of [null, 'allowZero', 1, true]) {
      for (const amount of ['0', '1', '12.34', 'x', 5]) {
        expect(() => parseAmount(amount, EUR, options as never), `${String(options)} ${String(amount)}`).toThrow(
          expect.objectContaining({ name: 'InvalidInputError', issues: [expect.objectContaining({ path: ['options'] })] }),
        );
      }
    }
    // Left out or undefined, they still mean the defaults.
    expect(parseAmount('1', EUR)).toBe(100n);
    expect(parseAmount('1', EUR, undefined)).toBe(100n);
    expect(parseAmount('0', EUR, { allowZero: true })).toBe(0n);
  });

  test('a currency that is not an object with an integer scale in range is InvalidInputError at currency, not a TypeError', () => {
    const bad = [null, undefined, 'EUR', { code: 'EUR' }, { code: 'EUR', scale: 1.5 }, { code: 'EUR', scale: -1 }, { code: 'EUR', scale: CURRENCY_SCALE_MAX + 1 }, { code: 'EUR', scale: '2' }];
    for (const currency of bad) {
      for (const amount of ['0', '1', '1.00']) {
        expect(() => parseAmount(amount, currency as never), `${JSON.stringify(currency)} ${amount}`).toThrow(
          expect.objectContaining({ name: 'InvalidInputError', issues: [expect.objectContaining({ path: ['currency'] })] }),
        );
      }
    }
    // A currency of the same shape from elsewhere (another copy of the package) serves.
    expect(parseAmount('1.5', { code: 'EUR', scale: 2 })).toBe(150n);
  });
});

describe('money helpers given input no amount can be', () => {
  test('fromDecimal refuses an exponent far out of range as too_large without writing its digits out, and reads a vanishing one as zero', () => {
    for (const value of ['1e1000000000', '-1e1000000000', '1e900000000000000', new Decimal('1e400000000')]) {
      expect(reasonOf(() => fromDecimal(value, 2, 'half-even')), String(value)).toBe('too_large');
    }
    expect(fromDecimal('1e-1000000000', 2, 'half-even')).toBe(0n);
    expect(fromDecimal('1e-1000000000', 2, 'up')).toBe(1n);
    // The edges of the range still answer.
    expect(fromDecimal(`${AMOUNT_MINOR_MAX}e-2`, 2, 'down')).toBe(AMOUNT_MINOR_MAX);
    expect(reasonOf(() => fromDecimal(`${AMOUNT_MINOR_MAX + 1n}e-2`, 2, 'down'))).toBe('too_large');
  });

  test('fromDecimal refuses a string longer than FROM_DECIMAL_STRING_LENGTH_MAX as malformed; at the limit it reads it', () => {
    expect(reasonOf(() => fromDecimal(`0.${'1'.repeat(FROM_DECIMAL_STRING_LENGTH_MAX - 1)}`, 2, 'down'))).toBe('malformed');
    expect(fromDecimal(`0.${'1'.repeat(FROM_DECIMAL_STRING_LENGTH_MAX - 2)}`, 2, 'down')).toBe(11n);
  });

  test('convert refuses a long rate with a message that shows it cut short', () => {
    let error: unknown;
    try {
      convert(1n, EUR, USD, 'x'.repeat(1_000_000), 'down');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidAmountError);
    expect((error as Error).message.length).toBeLessThan(200);
    expect(reasonOf(() => convert(1n, EUR, USD, `1.${'0'.repeat(AMOUNT_STRING_LENGTH_MAX)}`, 'down'))).toBe('malformed');
  });

  test('formatAmount and toDecimal refuse minor units that are not a bigint, and formatAmount a scale out of range, with InvalidInputError', () => {
    for (const minor of [1.5, Number.NaN, '150', null]) {
      expect(() => formatAmount(minor as unknown as bigint, 2), String(minor)).toThrow(InvalidInputError);
      expect(() => toDecimal(minor as unknown as bigint, 2), String(minor)).toThrow(InvalidInputError);
    }
    for (const scale of [-1, 1.5, CURRENCY_SCALE_MAX + 1, Number.NaN]) expect(() => formatAmount(150n, scale), String(scale)).toThrow(InvalidInputError);
  });
});

describe('money helpers given arguments of the wrong type from JavaScript', () => {
  test('convert refuses a from or to that is not a currency with InvalidInputError at from or to, not a TypeError', () => {
    const bad = [null, undefined, 'EUR', 2, { code: 'EUR' }, { scale: 2 }, { code: Symbol('EUR'), scale: 2 }, { code: 'EUR', scale: 1.5 }, { code: 'EUR', scale: CURRENCY_SCALE_MAX + 1 }];
    for (const currency of bad) {
      const shown = String(typeof currency === 'object' && currency !== null ? JSON.stringify(currency) : typeof currency);
      expect(issuePathsOf(() => convert(100n, currency as never, EUR, '1', 'half-even')), shown).toEqual([['from']]);
      expect(issuePathsOf(() => convert(100n, EUR, currency as never, '1', 'half-even')), shown).toEqual([['to']]);
    }
    // A currency of the same shape from elsewhere (another copy of the package) serves.
    expect(convert(100n, { code: 'EUR', scale: 2 }, { code: 'JPY', scale: 0 }, '163.9', 'half-even')).toBe(164n);
  });

  test('convert checks its other arguments before the rate, so the answer does not depend on it', () => {
    for (const rate of ['1', 'x', '0']) {
      expect(issuePathsOf(() => convert(1.5 as unknown as bigint, EUR, USD, rate, 'half-even')), rate).toEqual([['minor']]);
      expect(issuePathsOf(() => convert(null as unknown as bigint, EUR, USD, rate, 'half-even')), rate).toEqual([['minor']]);
      expect(issuePathsOf(() => convert(100n, EUR, USD, rate, undefined as unknown as RoundingMode)), rate).toEqual([['rounding']]);
      expect(issuePathsOf(() => convert(100n, EUR, USD, rate, 'nearest' as RoundingMode)), rate).toEqual([['rounding']]);
    }
    expect(reasonOf(() => convert(100n, EUR, USD, null as unknown as string, 'half-even'))).toBe('malformed');
    expect(convert(100n, EUR, USD, '1', 'half-even')).toBe(100n);
  });

  test('parseAmount refuses a currency whose code is not a string at currency, whatever the amount, not a TypeError', () => {
    for (const code of [Symbol('EUR'), 978, null, undefined]) {
      for (const amount of ['1.234', '1', '0', 'x']) {
        expect(issuePathsOf(() => parseAmount(amount, { code, scale: 2 } as never)), `${String(code)} ${amount}`).toEqual([['currency']]);
      }
    }
    expect(reasonOf(() => parseAmount('1.234', { code: 'EUR', scale: 2 }))).toBe('too_many_decimals');
  });

  test('fromDecimal refuses, as malformed, a value that cannot even be shown as a string', () => {
    const throwing = {
      toString(): string {
        throw new Error('toString called');
      },
    };
    for (const value of [Object.create(null) as object, throwing, () => 1]) {
      expect(reasonOf(() => fromDecimal(value as never, 2, 'down'))).toBe('malformed');
    }
    expect(reasonOf(() => fromDecimal(null as never, 2, 'down'))).toBe('malformed');
    expect(fromDecimal(new Decimal('1.5'), 2, 'down')).toBe(150n);
  });
});
