import { describe, expect, it, vi } from 'vitest';
import {
  CurrencyRegistry,
  EventCodec,
  InMemoryEventStore,
  InvalidAmountError,
  InvalidInputError,
  Ledger,
  LedgerWriter,
  LINKED_COMMANDS_MAX,
  METADATA_KEYS_MAX,
  POSTINGS_MAX,
  READ_LIMIT_MAX,
  UnknownCurrencyError,
  UpcasterRegistry,
  copyLedger,
  readLedger,
  replayAccountEntries,
  replayLedger,
  type EventStore,
  type LedgerWriterOptions,
} from '@ledgerkit/ledger-core';

async function openLedger(): Promise<{ ledger: Ledger; store: InMemoryEventStore }> {
  const store = new InMemoryEventStore();
  const ledger = await Ledger.open({ store, tenantId: 'acme', ledgerId: 'eur' });
  await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } });
  await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' });
  return { ledger, store };
}

describe('Ledger facade input handling', () => {
  it('bad input rejects the returned promise with a typed error and writes nothing', async () => {
    const { ledger } = await openLedger();
    const before = ledger.version;
    const calls: Array<[() => Promise<unknown>, new (...args: never[]) => Error]> = [
      [() => ledger.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: 1.5, currency: 'EUR' }), InvalidAmountError],
      [() => ledger.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.005', currency: 'EUR' }), InvalidAmountError],
      [() => ledger.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1', currency: 'ZZZ' }), UnknownCurrencyError],
      [() => ledger.transfer({ transferId: "t2'; drop table x;--", debitAccountId: 'cash', creditAccountId: 'alice', amount: '1', currency: 'EUR' }), InvalidInputError],
      [() => ledger.openAccount({ accountId: 'x', currency: 'EUR', type: 'asset', extra: true }), InvalidInputError],
      [() => ledger.openAccount({ accountId: 'x', currency: 'ZZZ', type: 'asset' }), UnknownCurrencyError],
      [() => ledger.postPending({ transferId: 'p', pendingId: 'h', amount: '1.00' }), InvalidInputError],
      [() => ledger.linked([{ kind: 'transfer', input: { transferId: 'a' } }]), InvalidInputError],
    ];
    for (const [call, type] of calls) {
      const promise = call();
      expect(promise).toBeInstanceOf(Promise);
      await expect(promise).rejects.toBeInstanceOf(type);
    }
    expect(ledger.version).toBe(before);
    await ledger.close();
  });

  it('currencies given without a get method (null included) are InvalidInputError at currencies, before the store is read', async () => {
    for (const currencies of [null, {}, 'EUR', 42, { find: () => undefined }]) {
      const store = new InMemoryEventStore();
      const reads = vi.spyOn(store, 'readStream');
      const snapshots = vi.spyOn(store, 'loadSnapshot');
      const error = await Ledger.open({ store, tenantId: 'acme', ledgerId: 'eur', currencies: currencies as never }).catch((caught: unknown) => caught);
      expect(error, String(currencies)).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues).toEqual([expect.objectContaining({ path: ['currencies'] })]);
      expect(reads).not.toHaveBeenCalled();
      expect(snapshots).not.toHaveBeenCalled();
    }
    // By shape: a registry-like object with get serves (another copy's registry, say).
    const registry = new CurrencyRegistry();
    const lookalike = { get: (code: string) => registry.get(code), find: (code: string) => registry.find(code), list: () => registry.list() };
    const ledger = await Ledger.open({ store: new InMemoryEventStore(), tenantId: 'acme', ledgerId: 'eur', currencies: lookalike as never });
    expect(await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' })).toMatchObject({ ok: true });
    await ledger.close();
  });

  it('an effectiveAt longer than its bound is InvalidInputError at effectiveAt, and nothing is written', async () => {
    const { ledger } = await openLedger();
    const before = ledger.version;
    const transfer = { transferId: 't-long', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' };
    for (const effectiveAt of [`2025-03-01T12:00:00.${'1'.repeat(10_000_000)}Z`, `2025-03-01T12:00:00.${'1'.repeat(60)}+05:30`]) {
      const error = await ledger.transfer({ ...transfer, effectiveAt }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues).toEqual([expect.objectContaining({ path: ['effectiveAt'] })]);
      expect((error as Error).message.length).toBeLessThan(300);
    }
    expect(ledger.version).toBe(before);
    // An ISO date-time with an offset and nanoseconds is well within it.
    const now = new Date().toISOString().replace('Z', '123456+00:00');
    expect(now).toHaveLength(35);
    expect(await ledger.transfer({ ...transfer, effectiveAt: now })).toMatchObject({ ok: true });
    await ledger.close();
  });

  it('an invalid tenant or ledger id is refused before the writer starts', async () => {
    await expect(Ledger.open({ store: new InMemoryEventStore(), tenantId: 'a b', ledgerId: 'eur' })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(Ledger.open({ store: new InMemoryEventStore(), tenantId: 'acme', ledgerId: '' })).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('a partial post in another currency than the hold is rejected with currency_mismatch', async () => {
    const { ledger } = await openLedger();
    await ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'cash', amount: '5.00', currency: 'EUR' });
    const result = await ledger.postPending({ transferId: 'p1', pendingId: 'h1', amount: '1', currency: 'JPY' });
    expect(result).toMatchObject({ ok: false, code: 'currency_mismatch' });
    expect(ledger.balance('alice')?.pending).toBe('5.00');
    await ledger.close();
  });
});

describe('collections past their bound', () => {
  /** An object whose property `name` throws when read: the refusal must come from a count alone. */
  const untouchable = <T extends object>(target: T, name: string): T =>
    Object.defineProperty(target, name, {
      enumerable: true,
      get() {
        throw new Error(`${name} was read`);
      },
    });

  it('metadata with more than METADATA_KEYS_MAX entries, a transfer with more than POSTINGS_MAX postings and a group of more than LINKED_COMMANDS_MAX are refused by counting, before any element is read', async () => {
    const { ledger } = await openLedger();
    const before = ledger.version;
    const metadata = untouchable(Object.fromEntries(Array.from({ length: METADATA_KEYS_MAX }, (_, n) => [`k${n}`, 'v'])), 'last');
    const postings = [...Array.from({ length: POSTINGS_MAX }, () => ({ accountId: 'cash', side: 'debit', amount: '1', currency: 'EUR' })), untouchable({}, 'accountId')];
    const members = Array.from({ length: LINKED_COMMANDS_MAX + 1 }, () => untouchable({}, 'kind'));
    const refusals: Array<[Promise<unknown>, readonly (string | number)[]]> = [
      [ledger.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1', currency: 'EUR', metadata }), ['metadata']],
      [ledger.openAccount({ accountId: 'x', currency: 'EUR', type: 'asset', metadata }), ['metadata']],
      [ledger.transfer({ transferId: 't2', postings }), ['postings']],
      [ledger.linked(members as never), []],
      [ledger.linked([{ kind: 'transfer', input: { transferId: 't2', postings } }]), [0, 'input', 'postings']],
    ];
    for (const [refusal, path] of refusals) {
      const error = await refusal.catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues).toEqual([expect.objectContaining({ path })]);
    }
    expect(ledger.version).toBe(before);
    await ledger.close();
  });
});

describe('options objects', () => {
  it('a null options object is InvalidInputError at options, not a TypeError, in the facade and the replay helpers', async () => {
    const { ledger, store } = await openLedger();
    const source = { store, codec: new EventCodec({ currencies: new CurrencyRegistry() }), tenantId: 'acme', ledgerId: 'eur' };
    const NULL = null as never;
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['Ledger.history', () => ledger.history('alice', NULL)],
      // Checked before the account is looked up: the answer does not depend on whether it exists.
      ['Ledger.history of an unknown account', () => ledger.history('nobody', NULL)],
      ['Ledger.history with a string', () => ledger.history('alice', 'limit=5' as never)],
      ['Ledger.open', () => Ledger.open(NULL as LedgerWriterOptions)],
      ['LedgerWriter.open', () => LedgerWriter.open(NULL as LedgerWriterOptions)],
      ['replayLedger', () => replayLedger(source, undefined, NULL)],
      ['replayAccountEntries', () => replayAccountEntries(source, 'alice', NULL)],
      ['readLedger', () => readLedger(source, NULL).next()],
      ['copyLedger', () => copyLedger(NULL)],
    ];
    for (const [name, call] of calls) {
      await expect(call(), name).rejects.toMatchObject({ name: 'InvalidInputError', issues: [{ path: ['options'] }] });
    }
    // The constructors of the store and the codec, synchronously.
    for (const options of [NULL, 'codec' as never, 42 as never]) {
      expect(() => new InMemoryEventStore(options), `InMemoryEventStore ${String(options)}`).toThrow(expect.objectContaining({ name: 'InvalidInputError', issues: [expect.objectContaining({ path: ['options'] })] }));
      expect(() => new EventCodec(options), `EventCodec ${String(options)}`).toThrow(expect.objectContaining({ name: 'InvalidInputError', issues: [expect.objectContaining({ path: ['options'] })] }));
    }
    for (const codec of [null, {}, 'codec']) {
      expect(() => new InMemoryEventStore({ codec: codec as never }), String(codec)).toThrow(expect.objectContaining({ name: 'InvalidInputError', issues: [expect.objectContaining({ path: ['codec'] })] }));
    }
    expect(new InMemoryEventStore(undefined)).toBeInstanceOf(InMemoryEventStore);
    await expect(ledger.history('nobody', { limit: 0 })).rejects.toMatchObject({ name: 'InvalidInputError', issues: [{ path: ['limit'] }] });
    // Absent options still mean the defaults.
    expect((await ledger.history('alice')).entries).toHaveLength(1);
    expect((await replayAccountEntries(source, 'alice')).entries).toHaveLength(1);
    await ledger.close();
  });
});

describe('readLedger', () => {
  /** A store whose stream is empty: readStream answers [] for any limit, even one it should refuse. */
  function emptyStore(): { store: EventStore; reads: () => number } {
    let reads = 0;
    const store = {
      async readStream() {
        reads += 1;
        // A caller that re-reads an empty page forever would hang the test: fail it instead.
        if (reads > 3) throw new Error('readLedger keeps reading an empty stream');
        return [];
      },
    } as unknown as EventStore;
    return { store, reads: () => reads };
  }

  it('checks pageSize itself (an integer in 1..READ_LIMIT_MAX) before it reads, instead of trusting the store to refuse it', async () => {
    for (const pageSize of [0, -1, 0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, READ_LIMIT_MAX + 1, '10' as unknown as number]) {
      const { store, reads } = emptyStore();
      await expect(readLedger({ store, tenantId: 'acme', ledgerId: 'eur' }, { pageSize }).next(), String(pageSize)).rejects.toMatchObject({
        name: 'InvalidInputError',
        issues: [{ path: ['pageSize'] }],
      });
      expect(reads(), String(pageSize)).toBe(0);
    }
    for (const options of [{ pageSize: 1 }, { pageSize: READ_LIMIT_MAX }, {}]) {
      const { store, reads } = emptyStore();
      expect(await readLedger({ store, tenantId: 'acme', ledgerId: 'eur' }, options).next(), JSON.stringify(options)).toEqual({ done: true, value: undefined });
      expect(reads(), JSON.stringify(options)).toBe(1);
    }
  });
});

describe('upcasters', () => {
  type Release = typeof import('@ledgerkit/ledger-core');
  const SCHEMAS = '../src/events/schemas.js';

  /**
   * ledger-core as a release that raised `AccountFrozen` to schema version 2 would be: a fresh copy
   * of the package with that one entry of `CURRENT_SCHEMA_VERSIONS` changed. In this release no
   * step of a caller's ever runs (every type but `TransferPosted` is at version 1, and its one step
   * is built in), so an `AccountFrozen` written by this release stands for the old events a
   * caller's step reads.
   */
  async function releaseWithAccountFrozenV2(): Promise<Release> {
    vi.resetModules();
    vi.doMock(SCHEMAS, async (importOriginal) => {
      const actual = await importOriginal<typeof import('../src/events/schemas.js')>();
      return { ...actual, CURRENT_SCHEMA_VERSIONS: { ...actual.CURRENT_SCHEMA_VERSIONS, AccountFrozen: 2 } };
    });
    try {
      return (await import('@ledgerkit/ledger-core')) as Release;
    } finally {
      vi.doUnmock(SCHEMAS);
      vi.resetModules();
    }
  }

  /** A registry whose `AccountFrozen` v1 → v2 step counts its calls and throws `boom`. */
  function throwingStep(release: Release, boom: Error): { upcasters: UpcasterRegistry; calls: () => number } {
    let calls = 0;
    const upcasters = new release.UpcasterRegistry().register('AccountFrozen', 1, () => {
      calls += 1;
      throw boom;
    });
    return { upcasters, calls: () => calls };
  }

  const where = { tenantId: 'acme', ledgerId: 'eur' } as const;
  const settled = (promise: Promise<unknown>): Promise<unknown> => promise.then((value) => value, (error: unknown) => error);

  it('an upcaster that throws: Ledger.open rejects with a CorruptEventError naming the event (version, type, step) with the step’s error as cause', async () => {
    const { ledger, store } = await openLedger();
    await ledger.freezeAccount({ accountId: 'alice' });
    await ledger.close();
    const release = await releaseWithAccountFrozenV2();
    const boom = new Error('boom');
    const step = throwingStep(release, boom);

    const refusal = await settled(release.Ledger.open({ store, ...where, upcasters: step.upcasters }));
    expect(step.calls(), 'the step was called, once').toBe(1);
    expect(refusal).toBeInstanceOf(release.CorruptEventError);
    expect(refusal).toMatchObject({ code: 'corrupt_event', retriable: false, ledgerVersion: 4, cause: boom });
    expect((refusal as Error).message).toBe('corrupt event at ledger version 4: upcaster for AccountFrozen v1 failed: Error: boom');
    // A step that does not throw reads the same log.
    const reading = new release.UpcasterRegistry().register('AccountFrozen', 1, (data) => ({ ...data }));
    const reopened = await release.Ledger.open({ store, ...where, upcasters: reading });
    expect(reopened.version).toBe(4);
    expect(reopened.balance('alice')).toMatchObject({ status: 'frozen', posted: '10.00' });
    await reopened.close();
  });

  it('an upcaster that throws on an event a running ledger catches up on: the command fails naming the event, nothing of it is applied, nothing is written', async () => {
    const { ledger: older, store } = await openLedger();
    const release = await releaseWithAccountFrozenV2();
    const boom = new Error('boom');
    const step = throwingStep(release, boom);
    const ledger = await release.Ledger.open({ store, ...where, upcasters: step.upcasters });
    expect(ledger.version).toBe(3);
    // The older writer appends an AccountFrozen at version 1 of its schema.
    expect(await older.freezeAccount({ accountId: 'alice' })).toMatchObject({ ok: true, ledgerVersion: 4 });
    await older.close();

    const failure = await settled(ledger.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR' }));
    expect(step.calls(), 'the step was called').toBeGreaterThanOrEqual(1);
    // The writer cannot read the tail, so it stops: a non-retriable error naming the ledger and the event.
    expect(failure).toBeInstanceOf(release.CorruptEventError);
    expect(failure).toMatchObject({ code: 'corrupt_event', retriable: false, ledgerVersion: 4, tenantId: where.tenantId, ledgerId: where.ledgerId });
    expect((failure as Error).message).toMatch(/^corrupt event at ledger version 4 of ledger "[^"]+" \(tenant "[^"]+"\): upcaster for AccountFrozen v1 failed: Error: boom \(the writer cannot read this event/);
    expect((failure as Error).cause).toBeInstanceOf(release.CorruptEventError);
    expect((failure as Error).cause).toMatchObject({ ledgerVersion: 4, cause: boom });
    expect(ledger.version, 'the unreadable event is not applied').toBe(3);
    expect(ledger.balance('alice')).toMatchObject({ status: 'open', posted: '10.00' });
    expect(await store.readStream({ ...where, direction: 'backward', limit: 10 }), 'nothing written after it').toHaveLength(4);
    await ledger.close();
  });
});
