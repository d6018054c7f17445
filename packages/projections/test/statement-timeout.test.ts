import { ProjectionRunner, type ProjectionStatus } from '@ledgerkit/projections';
import { describe, expect, it } from 'vitest';
import { currencies, eventually, openFixtureLedger, seenProjection, seenVersions, writeTransfers } from './support/fixtures.js';
import { useRunnerFile } from './support/runner-files.js';

// A role with a statement_timeout (a common guard) cancels a batch that takes too long. The
// error is transient, so the runner retries; retried at the same size, the batch would time out
// forever and the projection never get past it.

const file = useRunnerFile();

describe('a batch cancelled by a statement timeout', () => {
  it('is retried in smaller batches until one fits in the timeout, so the projection gets past it, applying each event once', async () => {
    const tenantId = 'timeouts';
    const ledger = await openFixtureLedger(file.store, tenantId);
    await writeTransfers(ledger, 'a', 40, 8);
    // Batches of more events than this outlast the statement timeout.
    const eventsMax = 8;
    const inner = seenProjection('slow', () => false);
    const batchSizes: number[] = [];
    const projection = {
      ...inner,
      async apply(context: Parameters<typeof inner.apply>[0], events: Parameters<typeof inner.apply>[1]) {
        batchSizes.push(events.length);
        if (events.length > eventsMax) {
          // The work of a big batch, as the server's statement timeout sees it.
          await context.client.query(`SET LOCAL statement_timeout = '20ms'`);
          await context.client.query('SELECT pg_sleep(1)');
        }
        await inner.apply(context, events);
      },
    };
    const errors: Error[] = [];
    const runner = file.track(new ProjectionRunner({ pool: file.db.app, store: file.store, tenantIds: [tenantId], projections: [projection], currencies, batchSize: 100, pollIntervalMs: 50, onError: (error) => errors.push(error) }));
    runner.start();
    await eventually(async () => ((await runner.status())[0] as ProjectionStatus).eventsApplied === ledger.version, 20_000, 'every event applied');
    expect(await seenVersions(file.db.admin, tenantId, 'slow')).toEqual(Array.from({ length: ledger.version }, (_, i) => i + 1));
    expect(errors.some((error) => /statement timeout/.test(error.message))).toBe(true);
    expect(Math.min(...batchSizes)).toBeGreaterThan(1);
    await runner.stop();
    await ledger.close();
  });
});
