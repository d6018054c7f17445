import { Decimal } from 'decimal.js';
import { InvalidAmountError, InvalidInputError } from '../errors.js';
import { checkOptions } from '../input/options.js';
import { CURRENCY_SCALE_MAX, type Currency } from './currency.js';

/**
 * Most significant digits an amount may have, whatever its scale. 10^36 minor units is far above
 * any real balance and keeps every sum of a ledger's amounts exact in a bigint.
 */
export const AMOUNT_DIGITS_MAX = 36;
/** Largest amount in minor units: 10^36 - 1. */
export const AMOUNT_MINOR_MAX = 10n ** BigInt(AMOUNT_DIGITS_MAX) - 1n;
/** Longest amount string accepted before any parsing (guards against huge inputs). */
export const AMOUNT_STRING_LENGTH_MAX = 64;

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/** Options for {@link parseAmount}. */
export interface ParseAmountOptions {
  /** Accept `"0"`. Default `false`: transfers need a positive amount. */
  readonly allowZero?: boolean;
}

/**
 * Parses an untrusted decimal string into exact minor units of `currency`.
 *
 * Accepts only plain decimals (`"12"`, `"12.5"`, `"0.05"`); rejects, with an
 * {@link InvalidAmountError}: non-strings, empty strings, signs, spaces, exponent notation,
 * `NaN`/`Infinity`, leading zeros, more decimals than the currency's scale (never rounds),
 * zero unless allowed, and anything above {@link AMOUNT_MINOR_MAX}. Options that are not an object
 * (`null`, say; left out they mean the defaults) are refused with `InvalidInputError` at
 * `options`, and a `currency` that is not an object with a string `code` and an integer `scale`
 * in 0..{@link CURRENCY_SCALE_MAX} at `currency`, whatever the amount.
 */
export function parseAmount(input: unknown, currency: Currency, options: ParseAmountOptions = {}): bigint {
  // Checked first, so that the answer never depends on the amount.
  checkOptions(options);
  checkCurrency(currency, 'currency');
  if (typeof input !== 'string') {
    throw new InvalidAmountError('not_a_string', `amount must be a decimal string, got ${typeof input}`);
  }
  if (input.length === 0) throw new InvalidAmountError('empty', 'amount is empty');
  if (input.length > AMOUNT_STRING_LENGTH_MAX) {
    throw new InvalidAmountError('too_large', `amount is longer than ${AMOUNT_STRING_LENGTH_MAX} characters`);
  }
  const small = smallMinorOf(input, currency.scale);
  if (small > 0) return BigInt(small);
  const match = DECIMAL.exec(input);
  if (match === null) throw new InvalidAmountError(classifyMalformed(input), `amount ${JSON.stringify(input)} is not a plain decimal`);
  const whole = match[1] ?? '0';
  const fraction = match[2] ?? '';
  if (fraction.length > currency.scale) {
    throw new InvalidAmountError(
      'too_many_decimals',
      `amount ${input} has ${fraction.length} decimals; ${currency.code} allows ${currency.scale}`,
    );
  }
  const minor = BigInt(whole + fraction.padEnd(currency.scale, '0'));
  if (minor > AMOUNT_MINOR_MAX) {
    throw new InvalidAmountError('too_large', `amount ${input} is above the maximum of ${AMOUNT_DIGITS_MAX} digits`);
  }
  if (minor === 0n && options.allowZero !== true) throw new InvalidAmountError('zero', 'amount must be greater than zero');
  return minor;
}

// Digits a double holds exactly (2^53 > 10^15).
const EXACT_DIGITS_MAX = 15;
const CHAR_0 = 48;
const CHAR_9 = 57;
const CHAR_DOT = 46;

/**
 * The common case without the regular expression, string building and bigint parse: a plain
 * decimal whose minor units have at most {@link EXACT_DIGITS_MAX} digits, so a double holds them
 * exactly. Returns the positive minor units, or 0 for anything else (zero, too many decimals,
 * malformed, long), which the general path then parses or rejects with its precise reason.
 */
function smallMinorOf(input: string, scale: number): number {
  const length = input.length;
  let minor = 0;
  let index = 0;
  let code = input.charCodeAt(0);
  if (code === CHAR_0) {
    index = 1;
  } else {
    while (index < length) {
      code = input.charCodeAt(index);
      if (code < CHAR_0 || code > CHAR_9) break;
      minor = minor * 10 + (code - CHAR_0);
      index += 1;
    }
    if (index === 0) return 0;
  }
  let decimals = 0;
  if (index < length) {
    if (input.charCodeAt(index) !== CHAR_DOT || index === length - 1) return 0;
    for (index += 1; index < length; index += 1) {
      code = input.charCodeAt(index);
      if (code < CHAR_0 || code > CHAR_9) return 0;
      minor = minor * 10 + (code - CHAR_0);
      decimals += 1;
    }
    if (decimals > scale) return 0;
  }
  // Digits of the whole part (without a leading "0") plus the scale: the digits of the minor units.
  const wholeDigits = length - (decimals === 0 ? 0 : decimals + 1) - (input.charCodeAt(0) === CHAR_0 ? 1 : 0);
  if (wholeDigits + scale > EXACT_DIGITS_MAX) return 0;
  for (let i = decimals; i < scale; i += 1) minor *= 10;
  return minor;
}

function classifyMalformed(input: string): 'negative' | 'exponent' | 'not_finite' | 'malformed' {
  const trimmed = input.trim();
  if (/^-/.test(trimmed)) return 'negative';
  if (/^[+-]?(nan|infinity|inf)$/i.test(trimmed)) return 'not_finite';
  if (/^[+-]?[0-9.]+e[+-]?[0-9]+$/i.test(trimmed)) return 'exponent';
  return 'malformed';
}

/**
 * Formats minor units as a decimal string with exactly `scale` decimals: 150n at scale 2 is
 * `"1.50"`, -5n is `"-0.05"`. Exact for any bigint. Throws `InvalidInputError` for `minor` that is
 * not a bigint (a number would be formatted as something it is not) or a scale that is not an
 * integer in 0..{@link CURRENCY_SCALE_MAX}.
 */
export function formatAmount(minor: bigint, scale: number): string {
  checkMinor(minor);
  checkScale(scale);
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString();
  if (scale === 0) return negative ? `-${digits}` : digits;
  const padded = digits.padStart(scale + 1, '0');
  const cut = padded.length - scale;
  const text = `${padded.slice(0, cut)}.${padded.slice(cut)}`;
  return negative ? `-${text}` : text;
}

/** How to round when a result has more decimals than the target scale. */
export type RoundingMode = 'up' | 'down' | 'ceil' | 'floor' | 'half-up' | 'half-down' | 'half-even';

const ROUNDING: Record<RoundingMode, Decimal.Rounding> = {
  up: Decimal.ROUND_UP,
  down: Decimal.ROUND_DOWN,
  ceil: Decimal.ROUND_CEIL,
  floor: Decimal.ROUND_FLOOR,
  'half-up': Decimal.ROUND_HALF_UP,
  'half-down': Decimal.ROUND_HALF_DOWN,
  'half-even': Decimal.ROUND_HALF_EVEN,
};

// Enough precision that no intermediate product of two in-range amounts or rates is rounded.
const Exact = Decimal.clone({ precision: 100, rounding: Decimal.ROUND_HALF_EVEN, toExpNeg: -100, toExpPos: 100 });

/**
 * Minor units as an exact decimal.js value in major units (150n, scale 2 → 1.5). Throws
 * `InvalidInputError` for `minor` that is not a bigint or a scale that is not an integer in
 * 0..{@link CURRENCY_SCALE_MAX}.
 */
export function toDecimal(minor: bigint, scale: number): Decimal {
  checkMinor(minor);
  checkScale(scale);
  return new Exact(minor.toString()).dividedBy(new Exact(10).pow(scale));
}

/** Longest string {@link fromDecimal} reads: far more digits than any amount in range needs. */
export const FROM_DECIMAL_STRING_LENGTH_MAX = 1_000;

/** ±{@link AMOUNT_MINOR_MAX} as a decimal, to compare a rounded value before it is written out. */
const AMOUNT_MINOR_MAX_DECIMAL = AMOUNT_MINOR_MAX.toString();

/**
 * Rounds a decimal.js value in major units to minor units of `scale` with an explicit rounding
 * mode. Throws {@link InvalidAmountError} if the value is not a number (`malformed`, also for a
 * string longer than {@link FROM_DECIMAL_STRING_LENGTH_MAX}), not finite, or the result is outside
 * ±{@link AMOUNT_MINOR_MAX} (`too_large`, found before any digit of it is written out, however
 * large an exponent asks for); `InvalidInputError` for a rounding mode
 * that is not a {@link RoundingMode} (it is never replaced by a default) or a scale that is not an
 * integer in 0..{@link CURRENCY_SCALE_MAX}.
 */
export function fromDecimal(value: Decimal.Value, scale: number, rounding: RoundingMode): bigint {
  checkScale(scale);
  checkRounding(rounding);
  if (typeof value === 'string' && value.length > FROM_DECIMAL_STRING_LENGTH_MAX) {
    throw new InvalidAmountError('malformed', `value is longer than ${FROM_DECIMAL_STRING_LENGTH_MAX} characters`);
  }
  let exact: Decimal;
  try {
    exact = new Exact(value);
  } catch {
    // Only a primitive is shown: turning an object into a string can throw again (one without a
    // prototype, or whose toString throws).
    const type = value === null ? 'null' : typeof value;
    const shown = type === 'string' ? JSON.stringify((value as string).slice(0, AMOUNT_STRING_LENGTH_MAX)) : type === 'object' || type === 'function' || type === 'null' ? `of type ${type}` : String(value);
    throw new InvalidAmountError('malformed', `value ${shown} is not a number`);
  }
  const scaled = exact.times(new Exact(10).pow(scale)).toDecimalPlaces(0, ROUNDING[rounding]);
  if (!scaled.isFinite()) throw new InvalidAmountError('not_finite', 'value is not finite');
  // Compared as a decimal first: writing out the digits of 1e1000000000 would take minutes and
  // all the memory there is.
  if (scaled.abs().greaterThan(AMOUNT_MINOR_MAX_DECIMAL)) {
    throw new InvalidAmountError('too_large', `value is above the maximum of ${AMOUNT_DIGITS_MAX} digits`);
  }
  return BigInt(scaled.toFixed(0));
}

/**
 * Converts an amount between currencies at an explicit rate (`1 from = rate to`), rounding once,
 * at the end, with the given mode. The rate is a decimal string, never a float:
 * ```ts
 * convert(10_000n, EUR, USD, '1.0842', 'half-even'); // 10842n (108.42 USD)
 * ```
 * The other arguments are checked before the rate, and refused with `InvalidInputError`: `minor`
 * that is not a bigint at `minor`, a `from` or `to` that is not a currency (an object with a
 * string `code` and an integer `scale` in 0..{@link CURRENCY_SCALE_MAX}) at `from` or `to`, and a
 * rounding mode that is not a {@link RoundingMode} at `rounding`. A rate that is not a positive
 * plain decimal string of at most {@link AMOUNT_STRING_LENGTH_MAX} characters is refused with
 * {@link InvalidAmountError} (`malformed`, or `zero`), and so is a result outside
 * ±{@link AMOUNT_MINOR_MAX} (`too_large`).
 */
export function convert(minor: bigint, from: Currency, to: Currency, rate: string, rounding: RoundingMode): bigint {
  checkMinor(minor);
  checkCurrency(from, 'from');
  checkCurrency(to, 'to');
  checkRounding(rounding);
  // The length first: the message shows the rate, cut short, and the pattern need not scan a long one.
  if (typeof rate !== 'string' || rate.length > AMOUNT_STRING_LENGTH_MAX || !/^(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(rate)) {
    const shown = typeof rate === 'string' ? JSON.stringify(rate.slice(0, AMOUNT_STRING_LENGTH_MAX)) : typeof rate;
    throw new InvalidAmountError('malformed', `rate ${shown} must be a positive plain decimal string of at most ${AMOUNT_STRING_LENGTH_MAX} characters`);
  }
  const rateValue = new Exact(rate);
  if (rateValue.isZero()) throw new InvalidAmountError('zero', 'rate must be greater than zero');
  return fromDecimal(toDecimal(minor, from.scale).times(rateValue), to.scale, rounding);
}

/**
 * Refuses, with `InvalidInputError` at `[field]`, a currency that is not an object with a string
 * `code` and an integer `scale` in 0..{@link CURRENCY_SCALE_MAX}: a JavaScript caller may pass
 * `null`, and a code that is not a string (a symbol) cannot be put in a message.
 */
function checkCurrency(currency: Currency, field: string): void {
  if (
    typeof currency !== 'object' ||
    currency === null ||
    typeof currency.code !== 'string' ||
    !Number.isInteger(currency.scale) ||
    currency.scale < 0 ||
    currency.scale > CURRENCY_SCALE_MAX
  ) {
    throw new InvalidInputError([{ path: [field], message: `must be a Currency: { code, scale } with a string code and an integer scale in 0..${CURRENCY_SCALE_MAX}` }]);
  }
}

function checkRounding(rounding: RoundingMode): void {
  // A mode from JavaScript or configuration may be anything; decimal.js would round an unknown
  // one (undefined) with its default, half-even, without a word.
  if (typeof rounding !== 'string' || !Object.hasOwn(ROUNDING, rounding)) {
    throw new InvalidInputError([{ path: ['rounding'], message: `must be one of ${Object.keys(ROUNDING).join(', ')}` }]);
  }
}

function checkMinor(minor: bigint): void {
  if (typeof minor !== 'bigint') throw new InvalidInputError([{ path: ['minor'], message: `must be a bigint of minor units, got ${typeof minor}` }]);
}

function checkScale(scale: number): void {
  if (!Number.isInteger(scale) || scale < 0 || scale > CURRENCY_SCALE_MAX) {
    throw new InvalidInputError([{ path: ['scale'], message: `must be an integer in 0..${CURRENCY_SCALE_MAX}` }]);
  }
}
