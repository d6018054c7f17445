/**
 * Deterministic ledgers and transfer streams for the benchmarks: a book of accounts, half of them
 * customer deposit accounts (liability, `debitsMustNotExceedCredits`) funded up front, and a
 * seeded stream of simple transfers between random accounts that all pass every rule.
 */
import {
  BACKDATE_WINDOW_MS_DEFAULT,
  decide,
  evolve,
  formatAmount,
  initialState,
  type DecideContext,
  type LedgerCommand,
  type LedgerState,
  type TransferCommand,
} from '@ledgerkit/ledger-core';

/** The recorded time of every fixture event and command: fixed, so runs are reproducible. */
export const FIXTURE_NOW_MS = Date.UTC(2025, 0, 1);
/** Every fixture account and amount is in this currency (scale 2). */
export const FIXTURE_CURRENCY = 'EUR';
/** What each deposit account is funded with: far more than a round's transfers can take out. */
export const FUNDING_MINOR = 100_000_000n;
/** Largest transfer amount in minor units (100.00 EUR); the smallest is 1 (0.01 EUR). */
export const TRANSFER_MINOR_MAX = 10_000;

/** The decide context every fixture command is decided in. */
export const FIXTURE_CONTEXT: DecideContext = { nowMs: FIXTURE_NOW_MS, backdateWindowMs: BACKDATE_WINDOW_MS_DEFAULT };

/** A ledger ready for transfers and the ids of its accounts. */
export interface FixtureLedger {
  readonly state: LedgerState;
  readonly accountIds: readonly string[];
}

/** One planned transfer: which accounts and how much, before it takes any input form. */
export interface PlannedTransfer {
  readonly transferId: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amountMinor: bigint;
}

/** The untrusted, JSON-shaped input of a simple transfer, as an API would receive it. */
export interface TransferInput {
  readonly transferId: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: string;
  readonly currency: string;
}

/**
 * Opens `accountCount` accounts through decide/evolve — even indexes are deposit accounts
 * (liability, debits may not exceed credits), odd ones plain asset accounts — and funds every
 * deposit account from its asset neighbour, so the fixture itself passes the real rules.
 */
export function buildFixtureLedger(accountCount: number): FixtureLedger {
  const state = initialState();
  for (const command of fixtureCommands(accountCount)) applyOrThrow(state, command);
  return { state, accountIds: fixtureAccountIds(accountCount) };
}

/**
 * The commands that build the fixture ledger, in order: every account opened, then every
 * deposit account funded. For a writer that builds the same ledger through its own path.
 */
export function fixtureCommands(accountCount: number): LedgerCommand[] {
  if (!Number.isInteger(accountCount) || accountCount < 2 || accountCount % 2 !== 0) {
    throw new RangeError(`accountCount must be an even integer ≥ 2, got ${accountCount}`);
  }
  const accountIds = fixtureAccountIds(accountCount);
  const commands: LedgerCommand[] = accountIds.map((accountId, i) => {
    const deposit = isDepositAccount(i);
    return {
      kind: 'openAccount',
      accountId,
      currency: FIXTURE_CURRENCY,
      type: deposit ? 'liability' : 'asset',
      flags: { debitsMustNotExceedCredits: deposit, creditsMustNotExceedDebits: false },
      metadata: {},
    };
  });
  for (let i = 0; i < accountCount; i += 2) {
    commands.push(
      transferCommandOf({ transferId: `fund-${i}`, debitAccountId: accountIds[i + 1] as string, creditAccountId: accountIds[i] as string, amountMinor: FUNDING_MINOR }),
    );
  }
  return commands;
}

/** The fixture's account ids, in index order. */
export function fixtureAccountIds(accountCount: number): string[] {
  return Array.from({ length: accountCount }, (_, i) => `acc-${i}`);
}

/** Whether fixture account `index` is a funded deposit account (its funding comes from `index + 1`). */
export function isDepositAccount(index: number): boolean {
  return index % 2 === 0;
}

/**
 * A seeded stream of `count` transfers between distinct random accounts with amounts of
 * 0.01–100.00. Ids are unique within the stream.
 */
export function planTransfers(count: number, accountIds: readonly string[], seed: number): PlannedTransfer[] {
  const random = mulberry32(seed);
  const pick = (): string => accountIds[Math.floor(random() * accountIds.length)] as string;
  const planned: PlannedTransfer[] = new Array<PlannedTransfer>(count);
  for (let i = 0; i < count; i += 1) {
    const debitAccountId = pick();
    let creditAccountId = pick();
    while (creditAccountId === debitAccountId) creditAccountId = pick();
    const amountMinor = BigInt(1 + Math.floor(random() * TRANSFER_MINOR_MAX));
    planned[i] = { transferId: `t-${i}`, debitAccountId, creditAccountId, amountMinor };
  }
  return planned;
}

/**
 * A seeded, stateless stream of simple transfers between distinct random accounts of
 * `accountIds`: transfer `seq` is the same whatever order callers ask for them in, so
 * concurrent callers can each take the next number. Ids are `<idPrefix><seq>`.
 */
export function transferStream(accountIds: readonly string[], seed: number, idPrefix: string): (seq: number) => TransferCommand {
  const count = accountIds.length;
  return (seq) => {
    const debitIndex = hash32(seed, seq, 1) % count;
    // A random other account: skip the debit account by shifting indexes at or above it.
    const other = hash32(seed, seq, 2) % (count - 1);
    const creditIndex = other >= debitIndex ? other + 1 : other;
    const amountMinor = BigInt(1 + (hash32(seed, seq, 3) % TRANSFER_MINOR_MAX));
    return transferCommandOf({
      transferId: `${idPrefix}${seq}`,
      debitAccountId: accountIds[debitIndex] as string,
      creditAccountId: accountIds[creditIndex] as string,
      amountMinor,
    });
  };
}

/** The shared settlement account of the hot-account fixture: a funded deposit-like account every transfer touches. */
export const SETTLEMENT_ACCOUNT_ID = 'settlement';
const SETTLEMENT_FUNDING_ACCOUNT_ID = 'settlement-funding';

/**
 * The fixture's commands plus a settlement account (liability, debits may not exceed credits, so
 * every debit of it is checked against its balance) funded with far more than any run moves.
 */
export function hotAccountFixtureCommands(accountCount: number): LedgerCommand[] {
  return [
    ...fixtureCommands(accountCount),
    ...[SETTLEMENT_ACCOUNT_ID, SETTLEMENT_FUNDING_ACCOUNT_ID].map(
      (accountId): LedgerCommand => ({
        kind: 'openAccount',
        accountId,
        currency: FIXTURE_CURRENCY,
        type: accountId === SETTLEMENT_ACCOUNT_ID ? 'liability' : 'asset',
        flags: { debitsMustNotExceedCredits: accountId === SETTLEMENT_ACCOUNT_ID, creditsMustNotExceedDebits: false },
        metadata: {},
      }),
    ),
    transferCommandOf({
      transferId: 'fund-settlement',
      debitAccountId: SETTLEMENT_FUNDING_ACCOUNT_ID,
      creditAccountId: SETTLEMENT_ACCOUNT_ID,
      amountMinor: FUNDING_MINOR * 1_000n,
    }),
  ];
}

/**
 * Like {@link transferStream}, but every transfer touches the settlement account: even ones move
 * money from a random funded deposit account into it, odd ones from it to a random account.
 */
export function hotAccountTransferStream(accountIds: readonly string[], seed: number, idPrefix: string): (seq: number) => TransferCommand {
  const deposits = accountIds.filter((_, index) => isDepositAccount(index));
  return (seq) => {
    const amountMinor = BigInt(1 + (hash32(seed, seq, 3) % TRANSFER_MINOR_MAX));
    const inbound = seq % 2 === 0;
    const customer = inbound ? (deposits[hash32(seed, seq, 1) % deposits.length] as string) : (accountIds[hash32(seed, seq, 1) % accountIds.length] as string);
    return transferCommandOf({
      transferId: `${idPrefix}${seq}`,
      debitAccountId: inbound ? customer : SETTLEMENT_ACCOUNT_ID,
      creditAccountId: inbound ? SETTLEMENT_ACCOUNT_ID : customer,
      amountMinor,
    });
  };
}

/** The pre-validated command of a planned transfer, shaped exactly as `parseCommand.transfer` returns it. */
export function transferCommandOf(plan: PlannedTransfer): TransferCommand {
  return {
    kind: 'transfer',
    transferId: plan.transferId,
    postings: [
      { accountId: plan.debitAccountId, side: 'debit', amount: plan.amountMinor, currency: FIXTURE_CURRENCY },
      { accountId: plan.creditAccountId, side: 'credit', amount: plan.amountMinor, currency: FIXTURE_CURRENCY },
    ],
    pending: undefined,
    effectiveAtMs: undefined,
    reference: undefined,
    metadata: {},
  };
}

/** The untrusted input of a planned transfer: a decimal string amount, as JSON would carry it. */
export function transferInputOf(plan: PlannedTransfer): TransferInput {
  return {
    transferId: plan.transferId,
    debitAccountId: plan.debitAccountId,
    creditAccountId: plan.creditAccountId,
    amount: formatAmount(plan.amountMinor, 2),
    currency: FIXTURE_CURRENCY,
  };
}

function applyOrThrow(state: LedgerState, command: LedgerCommand): void {
  const decision = decide(command, state, FIXTURE_CONTEXT);
  if (!decision.ok) throw new Error(`fixture command ${command.kind} rejected: ${decision.code} ${decision.message}`);
  for (const draft of decision.events) {
    evolve(state, draft.event, { ledgerVersion: state.version + 1, recordedAtMs: FIXTURE_NOW_MS, effectiveAtMs: draft.effectiveAtMs });
  }
}

/** A small, fast, seeded PRNG (mulberry32): the same seed always gives the same stream. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A well-mixed unsigned 32-bit hash of (seed, seq, lane): a stateless stand-in for a seeded PRNG. */
function hash32(seed: number, seq: number, lane: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(seq + 1, 0xc2b2ae35) ^ Math.imul(lane, 0x27d4eb2f);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}
