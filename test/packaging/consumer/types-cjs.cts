// Type-checked (never run) by scripts/pack-check.mjs: a CommonJS consumer under
// moduleResolution node16, which resolves the packages' `require` types (.d.cts).
import core = require('@ledgerkit/ledger-core');
import tenant = require('@ledgerkit/tenant-rls');
import store = require('@ledgerkit/store-postgres');
import projections = require('@ledgerkit/projections');

async function main(): Promise<string | undefined> {
  const ledger: core.Ledger = await core.Ledger.open({ store: new core.InMemoryEventStore(), tenantId: 'acme', ledgerId: 'eur' });
  const balance: core.Balance | undefined = ledger.balance('alice');
  // @ts-expect-error posted is a decimal string, not a number
  const postedNumber: number | undefined = balance?.posted;
  void postedNumber;
  const quoted: string = tenant.quoteName('events', 'table');
  const count: number = store.MIGRATIONS.length;
  const projection: projections.Projection = projections.eventProjection({ name: 'noop', handle: async () => undefined, reset: async () => undefined });
  void quoted, count, projection;
  return balance?.posted;
}

export = main;
