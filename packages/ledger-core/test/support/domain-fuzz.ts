/**
 * Random command sequences for the pure decider: holds, full and partial posts, voids, expiries,
 * reversals, linked groups, account freezes and closes, clock ticks, retries of accepted commands
 * and changed retries, run through `decide`/`evolve` over a Map-backed state that can be listed.
 * {@link runSteps} records every outcome and the problems found after each step (an invariant
 * broken, a rule not followed, a state `decide` changed, an event `evolve` refused); the events it
 * folded must replay to the same state. Used by domain-fuzz.test.ts and writer-vs-decider.test.ts.
 */
import fc from 'fast-check';
import {
  AMOUNT_MINOR_MAX,
  BALANCE_MINOR_MAX,
  REJECTION_CODES,
  decide,
  evolve,
  initialState,
  type AccountState,
  type AccountType,
  type Decision,
  type EventDraft,
  type ExpirePendingCommand,
  type LedgerCommand,
  type LedgerEvent,
  type LedgerState,
  type Posting,
  type TransferLikeCommand,
  type TransferRecord,
} from '@ledgerkit/ledger-core';

export const START_MS = Date.parse('2025-03-01T00:00:00.000Z');
export const BACKDATE_WINDOW_MS = 60_000;

interface AccountSpec {
  readonly id: string;
  readonly currency: string;
  readonly type: AccountType;
  readonly debitsMustNotExceedCredits: boolean;
  readonly creditsMustNotExceedDebits: boolean;
}

const account = (id: string, currency: string, type: AccountType, limit?: 'noOverdraft' | 'noOvercredit'): AccountSpec => ({
  id,
  currency,
  type,
  debitsMustNotExceedCredits: limit === 'noOverdraft',
  creditsMustNotExceedDebits: limit === 'noOvercredit',
});

/** Every run opens these: in each currency a bank, customers that cannot be overdrawn and a credit line. */
export const ACCOUNTS: readonly AccountSpec[] = [
  account('cash', 'EUR', 'asset'),
  account('alice', 'EUR', 'liability', 'noOverdraft'),
  account('bob', 'EUR', 'liability', 'noOverdraft'),
  account('line', 'EUR', 'asset', 'noOvercredit'),
  account('fees', 'EUR', 'income'),
  account('jcash', 'JPY', 'asset'),
  account('jalice', 'JPY', 'liability', 'noOverdraft'),
  // TOKEN has 18 decimals: its amounts go up to AMOUNT_MINOR_MAX and its balances near BALANCE_MINOR_MAX.
  account('tcash', 'TOKEN', 'asset'),
  account('talice', 'TOKEN', 'liability', 'noOverdraft'),
  account('tline', 'TOKEN', 'asset', 'noOvercredit'),
];
const CURRENCY_CODES = [...new Set(ACCOUNTS.map((a) => a.currency))];
const accountsIn = (currency: string): AccountSpec[] => ACCOUNTS.filter((a) => a.currency === currency);

// ---- commands -----------------------------------------------------------------------------------

const openAccount = (a: AccountSpec): LedgerCommand => ({
  kind: 'openAccount',
  accountId: a.id,
  currency: a.currency,
  type: a.type,
  flags: { debitsMustNotExceedCredits: a.debitsMustNotExceedCredits, creditsMustNotExceedDebits: a.creditsMustNotExceedDebits },
  metadata: {},
});

const posting = (accountId: string, side: 'debit' | 'credit', amount: bigint, currency: string): Posting => ({ accountId, side, amount, currency });
const pair = (from: string, to: string, amount: bigint, currency: string): Posting[] => [posting(from, 'debit', amount, currency), posting(to, 'credit', amount, currency)];

/** A transfer, or a hold when `hold` is given (with its timeout, or none). */
const transfer = (transferId: string, postings: readonly Posting[], hold?: { timeoutMs: number | undefined }): TransferLikeCommand => ({
  kind: 'transfer',
  transferId,
  postings,
  pending: hold,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
});
/** A full post (no amount, no currency) or a partial one (both). */
const postPending = (transferId: string, pendingId: string, partial?: { amount: bigint; currency: string }): TransferLikeCommand => ({
  kind: 'postPending',
  transferId,
  pendingId,
  amount: partial?.amount,
  currency: partial?.currency,
  effectiveAtMs: undefined,
  metadata: {},
});
const voidPending = (transferId: string, pendingId: string): TransferLikeCommand => ({ kind: 'voidPending', transferId, pendingId, effectiveAtMs: undefined, metadata: {} });
const reverseTransfer = (transferId: string, reversalOf: string): TransferLikeCommand => ({
  kind: 'reverseTransfer',
  transferId,
  reversalOf,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
});

/** A command's shape: its kind, with holds and partial posts told apart. Outcomes are counted by it. */
function shapeOf(command: LedgerCommand): string {
  if (command.kind === 'transfer' && command.pending !== undefined) return 'hold';
  if (command.kind === 'postPending' && command.amount !== undefined) return 'postPending (partial)';
  return command.kind;
}

// ---- steps --------------------------------------------------------------------------------------

const HOLD_TIMEOUTS_MS = [undefined, 1, 500, 2_000, 10_000] as const;

/**
 * A changed copy of an accepted command, undefined where the change does not apply to its shape.
 * Each changes one thing a retry must repeat: `decide` must answer it exists_with_different_*.
 */
const MUTATIONS: readonly (readonly [string, (command: TransferLikeCommand, run: FuzzRun, recordedAtMs: number) => TransferLikeCommand | undefined])[] = [
  ['other metadata', (c) => ({ ...c, metadata: { changed: 'yes' } })],
  ['other effective time', (c, run, recordedAtMs) => {
    // Within the back-dating window, and never the original's (its recorded time, as none was given).
    const effectiveAtMs = run.nowMs - 12_345 === recordedAtMs ? run.nowMs - 12_346 : run.nowMs - 12_345;
    return { ...c, effectiveAtMs };
  }],
  ['other amount', (c) => {
    if (c.kind === 'transfer') return { ...c, postings: c.postings.map((q) => ({ ...q, amount: q.amount === AMOUNT_MINOR_MAX ? q.amount - 1n : q.amount + 1n })) };
    if (c.kind === 'postPending') return c.amount === undefined ? { ...c, amount: 1n, currency: 'EUR' } : { ...c, amount: c.amount === 1n ? 2n : c.amount - 1n };
    return undefined;
  }],
  ['other currency', (c) => {
    if (c.kind === 'transfer') return { ...c, postings: c.postings.map((q) => ({ ...q, currency: q.currency === 'EUR' ? 'JPY' : 'EUR' })) };
    if (c.kind === 'postPending' && c.amount !== undefined) return { ...c, currency: c.currency === 'EUR' ? 'JPY' : 'EUR' };
    return undefined;
  }],
  // A partial post retried with its currency left out (a command built in code; the writer's
  // admission refuses it before `decide` sees it).
  ['currency left out', (c) => (c.kind === 'postPending' && c.amount !== undefined ? { ...c, currency: undefined } : undefined)],
  ['postings reordered', (c) => (c.kind === 'transfer' ? { ...c, postings: [...c.postings].reverse() } : undefined)],
  ['hold made a transfer or a transfer a hold', (c) => (c.kind === 'transfer' ? { ...c, pending: c.pending === undefined ? { timeoutMs: 1_000 } : undefined } : undefined)],
  ['other timeout', (c) => (c.kind === 'transfer' && c.pending !== undefined ? { ...c, pending: { timeoutMs: (c.pending.timeoutMs ?? 0) + 7 } } : undefined)],
  ['other reference', (c) => (c.kind === 'transfer' || c.kind === 'reverseTransfer' ? { ...c, reference: 'changed' } : undefined)],
  ['other pending id', (c, run) => {
    if (c.kind !== 'postPending' && c.kind !== 'voidPending') return undefined;
    const other = run.transfers().find((t) => t.kind === 'hold' && t.id !== c.pendingId)?.id ?? 'ghost';
    return { ...c, pendingId: other };
  }],
  ['other transfer reversed', (c) => (c.kind === 'reverseTransfer' ? { ...c, reversalOf: 'ghost' } : undefined)],
  ['other kind', (c) =>
    c.kind === 'reverseTransfer' || c.kind === 'transfer' ? voidPending(c.transferId, 'ghost') : reverseTransfer(c.transferId, 'ghost')],
];
export const MUTATION_NAMES = MUTATIONS.map(([name]) => name);

export type Step =
  | { readonly t: 'transfer' | 'hold'; readonly cur: number; readonly from: number; readonly to: number; readonly amount: number; readonly big: boolean; readonly timeout: number }
  | { readonly t: 'multi'; readonly eur: number; readonly jpy: number; readonly hold: boolean }
  | { readonly t: 'post'; readonly pick: number; readonly mode: 'full' | 'partial' | 'over' | 'explicitFull' }
  | { readonly t: 'void' | 'expire' | 'reverse'; readonly pick: number }
  | { readonly t: 'linked'; readonly members: readonly Step[] }
  | { readonly t: 'life'; readonly kind: 'freezeAccount' | 'unfreezeAccount' | 'closeAccount'; readonly account: number; readonly commandId: number }
  | { readonly t: 'retry'; readonly pick: number }
  | { readonly t: 'mutate'; readonly pick: number; readonly how: number }
  | { readonly t: 'tick'; readonly ms: number };

/** Steps that build one transfer-like command (so may be members of a linked group). */
const simpleStepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constantFrom('transfer' as const, 'hold' as const),
      cur: fc.nat(CURRENCY_CODES.length - 1),
      from: fc.nat(4),
      to: fc.nat(4),
      amount: fc.integer({ min: 1, max: 400 }),
      big: fc.boolean(),
      timeout: fc.nat(HOLD_TIMEOUTS_MS.length - 1),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('multi' as const), eur: fc.integer({ min: 1, max: 200 }), jpy: fc.integer({ min: 1, max: 200 }), hold: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('post' as const), pick: fc.nat(), mode: fc.constantFrom('full' as const, 'partial' as const, 'over' as const, 'explicitFull' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constantFrom('void' as const, 'expire' as const, 'reverse' as const), pick: fc.nat() }) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: simpleStepArb },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('linked' as const), members: fc.array(simpleStepArb, { minLength: 1, maxLength: 4 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('life' as const),
      kind: fc.constantFrom('freezeAccount' as const, 'unfreezeAccount' as const, 'closeAccount' as const),
      account: fc.nat(ACCOUNTS.length - 1),
      commandId: fc.nat(4), // 0: none
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('retry' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('mutate' as const), pick: fc.nat(), how: fc.nat(MUTATIONS.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 3_000 }) }) },
);

/** Sequences of 5 to `maxLength` steps, their lengths spread over the whole range (fast-check's default size keeps them under about 30). */
export const stepsArb = (maxLength: number): fc.Arbitrary<Step[]> => fc.array(stepArb, { minLength: 5, maxLength, size: 'max' });

// ---- the run ------------------------------------------------------------------------------------

export interface Outcome {
  readonly command: LedgerCommand;
  /** How the command came: set-up, built fresh by a step, a retry of an accepted one, or a changed retry (the mutation's name). */
  readonly source: 'setup' | 'fresh' | 'retry' | { readonly mutation: string };
  readonly decision: Decision;
  readonly nowMs: number;
  /** Version of the last event the command appended, if it appended any. */
  readonly lastVersion: number | undefined;
}

/** Serializes for comparison and messages (bigints as `123n`). */
export const ser = (value: unknown): string => JSON.stringify(value, (_, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));

const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : 1);

/** The accounts of a Map-backed state, by id. */
export function accountsOf(state: LedgerState): AccountState[] {
  return [...(state.accounts as Map<string, AccountState>).values()].sort(byId);
}

function checkCodes(decision: Decision, problems: string[]): void {
  if (!decision.ok && !(decision.code in REJECTION_CODES)) problems.push(`undocumented code ${decision.code}`);
  for (const member of decision.members ?? []) checkCodes(member, problems);
}

/** One sequence's state, folded events, outcomes and problems. */
export class FuzzRun {
  readonly state: LedgerState = {
    version: 0,
    lastRecordedAtMs: 0,
    stateBytes: 0,
    accounts: new Map<string, AccountState>(),
    transfers: new Map<string, TransferRecord>(),
    limitsAsserted: true,
  };
  readonly events: { event: LedgerEvent; version: number; recordedAtMs: number; effectiveAtMs: number }[] = [];
  readonly outcomes: Outcome[] = [];
  readonly problems: string[] = [];
  nowMs = START_MS;
  #nextId = 0;

  transfers(): TransferRecord[] {
    return [...(this.state.transfers as Map<string, TransferRecord>).values()];
  }

  /** Decides and folds a command, checking that `decide` left the state alone and answered a documented code. */
  run(command: LedgerCommand, source: Outcome['source']): Decision {
    const snapshot = (): string => ser([accountsOf(this.state), this.transfers(), this.state.version]);
    const before = snapshot();
    const decision = decide(command, this.state, { nowMs: this.nowMs, backdateWindowMs: BACKDATE_WINDOW_MS });
    if (snapshot() !== before) this.problems.push(`decide changed the state on ${ser(command)}`);
    checkCodes(decision, this.problems);
    let lastVersion: number | undefined;
    if (decision.ok && decision.events.length > 0) {
      for (const draft of decision.events) this.#fold(draft);
      lastVersion = this.state.version;
    }
    this.outcomes.push({ command, source, decision, nowMs: this.nowMs, lastVersion });
    return decision;
  }

  #fold(draft: EventDraft): void {
    const meta = { ledgerVersion: this.state.version + 1, recordedAtMs: this.nowMs, effectiveAtMs: draft.effectiveAtMs };
    try {
      evolve(this.state, draft.event, meta);
    } catch (error) {
      this.problems.push(`evolve refused a decided event ${ser(draft.event)}: ${(error as Error).message}`);
      throw error;
    }
    this.events.push({ event: draft.event, version: meta.ledgerVersion, recordedAtMs: meta.recordedAtMs, effectiveAtMs: meta.effectiveAtMs });
  }

  /** Debits equal credits per currency (posted and pending), balances in range, limits held, closed accounts empty, pending equals the open holds. */
  checkInvariants(label: string): void {
    const sums = new Map<string, { dp: bigint; cp: bigint; dh: bigint; ch: bigint }>();
    for (const a of accountsOf(this.state)) {
      const s = sums.get(a.currency) ?? { dp: 0n, cp: 0n, dh: 0n, ch: 0n };
      s.dp += a.debitsPosted;
      s.cp += a.creditsPosted;
      s.dh += a.debitsPending;
      s.ch += a.creditsPending;
      sums.set(a.currency, s);
      for (const balance of [a.debitsPosted, a.creditsPosted, a.debitsPending, a.creditsPending]) {
        if (balance < 0n || balance > BALANCE_MINOR_MAX) this.problems.push(`${label}: ${a.id} balance out of range ${balance}`);
      }
      if (a.flags.debitsMustNotExceedCredits && a.debitsPosted + a.debitsPending > a.creditsPosted) this.problems.push(`${label}: ${a.id} overdrawn`);
      if (a.flags.creditsMustNotExceedDebits && a.creditsPosted + a.creditsPending > a.debitsPosted) this.problems.push(`${label}: ${a.id} over its limit`);
      if (a.status === 'closed' && (a.debitsPosted !== a.creditsPosted || a.debitsPending !== 0n || a.creditsPending !== 0n)) this.problems.push(`${label}: closed ${a.id} not empty`);
    }
    for (const [currency, s] of sums) {
      if (s.dp !== s.cp) this.problems.push(`${label}: posted not conserved in ${currency}: ${s.dp} vs ${s.cp}`);
      if (s.dh !== s.ch) this.problems.push(`${label}: pending not conserved in ${currency}: ${s.dh} vs ${s.ch}`);
    }
    const held = new Map<string, { debits: bigint; credits: bigint }>();
    for (const t of this.transfers()) {
      if (t.kind !== 'hold' || t.resolution !== 'pending') continue;
      for (const q of t.postings) {
        const h = held.get(q.accountId) ?? { debits: 0n, credits: 0n };
        if (q.side === 'debit') h.debits += q.amount;
        else h.credits += q.amount;
        held.set(q.accountId, h);
      }
    }
    for (const a of accountsOf(this.state)) {
      const h = held.get(a.id) ?? { debits: 0n, credits: 0n };
      if (h.debits !== a.debitsPending || h.credits !== a.creditsPending) {
        this.problems.push(`${label}: ${a.id} pending ${a.debitsPending}/${a.creditsPending} but open holds ${h.debits}/${h.credits}`);
      }
    }
  }

  /** Replays every folded event into a fresh `initialState()` and compares accounts, transfers, version and size. */
  checkReplay(): void {
    const fresh = initialState();
    for (const e of this.events) evolve(fresh, e.event, { ledgerVersion: e.version, recordedAtMs: e.recordedAtMs, effectiveAtMs: e.effectiveAtMs });
    for (const a of accountsOf(this.state)) {
      const b = fresh.accounts.get(a.id);
      if (ser(a) !== ser(b)) this.problems.push(`replay differs on account ${a.id}: ${ser(a)} vs ${ser(b)}`);
    }
    for (const t of this.transfers()) {
      const u = fresh.transfers.get(t.id);
      if (ser(t) !== ser(u)) this.problems.push(`replay differs on transfer ${t.id}: ${ser(t)} vs ${ser(u)}`);
    }
    if (fresh.version !== this.state.version) this.problems.push(`replay version ${fresh.version} vs ${this.state.version}`);
    if (fresh.stateBytes !== this.state.stateBytes) this.problems.push(`replay stateBytes ${fresh.stateBytes} vs ${this.state.stateBytes}`);
  }

  /** The answer the docs give for a fresh command where that is simple to tell; undefined elsewhere. */
  expected(command: LedgerCommand): string | undefined {
    const get = (id: string): TransferRecord | undefined => this.state.transfers.get(id);
    if (command.kind === 'postPending' || command.kind === 'voidPending' || command.kind === 'expirePending') {
      const hold = get(command.pendingId);
      if (hold === undefined || hold.kind !== 'hold') return 'pending_not_found';
      if (hold.resolution !== 'pending') return 'pending_already_resolved';
      const timedOut = hold.timeoutAtMs !== undefined && hold.timeoutAtMs <= this.nowMs;
      if (command.kind === 'expirePending') return timedOut ? 'ok' : 'pending_not_expired';
      if (timedOut) return 'pending_expired';
      const held = hold.postings[0] as Posting;
      if (command.kind === 'postPending' && command.amount !== undefined && hold.postings.length === 2 && command.currency === held.currency && command.amount > held.amount) {
        return 'amount_exceeds_pending';
      }
    }
    if (command.kind === 'reverseTransfer') {
      const t = get(command.reversalOf);
      if (t === undefined) return 'transfer_not_found';
      if (t.kind !== 'transfer' && t.kind !== 'postPending') return 'transfer_not_reversible';
      if (t.reversedBy !== undefined) return 'transfer_already_reversed';
    }
    return undefined;
  }

  /** Each money-moving event of the events from `firstEvent` on touched only accounts that were open before the command. */
  checkMoneyMoves(command: LedgerCommand, statusesBefore: Map<string, string>, firstEvent: number): void {
    for (const { event } of this.events.slice(firstEvent)) {
      if (event.type !== 'TransferPosted' && event.type !== 'TransferPending' && event.type !== 'PendingPosted') continue;
      for (const q of event.postings) {
        const status = statusesBefore.get(q.accountId);
        if (status !== 'open') this.problems.push(`${event.type} moved money on ${status} account ${q.accountId} (${ser(command)})`);
      }
    }
  }

  statuses(): Map<string, string> {
    return new Map(accountsOf(this.state).map((a) => [a.id, a.status]));
  }

  #id(prefix: string): string {
    this.#nextId += 1;
    return `${prefix}${this.#nextId}`;
  }

  /**
   * A hold for a post, void or expiry: one in four picks any hold (resolved ones too), one in four
   * an open hold whose timeout has passed, the rest an open hold (each falling back to any hold).
   */
  #pickHold(pick: number): TransferRecord | undefined {
    const holds = this.transfers().filter((t) => t.kind === 'hold');
    const open = holds.filter((t) => t.resolution === 'pending');
    const timedOut = open.filter((t) => t.timeoutAtMs !== undefined && t.timeoutAtMs <= this.nowMs);
    const from = pick % 4 === 0 ? holds : pick % 4 === 1 && timedOut.length > 0 ? timedOut : open.length > 0 ? open : holds;
    return pickFrom(from, pick);
  }

  /** The command of a simple step on the current state; undefined when nothing fits. */
  build(step: Step): TransferLikeCommand | ExpirePendingCommand | undefined {
    switch (step.t) {
      case 'transfer':
      case 'hold': {
        const currency = CURRENCY_CODES[step.cur] as string;
        const accounts = accountsIn(currency);
        const from = (accounts[step.from % accounts.length] as AccountSpec).id;
        const to = (accounts[(step.from % accounts.length === step.to % accounts.length ? step.to + 1 : step.to) % accounts.length] as AccountSpec).id;
        const amount = currency === 'TOKEN' && step.big ? AMOUNT_MINOR_MAX - BigInt(step.amount) : BigInt(step.amount);
        if (step.t === 'transfer') return transfer(this.#id('t'), pair(from, to, amount, currency));
        return transfer(this.#id('h'), pair(from, to, amount, currency), { timeoutMs: HOLD_TIMEOUTS_MS[step.timeout] });
      }
      case 'multi': {
        const postings = [...pair('cash', 'alice', BigInt(step.eur), 'EUR'), ...pair('jcash', 'jalice', BigInt(step.jpy), 'JPY')];
        return step.hold ? transfer(this.#id('h'), postings, { timeoutMs: 5_000 }) : transfer(this.#id('t'), postings);
      }
      case 'post': {
        const hold = this.#pickHold(step.pick);
        if (hold === undefined) return undefined;
        const { amount, currency } = hold.postings[0] as Posting;
        const id = this.#id('p');
        if (step.mode === 'full') return postPending(id, hold.id);
        if (step.mode === 'explicitFull') return postPending(id, hold.id, { amount, currency });
        if (step.mode === 'over') return postPending(id, hold.id, { amount: amount + 1n, currency });
        return postPending(id, hold.id, { amount: amount > 1n ? amount / 2n : 1n, currency });
      }
      case 'void':
      case 'expire': {
        const hold = this.#pickHold(step.pick);
        if (hold === undefined) return undefined;
        return step.t === 'void' ? voidPending(this.#id('v'), hold.id) : { kind: 'expirePending', pendingId: hold.id };
      }
      case 'reverse': {
        // One in four reverses a transfer already reversed, if there is one.
        const all = this.transfers();
        const reversed = all.filter((t) => t.reversedBy !== undefined);
        const target = pickFrom(step.pick % 4 === 0 && reversed.length > 0 ? reversed : all, step.pick);
        return target === undefined ? undefined : reverseTransfer(this.#id('r'), target.id);
      }
      default:
        return undefined;
    }
  }
}

const pickFrom = <T>(xs: readonly T[], pick: number): T | undefined => (xs.length === 0 ? undefined : xs[pick % xs.length]);

/** Picks a shape first, then one of its items, so that rare shapes are picked as often as common ones. */
function pickByShape<T extends { command: LedgerCommand }>(xs: readonly T[], pick: number): T | undefined {
  const groups = new Map<string, T[]>();
  for (const x of xs) {
    const shape = shapeOf(x.command);
    const group = groups.get(shape);
    if (group === undefined) groups.set(shape, [x]);
    else group.push(x);
  }
  const group = pickFrom([...groups.values()], pick);
  return group === undefined ? undefined : pickFrom(group, Math.floor(pick / groups.size));
}

/** Whether a retry may repeat the command: it appended events and is known by an id (an expiry is not; a status change only with its command id). */
function retriable({ command, decision, lastVersion }: Outcome): boolean {
  if (!decision.ok || lastVersion === undefined || command.kind === 'expirePending') return false;
  const lifecycle = command.kind === 'freezeAccount' || command.kind === 'unfreezeAccount' || command.kind === 'closeAccount';
  return !lifecycle || command.commandId !== undefined;
}

/**
 * Opens the accounts, funds them, then runs the steps, checking after each one: the invariants,
 * the docs' answer for a fresh command where {@link FuzzRun.expected} knows it, that money moved
 * only on open accounts, that a retry answers as a duplicate of the original outcome and a changed
 * retry exists_with_different_*. Stops at the first step with a problem; replays at the end.
 */
export function runSteps(steps: readonly Step[]): FuzzRun {
  const f = new FuzzRun();
  for (const a of ACCOUNTS) f.run(openAccount(a), 'setup');
  f.run(transfer('seed-e', pair('cash', 'alice', 1_000n, 'EUR')), 'setup');
  f.run(transfer('seed-j', pair('jcash', 'jalice', 1_000n, 'JPY')), 'setup');
  f.run(transfer('seed-t', pair('tcash', 'talice', AMOUNT_MINOR_MAX, 'TOKEN')), 'setup');
  f.run(transfer('seed-l', pair('line', 'fees', 1_000n, 'EUR')), 'setup');
  f.run(transfer('seed-tl', pair('tline', 'tcash', AMOUNT_MINOR_MAX, 'TOKEN')), 'setup');
  f.checkInvariants('set-up');

  const decideFresh = (command: LedgerCommand, label: string): void => {
    const expected = f.expected(command);
    const statuses = f.statuses();
    const firstEvent = f.events.length;
    const decision = f.run(command, 'fresh');
    const got = decision.ok ? 'ok' : decision.code;
    if (expected !== undefined && got !== expected) f.problems.push(`${label}: expected ${expected}, got ${got} for ${ser(command)}`);
    f.checkMoneyMoves(command, statuses, firstEvent);
  };

  for (const [i, step] of steps.entries()) {
    if (f.problems.length > 0) break;
    const label = `step ${i} ${step.t}`;
    switch (step.t) {
      case 'tick':
        f.nowMs += step.ms;
        break;
      case 'life': {
        // An unfreeze picks a frozen account every other time, if there is one: at random it would rarely find one.
        const frozen = accountsOf(f.state).filter((a) => a.status === 'frozen');
        const unfreezing = step.kind === 'unfreezeAccount' && step.account % 2 === 0 && frozen.length > 0;
        const accountId = unfreezing ? (pickFrom(frozen, step.account) as AccountState).id : (ACCOUNTS[step.account] as AccountSpec).id;
        const commandId = step.commandId === 0 ? {} : { commandId: `c${step.commandId}` };
        decideFresh(step.kind === 'freezeAccount' ? { kind: step.kind, accountId, reason: undefined, ...commandId } : { kind: step.kind, accountId, ...commandId }, label);
        break;
      }
      case 'linked': {
        const members = step.members.map((m) => f.build(m)).filter((c): c is TransferLikeCommand => c !== undefined && c.kind !== 'expirePending');
        if (members.length > 0) decideFresh({ kind: 'linked', commands: members }, label);
        break;
      }
      case 'retry': {
        const o = pickByShape(f.outcomes.filter(retriable), step.pick);
        if (o === undefined) break;
        const decision = f.run(o.command, 'retry');
        const original = { ledgerVersion: o.lastVersion, recordedAtMs: o.nowMs };
        if (!decision.ok || decision.events.length !== 0 || ser(decision.duplicateOf) !== ser(original)) {
          f.problems.push(`${label}: retry of ${ser(o.command)} (v${o.lastVersion}) answered ${ser(decision)}`);
        }
        break;
      }
      case 'mutate': {
        const [name, mutation] = MUTATIONS[step.how] as (typeof MUTATIONS)[number];
        const candidates = f.outcomes.filter((o) => o.decision.ok && o.lastVersion !== undefined && 'transferId' in o.command);
        const applicable = candidates.flatMap((o) => {
          const changed = mutation(o.command as TransferLikeCommand, f, o.nowMs);
          return changed === undefined ? [] : [{ command: o.command, changed }];
        });
        const picked = pickByShape(applicable, step.pick);
        if (picked === undefined) break;
        const decision = f.run(picked.changed, { mutation: name });
        if (decision.ok || !decision.code.startsWith('exists_with_different_')) {
          f.problems.push(`${label}: ${name}: ${ser(picked.changed)} after ${ser(picked.command)} answered ${ser(decision.ok ? decision : decision.code)}`);
        }
        break;
      }
      default: {
        const built = f.build(step);
        if (built !== undefined) decideFresh(built, label);
      }
    }
    f.checkInvariants(label);
  }
  f.checkReplay();
  return f;
}

/** What an outcome counts as: its shape or source and its answer, e.g. `postPending (partial): ok`, `retry: duplicate`, `other amount: exists_with_different_amount`. */
export function outcomeKey(o: Outcome): string {
  const answer = o.decision.ok ? (o.decision.duplicateOf !== undefined ? 'duplicate' : 'ok') : o.decision.code;
  const what = o.source === 'fresh' || o.source === 'setup' ? shapeOf(o.command) : o.source === 'retry' ? 'retry' : o.source.mutation;
  return `${what}: ${answer}`;
}
