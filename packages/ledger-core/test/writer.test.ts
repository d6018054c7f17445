import { afterEach, describe, expect, it } from 'vitest';
import {
  CorruptEventError,
  CurrencyRegistry,
  EXPIRIES_COMPACT_MIN,
  InvalidInputError,
  InMemoryEventStore,
  LedgerWriter,
  OverloadedError,
  WriterClosedError,
  WriterFailedError,
  readLedger,
  verifyChain,
  type AccountState,
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
const T0 = Date.parse('2025-06-01T12:00:00.000Z');

/** An in-memory store that counts what the writer asks of it and can be told to fail appends. */
class InstrumentedStore implements EventStore {
  readonly inner = new InMemoryEventStore();
  appendCalls = 0;
  /** Sizes of the appends that succeeded. */
  readonly appendedBatches: number[] = [];
  /** How many of the next appends throw `failure`. */
  failAppends = 0;
  readonly failure = new Error('store unavailable');
  indexLookups = 0;
  eventsRead = 0;

  async append(request: AppendRequest): Promise<{ readonly ledgerVersion: number }> {
    this.appendCalls += 1;
    if (this.failAppends > 0) {
      this.failAppends -= 1;
      throw this.failure;
    }
    const result = await this.inner.append(request);
    this.appendedBatches.push(request.events.length);
    return result;
  }

  async readStream(request: ReadStreamRequest): Promise<StoredEvent[]> {
    const events = await this.inner.readStream(request);
    this.eventsRead += events.length;
    return events;
  }

  readAll(request: ReadAllRequest) {
    return this.inner.readAll(request);
  }

  findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
    this.indexLookups += 1;
    return this.inner.findByIndexKeys(request);
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    return this.inner.saveSnapshot(snapshot);
  }

  loadSnapshot(request: { readonly tenantId: string; readonly ledgerId: string }): Promise<Snapshot | null> {
    return this.inner.loadSnapshot(request);
  }
}

/** The same stream, read without its snapshot: a writer opened on it folds every event. */
class CopyWithoutSnapshot implements EventStore {
  constructor(readonly inner: EventStore) {}
  append(request: AppendRequest): Promise<{ readonly ledgerVersion: number }> {
    return this.inner.append(request);
  }
  readStream(request: ReadStreamRequest): Promise<StoredEvent[]> {
    return this.inner.readStream(request);
  }
  readAll(request: ReadAllRequest) {
    return this.inner.readAll(request);
  }
  findByIndexKeys(request: FindByIndexKeysRequest): Promise<Map<string, StoredEvent>> {
    return this.inner.findByIndexKeys(request);
  }
  async saveSnapshot(): Promise<void> {}
  async loadSnapshot(): Promise<Snapshot | null> {
    return null;
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

function openAccount(accountId: string, flags: { noOverdraft?: boolean } = {}): LedgerCommand {
  return {
    kind: 'openAccount',
    accountId,
    currency: 'EUR',
    type: accountId === 'bank' ? 'asset' : 'liability',
    flags: { debitsMustNotExceedCredits: flags.noOverdraft ?? false, creditsMustNotExceedDebits: false },
    metadata: {},
  };
}

function transfer(transferId: string, from: string, to: string, amount: bigint, extra: Partial<TransferCommand> = {}): TransferCommand {
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
    ...extra,
  };
}

const hold = (transferId: string, from: string, to: string, amount: bigint, timeoutMs?: number): TransferCommand =>
  transfer(transferId, from, to, amount, { pending: { timeoutMs } });

const postPending = (transferId: string, pendingId: string, amount?: bigint): LedgerCommand => ({
  kind: 'postPending',
  transferId,
  pendingId,
  currency: amount === undefined ? undefined : 'EUR',
  amount,
  effectiveAtMs: undefined,
  metadata: {},
});

const reverse = (transferId: string, reversalOf: string): LedgerCommand => ({
  kind: 'reverseTransfer',
  transferId,
  reversalOf,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
});

/** Opens bank, alice (no overdraft) and bob, and funds alice with `funds`. */
async function setUp(writer: LedgerWriter, funds = 1_000n): Promise<void> {
  for (const command of [openAccount('bank'), openAccount('alice', { noOverdraft: true }), openAccount('bob'), transfer('fund-alice', 'bank', 'alice', funds)]) {
    expect(await writer.submit(command)).toMatchObject({ ok: true });
  }
}

async function allEvents(store: EventStore): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for await (const event of readLedger({ store, tenantId: TENANT, ledgerId: LEDGER })) events.push(event);
  return events;
}

const sorted = (accounts: AccountState[]): AccountState[] => [...accounts].sort((a, b) => (a.id < b.id ? -1 : 1));

function code(result: CommandResult): string {
  return result.ok ? 'ok' : result.code;
}

async function eventually(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('batching', () => {
  it('concurrent submits are decided and appended together: 200 transfers take one append', async () => {
    const store = new InstrumentedStore();
    const writer = await openWriter(store);
    await setUp(writer);
    const before = store.appendCalls;
    const versionBefore = writer.version;

    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => writer.submit(transfer(`t${i}`, 'bank', 'bob', 1n))));

    expect(results.every((r) => r.ok && !r.duplicate)).toBe(true);
    expect(store.appendCalls - before).toBe(1);
    const versions = results.map((r) => (r.ok ? r.ledgerVersion : -1));
    expect(versions).toEqual(Array.from({ length: 200 }, (_, i) => versionBefore + 1 + i));
    expect(writer.account('bob')?.creditsPosted).toBe(200n);
  });

  it('batches never exceed batchSizeMax: 200 concurrent transfers with batchSizeMax 50 take four appends of 50', async () => {
    const store = new InstrumentedStore();
    const writer = await openWriter(store, { batchSizeMax: 50 });
    await setUp(writer);
    const appendedBefore = store.appendedBatches.length;

    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => writer.submit(transfer(`t${i}`, 'bank', 'bob', 1n))));

    expect(results.every((r) => r.ok)).toBe(true);
    expect(store.appendedBatches.slice(appendedBefore)).toEqual([50, 50, 50, 50]);
  });

  it('one rejected command does not fail the others of its batch; a linked group fails only as a whole', async () => {
    const store = new InstrumentedStore();
    const writer = await openWriter(store);
    await setUp(writer, 100n);
    const before = store.appendCalls;
    const versionBefore = writer.version;

    const results = await Promise.all([
      writer.submit(transfer('a', 'bank', 'bob', 5n)),
      writer.submit(transfer('b', 'nobody', 'bob', 5n)),
      writer.submit(transfer('c', 'alice', 'bob', 60n)),
      writer.submit(transfer('d', 'alice', 'bob', 60n)), // only 40 left after c
      writer.submit({ kind: 'linked', commands: [transfer('e1', 'bank', 'bob', 1n), transfer('e2', 'alice', 'bob', 41n)] }),
      writer.submit(transfer('f', 'alice', 'bob', 40n)),
    ]);

    expect(results.map(code)).toEqual(['ok', 'account_not_found', 'ok', 'insufficient_funds', 'insufficient_funds', 'ok']);
    expect(results[4]?.members?.map(code)).toEqual(['linked_group_failed', 'insufficient_funds']);
    expect(results.filter((r) => r.ok).map((r) => (r.ok ? r.ledgerVersion : 0))).toEqual([versionBefore + 1, versionBefore + 2, versionBefore + 3]);
    expect(store.appendCalls - before).toBe(1);
    expect(writer.account('alice')?.debitsPosted).toBe(100n);
    // The failed group left nothing behind: its accepted member's id is still free.
    expect(await writer.submit(transfer('e1', 'bank', 'bob', 1n))).toMatchObject({ ok: true, duplicate: false });
  });

  it('retrying a whole linked group answers duplicate: true with the original version and writes nothing', async () => {
    const writer = await openWriter(new InMemoryEventStore());
    await setUp(writer);
    const group: LedgerCommand = { kind: 'linked', commands: [transfer('g1', 'alice', 'bob', 10n), hold('g2', 'alice', 'bob', 5n)] };
    const first = await writer.submit(group);
    expect(first).toMatchObject({ ok: true, duplicate: false });
    const version = writer.version;

    const again = await writer.submit(group);

    expect(again).toEqual({ ...first, duplicate: true, members: first.members?.map((member) => ({ ...member, duplicate: true })) });
    expect(writer.version).toBe(version);
  });
});

describe('back-pressure and shutdown', () => {
  it('a full queue rejects the next submit at once with a retriable OverloadedError, and the queued commands still complete', async () => {
    const writer = await openWriter(new InMemoryEventStore(), { queueLengthMax: 2 });
    await setUp(writer);
    const settled: string[] = [];
    const first = writer.submit(transfer('q1', 'bank', 'bob', 1n)).then((r) => (settled.push('q1'), r));
    const second = writer.submit(transfer('q2', 'bank', 'bob', 1n)).then((r) => (settled.push('q2'), r));

    const error = await writer.submit(transfer('q3', 'bank', 'bob', 1n)).catch((e: unknown) => e);
    settled.push('q3');

    expect(error).toBeInstanceOf(OverloadedError);
    expect(error).toMatchObject({ code: 'overloaded', retriable: true });
    expect((await first).ok && (await second).ok).toBe(true);
    expect(settled).toEqual(['q3', 'q1', 'q2']);
    // Once the queue drains, the writer takes commands again.
    expect(await writer.submit(transfer('q3', 'bank', 'bob', 1n))).toMatchObject({ ok: true });
  });

  it('submit after close rejects with WriterClosedError', async () => {
    const writer = await openWriter(new InMemoryEventStore());
    await setUp(writer);
    await writer.close();

    await expect(writer.submit(transfer('late', 'bank', 'bob', 1n))).rejects.toBeInstanceOf(WriterClosedError);
    await expect(writer.submit(transfer('late', 'bank', 'bob', 1n))).rejects.toMatchObject({ code: 'writer_closed', retriable: false });
  });

  it('close() resolves only after every queued command is decided and appended', async () => {
    const store = new InMemoryEventStore();
    const writer = await openWriter(store, { batchSizeMax: 3, batchWaitMs: 50 });
    await setUp(writer);
    const versionBefore = writer.version;
    const outcomes: (CommandResult | undefined)[] = Array.from({ length: 10 }, () => undefined);
    const pending = Array.from({ length: 10 }, (_, i) => writer.submit(transfer(`d${i}`, 'bank', 'bob', 1n)).then((r) => (outcomes[i] = r)));

    await writer.close();

    expect(outcomes.every((r) => r?.ok === true)).toBe(true);
    expect(writer.version).toBe(versionBefore + 10);
    expect((await allEvents(store)).length).toBe(versionBefore + 10);
    await Promise.all(pending);
  });
});

describe('store failures', () => {
  it('when the store append throws, every command of the batch rejects with a retriable WriterFailedError, nothing is written, the state is unchanged, and the next batch succeeds', async () => {
    const store = new InstrumentedStore();
    const writer = await openWriter(store);
    await setUp(writer);
    expect(await writer.submit(transfer('pay-bob', 'bank', 'bob', 10n))).toMatchObject({ ok: true });
    const accountsBefore = sorted(writer.accounts());
    const versionBefore = writer.version;
    const hashBefore = writer.lastHash;
    const batch: LedgerCommand[] = [transfer('x1', 'alice', 'bob', 300n), hold('x2', 'alice', 'bob', 200n, 1_000), openAccount('carol'), reverse('x3', 'pay-bob')];

    store.failAppends = 1;
    const failed = await Promise.all(batch.map((command) => writer.submit(command).then(() => undefined, (error: unknown) => error)));

    for (const error of failed) {
      expect(error).toBeInstanceOf(WriterFailedError);
      expect(error).toMatchObject({ code: 'writer_failed', retriable: true, cause: store.failure });
    }
    expect((await allEvents(store)).length).toBe(versionBefore);
    expect(writer.version).toBe(versionBefore);
    expect(writer.lastHash).toBe(hashBefore);
    expect(sorted(writer.accounts())).toEqual(accountsBefore);
    expect(writer.pendingHold('x2')).toBeUndefined();
    expect(writer.account('carol')).toBeUndefined();

    const retried = await Promise.all(batch.map((command) => writer.submit(command)));
    expect(retried.map((r) => (r.ok ? [r.ledgerVersion, r.duplicate] : r.code))).toEqual([
      [versionBefore + 1, false],
      [versionBefore + 2, false],
      [versionBefore + 3, false],
      [versionBefore + 4, false],
    ]);
    expect(await verifyChain(await allEvents(store))).toMatchObject({ ok: true, eventCount: versionBefore + 4 });
  });
});

describe('two writers on one ledger', () => {
  it('a stale writer whose append conflicts catches up and re-decides, so the same funds are never spent twice', async () => {
    const store = new InMemoryEventStore();
    const first = await openWriter(store);
    await setUp(first, 100n);
    const second = await openWriter(store);
    expect(second.version).toBe(first.version);

    // The second writer appends first; the first still believes alice has 100.
    expect(await second.submit(transfer('spend-b', 'alice', 'bob', 100n))).toMatchObject({ ok: true });
    const stale = await first.submit(transfer('spend-a', 'alice', 'bob', 100n));

    expect(stale).toMatchObject({ ok: false, code: 'insufficient_funds' });
    expect(first.version).toBe(second.version);
    expect(sorted(first.accounts())).toEqual(sorted(second.accounts()));
    const spends = (await allEvents(store)).filter((e) => e.type === 'TransferPosted' && String(e.data['transferId']).startsWith('spend'));
    expect(spends.map((e) => e.data['transferId'])).toEqual(['spend-b']);
  });

  it('two writers spending the same funds at the same moment: exactly one succeeds', async () => {
    const store = new InMemoryEventStore();
    const first = await openWriter(store);
    await setUp(first, 100n);
    const second = await openWriter(store);

    const results = await Promise.all([first.submit(transfer('race-a', 'alice', 'bob', 70n)), second.submit(transfer('race-b', 'alice', 'bob', 70n))]);

    expect(results.map(code).sort()).toEqual(['insufficient_funds', 'ok']);
    expect(sorted(first.accounts())).toEqual(sorted(second.accounts()));
    expect(first.account('alice')?.debitsPosted).toBe(70n);
    expect(await verifyChain(await allEvents(store))).toMatchObject({ ok: true });
  });

  it("a stale writer retrying the other writer's transfer id gets the original outcome as a duplicate", async () => {
    const store = new InMemoryEventStore();
    const first = await openWriter(store);
    await setUp(first);
    const second = await openWriter(store);
    const original = await second.submit(transfer('shared', 'alice', 'bob', 10n));

    const retry = await first.submit(transfer('shared', 'alice', 'bob', 10n));

    expect(retry).toEqual({ ...original, duplicate: true });
    expect((await allEvents(store)).filter((e) => e.data['transferId'] === 'shared')).toHaveLength(1);
  });
});

describe('snapshots and restart', () => {
  it('a snapshot is not used by a writer whose registry gives one of its currencies another scale: it opens as it would with no snapshot', async () => {
    const store = new InstrumentedStore();
    const tok = (scale: number) => new CurrencyRegistry([{ code: 'TOK', scale }]);
    const inTok = (command: TransferCommand): TransferCommand => ({ ...command, postings: command.postings.map((p) => ({ ...p, currency: 'TOK' })) });
    const first = await openWriter(store, { currencies: tok(2), snapshotEveryEvents: 0 });
    for (const accountId of ['bank', 'alice']) {
      const open = openAccount(accountId, { noOverdraft: accountId === 'alice' });
      expect(await first.submit(open.kind === 'openAccount' ? { ...open, currency: 'TOK' } : open)).toMatchObject({ ok: true });
    }
    // 1.50 TOK posted and 0.25 TOK held (minor units at scale 2), then a snapshot of it.
    expect(await first.submit(inTok(transfer('fund', 'bank', 'alice', 150n)))).toMatchObject({ ok: true });
    expect(await first.submit(inTok(hold('held', 'alice', 'bank', 25n)))).toMatchObject({ ok: true });
    await first.saveSnapshot();
    await first.close();
    expect((await store.loadSnapshot({ tenantId: TENANT, ledgerId: LEDGER }))?.state['scales']).toEqual({ TOK: 2 });

    const balancesOf = (writer: LedgerWriter) => sorted(writer.accounts()).map((a) => [a.id, a.creditsPosted, a.debitsPosted, a.debitsPending]);
    // The same scale: the snapshot is used (only the event at its version is read).
    store.eventsRead = 0;
    const same = await openWriter(store, { currencies: tok(2), snapshotEveryEvents: 0 });
    expect(store.eventsRead).toBe(1);
    expect(balancesOf(same)).toEqual([['alice', 150n, 0n, 25n], ['bank', 0n, 150n, 0n]]);
    await same.close();

    // A larger scale: the log's decimal amounts read at scale 4 (1.5000 and 0.2500), as with no snapshot;
    // the snapshot's minor units would have read as 0.0150 and 0.0025.
    store.eventsRead = 0;
    const wider = await openWriter(store, { currencies: tok(4), snapshotEveryEvents: 0 });
    // The event at the snapshot's version (read to check its hash), then all four from the start.
    expect(store.eventsRead).toBe(1 + 4);
    const replayed = await openWriter(new CopyWithoutSnapshot(store), { currencies: tok(4), snapshotEveryEvents: 0 });
    expect(balancesOf(wider)).toEqual([['alice', 15_000n, 0n, 2_500n], ['bank', 0n, 15_000n, 0n]]);
    expect(balancesOf(wider)).toEqual(balancesOf(replayed));
    // So alice, who may not overdraw, cannot spend what she does not have.
    expect(await wider.submit(inTok(transfer('too-much', 'alice', 'bank', 12_501n)))).toMatchObject({ ok: false, code: 'insufficient_funds' });
    await wider.close();
    await replayed.close();

    // A smaller scale: the log's 1.50 does not fit scale 0, so the open fails as it does with no
    // snapshot, instead of reading 150 minor units as 150 TOK.
    await expect(LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER, currencies: tok(0) })).rejects.toThrow(CorruptEventError);
    await expect(LedgerWriter.open({ store: new CopyWithoutSnapshot(store), tenantId: TENANT, ledgerId: LEDGER, currencies: tok(0) })).rejects.toThrow(CorruptEventError);
  });

  it('a writer restarted from a snapshot has the same balances, reads only the tail, answers retries of evicted transfers from the index, and refuses to reverse twice', async () => {
    const store = new InstrumentedStore();
    const options = { snapshotEveryEvents: 5, transfersCachedMax: 3 } as const;
    const writer = await openWriter(store, options);
    await setUp(writer);
    const old = await writer.submit(transfer('t-old', 'bank', 'alice', 1_000n));
    expect(await writer.submit(transfer('t-old2', 'bank', 'alice', 500n))).toMatchObject({ ok: true });
    const reversal = await writer.submit(reverse('r-old2', 't-old2'));
    expect(reversal).toMatchObject({ ok: true });
    for (let i = 0; i < 20; i += 1) expect(await writer.submit(transfer(`filler-${i}`, 'bank', 'bob', 1n))).toMatchObject({ ok: true });
    expect(await writer.submit(hold('h-open', 'alice', 'bob', 100n))).toMatchObject({ ok: true });
    expect(await writer.submit(hold('h-timed', 'alice', 'bob', 50n, 3_600_000))).toMatchObject({ ok: true });
    for (let i = 20; i < 27; i += 1) expect(await writer.submit(transfer(`filler-${i}`, 'bank', 'bob', 1n))).toMatchObject({ ok: true });

    // Even before the restart, an evicted transfer is answered through the index.
    const lookupsBefore = store.indexLookups;
    expect(await writer.submit(transfer('t-old', 'bank', 'alice', 1_000n))).toEqual({ ...old, duplicate: true });
    expect(store.indexLookups).toBeGreaterThan(lookupsBefore);

    const accounts = sorted(writer.accounts());
    const version = writer.version;
    const lastHash = writer.lastHash;
    await writer.close();
    const snapshot = await store.loadSnapshot({ tenantId: TENANT, ledgerId: LEDGER });
    expect(snapshot?.ledgerVersion).toBeGreaterThan(version - 5);

    store.eventsRead = 0;
    const restarted = await openWriter(store, options);

    expect(store.eventsRead).toBeLessThanOrEqual(version - (snapshot?.ledgerVersion ?? 0) + 1);
    expect(restarted.version).toBe(version);
    expect(restarted.lastHash).toBe(lastHash);
    expect(sorted(restarted.accounts())).toEqual(accounts);
    expect(restarted.pendingHold('h-open')?.postings).toEqual(hold('h-open', 'alice', 'bob', 100n).postings);
    expect(restarted.pendingHold('h-timed')?.timeoutMs).toBe(3_600_000);

    const lookups = store.indexLookups;
    expect(await restarted.submit(transfer('t-old', 'bank', 'alice', 1_000n))).toEqual({ ...old, duplicate: true });
    expect(store.indexLookups).toBeGreaterThan(lookups);
    expect(await restarted.submit(transfer('t-old', 'bank', 'alice', 999n))).toMatchObject({ ok: false, code: 'exists_with_different_amount' });
    expect(await restarted.submit(reverse('r-again', 't-old2'))).toMatchObject({ ok: false, code: 'transfer_already_reversed' });
    expect(await restarted.submit(reverse('r-old2', 't-old2'))).toEqual({ ...reversal, duplicate: true });
    expect(await restarted.submit(postPending('p-open', 'h-open', 60n))).toMatchObject({ ok: true, duplicate: false });
    // alice: 500 debited by the reversal of t-old2, 60 by the partial post; 50 still held.
    expect(restarted.account('alice')).toMatchObject({ debitsPosted: 560n, debitsPending: 50n });
    expect(restarted.version).toBe(version + 1);
  });
});

describe('time', () => {
  it("holds expire through the writer's own timer once the clock passes their timeout, as a PendingExpired event", async () => {
    let now = T0;
    const store = new InMemoryEventStore();
    const writer = await openWriter(store, { clock: () => now, expiryCheckIntervalMs: 10 });
    await setUp(writer);
    expect(await writer.submit(hold('h', 'alice', 'bob', 300n, 1_000))).toMatchObject({ ok: true });
    const version = writer.version;

    now += 999;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(writer.pendingHold('h')).toBeDefined();
    expect(writer.version).toBe(version);

    now += 1;
    await eventually(() => writer.pendingHold('h') === undefined);

    const last = (await allEvents(store)).at(-1);
    expect(last).toMatchObject({ type: 'PendingExpired', ledgerVersion: version + 1, data: { pendingId: 'h' }, recordedAt: new Date(T0 + 1_000).toISOString() });
    expect(writer.account('alice')).toMatchObject({ debitsPending: 0n, debitsPosted: 0n, creditsPosted: 1_000n });
    expect(writer.account('bob')).toMatchObject({ creditsPending: 0n });
    expect(await writer.submit(postPending('p', 'h'))).toMatchObject({ ok: false, code: 'pending_already_resolved' });
  });

  it('holds posted before their timeout are not kept for it: the timeouts tracked stay about twice the open holds, and an open hold still expires', async () => {
    let now = T0;
    const store = new InMemoryEventStore();
    const writer = await openWriter(store, { clock: () => now, expiryCheckIntervalMs: 10 });
    await setUp(writer);
    const DAY = 86_400_000;
    expect(await writer.submit(hold('open', 'alice', 'bob', 1n, 7 * DAY))).toMatchObject({ ok: true });
    // Card authorisations captured minutes later: each hold has a week's timeout and is posted at once.
    const held = 4 * EXPIRIES_COMPACT_MIN;
    for (let start = 0; start < held; start += 1_000) {
      const ids = Array.from({ length: 1_000 }, (_, n) => `auth-${start + n}`);
      const holds = await Promise.all(ids.map((id) => writer.submit(hold(id, 'bank', 'bob', 1n, 7 * DAY))));
      expect(holds.every((result) => result.ok)).toBe(true);
      const posts = await Promise.all(ids.map((id) => writer.submit(postPending(`cap-${id}`, id))));
      expect(posts.every((result) => result.ok)).toBe(true);
    }
    // Every one was tracked until its week was up; now only the open hold is, within the slack.
    expect(writer.holdTimeoutsTracked).toBeLessThanOrEqual(2 * EXPIRIES_COMPACT_MIN);
    now += 7 * DAY;
    await eventually(() => writer.pendingHold('open') === undefined);
    expect((await allEvents(store)).at(-1)).toMatchObject({ type: 'PendingExpired', data: { pendingId: 'open' } });
  });

  it('a reopened writer tracks the timeout of each open hold once, whether the hold came from the snapshot or the tail', async () => {
    let now = T0;
    const store = new InMemoryEventStore();
    const first = await openWriter(store, { clock: () => now, snapshotEveryEvents: 0 });
    await setUp(first);
    for (const command of [hold('snap-1', 'alice', 'bob', 1n, 60_000), hold('snap-2', 'alice', 'bob', 1n, 60_000), hold('snap-open', 'alice', 'bob', 1n)]) {
      expect(await first.submit(command)).toMatchObject({ ok: true });
    }
    await first.saveSnapshot();
    // After the snapshot: two more timed holds, one of them posted at once, and one without a timeout.
    for (const command of [hold('tail-1', 'alice', 'bob', 1n, 60_000), hold('tail-posted', 'alice', 'bob', 1n, 60_000), postPending('cap', 'tail-posted'), hold('tail-open', 'alice', 'bob', 1n)]) {
      expect(await first.submit(command)).toMatchObject({ ok: true });
    }
    expect(first.holdTimeoutsTracked).toBe(4);
    await first.close();

    // From the snapshot plus the tail, then from the whole stream: snap-1, snap-2 and tail-1 are open with a timeout.
    const fromSnapshot = await openWriter(store, { clock: () => now, snapshotEveryEvents: 0 });
    expect(fromSnapshot.holdTimeoutsTracked).toBe(3);
    await fromSnapshot.close();
    const fromScratch = await openWriter(new CopyWithoutSnapshot(store), { clock: () => now, snapshotEveryEvents: 0, expiryCheckIntervalMs: 10 });
    expect(fromScratch.holdTimeoutsTracked).toBe(3);

    // Each one still expires, once.
    now += 60_000;
    await eventually(() => fromScratch.pendingHold('tail-1') === undefined && fromScratch.pendingHold('snap-1') === undefined && fromScratch.pendingHold('snap-2') === undefined);
    await fromScratch.close();
    const expired = (await allEvents(store)).filter((event) => event.type === 'PendingExpired').map((event) => event.data['pendingId']);
    expect(expired.sort()).toEqual(['snap-1', 'snap-2', 'tail-1']);
  });

  it('an expiry whose batch the store fails is retried by the timer, not lost', async () => {
    let now = T0;
    const store = new InstrumentedStore();
    const writer = await openWriter(store, { clock: () => now, expiryCheckIntervalMs: 10 });
    await setUp(writer);
    expect(await writer.submit(hold('h', 'alice', 'bob', 300n, 1_000))).toMatchObject({ ok: true });
    const failedBefore = store.appendCalls;

    store.failAppends = 1;
    now += 1_000;
    await eventually(() => writer.pendingHold('h') === undefined);

    expect(store.appendCalls - failedBefore).toBeGreaterThanOrEqual(2);
    expect((await allEvents(store)).at(-1)).toMatchObject({ type: 'PendingExpired', data: { pendingId: 'h' } });
    expect(writer.account('alice')?.debitsPending).toBe(0n);
  });

  it('recorded time never goes backwards, even when the clock does', async () => {
    let now = T0;
    const store = new InMemoryEventStore();
    const writer = await openWriter(store, { clock: () => now });
    await setUp(writer);

    now = T0 - 60_000;
    const behind = await writer.submit(transfer('behind', 'bank', 'bob', 1n));
    now = T0 - 120_000;
    const further = await writer.submit(hold('further', 'bank', 'bob', 1n, 1_000));
    now = T0 + 5;
    const ahead = await writer.submit(transfer('ahead', 'bank', 'bob', 1n));

    expect(behind).toMatchObject({ ok: true, recordedAt: new Date(T0).toISOString() });
    expect(further).toMatchObject({ ok: true, recordedAt: new Date(T0).toISOString() });
    expect(ahead).toMatchObject({ ok: true, recordedAt: new Date(T0 + 5).toISOString() });
    const events = await allEvents(store);
    for (let i = 1; i < events.length; i += 1) {
      expect(Date.parse((events[i] as StoredEvent).recordedAt)).toBeGreaterThanOrEqual(Date.parse((events[i - 1] as StoredEvent).recordedAt));
    }
    // The hold's timeout counts from its recorded time, not from the clock that was behind.
    expect(writer.pendingHold('further')?.timeoutAtMs).toBe(T0 + 1_000);
  });
});

describe('the clock and the other collaborators given to open', () => {
  it('a clock with a fraction of a millisecond is read as whole milliseconds: the live writer and one reopened on its log answer alike', async () => {
    const store = new InMemoryEventStore();
    const clock = () => T0 + 0.6;
    const live = await openWriter(store, { clock });
    await live.submit(openAccount('bank'));
    await live.submit(openAccount('bob'));
    const first = await live.submit(transfer('t1', 'bank', 'bob', 5n));
    expect(first).toMatchObject({ ok: true, recordedAt: new Date(T0).toISOString() });
    // A retry naming the time the ledger answered with as its effective time is the same transfer.
    const retry = transfer('t1', 'bank', 'bob', 5n, { effectiveAtMs: T0 });
    expect(await live.submit(retry)).toMatchObject({ ok: true, duplicate: true });
    // A transfer effective at the instant the account was opened is allowed, live and reopened.
    expect(await live.submit(transfer('t2', 'bank', 'bob', 1n, { effectiveAtMs: T0 }))).toMatchObject({ ok: true });
    await live.close();
    const reopened = await openWriter(store, { clock });
    expect(await reopened.submit(retry)).toMatchObject({ ok: true, duplicate: true });
    expect(await reopened.submit(transfer('t3', 'bank', 'bob', 1n, { effectiveAtMs: T0 }))).toMatchObject({ ok: true });
  });

  it('a clock reading no time can be recorded at fails the batch with a WriterFailedError that is not retriable, naming the clock; the writer goes on once it reads well', async () => {
    let reading: unknown = Number.NaN;
    const writer = await openWriter(new InMemoryEventStore(), { clock: () => reading as number });
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1e20, -1, '2025']) {
      reading = bad;
      const error = await writer.submit(openAccount('bank')).catch((caught: unknown) => caught);
      expect(error, String(bad)).toBeInstanceOf(WriterFailedError);
      expect(error, String(bad)).toMatchObject({ retriable: false, message: expect.stringContaining('clock') });
    }
    reading = T0;
    expect(await writer.submit(openAccount('bank'))).toMatchObject({ ok: true, recordedAt: new Date(T0).toISOString() });
  });

  it('open refuses a clock that is not a function, a store that is not one and currencies that are not a registry, with InvalidInputError at each', async () => {
    const pathOf = async (options: Partial<LedgerWriterOptions>): Promise<unknown> => {
      const error = await LedgerWriter.open({ store: new InMemoryEventStore(), tenantId: TENANT, ledgerId: LEDGER, ...options }).then(
        async (writer) => {
          await writer.close();
          return 'opened';
        },
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(InvalidInputError);
      return (error as InvalidInputError).issues[0]?.path;
    };
    expect(await pathOf({ clock: 5 as unknown as () => number })).toEqual(['clock']);
    expect(await pathOf({ store: null as unknown as EventStore })).toEqual(['store']);
    expect(await pathOf({ store: {} as EventStore })).toEqual(['store']);
    expect(await pathOf({ currencies: {} as never })).toEqual(['currencies']);
  });
});
