import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AppendRefusedError,
  APPEND_DATA_CHARS_MAX,
  APPEND_EVENTS_MAX,
  CorruptEventError,
  CurrencyRegistry,
  DuplicateIndexKeyError,
  InMemoryEventStore,
  LedgerError,
  LedgerWriter,
  LimitExceededError,
  OverloadedError,
  StoreUnavailableError,
  VersionConflictError,
  WriterClosedError,
  WriterFailedError,
  dataJsonOf,
  readLedger,
  verifyChain,
  type AppendRequest,
  type CommandResult,
  type EventStore,
  type FindByIndexKeysRequest,
  type LedgerCommand,
  type LedgerWriterOptions,
  type ReadAllRequest,
  type ReadStreamRequest,
  type Snapshot,
  type StoredEvent,
  type TransferCommand,
} from '@ledgerkit/ledger-core';

const TENANT = 'acme';
const LEDGER = 'main';

/**
 * An in-memory store with the faults a networked store has: it can be down (every call throws
 * `StoreUnavailableError`), lose the reply of an append that committed, fail an append before
 * it commits, or hold appends until a gate opens.
 */
class FaultyStore implements EventStore {
  readonly inner = new InMemoryEventStore();
  down = false;
  /** How many of the next appends commit and then throw, as if the reply was lost. */
  loseReplies = 0;
  /** How many of the next appends throw without committing. */
  failBeforeCommit = 0;
  /** While set, appends wait for it. */
  gate: Promise<void> | undefined;
  /** Faults of the next appends, one per call, consumed in call order ('slow' waits 0–3 ms first). */
  faultPlan: ('none' | 'before' | 'lost' | 'slow')[] = [];
  /** When set, the next two appends reach the inner store in reverse order (the upper one first). */
  reorderNext = false;
  #reordered: (() => void) | undefined;
  appendCalls = 0;
  conflicts = 0;
  readStreamCalls = 0;

  #unavailable(): StoreUnavailableError {
    return new StoreUnavailableError('store is down', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  }

  async append(request: AppendRequest): Promise<{ readonly ledgerVersion: number }> {
    this.appendCalls += 1;
    if (this.gate !== undefined) await this.gate;
    const planned = this.faultPlan.shift();
    if (planned === 'slow') await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 4)));
    if (planned === 'before') throw this.#unavailable();
    const lose = planned === 'lost';
    if (this.reorderNext) {
      // The first of the pair waits until the second has been tried.
      this.reorderNext = false;
      await new Promise<void>((resolve) => {
        this.#reordered = resolve;
      });
    } else if (this.#reordered !== undefined) {
      const release = this.#reordered;
      this.#reordered = undefined;
      try {
        return await this.#appendNow(request, lose);
      } finally {
        release();
      }
    }
    return this.#appendNow(request, lose);
  }

  async #appendNow(request: AppendRequest, lose: boolean): Promise<{ readonly ledgerVersion: number }> {
    if (this.down) throw this.#unavailable();
    if (this.failBeforeCommit > 0) {
      this.failBeforeCommit -= 1;
      throw this.#unavailable();
    }
    try {
      const result = await this.inner.append(request);
      if (lose || this.loseReplies > 0) {
        if (!lose) this.loseReplies -= 1;
        throw new StoreUnavailableError('connection lost before the reply', new Error('Connection terminated unexpectedly'));
      }
      return result;
    } catch (error) {
      if (error instanceof VersionConflictError) this.conflicts += 1;
      throw error;
    }
  }

  async readStream(request: ReadStreamRequest): Promise<StoredEvent[]> {
    this.readStreamCalls += 1;
    if (this.down) throw this.#unavailable();
    return this.inner.readStream(request);
  }

  async readAll(request: ReadAllRequest) {
    if (this.down) throw this.#unavailable();
    return this.inner.readAll(request);
  }

  async findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
    if (this.down) throw this.#unavailable();
    return this.inner.findByIndexKeys(request);
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    if (this.down) throw this.#unavailable();
    return this.inner.saveSnapshot(snapshot);
  }

  async loadSnapshot(request: { readonly tenantId: string; readonly ledgerId: string }): Promise<Snapshot | null> {
    if (this.down) throw this.#unavailable();
    return this.inner.loadSnapshot(request);
  }
}

const writers: LedgerWriter[] = [];

async function openWriter(store: EventStore, options: Partial<LedgerWriterOptions> = {}): Promise<LedgerWriter> {
  const writer = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER, ...options });
  writers.push(writer);
  return writer;
}

afterEach(async () => {
  await Promise.all(writers.splice(0).map((writer) => writer.close()));
});

function openAccount(accountId: string, noOverdraft = false, currency = 'EUR'): LedgerCommand {
  return {
    kind: 'openAccount',
    accountId,
    currency,
    type: accountId === 'bank' ? 'asset' : 'liability',
    flags: { debitsMustNotExceedCredits: noOverdraft, creditsMustNotExceedDebits: false },
    metadata: {},
  };
}

function transfer(transferId: string, from: string, to: string, amount: bigint): TransferCommand {
  return {
    kind: 'transfer',
    transferId,
    postings: [
      { accountId: from, side: 'debit', amount, currency: 'EUR' },
      { accountId: to, side: 'credit', amount, currency: 'EUR' },
    ],
    pending: undefined,
    effectiveAtMs: undefined,
    reference: undefined,
    metadata: {},
  };
}

/** Opens bank, alice (no overdraft) and bob, and funds alice with `funds`. */
async function setUp(writer: LedgerWriter, funds = 100n): Promise<void> {
  for (const command of [openAccount('bank'), openAccount('alice', true), openAccount('bob'), transfer('fund-alice', 'bank', 'alice', funds)]) {
    expect(await writer.submit(command)).toMatchObject({ ok: true });
  }
}

async function allEvents(store: EventStore): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for await (const event of readLedger({ store, tenantId: TENANT, ledgerId: LEDGER })) events.push(event);
  return events;
}

const failureOf = (promise: Promise<CommandResult>): Promise<unknown> => promise.then(
  (result) => new Error(`expected a failure, got ${JSON.stringify(result, (_, value: unknown) => (typeof value === 'bigint' ? String(value) : value))}`),
  (error: unknown) => error,
);

describe('unknown outcome of an append', () => {
  it('an append that committed but lost its reply fails its callers with a retriable StoreUnavailableError, and the next batch reads the tail before deciding: retries answer duplicate with the original versions without a conflicting append, and a dependent command sees the committed state', async () => {
    const store = new FaultyStore();
    const writer = await openWriter(store);
    await setUp(writer);
    const lost: LedgerCommand[] = [openAccount('carol', true), transfer('fund-carol', 'bank', 'carol', 50n)];

    store.loseReplies = 1;
    const failures = await Promise.all(lost.map((command) => failureOf(writer.submit(command))));

    for (const failure of failures) {
      expect(failure).toBeInstanceOf(StoreUnavailableError);
      expect(failure).toBeInstanceOf(WriterFailedError);
      expect(failure).toMatchObject({ code: 'store_unavailable', retriable: true });
      expect((failure as Error).message).toMatch(/may have been applied/);
    }
    const committed = await allEvents(store);
    const fundCarol = committed.find((event) => event.data['transferId'] === 'fund-carol');
    expect(fundCarol, 'the lost batch did commit').toBeDefined();
    expect(writer.version, 'memory has not applied what it could not confirm').toBe(committed.length - 2);

    const retried = await Promise.all(lost.map((command) => writer.submit(command)));
    expect(retried).toEqual([
      { ok: true, duplicate: true, ledgerVersion: committed.length - 1, recordedAt: fundCarol?.recordedAt },
      { ok: true, duplicate: true, ledgerVersion: committed.length, recordedAt: fundCarol?.recordedAt },
    ]);
    // Deciding on the old state would have appended both again and hit the version fence.
    expect(store.conflicts, 'the retries were decided after reading the tail').toBe(0);
    expect(store.appendCalls).toBe(5);

    expect(await writer.submit(transfer('carol-pays', 'carol', 'bob', 50n))).toMatchObject({ ok: true, duplicate: false, ledgerVersion: committed.length + 1 });
    const events = await allEvents(store);
    expect(events.filter((event) => event.data['transferId'] === 'fund-carol')).toHaveLength(1);
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: committed.length + 1 });
  });

  it('an append that failed before it committed is applied exactly once by the retry, with duplicate: false', async () => {
    const store = new FaultyStore();
    const writer = await openWriter(store);
    await setUp(writer);
    const versionBefore = writer.version;

    store.failBeforeCommit = 1;
    expect(await failureOf(writer.submit(transfer('t1', 'alice', 'bob', 30n)))).toBeInstanceOf(StoreUnavailableError);
    expect(writer.version).toBe(versionBefore);

    expect(await writer.submit(transfer('t1', 'alice', 'bob', 30n))).toMatchObject({ ok: true, duplicate: false, ledgerVersion: versionBefore + 1 });
    expect((await allEvents(store)).filter((event) => event.data['transferId'] === 't1')).toHaveLength(1);
    expect(writer.account('alice')?.debitsPosted).toBe(30n);
  });

  it('while the store is unreachable every command fails at once with StoreUnavailableError, and the same writer recovers when it is back, folding a batch whose reply was lost first', async () => {
    const store = new FaultyStore();
    const writer = await openWriter(store);
    await setUp(writer);

    store.loseReplies = 1;
    expect(await failureOf(writer.submit(transfer('lost', 'alice', 'bob', 60n)))).toBeInstanceOf(StoreUnavailableError);
    store.down = true;
    const startedAt = Date.now();
    const whileDown = await Promise.all(Array.from({ length: 20 }, (_, i) => failureOf(writer.submit(transfer(`down-${i}`, 'bank', 'bob', 1n)))));
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    for (const failure of whileDown) {
      expect(failure).toBeInstanceOf(StoreUnavailableError);
      expect(failure).toMatchObject({ code: 'store_unavailable', retriable: true });
      // The batch never reached the append: the tail could not be read first.
      expect((failure as Error).message).toMatch(/were not applied/);
    }
    expect(store.appendCalls).toBe(5);

    store.down = false;
    // alice had 100 and 'lost' took 60: memory without the tail would accept 50 more.
    expect(await writer.submit(transfer('after', 'alice', 'bob', 50n))).toMatchObject({ ok: false, code: 'insufficient_funds' });
    expect(await writer.submit(transfer('lost', 'alice', 'bob', 60n))).toMatchObject({ ok: true, duplicate: true, ledgerVersion: 5 });
    expect(await writer.submit(transfer('down-0', 'bank', 'bob', 1n))).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 6 });
    expect(writer.account('alice')).toMatchObject({ debitsPosted: 60n, creditsPosted: 100n });
    expect(await verifyChain(await allEvents(store))).toMatchObject({ ok: true, eventCount: 6 });
  });
});

describe('pipelined batches (the next batch is decided while one is being appended)', () => {
  /** Opens a writer with batches of 2, sets up, and holds appends until the returned function is called. */
  async function gatedWriter(store: FaultyStore, appendsInFlightMax: number): Promise<{ writer: LedgerWriter; open: () => void }> {
    const writer = await openWriter(store, { batchSizeMax: 2, appendsInFlightMax });
    await setUp(writer, 100n);
    let open = (): void => undefined;
    store.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    return { writer, open };
  }
  const settle = (promise: Promise<CommandResult>): Promise<unknown> => promise.then((result) => result, (error: unknown) => error);
  /**
   * Batch 1 (fund-1, fund-2) gives alice 500 more; batch 2 spends 400 (spend-1) and `lastSpend`
   * (spend-2) of it, which only batch 1 makes affordable. Outcomes (results or errors) in order.
   */
  const fundThenSpend = (writer: LedgerWriter, lastSpend: bigint): Promise<unknown>[] =>
    [
      transfer('fund-1', 'bank', 'alice', 300n),
      transfer('fund-2', 'bank', 'alice', 200n),
      transfer('spend-1', 'alice', 'bob', 400n),
      transfer('spend-2', 'alice', 'bob', lastSpend),
    ].map((command) => settle(writer.submit(command)));
  const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 10));
  /**
   * A gated writer (batches of 2) on a fresh store: `arrange` sets the store's faults, then
   * {@link fundThenSpend} is submitted and the writer sends what it will while appends wait; the
   * gate then opens. Gives the four outcomes, and the append calls made before the submit and
   * while the gate was shut.
   */
  async function fundThenSpendThroughGate(
    appendsInFlightMax: number,
    lastSpend: bigint,
    arrange: (store: FaultyStore) => void = () => undefined,
  ): Promise<{ store: FaultyStore; writer: LedgerWriter; outcomes: unknown[]; callsBefore: number; callsWhileGated: number }> {
    const store = new FaultyStore();
    const { writer, open } = await gatedWriter(store, appendsInFlightMax);
    arrange(store);
    const callsBefore = store.appendCalls;
    const pending = fundThenSpend(writer, lastSpend);
    await tick();
    const callsWhileGated = store.appendCalls - callsBefore;
    open();
    return { store, writer, outcomes: await Promise.all(pending), callsBefore, callsWhileGated };
  }
  /** fund-1, fund-2, spend-1 and spend-2 are each logged once and alice holds 600 in, 550 out; the log. */
  const expectAllFourOnce = async (store: FaultyStore, writer: LedgerWriter): Promise<StoredEvent[]> => {
    const events = await allEvents(store);
    for (const id of ['fund-1', 'fund-2', 'spend-1', 'spend-2']) expect(events.filter((event) => event.data['transferId'] === id), id).toHaveLength(1);
    expect(writer.account('alice')).toMatchObject({ creditsPosted: 600n, debitsPosted: 550n });
    return events;
  };

  it('with one append in flight (appendsInFlightMax 1), the next batch is appended only after the one below it is durable, and it sees that batch’s effects', async () => {
    const { store, writer, outcomes: results, callsBefore, callsWhileGated } = await fundThenSpendThroughGate(1, 150n);
    expect(callsWhileGated, 'batch 2 waits for batch 1').toBe(1);
    expect(results).toMatchObject([{ ok: true }, { ok: true }, { ok: true }, { ok: true }]);
    expect(store.appendCalls - callsBefore).toBe(2);
    expect(store.conflicts).toBe(0);
    expect(writer.account('alice')).toMatchObject({ creditsPosted: 600n, debitsPosted: 550n });
    const events = await allEvents(store);
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });

  it('with two appends in flight (the default), the batch decided on top is sent before the one below is durable, and both land in order on one unbroken chain', async () => {
    const { store, writer, outcomes: results, callsBefore, callsWhileGated } = await fundThenSpendThroughGate(2, 150n);
    expect(callsWhileGated, 'batch 2 is sent while batch 1 waits').toBe(2);
    expect(results).toMatchObject([{ ok: true }, { ok: true }, { ok: true }, { ok: true }]);
    expect(results.map((result) => (result as { ledgerVersion: number }).ledgerVersion)).toEqual([...results.keys()].map((i) => writer.version - 3 + i));
    expect(store.appendCalls - callsBefore).toBe(2);
    expect(store.conflicts).toBe(0);
    expect(writer.account('alice')).toMatchObject({ creditsPosted: 600n, debitsPosted: 550n });
    const events = await allEvents(store);
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });

  it('with two appends in flight, when the lower one is sent last the store refuses the upper one (nothing written) and the writer decides it again: every transfer lands once', async () => {
    // Let the upper append reach the store first: the chain fence must refuse it.
    const { store, writer, outcomes } = await fundThenSpendThroughGate(2, 150n, (faulty) => {
      faulty.reorderNext = true;
    });
    expect(outcomes).toMatchObject([{ ok: true }, { ok: true }, { ok: true, duplicate: false }, { ok: true, duplicate: false }]);
    expect(store.conflicts, 'the upper append was refused once').toBe(1);
    const events = await expectAllFourOnce(store, writer);
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });

  for (const appendsInFlightMax of [1, 2]) {
    it(`appendsInFlightMax ${appendsInFlightMax}: when the batch below fails before committing, the batch decided on top of it is never appended as decided: it is decided again on what the store holds`, async () => {
      // spend-1 is only affordable with batch 1's funds: on the real state (100) it must be rejected.
      const { store, writer, outcomes } = await fundThenSpendThroughGate(appendsInFlightMax, 50n, (faulty) => {
        faulty.failBeforeCommit = 1;
      });
      const [fund1, fund2, spend1, spend2] = outcomes;
      expect(fund1).toBeInstanceOf(StoreUnavailableError);
      expect(fund2).toBeInstanceOf(StoreUnavailableError);
      expect(spend1).toMatchObject({ ok: false, code: 'insufficient_funds' });
      expect(spend2).toMatchObject({ ok: true, duplicate: false });
      const events = await allEvents(store);
      expect(events.map((event) => event.data['transferId']).filter((id) => typeof id === 'string' && id !== 'fund-alice')).toEqual(['spend-2']);
      expect(writer.account('alice')).toMatchObject({ creditsPosted: 100n, debitsPosted: 50n });
      expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
    });
  }

  it('appendsInFlightMax 1: when the batch below committed but its reply was lost, the batch on top is decided again after the tail is read, and nothing is applied twice', async () => {
    const { store, writer, outcomes } = await fundThenSpendThroughGate(1, 150n, (faulty) => {
      faulty.loseReplies = 1;
    });
    const [fund1, fund2, spend1, spend2] = outcomes;
    expect(fund1).toBeInstanceOf(StoreUnavailableError);
    expect(fund2).toBeInstanceOf(StoreUnavailableError);
    // Batch 1 did commit, so batch 2 is affordable on the state read back.
    expect(spend1).toMatchObject({ ok: true, duplicate: false });
    expect(spend2).toMatchObject({ ok: true, duplicate: false });
    expect(store.conflicts).toBe(0);
    const events = await expectAllFourOnce(store, writer);
    expect(await writer.submit(transfer('fund-1', 'bank', 'alice', 300n))).toMatchObject({ ok: true, duplicate: true });
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });

  it('appendsInFlightMax 2: when the batch below committed but its reply was lost, the batch on top (fenced on its hash) commits and so proves it: every caller gets its real outcome, nothing is applied twice', async () => {
    const { store, writer, outcomes: results } = await fundThenSpendThroughGate(2, 150n, (faulty) => {
      faulty.loseReplies = 1;
    });
    expect(results).toMatchObject([
      { ok: true, duplicate: false },
      { ok: true, duplicate: false },
      { ok: true, duplicate: false },
      { ok: true, duplicate: false },
    ]);
    expect(store.conflicts).toBe(0);
    const events = await expectAllFourOnce(store, writer);
    expect(await writer.submit(transfer('fund-1', 'bank', 'alice', 300n))).toMatchObject({ ok: true, duplicate: true, ledgerVersion: (results[0] as { ledgerVersion: number }).ledgerVersion });
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });

  it('appendsInFlightMax 2: when both stacked appends fail with an unknown outcome, every caller of both gets a retriable error, and their retries apply each transfer exactly once', async () => {
    // Neither append commits, but to the writer both outcomes are unknown (a lost connection).
    const { store, writer, outcomes } = await fundThenSpendThroughGate(2, 150n, (faulty) => {
      faulty.failBeforeCommit = 2;
    });
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(StoreUnavailableError);
    expect(store.conflicts, 'the upper append was never refused: it failed on its own').toBe(0);
    const retried = await Promise.all(fundThenSpend(writer, 150n));
    expect(retried).toMatchObject([
      { ok: true, duplicate: false },
      { ok: true, duplicate: false },
      { ok: true, duplicate: false },
      { ok: true, duplicate: false },
    ]);
    const events = await expectAllFourOnce(store, writer);
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });
});

describe('stacked appends under random faults (property)', () => {
  it('random bursts through a store that delays, reorders, refuses, fails or loses replies, two appends in flight: each acknowledged transfer is logged once, nothing rejected is, retries settle everything, no protected account is overdrawn, debits equal credits, and replay equals memory', async () => {
    const accounts = ['bank', 'alice', 'bob', 'carol'];
    const protectedAccounts = new Set(['alice', 'carol']);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ from: fc.nat({ max: 3 }), to: fc.nat({ max: 3 }), amount: fc.bigInt({ min: 1n, max: 90n }) }), { minLength: 4, maxLength: 40 }),
        fc.array(fc.constantFrom('none' as const, 'none' as const, 'slow' as const, 'slow' as const, 'before' as const, 'lost' as const), { maxLength: 40 }),
        fc.integer({ min: 1, max: 5 }),
        async (moves, faults, batchSizeMax) => {
          const store = new FaultyStore();
          const writer = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER, batchSizeMax, appendsInFlightMax: 2 });
          try {
            for (const command of [...accounts.map((id) => openAccount(id, protectedAccounts.has(id))), transfer('fund-alice', 'bank', 'alice', 100n), transfer('fund-carol', 'bank', 'carol', 100n)]) {
              expect(await writer.submit(command)).toMatchObject({ ok: true });
            }
            store.faultPlan = [...faults];
            const commands = moves.map((move, i) => transfer(`m-${i}`, accounts[move.from] as string, accounts[move.to] as string, move.amount));
            const first = await Promise.all(commands.map((command) => writer.submit(command).then((result) => result, (error: unknown) => error)));
            for (const outcome of first) if (!('ok' in (outcome as object))) expect(outcome).toBeInstanceOf(WriterFailedError);
            store.faultPlan = [];
            // Retry what failed, as a client would, until every transfer has an answer.
            const final: CommandResult[] = [];
            for (const [i, outcome] of first.entries()) {
              final.push('ok' in (outcome as object) ? (outcome as CommandResult) : await writer.submit(commands[i] as TransferCommand));
            }
            const events = await allEvents(store);
            expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
            for (const [i, result] of final.entries()) {
              const logged = events.filter((event) => event.data['transferId'] === `m-${i}`).length;
              expect(logged, `m-${i} answered ${JSON.stringify(result)}`).toBe(result.ok ? 1 : 0);
              // A first answer that was a result is final: a retry must answer the same.
              if ('ok' in (first[i] as object) && result.ok) expect(await writer.submit(commands[i] as TransferCommand)).toMatchObject({ ok: true, duplicate: true, ledgerVersion: result.ledgerVersion });
            }
            const replayed = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER });
            try {
              const byId = (list: ReturnType<LedgerWriter['accounts']>) => [...list].sort((a, b) => a.id.localeCompare(b.id));
              expect(byId(replayed.accounts())).toEqual(byId(writer.accounts()));
              expect(replayed.version).toBe(writer.version);
            } finally {
              await replayed.close();
            }
            let debits = 0n;
            let credits = 0n;
            for (const account of writer.accounts()) {
              debits += account.debitsPosted;
              credits += account.creditsPosted;
              if (protectedAccounts.has(account.id)) expect(account.debitsPosted, account.id).toBeLessThanOrEqual(account.creditsPosted);
            }
            expect(debits).toBe(credits);
          } finally {
            await writer.close();
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('retries of transfers the writer no longer holds in memory', () => {
  it('a retry the current balances would reject answers with the original outcome, and one they would accept is not applied twice', async () => {
    const store = new FaultyStore();
    const writer = await openWriter(store, { transfersCachedMax: 2 });
    await setUp(writer, 100n);
    const original = await writer.submit(transfer('t-spend', 'alice', 'bob', 80n));
    expect(original).toMatchObject({ ok: true, duplicate: false });
    // Push t-spend out of the cache, then empty alice so that deciding the retry afresh would reject it.
    for (let i = 0; i < 5; i += 1) expect(await writer.submit(transfer(`filler-${i}`, 'bank', 'bob', 1n))).toMatchObject({ ok: true });
    expect(await writer.submit(transfer('t-drain', 'alice', 'bob', 20n))).toMatchObject({ ok: true });
    expect(writer.account('alice')).toMatchObject({ creditsPosted: 100n, debitsPosted: 100n });

    // In one batch with a transfer that is appended, so the batch is not one of rejections only.
    const [retried, other] = await Promise.all([writer.submit(transfer('t-spend', 'alice', 'bob', 80n)), writer.submit(transfer('t-other', 'bank', 'bob', 1n))]);
    expect(retried).toEqual({ ...original, duplicate: true });
    expect(other).toMatchObject({ ok: true, duplicate: false });

    // Fund alice again: now a fresh decision would accept it, so only the store's unique key stops a second application.
    expect(await writer.submit(transfer('refund', 'bank', 'alice', 500n))).toMatchObject({ ok: true });
    for (let i = 5; i < 10; i += 1) expect(await writer.submit(transfer(`filler-${i}`, 'bank', 'bob', 1n))).toMatchObject({ ok: true });
    const again = await Promise.all([writer.submit(transfer('t-spend', 'alice', 'bob', 80n)), writer.submit(transfer('t-new', 'alice', 'bob', 10n))]);
    expect(again[0]).toEqual({ ...original, duplicate: true });
    expect(again[1]).toMatchObject({ ok: true, duplicate: false });
    const events = await allEvents(store);
    expect(events.filter((event) => event.data['transferId'] === 't-spend')).toHaveLength(1);
    expect(writer.account('alice')).toMatchObject({ creditsPosted: 600n, debitsPosted: 110n });
    expect(events.filter((event) => event.data['transferId'] === 't-other')).toHaveLength(1);
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });
});

describe('rejections on a stale state', () => {
  it('a writer never rejects on a state another writer has moved past: a spend that only the other writer’s deposit covers is accepted', async () => {
    const store = new FaultyStore();
    const stale = await openWriter(store);
    await setUp(stale, 10n);
    const other = await openWriter(store);
    expect(await other.submit(transfer('top-up', 'bank', 'alice', 90n))).toMatchObject({ ok: true });

    expect(await stale.submit(transfer('spend', 'alice', 'bob', 100n))).toMatchObject({ ok: true, duplicate: false });
    expect(stale.account('alice')).toMatchObject({ debitsPosted: 100n, creditsPosted: 100n });
  });

  it('a retry at a stale writer of a transfer the other writer applied answers duplicate even where the stale state would reject it', async () => {
    const store = new FaultyStore();
    const stale = await openWriter(store);
    await setUp(stale, 10n);
    const other = await openWriter(store);
    expect(await other.submit(transfer('top-up', 'bank', 'alice', 90n))).toMatchObject({ ok: true });
    const original = await other.submit(transfer('big', 'alice', 'bob', 100n));
    expect(original).toMatchObject({ ok: true, duplicate: false });

    expect(await stale.submit(transfer('big', 'alice', 'bob', 100n))).toEqual({ ...original, duplicate: true });
  });
});

describe('back-pressure', () => {
  it('under a flood of 20,000 submits the queue never holds more than queueLengthMax commands: the excess is refused at once with OverloadedError and the accepted ones all complete', async () => {
    const queueLengthMax = 100;
    const store = new FaultyStore();
    const writer = await openWriter(store, { queueLengthMax, batchSizeMax: 10 });
    await setUp(writer, 100_000n);
    let open: () => void = () => undefined;
    store.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const inFlight = writer.submit(transfer('in-flight', 'alice', 'bob', 1n));
    for (let polls = 0; store.appendCalls < 5 && polls < 1_000; polls += 1) await new Promise((resolve) => setImmediate(resolve));
    expect(store.appendCalls, 'the first batch is held in its append').toBe(5);

    let queuedMax = 0;
    let refused = 0;
    let otherErrors = 0;
    const accepted: Promise<CommandResult>[] = [];
    for (let i = 0; i < 20_000; i += 1) {
      const submitted = writer.submit(transfer(`flood-${i}`, 'alice', 'bob', 1n));
      queuedMax = Math.max(queuedMax, writer.queueLength);
      accepted.push(
        submitted.catch((error: unknown) => {
          if (error instanceof OverloadedError && error.retriable) refused += 1;
          else otherErrors += 1;
          return undefined as unknown as CommandResult;
        }),
      );
    }
    // Refusals settle without waiting for the store: the gate is still closed.
    await new Promise((resolve) => setImmediate(resolve));
    expect(queuedMax).toBe(queueLengthMax);
    expect(writer.queueLength).toBe(queueLengthMax);
    expect(refused).toBe(20_000 - queueLengthMax);
    expect(otherErrors).toBe(0);

    open();
    store.gate = undefined;
    expect(await inFlight).toMatchObject({ ok: true });
    const results = (await Promise.all(accepted)).filter((result) => result !== undefined);
    expect(results).toHaveLength(queueLengthMax);
    expect(results.every((result) => result.ok && !result.duplicate)).toBe(true);
    expect(writer.account('alice')?.debitsPosted).toBe(BigInt(queueLengthMax + 1));
  });
});

// Batches against the store's limits and a second writer while an append is in flight.

const outcomeOf = (promise: Promise<CommandResult>): Promise<CommandResult | Error> => promise.then(
  (result) => result,
  (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
);

/** An in-memory store that records the size of every append it is asked for, in events and in characters of data JSON, and every index key looked up. */
class CountingStore extends InMemoryEventStore {
  readonly appendSizes: number[] = [];
  readonly appendDataChars: number[] = [];
  readonly keysLookedUp: string[] = [];

  override async findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
    this.keysLookedUp.push(...request.keys);
    return super.findByIndexKeys(request);
  }

  override async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
    this.appendSizes.push(request.events.length);
    this.appendDataChars.push(request.events.reduce((sum, event) => sum + dataJsonOf(event).length, 0));
    return super.append(request);
  }
}

/**
 * Opens 32 accounts with long ids; returns a maker of transfers between them of 32 postings of
 * large amounts, with a long reference and ~3.6 KB of metadata (~10,000 characters of data each).
 */
async function largeTransfers(writer: LedgerWriter): Promise<(transferId: string) => TransferCommand> {
  const accounts = Array.from({ length: 32 }, (_, index) => `account-${index}-`.padEnd(128, 'x'));
  for (const accountId of accounts) expect(await writer.submit(openAccount(accountId))).toMatchObject({ ok: true });
  const metadata = Object.fromEntries(Array.from({ length: 7 }, (_, index) => [`note-${index}`, 'n'.repeat(500)]));
  return (transferId) => ({
    ...transfer(transferId, 'unused', 'unused', 1n),
    postings: accounts.map((accountId, index) => ({ accountId, side: index % 2 === 0 ? 'debit' : 'credit', amount: 10n ** 30n, currency: 'EUR' })),
    reference: 'r'.repeat(256),
    metadata,
  });
}

describe('append size', () => {
  it('a batch of linked groups whose events exceed APPEND_EVENTS_MAX is split across appends instead of failing every command of the batch', async () => {
    const store = new CountingStore();
    const writer = await openWriter(store, { appendsInFlightMax: 1 });
    for (const command of [openAccount('bank'), openAccount('bob')]) expect(await writer.submit(command)).toMatchObject({ ok: true });
    // 800 groups of 64 transfers: 51,200 events, within batchSizeMax (1,000 commands) but over one append's limit.
    const groups = Array.from({ length: 800 }, (_, g): LedgerCommand => ({
      kind: 'linked',
      commands: Array.from({ length: 64 }, (_, i) => transfer(`g${g}-${i}`, 'bank', 'bob', 1n)),
    }));
    const outcomes = await Promise.all(groups.map((group) => outcomeOf(writer.submit(group))));
    expect(outcomes.filter((outcome) => outcome instanceof Error).map((error) => (error as Error).message).slice(0, 1)).toEqual([]);
    expect(outcomes.every((outcome) => !(outcome instanceof Error) && outcome.ok)).toBe(true);
    expect(Math.max(...store.appendSizes)).toBeLessThanOrEqual(APPEND_EVENTS_MAX);
    const events = await allEvents(store);
    expect(events).toHaveLength(2 + 800 * 64);
    expect(await verifyChain(events)).toMatchObject({ ok: true });
  }, 60_000);

  it('a batch of linked groups whose data exceeds APPEND_DATA_CHARS_MAX is split across appends instead of failing every command of the batch', async () => {
    const store = new CountingStore();
    const writer = await openWriter(store, { appendsInFlightMax: 1 });
    const large = await largeTransfers(writer);
    // 440 groups of 64: 28,160 events, within APPEND_EVENTS_MAX but (at ~10,000 characters each) over the data limit.
    const groups = Array.from({ length: 440 }, (_, g): LedgerCommand => ({ kind: 'linked', commands: Array.from({ length: 64 }, (_, i) => large(`g${g}-${i}`)) }));
    const outcomes = await Promise.all(groups.map((group) => outcomeOf(writer.submit(group))));
    expect(outcomes.filter((outcome) => outcome instanceof Error).map((error) => (error as Error).message).slice(0, 1)).toEqual([]);
    expect(outcomes.every((outcome) => !(outcome instanceof Error) && outcome.ok)).toBe(true);
    const sent = store.appendDataChars.reduce((sum, chars) => sum + chars, 0);
    expect(sent, 'the test sends more than one append may hold').toBeGreaterThan(APPEND_DATA_CHARS_MAX);
    expect(Math.max(...store.appendDataChars)).toBeLessThanOrEqual(APPEND_DATA_CHARS_MAX);
    // Every event is there once, in order: the store numbered each append from the one before it
    // and fenced its first link on the event below (the whole chain is checked by the test above).
    expect(store.appendSizes.reduce((sum, size) => sum + size, 0)).toBe(32 + 440 * 64);
    const [last] = await store.readStream({ tenantId: TENANT, ledgerId: LEDGER, direction: 'backward', limit: 1 });
    expect(last?.ledgerVersion).toBe(32 + 440 * 64);
  }, 120_000);
});

describe('appends that fail in unusual ways', () => {
  /** An in-memory store whose appends, by call number, are refused or fail as `script` says (after `delayMs`). */
  class ScriptedStore extends InMemoryEventStore {
    calls = 0;
    constructor(private readonly script: ReadonlyMap<number, { readonly delayMs: number; readonly error: () => Error; readonly synchronous?: boolean }>) {
      super();
    }

    override append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
      const step = this.script.get(this.calls);
      this.calls += 1;
      if (step === undefined) return super.append(request);
      if (step.synchronous === true) throw step.error();
      return new Promise((_, reject) => setTimeout(() => reject(step.error()), step.delayMs));
    }
  }

  it("a store's append that throws at once (not a rejected promise) fails its batch's callers, and the writer goes on", async () => {
    // Set-up makes appends 0-3; the fifth append throws synchronously.
    const store = new ScriptedStore(new Map([[4, { delayMs: 0, synchronous: true, error: () => new StoreUnavailableError('the connection is gone', undefined) }]]));
    const writer = await openWriter(store, { appendsInFlightMax: 1 });
    await setUp(writer);
    const failed = await failureOf(writer.submit(transfer('sync-throw', 'bank', 'bob', 1n)));
    expect(failed).toBeInstanceOf(StoreUnavailableError);
    expect(await writer.submit(transfer('after-throw', 'bank', 'bob', 1n))).toMatchObject({ ok: true });
  });

  it('an append stacked on one the store refused is decided again, not reported as maybe applied, whatever its own failure', async () => {
    // Appends 0-3 are set-up; 4 (t1) is refused as a conflict, 5 (t2, stacked on it) fails as a lost connection.
    const store = new ScriptedStore(
      new Map([
        [4, { delayMs: 50, error: () => new VersionConflictError(4) }],
        [5, { delayMs: 80, error: () => new StoreUnavailableError('connection reset', undefined) }],
      ]),
    );
    const writer = await openWriter(store, { appendsInFlightMax: 2, batchSizeMax: 1 });
    await setUp(writer);
    const [first, second] = await Promise.all([outcomeOf(writer.submit(transfer('t1', 'bank', 'bob', 1n))), outcomeOf(writer.submit(transfer('t2', 'bank', 'bob', 1n)))]);
    // The scripted failures happened as set: both appends were in flight at once.
    expect(store.calls).toBeGreaterThanOrEqual(6);
    expect([first, second]).toMatchObject([{ ok: true }, { ok: true }]);
    const events = await allEvents(store);
    expect(events.filter((event) => event.type === 'TransferPosted').map((event) => event.data['transferId'])).toEqual(['fund-alice', 't1', 't2']);
  });
});

describe('transfer records kept in memory', () => {
  it('are bounded by their estimated size too (transfersCachedBytesMax): past it the oldest are dropped, and a retry of one is answered from the store\'s index', async () => {
    const outcomes: { lookedUp: boolean; retry: CommandResult }[] = [];
    for (const transfersCachedBytesMax of [200_000, undefined]) {
      const store = new CountingStore();
      const writer = await openWriter(store, transfersCachedBytesMax === undefined ? {} : { transfersCachedBytesMax });
      const large = await largeTransfers(writer);
      // 100 transfers of ~10 KB each: about 1 MB, five times the smaller bound, far under the default.
      const first = await writer.submit(large('large-0'));
      expect(first).toMatchObject({ ok: true });
      for (let n = 1; n < 100; n += 1) expect(await writer.submit(large(`large-${n}`))).toMatchObject({ ok: true });
      const retry = await writer.submit(large('large-0'));
      expect(retry).toMatchObject({ ok: true, duplicate: true, ledgerVersion: (first as { ledgerVersion: number }).ledgerVersion });
      outcomes.push({ lookedUp: store.keysLookedUp.includes('transfer:large-0'), retry });
    }
    // Under the 200 KB bound the first record was dropped and read back from the index; under the default it was still in memory.
    expect(outcomes.map((outcome) => outcome.lookedUp)).toEqual([true, false]);
  });

  it('a snapshot the store refuses is tried again after another snapshotEveryEvents events, not after every batch', async () => {
    class SnapshotRefusingStore extends InMemoryEventStore {
      attempts: number[] = [];
      override async saveSnapshot(snapshot: Snapshot): Promise<void> {
        this.attempts.push(snapshot.ledgerVersion);
        throw new LimitExceededError('the state is too large to keep');
      }
    }
    const store = new SnapshotRefusingStore();
    const writer = await openWriter(store, { snapshotEveryEvents: 4 });
    await setUp(writer);
    // One batch per command (each awaited): 4 events of set-up, then 16 transfers.
    for (let n = 0; n < 16; n += 1) expect(await writer.submit(transfer(`s-${n}`, 'bank', 'bob', 1n))).toMatchObject({ ok: true });
    await writer.close();
    expect(store.attempts).toEqual([4, 8, 12, 16, 20]);
  });

  it('with open holds alone over transfersCachedBytesMax, resolved records are still dropped as more come, and every open hold is kept', async () => {
    const store = new CountingStore();
    const writer = await openWriter(store, { transfersCachedBytesMax: 100_000 });
    const large = await largeTransfers(writer);
    // 30 open holds of ~10 KB: three times the bound, and never dropped.
    for (let n = 0; n < 30; n += 1) expect(await writer.submit({ ...large(`hold-${n}`), pending: { timeoutMs: undefined } })).toMatchObject({ ok: true });
    // Then 100 transfers: the records keep growing past where a walk found nothing to drop.
    const first = await writer.submit(large('large-0'));
    for (let n = 1; n < 100; n += 1) expect(await writer.submit(large(`large-${n}`))).toMatchObject({ ok: true });
    expect(await writer.submit(large('large-0'))).toMatchObject({ ok: true, duplicate: true, ledgerVersion: (first as { ledgerVersion: number }).ledgerVersion });
    expect(store.keysLookedUp, 'the first transfer was dropped and read back from the index').toContain('transfer:large-0');
    // The first hold is still in memory: posting it reads nothing of it from the index.
    expect(await writer.submit(postPending('post-hold-0', 'hold-0'))).toMatchObject({ ok: true });
    expect(store.keysLookedUp).not.toContain('transfer:hold-0');
  });

  it('transfersCachedBytesMax outside 0..2^40 or not an integer is refused at open', async () => {
    for (const transfersCachedBytesMax of [-1, 1.5, 2 ** 40 + 1]) {
      await expect(LedgerWriter.open({ store: new InMemoryEventStore(), tenantId: TENANT, ledgerId: LEDGER, transfersCachedBytesMax })).rejects.toBeInstanceOf(LimitExceededError);
    }
  });
});

/**
 * An in-memory store whose appends wait while a gate is closed; the gate opens by itself at the
 * first index lookup made while it is closed (the writer deciding on top of the waiting append).
 */
class GatedStore extends InMemoryEventStore {
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  lookupsWhileClosed = 0;

  closeGate(): void {
    this.#gate = new Promise<void>((resolve) => {
      this.#open = resolve;
    });
  }

  override async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
    if (this.#gate !== undefined) await this.#gate;
    return super.append(request);
  }

  override async findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
    if (this.#gate !== undefined) {
      this.lookupsWhileClosed += 1;
      this.#gate = undefined;
      this.#open?.();
    }
    return super.findByIndexKeys(request);
  }
}

const hold = (transferId: string, from: string, to: string, amount: bigint): TransferCommand => ({
  ...transfer(transferId, from, to, amount),
  pending: { timeoutMs: undefined },
});

const postPending = (transferId: string, pendingId: string): LedgerCommand => ({
  kind: 'postPending',
  transferId,
  pendingId,
  currency: undefined,
  amount: undefined,
  effectiveAtMs: undefined,
  metadata: {},
});

describe('index lookups while an append is in flight', () => {
  it('a batch decided on top of an append in flight never takes a record another writer wrote past the committed version: the writer catches up once, its state equals the log, and it keeps working', async () => {
    const store = new GatedStore();
    // A cache of one transfer: older ids are looked up in the store's index.
    const stale = await openWriter(store, { transfersCachedMax: 1, batchSizeMax: 1 });
    for (const command of [openAccount('bank'), openAccount('bob'), transfer('t1', 'bank', 'bob', 1n), transfer('t2', 'bank', 'bob', 1n)]) {
      expect(await stale.submit(command)).toMatchObject({ ok: true });
    }
    const other = await openWriter(store);
    expect(await other.submit(hold('h1', 'bank', 'bob', 5n))).toMatchObject({ ok: true });

    // The stale writer appends a batch (refused when the gate opens: the other writer moved the
    // stream) and, while it is in flight, decides a batch naming the other writer's hold on top.
    store.closeGate();
    const first = outcomeOf(stale.submit(transfer('t3', 'bank', 'bob', 1n)));
    const second = outcomeOf(stale.submit(postPending('p1', 'h1')));
    expect(await first).toMatchObject({ ok: true });
    expect(store.lookupsWhileClosed).toBe(1);
    expect(await second).toMatchObject({ ok: true });
    expect(stale.account('bank')).toMatchObject({ debitsPending: 0n, debitsPosted: 8n });
    expect(stale.account('bob')).toMatchObject({ creditsPending: 0n, creditsPosted: 8n });
    expect(await stale.submit(transfer('t4', 'bank', 'bob', 1n))).toMatchObject({ ok: true, duplicate: false });
    expect(await verifyChain(await allEvents(store))).toMatchObject({ ok: true });
  });
});

describe('an append the store refuses for its arguments', () => {
  it('fails its commands saying they were not applied (the port: a refused append writes nothing), and the writer goes on', async () => {
    class RefusingStore extends InMemoryEventStore {
      refuseNext = false;
      override async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
        if (this.refuseNext) {
          this.refuseNext = false;
          throw new LimitExceededError('this store takes no such append');
        }
        return super.append(request);
      }
    }
    const store = new RefusingStore();
    const writer = await openWriter(store);
    for (const accountId of ['bank', 'alice']) expect(await writer.submit(openAccount(accountId))).toMatchObject({ ok: true });
    store.refuseNext = true;
    const refused = await outcomeOf(writer.submit(transfer('refused', 'bank', 'alice', 5n)));
    expect(refused).toBeInstanceOf(WriterFailedError);
    expect((refused as Error).message).toMatch(/they were not applied/);
    expect((await allEvents(store)).some((event) => event.data['transferId'] === 'refused')).toBe(false);
    expect(await writer.submit(transfer('refused', 'bank', 'alice', 5n))).toMatchObject({ ok: true, duplicate: false });
  });
});

describe('an append the store refuses for a reason of its own (AppendRefusedError)', () => {
  it.each([
    ['retriable', true],
    ['not retriable', false],
  ] as const)('%s: its commands fail saying they were not applied, as retriable as the refusal, with it as cause; the writer goes on', async (_label, retriable) => {
    class RefusingStore extends InMemoryEventStore {
      refusal: AppendRefusedError | undefined;
      override async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
        const refusal = this.refusal;
        this.refusal = undefined;
        if (refusal !== undefined) throw refusal;
        return super.append(request);
      }
    }
    const store = new RefusingStore();
    const writer = await openWriter(store);
    for (const accountId of ['bank', 'alice']) expect(await writer.submit(openAccount(accountId))).toMatchObject({ ok: true });
    const cause = new AppendRefusedError('the inline read model refused it', new Error('underneath'), retriable);
    store.refusal = cause;
    const refused = await outcomeOf(writer.submit(transfer('refused', 'bank', 'alice', 5n)));
    expect(refused).toBeInstanceOf(WriterFailedError);
    expect(refused).toMatchObject({ code: 'writer_failed', retriable, cause });
    expect((refused as Error).message).toMatch(/they were not applied/);
    expect((await allEvents(store)).some((event) => event.data['transferId'] === 'refused')).toBe(false);
    expect(writer.account('alice')).toMatchObject({ creditsPosted: 0n });
    expect(await writer.submit(transfer('refused', 'bank', 'alice', 5n))).toMatchObject({ ok: true, duplicate: false });
    expect(writer.account('alice')).toMatchObject({ creditsPosted: 5n });
  });
});

describe('a store built on another copy of ledger-core (an application that installs its own beside the store’s)', () => {
  type ErrorClasses = typeof import('../src/errors.js');
  /** A second instance of the errors module: the classes such a store throws. Same names, codes and flags; other classes. */
  const otherCopy = async (): Promise<ErrorClasses> => {
    const path = '../src/errors.ts?another-copy';
    return (await import(/* @vite-ignore */ path)) as ErrorClasses;
  };
  type Injected = 'version_conflict' | 'duplicate_index_key' | 'store_unavailable';

  /** The in-memory store with every error it throws made of the other copy's classes. */
  class OtherCopyStore extends InMemoryEventStore {
    /** Refusals the next appends answer with, one per call, before writing anything. */
    readonly injected: Injected[] = [];
    /** Every error an append threw. */
    readonly thrown: unknown[] = [];
    appendCalls = 0;

    constructor(readonly copy: ErrorClasses) {
      super();
    }

    override async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
      this.appendCalls += 1;
      try {
        const injected = this.injected.shift();
        if (injected === 'version_conflict') throw new VersionConflictError(request.expectedVersion);
        if (injected === 'duplicate_index_key') throw new DuplicateIndexKeyError(`transfer:${String(request.events[0]?.data['transferId'])}`);
        if (injected === 'store_unavailable') throw new StoreUnavailableError('connection lost before the reply', new Error('Connection terminated unexpectedly'));
        return await super.append(request);
      } catch (error) {
        const copied = this.#copied(error);
        this.thrown.push(copied);
        throw copied;
      }
    }

    #copied(error: unknown): unknown {
      const { copy } = this;
      if (error instanceof VersionConflictError) return new copy.VersionConflictError(error.expectedVersion, error.actualVersion);
      if (error instanceof DuplicateIndexKeyError) return new copy.DuplicateIndexKeyError(error.key);
      if (error instanceof StoreUnavailableError) return new copy.StoreUnavailableError(error.message, error.cause);
      return error;
    }
  }

  const openOn = async (options: Partial<LedgerWriterOptions> = {}): Promise<{ store: OtherCopyStore; writer: LedgerWriter }> => {
    const store = new OtherCopyStore(await otherCopy());
    return { store, writer: await openWriter(store, options) };
  };
  /** What the store threw, as the writer saw it: not instances of the writer's classes. */
  const expectForeign = (store: OtherCopyStore, code: Injected): void => {
    const error = store.thrown.find((thrown) => (thrown as { code?: unknown }).code === code);
    expect(error, `the store threw ${code}`).toBeDefined();
    expect(error).not.toBeInstanceOf(LedgerError);
    expect(error).toBeInstanceOf(store.copy.LedgerError);
  };

  it('a version conflict is read as one: the writer reads the tail and decides the batch again, on the fast path and on the careful one', async () => {
    const { store, writer } = await openOn();
    await setUp(writer);
    const other = await openWriter(store);
    expect(await other.submit(transfer('other', 'bank', 'bob', 5n))).toMatchObject({ ok: true });

    // The stale writer's append hits the fence, and its batch is decided again after the tail.
    expect(await writer.submit(transfer('t1', 'alice', 'bob', 30n))).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 6 });
    expectForeign(store, 'version_conflict');
    // Refused on the fast path, then on the careful path: the third append lands.
    store.injected.push('version_conflict', 'version_conflict');
    const calls = store.appendCalls;
    expect(await writer.submit(transfer('t2', 'alice', 'bob', 20n))).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 7 });
    expect(store.appendCalls - calls).toBe(3);

    const events = await allEvents(store);
    for (const id of ['other', 't1', 't2']) expect(events.filter((event) => event.data['transferId'] === id), id).toHaveLength(1);
    expect(writer.account('alice')).toMatchObject({ debitsPosted: 50n, creditsPosted: 100n });
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: 7 });
  });

  it('a duplicate index key is read as one: a retry of a transfer memory no longer holds answers with the original outcome', async () => {
    // No transfer kept in memory: the fast path does not look a new id up, and the append's keys refuse a known one.
    const { store, writer } = await openOn({ transfersCachedMax: 0 });
    await setUp(writer);
    const original = await writer.submit(transfer('t1', 'alice', 'bob', 30n));
    expect(original).toMatchObject({ ok: true, duplicate: false });

    expect(await writer.submit(transfer('t1', 'alice', 'bob', 30n))).toEqual({ ...original, duplicate: true });
    expectForeign(store, 'duplicate_index_key');
    // A taken key refused on the careful path as well is decided again there too.
    store.injected.push('duplicate_index_key', 'duplicate_index_key');
    expect(await writer.submit(transfer('t2', 'alice', 'bob', 20n))).toMatchObject({ ok: true, duplicate: false });
    expect((await allEvents(store)).filter((event) => event.data['transferId'] === 't1')).toHaveLength(1);
    expect(writer.account('alice')).toMatchObject({ debitsPosted: 50n });
  });

  it('a refusal that outlasts the retries fails its commands as not applied, and a lost store fails them as StoreUnavailableError', async () => {
    const { store, writer } = await openOn({ conflictRetriesMax: 0 });
    await setUp(writer);
    store.injected.push('version_conflict', 'version_conflict');
    const refused = await failureOf(writer.submit(transfer('t1', 'alice', 'bob', 30n)));
    expect(refused).toBeInstanceOf(WriterFailedError);
    expect((refused as Error).message).toMatch(/they were not applied/);

    store.injected.push('store_unavailable');
    const lost = await failureOf(writer.submit(transfer('t2', 'alice', 'bob', 30n)));
    expectForeign(store, 'store_unavailable');
    expect(lost).toBeInstanceOf(StoreUnavailableError);
    expect(lost).toMatchObject({ code: 'store_unavailable', retriable: true });
    expect((lost as Error).message).toMatch(/may have been applied/);
    expect(await writer.submit(transfer('t1', 'alice', 'bob', 30n))).toMatchObject({ ok: true, duplicate: false });
  });
});

/** Counts every call to the store it wraps. */
function countingStore(inner: EventStore): { readonly store: EventStore; readonly calls: () => number } {
  let calls = 0;
  const count = <T>(result: T): T => {
    calls += 1;
    return result;
  };
  const store: EventStore = {
    append: (request) => count(inner.append(request)),
    readStream: (request) => count(inner.readStream(request)),
    readAll: (request) => count(inner.readAll(request)),
    findByIndexKeys: (request) => count(inner.findByIndexKeys(request)),
    saveSnapshot: (snapshot) => count(inner.saveSnapshot(snapshot)),
    loadSnapshot: (request) => count(inner.loadSnapshot(request)),
  };
  return { store, calls: () => calls };
}

describe('an event on the tail the writer cannot read', () => {
  /** A ledger set up by this release's writer, then written to by one that knows a currency it does not (as a newer release's might): version 5 is an account in POINTS. */
  async function ledgerWithUnreadableEvent(store: EventStore, options: Partial<LedgerWriterOptions> = {}): Promise<LedgerWriter> {
    const first = await openWriter(store, options);
    await setUp(first);
    const newer = await openWriter(store, { currencies: new CurrencyRegistry([{ code: 'POINTS', scale: 0 }]) });
    expect(await newer.submit(openAccount('loyalty', false, 'POINTS'))).toMatchObject({ ok: true, ledgerVersion: 5 });
    return first;
  }

  const expectStopped = (error: unknown): void => {
    expect(error).toBeInstanceOf(CorruptEventError);
    expect(error).toMatchObject({ code: 'corrupt_event', retriable: false, ledgerVersion: 5, tenantId: TENANT, ledgerId: LEDGER });
    expect((error as CorruptEventError).message).toMatch(/^corrupt event at ledger version 5 of ledger "main" \(tenant "acme"\): .*POINTS/);
    expect((error as CorruptEventError).reason).toMatch(/POINTS/);
  };

  it('rejects the batch that meets it with a non-retriable CorruptEventError naming the ledger, the event’s version and the codec’s reason, then stops: later submits reject at once with it, without a store call', async () => {
    const counted = countingStore(new FaultyStore());
    const first = await ledgerWithUnreadableEvent(counted.store);

    // The fast path's append is refused by the chain fence; the careful path reads the tail and meets version 5.
    const batch = await Promise.all([failureOf(first.submit(transfer('t-1', 'bank', 'bob', 1n))), failureOf(first.submit(transfer('t-2', 'bank', 'bob', 2n)))]);
    for (const error of batch) expectStopped(error);
    expect(batch[1]).toBe(batch[0]);
    expect(first.version).toBe(4);

    const callsWhenStopped = counted.calls();
    const later = await failureOf(first.submit(transfer('t-1', 'bank', 'bob', 1n)));
    expect(later).toBe(batch[0]);
    await Promise.all([first.submit(openAccount('carol')).catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 20))]);
    expect(counted.calls()).toBe(callsWhenStopped);
    expect((await allEvents(counted.store)).filter((event) => event.data['transferId'] === 't-1')).toHaveLength(0);

    await first.close();
    expect(await failureOf(first.submit(openAccount('dave')))).toBeInstanceOf(WriterClosedError);
  });

  it('commands queued behind the batch that meets it reject with the same error, after a lost reply as after a conflict', async () => {
    const faulty = new FaultyStore();
    // Five commands make three batches: the first meets the event, the other two are still queued.
    const first = await ledgerWithUnreadableEvent(faulty, { batchSizeMax: 2 });
    // The append fails with an unknown outcome, so the next batch reads the tail first.
    faulty.failBeforeCommit = 1;
    expect(await failureOf(first.submit(transfer('t-1', 'bank', 'bob', 1n)))).toBeInstanceOf(StoreUnavailableError);
    const outcomes = await Promise.all(Array.from({ length: 5 }, (_, i) => failureOf(first.submit(transfer(`t-${i}`, 'bank', 'bob', 1n)))));
    for (const error of outcomes) expectStopped(error);
    // The set-up's five appends and the failed one: the stopped writer appends nothing more.
    expect(faulty.appendCalls).toBe(6);
  });

  it('LedgerWriter.open on such a ledger rejects with the codec’s CorruptEventError at the event’s version, as before', async () => {
    const store = new FaultyStore();
    await ledgerWithUnreadableEvent(store);
    const error = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER }).then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(CorruptEventError);
    expect(error).toMatchObject({ code: 'corrupt_event', retriable: false, ledgerVersion: 5 });
    expect((error as Error).message).toMatch(/^corrupt event at ledger version 5: .*POINTS/);
  });
});

describe('an event the writer looks up in the index and cannot read', () => {
  /** An in-memory store whose index answers `key` with `damage` applied to the event that claimed it. */
  class DamagedIndexStore extends InMemoryEventStore {
    readonly damaged = new Map<string, (event: StoredEvent) => StoredEvent>();
    lookups = 0;
    override async findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
      this.lookups += 1;
      const found = await super.findByIndexKeys(request);
      for (const [key, damage] of this.damaged) {
        const event = found.get(key);
        if (event !== undefined) found.set(key, damage(event));
      }
      return found;
    }
  }

  /** As a newer release would write it: a schema version this release has no upcaster for. */
  const newerSchema = (event: StoredEvent): StoredEvent => ({ ...event, schemaVersion: 99 });

  /** A writer that holds one transfer in memory, set up (fund-alice at version 4) and then pushed past it. */
  async function writerThatForgot(store: EventStore): Promise<LedgerWriter> {
    const writer = await openWriter(store, { transfersCachedMax: 1 });
    await setUp(writer);
    for (let i = 0; i < 3; i += 1) expect(await writer.submit(transfer(`filler-${i}`, 'bank', 'bob', 1n))).toMatchObject({ ok: true });
    return writer;
  }

  const expectStoppedAt = (error: unknown, ledgerVersion: number, reason: RegExp): void => {
    expect(error).toBeInstanceOf(CorruptEventError);
    expect(error).toMatchObject({ code: 'corrupt_event', retriable: false, ledgerVersion, tenantId: TENANT, ledgerId: LEDGER });
    expect((error as CorruptEventError).message).toMatch(new RegExp(`^corrupt event at ledger version ${ledgerVersion} of ledger "main" \\(tenant "acme"\\): `));
    expect((error as CorruptEventError).reason).toMatch(reason);
    expect((error as CorruptEventError).reason).toMatch(/has stopped/);
  };

  it('a retry of a transfer memory has evicted whose event cannot be read: its batch rejects with a non-retriable CorruptEventError naming the ledger and the event, nothing is written, and the writer stops', async () => {
    const store = new DamagedIndexStore();
    const writer = await writerThatForgot(store);
    store.damaged.set('transfer:fund-alice', newerSchema);
    const before = await allEvents(store);
    const version = writer.version;

    // The retry is decided as new, the store's unique key refuses it, and the careful path looks the id up.
    const batch = await Promise.all([failureOf(writer.submit(transfer('fund-alice', 'bank', 'alice', 100n))), failureOf(writer.submit(transfer('t-new', 'bank', 'bob', 1n)))]);
    for (const error of batch) expectStoppedAt(error, 4, /no upcaster from TransferPosted v99/);
    expect(batch[1]).toBe(batch[0]);
    expect(writer.version).toBe(version);
    expect(await allEvents(store)).toEqual(before);

    // Stopped: later commands, even ones that name no stored transfer, reject at once without a lookup.
    const lookups = store.lookups;
    expect(await failureOf(writer.submit(transfer('t-later', 'bank', 'bob', 1n)))).toBe(batch[0]);
    expect(await failureOf(writer.submit(openAccount('carol')))).toBe(batch[0]);
    expect(store.lookups).toBe(lookups);
    expect(await allEvents(store)).toEqual(before);
  });

  it('a command naming an evicted transfer (a reversal) whose event cannot be read rejects with the same error, never a retriable one, however often it is sent', async () => {
    const store = new DamagedIndexStore();
    const writer = await writerThatForgot(store);
    // Damaged at rest: the amount is no longer one the currency can hold.
    store.damaged.set('transfer:fund-alice', (event) => ({ ...event, data: { ...event.data, postings: [{ accountId: 'bank', side: 'debit', amount: '1.001', currency: 'EUR' }] } }));
    const reversal: LedgerCommand = { kind: 'reverseTransfer', transferId: 'r-1', reversalOf: 'fund-alice', effectiveAtMs: undefined, reference: undefined, metadata: {} };
    const first = await failureOf(writer.submit(reversal));
    expectStoppedAt(first, 4, /./);
    expect(first).toMatchObject({ retriable: false });
    for (let i = 0; i < 3; i += 1) expect(await failureOf(writer.submit(reversal))).toBe(first);
    expect((await allEvents(store)).filter((event) => event.data['transferId'] === 'r-1')).toHaveLength(0);
  });

  it('a resolution event the index returns for a hold is read too: one of a type this release does not know stops the writer instead of reading as an expiry', async () => {
    const store = new DamagedIndexStore();
    const writer = await openWriter(store, { transfersCachedMax: 1 });
    await setUp(writer);
    expect(await writer.submit(hold('h-1', 'bank', 'bob', 5n))).toMatchObject({ ok: true, ledgerVersion: 5 });
    expect(await writer.submit(postPending('p-1', 'h-1'))).toMatchObject({ ok: true, ledgerVersion: 6 });
    for (let i = 0; i < 3; i += 1) expect(await writer.submit(transfer(`filler-${i}`, 'bank', 'bob', 1n))).toMatchObject({ ok: true });
    // A newer release's way of resolving a hold.
    store.damaged.set('resolution:h-1', (event) => ({ ...event, type: 'PendingSettled' }));
    const error = await failureOf(writer.submit(postPending('p-2', 'h-1')));
    expectStoppedAt(error, 6, /unknown event type "PendingSettled"/);
  });

  it('an index event a store itself refuses to give (corrupt_event from findByIndexKeys) stops the writer the same way', async () => {
    class RefusingIndexStore extends InMemoryEventStore {
      refuse = false;
      override async findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
        if (this.refuse) throw new CorruptEventError('row does not match its checksum', { ledgerVersion: 4 });
        return super.findByIndexKeys(request);
      }
    }
    const store = new RefusingIndexStore();
    const writer = await writerThatForgot(store);
    store.refuse = true;
    const error = await failureOf(writer.submit(transfer('fund-alice', 'bank', 'alice', 100n)));
    expectStoppedAt(error, 4, /row does not match its checksum/);
  });

  it('a transfer the index returns and the writer can read is still taken in: the retry answers with the original outcome', async () => {
    const store = new DamagedIndexStore();
    const writer = await writerThatForgot(store);
    expect(await writer.submit(transfer('fund-alice', 'bank', 'alice', 100n))).toMatchObject({ ok: true, duplicate: true, ledgerVersion: 4 });
  });
});
