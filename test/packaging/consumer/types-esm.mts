// Type-checked (never run) by scripts/pack-check.mjs in a throwaway project where the packed
// tarballs were installed: an ES module consumer, under moduleResolution node16 and bundler.
// Each `@ts-expect-error` proves a type is really there: were it `any`, the directive would be
// unused, which is an error.
import { InMemoryEventStore, Ledger, REJECTION_CODES, type Balance, type CommandResult, type RejectionCode, type StoredEvent } from '@ledgerkit/ledger-core';
import { describeEventStoreConformance } from '@ledgerkit/ledger-core/testing';
import { withTenant, quoteName, type ClientPool } from '@ledgerkit/tenant-rls';
import { PostgresEventStore, MIGRATIONS, type PostgresEventStoreOptions } from '@ledgerkit/store-postgres';
import { eventProjection, type Projection } from '@ledgerkit/projections';

const ledger: Ledger = await Ledger.open({ store: new InMemoryEventStore(), tenantId: 'acme', ledgerId: 'eur' });
const result: CommandResult = await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
if (!result.ok) {
  const code: RejectionCode = result.code;
  void code;
}
const balance: Balance | undefined = ledger.balance('alice');
const posted: string | undefined = balance?.posted;
// @ts-expect-error posted is a decimal string, not a number
const postedNumber: number | undefined = balance?.posted;
const codes: readonly string[] = Object.keys(REJECTION_CODES);
const events: readonly StoredEvent[] = [];

declare const pool: ClientPool;
const one: number = await withTenant(pool, 'acme', async (client) => {
  const answer = await client.query<{ n: number }>('select 1 as n');
  // @ts-expect-error pg's query takes no number: proves the pg client is typed (not any)
  await client.query(42);
  return answer.rows[0]?.n ?? 0;
});
const table: string = quoteName('events', 'table');
// @ts-expect-error quoteName takes the name and what it names
quoteName('events');

const options: PostgresEventStoreOptions = { pool };
const openStore: (options: PostgresEventStoreOptions) => Promise<PostgresEventStore> = PostgresEventStore.open;
const migrationCount: number = MIGRATIONS.length;

const projection: Projection = eventProjection({ name: 'noop', handle: async () => undefined, reset: async () => undefined });
const conformance: typeof describeEventStoreConformance = describeEventStoreConformance;

export { posted, postedNumber, codes, events, one, table, options, openStore, migrationCount, projection, conformance };
