import { describe, expect, test } from 'vitest';
import {
  BALANCE_MINOR_MAX,
  InvariantViolationError,
  REJECTION_CODES,
  evolve,
  initialState,
  type AccountFlags,
  type AccountOpened,
  type AccountType,
  type LedgerEvent,
  type LedgerState,
  type Metadata,
  type Posting,
  type PostPendingCommand,
  type RejectionCode,
  type ReverseTransferCommand,
  type Side,
  type TransferCommand,
  type TransferPending,
  type TransferPosted,
  type VoidPendingCommand,
} from '@ledgerkit/ledger-core';
import { deciderSpec, type GivenEvent } from '@ledgerkit/ledger-core/testing';

const SECOND = 1_000;
const HOUR = 3_600 * SECOND;
const DAY = 24 * HOUR;
const NOW = Date.parse('2025-03-01T12:00:00.000Z');
/** Given events happen a day before the command unless they say otherwise. */
const GIVEN_AT = NOW - DAY;
const WINDOW = 7 * DAY;

const spec = deciderSpec({ nowMs: NOW, backdateWindowMs: WINDOW, givenAtMs: GIVEN_AT });

// ---- fixtures -------------------------------------------------------------------------------

interface AccountOptions {
  readonly currency?: string;
  readonly type?: AccountType;
  readonly flags?: Partial<AccountFlags>;
  readonly metadata?: Metadata;
}

const opened = (accountId: string, options: AccountOptions = {}): AccountOpened => ({
  type: 'AccountOpened',
  accountId,
  currency: options.currency ?? 'EUR',
  accountType: options.type ?? 'asset',
  flags: {
    debitsMustNotExceedCredits: options.flags?.debitsMustNotExceedCredits ?? false,
    creditsMustNotExceedDebits: options.flags?.creditsMustNotExceedDebits ?? false,
  },
  metadata: options.metadata ?? {},
});
/** A customer deposit account: it may never be overdrawn. */
const deposit = (accountId: string, currency = 'EUR'): AccountOpened =>
  opened(accountId, { currency, type: 'liability', flags: { debitsMustNotExceedCredits: true } });
/** A credit line: it may never be credited beyond what it was debited. */
const creditLine = (accountId: string): AccountOpened => opened(accountId, { type: 'asset', flags: { creditsMustNotExceedDebits: true } });

const leg = (accountId: string, side: Side, amount: bigint, currency = 'EUR'): Posting => ({ accountId, side, amount, currency });
const simple = (debit: string, credit: string, amount: bigint, currency = 'EUR'): Posting[] => [
  leg(debit, 'debit', amount, currency),
  leg(credit, 'credit', amount, currency),
];
/** The postings of a reversal of `simple(debit, credit, amount)`: same order, sides swapped. */
const reversed = (debit: string, credit: string, amount: bigint): Posting[] => [leg(debit, 'credit', amount), leg(credit, 'debit', amount)];

const posted = (transferId: string, postings: readonly Posting[], extra: Partial<Omit<TransferPosted, 'type' | 'transferId' | 'postings'>> = {}): TransferPosted => ({
  type: 'TransferPosted',
  transferId,
  postings,
  reference: undefined,
  reversalOf: undefined,
  metadata: {},
  ...extra,
});
const pending = (transferId: string, postings: readonly Posting[], timeoutMs?: number): TransferPending => ({
  type: 'TransferPending',
  transferId,
  postings,
  timeoutMs,
  reference: undefined,
  metadata: {},
});
const at = (event: LedgerEvent, recordedAtMs: number, effectiveAtMs = recordedAtMs): GivenEvent => ({ event, meta: { recordedAtMs, effectiveAtMs } });

const transfer = (transferId: string, postings: readonly Posting[], extra: Partial<Omit<TransferCommand, 'kind' | 'transferId' | 'postings'>> = {}): TransferCommand => ({
  kind: 'transfer',
  transferId,
  postings,
  pending: undefined,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
  ...extra,
});
const hold = (transferId: string, postings: readonly Posting[], timeoutMs?: number, extra: Partial<Omit<TransferCommand, 'kind' | 'transferId' | 'postings' | 'pending'>> = {}): TransferCommand =>
  transfer(transferId, postings, { ...extra, pending: { timeoutMs } });
const postPending = (transferId: string, pendingId: string, amount?: bigint, extra: Partial<Omit<PostPendingCommand, 'kind' | 'transferId' | 'pendingId' | 'amount'>> = {}): PostPendingCommand => ({
  kind: 'postPending',
  transferId,
  pendingId,
  amount,
  currency: amount === undefined ? undefined : 'EUR',
  effectiveAtMs: undefined,
  metadata: {},
  ...extra,
});
const voidPending = (transferId: string, pendingId: string, extra: Partial<Omit<VoidPendingCommand, 'kind' | 'transferId' | 'pendingId'>> = {}): VoidPendingCommand => ({
  kind: 'voidPending',
  transferId,
  pendingId,
  effectiveAtMs: undefined,
  metadata: {},
  ...extra,
});
const reverse = (transferId: string, reversalOf: string, extra: Partial<Omit<ReverseTransferCommand, 'kind' | 'transferId' | 'reversalOf'>> = {}): ReverseTransferCommand => ({
  kind: 'reverseTransfer',
  transferId,
  reversalOf,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
  ...extra,
});

/** cash (asset), alice and bob (deposits); alice holds 100.00 EUR. */
const worldEvents: LedgerEvent[] = [opened('cash'), deposit('alice'), deposit('bob'), posted('fund-alice', simple('cash', 'alice', 10_000n))];
const world: GivenEvent[] = worldEvents;

const balances = (state: LedgerState, accountId: string): [bigint, bigint, bigint, bigint] => {
  const account = state.accounts.get(accountId);
  if (account === undefined) throw new Error(`no account ${accountId}`);
  return [account.debitsPosted, account.creditsPosted, account.debitsPending, account.creditsPending];
};

/** Codes the rules below claim to produce; filled while the tests are collected. */
const claimedCodes = new Set<RejectionCode>();
/** A rule that ends in a rejection: its name states the rule, `codes` the codes it checks. */
function rejectionRule(name: string, codes: readonly RejectionCode[], body: () => void): void {
  for (const code of codes) claimedCodes.add(code);
  test(name, body);
}

// ---- accounts ---------------------------------------------------------------------------------

describe('accounts', () => {
  test('opening an account records AccountOpened with its currency, type, flags and metadata, effective now', () => {
    const { stateAfter } = spec
      .given([])
      .when({ kind: 'openAccount', accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false }, metadata: { owner: 'Alice' } })
      .then([{ event: { ...deposit('alice'), metadata: { owner: 'Alice' } }, effectiveAtMs: NOW }]);
    expect(stateAfter.accounts.get('alice')).toMatchObject({ status: 'open', normalSide: 'credit', openedAtMs: NOW, openedAtVersion: 1 });
  });

  test('opening an existing account again with identical attributes is a retry of the original opening', () => {
    spec
      .given([opened('cash'), deposit('alice')])
      .when({ kind: 'openAccount', accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false }, metadata: {} })
      .thenDuplicate({ ledgerVersion: 2, recordedAtMs: GIVEN_AT });
  });

  rejectionRule('opening an existing account id with a different currency is rejected with account_exists', ['account_exists'], () => {
    spec
      .given([deposit('alice')])
      .when({ kind: 'openAccount', accountId: 'alice', currency: 'USD', type: 'liability', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false }, metadata: {} })
      .thenRejects('account_exists');
  });

  rejectionRule('opening an existing account id with different metadata is rejected with account_exists', ['account_exists'], () => {
    spec
      .given([opened('cash', { metadata: { desk: 'a' } })])
      .when({ kind: 'openAccount', accountId: 'cash', currency: 'EUR', type: 'asset', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: { desk: 'b' } })
      .thenRejects('account_exists');
  });

  rejectionRule('opening an account with both balance flags is rejected with limit_exceeded, since it could never move', ['limit_exceeded'], () => {
    spec
      .given([])
      .when({ kind: 'openAccount', accountId: 'stuck', currency: 'EUR', type: 'asset', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: true }, metadata: {} })
      .thenRejects('limit_exceeded');
  });

  rejectionRule("opening an account or a hold past the writer's stateBytesMax is rejected with ledger_full; a transfer between existing accounts still passes", ['ledger_full'], () => {
    const given = spec.given(world);
    const full = { stateBytesMax: given.state.stateBytes ?? 0 };
    given.when({ kind: 'openAccount', accountId: 'carol', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: {} }, full).thenRejects('ledger_full');
    given.when(hold('h9', simple('alice', 'bob', 1n)), full).thenRejects('ledger_full');
    given.when(transfer('t9', simple('alice', 'bob', 1n)), full).then([posted('t9', simple('alice', 'bob', 1n))]);
  });

  test('freezing an open account records AccountFrozen with its reason', () => {
    const { stateAfter } = spec.given(world).when({ kind: 'freezeAccount', accountId: 'alice', reason: 'court order' }).then([
      { type: 'AccountFrozen', accountId: 'alice', reason: 'court order' },
    ]);
    expect(stateAfter.accounts.get('alice')?.status).toBe('frozen');
  });

  test('unfreezing a frozen account records AccountUnfrozen, after which transfers touch it again', () => {
    const frozen = [...world, { type: 'AccountFrozen', accountId: 'alice', reason: undefined } as const];
    spec.given(frozen).when({ kind: 'unfreezeAccount', accountId: 'alice' }).then([{ type: 'AccountUnfrozen', accountId: 'alice' }]);
    spec
      .given([...frozen, { type: 'AccountUnfrozen', accountId: 'alice' }])
      .when(transfer('t1', simple('alice', 'bob', 100n)))
      .then([posted('t1', simple('alice', 'bob', 100n))]);
  });

  test('closing an account whose debits equal its credits and that has nothing pending records AccountClosed', () => {
    const { stateAfter } = spec
      .given([...world, posted('back', simple('alice', 'cash', 10_000n))])
      .when({ kind: 'closeAccount', accountId: 'alice' })
      .then([{ type: 'AccountClosed', accountId: 'alice' }]);
    expect(stateAfter.accounts.get('alice')?.status).toBe('closed');
    expect(balances(stateAfter, 'alice')).toEqual([10_000n, 10_000n, 0n, 0n]);
  });

  test('a frozen account with a zero balance can be closed', () => {
    spec
      .given([...world, { type: 'AccountFrozen', accountId: 'bob', reason: undefined }])
      .when({ kind: 'closeAccount', accountId: 'bob' })
      .then([{ type: 'AccountClosed', accountId: 'bob' }]);
  });

  rejectionRule('freezing, unfreezing or closing an account that was never opened is rejected with account_not_found', ['account_not_found'], () => {
    const given = spec.given(world);
    given.when({ kind: 'freezeAccount', accountId: 'nobody', reason: undefined }).thenRejects('account_not_found');
    given.when({ kind: 'unfreezeAccount', accountId: 'nobody' }).thenRejects('account_not_found');
    given.when({ kind: 'closeAccount', accountId: 'nobody' }).thenRejects('account_not_found');
  });

  rejectionRule('freezing an account that is already frozen is rejected with account_frozen', ['account_frozen'], () => {
    spec
      .given([...world, { type: 'AccountFrozen', accountId: 'bob', reason: undefined }])
      .when({ kind: 'freezeAccount', accountId: 'bob', reason: 'again' })
      .thenRejects('account_frozen');
  });

  rejectionRule('unfreezing an account that is not frozen is rejected with account_not_frozen', ['account_not_frozen'], () => {
    spec.given(world).when({ kind: 'unfreezeAccount', accountId: 'bob' }).thenRejects('account_not_frozen');
  });

  rejectionRule('freezing, unfreezing or closing a closed account is rejected with account_closed', ['account_closed'], () => {
    const given = spec.given([...world, { type: 'AccountClosed', accountId: 'bob' }]);
    given.when({ kind: 'freezeAccount', accountId: 'bob', reason: undefined }).thenRejects('account_closed');
    given.when({ kind: 'unfreezeAccount', accountId: 'bob' }).thenRejects('account_closed');
    given.when({ kind: 'closeAccount', accountId: 'bob' }).thenRejects('account_closed');
  });

  rejectionRule('closing an account with a non-zero posted balance is rejected with account_not_empty', ['account_not_empty'], () => {
    spec.given(world).when({ kind: 'closeAccount', accountId: 'alice' }).thenRejects('account_not_empty');
  });

  rejectionRule('closing an account with a pending hold, even at zero posted balance, is rejected with account_not_empty', ['account_not_empty'], () => {
    const given = spec.given([...world, pending('h1', simple('alice', 'bob', 500n))]);
    given.when({ kind: 'closeAccount', accountId: 'bob' }).thenRejects('account_not_empty');
  });
});

// ---- transfers --------------------------------------------------------------------------------

describe('transfers', () => {
  test('a simple transfer records TransferPosted effective now and moves posted balances', () => {
    const { stateAfter } = spec
      .given(world)
      .when(transfer('t1', simple('alice', 'bob', 2_500n), { reference: 'rent', metadata: { month: '2025-02' } }))
      .then([{ event: posted('t1', simple('alice', 'bob', 2_500n), { reference: 'rent', metadata: { month: '2025-02' } }), effectiveAtMs: NOW }]);
    expect(balances(stateAfter, 'alice')).toEqual([2_500n, 10_000n, 0n, 0n]);
    expect(balances(stateAfter, 'bob')).toEqual([0n, 2_500n, 0n, 0n]);
  });

  test('a transfer that spends exactly the whole balance of a debitsMustNotExceedCredits account is accepted', () => {
    const { stateAfter } = spec.given(world).when(transfer('t1', simple('alice', 'bob', 10_000n))).then([posted('t1', simple('alice', 'bob', 10_000n))]);
    expect(balances(stateAfter, 'alice')).toEqual([10_000n, 10_000n, 0n, 0n]);
  });

  test('a back-dated transfer within the window keeps its effectiveAt', () => {
    const effectiveAtMs = NOW - HOUR;
    spec
      .given(world)
      .when(transfer('t1', simple('alice', 'bob', 1n), { effectiveAtMs }))
      .then([{ event: posted('t1', simple('alice', 'bob', 1n)), effectiveAtMs }]);
  });

  test('a multi-posting transfer balanced per currency is accepted, even across currencies', () => {
    // Alice pays 10.00 EUR; bob receives 10.84 USD; the FX desk holds one leg per currency.
    const postings = [
      leg('alice', 'debit', 1_000n, 'EUR'),
      leg('fx-eur', 'credit', 1_000n, 'EUR'),
      leg('fx-usd', 'debit', 1_084n, 'USD'),
      leg('bob-usd', 'credit', 1_084n, 'USD'),
    ];
    const { stateAfter } = spec
      .given([...world, opened('fx-eur', { type: 'equity' }), opened('fx-usd', { currency: 'USD', type: 'equity' }), deposit('bob-usd', 'USD')])
      .when(transfer('fx1', postings))
      .then([posted('fx1', postings)]);
    expect(balances(stateAfter, 'bob-usd')).toEqual([0n, 1_084n, 0n, 0n]);
    expect(balances(stateAfter, 'fx-eur')).toEqual([0n, 1_000n, 0n, 0n]);
  });

  test('a three-posting transfer splitting one debit over two credits is accepted', () => {
    const postings = [leg('alice', 'debit', 300n), leg('bob', 'credit', 200n), leg('cash', 'credit', 100n)];
    spec.given(world).when(transfer('split', postings)).then([posted('split', postings)]);
  });

  rejectionRule('a transfer naming an account that was never opened is rejected with account_not_found', ['account_not_found'], () => {
    spec.given(world).when(transfer('t1', simple('alice', 'carol', 100n))).thenRejects('account_not_found');
  });

  rejectionRule('a transfer touching a frozen account is rejected with account_frozen', ['account_frozen'], () => {
    const given = spec.given([...world, { type: 'AccountFrozen', accountId: 'bob', reason: 'kyc' }]);
    given.when(transfer('t1', simple('alice', 'bob', 100n))).thenRejects('account_frozen');
    given.when(hold('h1', simple('alice', 'bob', 100n))).thenRejects('account_frozen');
  });

  rejectionRule('a transfer touching a closed account is rejected with account_closed', ['account_closed'], () => {
    spec
      .given([...world, { type: 'AccountClosed', accountId: 'bob' }])
      .when(transfer('t1', simple('alice', 'bob', 100n)))
      .thenRejects('account_closed');
  });

  rejectionRule("a posting in a currency other than its account's is rejected with currency_mismatch", ['currency_mismatch'], () => {
    spec
      .given([...world, opened('usd-cash', { currency: 'USD' }), deposit('bob-usd', 'USD')])
      .when(transfer('t1', simple('usd-cash', 'bob', 100n, 'USD')))
      .thenRejects('currency_mismatch');
  });

  rejectionRule('a two-posting transfer whose debit and credit amounts differ is rejected with unbalanced_postings', ['unbalanced_postings'], () => {
    spec
      .given(world)
      .when(transfer('t1', [leg('alice', 'debit', 100n), leg('bob', 'credit', 99n)]))
      .thenRejects('unbalanced_postings');
  });

  rejectionRule('a transfer whose postings are all on the same side is rejected with unbalanced_postings', ['unbalanced_postings'], () => {
    spec
      .given(world)
      .when(transfer('t1', [leg('alice', 'debit', 100n), leg('bob', 'debit', 100n)]))
      .thenRejects('unbalanced_postings');
  });

  rejectionRule('a transfer with fewer than two postings is rejected with unbalanced_postings', ['unbalanced_postings'], () => {
    const given = spec.given(world);
    given.when(transfer('t1', [leg('alice', 'debit', 100n)])).thenRejects('unbalanced_postings');
    given.when(transfer('t2', [])).thenRejects('unbalanced_postings');
  });

  rejectionRule('a transfer that balances in total but not in each currency is rejected with unbalanced_postings', ['unbalanced_postings'], () => {
    const given = spec.given([...world, deposit('bob-usd', 'USD'), opened('fx-usd', { currency: 'USD' })]);
    given.when(transfer('t1', [leg('alice', 'debit', 100n, 'EUR'), leg('bob-usd', 'credit', 100n, 'USD')])).thenRejects('unbalanced_postings');
    given
      .when(transfer('t2', [leg('alice', 'debit', 100n, 'EUR'), leg('bob', 'credit', 100n, 'EUR'), leg('fx-usd', 'debit', 5n, 'USD')]))
      .thenRejects('unbalanced_postings');
  });

  rejectionRule('a transfer that debits and credits the same account is rejected with accounts_must_be_different', ['accounts_must_be_different'], () => {
    spec.given(world).when(transfer('t1', simple('alice', 'alice', 100n))).thenRejects('accounts_must_be_different');
  });

  rejectionRule('a multi-posting transfer naming one account twice is rejected with accounts_must_be_different', ['accounts_must_be_different'], () => {
    spec
      .given(world)
      .when(transfer('t1', [leg('alice', 'debit', 100n), leg('bob', 'credit', 50n), leg('alice', 'credit', 50n)]))
      .thenRejects('accounts_must_be_different');
  });

  rejectionRule('a transfer that would take a debitsMustNotExceedCredits account below zero is rejected with insufficient_funds', ['insufficient_funds'], () => {
    spec.given(world).when(transfer('t1', simple('alice', 'bob', 10_001n))).thenRejects('insufficient_funds');
  });

  rejectionRule('a pending hold reserves funds: a transfer beyond what the hold leaves is rejected with insufficient_funds', ['insufficient_funds'], () => {
    const given = spec.given([...world, pending('h1', simple('alice', 'bob', 6_000n))]);
    given.when(transfer('t1', simple('alice', 'bob', 4_001n))).thenRejects('insufficient_funds');
    given.when(transfer('t2', simple('alice', 'bob', 4_000n))).then([posted('t2', simple('alice', 'bob', 4_000n))]);
  });

  rejectionRule('a hold larger than the available balance is rejected with insufficient_funds', ['insufficient_funds'], () => {
    spec.given(world).when(hold('h1', simple('alice', 'bob', 10_001n))).thenRejects('insufficient_funds');
  });

  rejectionRule('a transfer crediting a creditsMustNotExceedDebits account beyond its debits is rejected with limit_exceeded', ['limit_exceeded'], () => {
    // The credit line was drawn by 50.00; repaying 50.01 would credit it past its debits.
    const given = spec.given([opened('cash'), creditLine('loan'), posted('draw', simple('loan', 'cash', 5_000n))]);
    given.when(transfer('repay', simple('cash', 'loan', 5_001n))).thenRejects('limit_exceeded');
    given.when(transfer('repay', simple('cash', 'loan', 5_000n))).then([posted('repay', simple('cash', 'loan', 5_000n))]);
  });

  rejectionRule('a transfer that would take a balance above BALANCE_MINOR_MAX is rejected with balance_overflow', ['balance_overflow'], () => {
    const given = spec.given([opened('cash'), opened('vault', { type: 'equity' }), opened('other'), posted('huge', simple('cash', 'vault', BALANCE_MINOR_MAX))]);
    given.when(transfer('t1', simple('cash', 'other', 1n))).thenRejects('balance_overflow');
    given.when(hold('h1', simple('other', 'vault', 1n))).then([pending('h1', simple('other', 'vault', 1n))]);
    given.when(transfer('t2', simple('other', 'vault', 1n))).thenRejects('balance_overflow');
  });
});

// ---- holds ------------------------------------------------------------------------------------

describe('holds', () => {
  const held = [...world, pending('h1', simple('alice', 'bob', 4_000n), HOUR * 48)];

  test('a hold records TransferPending and reserves the amount in pending balances only', () => {
    const { stateAfter } = spec
      .given(world)
      .when(hold('h1', simple('alice', 'bob', 4_000n), HOUR))
      .then([{ event: pending('h1', simple('alice', 'bob', 4_000n), HOUR), effectiveAtMs: NOW }]);
    expect(balances(stateAfter, 'alice')).toEqual([0n, 10_000n, 4_000n, 0n]);
    expect(balances(stateAfter, 'bob')).toEqual([0n, 0n, 0n, 4_000n]);
    expect(stateAfter.transfers.get('h1')).toMatchObject({ kind: 'hold', resolution: 'pending', timeoutAtMs: NOW + HOUR });
  });

  test('posting a hold in full moves the held amount from pending to posted', () => {
    const { stateAfter } = spec
      .given(held)
      .when(postPending('p1', 'h1'))
      .then([{ type: 'PendingPosted', transferId: 'p1', pendingId: 'h1', postings: simple('alice', 'bob', 4_000n), metadata: {} }]);
    expect(balances(stateAfter, 'alice')).toEqual([4_000n, 10_000n, 0n, 0n]);
    expect(balances(stateAfter, 'bob')).toEqual([0n, 4_000n, 0n, 0n]);
    expect(stateAfter.transfers.get('h1')?.resolution).toBe('posted');
  });

  test('posting part of a two-posting hold posts that amount and releases the rest of the hold', () => {
    const { stateAfter } = spec
      .given(held)
      .when(postPending('p1', 'h1', 1_500n))
      .then([{ type: 'PendingPosted', transferId: 'p1', pendingId: 'h1', postings: simple('alice', 'bob', 1_500n), metadata: {} }]);
    expect(balances(stateAfter, 'alice')).toEqual([1_500n, 10_000n, 0n, 0n]);
    expect(balances(stateAfter, 'bob')).toEqual([0n, 1_500n, 0n, 0n]);
  });

  test('posting a multi-posting hold without an amount posts every held posting', () => {
    const postings = [leg('alice', 'debit', 300n), leg('bob', 'credit', 200n), leg('cash', 'credit', 100n)];
    spec
      .given([...world, pending('h3', postings)])
      .when(postPending('p3', 'h3'))
      .then([{ type: 'PendingPosted', transferId: 'p3', pendingId: 'h3', postings, metadata: {} }]);
  });

  test('voiding a hold releases its pending amounts without moving money', () => {
    const { stateAfter } = spec
      .given(held)
      .when(voidPending('v1', 'h1', { metadata: { why: 'cancelled' } }))
      .then([{ type: 'PendingVoided', transferId: 'v1', pendingId: 'h1', metadata: { why: 'cancelled' } }]);
    expect(balances(stateAfter, 'alice')).toEqual([0n, 10_000n, 0n, 0n]);
    expect(stateAfter.transfers.get('h1')?.resolution).toBe('voided');
  });

  test('a hold on an account frozen since can still be voided, releasing the funds', () => {
    spec
      .given([...held, { type: 'AccountFrozen', accountId: 'bob', reason: undefined }])
      .when(voidPending('v1', 'h1'))
      .then([{ type: 'PendingVoided', transferId: 'v1', pendingId: 'h1', metadata: {} }]);
  });

  test('a hold is expired with PendingExpired once its timeout is reached, releasing it', () => {
    const timeoutMs = DAY; // recorded at GIVEN_AT, so it times out exactly at NOW
    const { stateAfter } = spec
      .given([...world, pending('h1', simple('alice', 'bob', 4_000n), timeoutMs)])
      .when({ kind: 'expirePending', pendingId: 'h1' })
      .then([{ event: { type: 'PendingExpired', pendingId: 'h1' }, effectiveAtMs: NOW }]);
    expect(balances(stateAfter, 'alice')).toEqual([0n, 10_000n, 0n, 0n]);
    expect(stateAfter.transfers.get('h1')?.resolution).toBe('expired');
  });

  rejectionRule('posting, voiding or expiring a hold that does not exist is rejected with pending_not_found', ['pending_not_found'], () => {
    const given = spec.given(world);
    given.when(postPending('p1', 'nope')).thenRejects('pending_not_found');
    given.when(voidPending('v1', 'nope')).thenRejects('pending_not_found');
    given.when({ kind: 'expirePending', pendingId: 'nope' }).thenRejects('pending_not_found');
  });

  rejectionRule('posting or voiding a transfer that is not a hold is rejected with pending_not_found', ['pending_not_found'], () => {
    const given = spec.given(world);
    given.when(postPending('p1', 'fund-alice')).thenRejects('pending_not_found');
    given.when(voidPending('v1', 'fund-alice')).thenRejects('pending_not_found');
    given.when({ kind: 'expirePending', pendingId: 'fund-alice' }).thenRejects('pending_not_found');
  });

  rejectionRule('posting a hold that was already voided is rejected with pending_already_resolved', ['pending_already_resolved'], () => {
    spec
      .given([...held, { type: 'PendingVoided', transferId: 'v1', pendingId: 'h1', metadata: {} }])
      .when(postPending('p1', 'h1'))
      .thenRejects('pending_already_resolved');
  });

  rejectionRule('voiding or expiring a hold that was already posted is rejected with pending_already_resolved', ['pending_already_resolved'], () => {
    const given = spec.given([...held, { type: 'PendingPosted', transferId: 'p1', pendingId: 'h1', postings: simple('alice', 'bob', 4_000n), metadata: {} }]);
    given.when(voidPending('v1', 'h1')).thenRejects('pending_already_resolved');
    given.when({ kind: 'expirePending', pendingId: 'h1' }).thenRejects('pending_already_resolved');
  });

  rejectionRule('posting or voiding a hold whose timeout has passed is rejected with pending_expired', ['pending_expired'], () => {
    const given = spec.given([...world, pending('h1', simple('alice', 'bob', 4_000n), HOUR)]);
    given.when(postPending('p1', 'h1')).thenRejects('pending_expired');
    given.when(voidPending('v1', 'h1')).thenRejects('pending_expired');
  });

  rejectionRule('a hold times out at its timeout instant: posting it exactly then is rejected with pending_expired', ['pending_expired'], () => {
    const given = spec.given([...world, pending('h1', simple('alice', 'bob', 4_000n), DAY)]);
    given.when(postPending('p1', 'h1')).thenRejects('pending_expired');
    given.when(postPending('p1', 'h1'), { nowMs: NOW - 1 }).then([
      { type: 'PendingPosted', transferId: 'p1', pendingId: 'h1', postings: simple('alice', 'bob', 4_000n), metadata: {} },
    ]);
  });

  rejectionRule('expiring a hold before its timeout is rejected with pending_not_expired', ['pending_not_expired'], () => {
    spec.given([...world, pending('h1', simple('alice', 'bob', 4_000n), DAY + 1)]).when({ kind: 'expirePending', pendingId: 'h1' }).thenRejects('pending_not_expired');
  });

  rejectionRule('expiring a hold that has no timeout is rejected with pending_not_expired', ['pending_not_expired'], () => {
    spec.given([...world, pending('h1', simple('alice', 'bob', 4_000n))]).when({ kind: 'expirePending', pendingId: 'h1' }).thenRejects('pending_not_expired');
  });

  rejectionRule('posting more than the held amount is rejected with amount_exceeds_pending', ['amount_exceeds_pending'], () => {
    spec.given(held).when(postPending('p1', 'h1', 4_001n)).thenRejects('amount_exceeds_pending');
  });

  rejectionRule('a partial amount in a currency other than the hold\'s is rejected with currency_mismatch', ['currency_mismatch'], () => {
    spec.given(held).when(postPending('p1', 'h1', 100n, { currency: 'JPY' })).thenRejects('currency_mismatch');
  });

  rejectionRule('a zero partial amount is rejected with amount_not_positive', ['amount_not_positive'], () => {
    spec.given(held).when(postPending('p1', 'h1', 0n)).thenRejects('amount_not_positive');
  });

  rejectionRule('a transfer built without parseCommand with a non-positive posting is rejected with amount_not_positive', ['amount_not_positive'], () => {
    spec.given(world).when(transfer('t1', [leg('alice', 'debit', -5n), leg('bob', 'credit', -5n)])).thenRejects('amount_not_positive');
    spec.given(world).when(transfer('t2', simple('alice', 'bob', 0n))).thenRejects('amount_not_positive');
  });

  rejectionRule('a partial amount for a hold with more than two postings is rejected with partial_post_not_supported', ['partial_post_not_supported'], () => {
    const postings = [leg('alice', 'debit', 300n), leg('bob', 'credit', 200n), leg('cash', 'credit', 100n)];
    spec.given([...world, pending('h3', postings)]).when(postPending('p3', 'h3', 100n)).thenRejects('partial_post_not_supported');
  });

  rejectionRule('posting a hold whose account was frozen after it was placed is rejected with account_frozen', ['account_frozen'], () => {
    spec
      .given([...held, { type: 'AccountFrozen', accountId: 'bob', reason: undefined }])
      .when(postPending('p1', 'h1'))
      .thenRejects('account_frozen');
  });
});

// ---- reversals --------------------------------------------------------------------------------

describe('reversals', () => {
  const paid = [...world, posted('t1', simple('alice', 'bob', 3_000n))];

  test('a reversal is a new TransferPosted that swaps the side of every posting and names the original', () => {
    const { stateAfter } = spec
      .given(paid)
      .when(reverse('r1', 't1', { reference: 'refund' }))
      .then([posted('r1', reversed('alice', 'bob', 3_000n), { reversalOf: 't1', reference: 'refund' })]);
    expect(balances(stateAfter, 'bob')).toEqual([3_000n, 3_000n, 0n, 0n]);
    expect(stateAfter.transfers.get('t1')?.reversedBy).toBe('r1');
    expect(stateAfter.transfers.get('r1')?.kind).toBe('reversal');
  });

  test('reversing a posted hold swaps the amounts that were posted, not the amounts held', () => {
    spec
      .given([...world, pending('h1', simple('alice', 'bob', 4_000n)), { type: 'PendingPosted', transferId: 'p1', pendingId: 'h1', postings: simple('alice', 'bob', 1_000n), metadata: {} }])
      .when(reverse('r1', 'p1'))
      .then([posted('r1', reversed('alice', 'bob', 1_000n), { reversalOf: 'p1' })]);
  });

  rejectionRule('reversing a transfer that does not exist is rejected with transfer_not_found', ['transfer_not_found'], () => {
    spec.given(paid).when(reverse('r1', 'nope')).thenRejects('transfer_not_found');
  });

  rejectionRule('reversing a hold, a void or a reversal is rejected with transfer_not_reversible', ['transfer_not_reversible'], () => {
    const given = spec.given([
      ...paid,
      posted('r1', reversed('alice', 'bob', 3_000n), { reversalOf: 't1' }),
      pending('h1', simple('alice', 'bob', 100n)),
      pending('h2', simple('alice', 'bob', 100n)),
      { type: 'PendingVoided', transferId: 'v2', pendingId: 'h2', metadata: {} },
    ]);
    given.when(reverse('x1', 'h1')).thenRejects('transfer_not_reversible');
    given.when(reverse('x2', 'v2')).thenRejects('transfer_not_reversible');
    given.when(reverse('x3', 'r1')).thenRejects('transfer_not_reversible');
  });

  rejectionRule('reversing a transfer a second time is rejected with transfer_already_reversed', ['transfer_already_reversed'], () => {
    spec
      .given([...paid, posted('r1', reversed('alice', 'bob', 3_000n), { reversalOf: 't1' })])
      .when(reverse('r2', 't1'))
      .thenRejects('transfer_already_reversed');
  });

  rejectionRule('a reversal that would take a debitsMustNotExceedCredits account below zero is rejected with insufficient_funds', ['insufficient_funds'], () => {
    // Bob spent what alice paid him, so taking it back would overdraw him.
    spec
      .given([...paid, posted('spend', simple('bob', 'cash', 2_000n))])
      .when(reverse('r1', 't1'))
      .thenRejects('insufficient_funds');
  });
});

// ---- business time ----------------------------------------------------------------------------

describe('effectiveAt', () => {
  rejectionRule('an effectiveAt later than the recorded time is rejected with effective_at_in_future', ['effective_at_in_future'], () => {
    spec.given(world).when(transfer('t1', simple('alice', 'bob', 1n), { effectiveAtMs: NOW + 1 })).thenRejects('effective_at_in_future');
  });

  rejectionRule('an effectiveAt further back than the back-dating window is rejected with effective_at_outside_window', ['effective_at_outside_window'], () => {
    const given = spec.given(worldEvents.map((event) => at(event, NOW - 30 * DAY)));
    given.when(transfer('t1', simple('alice', 'bob', 1n), { effectiveAtMs: NOW - WINDOW - 1 })).thenRejects('effective_at_outside_window');
    given.when(transfer('t1', simple('alice', 'bob', 1n), { effectiveAtMs: NOW - WINDOW })).then([
      { event: posted('t1', simple('alice', 'bob', 1n)), effectiveAtMs: NOW - WINDOW },
    ]);
  });

  rejectionRule('an effectiveAt before an account the transfer touches was opened is rejected with effective_at_before_dependency', ['effective_at_before_dependency'], () => {
    spec.given(world).when(transfer('t1', simple('alice', 'bob', 1n), { effectiveAtMs: GIVEN_AT - 1 })).thenRejects('effective_at_before_dependency');
  });

  rejectionRule('resolving a hold effective before the hold is rejected with effective_at_before_dependency', ['effective_at_before_dependency'], () => {
    const given = spec.given([...world, at(pending('h1', simple('alice', 'bob', 100n)), NOW - HOUR, NOW - 2 * HOUR)]);
    given.when(postPending('p1', 'h1', undefined, { effectiveAtMs: NOW - 3 * HOUR })).thenRejects('effective_at_before_dependency');
    given.when(voidPending('v1', 'h1', { effectiveAtMs: NOW - 3 * HOUR })).thenRejects('effective_at_before_dependency');
    given.when(voidPending('v1', 'h1', { effectiveAtMs: NOW - 2 * HOUR })).then([
      { event: { type: 'PendingVoided', transferId: 'v1', pendingId: 'h1', metadata: {} }, effectiveAtMs: NOW - 2 * HOUR },
    ]);
  });

  rejectionRule('reversing a transfer effective before the original is rejected with effective_at_before_dependency', ['effective_at_before_dependency'], () => {
    spec
      .given([...world, at(posted('t1', simple('alice', 'bob', 100n)), NOW - HOUR)])
      .when(reverse('r1', 't1', { effectiveAtMs: NOW - HOUR - 1 }))
      .thenRejects('effective_at_before_dependency');
  });
});

// ---- linked groups ----------------------------------------------------------------------------

describe('linked groups', () => {
  test('a linked group applies all its members together, each seeing the effects of the ones before it', () => {
    // Bob has nothing until alice pays him, so his payment to cash only works after hers.
    const { decision, stateAfter } = spec
      .given(world)
      .when({ kind: 'linked', commands: [transfer('a', simple('alice', 'bob', 700n)), transfer('b', simple('bob', 'cash', 700n)), hold('h', simple('alice', 'bob', 50n)), postPending('p', 'h')] })
      .then([
        posted('a', simple('alice', 'bob', 700n)),
        posted('b', simple('bob', 'cash', 700n)),
        pending('h', simple('alice', 'bob', 50n)),
        { type: 'PendingPosted', transferId: 'p', pendingId: 'h', postings: simple('alice', 'bob', 50n), metadata: {} },
      ]);
    expect(decision.members?.map((member) => member.ok)).toEqual([true, true, true, true]);
    expect(balances(stateAfter, 'bob')).toEqual([700n, 750n, 0n, 0n]);
  });

  rejectionRule(
    'when one member of a linked group is rejected nothing is applied: it keeps its own code and every other member gets linked_group_failed',
    ['linked_group_failed'],
    () => {
      const rejected = spec
        .given(world)
        .when({ kind: 'linked', commands: [transfer('a', simple('alice', 'bob', 700n)), transfer('b', simple('bob', 'cash', 701n)), transfer('c', simple('alice', 'bob', 1n))] })
        .thenRejects('insufficient_funds');
      expect(rejected.members?.map((member) => (member.ok ? 'ok' : member.code))).toEqual(['linked_group_failed', 'insufficient_funds', 'linked_group_failed']);
    },
  );
});

// ---- idempotency ------------------------------------------------------------------------------

describe('retries', () => {
  const history: GivenEvent[] = [
    ...world,
    at(posted('t1', simple('alice', 'bob', 100n), { reference: 'inv-1', metadata: { k: 'v' } }), NOW - 5 * HOUR),
    at(pending('h1', simple('alice', 'bob', 400n), DAY), NOW - 4 * HOUR),
    at(pending('h2', simple('alice', 'bob', 400n), DAY), NOW - 4 * HOUR),
    at({ type: 'PendingPosted', transferId: 'p1', pendingId: 'h1', postings: simple('alice', 'bob', 300n), metadata: {} }, NOW - 3 * HOUR),
    at({ type: 'PendingVoided', transferId: 'v2', pendingId: 'h2', metadata: {} }, NOW - 3 * HOUR),
    at(posted('r1', reversed('alice', 'bob', 100n), { reversalOf: 't1' }), NOW - 2 * HOUR),
    at(posted('t2', simple('alice', 'cash', 5n)), NOW - HOUR, NOW - 90 * 60 * SECOND),
    at(pending('h3', simple('alice', 'cash', 50n)), NOW - HOUR),
  ];
  // world holds 4 events, so t1 is version 5 and t2 version 11.
  const given = spec.given(history);
  const t1 = transfer('t1', simple('alice', 'bob', 100n), { reference: 'inv-1', metadata: { k: 'v' } });

  test('retrying a transfer returns a duplicate naming the original ledger version and time, and appends nothing', () => {
    given.when(t1).thenDuplicate({ ledgerVersion: 5, recordedAtMs: NOW - 5 * HOUR });
  });

  test('a retry is recognised before any state check: it is a duplicate even if the account has since been frozen', () => {
    spec.given([...history, { type: 'AccountFrozen', accountId: 'bob', reason: undefined }]).when(t1).thenDuplicate({ ledgerVersion: 5 });
  });

  test('retrying a hold, a post, a void or a reversal returns a duplicate of the original', () => {
    given.when(hold('h1', simple('alice', 'bob', 400n), DAY)).thenDuplicate({ ledgerVersion: 6 });
    given.when(postPending('p1', 'h1', 300n)).thenDuplicate({ ledgerVersion: 8 });
    given.when(voidPending('v2', 'h2')).thenDuplicate({ ledgerVersion: 9 });
    given.when(reverse('r1', 't1')).thenDuplicate({ ledgerVersion: 10 });
  });

  test('a retry that repeats the original effectiveAt is a duplicate; one that omits it is too', () => {
    given.when(transfer('t2', simple('alice', 'cash', 5n), { effectiveAtMs: NOW - 90 * 60 * SECOND })).thenDuplicate({ ledgerVersion: 11 });
    given.when(transfer('t2', simple('alice', 'cash', 5n))).thenDuplicate({ ledgerVersion: 11 });
  });

  rejectionRule('reusing a hold id for a plain transfer is rejected with exists_with_different_kind', ['exists_with_different_kind'], () => {
    given.when(transfer('h1', simple('alice', 'bob', 400n))).thenRejects('exists_with_different_kind');
    given.when(voidPending('t1', 'h1')).thenRejects('exists_with_different_kind');
  });

  rejectionRule('reusing a transfer id with other accounts or sides is rejected with exists_with_different_accounts', ['exists_with_different_accounts'], () => {
    given.when(transfer('t1', simple('alice', 'cash', 100n), { reference: 'inv-1', metadata: { k: 'v' } })).thenRejects('exists_with_different_accounts');
    given.when(transfer('t1', simple('bob', 'alice', 100n), { reference: 'inv-1', metadata: { k: 'v' } })).thenRejects('exists_with_different_accounts');
  });

  rejectionRule('reusing a transfer id with another amount is rejected with exists_with_different_amount', ['exists_with_different_amount'], () => {
    given.when(transfer('t1', simple('alice', 'bob', 101n), { reference: 'inv-1', metadata: { k: 'v' } })).thenRejects('exists_with_different_amount');
    given.when(postPending('p1', 'h1', 299n)).thenRejects('exists_with_different_amount');
    // Omitting the amount asks for the full 400 held, but p1 posted 300.
    given.when(postPending('p1', 'h1')).thenRejects('exists_with_different_amount');
  });

  rejectionRule('reusing a transfer id with another currency is rejected with exists_with_different_currency', ['exists_with_different_currency'], () => {
    given.when(transfer('t1', simple('alice', 'bob', 100n, 'USD'), { reference: 'inv-1', metadata: { k: 'v' } })).thenRejects('exists_with_different_currency');
    // A partial post retried in another currency (p1 posted 300 EUR of h1): not the same request.
    given.when(postPending('p1', 'h1', 300n, { currency: 'USD' })).thenRejects('exists_with_different_currency');
    // Or in none (a command built in code; the writer's admission refuses it): a fresh post in none is currency_mismatch.
    given.when(postPending('p1', 'h1', 300n, { currency: undefined })).thenRejects('exists_with_different_currency');
    given.when(postPending('p1', 'h1', 300n)).thenDuplicate({ ledgerVersion: 8 });
  });

  rejectionRule('reusing a hold id with another timeout is rejected with exists_with_different_timeout', ['exists_with_different_timeout'], () => {
    given.when(hold('h1', simple('alice', 'bob', 400n), DAY + 1)).thenRejects('exists_with_different_timeout');
    given.when(hold('h1', simple('alice', 'bob', 400n))).thenRejects('exists_with_different_timeout');
  });

  rejectionRule('reusing a post or void id for another hold is rejected with exists_with_different_pending_id', ['exists_with_different_pending_id'], () => {
    given.when(postPending('p1', 'h2', 300n)).thenRejects('exists_with_different_pending_id');
    // h3 holds between other accounts: the pending id, not the accounts derived from it, is what differs.
    given.when(postPending('p1', 'h3')).thenRejects('exists_with_different_pending_id');
    given.when(voidPending('v2', 'h1')).thenRejects('exists_with_different_pending_id');
  });

  rejectionRule('reusing a reversal id to reverse another transfer is rejected with exists_with_different_reversal_of', ['exists_with_different_reversal_of'], () => {
    // t2 moved money between other accounts: the original, not the postings derived from it, is what differs.
    given.when(reverse('r1', 't2')).thenRejects('exists_with_different_reversal_of');
    given.when(reverse('r1', 'never-recorded')).thenRejects('exists_with_different_reversal_of');
  });

  rejectionRule('reusing a transfer id with another reference is rejected with exists_with_different_reference', ['exists_with_different_reference'], () => {
    given.when(transfer('t1', simple('alice', 'bob', 100n), { reference: 'inv-2', metadata: { k: 'v' } })).thenRejects('exists_with_different_reference');
    given.when(reverse('r1', 't1', { reference: 'added later' })).thenRejects('exists_with_different_reference');
  });

  rejectionRule('reusing a transfer id with other metadata is rejected with exists_with_different_metadata', ['exists_with_different_metadata'], () => {
    given.when(transfer('t1', simple('alice', 'bob', 100n), { reference: 'inv-1', metadata: { k: 'w' } })).thenRejects('exists_with_different_metadata');
    given.when(transfer('t1', simple('alice', 'bob', 100n), { reference: 'inv-1', metadata: {} })).thenRejects('exists_with_different_metadata');
    given.when(voidPending('v2', 'h2', { metadata: { k: 'v' } })).thenRejects('exists_with_different_metadata');
  });

  rejectionRule('reusing a transfer id with another effectiveAt is rejected with exists_with_different_effective_at', ['exists_with_different_effective_at'], () => {
    given.when(transfer('t2', simple('alice', 'cash', 5n), { effectiveAtMs: NOW - HOUR })).thenRejects('exists_with_different_effective_at');
  });
});

// ---- catalogue --------------------------------------------------------------------------------

test('every rejection code in REJECTION_CODES is claimed by at least one rule above', () => {
  const missing = Object.keys(REJECTION_CODES).filter((code) => !claimedCodes.has(code as RejectionCode));
  expect(missing).toEqual([]);
});

// ---- evolve invariants ------------------------------------------------------------------------

describe('evolve asserts invariants', () => {
  const meta = (ledgerVersion: number): { ledgerVersion: number; recordedAtMs: number; effectiveAtMs: number } => ({ ledgerVersion, recordedAtMs: GIVEN_AT, effectiveAtMs: GIVEN_AT });
  const fold = (events: readonly LedgerEvent[], state: LedgerState = initialState()): LedgerState => {
    for (const event of events) evolve(state, event, meta(state.version + 1));
    return state;
  };
  const base: LedgerEvent[] = [opened('cash'), deposit('alice'), deposit('bob'), creditLine('loan')];

  test('evolve throws InvariantViolationError for AccountClosed on an account with a posted balance', () => {
    const state = fold([...base, posted('t1', simple('cash', 'alice', 100n))]);
    expect(() => evolve(state, { type: 'AccountClosed', accountId: 'alice' }, meta(6))).toThrow(InvariantViolationError);
  });

  test('evolve throws InvariantViolationError for AccountClosed on an account with a pending amount', () => {
    const state = fold([...base, posted('t1', simple('cash', 'alice', 100n)), pending('h1', simple('alice', 'bob', 100n))]);
    expect(() => evolve(state, { type: 'AccountClosed', accountId: 'bob' }, meta(7))).toThrow(/closed with a balance/);
  });

  test('evolve throws InvariantViolationError for a posting past a debitsMustNotExceedCredits limit', () => {
    const state = fold(base);
    expect(() => evolve(state, posted('t1', simple('alice', 'bob', 1n)), meta(5))).toThrow(InvariantViolationError);
  });

  test('evolve throws InvariantViolationError for a hold past a debitsMustNotExceedCredits limit', () => {
    const state = fold([...base, posted('t1', simple('cash', 'alice', 100n))]);
    expect(() => evolve(state, pending('h1', simple('alice', 'bob', 101n)), meta(6))).toThrow(/debits exceed credits/);
  });

  test('evolve throws InvariantViolationError for a posting past a creditsMustNotExceedDebits limit', () => {
    const state = fold(base);
    expect(() => evolve(state, posted('t1', simple('cash', 'loan', 1n)), meta(5))).toThrow(/credits exceed debits/);
  });

  test('evolve allows limit-breaking postings when limits are not asserted, as in effective-time views', () => {
    const state = fold([...base, posted('t1', simple('alice', 'bob', 1n))], initialState({ limitsAsserted: false }));
    expect(balances(state, 'alice')).toEqual([1n, 0n, 0n, 0n]);
  });

  test('evolve throws InvariantViolationError for a balance above BALANCE_MINOR_MAX, even when limits are not asserted', () => {
    const state = fold([...base, posted('t1', simple('cash', 'bob', BALANCE_MINOR_MAX))], initialState({ limitsAsserted: false }));
    expect(() => evolve(state, posted('t2', simple('cash', 'bob', 1n)), meta(6))).toThrow(/out of range/);
  });

  test('evolve throws InvariantViolationError for a posting on an unknown account or in the wrong currency', () => {
    expect(() => evolve(fold(base), posted('t1', simple('cash', 'nobody', 1n)), meta(5))).toThrow(InvariantViolationError);
    expect(() => evolve(fold(base), posted('t1', simple('cash', 'bob', 1n, 'USD')), meta(5))).toThrow(/posting in USD/);
  });

  test('evolve throws InvariantViolationError for a zero or negative posting', () => {
    expect(() => evolve(fold(base), posted('t1', simple('cash', 'bob', 0n)), meta(5))).toThrow(/non-positive/);
    expect(() => evolve(fold(base), posted('t1', simple('cash', 'bob', -1n)), meta(5))).toThrow(/non-positive/);
  });

  test('evolve throws InvariantViolationError for an account opened twice or a transfer id recorded twice', () => {
    expect(() => evolve(fold(base), opened('cash'), meta(5))).toThrow(/opened twice/);
    const state = fold([...base, posted('t1', simple('cash', 'bob', 1n))]);
    expect(() => evolve(state, posted('t1', simple('cash', 'bob', 1n)), meta(6))).toThrow(/recorded twice/);
  });

  test('evolve throws InvariantViolationError for a hold resolved twice or a resolution of something that is not a hold', () => {
    const state = fold([...base, posted('t1', simple('cash', 'alice', 100n)), pending('h1', simple('alice', 'bob', 10n)), { type: 'PendingVoided', transferId: 'v1', pendingId: 'h1', metadata: {} }]);
    expect(() => evolve(state, { type: 'PendingExpired', pendingId: 'h1' }, meta(8))).toThrow(/resolved twice/);
    expect(() => evolve(fold([...base, posted('t1', simple('cash', 'bob', 1n))]), { type: 'PendingExpired', pendingId: 't1' }, meta(6))).toThrow(/unknown/);
  });

  test('evolve throws InvariantViolationError for a second reversal of the same transfer', () => {
    const state = fold([...base, posted('t1', simple('cash', 'bob', 5n)), posted('r1', reversed('cash', 'bob', 5n), { reversalOf: 't1' }), posted('t2', simple('cash', 'bob', 5n))]);
    expect(() => evolve(state, posted('r2', reversed('cash', 'bob', 5n), { reversalOf: 't1' }), meta(8))).toThrow(/reversed twice/);
  });

  test('evolve throws InvariantViolationError for an event whose ledger version does not follow the state', () => {
    const state = fold(base);
    expect(() => evolve(state, { type: 'AccountFrozen', accountId: 'bob', reason: undefined }, meta(4))).toThrow(/event version 4 after 4/);
  });

  test('evolve refuses an event out of order before it changes anything', () => {
    const state = fold([...base, posted('t1', simple('cash', 'bob', 5n))]);
    const before = { version: state.version, bob: { ...state.accounts.get('bob') } };
    expect(() => evolve(state, posted('t2', simple('cash', 'bob', 7n)), meta(state.version))).toThrow(InvariantViolationError);
    expect(() => evolve(state, { type: 'AccountFrozen', accountId: 'bob', reason: undefined }, meta(state.version))).toThrow(/event version/);
    expect(state.version).toBe(before.version);
    expect({ ...state.accounts.get('bob') }).toEqual(before.bob);
    expect(state.transfers.get('t2')).toBeUndefined();
  });
});

// ---- the spec helper itself -------------------------------------------------------------------

describe('deciderSpec', () => {
  test('given assigns consecutive ledger versions and the given time unless an event states its own meta', () => {
    const { state } = spec.given([opened('cash'), at(deposit('alice'), NOW - HOUR), { event: deposit('bob'), meta: { ledgerVersion: 10 } }, deposit('carol')]);
    expect(state.version).toBe(11);
    expect(state.accounts.get('cash')).toMatchObject({ openedAtVersion: 1, openedAtMs: GIVEN_AT });
    expect(state.accounts.get('alice')).toMatchObject({ openedAtVersion: 2, openedAtMs: NOW - HOUR });
    expect(state.accounts.get('bob')?.openedAtVersion).toBe(10);
    expect(state.lastRecordedAtMs).toBe(NOW - HOUR);
  });

  test('then throws a plain Error naming both event lists when decide produced other events', () => {
    const when = spec.given(world).when(transfer('t1', simple('alice', 'bob', 100n)));
    expect(() => when.then([posted('t1', simple('alice', 'bob', 101n))])).toThrow(/other events than expected[\s\S]*101n[\s\S]*100n/);
    expect(() => when.then([])).toThrow(Error);
    expect(() => when.then([{ event: posted('t1', simple('alice', 'bob', 100n)), effectiveAtMs: NOW - 1 }])).toThrow(/effectiveAtMs/);
  });

  test('then, thenRejects and thenDuplicate throw when the decision is of another kind', () => {
    const rejected = spec.given(world).when(transfer('t1', simple('alice', 'bob', 1_000_000n)));
    expect(() => rejected.then([])).toThrow(/rejected with insufficient_funds/);
    expect(() => rejected.thenDuplicate()).toThrow(/rejected with insufficient_funds/);
    expect(() => rejected.thenRejects('account_frozen')).toThrow(/expected rejection account_frozen, but it was rejected with insufficient_funds/);
    const accepted = spec.given(world).when(transfer('t1', simple('alice', 'bob', 1n)));
    expect(() => accepted.thenRejects('insufficient_funds')).toThrow(/was accepted/);
    expect(() => accepted.thenDuplicate()).toThrow(/expected a retry/);
    const retried = spec.given(world).when(transfer('fund-alice', simple('cash', 'alice', 10_000n)));
    expect(() => retried.then([])).toThrow(/retry of ledger version 4/);
    expect(() => retried.thenDuplicate({ ledgerVersion: 3 })).toThrow(/"ledgerVersion":3/);
  });

  test('when takes context overrides, so one history can be decided at several instants', () => {
    const given = spec.given([...world, pending('h1', simple('alice', 'bob', 1n), HOUR)]);
    given.when({ kind: 'expirePending', pendingId: 'h1' }, { nowMs: GIVEN_AT + HOUR - 1 }).thenRejects('pending_not_expired');
    given.when({ kind: 'expirePending', pendingId: 'h1' }, { nowMs: GIVEN_AT + HOUR }).then([{ type: 'PendingExpired', pendingId: 'h1' }]);
  });
});
