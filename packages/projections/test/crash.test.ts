import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LedgerSource } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, ProjectionRunner, ReadModels } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectReadModelsAgree } from './support/agreement.js';
import { createSeenTable, currencies, FIXTURE_ACCOUNTS, openFixtureLedger, seenProjection, seenVersions, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHILD = fileURLToPath(new URL('./support/runner-child.ts', import.meta.url));
const TENANT = 'crash';
const TRANSFERS = 3_000;
const KILLS = 6;

let db: TestDatabase;
let store: PostgresEventStore;
const children: ChildProcess[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  await createSeenTable(db);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await db?.close();
});

/** Starts the runner in a process of its own (TypeScript through tsx's loader, one process so SIGKILL hits the runner itself). */
async function startChild(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    cwd: REPO_ROOT,
    env: { ...process.env, TSX_TSCONFIG_PATH: `${REPO_ROOT}tsconfig.json`, APP_URL: db.appUrl, TENANT_ID: TENANT, BATCH_SIZE: '20' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('started')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`runner child exited early (${code ?? signal}): ${stderr}`)));
  });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

const sum = (progress: Map<string, number>): number => [...progress.values()].reduce((total, applied) => total + applied, 0);

async function checkpoints(): Promise<Map<string, number>> {
  const { rows } = await db.admin.query<{ projection: string; events_applied: string }>('SELECT projection, events_applied FROM ledgerkit.projection_checkpoints WHERE tenant_id = $1', [TENANT]);
  return new Map(rows.map((row) => [row.projection, Number(row.events_applied)]));
}

describe('a runner killed at random points during catch-up', () => {
  it('restarts from its checkpoint, and the read models still equal replay: nothing lost, nothing applied twice', async () => {
    const ledger = await openFixtureLedger(store, TENANT);
    await writeTransfers(ledger, 'c', TRANSFERS, 250);
    const total = ledger.version;
    let killedMidway = 0;
    for (let kills = 0; kills < KILLS; kills += 1) {
      const before = sum(await checkpoints());
      const child = await startChild();
      // Once this process has committed something, at a random point of the batches that follow.
      for (let polls = 0; sum(await checkpoints()) === before && polls < 2_000; polls += 1) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 150)));
      await kill(child);
      const progress = await checkpoints();
      if ([...progress.values()].some((applied) => applied < total) && sum(progress) > before) killedMidway += 1;
    }
    // Every kill landed during catch-up, after the process had made progress.
    expect(killedMidway).toBe(KILLS);

    // A last runner finishes the catch-up.
    const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: [TENANT], projections: [balancesProjection(), historyProjection(), seenProjection('seen', () => false)], currencies });
    runner.start();
    try {
      await runner.whenCaughtUp();
      const statuses = await runner.status();
      for (const status of statuses) expect(status, status.projection).toMatchObject({ eventsApplied: total, eventsSkipped: 0, lagEvents: 0, lastError: null });
    } finally {
      await runner.stop();
    }
    expect(await seenVersions(db.admin, TENANT, 'seen')).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const models = new ReadModels({ pool: db.app, currencies });
    const source: LedgerSource = { store, codec: ledger.writer.codec, tenantId: TENANT, ledgerId: 'eur' };
    let n = 7;
    await expectReadModelsAgree({ models, ledger, source, currencies, accountIds: FIXTURE_ACCOUNTS, pick: (k) => (n = (n * 31 + 11) % 100_003) % k, statementLimitMax: 1_000 });
    await ledger.close();
  }, 90_000);
});
