import { describe, expect, it } from 'vitest';
import {
  ChainBrokenError,
  CurrencyRegistry,
  EventCodec,
  GENESIS_HASH,
  InMemoryEventStore,
  InvalidInputError,
  Ledger,
  LimitExceededError,
  copyLedger,
  hashEvent,
  replayLedger,
  type EventStore,
  type LedgerSource,
  type ReadStreamRequest,
  type StoredEvent,
} from '@ledgerkit/ledger-core';

const TENANT = 'acme';
const LEDGER = 'eur';

/** A ledger on its own store with every kind of event, a snapshot taken every 10 events. */
async function sourceLedger(): Promise<{ store: InMemoryEventStore; ledger: Ledger }> {
  const store = new InMemoryEventStore();
  const ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId: LEDGER, snapshotEveryEvents: 10 });
  const ok = async (result: Promise<{ ok: boolean }>): Promise<void> => {
    expect(await result).toMatchObject({ ok: true });
  };
  await ok(ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }));
  for (const id of ['alice', 'bob']) await ok(ledger.openAccount({ accountId: id, currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } }));
  for (let n = 0; n < 12; n += 1) {
    await ok(ledger.transfer({ transferId: `t${n}`, debitAccountId: 'cash', creditAccountId: n % 2 === 0 ? 'alice' : 'bob', amount: `${n + 1}.25`, currency: 'EUR', metadata: { note: `n${n}` } }));
  }
  await ok(ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '2.00', currency: 'EUR', timeoutMs: 60_000 }));
  await ok(ledger.postPending({ transferId: 'p1', pendingId: 'h1' }));
  await ok(ledger.hold({ transferId: 'h2', debitAccountId: 'bob', creditAccountId: 'alice', amount: '1.00', currency: 'EUR', timeoutMs: 60_000 }));
  await ok(ledger.voidPending({ transferId: 'v2', pendingId: 'h2' }));
  await ok(ledger.reverse({ transferId: 'r3', reversalOf: 't3' }));
  await ok(ledger.freezeAccount({ accountId: 'bob', reason: 'review' }));
  return { store, ledger };
}

async function streamOf(store: EventStore): Promise<StoredEvent[]> {
  return store.readStream({ tenantId: TENANT, ledgerId: LEDGER, direction: 'forward', limit: 10_000 });
}

/** `store` read through a change to its events (the rest of the port as it is). */
function readingThrough(store: EventStore, change: (events: StoredEvent[]) => StoredEvent[]): EventStore {
  return {
    append: (request) => store.append(request),
    readStream: async (request: ReadStreamRequest) => {
      const all = change(await streamOf(store));
      const from = request.fromVersion ?? 1;
      return all.filter((event) => event.ledgerVersion >= from).slice(0, request.limit);
    },
    readAll: (request) => store.readAll(request),
    findByIndexKeys: (request) => store.findByIndexKeys(request),
    saveSnapshot: (snapshot) => store.saveSnapshot(snapshot),
    loadSnapshot: (request) => store.loadSnapshot(request),
  };
}

/** The chain hashed again from `from` on, after `events[from]` was changed. */
function relinked(events: readonly StoredEvent[], from: number): StoredEvent[] {
  const out = events.slice(0, from);
  let previousHash = from === 0 ? GENESIS_HASH : (events[from - 1] as StoredEvent).hash;
  for (const event of events.slice(from)) {
    const { hash: _hash, ...unhashed } = { ...event, previousHash };
    const hash = hashEvent(unhashed);
    out.push({ ...unhashed, hash });
    previousHash = hash;
  }
  return out;
}

describe('copyLedger', () => {
  it('copies every event and the snapshot in batches: the target reads back the same stream, replays to the same state, and a writer opened on it carries on', async () => {
    const { store, ledger } = await sourceLedger();
    const source = await streamOf(store);
    const target = new InMemoryEventStore();
    const result = await copyLedger({ from: store, to: target, tenantId: TENANT, ledgerId: LEDGER, batchSize: 7 });
    const last = source[source.length - 1] as StoredEvent;
    expect(result).toEqual({ eventsCopied: source.length, ledgerVersion: last.ledgerVersion, hash: last.hash, snapshotCopied: true });
    expect(await streamOf(target)).toEqual(source);
    expect(await target.loadSnapshot({ tenantId: TENANT, ledgerId: LEDGER })).toEqual(await store.loadSnapshot({ tenantId: TENANT, ledgerId: LEDGER }));
    const codec = new EventCodec({ currencies: new CurrencyRegistry() });
    const at = (s: EventStore): LedgerSource => ({ store: s, tenantId: TENANT, ledgerId: LEDGER, codec });
    expect(await replayLedger(at(target))).toEqual(await replayLedger(at(store)));
    const moved = await Ledger.open({ store: target, tenantId: TENANT, ledgerId: LEDGER });
    for (const id of ['cash', 'alice', 'bob']) expect(moved.balance(id)).toEqual(ledger.balance(id));
    expect(await moved.transfer({ transferId: 't-after-move', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' })).toMatchObject({ ok: true });
    // An id used before the move is still known after it.
    expect(await moved.transfer({ transferId: 't0', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.25', currency: 'EUR', metadata: { note: 'n0' } })).toMatchObject({ ok: true, duplicate: true });
    expect((await moved.verifyChain()).ok).toBe(true);
    await moved.close();
    await ledger.close();
  });

  it('is resumable: a second call copies only what the source gained since, and a call with nothing new copies nothing', async () => {
    const { store, ledger } = await sourceLedger();
    const target = new InMemoryEventStore();
    const first = await copyLedger({ from: store, to: target, tenantId: TENANT, ledgerId: LEDGER });
    expect(await ledger.transfer({ transferId: 'late', debitAccountId: 'cash', creditAccountId: 'alice', amount: '3.00', currency: 'EUR' })).toMatchObject({ ok: true });
    const second = await copyLedger({ from: store, to: target, tenantId: TENANT, ledgerId: LEDGER });
    expect(second.eventsCopied).toBe(1);
    expect(second.ledgerVersion).toBe(first.ledgerVersion + 1);
    expect(await streamOf(target)).toEqual(await streamOf(store));
    expect(await copyLedger({ from: store, to: target, tenantId: TENANT, ledgerId: LEDGER })).toMatchObject({ eventsCopied: 0, ledgerVersion: second.ledgerVersion, snapshotCopied: false });
    await ledger.close();
  });

  it('refuses a target that holds another stream, appending nothing', async () => {
    const { store, ledger } = await sourceLedger();
    const target = new InMemoryEventStore();
    const other = await Ledger.open({ store: target, tenantId: TENANT, ledgerId: LEDGER });
    expect(await other.openAccount({ accountId: 'elsewhere', currency: 'EUR', type: 'asset' })).toMatchObject({ ok: true });
    await other.close();
    const before = await streamOf(target);
    await expect(copyLedger({ from: store, to: target, tenantId: TENANT, ledgerId: LEDGER })).rejects.toBeInstanceOf(ChainBrokenError);
    expect(await streamOf(target)).toEqual(before);
    await ledger.close();
  });

  it('stops at a source event whose hash or link does not hold (ChainBrokenError), keeping the batches before it', async () => {
    const { store, ledger } = await sourceLedger();
    const events = await streamOf(store);
    const tampered = readingThrough(store, (all) => all.map((event) => (event.ledgerVersion === 9 ? { ...event, metadata: { note: 'edited' } } : event)));
    const target = new InMemoryEventStore();
    await expect(copyLedger({ from: tampered, to: target, tenantId: TENANT, ledgerId: LEDGER, batchSize: 4 })).rejects.toMatchObject({ name: 'ChainBrokenError', ledgerVersion: 9 });
    expect(await streamOf(target)).toEqual(events.slice(0, 8));
    await ledger.close();
  });

  it('a source whose chain holds but whose event its readers could not read is refused by the target (InvalidInputError), nothing of that batch written', async () => {
    const { store, ledger } = await sourceLedger();
    const events = await streamOf(store);
    const index = events.findIndex((event) => event.type === 'TransferPosted' && event.ledgerVersion > 8);
    const bad = events[index] as StoredEvent;
    const postings = (bad.data['postings'] as { amount: string }[]).map((posting) => ({ ...posting, amount: `${posting.amount}5` }));
    const forged = relinked([...events.slice(0, index), { ...bad, data: { ...bad.data, postings } }, ...events.slice(index + 1)], index);
    const target = new InMemoryEventStore();
    const refusal = await copyLedger({ from: readingThrough(store, () => forged), to: target, tenantId: TENANT, ledgerId: LEDGER, batchSize: 4 }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(InvalidInputError);
    expect((refusal as InvalidInputError).message).toContain(`corrupt event at ledger version ${bad.ledgerVersion}`);
    expect((refusal as InvalidInputError).issues[0]?.path).toEqual(['events', index % 4]);
    const copied = await streamOf(target);
    expect(copied).toEqual(events.slice(0, Math.floor(index / 4) * 4));
    await ledger.close();
  });

  it('refuses a batch size outside 1..10,000', async () => {
    const store = new InMemoryEventStore();
    for (const batchSize of [0, -1, 1.5, 10_001, Number.NaN]) {
      await expect(copyLedger({ from: store, to: new InMemoryEventStore(), tenantId: TENANT, ledgerId: LEDGER, batchSize })).rejects.toBeInstanceOf(LimitExceededError);
    }
  });
});
