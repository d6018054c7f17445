/**
 * A snapshot whose state was altered in the store but still parses (an account dropped, a balance
 * changed, a hold that the pending balances do not reflect or that names a missing account, a
 * last recorded time moved ahead) is not used: its digest no longer matches, and the writer
 * replays the log, as for any snapshot it does not use. Before, `LedgerWriter.open` checked only
 * the schema version, the stream's hash at the snapshot's version and the state's version: it
 * decided on a state the log does not hold, and appended events no replay can fold (bob opened a
 * second time). The digest is bound to the hash of the event the snapshot was taken at, covers
 * every value of the state, and does not depend on the order of keys a store gives back.
 */
import { describe, expect, it } from 'vitest';
import { watching } from './support/watching-store.js';
import {
  CurrencyRegistry,
  EventCodec,
  InMemoryEventStore,
  Ledger,
  SNAPSHOT_SCHEMA_VERSION,
  replayLedger,
  restoreState,
  type EventStore,
  type JsonObject,
  type JsonValue,
  type Snapshot,
} from '@ledgerkit/ledger-core';

const currencies = new CurrencyRegistry();
const TENANT = 'acme';
const T0 = Date.parse('2025-06-01T12:00:00.000Z');

/** A store that never returns a snapshot: the writer rebuilds its state from the log. */
const noSnapshots = (store: EventStore): EventStore =>
  new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'loadSnapshot') return async () => null;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });

const ser = (value: unknown): string => JSON.stringify(value, (_, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
const byId = <T extends { id: string }>(items: T[]): T[] => items.sort((a, b) => (a.id < b.id ? -1 : 1));

/**
 * cash, alice and bob (both without overdraft, with metadata of several keys), 10.00 to alice, a
 * hold of 3.00 from alice to bob, a freeze and an unfreeze of bob with command ids; snapshot at 7.
 */
async function seeded(ledgerId: string): Promise<{ store: InMemoryEventStore; snapshot: Snapshot }> {
  const store = new InMemoryEventStore();
  let now = T0;
  const ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0, clock: () => (now += 1_000) });
  const flags = { debitsMustNotExceedCredits: true };
  for (const result of [
    await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }),
    await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags, metadata: { zeta: '1', a: '2', mm: '3' } }),
    await ledger.openAccount({ accountId: 'bob', currency: 'EUR', type: 'liability', flags, metadata: { tier: 'gold', b: 'x' } }),
    await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '10.00', currency: 'EUR' }),
    await ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '3.00', currency: 'EUR', timeoutMs: 86_400_000, reference: 'r-1', metadata: { k: 'v', kk: 'w' } }),
    await ledger.freezeAccount({ accountId: 'bob', commandId: 'f1' }),
    await ledger.unfreezeAccount({ accountId: 'bob', commandId: 'u1' }),
  ]) {
    expect(result.ok, JSON.stringify(result)).toBe(true);
  }
  await ledger.writer.saveSnapshot();
  await ledger.close();
  const snapshot = await store.loadSnapshot({ tenantId: TENANT, ledgerId });
  expect(snapshot?.ledgerVersion).toBe(7);
  return { store, snapshot: snapshot as Snapshot };
}

/** Replaces the stored snapshot (same version: the store takes it) with one whose state `edit` changed. */
async function alter(store: InMemoryEventStore, snapshot: Snapshot, edit: (state: Record<string, any>) => void): Promise<void> {
  const state = JSON.parse(JSON.stringify(snapshot.state)) as Record<string, any>;
  edit(state);
  await store.saveSnapshot({ ...snapshot, state: state as JsonObject });
}

const account = (state: Record<string, any>, id: string): Record<string, any> => state['accounts'].find((a: { id: string }) => a.id === id);

describe('a snapshot whose state was altered in the store, still well formed, is not used', () => {
  const cases: [string, (state: Record<string, any>) => void][] = [
    ['an account dropped (bob, with the hold on him)', (s) => {
      s['accounts'] = s['accounts'].filter((a: { id: string }) => a.id !== 'bob');
      s['holds'] = [];
    }],
    ["alice's posted credits raised to 1,000,000.00", (s) => {
      account(s, 'alice')['balances'][1] = '100000000';
    }],
    ['the open hold naming an account the snapshot does not hold', (s) => {
      s['holds'][0]['postings'][1][0] = 'nobody';
    }],
    ['the open hold not reflected in the pending balances', (s) => {
      account(s, 'alice')['balances'][2] = '0';
      account(s, 'bob')['balances'][3] = '0';
    }],
    ['the last recorded time moved into the future', (s) => {
      s['lastRecordedAtMs'] = Date.parse('2999-01-01T00:00:00.000Z');
    }],
    ["an account's metadata changed", (s) => {
      account(s, 'alice')['metadata']['a'] = 'changed';
    }],
  ];

  for (const [name, edit] of cases) {
    it(`${name}: the writer replays the log and holds what a writer rebuilt from it holds`, async () => {
      const ledgerId = 'altered';
      const { store, snapshot } = await seeded(ledgerId);
      await alter(store, snapshot, edit);
      const watched = watching(store);
      const open = (s: EventStore): Promise<Ledger> => Ledger.open({ store: s, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0 });
      const fromStore = await open(watched.store);
      const fromLog = await open(noSnapshots(store));
      try {
        expect(watched.replayed(), 'the writer read the log from version 1').toBe(true);
        expect(ser([fromStore.version, fromStore.writer.lastHash, fromStore.writer.stateBytes, byId(fromStore.writer.accounts())])).toBe(
          ser([fromLog.version, fromLog.writer.lastHash, fromLog.writer.stateBytes, byId(fromLog.writer.accounts())]),
        );
        expect(ser(fromStore.writer.pendingHold('h1'))).toBe(ser(fromLog.writer.pendingHold('h1')));
      } finally {
        await fromStore.close();
        await fromLog.close();
      }
    });
  }

  it('a snapshot without bob cannot make the writer open him a second time: the command answers as the duplicate it is, and the log still replays', async () => {
    const ledgerId = 'bob-twice';
    const { store, snapshot } = await seeded(ledgerId);
    await alter(store, snapshot, (s) => {
      s['accounts'] = s['accounts'].filter((a: { id: string }) => a.id !== 'bob');
      s['holds'] = [];
    });
    // Before the hold times out (a day after it was recorded).
    const ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0, clock: () => T0 + 3_600_000 });
    try {
      expect(await ledger.openAccount({ accountId: 'bob', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true }, metadata: { tier: 'gold', b: 'x' } })).toMatchObject({ ok: true, duplicate: true, ledgerVersion: 3 });
      // bob's pending credit is the log's: voiding the hold releases it.
      expect(await ledger.voidPending({ transferId: 'v1', pendingId: 'h1' })).toMatchObject({ ok: true, duplicate: false });
      expect(ledger.writer.account('bob')?.creditsPending).toBe(0n);
    } finally {
      await ledger.close();
    }
    await expect(replayLedger({ store, codec: new EventCodec({ currencies }), tenantId: TENANT, ledgerId })).resolves.toBeDefined();
  });

  it('a raised balance cannot fund an overdraft of a no-overdraft account', async () => {
    const ledgerId = 'raised';
    const { store, snapshot } = await seeded(ledgerId);
    await alter(store, snapshot, (s) => {
      account(s, 'alice')['balances'][1] = '100000000';
    });
    const ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0 });
    try {
      expect(await ledger.transfer({ transferId: 'big', debitAccountId: 'alice', creditAccountId: 'cash', amount: '500.00', currency: 'EUR' })).toMatchObject({ ok: false, code: 'insufficient_funds' });
    } finally {
      await ledger.close();
    }
  });

  it('a last recorded time moved ahead does not move the times of later events: they are recorded at the clock', async () => {
    const ledgerId = 'future';
    const { store, snapshot } = await seeded(ledgerId);
    await alter(store, snapshot, (s) => {
      s['lastRecordedAtMs'] = Date.parse('2999-01-01T00:00:00.000Z');
    });
    const now = T0 + 3_600_000;
    const ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0, clock: () => now });
    try {
      expect(await ledger.transfer({ transferId: 't2', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' })).toMatchObject({ ok: true, recordedAt: new Date(now).toISOString() });
    } finally {
      await ledger.close();
    }
  });

  it('a sound snapshot is still used (the tail only is read), with its keys in any order, as a store such as jsonb may return them', async () => {
    const ledgerId = 'sound';
    const { store, snapshot } = await seeded(ledgerId);
    await store.saveSnapshot({ ...snapshot, state: reverseKeys(snapshot.state) as JsonObject });
    const watched = watching(store);
    const ledger = await Ledger.open({ store: watched.store, tenantId: TENANT, ledgerId, currencies, snapshotEveryEvents: 0 });
    try {
      expect(watched.replayed()).toBe(false);
      expect(ledger.version).toBe(7);
      expect(ledger.writer.account('alice')?.metadata).toEqual({ zeta: '1', a: '2', mm: '3' });
    } finally {
      await ledger.close();
    }
  });
});

describe('other snapshots the writer does not use: it replays the log and opens as it would without one', () => {
  const cases: [string, (snapshot: Snapshot, other: Snapshot) => Snapshot][] = [
    ['a previous schema version', (snap) => ({ ...snap, schemaVersion: SNAPSHOT_SCHEMA_VERSION - 1 })],
    ['a later schema version', (snap) => ({ ...snap, schemaVersion: SNAPSHOT_SCHEMA_VERSION + 1 })],
    ["a hash that is not the stream's", (snap) => ({ ...snap, hash: `x${snap.hash}` })],
    ['a version ahead of the stream', (snap) => ({ ...snap, ledgerVersion: 99, state: { ...snap.state, version: 99 } })],
    ['a state with a field the shape does not have', (snap) => ({ ...snap, state: { ...snap.state, extra: 1 } })],
    ["a state whose version is not the row's", (snap) => ({ ...snap, state: { ...snap.state, version: 6 } })],
    // Its hash is of another chain (the tenant and ledger ids are in every event's hash).
    ["another ledger's snapshot, copied under this ledger's id", (snap, other) => ({ ...other, ledgerId: snap.ledgerId })],
  ];
  for (const [name, make] of cases) {
    it(name, async () => {
      const { store, snapshot } = await seeded('mine');
      const { snapshot: theirs } = await seeded('theirs');
      await store.saveSnapshot(make(snapshot, theirs));
      const watched = watching(store);
      const ledger = await Ledger.open({ store: watched.store, tenantId: TENANT, ledgerId: 'mine', currencies, snapshotEveryEvents: 0 });
      try {
        expect(watched.replayed()).toBe(true);
        expect(ledger.version).toBe(7);
        expect(ledger.balance('alice')).toMatchObject({ creditsPosted: '10.00', debitsPending: '3.00' });
      } finally {
        await ledger.close();
      }
    });
  }
});

/** A copy with the keys of every object in reverse order. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).reverse().map(([key, item]) => [key, reverseKeys(item)]));
}

/** Every path to a value (not an object or array) of `value`, other than the top-level `digest`. */
function leafPaths(value: JsonValue, path: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [path];
  const entries: [string | number, JsonValue][] = Array.isArray(value) ? value.map((item, i) => [i, item]) : Object.entries(value);
  return entries.flatMap(([key, item]) => (path.length === 0 && key === 'digest' ? [] : leafPaths(item, [...path, key])));
}

/** Another value the schema takes at the same place: the digest alone is left to notice it. */
function changed(value: JsonValue): JsonValue {
  const swaps: Record<string, string> = { debit: 'credit', credit: 'debit', open: 'frozen', frozen: 'open', liability: 'equity', asset: 'expense', freezeAccount: 'unfreezeAccount', unfreezeAccount: 'freezeAccount' };
  if (typeof value === 'boolean') return !value;
  if (typeof value === 'number') return value + 1;
  if (typeof value === 'string') return swaps[value] ?? (/^[0-9]+$/.test(value) ? `${value}1` : `${value}x`);
  return value;
}

describe('the digest', () => {
  it('covers every value of the state: changing any one makes restoreState refuse it', async () => {
    const { snapshot } = await seeded('every-value');
    expect(restoreState(snapshot.state, currencies, snapshot.hash), 'the state as saved').toBeDefined();
    const paths = leafPaths(snapshot.state);
    expect(paths.length).toBeGreaterThan(60);
    for (const path of paths) {
      const state = JSON.parse(JSON.stringify(snapshot.state)) as Record<string | number, any>;
      let parent = state;
      for (const key of path.slice(0, -1)) parent = parent[key];
      const last = path[path.length - 1] as string | number;
      parent[last] = changed(parent[last]);
      expect(restoreState(state as JsonObject, currencies, snapshot.hash), path.join('.')).toBeUndefined();
    }
    // A metadata key renamed, and an entry added.
    const renamed = JSON.parse(JSON.stringify(snapshot.state)) as Record<string, any>;
    const alice = account(renamed, 'alice');
    alice['metadata'] = { zeta: '1', b: '2', mm: '3' };
    expect(restoreState(renamed as JsonObject, currencies, snapshot.hash), 'a metadata key renamed').toBeUndefined();
    alice['metadata'] = { zeta: '1', a: '2', mm: '3', added: '' };
    expect(restoreState(renamed as JsonObject, currencies, snapshot.hash), 'a metadata entry added').toBeUndefined();
  });

  it('is bound to the hash of the event the snapshot was taken at: with another hash the state is refused', async () => {
    const { snapshot } = await seeded('bound');
    expect(restoreState(snapshot.state, currencies, snapshot.hash)).toBeDefined();
    expect(restoreState(snapshot.state, currencies, `${snapshot.hash.slice(0, -1)}${snapshot.hash.endsWith('0') ? '1' : '0'}`)).toBeUndefined();
    expect(restoreState(snapshot.state, currencies)).toBeUndefined();
  });
});
