/**
 * How the writer answers a store that refuses or fails an append in ways the happy path never
 * meets: a refusal a smaller batch would pass (a server's statement timeout), one that would be
 * met again, errors that cannot be turned into text, and a batch wait pending at close.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  AppendRefusedError,
  InMemoryEventStore,
  LedgerWriter,
  LimitExceededError,
  WriterFailedError,
  type AppendRequest,
  type CommandResult,
  type LedgerCommand,
  type LedgerWriterOptions,
} from '@ledgerkit/ledger-core';

const NO_LIMITS = { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false } as const;
const open = (accountId: string): LedgerCommand => ({ kind: 'openAccount', accountId, currency: 'EUR', type: 'asset', flags: NO_LIMITS, metadata: {} });
const transfer = (transferId: string): LedgerCommand => ({
  kind: 'transfer',
  transferId,
  postings: [
    { accountId: 'bank', side: 'debit', amount: 1n, currency: 'EUR' },
    { accountId: 'bob', side: 'credit', amount: 1n, currency: 'EUR' },
  ],
  pending: undefined,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
});

/** An in-memory store whose appends go through `gate` first: it may throw, or let the append through. */
class GatedStore extends InMemoryEventStore {
  /** Sizes (in events) of every append asked for, refused or not. */
  readonly asked: number[] = [];
  gate: (request: AppendRequest) => void = () => undefined;

  override async append(request: AppendRequest): Promise<{ readonly ledgerVersion: number }> {
    this.asked.push(request.events.length);
    await Promise.resolve();
    this.gate(request);
    return super.append(request);
  }
}

const writers: LedgerWriter[] = [];
afterEach(async () => {
  await Promise.all(writers.splice(0).map((w) => w.close().catch(() => undefined)));
});

async function writerOn(store: GatedStore, options: Partial<LedgerWriterOptions> = {}): Promise<LedgerWriter> {
  const writer = await LedgerWriter.open({ store, tenantId: 'acme', ledgerId: 'main', ...options });
  writers.push(writer);
  for (const id of ['bank', 'bob']) expect(await writer.submit(open(id))).toMatchObject({ ok: true });
  store.asked.length = 0;
  return writer;
}

const settled = (promise: Promise<CommandResult>): Promise<CommandResult | { readonly error: unknown }> => promise.catch((error: unknown) => ({ error }));

describe('a refused append that a smaller batch would pass', () => {
  for (const appendsInFlightMax of [1, 2]) {
    it(`is decided again in smaller batches, so callers see no failure (appendsInFlightMax ${appendsInFlightMax})`, async () => {
      const store = new GatedStore();
      const writer = await writerOn(store, { appendsInFlightMax, batchSizeMax: 1_000 });
      // As a statement timeout does: an append of more than 300 events is cancelled.
      store.gate = (request) => {
        if (request.events.length > 300) throw new AppendRefusedError('canceling statement due to statement timeout', new Error('57014'), true);
      };
      const results = await Promise.all(Array.from({ length: 4_000 }, (_, i) => settled(writer.submit(transfer(`t${i}`)))));
      expect(results.filter((r) => !('ok' in r && r.ok))).toEqual([]);
      expect(writer.version).toBe(2 + 4_000);
      // Bounded: each refusal halved the batches, so few appends were refused.
      const refused = store.asked.filter((n) => n > 300).length;
      expect(refused).toBeGreaterThan(0);
      expect(refused).toBeLessThanOrEqual(12);
    });
  }

  it('fails a command only once it is refused alone, after a bounded number of tries, retriable and "not applied"', async () => {
    const store = new GatedStore();
    const writer = await writerOn(store, { appendsInFlightMax: 1 });
    store.gate = () => {
      throw new AppendRefusedError('canceling statement due to statement timeout', new Error('57014'), true);
    };
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => settled(writer.submit(transfer(`t${i}`)))));
    for (const result of results) {
      expect(result).toHaveProperty('error');
      const error = (result as { error: unknown }).error;
      expect(error).toBeInstanceOf(WriterFailedError);
      expect((error as WriterFailedError).retriable).toBe(true);
      expect((error as Error).message).toContain('were not applied');
    }
    // 8, 4, 2 refused, then each of the eight alone.
    expect(store.asked).toEqual([8, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
    // Once the store takes appends again, the batches grow back, doubling after every 8 appends.
    store.gate = () => undefined;
    let rounds = 0;
    while (store.asked.at(-1) !== 64 && rounds < 20) {
      const batch = await Promise.all(Array.from({ length: 64 }, (_, i) => writer.submit(transfer(`r${rounds}-${i}`))));
      expect(batch.every((r) => r.ok)).toBe(true);
      rounds += 1;
    }
    expect(store.asked.at(-1), 'a whole round in one append again').toBe(64);
    expect(rounds).toBeGreaterThan(1);
  });

  it('is failed at once, whole and not retriable, when the store says a retry would meet it again', async () => {
    const store = new GatedStore();
    const writer = await writerOn(store, { appendsInFlightMax: 1 });
    store.gate = () => {
      throw new AppendRefusedError('the read models are at another schema version', new Error('schema'), false);
    };
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => settled(writer.submit(transfer(`t${i}`)))));
    expect(store.asked).toEqual([8]);
    for (const result of results) expect((result as { error: WriterFailedError }).error.retriable).toBe(false);
  });
});

describe('a store error of another kind', () => {
  it("a store's LimitExceededError fails the batch as not retriable", async () => {
    const store = new GatedStore();
    const writer = await writerOn(store);
    store.gate = () => {
      throw new LimitExceededError('an inline plan holds at most 62 statements, got 63');
    };
    const failure = await settled(writer.submit(transfer('t1')));
    const error = (failure as { error: WriterFailedError }).error;
    expect(error).toBeInstanceOf(WriterFailedError);
    expect(error.retriable).toBe(false);
    expect(error.message).toContain('were not applied');
  });

  it('a rejection with a value that has no string form fails its batch and the writer goes on', async () => {
    const store = new GatedStore();
    const writer = await writerOn(store);
    store.gate = () => {
      throw Object.create(null) as object;
    };
    const failure = await settled(writer.submit(transfer('t1')));
    expect((failure as { error: unknown }).error).toBeInstanceOf(WriterFailedError);
    expect(((failure as { error: Error }).error).message).toContain('[object Object]');
    store.gate = () => undefined;
    expect(await writer.submit(transfer('t2'))).toMatchObject({ ok: true });
    await expect(writer.close()).resolves.toBeUndefined();
  });
});

describe('close', () => {
  it('appends what waits for batchWaitMs at once and leaves no timer behind', async () => {
    const store = new GatedStore();
    const before = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const writer = await LedgerWriter.open({ store, tenantId: 'acme', ledgerId: 'main', batchWaitMs: 1_000 });
    const pending = writer.submit(open('bank'));
    const startedMs = performance.now();
    await writer.close();
    expect(await pending).toMatchObject({ ok: true });
    expect(performance.now() - startedMs).toBeLessThan(900);
    expect(process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length).toBe(before);
  });
});
