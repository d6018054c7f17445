import type { GlobalEvent, Ledger } from '@ledgerkit/ledger-core';
import { migrateReadModels, ProjectionRunner, READ_MODEL_SCHEMA_VERSION } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { withTenant } from '@ledgerkit/tenant-rls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSeenTable, currencies, globalLog, openFixtureLedger, seenProjection, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// Read models at migration 4 kept each projection's per-ledger progress as a JSON map in its
// checkpoint row (`ledger_versions`). Migration 5 moves it to rows of its own: a database the old
// release wrote must report the same lag after the upgrade, and go on from the same checkpoint.

let db: TestDatabase;
let store: PostgresEventStore;
const ledgers: Ledger[] = [];

beforeAll(async () => {
  db = await openTestDatabase({ readModelsTo: 4 });
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  await createSeenTable(db);
});

afterAll(async () => {
  for (const ledger of ledgers) await ledger.close();
  await db?.close();
});

/**
 * Moves a checkpoint to `log[handled - 1]` as the release before migration 5 did: its per-ledger
 * progress merged into the row's JSON map (`ledger_versions || $::jsonb`), as the application role.
 */
async function advanceAsBefore(tenantId: string, projection: string, log: readonly GlobalEvent[], handled: number): Promise<Record<string, number>> {
  // A Map, as the runner had: a ledger is named `constructor` here.
  const handledVersions = new Map<string, number>();
  for (const { event } of log.slice(0, handled)) handledVersions.set(event.ledgerId, Math.max(handledVersions.get(event.ledgerId) ?? 0, event.ledgerVersion));
  const versions = Object.fromEntries(handledVersions);
  await withTenant(db.app, tenantId, async (client) => {
    await client.query('INSERT INTO ledgerkit.projection_checkpoints (tenant_id, projection) VALUES ($1, $2)', [tenantId, projection]);
    if (handled === 0) return;
    await client.query(
      `UPDATE ledgerkit.projection_checkpoints SET position = $3, events_applied = events_applied + $4, ledger_versions = ledger_versions || $5::jsonb,
         last_recorded_at = $6, updated_at = now() WHERE tenant_id = $1 AND projection = $2`,
      [tenantId, projection, log[handled - 1]?.position, handled, JSON.stringify(versions), log[handled - 1]?.event.recordedAt],
    );
  });
  return versions;
}

/** Row-level security of a table: [enabled, forced]. */
async function rowSecurity(table: string): Promise<[boolean, boolean]> {
  const { rows } = await db.admin.query<{ enabled: boolean; forced: boolean }>(
    `SELECT relrowsecurity AS enabled, relforcerowsecurity AS forced FROM pg_class WHERE oid = $1::regclass`,
    [`ledgerkit.${table}`],
  );
  return [rows[0]?.enabled ?? false, rows[0]?.forced ?? false];
}

describe('read-model migration 5 on read models the previous release wrote', () => {
  it('moves the per-ledger progress out of the checkpoints into rows, for every tenant, and status() reports the same lag', async () => {
    const tenants = ['upgrade-a', 'upgrade-b'];
    const expected: Record<string, Record<string, number>> = {};
    const logs = new Map<string, GlobalEvent[]>();
    for (const tenantId of tenants) {
      // Several ledgers, one a name of Object.prototype's, written in turns so that the log mixes them.
      const opened = [];
      for (const ledgerId of ['eur', 'usd', 'constructor']) opened.push(await openFixtureLedger(store, tenantId, ledgerId));
      ledgers.push(...opened);
      for (let round = 0; round < 3; round += 1) {
        for (const ledger of opened) await writeTransfers(ledger, `r${round}`, 2 + round);
      }
      const log = await globalLog(store, tenantId);
      logs.set(tenantId, log);
      expected[tenantId] = await advanceAsBefore(tenantId, 'seen', log, 20);
      await advanceAsBefore(tenantId, 'never-ran', log, 0);
    }
    const lagBefore = await lagsFromMaps();

    expect(await migrateReadModels({ pool: db.admin, roles: db.roles })).toEqual({
      // 5 and every migration after it.
      applied: Array.from({ length: READ_MODEL_SCHEMA_VERSION - 4 }, (_, index) => 5 + index),
      schemaVersion: READ_MODEL_SCHEMA_VERSION,
    });

    const { rows } = await db.admin.query<{ tenant_id: string; projection: string; ledger_id: string; v: string }>(
      'SELECT tenant_id, projection, ledger_id, ledger_version AS v FROM ledgerkit.projection_ledger_versions ORDER BY 1, 2, 3',
    );
    const moved: Record<string, Record<string, number>> = {};
    for (const row of rows) {
      expect(row.projection).toBe('seen');
      (moved[row.tenant_id] ??= {})[row.ledger_id] = Number(row.v);
    }
    expect(moved).toEqual(expected);
    const column = await db.admin.query(`SELECT 1 FROM information_schema.columns WHERE table_schema = 'ledgerkit' AND table_name = 'projection_checkpoints' AND column_name = 'ledger_versions'`);
    expect(column.rowCount).toBe(0);
    // The copy lifted the checkpoints' forced row-level security for its transaction only.
    expect(await rowSecurity('projection_checkpoints')).toEqual([true, true]);
    expect(await rowSecurity('projection_ledger_versions')).toEqual([true, true]);

    const lagAfter = await lagsOf(tenants);
    expect(lagAfter).toEqual(lagBefore);
    for (const tenantId of tenants) {
      const total = (logs.get(tenantId) ?? []).length;
      expect(lagAfter[tenantId]).toEqual({ seen: total - 20, 'never-ran': total });
    }

    // The runner of this release goes on from the checkpoint the old one left.
    const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: tenants, projections: [seenProjection('seen', () => false)], currencies });
    runner.start();
    try {
      await runner.whenCaughtUp();
      expect((await runner.status()).map((status) => status.lagEvents)).toEqual([0, 0]);
    } finally {
      await runner.stop();
    }
    for (const tenantId of tenants) {
      const { rows: seen } = await db.admin.query<{ ledger_id: string; v: string }>(
        `SELECT ledger_id, ledger_version AS v FROM test_seen.events WHERE tenant_id = $1 AND projection = 'seen' ORDER BY 1, 2`,
        [tenantId],
      );
      const after = (logs.get(tenantId) ?? []).slice(20).map(({ event }) => `${event.ledgerId}:${event.ledgerVersion}`);
      expect(seen.map((row) => `${row.ledger_id}:${row.v}`).sort()).toEqual(after.sort());
    }
  });
});

/** lagEvents per tenant and projection, worked out as the release before did: the streams' heads against each checkpoint's JSON map. */
async function lagsFromMaps(): Promise<Record<string, Record<string, number | null>>> {
  const { rows } = await db.admin.query<{ tenant_id: string; projection: string; lag: string }>(
    `SELECT c.tenant_id, c.projection, sum(greatest(s.version - coalesce((c.ledger_versions ->> s.ledger_id)::bigint, 0), 0)) AS lag
       FROM ledgerkit.projection_checkpoints c JOIN ledgerkit.ledger_streams s ON s.tenant_id = c.tenant_id GROUP BY 1, 2`,
  );
  const lags: Record<string, Record<string, number | null>> = {};
  for (const row of rows) (lags[row.tenant_id] ??= {})[row.projection] = Number(row.lag);
  return lags;
}

/** lagEvents per tenant and projection, as a runner that is not started reports them. */
async function lagsOf(tenants: readonly string[]): Promise<Record<string, Record<string, number | null>>> {
  const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: [...tenants], projections: [seenProjection('seen', () => false), seenProjection('never-ran', () => false)], currencies });
  const lags: Record<string, Record<string, number | null>> = {};
  for (const status of await runner.status()) (lags[status.tenantId] ??= {})[status.projection] = status.lagEvents;
  return lags;
}
