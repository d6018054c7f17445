/**
 * A writer saves a snapshot at the end of `open` too, when it folded at least
 * `snapshotEveryEvents` events since the snapshot it loaded (or replayed that many, having none
 * it could use). Before, snapshots were saved only after a committed batch: a writer that opened
 * and closed without writing (a reader, a process restarted often, the first open after an
 * upgrade that does not use the previous release's snapshots) left the old snapshot, and every
 * open replayed the whole log. The save runs in the background, `close` waits for it, and a
 * failed save does not fail the open.
 */
import { describe, expect, it } from 'vitest';
import { CurrencyRegistry, InMemoryEventStore, Ledger, LimitExceededError, SNAPSHOT_SCHEMA_VERSION, type EventStore, type Snapshot } from '@ledgerkit/ledger-core';

const currencies = new CurrencyRegistry();
const where = { tenantId: 'acme', ledgerId: 'eur' } as const;

/** Opens, writes `transfers` transfers after opening two accounts (2 + transfers events), closes. */
async function seed(store: EventStore, transfers: number, options: { snapshotEveryEvents: number; saveSnapshot?: boolean }): Promise<void> {
  const ledger = await Ledger.open({ store, ...where, currencies, snapshotEveryEvents: options.snapshotEveryEvents });
  await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
  for (let i = 0; i < transfers; i += 1) {
    await ledger.transfer({ transferId: `t${i}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
  }
  if (options.saveSnapshot === true) await ledger.writer.saveSnapshot();
  await ledger.close();
}

/** A store whose `saveSnapshot` is replaced by `save` (which may call the real one). */
function withSave(store: InMemoryEventStore, save: (snapshot: Snapshot) => Promise<void>): EventStore {
  return new Proxy(store as EventStore, {
    get(target, property, receiver) {
      if (property === 'saveSnapshot') return save;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('a snapshot saved at open', () => {
  it('the first open after an upgrade replaces a snapshot it does not use (a previous schema version) with a current one, though it writes nothing', async () => {
    const store = new InMemoryEventStore();
    await seed(store, 1, { snapshotEveryEvents: 0, saveSnapshot: true });
    const saved = (await store.loadSnapshot(where)) as Snapshot;
    // As the previous release left it (the same version: the store replaces it).
    await store.saveSnapshot({ ...saved, schemaVersion: SNAPSHOT_SCHEMA_VERSION - 1 });
    const upgraded = await Ledger.open({ store, ...where, currencies, snapshotEveryEvents: 2 });
    await upgraded.close();
    expect(await store.loadSnapshot(where)).toMatchObject({ schemaVersion: SNAPSHOT_SCHEMA_VERSION, ledgerVersion: 3, hash: saved.hash });
  });

  it('a writer that replayed at least snapshotEveryEvents events saves one; one that loaded a snapshot with a shorter tail, or with snapshotEveryEvents 0, saves none', async () => {
    const store = new InMemoryEventStore();
    await seed(store, 3, { snapshotEveryEvents: 0 });
    expect(await store.loadSnapshot(where)).toBeNull();
    const off = await Ledger.open({ store, ...where, currencies, snapshotEveryEvents: 0 });
    await off.close();
    expect(await store.loadSnapshot(where), 'snapshotEveryEvents 0: never').toBeNull();
    const short = await Ledger.open({ store, ...where, currencies, snapshotEveryEvents: 6 });
    await short.close();
    expect(await store.loadSnapshot(where), 'a log of 5 events, every 6').toBeNull();

    const replaying = await Ledger.open({ store, ...where, currencies, snapshotEveryEvents: 5 });
    await replaying.close();
    expect(await store.loadSnapshot(where)).toMatchObject({ schemaVersion: SNAPSHOT_SCHEMA_VERSION, ledgerVersion: 5 });

    let saves = 0;
    const counting = withSave(store, async (snapshot) => {
      saves += 1;
      await store.saveSnapshot(snapshot);
    });
    const fromSnapshot = await Ledger.open({ store: counting, ...where, currencies, snapshotEveryEvents: 1 });
    await fromSnapshot.close();
    expect(saves, 'opened from a snapshot of the last version: nothing to save').toBe(0);
  });

  it('close waits for the save; a save that fails does not fail the open, and the writer answers its commands', async () => {
    const store = new InMemoryEventStore();
    await seed(store, 2, { snapshotEveryEvents: 0 });
    let release: () => void = () => {};
    let saved = false;
    const slow = withSave(store, async (snapshot) => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      await store.saveSnapshot(snapshot);
      saved = true;
    });
    const ledger = await Ledger.open({ store: slow, ...where, currencies, snapshotEveryEvents: 1 });
    const closing = ledger.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect(saved).toBe(false);
    release();
    await closing;
    expect(saved, 'close resolved after the save').toBe(true);
    expect(await store.loadSnapshot(where)).toMatchObject({ ledgerVersion: 4 });

    const failing = withSave(new InMemoryEventStore(), async () => {
      throw new LimitExceededError('refused by the test');
    });
    await seed(failing, 2, { snapshotEveryEvents: 0 });
    const opened = await Ledger.open({ store: failing, ...where, currencies, snapshotEveryEvents: 1 });
    try {
      expect(opened.version).toBe(4);
      expect(await opened.transfer({ transferId: 'after', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' })).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 5 });
    } finally {
      await opened.close();
    }
  });
});
