import { InvalidInputError, type AsOf, type Ledger } from '@ledgerkit/ledger-core';
import { ApplicationRoleRequiredError, balancesProjection, ReadModels, rebuildProjection, reconcileLedger, ResultTooLargeError, TRIAL_BALANCE_LINES_MAX } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type { ClientPool } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, projectToEnd, writeTransfers } from './support/fixtures.js';
import { ExtraRoles } from './support/extra-roles.js';
import { recordingClient } from './support/recording-client.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// ReadModels' arguments as a caller may get them wrong: each must be refused with
// InvalidInputError before it reaches PostgreSQL, never come back as a raw DatabaseError.

const TENANT = 'inputs';
const MINUTE = 60_000;

let db: TestDatabase;
let models: ReadModels;
let ledger: Ledger;
/** A cursor openHolds returned: its two halves are reused to build bad ones. */
let holdCursor: string;
let extraRoles: ExtraRoles | undefined;

beforeAll(async () => {
  db = await openTestDatabase();
  extraRoles = new ExtraRoles(db);
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  ledger = await openFixtureLedger(store, TENANT);
  await writeTransfers(ledger, 't', 4);
  for (const [n, timeoutMs] of [10 * MINUTE, 20 * MINUTE, undefined].entries()) {
    await ledger.hold({ transferId: `h${n}`, debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR', ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  }
  await projectToEnd(db.app, store, [TENANT]);
  const page = await models.openHolds(TENANT, 'eur', { limit: 1 });
  holdCursor = page.next as string;
});

afterAll(async () => {
  await ledger?.close();
  await extraRoles?.close();
  await db?.close();
});

/** The call's outcome: a rejection must be InvalidInputError, not a DatabaseError with a SQLSTATE. */
async function expectInvalidInput(call: () => Promise<unknown>, what: string): Promise<void> {
  const error = await call().then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error, what).toBeInstanceOf(InvalidInputError);
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

describe('times outside years 0001-9999 (UTC)', () => {
  const outside: readonly (string | Date)[] = [
    '+100000-01-01T00:00:00Z',
    new Date(8.64e15),
    '-000001-01-01T00:00:00Z',
    // Year 9999 in its own offset, year 10000 in UTC: what a zod ISO date-time with offset lets through.
    '9999-12-31T23:59:59-14:00',
    new Date(Date.UTC(12_345, 5, 1)),
    // The millisecond before 0001-01-01T00:00:00Z.
    new Date(-62_135_596_800_001),
    // The millisecond after 9999-12-31T23:59:59.999Z.
    new Date(253_402_300_800_000),
  ];

  for (const time of outside) {
    const shown = time instanceof Date ? `Date(${time.getTime()})` : time;
    it(`are refused with InvalidInputError in every parameter: ${shown}`, async () => {
      const points: AsOf[] = [{ effectiveAt: time }, { recordedAt: time }];
      for (const asOf of points) {
        await expectInvalidInput(() => models.balanceAt(TENANT, 'eur', 'alice', asOf), `balanceAt ${JSON.stringify(asOf)}`);
        await expectInvalidInput(() => models.trialBalance(TENANT, 'eur', asOf), `trialBalance ${JSON.stringify(asOf)}`);
      }
      await expectInvalidInput(() => models.statement(TENANT, 'eur', 'alice', { from: time }), 'statement from');
      await expectInvalidInput(() => models.statement(TENANT, 'eur', 'alice', { to: time }), 'statement to');
      await expectInvalidInput(() => models.openHolds(TENANT, 'eur', { expiringBefore: time }), 'openHolds expiringBefore');
    });
  }

  it('a point out of range is reported under asOf, as parseAsOf reports a malformed one', async () => {
    for (const [asOf, path] of [
      [{ effectiveAt: new Date(253_402_300_800_000) }, ['asOf', 'effectiveAt']],
      [{ recordedAt: '+100000-01-01T00:00:00Z' }, ['asOf', 'recordedAt']],
      [{ recordedAt: 'not a time' }, ['asOf', 'recordedAt']],
    ] as const) {
      const error = await models.balanceAt(TENANT, 'eur', 'alice', asOf).then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect(error, JSON.stringify(asOf)).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues[0]?.path, JSON.stringify(asOf)).toEqual(path);
    }
  });

  it('strings Date.parse would guess at (no offset, a date alone, other formats, impossible dates) are refused in every parameter, and an offset is honoured', async () => {
    for (const time of ['2025-01-01T00:00:00', '2025-01-01', '2025-01-01T00:00Z', 'Jan 5 2025', '2025-02-30T00:00:00Z', '']) {
      const points: AsOf[] = [{ effectiveAt: time }, { recordedAt: time }];
      for (const asOf of points) {
        await expectInvalidInput(() => models.balanceAt(TENANT, 'eur', 'alice', asOf), `balanceAt ${JSON.stringify(asOf)}`);
        await expectInvalidInput(() => models.trialBalance(TENANT, 'eur', asOf), `trialBalance ${JSON.stringify(asOf)}`);
      }
      await expectInvalidInput(() => models.statement(TENANT, 'eur', 'alice', { from: time }), `statement from ${time}`);
      await expectInvalidInput(() => models.statement(TENANT, 'eur', 'alice', { to: time }), `statement to ${time}`);
      await expectInvalidInput(() => models.openHolds(TENANT, 'eur', { expiringBefore: time }), `openHolds expiringBefore ${time}`);
    }
    const last = '9999-12-31T23:59:59.999Z';
    expect(await models.balanceAt(TENANT, 'eur', 'alice', { effectiveAt: '9999-12-31T23:59:59.999-00:00' })).toEqual(await models.balanceAt(TENANT, 'eur', 'alice', { effectiveAt: last }));
    expect(await models.balanceAt(TENANT, 'eur', 'alice', { recordedAt: '0001-01-01T01:00:00+01:00' })).toBeUndefined();
  });

  it('the first and last instants of the range are answered', async () => {
    const first = '0001-01-01T00:00:00.000Z';
    const last = '9999-12-31T23:59:59.999Z';
    expect(await models.balanceAt(TENANT, 'eur', 'alice', { effectiveAt: first })).toBeUndefined();
    expect(await models.balanceAt(TENANT, 'eur', 'alice', { effectiveAt: new Date(last) })).toEqual(ledger.balance('alice'));
    expect(await models.balanceAt(TENANT, 'eur', 'alice', { recordedAt: last })).toEqual(ledger.balance('alice'));
    expect(await models.trialBalance(TENANT, 'eur', { effectiveAt: last })).toEqual(await ledger.trialBalance());
    expect((await models.statement(TENANT, 'eur', 'alice', { from: first, to: last })).entries).toHaveLength((await ledger.history('alice')).entries.length);
    expect((await models.openHolds(TENANT, 'eur', { expiringBefore: last })).holds.map((hold) => hold.transferId)).toEqual(['h0', 'h1']);
    expect((await models.openHolds(TENANT, 'eur', { expiringBefore: first })).holds).toEqual([]);
  });

  it('an openHolds cursor with a time PostgreSQL cannot read, or not as openHolds writes it, is refused', async () => {
    const transferId = holdCursor.slice(holdCursor.indexOf(' ') + 1);
    for (const after of ['1 x', `+100000-01-01T00:00:00.000Z ${transferId}`, `-000001-01-01T00:00:00.000Z ${transferId}`, `2025-01-01 ${transferId}`, `Jan 5 ${transferId}`]) {
      await expectInvalidInput(() => models.openHolds(TENANT, 'eur', { after }), `openHolds after ${after}`);
    }
    // Its own cursors still page.
    const next = await models.openHolds(TENANT, 'eur', { after: holdCursor, limit: 5 });
    expect(next.holds.map((hold) => hold.transferId)).toEqual(['h1', 'h2']);
  });
});

describe('a point in time that is not one of the three shapes of AsOf', () => {
  // From JavaScript or a parsed request: each was a TypeError from `in`, or silently one of its keys.
  const malformed: readonly [string, unknown][] = [
    ['undefined', undefined],
    ['null', null],
    ['a string', '2025-01-01T00:00:00Z'],
    ['a number', 3],
    ['an array', [{ ledgerVersion: 1 }]],
    ['an empty object', {}],
    ['two keys', { ledgerVersion: 1, recordedAt: '2025-01-01T00:00:00Z' }],
    ['all three keys', { ledgerVersion: 1, recordedAt: '2025-01-01T00:00:00Z', effectiveAt: '2025-01-01T00:00:00Z' }],
    ['a version that is text', { ledgerVersion: '1' }],
    ['a version past the safe integers', { ledgerVersion: 2 ** 53 }],
  ];

  for (const [name, asOf] of malformed) {
    it(`is refused with InvalidInputError by balanceAt and trialBalance, of the read models and of Ledger: ${name}`, async () => {
      await expectInvalidInput(() => models.balanceAt(TENANT, 'eur', 'alice', asOf as AsOf), `balanceAt ${name}`);
      // A trial balance's point is optional: undefined there means now.
      if (asOf !== undefined) {
        await expectInvalidInput(() => models.trialBalance(TENANT, 'eur', asOf as AsOf), `trialBalance ${name}`);
        await expectInvalidInput(() => ledger.trialBalance(asOf as AsOf), `Ledger.trialBalance ${name}`);
      }
      await expectInvalidInput(() => ledger.balanceAt('alice', asOf as AsOf), `Ledger.balanceAt ${name}`);
    });
  }

  it('a key given as undefined next to a real one does not count', async () => {
    const asOf = { ledgerVersion: undefined, effectiveAt: '9999-12-31T23:59:59Z' } as unknown as AsOf;
    expect(await models.balanceAt(TENANT, 'eur', 'alice', asOf)).toEqual(ledger.balance('alice'));
  });
});

describe('a trial balance with more lines than allowed', () => {
  it('is refused with ResultTooLargeError now and as of any point; at the limit it is answered', async () => {
    const whole = await ledger.trialBalance();
    const lines = whole.lines.length;
    expect(lines).toBeGreaterThan(2);
    const points: (AsOf | undefined)[] = [undefined, { ledgerVersion: ledger.version }, { recordedAt: '9999-12-31T23:59:59Z' }, { effectiveAt: '9999-12-31T23:59:59Z' }];
    for (const asOf of points) {
      const refused = await models.trialBalance(TENANT, 'eur', asOf, { linesMax: lines - 1 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused, JSON.stringify(asOf)).toBeInstanceOf(ResultTooLargeError);
      expect((refused as ResultTooLargeError).limit).toBe(lines - 1);
      expect(await models.trialBalance(TENANT, 'eur', asOf, { linesMax: lines }), JSON.stringify(asOf)).toEqual(whole);
    }
  });

  it('a limit outside 1..TRIAL_BALANCE_LINES_MAX is refused before any SQL', async () => {
    for (const linesMax of [0, -1, 1.5, TRIAL_BALANCE_LINES_MAX + 1, Number.NaN]) {
      await expectInvalidInput(() => models.trialBalance(TENANT, 'eur', undefined, { linesMax }), `linesMax ${linesMax}`);
    }
  });
});

describe('a NUL character in an id or a cursor', () => {
  it('is refused with InvalidInputError by every read', async () => {
    const nul = 'ali\u0000ce';
    await expectInvalidInput(() => models.balance(TENANT, 'eur', nul), 'balance account');
    await expectInvalidInput(() => models.balance(TENANT, 'eu\u0000r', 'alice'), 'balance ledger');
    await expectInvalidInput(() => models.balanceAt(TENANT, 'eur', nul, { ledgerVersion: 1 }), 'balanceAt');
    await expectInvalidInput(() => models.trialBalance(TENANT, 'eu\u0000r'), 'trialBalance');
    await expectInvalidInput(() => models.transfer(TENANT, 'eur', 't-\u00000'), 'transfer');
    await expectInvalidInput(() => models.transfersByReference(TENANT, 'eur', 'r\u0000'), 'transfersByReference');
    await expectInvalidInput(() => models.statement(TENANT, 'eur', nul), 'statement');
    await expectInvalidInput(() => models.accounts(TENANT, { ledgerId: 'eu\u0000r' }), 'accounts ledgerId');
    await expectInvalidInput(() => models.accounts(TENANT, { after: base64url(['eur', 'a\u0000']) }), 'accounts cursor');
    await expectInvalidInput(() => models.openHolds(TENANT, 'eur', { after: 'infinity a\u0000' }), 'openHolds cursor');
    await expectInvalidInput(() => models.openHolds(TENANT, 'eu\u0000r'), 'openHolds ledger');
  });

  it('a batched balance read with one refused id leaves the other reads of its turn answered', async () => {
    const [good, refused] = await Promise.allSettled([models.balance(TENANT, 'eur', 'alice'), models.balance(TENANT, 'eur', 'ali\u0000ce')]);
    expect(good).toEqual({ status: 'fulfilled', value: ledger.balance('alice') });
    expect(refused.status).toBe('rejected');
    expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(InvalidInputError);
  });

  it('well-formed ids that name nothing are still answered as not found', async () => {
    expect(await models.balance(TENANT, 'eur', 'nobody')).toBeUndefined();
    expect(await models.transfer(TENANT, 'eur', 'no-such-transfer')).toBeUndefined();
    expect(await models.transfersByReference(TENANT, 'eur', 'no such reference, with spaces')).toEqual({ transfers: [], next: null });
    expect((await models.accounts(TENANT, { after: base64url(['eur', 'bob']) })).accounts.map((account) => account.balance.accountId)).toEqual(['carol', 'cash']);
  });
});

describe('the pool role', () => {
  it.each([
    ['a superuser', async () => db.admin, 'bypasses_rls'],
    ['a role with BYPASSRLS', () => (extraRoles as ExtraRoles).pool('bypassrls'), 'bypasses_rls'],
    ["a member of the tables' owner", () => (extraRoles as ExtraRoles).pool('owner-member'), 'owns_tables'],
  ] as const)('is refused at the first read when it escapes row-level security (%s)', async (_kind, poolOf, reason) => {
    const pool = await poolOf();
    for (const batchBalanceReads of [true, false]) {
      const refused = new ReadModels({ pool, currencies, batchBalanceReads });
      const balance = await refused.balance(TENANT, 'eur', 'alice').catch((error: unknown) => error);
      expect(balance).toBeInstanceOf(ApplicationRoleRequiredError);
      expect(balance).toMatchObject({ code: 'application_role_required', reason });
      // Batched reads of one turn are each refused.
      const together = await Promise.allSettled([refused.balance(TENANT, 'eur', 'alice'), refused.balance(TENANT, 'eur', 'bob')]);
      for (const settled of together) expect(settled.status === 'rejected' && settled.reason instanceof ApplicationRoleRequiredError).toBe(true);
      await expect(refused.transfer(TENANT, 'eur', 't-0')).rejects.toBeInstanceOf(ApplicationRoleRequiredError);
      await expect(refused.accounts(TENANT)).rejects.toBeInstanceOf(ApplicationRoleRequiredError);
      await expect(refused.trialBalance(TENANT, 'eur')).rejects.toBeInstanceOf(ApplicationRoleRequiredError);
    }
  });

  it('is checked once per pool, on the connection of the first read (no connection of its own)', async () => {
    const statements: string[] = [];
    let connections = 0;
    const recording: ClientPool = {
      connect: async () => {
        connections += 1;
        const client = await db.app.connect();
        return recordingClient(client, statements);
      },
    };
    const first = new ReadModels({ pool: recording, currencies });
    const second = new ReadModels({ pool: recording, currencies, batchBalanceReads: false });
    expect(await first.balance(TENANT, 'eur', 'alice')).toEqual(ledger.balance('alice'));
    expect(connections).toBe(1);
    await first.transfer(TENANT, 'eur', 't-0');
    await first.accounts(TENANT);
    await second.balance(TENANT, 'eur', 'bob');
    await second.statement(TENANT, 'eur', 'alice');
    expect(connections).toBe(5);
    expect(statements.filter((text) => text.includes('rolbypassrls'))).toHaveLength(1);
  });
});

describe('an options argument that is not an object', () => {
  // From JavaScript or a parsed request body: `null` got past the `= {}` default and threw a
  // TypeError on reading its first option.
  const notObjects: readonly [string, unknown][] = [
    ['null', null],
    ['a number', 100],
    ['a string', 'limit=10'],
    ['a boolean', true],
    ['an array', [{ limit: 1 }]],
  ];

  /** Every ReadModels method that takes an options object, called with `options`. */
  const calls: readonly [string, (options: never) => Promise<unknown>][] = [
    ['statement', (options) => models.statement(TENANT, 'eur', 'alice', options)],
    ['transfersByReference', (options) => models.transfersByReference(TENANT, 'eur', 'r', options)],
    ['openHolds', (options) => models.openHolds(TENANT, 'eur', options)],
    ['accounts', (options) => models.accounts(TENANT, options)],
    ['trialBalance', (options) => models.trialBalance(TENANT, 'eur', undefined, options)],
    ['balancesAt', (options) => models.balancesAt(TENANT, 'eur', { ledgerVersion: 1 }, options)],
  ];

  for (const [method, call] of calls) {
    it(`is refused by ${method} with InvalidInputError at options, and leaving it out still reads`, async () => {
      for (const [name, options] of notObjects) {
        const error = await call(options as never).then(
          () => undefined,
          (reason: unknown) => reason,
        );
        expect(error, `${method} ${name}`).toBeInstanceOf(InvalidInputError);
        expect((error as InvalidInputError).issues[0]?.path, `${method} ${name}`).toEqual(['options']);
      }
      await expect(call(undefined as never)).resolves.toBeDefined();
    });
  }

  it('is refused by the constructor with InvalidInputError at options', () => {
    for (const [name, options] of notObjects) {
      let error: unknown;
      try {
        new ReadModels(options as never);
      } catch (caught) {
        error = caught;
      }
      expect(error, name).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues[0]?.path, name).toEqual(['options']);
    }
  });

  it('a missing or wrong pool, projection, store or read models is refused at its own name, before any SQL, by the constructor, rebuildProjection and reconcileLedger', async () => {
    const pathOf = async (call: () => unknown): Promise<unknown> => {
      try {
        await call();
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidInputError);
        return (error as InvalidInputError).issues[0]?.path;
      }
      return 'no error';
    };
    expect(await pathOf(() => new ReadModels({} as never))).toEqual(['pool']);
    expect(await pathOf(() => new ReadModels({ pool: { query: () => undefined } } as never))).toEqual(['pool']);
    expect(await pathOf(() => rebuildProjection(null as never))).toEqual(['options']);
    expect(await pathOf(() => rebuildProjection({ tenantId: TENANT, pool: db.app } as never))).toEqual(['projection']);
    expect(await pathOf(() => rebuildProjection({ tenantId: TENANT, projection: balancesProjection() } as never))).toEqual(['pool']);
    expect(await pathOf(() => reconcileLedger(undefined as never))).toEqual(['options']);
    expect(await pathOf(() => reconcileLedger({ models, tenantId: TENANT, ledgerId: 'eur' } as never))).toEqual(['store']);
    expect(await pathOf(() => reconcileLedger({ store: {}, models, tenantId: TENANT, ledgerId: 'eur' } as never))).toEqual(['store']);
    const store = await PostgresEventStore.open({ pool: db.app });
    expect(await pathOf(() => reconcileLedger({ store, models: 'models', tenantId: TENANT, ledgerId: 'eur' } as never))).toEqual(['models']);
    // Given everything, the same calls answer.
    expect((await reconcileLedger({ store, models, tenantId: TENANT, ledgerId: 'eur' })).agrees).toBe(true);
  });
});
