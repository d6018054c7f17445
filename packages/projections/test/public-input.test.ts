import { CurrencyRegistry, InvalidInputError, LedgerError, type Ledger } from '@ledgerkit/ledger-core';
import {
  balancesProjection,
  eventProjection,
  inlineBalances,
  migrateReadModels,
  ProjectionRunner,
  READ_MODEL_SCHEMA_VERSION,
  ReadModels,
  rebuildProjection,
  reconcileLedger,
} from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, openFixtureLedger, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// The public functions and constructors of the package, given from JavaScript a null, a missing
// or a wrong-typed option or collaborator: each is refused at once with InvalidInputError (a
// LedgerError) naming it, never accepted to fail later with a raw TypeError (or, in a runner,
// retried forever). And the same calls with good arguments still work.

const TENANT = 'inputs';

let db: TestDatabase;
let store: PostgresEventStore;
let ledger: Ledger;

beforeAll(async () => {
  db = await openTestDatabase();
  // The inline hook keeps the balances read model current: ReadModels reads rows without a runner.
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: inlineBalances({ currencies }) });
  ledger = await openFixtureLedger(store, TENANT);
  await writeTransfers(ledger, 't', 3);
});

afterAll(async () => {
  await ledger?.close();
  await db?.close();
});

/** The path of the InvalidInputError `call` throws or rejects with; fails the test on anything else. */
async function pathOf(call: () => unknown, what: string): Promise<unknown> {
  let thrown: unknown;
  try {
    await call();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, what).toBeInstanceOf(InvalidInputError);
  expect(thrown, what).toBeInstanceOf(LedgerError);
  return (thrown as InvalidInputError).issues[0]?.path;
}

const notRegistries: readonly [string, unknown][] = [
  ['null', null],
  ['a string', 'EUR'],
  ['an object without get', {}],
];

describe('new ProjectionRunner', () => {
  const base = (): Record<string, unknown> => ({ pool: db.app, store, tenantIds: [TENANT], projections: [balancesProjection()], currencies });
  const construct = (options: Record<string, unknown>) => () => new ProjectionRunner(options as never);

  it('refuses a store that is not an EventStore at options.store, in the constructor (no runner starts)', async () => {
    for (const [name, bad] of [['left out', undefined], ['null', null], ['an empty object', {}], ['a string', 'postgres'], ['an object without readAll', { readStream: () => undefined }]] as const) {
      expect(await pathOf(construct({ ...base(), store: bad }), name), name).toEqual(['options', 'store']);
    }
  });

  it('refuses a pool that is not a pool at options.pool', async () => {
    for (const [name, bad] of [['left out', undefined], ['null', null], ['an empty object', {}], ['a connection string', 'postgres://x']] as const) {
      expect(await pathOf(construct({ ...base(), pool: bad }), name), name).toEqual(['options', 'pool']);
    }
  });

  it('refuses currencies that are not a CurrencyRegistry, null included, at currencies', async () => {
    for (const [name, bad] of notRegistries) {
      expect(await pathOf(construct({ ...base(), currencies: bad }), name), name).toEqual(['currencies']);
    }
  });

  it('still takes good options, with the currencies left out too (nothing is started)', () => {
    expect(new ProjectionRunner(base() as never)).toBeInstanceOf(ProjectionRunner);
    const { currencies: _left, ...withoutCurrencies } = base();
    expect(new ProjectionRunner(withoutCurrencies as never)).toBeInstanceOf(ProjectionRunner);
  });
});

describe('migrateReadModels', () => {
  it('refuses options, a pool, roles, a password or flags of the wrong type, at their names, before connecting', async () => {
    const pool = db.admin;
    const refusals: readonly [unknown, readonly (string | number)[]][] = [
      [undefined, ['options']],
      [null, ['options']],
      ['postgres://x', ['options']],
      [{}, ['pool']],
      [{ pool: null }, ['pool']],
      [{ pool: {} }, ['pool']],
      [{ pool, roles: null }, ['roles']],
      [{ pool, roles: 'owner' }, ['roles']],
      [{ pool, roles: { app: 'lk_app' } }, ['roles', 'owner']],
      [{ pool, roles: { owner: 'Not A Name', app: 'lk_app' } }, ['roles', 'owner']],
      [{ pool, roles: { owner: 'lk_owner', app: 42 } }, ['roles', 'app']],
      [{ pool, roles: { owner: 'lk_same', app: 'lk_same' } }, ['roles', 'app']],
      [{ pool, roles: db.roles, appPassword: 1234 }, ['appPassword']],
      [{ pool, roles: db.roles, appPassword: 'a\u0000b' }, ['appPassword']],
      [{ pool, roles: db.roles, createRoles: 'no' }, ['createRoles']],
      [{ pool, roles: db.roles, toVersion: '1' }, ['toVersion']],
    ];
    for (const [options, path] of refusals) {
      const what = JSON.stringify(options === undefined ? 'undefined' : options, (key, value: unknown) => (key === 'pool' && value === pool ? 'pool' : value));
      expect(await pathOf(() => migrateReadModels(options as never), what), what).toEqual(path);
    }
  });

  it('still migrates with good options: the read models are current, nothing to apply', async () => {
    await expect(migrateReadModels({ pool: db.admin, roles: db.roles })).resolves.toEqual({ applied: [], schemaVersion: READ_MODEL_SCHEMA_VERSION });
    await expect(migrateReadModels({ pool: db.admin, roles: db.roles, createRoles: false })).resolves.toEqual({ applied: [], schemaVersion: READ_MODEL_SCHEMA_VERSION });
  });
});

describe('rebuildProjection', () => {
  it('refuses a projection without reset at projection, with nothing written', async () => {
    for (const [name, bad] of [['a name only', { name: 'x' }], ['reset not a function', { name: 'x', apply: async () => undefined, reset: 'rows' }]] as const) {
      expect(await pathOf(() => rebuildProjection({ pool: db.app, tenantId: TENANT, projection: bad as never }), name), name).toEqual(['projection']);
    }
    const { rows } = await db.admin.query('SELECT 1 FROM ledgerkit.projection_checkpoints WHERE projection = $1', ['x']);
    expect(rows).toEqual([]);
  });

  it('still rebuilds a good projection', async () => {
    const projection = eventProjection({ name: 'x', handle: async () => undefined, reset: async () => undefined });
    await expect(rebuildProjection({ pool: db.app, tenantId: TENANT, projection })).resolves.toMatchObject({ position: null });
  });
});

describe('new ReadModels', () => {
  it('refuses currencies that are not a CurrencyRegistry at currencies, and a batchBalanceReads that is not a boolean', async () => {
    for (const [name, bad] of notRegistries) {
      expect(await pathOf(() => new ReadModels({ pool: db.app, currencies: bad as never }), name), name).toEqual(['currencies']);
    }
    expect(await pathOf(() => new ReadModels({ pool: db.app, batchBalanceReads: 'no' as never }), 'batchBalanceReads')).toEqual(['batchBalanceReads']);
  });

  it('still reads with good currencies, or with them left out', async () => {
    const expected = ledger.balance('alice');
    expect(expected).toBeDefined();
    for (const options of [{ pool: db.app, currencies }, { pool: db.app }, { pool: db.app, currencies: new CurrencyRegistry(), batchBalanceReads: false }]) {
      const models = new ReadModels(options);
      expect(await models.balance(TENANT, 'eur', 'alice')).toEqual(expected);
    }
  });
});

describe('inlineBalances', () => {
  it('refuses options that are not an object at options, and registries of the wrong type at their names', async () => {
    expect(await pathOf(() => inlineBalances(null as never), 'null')).toEqual(['options']);
    expect(await pathOf(() => inlineBalances('currencies' as never), 'a string')).toEqual(['options']);
    for (const [name, bad] of notRegistries) {
      expect(await pathOf(() => inlineBalances({ currencies: bad as never }), name), name).toEqual(['currencies']);
    }
    expect(await pathOf(() => inlineBalances({ upcasters: {} as never }), 'upcasters')).toEqual(['upcasters']);
  });

  it('still makes a hook with good options, or none (the store above appends through one)', () => {
    for (const hook of [inlineBalances(), inlineBalances({}), inlineBalances({ currencies })]) {
      expect(typeof hook).toBe('function');
      expect(typeof hook.plan).toBe('function');
    }
    expect(ledger.balance('cash')).toBeDefined();
  });
});

describe('eventProjection', () => {
  it('refuses a definition that is not an object at definition, and a handle or reset that is not a function at its name', async () => {
    for (const [name, bad] of [['undefined', undefined], ['null', null], ['a string', 'counts']] as const) {
      expect(await pathOf(() => eventProjection(bad as never), name), name).toEqual(['definition']);
    }
    expect(await pathOf(() => eventProjection({ name: 'counts' } as never), 'no handle')).toEqual(['handle']);
    expect(await pathOf(() => eventProjection({ name: 'counts', handle: async () => undefined } as never), 'no reset')).toEqual(['reset']);
  });

  it('still makes a projection of a good definition', async () => {
    const handled: string[] = [];
    const projection = eventProjection({ name: 'counts', handle: async (_, { stored }) => void handled.push(stored.type), reset: async () => undefined });
    expect(projection.name).toBe('counts');
    await projection.apply({ client: undefined as never, tenantId: TENANT, after: null }, [{ stored: { type: 'AccountOpened' } } as never]);
    expect(handled).toEqual(['AccountOpened']);
  });
});

describe('reconcileLedger', () => {
  it('refuses currencies that are not a CurrencyRegistry at currencies, before any SQL', async () => {
    let reads = 0;
    const models = {
      historyVersion: async () => {
        reads += 1;
        return 0;
      },
      balancesAt: async () => [],
    };
    for (const [name, bad] of notRegistries) {
      expect(await pathOf(() => reconcileLedger({ store, models: models as never, tenantId: TENANT, ledgerId: 'eur', currencies: bad as never }), name), name).toEqual(['currencies']);
    }
    expect(reads).toBe(0);
    // Good currencies reach the read models (here a stub at version 0: nothing to compare).
    await expect(reconcileLedger({ store, models: models as never, tenantId: TENANT, ledgerId: 'eur', currencies })).resolves.toMatchObject({ agrees: true, accountsCompared: 0 });
    expect(reads).toBe(1);
  });
});
