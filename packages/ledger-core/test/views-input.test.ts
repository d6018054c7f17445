import { describe, expect, it } from 'vitest';
import { balanceOf, CurrencyRegistry, InvalidInputError, LedgerError, trialBalanceOf, type AccountState } from '@ledgerkit/ledger-core';

// balanceOf and trialBalanceOf, called from JavaScript with an argument of the wrong type: a
// typed InvalidInputError naming the argument, never a raw TypeError from inside.

const currencies = new CurrencyRegistry();

function account(id: string, type: AccountState['type'], debits: bigint, credits: bigint): AccountState {
  return {
    id,
    currency: 'EUR',
    type,
    normalSide: type === 'asset' || type === 'expense' ? 'debit' : 'credit',
    flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
    metadata: {},
    openedAtVersion: 1,
    openedAtMs: 0,
    status: 'open',
    debitsPosted: debits,
    creditsPosted: credits,
    debitsPending: 0n,
    creditsPending: 0n,
  };
}

const bank = account('bank', 'asset', 1_500n, 0n);
const alice = account('alice', 'liability', 0n, 1_500n);

/** The path of the InvalidInputError `call` throws; fails the test on anything else. */
function pathOf(call: () => unknown, what: string): unknown {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, what).toBeInstanceOf(InvalidInputError);
  expect(thrown, what).toBeInstanceOf(LedgerError);
  return (thrown as InvalidInputError).issues[0]?.path;
}

const notRegistries: readonly [string, unknown][] = [
  ['undefined', undefined],
  ['null', null],
  ['a string', 'EUR'],
  ['an object without get', {}],
];

describe('balanceOf with an argument of the wrong type', () => {
  it('refuses an account that is not an object with InvalidInputError at account', () => {
    for (const [name, value] of [['null', null], ['undefined', undefined], ['a string', 'bank'], ['a number', 7]] as const) {
      expect(pathOf(() => balanceOf(value as never, currencies), name), name).toEqual(['account']);
    }
  });

  it('refuses currencies that are not a CurrencyRegistry with InvalidInputError at currencies', () => {
    for (const [name, value] of notRegistries) {
      expect(pathOf(() => balanceOf(bank, value as never), name), name).toEqual(['currencies']);
    }
  });

  it('still formats a good account', () => {
    expect(balanceOf(bank, currencies)).toMatchObject({ accountId: 'bank', posted: '15.00', available: '15.00' });
    expect(balanceOf(alice, currencies)).toMatchObject({ accountId: 'alice', posted: '15.00' });
  });
});

describe('trialBalanceOf with an argument of the wrong type', () => {
  it('refuses accounts that are not an iterable with InvalidInputError at accounts, and an entry that is not an object at its index', () => {
    for (const [name, value] of [['null', null], ['undefined', undefined], ['a number', 3], ['a plain object', { bank }], ['a string', 'bank']] as const) {
      expect(pathOf(() => trialBalanceOf(value as never, currencies), name), name).toEqual(['accounts']);
    }
    expect(pathOf(() => trialBalanceOf([bank, null, alice] as never, currencies), 'a null entry')).toEqual(['accounts', 1]);
  });

  it('refuses currencies that are not a CurrencyRegistry with InvalidInputError at currencies', () => {
    for (const [name, value] of notRegistries) {
      expect(pathOf(() => trialBalanceOf([bank, alice], value as never), name), name).toEqual(['currencies']);
    }
    // Also when there are no accounts: the registry is checked before it would be used.
    expect(pathOf(() => trialBalanceOf([], undefined as never), 'no accounts')).toEqual(['currencies']);
  });

  it('still builds a trial balance from an array, a Map\'s values or a generator', () => {
    const expected = {
      lines: [
        { accountId: 'alice', currency: 'EUR', type: 'liability', debit: '0.00', credit: '15.00' },
        { accountId: 'bank', currency: 'EUR', type: 'asset', debit: '15.00', credit: '0.00' },
      ],
      totals: [{ currency: 'EUR', debits: '15.00', credits: '15.00', balanced: true }],
    };
    expect(trialBalanceOf([bank, alice], currencies)).toEqual(expected);
    expect(trialBalanceOf(new Map([['bank', bank], ['alice', alice]]).values(), currencies)).toEqual(expected);
    expect(
      trialBalanceOf(
        (function* () {
          yield alice;
          yield bank;
        })(),
        currencies,
      ),
    ).toEqual(expected);
    expect(trialBalanceOf([], currencies)).toEqual({ lines: [], totals: [] });
  });
});
