/**
 * Random-sequence properties over the lifecycles the reference-model test (properties.test.ts)
 * reaches only by chance or not at all: holds that the writer itself expires as its clock moves
 * (at exactly the timeout instant too), posts and voids racing an expiry in one batch, reversals of
 * every kind of transfer (and second reversals), status changes between them (with or without a
 * command id), retries of any earlier command (a freeze, unfreeze or close with its command id
 * too) after restarts from a snapshot with a one-transfer cache, linked groups failing at every
 * position, and effective-time views. Each command's outcome is checked against the rule
 * the docs state, computed from the state just before it, and the whole ledger against the
 * invariants after every step.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  InMemoryEventStore,
  LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX,
  LedgerWriter,
  REJECTION_CODES,
  readLedger,
  replayLedger,
  type AccountState,
  type CloseAccountCommand,
  type CommandResult,
  type FreezeAccountCommand,
  type UnfreezeAccountCommand,
  type LedgerCommand,
  type LedgerSource,
  type LedgerWriterOptions,
  type Posting,
  type StoredEvent,
  type TransferLikeCommand,
} from '@ledgerkit/ledger-core';

const TENANT = 'life';
const LEDGER = 'main';
const START_MS = Date.parse('2025-06-01T00:00:00.000Z');
const BACKDATE_WINDOW_MS = 30_000;
const EXPIRY_INTERVAL_MS = 10;
const GHOST = 'ghost';
// A property that runs out of time fails rather than passing on the runs it managed: a loaded
// machine must not quietly test fewer cases, nor drop a failure found late. The limit is far
// above a run's time here (100 runs take about 2 s on an idle 2-core machine), and the test's
// timeout above the limit, so that the property's own report (its counterexample) is what fails.
const PROPERTY_TIME_LIMIT_MS = 30_000;
const PROPERTY_TEST_TIMEOUT_MS = PROPERTY_TIME_LIMIT_MS + 30_000;

type Side = 'debit' | 'credit';

/** Accounts every run opens: two protected customers, a credit line, a bank and an expense. */
const ACCOUNTS = [
  { id: 'bank', type: 'asset', debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
  { id: 'alice', type: 'liability', debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false },
  { id: 'bob', type: 'liability', debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false },
  { id: 'line', type: 'asset', debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: true },
  { id: 'fees', type: 'expense', debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
] as const;
const IDS = ACCOUNTS.map((a) => a.id);

const posting = (accountId: string, side: Side, amount: bigint): Posting => ({ accountId, side, amount, currency: 'EUR' });

function transfer(transferId: string, postings: readonly Posting[], extra: { hold?: boolean; timeoutMs?: number | undefined; effectiveAtMs?: number | undefined; reference?: string } = {}): LedgerCommand {
  return {
    kind: 'transfer',
    transferId,
    postings,
    pending: extra.hold === true ? { timeoutMs: extra.timeoutMs } : undefined,
    effectiveAtMs: extra.effectiveAtMs,
    reference: extra.reference,
    metadata: {},
  };
}

// ---- facts read back from the log, independently of decide/evolve -----------------------------------

interface HoldFact {
  readonly id: string;
  readonly postings: readonly Posting[];
  readonly timeoutAtMs: number | undefined;
  resolution: 'pending' | 'posted' | 'voided' | 'expired';
  resolvedAtMs: number | undefined;
}

interface TransferFact {
  readonly id: string;
  readonly type: 'TransferPosted' | 'TransferPending' | 'PendingPosted' | 'PendingVoided';
  readonly postings: readonly Posting[];
  readonly reversalOf: string | undefined;
  readonly effectiveAtMs: number;
  reversedBy: string[];
}

interface Facts {
  readonly holds: Map<string, HoldFact>;
  readonly transfers: Map<string, TransferFact>;
  readonly events: readonly StoredEvent[];
}

function postingsOf(data: Record<string, unknown>): Posting[] {
  const raw = (data['postings'] ?? []) as { accountId: string; side: Side; amount: string; currency: string }[];
  // Amounts are stored as decimal strings in the currency's scale: EUR has two decimals.
  return raw.map((p) => ({ accountId: p.accountId, side: p.side, amount: BigInt(p.amount.replace('.', '')), currency: p.currency }));
}

async function factsOf(store: InMemoryEventStore): Promise<Facts> {
  const events: StoredEvent[] = [];
  for await (const event of readLedger({ store, tenantId: TENANT, ledgerId: LEDGER })) events.push(event);
  const holds = new Map<string, HoldFact>();
  const transfers = new Map<string, TransferFact>();
  for (const event of events) {
    const data = event.data as Record<string, unknown>;
    const recordedAtMs = Date.parse(event.recordedAt);
    switch (event.type) {
      case 'TransferPending': {
        const timeoutMs = data['timeoutMs'] as number | undefined;
        holds.set(data['transferId'] as string, {
          id: data['transferId'] as string,
          postings: postingsOf(data),
          timeoutAtMs: timeoutMs === undefined || timeoutMs === null ? undefined : recordedAtMs + timeoutMs,
          resolution: 'pending',
          resolvedAtMs: undefined,
        });
        break;
      }
      case 'PendingPosted':
      case 'PendingVoided':
      case 'PendingExpired': {
        const hold = holds.get(data['pendingId'] as string) as HoldFact;
        expect(hold, `${event.type} of an unknown hold`).toBeDefined();
        expect(hold.resolution, `hold ${hold.id} resolved twice`).toBe('pending');
        hold.resolution = event.type === 'PendingPosted' ? 'posted' : event.type === 'PendingVoided' ? 'voided' : 'expired';
        hold.resolvedAtMs = recordedAtMs;
        break;
      }
      default:
        break;
    }
    if (event.type === 'TransferPosted' || event.type === 'TransferPending' || event.type === 'PendingPosted' || event.type === 'PendingVoided') {
      const reversalOf = (data['reversalOf'] ?? undefined) as string | undefined;
      transfers.set(data['transferId'] as string, { id: data['transferId'] as string, type: event.type, postings: postingsOf(data), reversalOf: reversalOf ?? undefined, effectiveAtMs: Date.parse(event.effectiveAt), reversedBy: [] });
      if (reversalOf !== undefined && reversalOf !== null) transfers.get(reversalOf)?.reversedBy.push(data['transferId'] as string);
    }
  }
  return { holds, transfers, events };
}

// ---- the rules, as the docs state them, applied to the state before a command ---------------------

/** The code a posting set would be refused with on these accounts, or undefined if it fits every rule. */
function limitCodes(accounts: ReadonlyMap<string, AccountState>, deltas: readonly { accountId: string; dPosted: bigint; cPosted: bigint; dPending: bigint; cPending: bigint }[]): Set<string> {
  const codes = new Set<string>();
  // One account's deltas apply together (a post releases the hold and posts in one event).
  const merged = new Map<string, { accountId: string; dPosted: bigint; cPosted: bigint; dPending: bigint; cPending: bigint }>();
  for (const d of deltas) {
    const m = merged.get(d.accountId);
    merged.set(d.accountId, m === undefined ? { ...d } : { accountId: d.accountId, dPosted: m.dPosted + d.dPosted, cPosted: m.cPosted + d.cPosted, dPending: m.dPending + d.dPending, cPending: m.cPending + d.cPending });
  }
  for (const d of merged.values()) {
    const a = accounts.get(d.accountId);
    if (a === undefined) {
      codes.add('account_not_found');
      continue;
    }
    if (a.status !== 'open') codes.add(a.status === 'frozen' ? 'account_frozen' : 'account_closed');
    const dP = a.debitsPosted + d.dPosted;
    const cP = a.creditsPosted + d.cPosted;
    const dPe = a.debitsPending + d.dPending;
    const cPe = a.creditsPending + d.cPending;
    if (a.flags.debitsMustNotExceedCredits && dP + dPe > cP) codes.add('insufficient_funds');
    if (a.flags.creditsMustNotExceedDebits && cP + cPe > dP) codes.add('limit_exceeded');
  }
  return codes;
}

const applied = (postings: readonly Posting[], bucket: 'posted' | 'pending', sign = 1n): { accountId: string; dPosted: bigint; cPosted: bigint; dPending: bigint; cPending: bigint }[] =>
  postings.map((p) => {
    const amount = p.amount * sign;
    const debit = p.side === 'debit';
    return {
      accountId: p.accountId,
      dPosted: bucket === 'posted' && debit ? amount : 0n,
      cPosted: bucket === 'posted' && !debit ? amount : 0n,
      dPending: bucket === 'pending' && debit ? amount : 0n,
      cPending: bucket === 'pending' && !debit ? amount : 0n,
    };
  });

/** What a fresh (never used id) transfer-like command must answer, from the docs' rules. */
function expectedCodes(command: TransferLikeCommand, accounts: ReadonlyMap<string, AccountState>, facts: Facts, nowMs: number): Set<string> | 'ok' {
  const verdict = (codes: Set<string>): Set<string> | 'ok' => (codes.size === 0 ? 'ok' : codes);
  switch (command.kind) {
    case 'transfer':
      if ((command.effectiveAtMs ?? nowMs) < nowMs - BACKDATE_WINDOW_MS) return new Set(['effective_at_outside_window']);
      return verdict(limitCodes(accounts, applied(command.postings, command.pending === undefined ? 'posted' : 'pending')));
    case 'voidPending':
    case 'postPending': {
      const hold = facts.holds.get(command.pendingId);
      if (hold === undefined) return new Set(['pending_not_found']);
      if (hold.resolution !== 'pending') return new Set(['pending_already_resolved']);
      if (hold.timeoutAtMs !== undefined && hold.timeoutAtMs <= nowMs) return new Set(['pending_expired']);
      if (command.kind === 'voidPending') return 'ok';
      if (command.amount !== undefined && hold.postings.length !== 2) return new Set(['partial_post_not_supported']);
      const amount = command.amount;
      if (amount !== undefined && amount > (hold.postings[0] as Posting).amount) return new Set(['amount_exceeds_pending']);
      const posted = amount === undefined ? hold.postings : hold.postings.map((p) => ({ ...p, amount }));
      return verdict(limitCodes(accounts, [...applied(posted, 'posted'), ...applied(hold.postings, 'pending', -1n)]));
    }
    case 'reverseTransfer': {
      const original = facts.transfers.get(command.reversalOf);
      if (original === undefined) return new Set(['transfer_not_found']);
      if (original.type === 'TransferPending' || original.type === 'PendingVoided' || original.reversalOf !== undefined) return new Set(['transfer_not_reversible']);
      if (original.reversedBy.length > 0) return new Set(['transfer_already_reversed']);
      const effectiveAtMs = command.effectiveAtMs ?? nowMs;
      if (effectiveAtMs < nowMs - BACKDATE_WINDOW_MS) return new Set(['effective_at_outside_window']);
      if (effectiveAtMs < original.effectiveAtMs) return new Set(['effective_at_before_dependency']);
      const swapped = original.postings.map((p) => ({ ...p, side: p.side === 'debit' ? ('credit' as const) : ('debit' as const) }));
      return verdict(limitCodes(accounts, applied(swapped, 'posted')));
    }
  }
}

// ---- the harness -------------------------------------------------------------------------------------

interface Done {
  readonly command: LedgerCommand;
  readonly result: CommandResult;
}

class Harness {
  readonly store = new InMemoryEventStore();
  clockMs = START_MS;
  writer!: LedgerWriter;
  readonly done: Done[] = [];
  /** The hold the next post or void names, set by a step that moved the clock to its timeout. */
  target: string | undefined;
  #next = 0;

  constructor(readonly tuning: Pick<LedgerWriterOptions, 'transfersCachedMax' | 'snapshotEveryEvents'>) {}

  get source(): LedgerSource {
    return { store: this.store, codec: this.writer.codec, tenantId: TENANT, ledgerId: LEDGER };
  }

  async open(): Promise<void> {
    this.writer = await LedgerWriter.open({
      store: this.store,
      tenantId: TENANT,
      ledgerId: LEDGER,
      clock: () => this.clockMs,
      backdateWindowMs: BACKDATE_WINDOW_MS,
      expiryCheckIntervalMs: EXPIRY_INTERVAL_MS,
      ...this.tuning,
    });
  }

  id(prefix: string): string {
    this.#next += 1;
    return `${prefix}-${this.#next}`;
  }

  accounts(): Map<string, AccountState> {
    return new Map(this.writer.accounts().map((a) => [a.id, a]));
  }

  /** The time the writer's next batch records: its clock, never before the last recorded event. */
  nowMs(facts: Facts): number {
    const last = facts.events[facts.events.length - 1];
    return Math.max(this.clockMs, last === undefined ? 0 : Date.parse(last.recordedAt));
  }

  async submit(command: LedgerCommand): Promise<CommandResult> {
    const result = await this.writer.submit(command);
    checkCodes(result);
    this.done.push({ command, result });
    return result;
  }

  /** Lets the writer's expiry timer fire and waits until the expiries it queued are decided. */
  async tick(): Promise<void> {
    vi.advanceTimersByTime(EXPIRY_INTERVAL_MS);
    // Queued behind the expiries, so it settles only once their batch is durable.
    await this.writer.submit({ kind: 'unfreezeAccount', accountId: GHOST });
  }

  async reopen(snapshot: boolean): Promise<void> {
    if (snapshot) await this.writer.saveSnapshot();
    await this.writer.close();
    await this.open();
  }
}

function checkCodes(result: CommandResult): void {
  if (!result.ok) expect(Object.keys(REJECTION_CODES), `code ${result.code}`).toContain(result.code);
  for (const member of result.members ?? []) checkCodes(member);
}

const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const stateOf = (accounts: Iterable<AccountState>): AccountState[] => [...accounts].map((a) => ({ ...a, flags: { ...a.flags }, metadata: { ...a.metadata } })).sort(byId);

/** Every invariant the docs promise, after any step. */
async function checkInvariants(h: Harness, label: string): Promise<Facts> {
  const facts = await factsOf(h.store);
  const accounts = h.writer.accounts();
  expect(h.writer.version, `${label}: writer version`).toBe(facts.events.length);
  let dP = 0n;
  let cP = 0n;
  let dPe = 0n;
  let cPe = 0n;
  const reserved = new Map<string, { d: bigint; c: bigint }>();
  for (const hold of facts.holds.values()) {
    if (hold.resolution !== 'pending') {
      expect(h.writer.pendingHold(hold.id), `${label}: ${hold.id} resolved`).toBeUndefined();
      continue;
    }
    expect(h.writer.pendingHold(hold.id)?.id, `${label}: ${hold.id} open`).toBe(hold.id);
    for (const p of hold.postings) {
      const r = reserved.get(p.accountId) ?? { d: 0n, c: 0n };
      if (p.side === 'debit') r.d += p.amount;
      else r.c += p.amount;
      reserved.set(p.accountId, r);
    }
  }
  for (const a of accounts) {
    dP += a.debitsPosted;
    cP += a.creditsPosted;
    dPe += a.debitsPending;
    cPe += a.creditsPending;
    if (a.flags.debitsMustNotExceedCredits) expect(a.debitsPosted + a.debitsPending <= a.creditsPosted, `${label}: ${a.id} overdrawn`).toBe(true);
    if (a.flags.creditsMustNotExceedDebits) expect(a.creditsPosted + a.creditsPending <= a.debitsPosted, `${label}: ${a.id} over its limit`).toBe(true);
    // An account closes only at zero with nothing pending, and nothing touches it afterwards.
    if (a.status === 'closed') expect([a.debitsPosted - a.creditsPosted, a.debitsPending, a.creditsPending], `${label}: closed ${a.id}`).toEqual([0n, 0n, 0n]);
    const r = reserved.get(a.id) ?? { d: 0n, c: 0n };
    expect([a.debitsPending, a.creditsPending], `${label}: ${a.id} pending equals its open holds`).toEqual([r.d, r.c]);
  }
  expect(dP, `${label}: posted debits equal credits`).toBe(cP);
  expect(dPe, `${label}: pending debits equal credits`).toBe(cPe);
  for (const hold of facts.holds.values()) {
    // A hold never expires before its timeout, and never without one.
    if (hold.resolution === 'expired') expect(hold.timeoutAtMs !== undefined && (hold.resolvedAtMs as number) >= hold.timeoutAtMs, `${label}: ${hold.id} expired early`).toBe(true);
  }
  for (const t of facts.transfers.values()) {
    // A transfer is reversed at most once, and only a posted transfer or a posted hold is.
    expect(t.reversedBy.length, `${label}: ${t.id} reversals`).toBeLessThanOrEqual(1);
    if (t.reversedBy.length > 0) expect(t.type === 'TransferPosted' || t.type === 'PendingPosted', `${label}: ${t.id} reversible`).toBe(true);
    if (t.reversedBy.length > 0) expect(t.reversalOf, `${label}: ${t.id} is itself a reversal`).toBeUndefined();
  }
  return facts;
}

async function checkReplay(h: Harness, label: string): Promise<void> {
  const replayed = await replayLedger(h.source);
  expect(replayed.version, `${label}: replay version`).toBe(h.writer.version);
  expect(stateOf(replayed.accounts.values()), `${label}: replay equals the writer`).toEqual(stateOf(h.writer.accounts()));
  const again = await replayLedger(h.source);
  expect(stateOf(again.accounts.values()), `${label}: replay is deterministic`).toEqual(stateOf(replayed.accounts.values()));
}

// ---- steps ------------------------------------------------------------------------------------------

type Step =
  | { readonly t: 'transfer'; readonly from: number; readonly to: number; readonly amount: bigint; readonly backMs: number }
  | { readonly t: 'multi'; readonly picks: readonly number[]; readonly amount: bigint; readonly hold: boolean; readonly timeoutMs: number | undefined }
  | { readonly t: 'hold'; readonly from: number; readonly to: number; readonly amount: bigint; readonly timeoutMs: number | undefined }
  | { readonly t: 'post'; readonly pick: number; readonly mode: 'full' | 'omit' | 'partial' | 'over'; readonly race: 'none' | 'before' | 'after' }
  | { readonly t: 'void'; readonly pick: number; readonly race: 'none' | 'before' | 'after' }
  | { readonly t: 'reverse'; readonly pick: number; readonly backMs: number }
  | { readonly t: 'status'; readonly op: LifecycleOp; readonly pick: number; readonly withId: boolean }
  | { readonly t: 'clock'; readonly deltaMs: number }
  | { readonly t: 'toTimeout'; readonly pick: number; readonly offsetMs: -1 | 0 | 1 }
  | { readonly t: 'atTimeout'; readonly pick: number; readonly offsetMs: -1 | 0; readonly then: 'post' | 'void'; readonly race: 'none' | 'before' | 'after' }
  | { readonly t: 'tick' }
  | { readonly t: 'retry'; readonly pick: number; readonly mutate: boolean }
  | { readonly t: 'reopen'; readonly snapshot: boolean };

const amountArb = fc.oneof({ weight: 3, arbitrary: fc.bigInt(1n, 500n) }, { weight: 1, arbitrary: fc.bigInt(1n, 20_000n) });
/**
 * How far back a transfer or reversal is dated: not at all, within the window, or at its edges
 * (1 ms inside and exactly at the window are accepted, 1 ms past it is effective_at_outside_window).
 */
const backMsArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 40_000 }) },
  { weight: 2, arbitrary: fc.constantFrom(BACKDATE_WINDOW_MS - 1, BACKDATE_WINDOW_MS, BACKDATE_WINDOW_MS + 1) },
);
const timeoutArb = fc.option(fc.integer({ min: 1, max: 3_000 }), { nil: undefined, freq: 4 });
const raceArb = fc.constantFrom('none' as const, 'none' as const, 'before' as const, 'after' as const);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('transfer' as const), from: fc.nat(), to: fc.nat(), amount: amountArb, backMs: backMsArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('multi' as const), picks: fc.array(fc.nat(), { minLength: 3, maxLength: 3 }), amount: amountArb, hold: fc.boolean(), timeoutMs: timeoutArb }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('hold' as const), from: fc.nat(), to: fc.nat(), amount: amountArb, timeoutMs: timeoutArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('post' as const), pick: fc.nat(), mode: fc.constantFrom('full' as const, 'omit' as const, 'partial' as const, 'over' as const), race: raceArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('void' as const), pick: fc.nat(), race: raceArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('reverse' as const), pick: fc.nat(), backMs: backMsArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('status' as const), op: fc.constantFrom('freezeAccount' as const, 'unfreezeAccount' as const, 'closeAccount' as const), pick: fc.nat(), withId: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('clock' as const), deltaMs: fc.integer({ min: 0, max: 2_500 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('toTimeout' as const), pick: fc.nat(), offsetMs: fc.constantFrom(-1 as const, 0 as const, 1 as const) }) },
  { weight: 2, arbitrary: fc.constant<Step>({ t: 'tick' }) },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant('atTimeout' as const), pick: fc.nat(), offsetMs: fc.constantFrom(-1 as const, 0 as const), then: fc.constantFrom('post' as const, 'void' as const), race: raceArb }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('retry' as const), pick: fc.nat(), mutate: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reopen' as const), snapshot: fc.boolean() }) },
);

const pick = <T>(items: readonly T[], n: number): T | undefined => (items.length === 0 ? undefined : items[n % items.length]);

/** Releases, on a copy of the accounts, the holds the expiry timer would expire at `nowMs`. */
function afterExpiries(accounts: Map<string, AccountState>, facts: Facts, nowMs: number): Map<string, AccountState> {
  const copy = new Map([...accounts].map(([id, a]) => [id, { ...a }]));
  for (const hold of facts.holds.values()) {
    if (hold.resolution !== 'pending' || hold.timeoutAtMs === undefined || hold.timeoutAtMs > nowMs) continue;
    for (const p of hold.postings) {
      const a = copy.get(p.accountId) as AccountState;
      if (p.side === 'debit') a.debitsPending -= p.amount;
      else a.creditsPending -= p.amount;
    }
  }
  return copy;
}

function expectOutcome(result: CommandResult, expected: Set<string> | 'ok', label: string): void {
  if (expected === 'ok') {
    expect(result, label).toMatchObject({ ok: true, duplicate: false });
  } else {
    expect(result.ok, `${label}: expected one of ${[...expected].join(', ')}, got ${JSON.stringify(result)}`).toBe(false);
    expect([...expected], label).toContain((result as { code: string }).code);
  }
}

/**
 * The window's edge, stated outright: a command dated exactly `BACKDATE_WINDOW_MS` (or 1 ms less)
 * before its recorded time is inside the window, one dated 1 ms more is outside it
 * (docs/decider.md: `effective_at_outside_window` before `nowMs - backdateWindowMs`), unless
 * the command was refused with one of the codes `checkedFirst`, which are decided before its time.
 */
function checkWindowEdge(h: Harness, backMs: number, checkedFirst: readonly string[], label: string): void {
  const { result } = h.done[h.done.length - 1] as Done;
  const code = result.ok ? 'accepted' : result.code;
  if (checkedFirst.includes(code)) return;
  if (backMs === BACKDATE_WINDOW_MS + 1) expect(code, `${label}: dated 1 ms past the window`).toBe('effective_at_outside_window');
  if (backMs === BACKDATE_WINDOW_MS || backMs === BACKDATE_WINDOW_MS - 1) expect(code, `${label}: dated ${backMs} ms back, inside the window`).not.toBe('effective_at_outside_window');
}

type LifecycleOp = 'freezeAccount' | 'unfreezeAccount' | 'closeAccount';
const LIFECYCLE_OPS: readonly LifecycleOp[] = ['freezeAccount', 'unfreezeAccount', 'closeAccount'];

function isLifecycle(command: LedgerCommand): command is FreezeAccountCommand | UnfreezeAccountCommand | CloseAccountCommand {
  return command.kind === 'freezeAccount' || command.kind === 'unfreezeAccount' || command.kind === 'closeAccount';
}

function lifecycleCommand(op: LifecycleOp, accountId: string, commandId: string | undefined): LedgerCommand {
  const id = commandId === undefined ? {} : { commandId };
  return op === 'freezeAccount' ? { kind: op, accountId, reason: undefined, ...id } : { kind: op, accountId, ...id };
}

/** What the docs rule for a freeze, unfreeze or close that is not a retry, from the account's state before it. */
function statusExpectation(op: LifecycleOp, a: AccountState | undefined): Set<string> | 'ok' {
  if (a === undefined) return new Set(['account_not_found']);
  if (a.status === 'closed') return new Set(['account_closed']);
  if (op === 'freezeAccount') return a.status === 'frozen' ? new Set(['account_frozen']) : 'ok';
  if (op === 'unfreezeAccount') return a.status === 'frozen' ? 'ok' : new Set(['account_not_frozen']);
  return a.debitsPosted === a.creditsPosted && a.debitsPending === 0n && a.creditsPending === 0n ? 'ok' : new Set(['account_not_empty']);
}

/** The command a mutated retry sends, and the code the docs give it. */
function mutated(command: LedgerCommand, variant: number): [LedgerCommand, string] | undefined {
  switch (command.kind) {
    case 'transfer':
      if (command.pending !== undefined && variant % 3 === 1) return [{ ...command, pending: { timeoutMs: (command.pending.timeoutMs ?? 0) + 1 } }, 'exists_with_different_timeout'];
      if (variant % 3 === 2) return [{ ...command, pending: command.pending === undefined ? { timeoutMs: undefined } : undefined }, 'exists_with_different_kind'];
      return [{ ...command, postings: command.postings.map((p) => ({ ...p, amount: p.amount + 1n })) }, 'exists_with_different_amount'];
    case 'postPending':
      return [{ kind: 'voidPending', transferId: command.transferId, pendingId: command.pendingId, effectiveAtMs: command.effectiveAtMs, metadata: command.metadata }, 'exists_with_different_kind'];
    case 'voidPending':
      return [{ ...command, pendingId: GHOST }, 'exists_with_different_pending_id'];
    case 'reverseTransfer':
      return [{ ...command, reversalOf: GHOST }, 'exists_with_different_reversal_of'];
    case 'openAccount':
      return [{ ...command, type: command.type === 'asset' ? 'liability' : 'asset' }, 'account_exists'];
    default:
      return undefined;
  }
}

async function run(h: Harness, step: Step, label: string): Promise<void> {
  const facts = await factsOf(h.store);
  const nowMs = h.nowMs(facts);
  const accounts = h.accounts();
  const versionBefore = h.writer.version;
  const other = (from: number, to: number): [string, string] => {
    const a = IDS[from % IDS.length] as string;
    const rest = IDS.filter((id) => id !== a);
    return [a, rest[to % rest.length] as string];
  };
  const solo = async (command: TransferLikeCommand, expected: Set<string> | 'ok'): Promise<void> => {
    const result = await h.submit(command);
    expectOutcome(result, expected, `${label} ${command.kind}`);
    // One event for an accepted command, nothing at all for a rejected one.
    expect(h.writer.version, `${label}: version`).toBe(versionBefore + (expected === 'ok' ? 1 : 0));
  };
  switch (step.t) {
    case 'transfer': {
      const [from, to] = other(step.from, step.to);
      const command = transfer(h.id('t'), [posting(from, 'debit', step.amount), posting(to, 'credit', step.amount)], { effectiveAtMs: step.backMs === 0 ? undefined : nowMs - step.backMs }) as TransferLikeCommand;
      await solo(command, expectedCodes(command, accounts, facts, nowMs));
      return checkWindowEdge(h, step.backMs, [], label);
    }
    case 'multi': {
      const pool = [...IDS];
      const [a, b, c] = step.picks.map((n) => pool.splice(n % pool.length, 1)[0] as string) as [string, string, string];
      const command = transfer(h.id(step.hold ? 'mh' : 'm'), [posting(a, 'debit', step.amount * 2n), posting(b, 'credit', step.amount), posting(c, 'credit', step.amount)], {
        hold: step.hold,
        timeoutMs: step.timeoutMs,
      }) as TransferLikeCommand;
      return solo(command, expectedCodes(command, accounts, facts, nowMs));
    }
    case 'hold': {
      const [from, to] = other(step.from, step.to);
      const command = transfer(h.id('h'), [posting(from, 'debit', step.amount), posting(to, 'credit', step.amount)], { hold: true, timeoutMs: step.timeoutMs }) as TransferLikeCommand;
      return solo(command, expectedCodes(command, accounts, facts, nowMs));
    }
    case 'post':
    case 'void': {
      const holds = [...facts.holds.values()];
      const open = holds.filter((x) => x.resolution === 'pending');
      const forced = h.target === undefined ? undefined : facts.holds.get(h.target);
      h.target = undefined;
      const hold = forced ?? (step.pick % 11 === 0 ? undefined : (pick(step.pick % 4 === 0 ? holds : open, step.pick >> 2) ?? pick(holds, step.pick)));
      const pendingId = hold?.id ?? GHOST;
      const held = (hold?.postings[0] as Posting | undefined)?.amount ?? 100n;
      let command: TransferLikeCommand;
      if (step.t === 'void') command = { kind: 'voidPending', transferId: h.id('v'), pendingId, effectiveAtMs: undefined, metadata: {} };
      else {
        const amount = step.mode === 'omit' ? undefined : step.mode === 'full' ? held : step.mode === 'over' ? held + 1n : 1n + (BigInt(step.pick) % held);
        command = { kind: 'postPending', transferId: h.id('p'), pendingId, amount, currency: amount === undefined ? undefined : 'EUR', effectiveAtMs: undefined, metadata: {} };
      }
      if (step.race === 'none') return solo(command, expectedCodes(command, accounts, facts, nowMs));
      // Racing the expiry timer in the same batch: whichever was queued first is decided first.
      const timedOut = hold !== undefined && hold.resolution === 'pending' && hold.timeoutAtMs !== undefined && hold.timeoutAtMs <= nowMs;
      let expected: Set<string> | 'ok';
      let pending: Promise<CommandResult>;
      if (step.race === 'before') {
        vi.advanceTimersByTime(EXPIRY_INTERVAL_MS);
        pending = h.submit(command);
        const released = afterExpiries(accounts, facts, nowMs);
        expected = timedOut ? new Set(['pending_already_resolved']) : expectedCodes(command, released, facts, nowMs);
      } else {
        pending = h.submit(command);
        vi.advanceTimersByTime(EXPIRY_INTERVAL_MS);
        expected = expectedCodes(command, accounts, facts, nowMs);
      }
      expectOutcome(await pending, expected, `${label} racing ${command.kind}`);
      await h.tick();
      const after = await factsOf(h.store);
      if (hold !== undefined) {
        const resolution = after.holds.get(hold.id)?.resolution;
        if (timedOut) expect(resolution, `${label}: ${hold.id} timed out`).toBe('expired');
        else if (hold.resolution === 'pending' && expected === 'ok') expect(resolution, `${label}: ${hold.id}`).toBe(command.kind === 'postPending' ? 'posted' : 'voided');
      }
      return;
    }
    case 'reverse': {
      const all = [...facts.transfers.values()];
      const reversed = all.filter((x) => x.reversedBy.length > 0);
      const original = step.pick % 13 === 0 ? undefined : (pick(step.pick % 3 === 0 && reversed.length > 0 ? reversed : all, step.pick >> 2));
      const command: TransferLikeCommand = {
        kind: 'reverseTransfer',
        transferId: h.id('r'),
        reversalOf: original?.id ?? GHOST,
        effectiveAtMs: step.backMs === 0 ? undefined : nowMs - step.backMs,
        reference: undefined,
        metadata: {},
      };
      await solo(command, expectedCodes(command, accounts, facts, nowMs));
      // A reversal's original is looked up before its time is.
      return checkWindowEdge(h, step.backMs, ['transfer_not_found', 'transfer_not_reversible', 'transfer_already_reversed'], label);
    }
    case 'status': {
      const accountId = step.pick % 13 === 0 ? GHOST : (IDS[step.pick % IDS.length] as string);
      // A fresh command id is a new command: decided by the status alone, as one without an id.
      const expected = statusExpectation(step.op, accounts.get(accountId));
      const command = lifecycleCommand(step.op, accountId, step.withId ? h.id('s') : undefined);
      const result = await h.submit(command);
      expectOutcome(result, expected, `${label} ${step.op} ${accountId}`);
      expect(h.writer.version, `${label}: version`).toBe(versionBefore + (expected === 'ok' ? 1 : 0));
      return;
    }
    case 'clock':
      h.clockMs += step.deltaMs;
      return;
    case 'toTimeout': {
      const timed = [...facts.holds.values()].filter((x) => x.resolution === 'pending' && x.timeoutAtMs !== undefined);
      const target = pick(timed, step.pick);
      if (target !== undefined) h.clockMs = Math.max(h.clockMs, (target.timeoutAtMs as number) + step.offsetMs);
      return;
    }
    case 'atTimeout': {
      // The clock lands exactly on a hold's timeout, or one millisecond before it; then it is posted or voided.
      const timed = [...facts.holds.values()].filter((x) => x.resolution === 'pending' && x.timeoutAtMs !== undefined && x.timeoutAtMs + step.offsetMs >= nowMs);
      const target = pick(timed, step.pick);
      if (target === undefined) return;
      h.clockMs = (target.timeoutAtMs as number) + step.offsetMs;
      h.target = target.id;
      const next: Step = step.then === 'post' ? { t: 'post', pick: step.pick, mode: 'omit', race: step.race } : { t: 'void', pick: step.pick, race: step.race };
      return run(h, next, label);
    }
    case 'tick': {
      await h.tick();
      const after = await factsOf(h.store);
      for (const hold of after.holds.values()) {
        const due = hold.timeoutAtMs !== undefined && hold.timeoutAtMs <= nowMs;
        // Every hold whose timeout has come (at exactly the instant too) is expired by the writer, and no other.
        if (due) expect(hold.resolution, `${label}: ${hold.id} due at ${hold.timeoutAtMs}, now ${nowMs}`).not.toBe('pending');
        if (!due && facts.holds.get(hold.id)?.resolution === 'pending') expect(hold.resolution, `${label}: ${hold.id} not yet due`).not.toBe('expired');
      }
      return;
    }
    case 'retry': {
      // Lifecycle commands count when they carried a command id (without one, a retry is a new command).
      const candidates = h.done.filter((d) => d.result.ok && !d.result.duplicate && (!isLifecycle(d.command) || d.command.commandId !== undefined));
      // Mostly commands of the run rather than of the setup, which retries meet less often.
      const later = candidates.filter((d) => !d.command.kind.startsWith('open') && !['fund-alice', 'fund-bob', 'draw-line'].includes((d.command as { transferId?: string }).transferId ?? ''));
      const original = pick(step.pick % 4 === 0 || later.length === 0 ? candidates : later, step.pick);
      if (original === undefined) return;
      const first = original.result as { ledgerVersion: number; recordedAt: string };
      if (isLifecycle(original.command)) {
        const command = original.command;
        const accountId = command.accountId;
        // The account remembers the ids of its last LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX accepted changes that had one; a
        // retry answers as the latest of them with its id (an id forgotten and used again names its new use).
        const latest = h.done
          .filter((d) => d.result.ok && !d.result.duplicate && isLifecycle(d.command) && d.command.accountId === accountId && d.command.commandId !== undefined)
          .slice(-LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX)
          .reverse()
          .find((d) => (d.command as FreezeAccountCommand).commandId === command.commandId);
        const kind = step.mutate ? (LIFECYCLE_OPS[(LIFECYCLE_OPS.indexOf(command.kind) + 1 + (step.pick & 1)) % 3] as LifecycleOp) : command.kind;
        const result = await h.submit(lifecycleCommand(kind, accountId, command.commandId));
        const described = `${label}: retry of ${command.kind} ${accountId} ${command.commandId ?? ''} as ${kind}`;
        if (latest === undefined) {
          // Forgotten: decided afresh by the status, as any new command.
          const expected = statusExpectation(kind, accounts.get(accountId));
          expectOutcome(result, expected, `${described} (forgotten)`);
          expect(h.writer.version, `${label}: version`).toBe(versionBefore + (expected === 'ok' ? 1 : 0));
        } else {
          const recorded = latest.result as { ledgerVersion: number; recordedAt: string };
          if (kind === latest.command.kind) expect(result, described).toMatchObject({ ok: true, duplicate: true, ledgerVersion: recorded.ledgerVersion, recordedAt: recorded.recordedAt });
          else expect(result, described).toMatchObject({ ok: false, code: 'exists_with_different_kind' });
          expect(h.writer.version, `${label}: a retry writes nothing`).toBe(versionBefore);
        }
        return;
      }
      const change = step.mutate ? mutated(original.command, step.pick >> 3) : undefined;
      const result = await h.submit(change?.[0] ?? original.command);
      if (change === undefined) expect(result, `${label}: retry of ${JSON.stringify(original.command, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`).toMatchObject({ ok: true, duplicate: true, ledgerVersion: first.ledgerVersion, recordedAt: first.recordedAt });
      else expect(result, `${label}: changed retry`).toMatchObject({ ok: false, code: change[1] });
      expect(h.writer.version, `${label}: a retry writes nothing`).toBe(versionBefore);
      return;
    }
    case 'reopen': {
      const before = stateOf(h.writer.accounts());
      const open = [...facts.holds.values()].filter((x) => x.resolution === 'pending').map((x) => h.writer.pendingHold(x.id));
      await h.reopen(step.snapshot);
      expect(stateOf(h.writer.accounts()), `${label}: reopened writer equals the one before`).toEqual(before);
      expect(open.map((x) => h.writer.pendingHold(x?.id as string)), `${label}: open holds after reopening`).toEqual(open);
      return;
    }
  }
}

/** Balances folded from the log's events whose effectiveAt is at or before `atMs`, from the event meanings. */
function balancesAsOfEffective(facts: Facts, atMs: number): Map<string, [bigint, bigint, bigint, bigint]> {
  const balances = new Map<string, [bigint, bigint, bigint, bigint]>();
  const holds = new Map<string, Posting[]>();
  const add = (postings: readonly Posting[], offset: 0 | 2, sign: bigint): void => {
    for (const p of postings) {
      const b = balances.get(p.accountId) as [bigint, bigint, bigint, bigint];
      const index = offset + (p.side === 'debit' ? 0 : 1);
      b[index] = (b[index] as bigint) + sign * p.amount;
    }
  };
  for (const event of facts.events) {
    const data = event.data as Record<string, unknown>;
    if (event.type === 'TransferPending') holds.set(data['transferId'] as string, postingsOf(data));
    if (Date.parse(event.effectiveAt) > atMs) continue;
    switch (event.type) {
      case 'AccountOpened':
        balances.set(data['accountId'] as string, [0n, 0n, 0n, 0n]);
        break;
      case 'TransferPosted':
        add(postingsOf(data), 0, 1n);
        break;
      case 'TransferPending':
        add(postingsOf(data), 2, 1n);
        break;
      case 'PendingPosted':
        add(postingsOf(data), 0, 1n);
        add(holds.get(data['pendingId'] as string) as Posting[], 2, -1n);
        break;
      case 'PendingVoided':
      case 'PendingExpired':
        add(holds.get(data['pendingId'] as string) as Posting[], 2, -1n);
        break;
      default:
        break;
    }
  }
  return balances;
}

async function setup(h: Harness): Promise<void> {
  for (const a of ACCOUNTS) {
    const result = await h.submit({ kind: 'openAccount', accountId: a.id, currency: 'EUR', type: a.type, flags: { debitsMustNotExceedCredits: a.debitsMustNotExceedCredits, creditsMustNotExceedDebits: a.creditsMustNotExceedDebits }, metadata: {} });
    expect(result).toMatchObject({ ok: true });
  }
  for (const [id, from, to, amount] of [['fund-alice', 'bank', 'alice', 30_000n], ['fund-bob', 'bank', 'bob', 8_000n], ['draw-line', 'line', 'bank', 10_000n]] as const) {
    expect(await h.submit(transfer(id, [posting(from, 'debit', amount), posting(to, 'credit', amount)]))).toMatchObject({ ok: true });
  }
  // Past the back-dating window of the accounts' opening, so back-dated commands meet the window first.
  h.clockMs += BACKDATE_WINDOW_MS + 5_000;
}

// ---- properties -------------------------------------------------------------------------------------

describe('hold, reversal, status and retry lifecycles under random sequences', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const tunings: [string, Pick<LedgerWriterOptions, 'transfersCachedMax' | 'snapshotEveryEvents'>][] = [
    ['every transfer cached', {}],
    ['one transfer cached and a snapshot every 4 events', { transfersCachedMax: 1, snapshotEveryEvents: 4 }],
  ];
  it.each(tunings)(
    '%s: each command answers as the docs rule on the state before it, the writer expires exactly the holds whose timeout came, a post or void racing an expiry loses or wins by queue order, retries of any earlier command answer with its original outcome, and after every step debits equal credits, limits hold, closed accounts are empty, pending equals open holds; at the end replay, a reopened writer and effective-time views agree',
    async (_, tuning) => {
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      await fc.assert(
        fc.asyncProperty(fc.array(stepArb, { minLength: 10, maxLength: 40, size: 'max' }), async (steps) => {
          const h = new Harness(tuning);
          await h.open();
          try {
            await setup(h);
            for (const [i, step] of steps.entries()) {
              await run(h, step, `step ${i} ${step.t}`);
              await checkInvariants(h, `after step ${i} ${step.t}`);
            }
            await checkReplay(h, 'end');
            const facts = await factsOf(h.store);
            const atMs = [...new Set(facts.events.map((e) => Date.parse(e.effectiveAt)))];
            for (const t of [atMs[0] as number, ...atMs.filter((_, i) => i % 5 === 4), h.nowMs(facts)]) {
              const view = await replayLedger(h.source, { effectiveAt: new Date(t).toISOString() });
              const got = new Map([...view.accounts.values()].map((a) => [a.id, [a.debitsPosted, a.creditsPosted, a.debitsPending, a.creditsPending]]));
              expect(got, `effective-time view at ${new Date(t).toISOString()}`).toEqual(balancesAsOfEffective(facts, t));
            }
            const before = stateOf(h.writer.accounts());
            await h.reopen(false);
            expect(stateOf(h.writer.accounts()), 'reopened from the tuning\'s snapshot and the tail').toEqual(before);
          } finally {
            await h.writer.close();
          }
        }),
        { numRuns: 100, interruptAfterTimeLimit: PROPERTY_TIME_LIMIT_MS, markInterruptAsFailure: true },
      );
    },
    PROPERTY_TEST_TIMEOUT_MS,
  );
});

type MemberStep =
  | { readonly t: 'transfer' | 'hold'; readonly from: number; readonly to: number; readonly amount: bigint }
  | { readonly t: 'post' | 'void'; readonly pick: number }
  | { readonly t: 'reverse'; readonly pick: number };

const memberArb: fc.Arbitrary<MemberStep> = fc.oneof(
  fc.record({ t: fc.constantFrom('transfer' as const, 'hold' as const), from: fc.nat(), to: fc.nat(), amount: fc.bigInt(1n, 300n) }),
  fc.record({ t: fc.constantFrom('post' as const, 'void' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('reverse' as const), pick: fc.nat() }),
);

/** Resolves member steps to commands: posts, voids and reversals name earlier members' transfers or recorded ones. */
function groupOf(h: Harness, steps: readonly MemberStep[], facts: Facts): TransferLikeCommand[] {
  const holds = [...facts.holds.values()].filter((x) => x.resolution === 'pending').map((x) => x.id);
  const posted = [...facts.transfers.values()].filter((x) => (x.type === 'TransferPosted' || x.type === 'PendingPosted') && x.reversalOf === undefined && x.reversedBy.length === 0).map((x) => x.id);
  const members: TransferLikeCommand[] = [];
  for (const step of steps) {
    if (step.t === 'transfer' || step.t === 'hold') {
      // Funded from accounts without a floor, so most groups can apply.
      const from = ['bank', 'line', 'fees'][step.from % 3] as string;
      const to = IDS.filter((id) => id !== from)[step.to % 4] as string;
      const id = h.id(step.t === 'hold' ? 'gh' : 'gt');
      members.push(transfer(id, [posting(from, 'debit', step.amount), posting(to, 'credit', step.amount)], { hold: step.t === 'hold', timeoutMs: step.t === 'hold' ? 60_000 : undefined }) as TransferLikeCommand);
      (step.t === 'hold' ? holds : posted).push(id);
    } else if (step.t === 'reverse') {
      const reversalOf = pick(posted, step.pick);
      if (reversalOf === undefined) continue;
      posted.splice(posted.indexOf(reversalOf), 1);
      members.push({ kind: 'reverseTransfer', transferId: h.id('gr'), reversalOf, effectiveAtMs: undefined, reference: undefined, metadata: {} });
    } else if (step.t === 'post' || step.t === 'void') {
      const pendingId = pick(holds, step.pick);
      if (pendingId === undefined) continue;
      holds.splice(holds.indexOf(pendingId), 1);
      const id = h.id(step.t === 'post' ? 'gp' : 'gv');
      members.push(
        step.t === 'post'
          ? { kind: 'postPending', transferId: id, pendingId, amount: undefined, currency: undefined, effectiveAtMs: undefined, metadata: {} }
          : { kind: 'voidPending', transferId: id, pendingId, effectiveAtMs: undefined, metadata: {} },
      );
      if (step.t === 'post') posted.push(id);
    }
  }
  return members;
}

/** The member with a failure only it causes, and the code the docs give that failure. */
function broken(member: TransferLikeCommand): [TransferLikeCommand, string] {
  switch (member.kind) {
    case 'transfer':
      return [{ ...member, postings: member.postings.map((p, i) => (i === 0 ? { ...p, accountId: GHOST } : p)) }, 'account_not_found'];
    case 'postPending':
    case 'voidPending':
      return [{ ...member, pendingId: GHOST }, 'pending_not_found'];
    case 'reverseTransfer':
      return [{ ...member, reversalOf: GHOST }, 'transfer_not_found'];
  }
}

describe('linked groups mixing every member kind', () => {
  it('a group failing at any one position writes nothing and answers that member\'s own code with linked_group_failed for every other; the whole group then applies once, one event per member, and its retry (also after a restart from a snapshot) answers duplicate with the original version', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(memberArb, { minLength: 2, maxLength: 6 }), fc.array(memberArb, { minLength: 0, maxLength: 4 }), async (steps, before) => {
        const h = new Harness({ transfersCachedMax: 1 });
        await h.open();
        try {
          await setup(h);
          // Some recorded transfers and holds for the group to post, void and reverse.
          for (const member of groupOf(h, before, await factsOf(h.store))) await h.submit(member);
          const facts = await factsOf(h.store);
          const members = groupOf(h, steps, facts);
          fc.pre(members.length > 0);
          const state = stateOf(h.writer.accounts());
          const version = h.writer.version;
          for (let at = 0; at < members.length; at += 1) {
            const [bad, code] = broken(members[at] as TransferLikeCommand);
            const result = await h.submit({ kind: 'linked', commands: members.map((m, i) => (i === at ? bad : m)) });
            expect(result.ok, `failing at ${at}`).toBe(false);
            const codes = (result.members ?? []).map((m) => (m.ok ? 'ok' : m.code));
            // A member before the broken one may itself fail first (a limit); the first failure carries its own code.
            const first = codes.findIndex((c) => c !== 'linked_group_failed');
            expect(first, `failing at ${at}: ${codes.join(',')}`).toBeLessThanOrEqual(at);
            if (first === at) expect(codes[at]).toBe(code);
            expect(codes.filter((c, i) => i !== first), `failing at ${at}`).toEqual(members.filter((_, i) => i !== first).map(() => 'linked_group_failed'));
            expect((result as { code: string }).code).toBe(codes[first]);
            expect(h.writer.version, `failing at ${at}: nothing written`).toBe(version);
            expect(stateOf(h.writer.accounts())).toEqual(state);
          }
          const whole = await h.submit({ kind: 'linked', commands: members });
          if (!whole.ok) {
            const codes = (whole.members ?? []).map((m) => (m.ok ? 'ok' : m.code));
            expect(codes.filter((c) => c !== 'linked_group_failed'), codes.join(',')).toHaveLength(1);
            expect(['insufficient_funds', 'limit_exceeded']).toContain(whole.code);
            expect(h.writer.version).toBe(version);
            return;
          }
          expect(whole.duplicate).toBe(false);
          expect(h.writer.version).toBe(version + members.length);
          expect((whole.members ?? []).map((m) => (m.ok ? m.ledgerVersion : -1))).toEqual(members.map((_, i) => version + i + 1));
          await checkInvariants(h, 'after the group');
          await h.reopen(true);
          const retried = await h.submit({ kind: 'linked', commands: members });
          expect(retried).toMatchObject({ ok: true, duplicate: true, ledgerVersion: whole.ledgerVersion, recordedAt: whole.recordedAt });
          expect(h.writer.version).toBe(version + members.length);
          await checkReplay(h, 'after the retry');
        } finally {
          await h.writer.close();
        }
      }),
      { numRuns: 80, interruptAfterTimeLimit: PROPERTY_TIME_LIMIT_MS, markInterruptAsFailure: true },
    );
  }, PROPERTY_TEST_TIMEOUT_MS);
});

describe('lifecycle command ids an account remembers', () => {
  const MAX = LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX;
  it(`after N alternating freezes and unfreezes of one account, each with a fresh id, a retry of the k-th is a duplicate with its original version exactly when k is among the last ${MAX} (another kind: exists_with_different_kind), else it is decided afresh by the status; also after a restart, from a snapshot or not`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        // How many changes after the k-th: anywhere, and mostly around the edge of what is remembered.
        fc.oneof(fc.nat({ max: 39 }), fc.constantFrom(MAX - 2, MAX - 1, MAX, MAX + 1)),
        fc.constantFrom('same' as const, 'same' as const, 'other' as const, 'close' as const),
        fc.constantFrom('none' as const, 'reopen' as const, 'snapshot' as const),
        async (n, after, retryAs, restart) => {
          const h = new Harness({});
          await h.open();
          try {
            const opened = await h.submit({ kind: 'openAccount', accountId: 'acct', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: {} });
            expect(opened).toMatchObject({ ok: true });
            const kinds: LifecycleOp[] = [];
            const results: CommandResult[] = [];
            for (let i = 1; i <= n; i += 1) {
              h.clockMs += 1;
              const op: LifecycleOp = i % 2 === 1 ? 'freezeAccount' : 'unfreezeAccount';
              const result = await h.submit(lifecycleCommand(op, 'acct', `c${i}`));
              expect(result, `change ${i}`).toMatchObject({ ok: true, duplicate: false });
              kinds.push(op);
              results.push(result);
            }
            if (restart !== 'none') await h.reopen(restart === 'snapshot');
            h.clockMs += 1_000;
            const k = n - (after % n);
            const original = kinds[k - 1] as LifecycleOp;
            const kind: LifecycleOp = retryAs === 'same' ? original : retryAs === 'close' ? 'closeAccount' : original === 'freezeAccount' ? 'unfreezeAccount' : 'freezeAccount';
            const account = h.accounts().get('acct');
            expect(account?.status, 'status after the changes').toBe(n % 2 === 1 ? 'frozen' : 'open');
            const versionBefore = h.writer.version;
            const result = await h.submit(lifecycleCommand(kind, 'acct', `c${k}`));
            const label = `retry of c${k} (${original}) as ${kind} after ${n} changes${restart === 'none' ? '' : `, ${restart}`}`;
            if (n - k < MAX) {
              const recorded = results[k - 1] as { ledgerVersion: number; recordedAt: string };
              if (kind === original) expect(result, `${label}: remembered`).toMatchObject({ ok: true, duplicate: true, ledgerVersion: recorded.ledgerVersion, recordedAt: recorded.recordedAt });
              else expect(result, `${label}: remembered`).toMatchObject({ ok: false, code: 'exists_with_different_kind' });
              expect(h.writer.version, `${label}: a retry writes nothing`).toBe(versionBefore);
            } else {
              // Forgotten: a new command, decided by the account's status as one without an id.
              const expected = statusExpectation(kind, account);
              expectOutcome(result, expected, `${label}: forgotten`);
              expect(h.writer.version, `${label}: version`).toBe(versionBefore + (expected === 'ok' ? 1 : 0));
            }
          } finally {
            await h.writer.close();
          }
        },
      ),
      { numRuns: 100, interruptAfterTimeLimit: PROPERTY_TIME_LIMIT_MS, markInterruptAsFailure: true },
    );
  }, PROPERTY_TEST_TIMEOUT_MS);
});
