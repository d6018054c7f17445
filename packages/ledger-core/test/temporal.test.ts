import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AS_OF_MESSAGE,
  INSTANT_MESSAGE,
  InMemoryEventStore,
  Ledger,
  parseAsOf,
  replayLedger,
  type AccountState,
  type AsOf,
  type Balance,
  type CommandResult,
  type HistoryEntry,
  type LedgerSource,
  type ReplayedState,
  type TrialBalance,
} from '@ledgerkit/ledger-core';

const T0 = Date.parse('2025-01-10T09:00:00.000Z');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const at = (offsetMs: number): string => new Date(T0 + offsetMs).toISOString();
const ACCOUNTS = ['bank', 'alice', 'bob', 'jbank', 'jcust'] as const;

/** The ledger as it was after one command: its version, when it was recorded, every balance. */
interface Checkpoint {
  readonly version: number;
  readonly recordedAtMs: number;
  readonly balances: ReadonlyMap<string, Balance | undefined>;
  readonly accounts: AccountState[];
}

/** Decimal string to minor units: amounts always carry their currency's full scale. */
const minor = (amount: string): bigint => BigInt(amount.replace('.', ''));

const byId = (a: AccountState, b: AccountState): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function accountsOf(state: ReplayedState): AccountState[] {
  return [...state.accounts.values()].sort(byId);
}

function expectBalanced(trial: TrialBalance, label: string): void {
  const sums = new Map<string, { debit: bigint; credit: bigint }>();
  for (const line of trial.lines) {
    const sum = sums.get(line.currency) ?? { debit: 0n, credit: 0n };
    sum.debit += minor(line.debit);
    sum.credit += minor(line.credit);
    sums.set(line.currency, sum);
  }
  expect(trial.totals.map((t) => t.currency).sort(), label).toEqual([...sums.keys()].sort());
  for (const total of trial.totals) {
    expect(total.balanced, `${label} ${total.currency}`).toBe(true);
    expect(total.debits, `${label} ${total.currency}`).toBe(total.credits);
    const sum = sums.get(total.currency);
    expect([sum?.debit, sum?.credit], `${label} ${total.currency} lines`).toEqual([minor(total.debits), minor(total.credits)]);
  }
}

describe('point-in-time queries over a scripted ledger', () => {
  let clockMs = T0;
  const store = new InMemoryEventStore();
  let ledger: Ledger;
  let source: LedgerSource;
  const checkpoints: Checkpoint[] = [];

  async function step(offsetMs: number, run: () => Promise<CommandResult>): Promise<CommandResult> {
    clockMs = T0 + offsetMs;
    const result = await run();
    expect(result, `command at +${offsetMs}ms`).toMatchObject({ ok: true, duplicate: false });
    checkpoints.push({
      version: ledger.version,
      recordedAtMs: clockMs,
      balances: new Map(ACCOUNTS.map((id) => [id, ledger.balance(id)])),
      accounts: ledger.writer.accounts().sort(byId),
    });
    return result;
  }

  beforeAll(async () => {
    ledger = await Ledger.open({ store, tenantId: 'acme', ledgerId: 'books', clock: () => clockMs, expiryCheckIntervalMs: 60_000 });
    source = { store, codec: ledger.writer.codec, tenantId: 'acme', ledgerId: 'books' };
    await step(1 * MINUTE, () => ledger.openAccount({ accountId: 'bank', currency: 'EUR', type: 'asset' }));
    await step(2 * MINUTE, () => ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } }));
    await step(3 * MINUTE, () => ledger.openAccount({ accountId: 'bob', currency: 'EUR', type: 'liability' }));
    await step(4 * MINUTE, () => ledger.openAccount({ accountId: 'jbank', currency: 'JPY', type: 'asset' }));
    await step(5 * MINUTE, () => ledger.openAccount({ accountId: 'jcust', currency: 'JPY', type: 'liability', flags: { debitsMustNotExceedCredits: true } }));
    await step(1 * HOUR, () => ledger.transfer({ transferId: 't1', debitAccountId: 'bank', creditAccountId: 'alice', amount: '100.00', currency: 'EUR' }));
    await step(2 * HOUR, () => ledger.transfer({ transferId: 't2', debitAccountId: 'alice', creditAccountId: 'bob', amount: '30.00', currency: 'EUR' }));
    await step(3 * HOUR, () => ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '20.00', currency: 'EUR' }));
    await step(4 * HOUR, () => ledger.postPending({ transferId: 'p1', pendingId: 'h1', amount: '15.00', currency: 'EUR' }));
    // Recorded at +5h, effective at +1h30: a late-booked deposit.
    await step(5 * HOUR, () =>
      ledger.transfer({ transferId: 't-back', debitAccountId: 'bank', creditAccountId: 'alice', amount: '7.00', currency: 'EUR', effectiveAt: at(90 * MINUTE) }),
    );
    await step(6 * HOUR, () => ledger.transfer({ transferId: 'j1', debitAccountId: 'jbank', creditAccountId: 'jcust', amount: '5000', currency: 'JPY' }));
    // Recorded at +7h, effective at +30min: before the deposit that funded it.
    await step(7 * HOUR, () =>
      ledger.transfer({ transferId: 't-early', debitAccountId: 'alice', creditAccountId: 'bob', amount: '50.00', currency: 'EUR', effectiveAt: at(30 * MINUTE) }),
    );
    await step(8 * HOUR, () => ledger.reverse({ transferId: 'r2', reversalOf: 't2' }));
    await step(9 * HOUR, () => ledger.hold({ transferId: 'h2', debitAccountId: 'jcust', creditAccountId: 'jbank', amount: '1200', currency: 'JPY', timeoutMs: 30 * MINUTE }));
    await step(10 * HOUR, () => ledger.writer.submit({ kind: 'expirePending', pendingId: 'h2' }));
    await step(11 * HOUR, () =>
      ledger.linked([
        { kind: 'transfer', input: { transferId: 'l1', debitAccountId: 'bank', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' } },
        { kind: 'transfer', input: { transferId: 'l2', debitAccountId: 'bob', creditAccountId: 'alice', amount: '0.50', currency: 'EUR' } },
      ]),
    );
    await step(12 * HOUR, () => ledger.hold({ transferId: 'h3', debitAccountId: 'bob', creditAccountId: 'alice', amount: '2.00', currency: 'EUR' }));
    await step(13 * HOUR, () => ledger.voidPending({ transferId: 'v3', pendingId: 'h3' }));
    await step(14 * HOUR, () => ledger.transfer({ transferId: 'j2', debitAccountId: 'jcust', creditAccountId: 'jbank', amount: '800', currency: 'JPY' }));
  });

  afterAll(async () => {
    await ledger.close();
  });

  it('balanceAt({ ledgerVersion }) is each account exactly as it was after that event', async () => {
    for (const checkpoint of checkpoints) {
      for (const id of ACCOUNTS) {
        expect(await ledger.balanceAt(id, { ledgerVersion: checkpoint.version }), `${id} @v${checkpoint.version}`).toEqual(checkpoint.balances.get(id));
      }
    }
    expect(await ledger.balanceAt('alice', { ledgerVersion: 0 })).toBeUndefined();
  });

  it('balanceAt({ recordedAt }) includes every event recorded at or before the instant and none after', async () => {
    for (const [i, checkpoint] of checkpoints.entries()) {
      const previous = checkpoints[i - 1];
      for (const id of ACCOUNTS) {
        const label = `${id} @${checkpoint.recordedAtMs - T0}ms`;
        expect(await ledger.balanceAt(id, { recordedAt: new Date(checkpoint.recordedAtMs) }), label).toEqual(checkpoint.balances.get(id));
        expect(await ledger.balanceAt(id, { recordedAt: new Date(checkpoint.recordedAtMs + 1) }), `${label}+1`).toEqual(checkpoint.balances.get(id));
        expect(await ledger.balanceAt(id, { recordedAt: new Date(checkpoint.recordedAtMs - 1) }), `${label}-1`).toEqual(previous?.balances.get(id));
      }
    }
  });

  it('a back-dated transfer shows in the effective-time view from its effectiveAt, but in the recorded-time view only from when it was recorded', async () => {
    const posted = async (asOf: AsOf): Promise<string | undefined> => (await ledger.balanceAt('alice', asOf))?.posted;

    // At +1h45: t-back (effective +1h30, recorded +5h) and t-early (effective +30min) count by business time only.
    expect(await posted({ recordedAt: at(105 * MINUTE) })).toBe('100.00');
    expect(await posted({ effectiveAt: at(105 * MINUTE) })).toBe('57.00');
    expect(await posted({ effectiveAt: at(89 * MINUTE) })).toBe('50.00');
    expect(await posted({ effectiveAt: at(90 * MINUTE) })).toBe('57.00');
    expect(await posted({ effectiveAt: at(2 * HOUR) })).toBe('27.00');
    // Once recorded, the recorded-time view has it too.
    expect(await posted({ recordedAt: at(5 * HOUR - 1) })).toBe('55.00');
    expect(await posted({ recordedAt: at(5 * HOUR) })).toBe('62.00');
  });

  it('the effective-time view may show a back-dated debit before the credit that funded it: a negative balance, not an error', async () => {
    expect(await ledger.balanceAt('alice', { effectiveAt: at(45 * MINUTE) })).toMatchObject({ posted: '-50.00', debitsPosted: '50.00', creditsPosted: '0.00' });
    expect(await ledger.balanceAt('alice', { recordedAt: at(45 * MINUTE) })).toMatchObject({ posted: '0.00' });
    // The account did not exist before it was opened, in either view.
    expect(await ledger.balanceAt('alice', { effectiveAt: at(MINUTE) })).toBeUndefined();
  });

  it('an instant is a Date or an ISO-8601 date-time with an offset; a string Date.parse would guess at is InvalidInputError, not a machine-dependent answer', async () => {
    const instant = at(45 * MINUTE);
    const sameInBerlin = new Date(T0 + 45 * MINUTE + HOUR).toISOString().replace('Z', '+01:00');
    for (const field of ['recordedAt', 'effectiveAt'] as const) {
      const expected = await ledger.balanceAt('alice', { [field]: new Date(instant) } as AsOf);
      expect(await ledger.balanceAt('alice', { [field]: instant } as AsOf)).toEqual(expected);
      expect(await ledger.balanceAt('alice', { [field]: sameInBerlin } as AsOf)).toEqual(expected);
      const guessed = [instant.replace('Z', ''), instant.slice(0, 10), instant.slice(0, 16) + 'Z', 'Fri, 10 Jan 2025 09:45:00 GMT', '2025-02-30T00:00:00Z', '', new Date(Number.NaN), 1_736_502_300_000];
      for (const value of guessed) {
        await expect(ledger.balanceAt('alice', { [field]: value } as unknown as AsOf), `${field} ${String(value)}`).rejects.toMatchObject({ name: 'InvalidInputError', issues: [{ path: ['asOf', field], message: INSTANT_MESSAGE }] });
      }
    }
  });

  it('a point that is not exactly one of ledgerVersion, recordedAt, effectiveAt is InvalidInputError at asOf, in parseAsOf, balanceAt and trialBalance alike', async () => {
    const bad: unknown[] = [undefined, null, 'v3', 3, [], {}, { ledgerVersion: 1, effectiveAt: at(0) }, { recordedAt: at(0), effectiveAt: at(0) }];
    for (const asOf of bad) {
      const shown = JSON.stringify(asOf) ?? String(asOf);
      expect(() => parseAsOf(asOf), shown).toThrow(expect.objectContaining({ name: 'InvalidInputError', issues: [{ path: ['asOf'], message: AS_OF_MESSAGE }] }));
      await expect(ledger.balanceAt('alice', asOf as AsOf), shown).rejects.toMatchObject({ name: 'InvalidInputError', issues: [{ path: ['asOf'], message: AS_OF_MESSAGE }] });
      // Only a missing point means "now" for a trial balance.
      if (asOf !== undefined) await expect(ledger.trialBalance(asOf as AsOf), shown).rejects.toMatchObject({ name: 'InvalidInputError' });
    }
    for (const ledgerVersion of [-1, 1.5, 2 ** 53, '1', Number.NaN]) {
      expect(() => parseAsOf({ ledgerVersion }), String(ledgerVersion)).toThrow(expect.objectContaining({ issues: [{ path: ['asOf', 'ledgerVersion'], message: 'must be a non-negative integer' }] }));
      await expect(ledger.balanceAt('alice', { ledgerVersion } as AsOf), String(ledgerVersion)).rejects.toMatchObject({ issues: [{ path: ['asOf', 'ledgerVersion'] }] });
    }
    // A caller that names its argument otherwise gets that name at the head of every path.
    expect(() => parseAsOf({ recordedAt: 'yesterday' }, 'until')).toThrow(expect.objectContaining({ issues: [{ path: ['until', 'recordedAt'], message: INSTANT_MESSAGE }] }));
    expect(() => parseAsOf({ ledgerVersion: -1 }, 'until')).toThrow(expect.objectContaining({ issues: [{ path: ['until', 'ledgerVersion'], message: 'must be a non-negative integer' }] }));
    expect(parseAsOf({ ledgerVersion: 0 })).toEqual({ kind: 'ledgerVersion', ledgerVersion: 0 });
    expect(parseAsOf({ recordedAt: at(0), ledgerVersion: undefined })).toEqual({ kind: 'recordedAt', atMs: T0 });
    expect(parseAsOf({ effectiveAt: new Date(T0) })).toEqual({ kind: 'effectiveAt', atMs: T0 });
  });

  it('a point is read from the object\'s own properties only: an inherited ledgerVersion, recordedAt or effectiveAt is not a point', async () => {
    for (const inherited of [{ ledgerVersion: 3 }, { recordedAt: at(0) }, { effectiveAt: new Date(T0) }]) {
      const asOf = Object.create(inherited) as AsOf;
      const shown = JSON.stringify(inherited);
      expect(() => parseAsOf(asOf), shown).toThrow(expect.objectContaining({ name: 'InvalidInputError', issues: [{ path: ['asOf'], message: AS_OF_MESSAGE }] }));
      await expect(ledger.balanceAt('alice', asOf), shown).rejects.toMatchObject({ name: 'InvalidInputError', issues: [{ path: ['asOf'], message: AS_OF_MESSAGE }] });
      await expect(ledger.trialBalance(asOf), shown).rejects.toMatchObject({ name: 'InvalidInputError', issues: [{ path: ['asOf'], message: AS_OF_MESSAGE }] });
      // An own key next to an inherited one is the point: the inherited one is not a second key.
      const own = Object.assign(Object.create(inherited) as object, { ledgerVersion: 2 }) as AsOf;
      expect(parseAsOf(own), shown).toEqual({ kind: 'ledgerVersion', ledgerVersion: 2 });
    }
  });

  it('replayLedger with accountsMax stops with LimitExceededError as the account past the bound opens; at the bound it replays', async () => {
    const opened = ACCOUNTS.length;
    await expect(replayLedger(source, undefined, { accountsMax: opened - 1 })).rejects.toMatchObject({ name: 'LimitExceededError', message: expect.stringContaining(`more than ${opened - 1} accounts at version ${opened}`) });
    expect((await replayLedger(source, undefined, { accountsMax: opened })).version).toBe(ledger.version);
    for (const accountsMax of [0, -1, 1.5]) await expect(replayLedger(source, undefined, { accountsMax })).rejects.toMatchObject({ name: 'InvalidInputError' });
  });

  it('the effective-time view at or after the last event equals the current state', async () => {
    const now = await replayLedger(source, { effectiveAt: at(14 * HOUR) });
    expect(accountsOf(now)).toEqual(ledger.writer.accounts().sort(byId));
    for (const id of ACCOUNTS) expect(await ledger.balanceAt(id, { effectiveAt: at(20 * HOUR) })).toEqual(ledger.balance(id));
  });

  it('trialBalance sums to zero per currency now and as of every version, recorded instant and effective instant', async () => {
    expectBalanced(await ledger.trialBalance(), 'now');
    for (const checkpoint of checkpoints) {
      expectBalanced(await ledger.trialBalance({ ledgerVersion: checkpoint.version }), `v${checkpoint.version}`);
      expectBalanced(await ledger.trialBalance({ recordedAt: new Date(checkpoint.recordedAtMs) }), `recorded ${checkpoint.recordedAtMs - T0}`);
    }
    for (let offset = 0; offset <= 15 * HOUR; offset += 15 * MINUTE) {
      expectBalanced(await ledger.trialBalance({ effectiveAt: at(offset) }), `effective +${offset / MINUTE}min`);
    }
    // Both currencies appear once their accounts exist.
    expect((await ledger.trialBalance()).totals.map((t) => t.currency).sort()).toEqual(['EUR', 'JPY']);
    expect((await ledger.trialBalance({ effectiveAt: at(45 * MINUTE) })).totals).toEqual([
      { currency: 'EUR', debits: '50.00', credits: '50.00', balanced: true },
      { currency: 'JPY', debits: '0', credits: '0', balanced: true },
    ]);
  });

  it('history() pages by afterVersion, never splits one event across pages, and its running balance ends at the current balance', async () => {
    for (const id of ACCOUNTS) {
      const full = await ledger.history(id, { limit: 1_000 });
      expect(full.nextAfterVersion).toBeNull();
      const balance = ledger.balance(id) as Balance;

      // Running balance: each posted entry moves the normal-side balance; pending entries do not.
      let running = 0n;
      for (const entry of full.entries) {
        if (entry.bucket === 'posted') running += entry.side === balance.normalSide ? minor(entry.amount) : -minor(entry.amount);
        expect(minor(entry.balanceAfter), `${id} v${entry.ledgerVersion}`).toBe(running);
      }
      expect(running).toBe(minor(balance.posted));

      for (const limit of [1, 2, 3, 5]) {
        const pages: HistoryEntry[][] = [];
        let afterVersion: number | null = 0;
        while (afterVersion !== null) {
          const page = await ledger.history(id, { afterVersion, limit });
          expect(page.entries.every((e) => e.ledgerVersion > (afterVersion as number))).toBe(true);
          pages.push(page.entries);
          afterVersion = page.nextAfterVersion;
          if (afterVersion !== null) expect(page.entries.at(-1)?.ledgerVersion).toBe(afterVersion);
        }
        for (let i = 1; i < pages.length; i += 1) {
          expect((pages[i]?.[0]?.ledgerVersion ?? Infinity) > (pages[i - 1]?.at(-1)?.ledgerVersion ?? -1), `${id} limit ${limit} page ${i}`).toBe(true);
        }
        expect(pages.flat(), `${id} limit ${limit}`).toEqual(full.entries);
      }
    }

    // alice's post of h1 releases the hold and posts in one event: a page of limit 1 keeps both entries.
    const p1 = (await ledger.history('alice', { limit: 1_000 })).entries.filter((e) => e.transferId === 'p1');
    expect(p1.map((e) => [e.bucket, e.amount])).toEqual([
      ['pending', '-20.00'],
      ['posted', '15.00'],
    ]);
    const version = p1[0]?.ledgerVersion as number;
    expect((await ledger.history('alice', { afterVersion: version - 1, limit: 1 })).entries.map((e) => e.transferId)).toEqual(['p1', 'p1']);
    expect(await ledger.history('nobody')).toEqual({ accountId: 'nobody', entries: [], nextAfterVersion: null });
    for (const afterVersion of [Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY]) {
      await expect(ledger.history('alice', { afterVersion }), String(afterVersion)).rejects.toMatchObject({ code: 'invalid_input', issues: [{ path: ['afterVersion'] }] });
    }
    for (const limit of [0, 1_001, 2.5]) {
      await expect(ledger.history('alice', { limit }), String(limit)).rejects.toMatchObject({ code: 'invalid_input', issues: [{ path: ['limit'] }] });
    }
  });

  it('balanceAt and trialBalance as of a ledger version past the head are InvalidInputError at asOf.ledgerVersion naming the head, not the head\'s answer; replayLedger itself still stops at the head', async () => {
    const head = ledger.version;
    const refusal = { name: 'InvalidInputError', issues: [{ path: ['asOf', 'ledgerVersion'], message: `is past the ledger's head, version ${head}` }] };
    for (const ledgerVersion of [head + 1, 1_000, Number.MAX_SAFE_INTEGER]) {
      await expect(ledger.balanceAt('alice', { ledgerVersion }), `balanceAt ${ledgerVersion}`).rejects.toMatchObject(refusal);
      await expect(ledger.trialBalance({ ledgerVersion }), `trialBalance ${ledgerVersion}`).rejects.toMatchObject(refusal);
    }
    expect(await ledger.balanceAt('alice', { ledgerVersion: head })).toEqual(ledger.balance('alice'));
    expect(await ledger.trialBalance({ ledgerVersion: head })).toEqual(await ledger.trialBalance());
    // A caller of replayLedger (a reconciliation, say) reads where it stopped from the state.
    expect((await replayLedger(source, { ledgerVersion: head + 1 })).version).toBe(head);
  });

  it('replayLedger with untilVersion takes in no event past it, whatever the point, and asks the store for none; a bad untilVersion is InvalidInputError before any read', async () => {
    let askedUpTo = 0;
    const bounded: LedgerSource = {
      ...source,
      store: Object.assign(Object.create(store) as InMemoryEventStore, {
        readStream: (request: Parameters<InMemoryEventStore['readStream']>[0]) => {
          askedUpTo = Math.max(askedUpTo, (request.fromVersion ?? 1) + (request.limit ?? 1) - 1);
          return store.readStream(request);
        },
      }),
    };
    const later = at(20 * HOUR);
    for (const checkpoint of checkpoints) {
      for (const asOf of [undefined, { ledgerVersion: ledger.version }, { recordedAt: later }, { effectiveAt: later }]) {
        askedUpTo = 0;
        const state = await replayLedger(bounded, asOf, { untilVersion: checkpoint.version });
        const label = `${JSON.stringify(asOf)} until ${checkpoint.version}`;
        expect(state.version, label).toBe(checkpoint.version);
        expect(accountsOf(state), label).toEqual(checkpoint.accounts);
        expect(askedUpTo, label).toBe(checkpoint.version);
      }
    }
    // A point before the bound is that point.
    expect((await replayLedger(source, { ledgerVersion: 3 }, { untilVersion: 8 })).version).toBe(3);
    expect(accountsOf(await replayLedger(source, undefined, { untilVersion: 0 }))).toEqual([]);
    for (const untilVersion of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3']) {
      await expect(replayLedger(source, undefined, { untilVersion } as unknown as { untilVersion: number }), String(untilVersion)).rejects.toMatchObject({
        name: 'InvalidInputError',
        issues: [{ path: ['untilVersion'], message: 'must be a non-negative integer' }],
      });
    }
  });

  it('replayLedger as of version N equals the writer state recorded right after event N', async () => {
    expect(accountsOf(await replayLedger(source, { ledgerVersion: 0 }))).toEqual([]);
    for (const checkpoint of checkpoints) {
      const state = await replayLedger(source, { ledgerVersion: checkpoint.version });
      expect(state.version).toBe(checkpoint.version);
      expect(accountsOf(state), `v${checkpoint.version}`).toEqual(checkpoint.accounts);
    }
  });
});

describe('point-in-time queries over random histories', () => {
  type Step =
    | { readonly t: 'transfer' | 'hold'; readonly from: number; readonly to: number; readonly amount: number; readonly jpy: boolean; readonly advanceMs: number }
    | { readonly t: 'post' | 'void'; readonly pick: number; readonly advanceMs: number };
  const advance = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10 * MINUTE }));
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ t: fc.constantFrom('transfer' as const, 'hold' as const), from: fc.nat(), to: fc.nat(), amount: fc.integer({ min: 1, max: 5_000 }), jpy: fc.boolean(), advanceMs: advance }),
    fc.record({ t: fc.constantFrom('post' as const, 'void' as const), pick: fc.nat(), advanceMs: advance }),
  );

  it('replay as of every version and every recorded instant equals the writer state at that point', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25 }), async (steps) => {
        let clockMs = T0;
        const store = new InMemoryEventStore();
        const ledger = await Ledger.open({ store, tenantId: 'acme', ledgerId: 'random', clock: () => clockMs, expiryCheckIntervalMs: 60_000 });
        const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId: 'acme', ledgerId: 'random' };
        const checkpoints: { version: number; recordedAtMs: number; accounts: AccountState[] }[] = [];
        const holds: string[] = [];
        const record = (): void => {
          const last = checkpoints.at(-1);
          if (last === undefined || last.version !== ledger.version) {
            checkpoints.push({ version: ledger.version, recordedAtMs: clockMs, accounts: ledger.writer.accounts().sort(byId) });
          }
        };
        try {
          const eur = ['e-bank', 'e-a', 'e-b'];
          const jpy = ['j-bank', 'j-a', 'j-b'];
          for (const [i, id] of [...eur, ...jpy].entries()) {
            await ledger.openAccount({ accountId: id, currency: i < 3 ? 'EUR' : 'JPY', type: i % 3 === 0 ? 'asset' : 'liability', flags: { debitsMustNotExceedCredits: i % 3 === 1 } });
            record();
          }
          for (const [i, s] of steps.entries()) {
            clockMs += s.advanceMs;
            if (!('pick' in s)) {
              const ids = s.jpy ? jpy : eur;
              const from = ids[s.from % 3] as string;
              const to = ids[(s.from + 1 + (s.to % 2)) % 3] as string;
              const amount = s.jpy ? String(s.amount) : (s.amount / 100).toFixed(2);
              const input = { transferId: `x${i}`, debitAccountId: from, creditAccountId: to, amount, currency: s.jpy ? 'JPY' : 'EUR' };
              const result = s.t === 'hold' ? await ledger.hold(input) : await ledger.transfer(input);
              if (result.ok && s.t === 'hold') holds.push(`x${i}`);
            } else {
              const pendingId = holds[s.pick % Math.max(holds.length, 1)] ?? 'none';
              if (s.t === 'post') await ledger.postPending({ transferId: `x${i}`, pendingId });
              else await ledger.voidPending({ transferId: `x${i}`, pendingId });
            }
            record();
          }
          for (const checkpoint of checkpoints) {
            expect(accountsOf(await replayLedger(source, { ledgerVersion: checkpoint.version }))).toEqual(checkpoint.accounts);
            // Several events can share a recorded instant; the view at that instant holds the last of them.
            const lastAtInstant = checkpoints.filter((c) => c.recordedAtMs <= checkpoint.recordedAtMs).at(-1);
            expect(accountsOf(await replayLedger(source, { recordedAt: new Date(checkpoint.recordedAtMs) }))).toEqual(lastAtInstant?.accounts);
            expectBalanced(await ledger.trialBalance({ ledgerVersion: checkpoint.version }), `v${checkpoint.version}`);
          }
        } finally {
          await ledger.close();
        }
      }),
      { numRuns: 20 },
    );
  });
});
