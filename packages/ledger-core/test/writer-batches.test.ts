import { afterEach, describe, expect, it } from 'vitest';
import {
  APPEND_EVENTS_MAX,
  InMemoryEventStore,
  LimitExceededError,
  WriterFailedError,
  LedgerWriter,
  readLedger,
  verifyChain,
  type AppendRequest,
  type CommandResult,
  type EventStore,
  type FindByIndexKeysRequest,
  type LedgerCommand,
  type LedgerWriterOptions,
  type StoredEvent,
  type TransferCommand,
} from '@ledgerkit/ledger-core';

const TENANT = 'acme';
const LEDGER = 'main';

const writers: LedgerWriter[] = [];

async function openWriter(store: EventStore, options: Partial<LedgerWriterOptions> = {}): Promise<LedgerWriter> {
  const writer = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER, ...options });
  writers.push(writer);
  return writer;
}

afterEach(async () => {
  await Promise.all(writers.splice(0).map((writer) => writer.close()));
});

function openAccount(accountId: string, noOverdraft = false): LedgerCommand {
  return {
    kind: 'openAccount',
    accountId,
    currency: 'EUR',
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

async function allEvents(store: EventStore): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for await (const event of readLedger({ store, tenantId: TENANT, ledgerId: LEDGER })) events.push(event);
  return events;
}

const outcomeOf = (promise: Promise<CommandResult>): Promise<CommandResult | Error> => promise.then(
  (result) => result,
  (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
);

/** An in-memory store that records the size of every append it is asked for. */
class CountingStore extends InMemoryEventStore {
  readonly appendSizes: number[] = [];

  override async append(request: AppendRequest): Promise<{ ledgerVersion: number }> {
    this.appendSizes.push(request.events.length);
    return super.append(request);
  }
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
