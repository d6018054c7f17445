import { AppendRefusedError, Ledger, WriterFailedError } from '@ledgerkit/ledger-core';
import {
  balancesProjection,
  historyProjection,
  inlineBalances,
  migrateReadModels,
  ProjectionRunner,
  READ_MODEL_MIGRATIONS,
  READ_MODEL_SCHEMA_VERSION,
  ReadModels,
  ReadModelSchemaVersionError,
  rebuildProjection,
  RunnerNotRunningError,
} from '@ledgerkit/projections';
import { PostgresEventStore, type InlineProjection } from '@ledgerkit/store-postgres';
import { runMigrations, type ClientPool } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readReadModelSchemaVersion } from '../src/schema-version.js';
import { currencies, expectBalancesAgree, openFixtureLedger, writeTransfers } from './support/fixtures.js';
import { recordingClient } from './support/recording-client.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// The runner and ReadModels refuse read models at another schema version than their release's,
// with an error naming both versions, before anything runs: on read models at migration 4 (the
// release before migration 5 moved the per-ledger progress) every batch failed instead.

const databases: TestDatabase[] = [];
const ledgers: Ledger[] = [];
const runners: ProjectionRunner[] = [];

afterAll(async () => {
  for (const runner of runners) await runner.stop().catch(() => undefined);
  for (const ledger of ledgers) await ledger.close();
  for (const db of databases) await db.close();
});

async function open(readModelsTo?: number): Promise<TestDatabase> {
  const db = await openTestDatabase(readModelsTo === undefined ? {} : { readModelsTo });
  databases.push(db);
  return db;
}

function runnerOn(db: TestDatabase, pool: ClientPool, store: PostgresEventStore, onError?: (error: Error) => void): ProjectionRunner {
  const runner = new ProjectionRunner({
    pool,
    store,
    tenantIds: ['acme'],
    projections: [balancesProjection(), historyProjection()],
    currencies,
    pollIntervalMs: 50,
    ...(onError === undefined ? {} : { onError }),
  });
  runners.push(runner);
  return runner;
}

/** Rows the runner or a projection would have written, counted as the superuser. */
async function writtenRows(db: TestDatabase): Promise<Record<string, number>> {
  const { rows } = await db.admin.query<Record<string, number>>(
    `SELECT (SELECT count(*)::int FROM ledgerkit.projection_checkpoints) AS checkpoints,
            (SELECT count(*)::int FROM ledgerkit.rm_balances) AS balances,
            (SELECT count(*)::int FROM ledgerkit.rm_account_entries) AS entries`,
  );
  return rows[0] ?? {};
}

describe('read models at migration 4', () => {
  let db: TestDatabase;
  let store: PostgresEventStore;
  let ledger: Ledger;

  beforeAll(async () => {
    db = await open(4);
    store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
    ledger = await openFixtureLedger(store, 'acme');
    ledgers.push(ledger);
    await writeTransfers(ledger, 't', 6);
  });

  it('start() rejects with ReadModelSchemaVersionError (found 4, needed this release’s) before any projection runs; ReadModels and rebuildProjection refuse too; once migrated, the same runner starts', async () => {
    const errors: Error[] = [];
    const runner = runnerOn(db, db.app, store, (error) => errors.push(error));
    const started = runner.start();
    // Asked while start() checks: waits for the check and rejects with its error.
    const caughtUp = runner.whenCaughtUp(30_000);
    const rebuilt = runner.rebuild('balances', 'acme');
    const refusal = await started.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(ReadModelSchemaVersionError);
    expect(refusal).toMatchObject({ code: 'read_model_schema_version', found: 4, needed: READ_MODEL_SCHEMA_VERSION });
    expect((refusal as Error).message).toBe(
      `the read-model schema is at version 4; this release of @ledgerkit/projections needs version ${READ_MODEL_SCHEMA_VERSION}: run its migrateReadModels(), as an administrator`,
    );
    await expect(caughtUp).rejects.toBe(refusal);
    await expect(rebuilt).rejects.toBe(refusal);

    // Nothing ran: not a checkpoint row, not a read-model row, no error reported batch after batch.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await writtenRows(db)).toEqual({ checkpoints: 0, balances: 0, entries: 0 });
    expect(errors).toEqual([]);
    await expect(runner.whenCaughtUp(1_000)).rejects.toMatchObject({ reason: 'not-started' });

    const models = new ReadModels({ pool: db.app, currencies });
    await expect(models.check()).rejects.toMatchObject({ name: 'ReadModelSchemaVersionError', found: 4, needed: READ_MODEL_SCHEMA_VERSION });
    await expect(models.balance('acme', 'eur', 'alice')).rejects.toMatchObject({ name: 'ReadModelSchemaVersionError', found: 4, needed: READ_MODEL_SCHEMA_VERSION });
    await expect(models.statement('acme', 'eur', 'alice')).rejects.toBeInstanceOf(ReadModelSchemaVersionError);
    await expect(rebuildProjection({ pool: db.app, tenantId: 'acme', projection: balancesProjection() })).rejects.toMatchObject({ found: 4 });
    expect(await writtenRows(db)).toEqual({ checkpoints: 0, balances: 0, entries: 0 });

    expect(await migrateReadModels({ pool: db.admin, roles: db.roles })).toEqual({
      applied: READ_MODEL_MIGRATIONS.slice(4).map((migration) => migration.version),
      schemaVersion: READ_MODEL_SCHEMA_VERSION,
    });
    await runner.start();
    await runner.whenCaughtUp(30_000);
    expect((await runner.status()).map((status) => [status.projection, status.state, status.lagEvents])).toEqual([
      ['balances', 'live', 0],
      ['history', 'live', 0],
    ]);
    await expectBalancesAgree(models, ledger, 'acme');
    await expect(models.check()).resolves.toBeUndefined();
    expect(errors).toEqual([]);
    await runner.stop();
  });

  it('a newer release’s migration recorded in the history: start() and a first read refuse it as newer, naming both versions', async () => {
    const newer = READ_MODEL_SCHEMA_VERSION + 1;
    await migrateReadModels({ pool: db.admin, roles: db.roles });
    await db.admin.query('INSERT INTO ledgerkit.projection_migrations (version, name) VALUES ($1, $2)', [newer, 'a newer release']);
    try {
      // Pools of their own: a pool that passed the check is not checked again.
      const pool = db.pool(db.appUrl, 4);
      const runner = runnerOn(db, pool, store);
      const refusal = await runner.start().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refusal).toMatchObject({ name: 'ReadModelSchemaVersionError', found: newer, needed: READ_MODEL_SCHEMA_VERSION });
      expect((refusal as Error).message).toContain(`at version ${newer}, newer than this release of @ledgerkit/projections knows (it needs version ${READ_MODEL_SCHEMA_VERSION})`);
      const models = new ReadModels({ pool: db.pool(db.appUrl, 2), currencies });
      await expect(models.balance('acme', 'eur', 'alice')).rejects.toMatchObject({ found: newer, needed: READ_MODEL_SCHEMA_VERSION });
      // This release's migrations refuse it too.
      await expect(migrateReadModels({ pool: db.admin, roles: db.roles })).rejects.toThrow(/newer than this release/);
    } finally {
      await db.admin.query('DELETE FROM ledgerkit.projection_migrations WHERE version = $1', [newer]);
    }
  });

  it('stop() during start()’s check: start() rejects with RunnerNotRunningError (stopped), nothing started', async () => {
    const runner = runnerOn(db, db.pool(db.appUrl, 4), store);
    const started = runner.start();
    const stopped = runner.stop();
    await expect(started).rejects.toBeInstanceOf(RunnerNotRunningError);
    await expect(started).rejects.toMatchObject({ reason: 'stopped' });
    await stopped;
    expect((await runner.status()).map((status) => status.state)).toEqual(['stopped', 'stopped']);
    expect(() => runner.start()).toThrow(/stopped/);
  });
});

describe('the version read', () => {
  it('is the number of migrations applied, at every step from none to this release’s, as the application role and as a superuser', async () => {
    const db = await open(0);
    const versionAs = async (pool: ClientPool): Promise<number> => {
      const client = await pool.connect();
      try {
        return await readReadModelSchemaVersion(client);
      } finally {
        client.release();
      }
    };
    for (let version = 0; version <= READ_MODEL_SCHEMA_VERSION; version += 1) {
      if (version > 0) {
        await runMigrations({
          pool: db.admin,
          roles: db.roles,
          schema: 'ledgerkit',
          historyTable: 'projection_migrations',
          migrations: READ_MODEL_MIGRATIONS.slice(0, version),
          packageName: '@ledgerkit/projections',
        });
      }
      expect({ version, app: await versionAs(db.app), admin: await versionAs(db.admin) }).toEqual({ version, app: version, admin: version });
    }
  });
});

describe('inline balances on read models at another version', () => {
  /** An inlineBalances hook whose general path records the statements it sends in `statements`. */
  function recordedHook(statements: string[]): InlineProjection {
    const balances = inlineBalances({ currencies });
    return Object.assign(async (client: Parameters<InlineProjection>[0], append: Parameters<InlineProjection>[1]) => balances(recordingClient(client, statements), append), {
      plan: balances.plan,
    });
  }
  const schemaChecks = (statements: readonly string[]): number => statements.filter((text) => text.includes('has_table_privilege')).length;
  const settled = (promise: Promise<unknown>): Promise<unknown> => promise.then((value) => value, (error: unknown) => error);

  it('the first append through the hook on read models at migration 4 rejects with ReadModelSchemaVersionError and writes nothing; once migrated the same hook applies appends and checks no more; a newer release’s version is refused too', async () => {
    const db = await open(4);
    const statements: string[] = [];
    const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: recordedHook(statements) });
    const ledger = await Ledger.open({ store, tenantId: 'acme', ledgerId: 'eur', currencies, snapshotEveryEvents: 0 });
    ledgers.push(ledger);

    // The store refuses the append with the hook's error as the cause (AppendRefusedError: nothing
    // written, not retriable), and the writer passes that on: "were not applied", not retriable.
    const failure = await settled(ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }));
    expect(failure).toBeInstanceOf(WriterFailedError);
    expect(failure).toMatchObject({ code: 'writer_failed', retriable: false });
    expect((failure as Error).message).toContain('were not applied');
    const storeRefusal = (failure as Error).cause;
    expect(storeRefusal).toBeInstanceOf(AppendRefusedError);
    expect(storeRefusal).toMatchObject({ code: 'append_refused', retriable: false });
    const refusal = (storeRefusal as Error).cause;
    expect(refusal).toBeInstanceOf(ReadModelSchemaVersionError);
    expect(refusal).toMatchObject({ code: 'read_model_schema_version', found: 4, needed: READ_MODEL_SCHEMA_VERSION });
    // Rolled back, events included, and checked before the hook wrote anything.
    expect(await store.readStream({ tenantId: 'acme', ledgerId: 'eur', direction: 'forward', limit: 10 })).toEqual([]);
    expect(statements.filter((text) => !text.includes('has_table_privilege'))).toEqual([]);
    // Refused: the next append checks again.
    expect(await settled(ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }))).toMatchObject({ cause: { cause: { found: 4 } } });
    expect(schemaChecks(statements)).toBe(2);

    await migrateReadModels({ pool: db.admin, roles: db.roles });
    await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    for (const accountId of ['alice', 'bob', 'carol']) await ledger.openAccount({ accountId, currency: 'EUR', type: 'liability' });
    await writeTransfers(ledger, 't', 12, 3);
    // One check passed, at the first append after the migration: no round trip per append.
    expect(schemaChecks(statements)).toBe(3);
    await expectBalancesAgree(new ReadModels({ pool: db.app, currencies }), ledger, 'acme');

    // A newer release's migration: a hook that has not checked yet refuses it as newer.
    const newer = READ_MODEL_SCHEMA_VERSION + 1;
    await db.admin.query('INSERT INTO ledgerkit.projection_migrations (version, name) VALUES ($1, $2)', [newer, 'a newer release']);
    const newerStore = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000, inline: inlineBalances({ currencies }) });
    const other = await Ledger.open({ store: newerStore, tenantId: 'acme', ledgerId: 'other', currencies, snapshotEveryEvents: 0 });
    ledgers.push(other);
    const newerFailure = await settled(other.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }));
    expect(((newerFailure as Error).cause as Error).cause).toMatchObject({ name: 'ReadModelSchemaVersionError', found: newer, needed: READ_MODEL_SCHEMA_VERSION });
    expect(await newerStore.readStream({ tenantId: 'acme', ledgerId: 'other', direction: 'forward', limit: 10 })).toEqual([]);
  });
});
