import { InvalidInputError, LimitExceededError, UnknownCurrencyError } from '../errors.js';

/** A currency or asset: its code and its scale (number of decimal places of its minor unit). */
export interface Currency {
  /** ISO 4217 alphabetic code, or a declared custom asset code (`[A-Z][A-Z0-9_]{1,11}`). */
  readonly code: string;
  /** Decimal places of the minor unit: 2 for EUR (cents), 0 for JPY, 18 for a typical token. */
  readonly scale: number;
}

/** Largest scale a currency may declare. */
export const CURRENCY_SCALE_MAX = 18;
/** Most custom assets one registry accepts. */
export const CUSTOM_CURRENCIES_MAX = 1_024;

const CODE_PATTERN = /^[A-Z][A-Z0-9_]{1,11}$/;

// ISO 4217 active codes whose minor unit is not 2 decimal places.
const ISO_SCALE_0 = 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF';
const ISO_SCALE_3 = 'BHD IQD JOD KWD LYD OMR TND';
const ISO_SCALE_4 = 'CLF UYW';
// ISO 4217 active codes with 2 decimal places.
const ISO_SCALE_2 =
  'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD ' +
  'CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS ' +
  'GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL ' +
  'MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK ' +
  'PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS ' +
  'TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG';

function isoTable(): Map<string, Currency> {
  const table = new Map<string, Currency>();
  const add = (codes: string, scale: number): void => {
    for (const code of codes.split(' ')) table.set(code, Object.freeze({ code, scale }));
  };
  add(ISO_SCALE_2, 2);
  add(ISO_SCALE_0, 0);
  add(ISO_SCALE_3, 3);
  add(ISO_SCALE_4, 4);
  return table;
}

/**
 * The currencies a ledger accepts: every active ISO 4217 currency, plus custom assets
 * declared with their own scale (a loyalty point at scale 0, a token at scale 18).
 *
 * A registry is immutable once built; declare custom assets up front:
 * ```ts
 * const currencies = new CurrencyRegistry([{ code: 'POINTS', scale: 0 }]);
 * currencies.get('EUR').scale; // 2
 * ```
 */
export class CurrencyRegistry {
  readonly #byCode: Map<string, Currency>;

  /**
   * @param custom custom assets to declare besides ISO 4217. A custom code may not redefine an
   *   ISO code with a different scale. At most {@link CUSTOM_CURRENCIES_MAX}. Something that is not
   *   an array (`null`, say) is refused with `InvalidInputError` at `custom`, and an entry that is
   *   not an object with `InvalidInputError` at `custom.<index>`; a code or scale off its rule with
   *   `LimitExceededError`.
   */
  constructor(custom: readonly Currency[] = []) {
    if (!Array.isArray(custom)) throw new InvalidInputError([{ path: ['custom'], message: 'must be an array of { code, scale } currencies' }]);
    if (custom.length > CUSTOM_CURRENCIES_MAX) {
      throw new LimitExceededError(`at most ${CUSTOM_CURRENCIES_MAX} custom currencies, got ${custom.length}`);
    }
    this.#byCode = isoTable();
    for (let index = 0; index < custom.length; index += 1) {
      const currency = custom[index] as Currency;
      if (typeof currency !== 'object' || currency === null) {
        throw new InvalidInputError([{ path: ['custom', index], message: 'must be a { code, scale } currency' }]);
      }
      // A code that is not a string (a symbol would make the pattern's test throw a TypeError).
      if (typeof currency.code !== 'string' || !CODE_PATTERN.test(currency.code)) {
        const shown = typeof currency.code === 'string' ? JSON.stringify(currency.code.slice(0, 16)) : `of type ${typeof currency.code}`;
        throw new LimitExceededError(`currency code ${shown} must match ${CODE_PATTERN}`);
      }
      if (!Number.isInteger(currency.scale) || currency.scale < 0 || currency.scale > CURRENCY_SCALE_MAX) {
        throw new LimitExceededError(`currency ${currency.code}: scale must be an integer in 0..${CURRENCY_SCALE_MAX}`);
      }
      const existing = this.#byCode.get(currency.code);
      if (existing !== undefined && existing.scale !== currency.scale) {
        throw new LimitExceededError(`currency ${currency.code} already has scale ${existing.scale}`);
      }
      this.#byCode.set(currency.code, Object.freeze({ code: currency.code, scale: currency.scale }));
    }
  }

  /**
   * The currency for `code`; throws {@link UnknownCurrencyError} if it is not declared, and
   * `InvalidInputError` at `code` if `code` is not a string (no currency code can be one).
   */
  get(code: string): Currency {
    const currency = this.#byCode.get(code);
    if (currency === undefined) {
      if (typeof code !== 'string') throw new InvalidInputError([{ path: ['code'], message: `must be a currency code (a string), got ${typeof code}` }]);
      throw new UnknownCurrencyError(code);
    }
    return currency;
  }

  /** The currency for `code`, or `undefined`. */
  find(code: string): Currency | undefined {
    return this.#byCode.get(code);
  }

  /** Every declared currency, ISO and custom. */
  list(): Currency[] {
    return [...this.#byCode.values()];
  }
}
