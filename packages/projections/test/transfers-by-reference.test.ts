import { InvalidInputError, REFERENCE_LENGTH_MAX, type Ledger } from '@ledgerkit/ledger-core';
import { ReadModels, TRANSFER_PAGE_SIZE_MAX, type TransferView, type TransfersPage } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type { ClientPool } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, projectToEnd } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

const TENANT = 'by-reference';
/** One transfer more than a page can hold: the reference can only be read in full by paging. */
const BULK_TRANSFERS = TRANSFER_PAGE_SIZE_MAX + 1;
/** Transfers written per append while filling the bulk reference. */
const BULK_GROUP = 100;
/** Most pages a test reads before it gives up: a cursor that never ends fails the test, it does not hang it. */
const PAGES_MAX = 50;
/** A reference of exactly the longest length ledger-core stores. */
const LONGEST_REFERENCE = 'r'.repeat(REFERENCE_LENGTH_MAX);

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
let eur: Ledger;
let usd: Ledger;

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  eur = await openFixtureLedger(store, TENANT, 'eur');
  usd = await openFixtureLedger(store, TENANT, 'usd');
  for (let start = 0; start < BULK_TRANSFERS; start += BULK_GROUP) {
    const group = Array.from({ length: Math.min(BULK_GROUP, BULK_TRANSFERS - start) }, (_, offset) => start + offset);
    const results = await Promise.all(
      group.map((n) => eur.transfer({ transferId: `bulk-${n}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR', reference: 'bulk' })),
    );
    for (const result of results) expect(result).toMatchObject({ ok: true });
  }
  // Interleaved with another reference, and the same references in a second ledger.
  for (let n = 0; n < 7; n += 1) {
    await eur.transfer({ transferId: `a-${n}`, debitAccountId: 'cash', creditAccountId: 'bob', amount: '2.00', currency: 'EUR', reference: 'invoice-a' });
    await eur.transfer({ transferId: `b-${n}`, debitAccountId: 'cash', creditAccountId: 'carol', amount: '3.00', currency: 'EUR', reference: 'invoice-b' });
    await usd.transfer({ transferId: `usd-a-${n}`, debitAccountId: 'cash', creditAccountId: 'bob', amount: '4.00', currency: 'EUR', reference: 'invoice-a' });
  }
  expect(await eur.transfer({ transferId: 'longest', debitAccountId: 'cash', creditAccountId: 'bob', amount: '5.00', currency: 'EUR', reference: LONGEST_REFERENCE })).toMatchObject({ ok: true });
  await projectToEnd(db.app, store, [TENANT]);
});

afterAll(async () => {
  await eur?.close();
  await usd?.close();
  await db?.close();
});

/** Every transfer of a reference, page by page from the first, and the pages' sizes. */
async function readAll(ledgerId: string, reference: string, limit: number): Promise<{ transfers: TransferView[]; pageSizes: number[] }> {
  const transfers: TransferView[] = [];
  const pageSizes: number[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < PAGES_MAX; pages += 1) {
    const page: TransfersPage = await models.transfersByReference(TENANT, ledgerId, reference, { limit, after });
    transfers.push(...page.transfers);
    pageSizes.push(page.transfers.length);
    if (page.next === null) return { transfers, pageSizes };
    after = page.next;
  }
  throw new Error(`more than ${PAGES_MAX} pages of ${reference}`);
}

/** The call's rejection, which must be an InvalidInputError at `path`. */
async function expectRefusedAt(call: () => Promise<unknown>, path: readonly string[], what: string): Promise<void> {
  const error = await call().then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error, what).toBeInstanceOf(InvalidInputError);
  expect((error as InvalidInputError).issues[0]?.path, what).toEqual(path);
}

describe('transfersByReference pages', () => {
  it('a reference used by more transfers than a page holds is read in full, in ledger order, by following next', async () => {
    const { transfers, pageSizes } = await readAll('eur', 'bulk', TRANSFER_PAGE_SIZE_MAX);
    expect(pageSizes).toEqual([TRANSFER_PAGE_SIZE_MAX, 1]);
    expect(transfers.map((transfer) => transfer.transferId)).toEqual(Array.from({ length: BULK_TRANSFERS }, (_, n) => `bulk-${n}`));
    const versions = transfers.map((transfer) => transfer.ledgerVersion);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
  });

  it('small pages return each transfer of the reference exactly once, and only its transfers; the last page says there is no next', async () => {
    for (const limit of [1, 2, 3, 7, 8]) {
      const { transfers, pageSizes } = await readAll('eur', 'invoice-a', limit);
      expect(transfers.map((transfer) => transfer.transferId), `limit ${limit}`).toEqual(Array.from({ length: 7 }, (_, n) => `a-${n}`));
      expect(pageSizes.every((size) => size <= limit), `limit ${limit}`).toBe(true);
    }
    const whole = await models.transfersByReference(TENANT, 'eur', 'invoice-a', { limit: 7 });
    expect(whole.next).toBeNull();
    expect(await models.transfersByReference(TENANT, 'eur', 'no such reference')).toEqual({ transfers: [], next: null });
  });

  it('a page started from next goes on after the last transfer of the page before, also once more transfers were written', async () => {
    const first = await models.transfersByReference(TENANT, 'usd', 'invoice-a', { limit: 4 });
    expect(first.transfers.map((transfer) => transfer.transferId)).toEqual(['usd-a-0', 'usd-a-1', 'usd-a-2', 'usd-a-3']);
    expect(await usd.transfer({ transferId: 'usd-a-late', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR', reference: 'invoice-a' })).toMatchObject({ ok: true });
    await projectToEnd(db.app, store, [TENANT]);
    const rest = await models.transfersByReference(TENANT, 'usd', 'invoice-a', { limit: 10, after: first.next });
    expect(rest.transfers.map((transfer) => transfer.transferId)).toEqual(['usd-a-4', 'usd-a-5', 'usd-a-6', 'usd-a-late']);
    expect(rest.next).toBeNull();
  });

  it('a cursor of another reference or another ledger is refused, not followed', async () => {
    const ofA = (await models.transfersByReference(TENANT, 'eur', 'invoice-a', { limit: 2 })).next as string;
    expect(ofA).toEqual(expect.any(String));
    await expectRefusedAt(() => models.transfersByReference(TENANT, 'eur', 'invoice-b', { after: ofA }), ['after'], 'another reference');
    await expectRefusedAt(() => models.transfersByReference(TENANT, 'usd', 'invoice-a', { after: ofA }), ['after'], 'another ledger');
    // Its own reference and ledger still page with it.
    expect((await models.transfersByReference(TENANT, 'eur', 'invoice-a', { limit: 1, after: ofA })).transfers.map((transfer) => transfer.transferId)).toEqual(['a-2']);
  });

  it('a cursor it did not make, or one tampered with, is refused with InvalidInputError at after, before any SQL', async () => {
    const cursor = (await models.transfersByReference(TENANT, 'eur', 'invoice-a', { limit: 2 })).next as string;
    const cut = cursor.indexOf('.');
    const version = cursor.slice(0, cut);
    const tag = cursor.slice(cut + 1);
    const flipped = `${tag.slice(0, -1)}${tag.endsWith('A') ? 'B' : 'A'}`;
    const tampered: readonly unknown[] = [
      '',
      'garbage',
      version,
      `.${tag}`,
      `${version}.`,
      `${version}.${flipped}`,
      `${version}.${tag}x`,
      `0.${tag}`,
      `-1.${tag}`,
      `01.${tag}`,
      `1.5.${tag}`,
      `99999999999999999999.${tag}`,
      `${version}\u0000.${tag}`,
      `${'9'.repeat(5_000)}.${tag}`,
      7,
      {},
    ];
    const statements: string[] = [];
    const counting = new ReadModels({ pool: refusingPool(statements), currencies });
    for (const after of tampered) {
      await expectRefusedAt(() => counting.transfersByReference(TENANT, 'eur', 'invoice-a', { after: after as string }), ['after'], `after ${JSON.stringify(after).slice(0, 40)}`);
    }
    expect(statements).toEqual([]);
  });
});

describe('transfersByReference reference length', () => {
  it("a reference of exactly ledger-core's longest stored length is written and read back", async () => {
    const page = await models.transfersByReference(TENANT, 'eur', LONGEST_REFERENCE);
    expect(page.transfers.map((transfer) => [transfer.transferId, transfer.reference])).toEqual([['longest', LONGEST_REFERENCE]]);
  });

  it('a reference longer than REFERENCE_LENGTH_MAX is refused at reference before any SQL, as the ledger refuses to store one', async () => {
    const tooLong = `${LONGEST_REFERENCE}r`;
    expect(await eur.transfer({ transferId: 'too-long', debitAccountId: 'cash', creditAccountId: 'bob', amount: '1.00', currency: 'EUR', reference: tooLong }).catch((error: unknown) => error)).toBeInstanceOf(InvalidInputError);
    const statements: string[] = [];
    const counting = new ReadModels({ pool: refusingPool(statements), currencies });
    await expectRefusedAt(() => counting.transfersByReference(TENANT, 'eur', tooLong), ['reference'], 'one character too long');
    await expectRefusedAt(() => counting.transfersByReference(TENANT, 'eur', 'x'.repeat(2_000_000)), ['reference'], 'two million characters');
    expect(statements).toEqual([]);
  });
});

/** A pool that records any attempt to connect: a read refused before any SQL never calls it. */
function refusingPool(attempts: string[]): ClientPool {
  return {
    connect: () => {
      attempts.push('connect');
      return db.app.connect();
    },
  };
}
