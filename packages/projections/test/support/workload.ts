import fc from 'fast-check';
import type { CommandResult, Ledger } from '@ledgerkit/ledger-core';

/** Start of every workload's clock. */
export const T0 = Date.parse('2025-03-01T08:00:00.000Z');

/** Accounts of a workload ledger: id, currency, type, and whether it may not go below zero. */
export const ACCOUNTS = [
  { id: 'cash', currency: 'EUR', type: 'asset', guarded: false },
  { id: 'alice', currency: 'EUR', type: 'liability', guarded: true },
  { id: 'bob', currency: 'EUR', type: 'liability', guarded: false },
  { id: 'fees', currency: 'EUR', type: 'income', guarded: false },
  { id: 'ops', currency: 'EUR', type: 'expense', guarded: false },
  { id: 'jbank', currency: 'JPY', type: 'asset', guarded: false },
  { id: 'jcust', currency: 'JPY', type: 'liability', guarded: false },
] as const;
/** Opened part-way through, so that early points in time do not know them. */
export const LATE_ACCOUNTS = ['ops', 'jcust'] as const;
/** An id that is never opened. */
export const GHOST_ACCOUNT = 'ghost';

const EUR = ACCOUNTS.filter((account) => account.currency === 'EUR').map((account) => account.id);
const JPY = ACCOUNTS.filter((account) => account.currency === 'JPY').map((account) => account.id);

/** One command of a workload, or a pause that lets holds time out. */
export type Step =
  | { readonly t: 'transfer'; readonly jpy: boolean; readonly from: number; readonly to: number; readonly amount: number; readonly backMs: number; readonly hold: boolean; readonly timeoutMs: number | undefined; readonly ref: number | undefined }
  | { readonly t: 'post'; readonly pick: number; readonly partial: boolean; readonly backMs: number }
  | { readonly t: 'void'; readonly pick: number }
  | { readonly t: 'reverse'; readonly pick: number; readonly backMs: number }
  | { readonly t: 'status'; readonly account: number; readonly action: 'freeze' | 'unfreeze' | 'close' }
  | { readonly t: 'linked'; readonly from: number; readonly to: number; readonly amounts: readonly [number, number] }
  | { readonly t: 'multi'; readonly from: number; readonly amounts: readonly [number, number]; readonly backMs: number; readonly hold: boolean; readonly timeoutMs: number | undefined }
  | { readonly t: 'wait'; readonly ms: number };

// Back-dating (ms before the group's clock reading): none, any offset, or one of a few fixed
// offsets, so that back-dated entries of one group share an effective time; a negative value -k
// back-dates to the clock reading of the k-th group before, so that the entry ties, in effective
// time, with the entries recorded then and with other entries back-dated there.
const backMsArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 3 * 60 * 60_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(1, 60_000, 60 * 60_000) },
  { weight: 2, arbitrary: fc.integer({ min: -4, max: -1 }) },
);

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant('transfer' as const),
      jpy: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
      from: fc.nat(),
      to: fc.nat(),
      amount: fc.integer({ min: 1, max: 50_000 }),
      backMs: backMsArb,
      hold: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
      timeoutMs: fc.option(fc.integer({ min: 1_000, max: 20 * 60_000 }), { nil: undefined }),
      ref: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('post' as const), pick: fc.nat(), partial: fc.boolean(), backMs: backMsArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('void' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('reverse' as const), pick: fc.nat(), backMs: backMsArb }) },
  // A close succeeds only on an empty account (the late ones, mostly): later steps then use it and are refused.
  { weight: 1, arbitrary: fc.record({ t: fc.constant('status' as const), account: fc.nat(), action: fc.constantFrom('freeze' as const, 'unfreeze' as const, 'close' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('linked' as const),
      from: fc.nat(),
      to: fc.nat(),
      amounts: fc.tuple(fc.integer({ min: 1, max: 9_999 }), fc.integer({ min: 1, max: 9_999 })),
    }),
  },
  // A multi-posting transfer or hold over three accounts: a hold's release then touches three.
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('multi' as const),
      from: fc.nat(),
      amounts: fc.tuple(fc.integer({ min: 1, max: 9_999 }), fc.integer({ min: 1, max: 9_999 })),
      backMs: backMsArb,
      hold: fc.boolean(),
      timeoutMs: fc.option(fc.integer({ min: 1_000, max: 20 * 60_000 }), { nil: undefined }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 30 * 60_000 }) }) },
);

/** Groups of steps; a group is submitted at once (same clock), so the writer batches it. */
export const workloadArb: fc.Arbitrary<Step[][]> = fc.array(fc.array(stepArb, { minLength: 1, maxLength: 4 }), { minLength: 5, maxLength: 30 });

/** A clock the test moves by hand. */
export interface ManualClock {
  now(): number;
  advance(ms: number): void;
}

export function manualClock(startMs = T0): ManualClock {
  let now = startMs;
  return { now: () => now, advance: (ms) => (now += ms) };
}

const money = (minor: number, jpy: boolean): string => (jpy ? String(minor) : (minor / 100).toFixed(2));

/**
 * Opens the workload's accounts (the late ones after the first group, so early points in time do
 * not know them), funds one, and runs the steps six hours later (room to back-date). Rejections
 * are part of the workload (they write nothing); every command's result is awaited.
 */
export async function runWorkload(ledger: Ledger, clock: ManualClock, groups: readonly (readonly Step[])[]): Promise<void> {
  for (const account of ACCOUNTS) {
    if ((LATE_ACCOUNTS as readonly string[]).includes(account.id)) continue;
    await ledger.openAccount({ accountId: account.id, currency: account.currency, type: account.type, flags: { debitsMustNotExceedCredits: account.guarded } });
  }
  clock.advance(6 * 60 * 60_000);
  await ledger.transfer({ transferId: 'fund-alice', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1000.00', currency: 'EUR' });
  const holds: string[] = [];
  const posted: string[] = [];
  let counter = 0;
  /** The clock reading of each group so far. */
  const readings: number[] = [];
  for (const [index, group] of groups.entries()) {
    clock.advance(index % 3 === 0 ? 0 : 1 + ((index * 7_919) % 120_000));
    readings.push(clock.now());
    const pending: { readonly id: string; readonly kind: 'hold' | 'posted' | 'other'; readonly result: Promise<CommandResult> }[] = [];
    const submit = (id: string, kind: 'hold' | 'posted' | 'other', result: Promise<CommandResult>): void => {
      pending.push({ id, kind, result });
    };
    for (const step of group) {
      counter += 1;
      const id = `t${counter}`;
      const now = clock.now();
      const effectiveAt = (backMs: number): { effectiveAt?: string } => {
        const at = backMs < 0 ? (readings[readings.length - 1 + backMs] ?? now) : now - backMs;
        return at === now ? {} : { effectiveAt: new Date(at).toISOString() };
      };
      switch (step.t) {
        case 'transfer': {
          const pool = step.jpy ? JPY : EUR;
          const from = pool[step.from % pool.length] as string;
          const to = pool[(step.from + 1 + (step.to % (pool.length - 1))) % pool.length] as string;
          const input = {
            transferId: id,
            debitAccountId: from,
            creditAccountId: to,
            amount: money(step.amount, step.jpy),
            currency: step.jpy ? 'JPY' : 'EUR',
            ...effectiveAt(step.backMs),
            ...(step.ref === undefined ? {} : { reference: `ref-${step.ref}` }),
          };
          if (step.hold) submit(id, 'hold', ledger.hold({ ...input, ...(step.timeoutMs === undefined ? {} : { timeoutMs: step.timeoutMs }) }));
          else submit(id, 'posted', ledger.transfer(input));
          break;
        }
        case 'post': {
          const pendingId = holds[step.pick % Math.max(holds.length, 1)];
          if (pendingId === undefined) break;
          const held = ledger.writer.pendingHold(pendingId)?.postings[0];
          const partial = step.partial && held !== undefined && held.amount > 1n ? { amount: money(Number(held.amount / 2n), held.currency === 'JPY'), currency: held.currency } : {};
          submit(id, 'posted', ledger.postPending({ transferId: id, pendingId, ...partial, ...effectiveAt(step.backMs) }));
          break;
        }
        case 'void': {
          const pendingId = holds[step.pick % Math.max(holds.length, 1)];
          if (pendingId !== undefined) submit(id, 'other', ledger.voidPending({ transferId: id, pendingId }));
          break;
        }
        case 'reverse': {
          const original = posted[step.pick % Math.max(posted.length, 1)];
          if (original !== undefined) submit(id, 'other', ledger.reverse({ transferId: id, reversalOf: original, ...effectiveAt(step.backMs) }));
          break;
        }
        case 'status': {
          const account = ACCOUNTS[step.account % ACCOUNTS.length]?.id as string;
          submit(
            id,
            'other',
            step.action === 'freeze'
              ? ledger.freezeAccount({ accountId: account, reason: 'test' })
              : step.action === 'unfreeze'
                ? ledger.unfreezeAccount({ accountId: account })
                : ledger.closeAccount({ accountId: account }),
          );
          break;
        }
        case 'linked': {
          const from = EUR[step.from % EUR.length] as string;
          const to = EUR[(step.from + 1 + (step.to % (EUR.length - 1))) % EUR.length] as string;
          submit(
            id,
            'other',
            ledger.linked([
              { kind: 'transfer', input: { transferId: `${id}-a`, debitAccountId: from, creditAccountId: to, amount: money(step.amounts[0], false), currency: 'EUR' } },
              { kind: 'transfer', input: { transferId: `${id}-b`, debitAccountId: to, creditAccountId: from, amount: money(step.amounts[1], false), currency: 'EUR' } },
            ]),
          );
          break;
        }
        case 'multi': {
          const [x, y] = step.amounts;
          const debit = EUR[step.from % EUR.length] as string;
          const credits = [EUR[(step.from + 1) % EUR.length] as string, EUR[(step.from + 2) % EUR.length] as string];
          const input = {
            transferId: id,
            postings: [
              { accountId: debit, side: 'debit' as const, amount: money(x + y, false), currency: 'EUR' },
              { accountId: credits[0] as string, side: 'credit' as const, amount: money(x, false), currency: 'EUR' },
              { accountId: credits[1] as string, side: 'credit' as const, amount: money(y, false), currency: 'EUR' },
            ],
            ...effectiveAt(step.backMs),
          };
          if (step.hold) submit(id, 'hold', ledger.hold({ ...input, ...(step.timeoutMs === undefined ? {} : { timeoutMs: step.timeoutMs }) }));
          else submit(id, 'posted', ledger.transfer(input));
          break;
        }
        case 'wait':
          clock.advance(step.ms);
          // Let the writer's expiry timer see the new time.
          await new Promise((resolve) => setTimeout(resolve, 25));
          break;
      }
    }
    for (const { id, kind, result } of pending) {
      const outcome = await result;
      if (!outcome.ok) continue;
      if (kind === 'hold') holds.push(id);
      if (kind === 'posted') posted.push(id);
    }
    if (index === 0) {
      for (const account of ACCOUNTS.filter((candidate) => (LATE_ACCOUNTS as readonly string[]).includes(candidate.id))) {
        await ledger.openAccount({ accountId: account.id, currency: account.currency, type: account.type });
      }
    }
  }
  // Expiries the last wait made due are queued by a timer; give it a turn before the ledger closes.
  await new Promise((resolve) => setTimeout(resolve, 25));
}

/**
 * Runs of a property over random workloads: `runs`, scaled by `LEDGERKIT_PROPERTY_RUNS_FRACTION`
 * (0 < f ≤ 1, default 1) and at least 1. CI's second pass, on the machine's PostgreSQL 15, sets it
 * to check the same properties on that server at a fraction of the runs the first pass (embedded
 * PostgreSQL 18) makes in full.
 */
export function propertyRuns(runs: number): number {
  const raw = process.env['LEDGERKIT_PROPERTY_RUNS_FRACTION'];
  if (raw === undefined || raw === '') return runs;
  const fraction = Number(raw);
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`LEDGERKIT_PROPERTY_RUNS_FRACTION must be a number in (0, 1], got ${JSON.stringify(raw)}`);
  return Math.max(1, Math.round(runs * fraction));
}
