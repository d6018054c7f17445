/**
 * Start-up checks of `createBankingApi`: read models at another schema version than this release's
 * are refused before the API is returned (so before it can listen), naming both versions, and
 * nothing it opened stays open.
 */
import { migrateReadModels, READ_MODEL_SCHEMA_VERSION, ReadModelSchemaVersionError } from '@ledgerkit/projections';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AUDIENCE, DEV_ALGORITHM, DEV_ISSUER, generateDevKeys } from '../src/dev-tokens.js';
import { createLogger } from '../src/logger.js';
import { createBankingApi } from '../src/server.js';
import { openTestDatabase, type TestDatabase } from './support/harness.js';

const OLDER = READ_MODEL_SCHEMA_VERSION - 1;
let db: TestDatabase;

beforeAll(async () => {
  db = await openTestDatabase({ readModelsTo: OLDER });
});

afterAll(async () => {
  await db?.close();
});

async function create() {
  const keys = await generateDevKeys();
  return createBankingApi({
    databaseUrl: db.appUrl,
    poolSize: 4,
    auth: { issuer: DEV_ISSUER, audience: DEFAULT_AUDIENCE, algorithms: [DEV_ALGORITHM], key: keys.publicKey },
    settings: { tenantsMax: 2 },
    logger: createLogger({ level: 'silent' }),
  });
}

/** Connections of the application role to the test database. */
async function appConnections(): Promise<number> {
  const { rows } = await db.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND usename = $1', [db.roles.app]);
  return rows[0]?.n ?? -1;
}

describe('createBankingApi on read models of another release', () => {
  it('rejects with ReadModelSchemaVersionError naming the found and needed versions, and leaves no connection open', async () => {
    const error: unknown = await create().then(
      async (api) => {
        await api.close();
        return undefined;
      },
      (refused: unknown) => refused,
    );
    expect(error).toBeInstanceOf(ReadModelSchemaVersionError);
    expect(error).toMatchObject({ code: 'read_model_schema_version', found: OLDER, needed: READ_MODEL_SCHEMA_VERSION });
    expect((error as Error).message).toContain(`version ${OLDER}`);
    expect((error as Error).message).toContain(`needs version ${READ_MODEL_SCHEMA_VERSION}`);
    // The pools were ended before the rejection: no connection of the API's role is left.
    await expect.poll(appConnections, { timeout: 5_000 }).toBe(0);
  });

  it('starts once the read models are migrated to this release', async () => {
    await migrateReadModels({ pool: db.admin, roles: db.roles });
    const api = await create();
    try {
      expect(await api.listen({ port: 0 })).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await api.close();
    }
    await expect.poll(appConnections, { timeout: 5_000 }).toBe(0);
  });
});
