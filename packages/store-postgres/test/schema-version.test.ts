import { migrate, MIGRATIONS, PostgresEventStore, SCHEMA_VERSION, StoreSchemaVersionError } from '@ledgerkit/store-postgres';
import { runMigrations } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_VERSION_MARKS } from '../src/schema-version.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// PostgresEventStore.open refuses a database at another store schema version with an error
// naming the version it found and the one this release needs, as fields and in its message.

let db: TestDatabase;

beforeAll(async () => {
  db = await openTestDatabase({ migrateTo: 0 });
});

afterAll(async () => {
  await db?.close();
});

const refusalOf = (promise: Promise<unknown>): Promise<unknown> => promise.then(
  () => new Error('expected open() to refuse the database'),
  (error: unknown) => error,
);

describe('PostgresEventStore.open on a database at another store schema version', () => {
  it('refuses every version short of this release’s with StoreSchemaVersionError naming the version found and the one needed, from none to the last; opens at this release’s', async () => {
    // Versions 1 to 6 from the catalog's marks, 7 on from the history the application role may read.
    expect(STORE_VERSION_MARKS).toHaveLength(6);
    for (let version = 0; version < SCHEMA_VERSION; version += 1) {
      if (version > 0) {
        await runMigrations({ pool: db.admin, roles: db.roles, schema: 'ledgerkit', historyTable: 'schema_migrations', migrations: MIGRATIONS.slice(0, version), packageName: '@ledgerkit/store-postgres' });
      }
      const refusal = await refusalOf(PostgresEventStore.open({ pool: db.app }));
      expect(refusal, `at version ${version}`).toBeInstanceOf(StoreSchemaVersionError);
      expect(refusal, `at version ${version}`).toMatchObject({ name: 'StoreSchemaVersionError', code: 'store_schema_version', found: version, needed: SCHEMA_VERSION });
      const message = (refusal as Error).message;
      expect(message).toContain(`needs version ${SCHEMA_VERSION}`);
      expect(message).toContain("is not migrated to this release's version");
      if (version > 0) expect(message).toContain(`at store schema version ${version};`);
    }
    expect(await migrate({ pool: db.admin, roles: db.roles })).toEqual({ applied: [SCHEMA_VERSION], schemaVersion: SCHEMA_VERSION });
    await expect(PostgresEventStore.open({ pool: db.app })).resolves.toBeInstanceOf(PostgresEventStore);
  });

  it('reads the recorded version, which migration 7 lets the application role read: a newer release’s is refused as newer, one set back as older', async () => {
    const { rows } = await db.app.query<{ readable: boolean }>(`SELECT has_table_privilege('ledgerkit.schema_migrations', 'SELECT') AS readable`);
    expect(rows[0]?.readable).toBe(true);
    const newer = SCHEMA_VERSION + 1;
    await db.admin.query('INSERT INTO ledgerkit.schema_migrations (version, name) VALUES ($1, $2)', [newer, 'a newer release']);
    try {
      const refusal = await refusalOf(PostgresEventStore.open({ pool: db.app }));
      expect(refusal).toBeInstanceOf(StoreSchemaVersionError);
      expect(refusal).toMatchObject({ code: 'store_schema_version', found: newer, needed: SCHEMA_VERSION });
      expect((refusal as Error).message).toBe(
        `schema ledgerkit is at store schema version ${newer}, newer than this release of @ledgerkit/store-postgres knows (it needs version ${SCHEMA_VERSION}): a newer release migrated it; run that release or a later one`,
      );

      // Set back: the history says the last migration is not applied (its objects are there).
      await db.admin.query('DELETE FROM ledgerkit.schema_migrations WHERE version >= $1', [SCHEMA_VERSION]);
      const older = await refusalOf(PostgresEventStore.open({ pool: db.app }));
      expect(older).toMatchObject({ code: 'store_schema_version', found: SCHEMA_VERSION - 1, needed: SCHEMA_VERSION });
      expect((older as Error).message).toBe(
        `schema ledgerkit is not migrated to this release's version: it is at store schema version ${SCHEMA_VERSION - 1}; this release of @ledgerkit/store-postgres needs version ${SCHEMA_VERSION}: run its migrate(), as an administrator`,
      );
    } finally {
      await db.admin.query('DELETE FROM ledgerkit.schema_migrations WHERE version >= $1', [SCHEMA_VERSION]);
      await db.admin.query('INSERT INTO ledgerkit.schema_migrations (version, name) VALUES ($1, $2)', [SCHEMA_VERSION, MIGRATIONS[SCHEMA_VERSION - 1]!.name]);
    }
    await expect(PostgresEventStore.open({ pool: db.app })).resolves.toBeInstanceOf(PostgresEventStore);
  });
});
