/**
 * `parseAmount` takes a shortcut for short amounts; whatever the input, it must answer exactly as
 * the rule it implements: a plain decimal, no more decimals than the scale, positive, in range.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CurrencyRegistry, InvalidAmountError, parseAmount, parseCommand, type Currency } from '@ledgerkit/ledger-core';

/** The rule, written from the documentation: the minor units, or the reason for refusing. */
function expected(input: string, scale: number, allowZero: boolean): bigint | string {
  if (input.length === 0) return 'empty';
  if (input.length > 64) return 'too_large';
  const match = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(input);
  if (match === null) return 'malformed-or-similar';
  const fraction = match[2] ?? '';
  if (fraction.length > scale) return 'too_many_decimals';
  const minor = BigInt((match[1] ?? '') + fraction.padEnd(scale, '0'));
  if (minor > 10n ** 36n - 1n) return 'too_large';
  if (minor === 0n && !allowZero) return 'zero';
  return minor;
}

function actual(input: string, currency: Currency, allowZero: boolean): bigint | string {
  try {
    return parseAmount(input, currency, { allowZero });
  } catch (error) {
    if (!(error instanceof InvalidAmountError)) throw error;
    return ['negative', 'exponent', 'not_finite', 'malformed'].includes(error.reason) ? 'malformed-or-similar' : error.reason;
  }
}

const amountLike = fc.oneof(
  fc.stringMatching(/^[0-9]{0,20}(\.[0-9]{0,20})?$/),
  fc.string({ unit: fc.constantFrom('0', '1', '9', '.', '-', 'e', ' ', '+'), maxLength: 24 }),
  fc.bigInt({ min: 0n, max: 10n ** 40n }).map(String),
  fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 20n }), fc.bigInt({ min: 0n, max: 10n ** 20n })).map(([a, b]) => `${a}.${b}`),
);

describe('parseAmount', () => {
  it('accepts and refuses exactly what the plain-decimal rule says, for every scale, short or long', () => {
    fc.assert(
      fc.property(amountLike, fc.integer({ min: 0, max: 18 }), fc.boolean(), (input, scale, allowZero) => {
        expect(actual(input, { code: 'TST', scale }, allowZero)).toEqual(expected(input, scale, allowZero));
      }),
      { numRuns: 5_000 },
    );
  });

  it('gives exact minor units at the edge of what a double holds', () => {
    const currency = { code: 'EUR', scale: 2 };
    expect(parseAmount('9999999999999.99', currency)).toBe(999_999_999_999_999n);
    expect(parseAmount('99999999999999.99', currency)).toBe(9_999_999_999_999_999n);
    expect(parseAmount('0.01', currency)).toBe(1n);
    expect(parseAmount('90071992547409.93', currency)).toBe(9_007_199_254_740_993n);
  });

  it('a refused amount in a command names its field: amount, postings.<n>.amount, or under a linked member', () => {
    const currencies = new CurrencyRegistry();
    const pathOf = (run: () => unknown): readonly (string | number)[] | undefined => {
      try {
        run();
      } catch (error) {
        if (error instanceof InvalidAmountError) return error.path;
        throw error;
      }
      return undefined;
    };
    const simple = { transferId: 't1', debitAccountId: 'a', creditAccountId: 'b', amount: '1.005', currency: 'EUR' };
    expect(pathOf(() => parseCommand.transfer(simple, currencies))).toEqual(['amount']);
    const multi = {
      transferId: 't2',
      postings: [
        { accountId: 'a', side: 'debit', amount: '1.00', currency: 'EUR' },
        { accountId: 'b', side: 'credit', amount: '-1', currency: 'EUR' },
      ],
    };
    expect(pathOf(() => parseCommand.transfer(multi, currencies))).toEqual(['postings', 1, 'amount']);
    expect(pathOf(() => parseCommand.linked([{ kind: 'transfer', input: simple }], currencies))).toEqual([0, 'input', 'amount']);
    expect(pathOf(() => parseCommand.postPending({ transferId: 'p', pendingId: 'h', amount: '0', currency: 'EUR' }, currencies))).toEqual(['amount']);
  });
});
