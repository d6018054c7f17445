import { describe, expect, it } from 'vitest';
import {
  CorruptEventError,
  CurrencyRegistry,
  EventCodec,
  InMemoryEventStore,
  InvalidAmountError,
  InvalidInputError,
  Ledger,
  LedgerWriter,
  READ_LIMIT_MAX,
  UnknownCurrencyError,
  UpcasterRegistry,
  copyLedger,
  readLedger,
  replayAccountEntries,
  replayLedger,
  type EventStore,
  type LedgerWriterOptions,
  type StoredEvent,
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
  it('an upcaster that throws surfaces as a CorruptEventError naming the ledger version', async () => {
    const { ledger, store } = await openLedger();
    await ledger.close();
    const events: StoredEvent[] = [];
    for await (const event of readLedger({ store, tenantId: 'acme', ledgerId: 'eur' })) events.push(event);
    const old = { ...(events[2] as StoredEvent), type: 'AccountFrozen', schemaVersion: 0 };
    const upcasters = new UpcasterRegistry().register('AccountFrozen', 0, () => {
      throw new Error('boom');
    });
    const codec = new EventCodec({ currencies: new CurrencyRegistry(), upcasters });
    expect(() => codec.decode(old)).toThrow(CorruptEventError);
    try {
      codec.decode(old);
    } catch (error) {
      expect((error as CorruptEventError).ledgerVersion).toBe(3);
    }
  });
});
