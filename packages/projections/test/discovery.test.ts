import { balancesProjection, ProjectionRunner, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { InvalidInputError, LimitExceededError, type Ledger } from '@ledgerkit/ledger-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, eventually, expectBalancesAgree, openFixtureLedger, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
const ledgers: Ledger[] = [];
const runners: ProjectionRunner[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
});

afterAll(async () => {
  await Promise.all(runners.map((runner) => runner.stop().catch(() => undefined)));
  for (const ledger of ledgers) await ledger.close();
  await db?.close();
});

describe('tenant discovery', () => {
  it('a runner given discoverTenants projects the tenants it returns, including ones added while it runs', async () => {
    const known: string[] = ['disc-1'];
    const first = await openFixtureLedger(store, 'disc-1');
    ledgers.push(first);
    await writeTransfers(first, 'a', 10, 5);
    const runner = new ProjectionRunner({ pool: db.app, store, projections: [balancesProjection()], currencies, discoverTenants: async () => [...known], tenantDiscoveryIntervalMs: 100 });
    runners.push(runner);
    runner.start();
    await runner.whenCaughtUp();
    await expectBalancesAgree(models, first, 'disc-1');

    const second = await openFixtureLedger(store, 'disc-2');
    ledgers.push(second);
    await writeTransfers(second, 'b', 10, 5);
    known.push('disc-2');
    // whenCaughtUp covers the tenants a discovery after the call finds.
    await runner.whenCaughtUp();
    await expectBalancesAgree(models, second, 'disc-2');
    expect((await runner.status()).map((status) => status.tenantId).sort()).toEqual(['disc-1', 'disc-2']);
  });

  it('a NOTIFY of an unknown tenant triggers a discovery long before the interval', async () => {
    const known: string[] = [];
    let calls = 0;
    const runner = new ProjectionRunner({
      pool: db.app,
      store,
      projections: [balancesProjection()],
      currencies,
      discoverTenants: async () => {
        calls += 1;
        return [...known];
      },
      tenantDiscoveryIntervalMs: 3_600_000,
    });
    runners.push(runner);
    runner.start();
    await eventually(async () => calls >= 1, 5_000, 'the first discovery');
    known.push('disc-3');
    const ledger = await openFixtureLedger(store, 'disc-3');
    ledgers.push(ledger);
    await writeTransfers(ledger, 'c', 5, 5);
    await eventually(async () => (await models.balance('disc-3', 'eur', 'cash'))?.debitsPosted === ledger.balance('cash')?.debitsPosted, 10_000, 'disc-3 projected');
    await runner.stop();
  });

  it('a failing or invalid discovery is reported and retried; the runner keeps its tenants', async () => {
    const errors: string[] = [];
    let fail = true;
    const runner = new ProjectionRunner({
      pool: db.app,
      store,
      tenantIds: ['disc-1'],
      projections: [balancesProjection()],
      currencies,
      discoverTenants: async () => {
        if (fail) throw new Error('registry down');
        return ['disc-1', 'not a tenant id!'];
      },
      tenantDiscoveryIntervalMs: 100,
      onError: (error) => errors.push(error.message),
    });
    runners.push(runner);
    runner.start();
    await eventually(async () => errors.includes('registry down'), 5_000, 'the discovery error');
    fail = false;
    await eventually(async () => errors.some((message) => message.includes('not a tenant id!')), 5_000, 'the invalid tenant reported');
    expect((await runner.status()).map((status) => status.tenantId)).toEqual(['disc-1']);
    await runner.stop();
  });

  it('a discovery answering something other than an array, or throwing synchronously, is reported as a failed discovery and adds no tenant', async () => {
    const answers: unknown[] = ['disc-1', null, 42, { 0: 'disc-1' }];
    let call = 0;
    const errors: Error[] = [];
    const runner = new ProjectionRunner({
      pool: db.app,
      store,
      tenantIds: ['disc-2'],
      projections: [balancesProjection()],
      currencies,
      // Neither async nor typed: what a JavaScript caller may hand over.
      discoverTenants: (() => {
        call += 1;
        if (call === 1) throw new Error('sync failure');
        return Promise.resolve(answers[(call - 2) % answers.length]);
      }) as unknown as () => Promise<readonly string[]>,
      tenantDiscoveryIntervalMs: 100,
      onError: (error) => errors.push(error),
    });
    runners.push(runner);
    runner.start();
    await eventually(async () => errors.filter((error) => error instanceof InvalidInputError).length >= answers.length, 10_000, 'each wrong answer reported');
    expect(errors[0]?.message).toBe('sync failure');
    // A string is not a list of one-character tenants.
    expect(errors.filter((error) => error instanceof InvalidInputError).map((error) => error.message)).toEqual(
      expect.arrayContaining([expect.stringContaining('got string'), expect.stringContaining('got null'), expect.stringContaining('got number'), expect.stringContaining('got object')]),
    );
    expect((await runner.status()).map((status) => status.tenantId)).toEqual(['disc-2']);
    await runner.stop();
  });

  it('whenCaughtUp with a timeout longer than one timer can wait (over ~24.8 days), called during start, waits for the start', async () => {
    const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: ['disc-1'], projections: [balancesProjection()], currencies });
    runners.push(runner);
    const started = runner.start();
    await expect(runner.whenCaughtUp(30 * 86_400_000)).resolves.toBeUndefined();
    await started;
    await runner.stop();
  });

  it('needs tenants or a way to discover them', () => {
    expect(() => new ProjectionRunner({ pool: db.app, store, projections: [balancesProjection()] })).toThrow(LimitExceededError);
  });
});
