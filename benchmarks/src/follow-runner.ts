/**
 * The projection runner of the follow scenarios, in a process of its own as it is deployed: the
 * writer's process does not share its event loop. Started by `projections-bench.ts` with an IPC
 * channel; arguments: the application role's URL, the tenant, the batch size, the benchmark's
 * ledger and the projections to run (`balances`, `history`, comma-separated).
 *
 * Messages to the parent: `{ type: 'ready' }` once caught up with the log as it stands,
 * `{ type: 'batch', projection, events, ledgerVersion, atNs }` for every committed batch (`atNs`
 * on the monotonic clock every process of the machine shares), `{ type: 'drained' }` after a
 * `{ type: 'drain' }` from the parent once it has caught up and stopped.
 */
import { CurrencyRegistry } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, ProjectionRunner } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import pg from 'pg';
import { defaultTypeParsers } from './postgres-database.js';

/** A committed batch, as the parent receives it. */
export interface FollowBatchMessage {
  readonly type: 'batch';
  readonly projection: string;
  readonly events: number;
  /** The ledger version the batch applied up to in the benchmark's ledger (0: none of it). */
  readonly ledgerVersion: number;
  /** When it committed: `process.hrtime.bigint()` as a decimal string. */
  readonly atNs: string;
}

/** What the runner process sends its parent. */
export type FollowRunnerMessage = { readonly type: 'ready' } | { readonly type: 'drained' } | FollowBatchMessage;

const POOL_SIZE_MAX = 6;
const DRAIN_TIMEOUT_MS = 300_000;

async function main(): Promise<void> {
  const [appUrl, tenantId, batchSizeText, ledgerId, names] = process.argv.slice(2);
  if (appUrl === undefined || tenantId === undefined || batchSizeText === undefined || ledgerId === undefined || names === undefined || process.send === undefined) {
    throw new Error('usage: follow-runner <app url> <tenant> <batch size> <ledger> <projections> (with an IPC channel)');
  }
  const projections = names.split(',').map((name) => {
    if (name === 'balances') return balancesProjection();
    if (name === 'history') return historyProjection();
    throw new Error(`follow-runner: unknown projection '${name}'`);
  });
  const send = (message: FollowRunnerMessage): void => {
    process.send?.(message);
  };
  const pool = new pg.Pool({ connectionString: appUrl, max: POOL_SIZE_MAX, idleTimeoutMillis: 0, types: defaultTypeParsers() });
  pool.on('error', () => undefined);
  const store = await PostgresEventStore.open({ pool, horizonWaitMs: 5_000 });
  const runner = new ProjectionRunner({
    pool,
    store,
    tenantIds: [tenantId],
    projections,
    currencies: new CurrencyRegistry(),
    batchSize: Number(batchSizeText),
    onBatch: (batch) =>
      send({ type: 'batch', projection: batch.projection, events: batch.events, ledgerVersion: batch.ledgerVersions.get(ledgerId) ?? 0, atNs: process.hrtime.bigint().toString() }),
  });
  // A parent that dies (or fails) without asking for a drain closes the channel: stop with it.
  let finished = false;
  process.on('disconnect', () => {
    if (!finished) process.exit(1);
  });
  await runner.start();
  await runner.whenCaughtUp();
  send({ type: 'ready' });
  await new Promise<void>((resolve) => {
    process.on('message', (message: { type?: string }) => {
      if (message.type === 'drain') resolve();
    });
  });
  try {
    await runner.whenCaughtUp(DRAIN_TIMEOUT_MS);
  } finally {
    await runner.stop();
    await pool.end();
  }
  finished = true;
  send({ type: 'drained' });
  process.disconnect();
}

main().catch((error: unknown) => {
  process.stderr.write(`follow-runner: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
