/**
 * Snapshot round trip under random histories: ledger states built by random command sequences
 * through decide and evolve (transfers and holds in two currencies, back-dated and timed holds,
 * posts, voids, expiries, lifecycle changes with and without command ids), serialized with
 * `serializeState` and read back with `restoreState`, give back every account and every pending
 * hold field for field, and decide what the original decides.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CurrencyRegistry,
  LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX,
  decide,
  evolve,
  initialState,
  restoreState,
  serializeState,
  type AccountState,
  type Decision,
  type JsonObject,
  type LedgerCommand,
  type LedgerState,
  type TransferRecord,
} from '@ledgerkit/ledger-core';

const currencies = new CurrencyRegistry();
const START_MS = Date.parse('2025-09-01T00:00:00.000Z');
const BACKDATE_WINDOW_MS = 20_000;

/** Accounts every run opens: per currency a bank without limits, a protected customer and a plain one. */
const ACCOUNTS = [
  { id: 'eur-bank', currency: 'EUR', type: 'asset', noOverdraft: false },
  { id: 'eur-alice', currency: 'EUR', type: 'liability', noOverdraft: true },
  { id: 'eur-bob', currency: 'EUR', type: 'liability', noOverdraft: false },
  { id: 'jpy-bank', currency: 'JPY', type: 'asset', noOverdraft: false },
  { id: 'jpy-carol', currency: 'JPY', type: 'liability', noOverdraft: true },
  { id: 'jpy-dave', currency: 'JPY', type: 'equity', noOverdraft: false },
] as const;

type LifecycleOp = 'freezeAccount' | 'unfreezeAccount' | 'closeAccount';

type Step =
  | { readonly t: 'clock'; readonly deltaMs: number }
  | { readonly t: 'transfer'; readonly from: number; readonly to: number; readonly amount: bigint; readonly hold: boolean; readonly timeoutMs: number | undefined; readonly backMs: number; readonly meta: boolean }
  | { readonly t: 'post'; readonly pick: number; readonly partial: boolean; readonly backMs: number }
  | { readonly t: 'void'; readonly pick: number }
  | { readonly t: 'expire'; readonly pick: number }
  | { readonly t: 'status'; readonly op: LifecycleOp; readonly pick: number; readonly id: 'none' | 'fresh' | 'reused' }
  | { readonly t: 'churn'; readonly pick: number; readonly count: number }
  | { readonly t: 'open'; readonly currency: 'EUR' | 'JPY'; readonly metadata: Readonly<Record<string, string>> };

const backMsArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: BACKDATE_WINDOW_MS }) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 6_000 }).map((deltaMs): Step => ({ t: 'clock', deltaMs })) },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('transfer' as const),
      from: fc.nat(),
      to: fc.nat(),
      amount: fc.bigInt(1n, 5_000n),
      // Mostly holds, so that a state has several pending ones when it is serialized.
      hold: fc.integer({ min: 0, max: 2 }).map((n) => n > 0),
      timeoutMs: fc.option(fc.integer({ min: 1, max: 30_000 }), { nil: undefined, freq: 4 }),
      backMs: backMsArb,
      meta: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('post' as const), pick: fc.nat(), partial: fc.boolean(), backMs: backMsArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('void' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('status' as const),
      op: fc.constantFrom<LifecycleOp>('freezeAccount', 'unfreezeAccount', 'unfreezeAccount', 'freezeAccount', 'closeAccount'),
      pick: fc.nat(),
      id: fc.constantFrom('none' as const, 'fresh' as const, 'fresh' as const, 'reused' as const),
    }),
  },
  // Freezes and unfreezes of one account in a row, each with a fresh id: up to past what an account remembers.
  { weight: 1, arbitrary: fc.record({ t: fc.constant('churn' as const), pick: fc.nat(), count: fc.integer({ min: 1, max: LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX + 4 }) }) },
  // New accounts whose metadata JSON escapes (quotes, control characters, non-ASCII): what a state's size counts.
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('open' as const),
      currency: fc.constantFrom('EUR' as const, 'JPY' as const),
      metadata: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 24, unit: 'binary' }), { maxKeys: 3, noNullPrototype: true }),
    }),
  },
);

const pick = <T>(items: readonly T[], n: number): T | undefined => (items.length === 0 ? undefined : items[n % items.length]);

/** A ledger folded by decide and evolve, as a writer folds it, with a clock of its own. */
class Folded {
  readonly state: LedgerState = initialState();
  nowMs = START_MS;
  #next = 0;
  readonly commandIds: string[] = [];

  /** `stateBytesMax` for every decision; `undefined`: no bound. */
  constructor(readonly stateBytesMax?: number) {}

  id(prefix: string): string {
    this.#next += 1;
    return `${prefix}-${this.#next}`;
  }

  apply(command: LedgerCommand): Decision {
    const decision = decide(command, this.state, { nowMs: this.nowMs, backdateWindowMs: BACKDATE_WINDOW_MS, stateBytesMax: this.stateBytesMax });
    if (decision.ok) {
      for (const draft of decision.events) {
        evolve(this.state, draft.event, { ledgerVersion: this.state.version + 1, recordedAtMs: this.nowMs, effectiveAtMs: draft.effectiveAtMs });
      }
    }
    return decision;
  }

  accounts(): AccountState[] {
    return [...(this.state.accounts as Map<string, AccountState>).values()];
  }

  transfers(): TransferRecord[] {
    return [...(this.state.transfers as Map<string, TransferRecord>).values()];
  }

  pendingHolds(): TransferRecord[] {
    return this.transfers().filter((t) => t.kind === 'hold' && t.resolution === 'pending');
  }
}

function setup(f: Folded): void {
  for (const a of ACCOUNTS) {
    const opened = f.apply({
      kind: 'openAccount',
      accountId: a.id,
      currency: a.currency,
      type: a.type,
      flags: { debitsMustNotExceedCredits: a.noOverdraft, creditsMustNotExceedDebits: false },
      metadata: a.noOverdraft ? { tier: 'retail' } : {},
    });
    expect(opened.ok).toBe(true);
  }
  for (const [from, to, amount] of [['eur-bank', 'eur-alice', 50_000n], ['jpy-bank', 'jpy-carol', 40_000n]] as const) {
    const currency = from.startsWith('eur') ? 'EUR' : 'JPY';
    const funded = f.apply({
      kind: 'transfer',
      transferId: f.id('fund'),
      postings: [
        { accountId: from, side: 'debit', amount, currency },
        { accountId: to, side: 'credit', amount, currency },
      ],
      pending: undefined,
      effectiveAtMs: undefined,
      reference: undefined,
      metadata: {},
    });
    expect(funded.ok).toBe(true);
  }
  // Past the back-dating window of the openings, so back-dated commands are mostly accepted.
  f.nowMs += BACKDATE_WINDOW_MS + 1_000;
}

function run(f: Folded, step: Step): void {
  const ids = ACCOUNTS.map((a) => a.id);
  switch (step.t) {
    case 'clock':
      f.nowMs += step.deltaMs;
      return;
    case 'transfer': {
      const from = ACCOUNTS[step.from % ACCOUNTS.length] as (typeof ACCOUNTS)[number];
      const others = ACCOUNTS.filter((a) => a.currency === from.currency && a.id !== from.id);
      const to = pick(others, step.to) as (typeof ACCOUNTS)[number];
      f.apply({
        kind: 'transfer',
        transferId: f.id(step.hold ? 'h' : 't'),
        postings: [
          { accountId: from.id, side: 'debit', amount: step.amount, currency: from.currency },
          { accountId: to.id, side: 'credit', amount: step.amount, currency: from.currency },
        ],
        pending: step.hold ? { timeoutMs: step.timeoutMs } : undefined,
        effectiveAtMs: step.backMs === 0 ? undefined : f.nowMs - step.backMs,
        reference: step.meta ? 'ref-1' : undefined,
        metadata: step.meta ? { note: 'n' } : {},
      });
      return;
    }
    case 'post':
    case 'void':
    case 'expire': {
      const hold = pick(f.pendingHolds(), step.pick);
      if (hold === undefined) return;
      if (step.t === 'expire') {
        f.apply({ kind: 'expirePending', pendingId: hold.id });
        return;
      }
      if (step.t === 'void') {
        f.apply({ kind: 'voidPending', transferId: f.id('v'), pendingId: hold.id, effectiveAtMs: undefined, metadata: {} });
        return;
      }
      const held = (hold.postings[0] as { amount: bigint }).amount;
      f.apply({
        kind: 'postPending',
        transferId: f.id('p'),
        pendingId: hold.id,
        amount: step.partial ? 1n + (BigInt(step.pick) % held) : undefined,
        currency: step.partial ? (hold.postings[0] as { currency: string }).currency : undefined,
        // Not before the hold's own effective time.
        effectiveAtMs: step.backMs === 0 ? undefined : Math.max(hold.effectiveAtMs, f.nowMs - step.backMs),
        metadata: {},
      });
      return;
    }
    case 'status': {
      const accountId = ids[step.pick % ids.length] as string;
      let commandId: string | undefined;
      if (step.id === 'fresh') commandId = f.id('cmd');
      else if (step.id === 'reused') commandId = pick(f.commandIds, step.pick >> 3);
      const command: LedgerCommand =
        step.op === 'freezeAccount' ? { kind: step.op, accountId, reason: undefined, ...(commandId === undefined ? {} : { commandId }) } : { kind: step.op, accountId, ...(commandId === undefined ? {} : { commandId }) };
      const decision = f.apply(command);
      if (decision.ok && commandId !== undefined && step.id === 'fresh') f.commandIds.push(commandId);
      return;
    }
    case 'open': {
      f.apply({
        kind: 'openAccount',
        accountId: f.id(`${step.currency.toLowerCase()}-new`),
        currency: step.currency,
        type: 'liability',
        flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
        metadata: step.metadata,
      });
      return;
    }
    case 'churn': {
      const accountId = ids[step.pick % ids.length] as string;
      for (let i = 0; i < step.count; i += 1) {
        const status = f.state.accounts.get(accountId)?.status;
        if (status === 'closed') return;
        const commandId = f.id('churn');
        const decision = f.apply(status === 'frozen' ? { kind: 'unfreezeAccount', accountId, commandId } : { kind: 'freezeAccount', accountId, reason: undefined, commandId });
        expect(decision.ok, `churn ${accountId}`).toBe(true);
        f.commandIds.push(commandId);
      }
      return;
    }
  }
}

/** A plain copy of an account, every field of it, as `toStrictEqual` compares it. */
const accountCopy = (a: AccountState): AccountState => ({ ...a, flags: { ...a.flags }, metadata: { ...a.metadata }, recentLifecycleCommands: a.recentLifecycleCommands?.map((r) => ({ ...r })) });
const holdCopy = (h: TransferRecord): TransferRecord => ({ ...h, postings: h.postings.map((p) => ({ ...p })), metadata: { ...h.metadata } });
const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function checkRestored(original: Folded, restored: LedgerState | undefined, label: string): void {
  expect(restored, `${label}: restoreState refused its own serialization`).toBeDefined();
  const state = restored as LedgerState;
  expect(state.version, `${label}: version`).toBe(original.state.version);
  expect(state.lastRecordedAtMs, `${label}: lastRecordedAtMs`).toBe(original.state.lastRecordedAtMs);

  const accounts = original.accounts();
  const restoredAccounts = [...(state.accounts as Map<string, AccountState>).values()];
  expect(restoredAccounts.map((a) => a.id).sort(), `${label}: account ids`).toEqual(accounts.map((a) => a.id).sort());
  for (const a of accounts) {
    expect(accountCopy(state.accounts.get(a.id) as AccountState), `${label}: account ${a.id}`).toStrictEqual(accountCopy(a));
  }

  // Every pending hold, every field (timeoutAtMs included), and nothing else.
  const holds = original.pendingHolds().sort(byId);
  const restoredTransfers = [...(state.transfers as Map<string, TransferRecord>).values()].sort(byId);
  expect(restoredTransfers.map((h) => h.id), `${label}: restored transfers are the pending holds`).toEqual(holds.map((h) => h.id));
  for (const h of holds) {
    const back = state.transfers.get(h.id) as TransferRecord;
    expect(holdCopy(back), `${label}: hold ${h.id}`).toStrictEqual(holdCopy(h));
    expect(back.timeoutAtMs, `${label}: hold ${h.id} times out timeoutMs after it was recorded`).toBe(h.timeoutMs === undefined ? undefined : h.recordedAtMs + h.timeoutMs);
  }
}

/** Commands whose decision depends on what a snapshot must keep: expiry instants and remembered command ids. */
function probes(f: Folded): { command: LedgerCommand; nowMs: number }[] {
  const out: { command: LedgerCommand; nowMs: number }[] = [];
  for (const h of f.pendingHolds()) {
    if (h.timeoutAtMs === undefined) continue;
    for (const nowMs of [h.timeoutAtMs - 1, h.timeoutAtMs]) {
      if (nowMs < f.nowMs) continue;
      out.push({ command: { kind: 'expirePending', pendingId: h.id }, nowMs });
      out.push({ command: { kind: 'voidPending', transferId: 'probe-void', pendingId: h.id, effectiveAtMs: undefined, metadata: {} }, nowMs });
    }
  }
  for (const a of f.accounts()) {
    for (const r of a.recentLifecycleCommands ?? []) {
      const command: LedgerCommand = r.kind === 'freezeAccount' ? { kind: r.kind, accountId: a.id, reason: undefined, commandId: r.commandId } : { kind: r.kind, accountId: a.id, commandId: r.commandId };
      out.push({ command, nowMs: f.nowMs });
    }
  }
  return out;
}

describe('snapshot codec round trip', () => {
  it('for ledgers folded from random commands, restoreState(serializeState(...)) gives back every account (lifecycle command ids too) and every pending hold (timeouts, recorded and effective times too), as JSON too, and decides expiries and retries as the original does', () => {
    let backdatedTimed = 0;
    let manyIds = 0;
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 10, maxLength: 80 }), (steps) => {
        const f = new Folded();
        setup(f);
        for (const step of steps) run(f, step);

        const data = serializeState(f.state, f.accounts(), f.transfers(), currencies);
        checkRestored(f, restoreState(data, currencies), 'restored');
        // As a store keeps it: JSON text.
        const viaJson = restoreState(JSON.parse(JSON.stringify(data)) as JsonObject, currencies);
        checkRestored(f, viaJson, 'restored from JSON');
        // Serializing the restored state gives the same data.
        const again = viaJson as LedgerState;
        expect(serializeState(again, (again.accounts as Map<string, AccountState>).values(), (again.transfers as Map<string, TransferRecord>).values(), currencies), 'serialize ∘ restore').toStrictEqual(data);

        // The size evolve kept is the size counted afresh from what the snapshot holds, and bounds
        // the bytes the snapshot's accounts and holds take as JSON.
        expect(again.stateBytes, 'stateBytes kept by evolve = counted from the snapshot').toBe(f.state.stateBytes);
        const { accounts, holds } = data as { accounts: unknown; holds: unknown };
        const taken = Buffer.byteLength(JSON.stringify({ accounts, holds }), 'utf8');
        expect(taken, 'JSON bytes of the accounts and holds ≤ stateBytes').toBeLessThanOrEqual(f.state.stateBytes as number);

        for (const { command, nowMs } of probes(f)) {
          const context = { nowMs, backdateWindowMs: BACKDATE_WINDOW_MS };
          expect(decide(command, again, context), `${command.kind} at ${nowMs}`).toStrictEqual(decide(command, f.state, context));
        }

        if (f.pendingHolds().some((h) => h.timeoutMs !== undefined && h.effectiveAtMs < h.recordedAtMs)) backdatedTimed += 1;
        if (f.accounts().some((a) => (a.recentLifecycleCommands?.length ?? 0) >= LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX)) manyIds += 1;
      }),
      { numRuns: 100 },
    );
    // The generator reaches what the codec must keep: back-dated holds with a timeout still
    // pending when serialized, and accounts remembering many command ids.
    expect(backdatedTimed, 'runs with a pending back-dated hold with a timeout').toBeGreaterThan(20);
    expect(manyIds, 'runs with an account remembering as many command ids as it can').toBeGreaterThan(10);
  });

  it('under a stateBytesMax, no accepted command takes the state past it unless it opens no account or hold, and every ledger_full is a command that fits no more (the same command with no bound is accepted)', () => {
    let full = 0;
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 10, maxLength: 80 }), fc.integer({ min: 4_000, max: 9_000 }), (steps, stateBytesMax) => {
        const f = new Folded(stateBytesMax);
        setup(f);
        const unbounded = f.apply.bind(f);
        f.apply = (command: LedgerCommand): Decision => {
          const before = f.state.stateBytes;
          const free = decide(command, f.state, { nowMs: f.nowMs, backdateWindowMs: BACKDATE_WINDOW_MS });
          const decision = unbounded(command);
          const grows = command.kind === 'openAccount' || (command.kind === 'transfer' && command.pending !== undefined);
          if (!decision.ok && decision.code === 'ledger_full') {
            full += 1;
            expect(grows, 'only an account or a hold is refused for room').toBe(true);
            expect(free.ok, 'refused for room, accepted without a bound').toBe(true);
            expect(f.state.stateBytes, 'a refusal changes nothing').toBe(before);
          } else {
            expect(decision, 'the bound changes no other decision').toStrictEqual(free);
          }
          if (decision.ok && grows && decision.duplicateOf === undefined) expect(f.state.stateBytes, `${command.kind} kept within stateBytesMax`).toBeLessThanOrEqual(stateBytesMax);
          return decision;
        };
        for (const step of steps) run(f, step);
      }),
      { numRuns: 100 },
    );
    expect(full, 'ledger_full refusals seen').toBeGreaterThan(20);
  });
});
