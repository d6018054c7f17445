import { InvalidInputError, type Ledger } from '@ledgerkit/ledger-core';
import { ACCOUNT_PAGE_SIZE_MAX, balancesProjection, ProjectionRunner, ReadModels, type AccountBalanceView } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, FIXTURE_ACCOUNTS, openFixtureLedger, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;
let models: ReadModels;
const ledgers: Ledger[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  // Tenant "list-a": ledgers eur and gbp-book (the fixture accounts plus extra ones); tenant "list-b": one ledger.
  const eur = await openFixtureLedger(store, 'list-a', 'eur');
  const other = await openFixtureLedger(store, 'list-a', 'gbp-book');
  for (let n = 0; n < 5; n += 1) await other.openAccount({ accountId: `extra-${n}`, currency: 'EUR', type: 'asset' });
  const b = await openFixtureLedger(store, 'list-b', 'eur');
  ledgers.push(eur, other, b);
  await writeTransfers(eur, 'a', 20, 5);
  await writeTransfers(b, 'b', 7, 7);
  const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: ['list-a', 'list-b'], projections: [balancesProjection()], currencies });
  runner.start();
  try {
    await runner.whenCaughtUp();
  } finally {
    await runner.stop();
  }
});

afterAll(async () => {
  for (const ledger of ledgers) await ledger.close();
  await db?.close();
});

async function everyPage(tenantId: string, options: { readonly ledgerId?: string; readonly limit?: number }): Promise<{ accounts: AccountBalanceView[]; pages: number }> {
  const accounts: AccountBalanceView[] = [];
  let after: string | null = null;
  for (let pages = 1; pages <= 100; pages += 1) {
    const page = await models.accounts(tenantId, { ...options, after });
    expect(page.accounts.length).toBeLessThanOrEqual(options.limit ?? 100);
    accounts.push(...page.accounts);
    if (page.next === null) return { accounts, pages };
    after = page.next;
  }
  throw new Error('more than 100 pages');
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

describe('ReadModels.accounts', () => {
  it('pages through every account of a tenant, in (ledger, account id) order, each with the balance Ledger.balance gives', async () => {
    const [eur, other] = ledgers as [Ledger, Ledger, Ledger];
    const expected = [
      ...[...FIXTURE_ACCOUNTS, 'extra-0', 'extra-1', 'extra-2', 'extra-3', 'extra-4'].sort(byteOrder).map((id) => ({ ledgerId: 'gbp-book', balance: other.balance(id) })),
      ...[...FIXTURE_ACCOUNTS].sort(byteOrder).map((id) => ({ ledgerId: 'eur', balance: eur.balance(id) })),
    ].sort((x, y) => byteOrder(x.ledgerId, y.ledgerId) || byteOrder(x.balance?.accountId ?? '', y.balance?.accountId ?? ''));
    for (const limit of [1, 2, 3, 13, 100]) {
      const { accounts, pages } = await everyPage('list-a', { limit });
      expect(accounts.map(({ ledgerId, balance }) => ({ ledgerId, balance })), `limit ${limit}`).toEqual(expected);
      expect(pages).toBe(Math.max(1, Math.ceil(expected.length / limit)));
    }
    const alice = (await everyPage('list-a', { ledgerId: 'eur', limit: 2 })).accounts.find((view) => view.balance.accountId === 'alice');
    expect(alice).toMatchObject({ ledgerId: 'eur', debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false, metadata: {}, openedVersion: 2 });
  });

  it('lists one ledger only when asked, and a cursor of one ledger is refused for another', async () => {
    const { accounts } = await everyPage('list-a', { ledgerId: 'gbp-book', limit: 4 });
    expect(accounts).toHaveLength(FIXTURE_ACCOUNTS.length + 5);
    expect(new Set(accounts.map((view) => view.ledgerId))).toEqual(new Set(['gbp-book']));
    const first = await models.accounts('list-a', { ledgerId: 'gbp-book', limit: 2 });
    await expect(models.accounts('list-a', { ledgerId: 'eur', after: first.next })).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('never shows another tenant’s accounts, whatever the cursor', async () => {
    const { accounts } = await everyPage('list-b', { limit: 3 });
    expect(accounts.map((view) => [view.ledgerId, view.balance.accountId])).toEqual([...FIXTURE_ACCOUNTS].sort(byteOrder).map((id) => ['eur', id]));
    // A cursor taken from tenant list-a's listing only moves within list-b's own rows.
    const fromA = await models.accounts('list-a', { limit: 1 });
    const page = await models.accounts('list-b', { after: fromA.next, limit: ACCOUNT_PAGE_SIZE_MAX });
    expect(page.accounts.every((view) => view.ledgerId === 'eur')).toBe(true);
    expect(page.accounts.map((view) => view.balance)).toEqual(
      [...FIXTURE_ACCOUNTS]
        .sort(byteOrder)
        .filter((id) => id > (fromA.accounts[0]?.balance.accountId ?? ''))
        .map((id) => (ledgers[2] as Ledger).balance(id)),
    );
    expect(await models.accounts('nobody-here')).toEqual({ accounts: [], next: null });
  });

  it('holds a page to 1..1000 accounts (default 100) and refuses cursors it did not make, before any SQL', async () => {
    expect((await models.accounts('list-a')).accounts).toHaveLength(FIXTURE_ACCOUNTS.length * 2 + 5);
    for (const limit of [0, -1, 1.5, ACCOUNT_PAGE_SIZE_MAX + 1]) await expect(models.accounts('list-a', { limit })).rejects.toBeInstanceOf(InvalidInputError);
    for (const after of ['not a cursor', Buffer.from('{"a":1}').toString('base64url'), Buffer.from('[1,2]').toString('base64url'), 'x'.repeat(2_000)]) {
      await expect(models.accounts('list-a', { after })).rejects.toBeInstanceOf(InvalidInputError);
    }
    await expect(models.accounts('bad tenant!')).rejects.toBeInstanceOf(InvalidInputError);
  });
});
