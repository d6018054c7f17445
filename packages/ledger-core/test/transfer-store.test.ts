/**
 * The compact transfer store against a plain `Map` of records, the model it must be
 * indistinguishable from: same answers, same order, same identities, through random sequences of
 * records, sets, deletes, iterations that delete or add as they go, and clears.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { transferRecordOf, type EventMeta } from '../src/domain/transfer-record.js';
import { recordBytes, TransferStore } from '../src/domain/transfer-store.js';
import type { TransferRecord } from '../src/domain/state.js';
import type { LedgerEvent, Posting } from '../src/domain/types.js';

const postings = (amount: bigint): Posting[] => [
  { accountId: 'a', side: 'debit', amount, currency: 'EUR' },
  { accountId: 'b', side: 'credit', amount, currency: 'EUR' },
];

type EventShape = 'posted' | 'withReference' | 'withMetadata' | 'reversal' | 'hold' | 'voided' | 'opened';

function eventOf(shape: EventShape, transferId: string, amount: bigint): LedgerEvent {
  switch (shape) {
    case 'posted':
      return { type: 'TransferPosted', transferId, postings: postings(amount), reference: undefined, reversalOf: undefined, metadata: {} };
    case 'withReference':
      return { type: 'TransferPosted', transferId, postings: postings(amount), reference: 'ref', reversalOf: undefined, metadata: {} };
    case 'withMetadata':
      return { type: 'TransferPosted', transferId, postings: postings(amount), reference: undefined, reversalOf: undefined, metadata: { k: 'v' } };
    case 'reversal':
      return { type: 'TransferPosted', transferId, postings: postings(amount), reference: undefined, reversalOf: 'orig', metadata: {} };
    case 'hold':
      return { type: 'TransferPending', transferId, postings: postings(amount), timeoutMs: 1_000, reference: undefined, metadata: {} };
    case 'voided':
      return { type: 'PendingVoided', transferId, pendingId: 'h', metadata: {} };
    case 'opened':
      return {
        type: 'AccountOpened',
        accountId: transferId,
        currency: 'EUR',
        accountType: 'asset',
        flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
        metadata: {},
      };
  }
}

type Op =
  | { readonly op: 'record'; readonly key: string; readonly shape: EventShape; readonly version: number }
  | { readonly op: 'bulk'; readonly prefix: string; readonly count: number }
  | { readonly op: 'set'; readonly key: string; readonly version: number }
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'mutate'; readonly key: string }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'evict'; readonly every: number; readonly keep: number }
  | { readonly op: 'iterateAdding'; readonly prefix: string; readonly count: number }
  | { readonly op: 'clear' };

const key = fc.integer({ min: 0, max: 30 }).map((n) => `k${n}`);
const shape = fc.constantFrom<EventShape>('posted', 'posted', 'posted', 'withReference', 'withMetadata', 'reversal', 'hold', 'voided', 'opened');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('record' as const), key, shape, version: fc.nat(1_000) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('bulk' as const), prefix: fc.constantFrom('b', 'c', 'd'), count: fc.integer({ min: 1, max: 2_500 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('set' as const), key, version: fc.nat(1_000) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('get' as const), key }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('mutate' as const), key }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('evict' as const), every: fc.integer({ min: 1, max: 4 }), keep: fc.nat(3_000) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('iterateAdding' as const), prefix: fc.constantFrom('x', 'y'), count: fc.integer({ min: 1, max: 1_500 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

const metaOf = (version: number): EventMeta => ({ ledgerVersion: version + 1, recordedAtMs: 1_000 + version, effectiveAtMs: 500 + version });

/** Applies one operation to both; returns what each answered, for the caller to compare. */
function apply(store: TransferStore, model: Map<string, TransferRecord>, step: Op): void {
  const record = (subject: TransferStore | Map<string, TransferRecord>, event: LedgerEvent, meta: EventMeta): boolean => {
    if (subject instanceof TransferStore) return subject.record(event, meta);
    const made = transferRecordOf(event, meta);
    if (made === undefined) return true;
    if (subject.has(made.id)) return false;
    subject.set(made.id, made);
    return true;
  };
  switch (step.op) {
    case 'record': {
      const event = eventOf(step.shape, step.key, BigInt(step.version + 1));
      expect(store.record(event, metaOf(step.version))).toBe(record(model, event, metaOf(step.version)));
      break;
    }
    case 'bulk':
      for (let i = 0; i < step.count; i += 1) {
        const event = eventOf('posted', `${step.prefix}${i}`, BigInt(i + 1));
        expect(store.record(event, metaOf(i))).toBe(record(model, event, metaOf(i)));
      }
      break;
    case 'set': {
      const value = transferRecordOf(eventOf('hold', step.key, 7n), metaOf(step.version)) as TransferRecord;
      expect(store.set(step.key, value)).toBe(store);
      model.set(step.key, value);
      expect(store.get(step.key)).toBe(value);
      break;
    }
    case 'get': {
      const got = store.get(step.key);
      expect(got).toEqual(model.get(step.key));
      // Identity: the same object on every read, so changes in place are kept.
      expect(store.get(step.key)).toBe(got);
      expect(store.has(step.key)).toBe(model.has(step.key));
      break;
    }
    case 'mutate': {
      const got = store.get(step.key);
      const modelled = model.get(step.key);
      expect(got === undefined).toBe(modelled === undefined);
      if (got !== undefined && modelled !== undefined) {
        got.reversedBy = 'changed in place';
        modelled.reversedBy = 'changed in place';
      }
      break;
    }
    case 'delete':
      expect(store.delete(step.key)).toBe(model.delete(step.key));
      break;
    case 'evict': {
      // As the writer evicts: walk oldest first, deleting while iterating, until few enough remain.
      const evict = (subject: Map<string, TransferRecord>): string[] => {
        const deleted: string[] = [];
        let index = 0;
        for (const [id, value] of subject) {
          if (subject.size <= step.keep) break;
          index += 1;
          if (index % step.every !== 0 || value.kind === 'hold') continue;
          subject.delete(id);
          deleted.push(id);
        }
        return deleted;
      };
      expect(evict(store)).toEqual(evict(model));
      break;
    }
    case 'iterateAdding': {
      // Entries added while iterating are visited; enough of them to grow the table meanwhile.
      const walk = (subject: Map<string, TransferRecord>): string[] => {
        const seen: string[] = [];
        let added = 0;
        for (const id of subject.keys()) {
          seen.push(id);
          if (added < step.count) {
            const event = eventOf('posted', `${step.prefix}${added}`, 1n);
            added += 1;
            if (subject instanceof TransferStore) subject.record(event, metaOf(added));
            else if (!subject.has(`${step.prefix}${added - 1}`)) subject.set(`${step.prefix}${added - 1}`, transferRecordOf(event, metaOf(added)) as TransferRecord);
          }
        }
        return seen;
      };
      expect(walk(store)).toEqual(walk(model));
      break;
    }
    case 'clear':
      store.clear();
      model.clear();
      break;
  }
}

function expectSame(store: TransferStore, model: Map<string, TransferRecord>): void {
  expect(store.size).toBe(model.size);
  // The running estimate is the sum over the live records, however they came and went.
  expect(store.estimatedBytes).toBe([...model].reduce((sum, [id, record]) => sum + recordBytes(id, record), 0));
  expect([...store.keys()]).toEqual([...model.keys()]);
  expect([...store.entries()]).toEqual([...model.entries()]);
  // Iterating hands out the same objects `get` does.
  for (const [id, value] of store) expect(store.get(id)).toBe(value);
  const visited: string[] = [];
  store.forEach((value, id, map) => {
    expect(map).toBe(store);
    expect(value.id).toBe(id);
    visited.push(id);
  });
  expect(visited).toEqual([...model.keys()]);
}

describe('TransferStore', () => {
  it('answers every sequence of records, sets, gets, deletes, evictions and clears exactly as a Map of records', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const store = new TransferStore();
        const model = new Map<string, TransferRecord>();
        for (const step of ops) {
          apply(store, model, step);
          expect(store.size).toBe(model.size);
        }
        expectSame(store, model);
      }),
      { numRuns: 150 },
    );
  });

  it('estimates a record by what grows with it: a transfer of 32 long-id postings with 4 KB of metadata weighs 20 times a plain one or more', () => {
    const store = new TransferStore();
    store.record(eventOf('posted', 'plain', 5n), metaOf(1));
    const plain = store.estimatedBytes;
    expect(plain).toBeGreaterThan(0);
    const accountIds = Array.from({ length: 32 }, (_, index) => `account-${index}-`.padEnd(128, 'x'));
    const metadata = Object.fromEntries(Array.from({ length: 7 }, (_, index) => [`note-${index}`, 'n'.repeat(500)]));
    const large: LedgerEvent = {
      type: 'TransferPosted',
      transferId: 'large',
      postings: accountIds.map((accountId, index) => ({ accountId, side: index % 2 === 0 ? 'debit' : 'credit', amount: 1n, currency: 'EUR' })),
      reference: 'r'.repeat(256),
      reversalOf: undefined,
      metadata,
    };
    store.record(large, metaOf(2));
    const largeBytes = store.estimatedBytes - plain;
    // 32 × 128 characters of account ids, 3,500 of metadata, 256 of reference at least.
    expect(largeBytes).toBeGreaterThan(32 * 128 + 7 * 500 + 256);
    expect(largeBytes).toBeGreaterThan(20 * plain);
    expect(store.delete('large')).toBe(true);
    expect(store.estimatedBytes).toBe(plain);
    store.clear();
    expect(store.estimatedBytes).toBe(0);
  });

  it('is a Map to code that checks, and refuses a second record for the same id', () => {
    const store = new TransferStore();
    expect(store).toBeInstanceOf(Map);
    expect(store.record(eventOf('posted', 't1', 5n), metaOf(1))).toBe(true);
    expect(store.record(eventOf('hold', 't1', 5n), metaOf(2))).toBe(false);
    expect(store.get('t1')).toEqual(transferRecordOf(eventOf('posted', 't1', 5n), metaOf(1)));
    expect(store.record(eventOf('opened', 'acc', 0n), metaOf(3))).toBe(true);
    expect(store.size).toBe(1);
  });

  it('stays a Map of the live records when most of 100,000 are deleted and more are added (deleted entries compacted away on rebuild)', () => {
    const store = new TransferStore();
    const model = new Map<string, TransferRecord>();
    for (let round = 0; round < 5; round += 1) {
      for (let i = 0; i < 20_000; i += 1) {
        const event = eventOf('posted', `r${round}-${i}`, BigInt(i + 1));
        store.record(event, metaOf(i));
        model.set(`r${round}-${i}`, transferRecordOf(event, metaOf(i)) as TransferRecord);
      }
      for (const id of [...model.keys()].slice(0, model.size - 5_000)) {
        expect(store.delete(id)).toBe(true);
        model.delete(id);
      }
    }
    expectSame(store, model);
  });

  it('ids that differ only in the middle of a long string are still told apart', () => {
    const store = new TransferStore();
    const ids = Array.from({ length: 3_000 }, (_, i) => `${'p'.repeat(60)}${i}${'s'.repeat(60)}`);
    ids.forEach((id, i) => expect(store.record(eventOf('posted', id, BigInt(i + 1)), metaOf(i))).toBe(true));
    ids.forEach((id, i) => expect(store.get(id)?.postings[0]?.amount).toBe(BigInt(i + 1)));
    expect(store.has(`${'p'.repeat(60)}x${'s'.repeat(60)}`)).toBe(false);
  });
});
