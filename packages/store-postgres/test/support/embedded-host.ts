/**
 * A host program of `startEmbeddedPostgres`, run as a child process by embedded.test.ts (under tsx,
 * from the sources). `exit-code`: starts a server, stops it, sets `process.exitCode = 1` and ends.
 * `sigterm`: handles SIGTERM itself, starts a server and prints `ready`; on SIGTERM it checks the
 * server still answers, prints `handler: server answered`, stops it and ends.
 */
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/embedded.js';

const mode = process.argv[2];

if (mode === 'exit-code') {
  const server = await startEmbeddedPostgres({ fast: true });
  await server.stop();
  process.exitCode = 1;
} else if (mode === 'sigterm') {
  // Nothing else to wait for once the server is stopped: this ends the wait if no signal comes.
  const idle = setTimeout(() => process.stdout.write('no signal came\n'), 60_000);
  let stop: (() => Promise<void>) | undefined;
  let connectionString = '';
  process.once('SIGTERM', () => {
    clearTimeout(idle);
    void (async () => {
      const client = new pg.Client({ connectionString, connectionTimeoutMillis: 5_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        process.stdout.write('handler: server answered\n');
      } catch (error) {
        process.stdout.write(`handler: server did not answer: ${error instanceof Error ? error.message : String(error)}\n`);
      } finally {
        await client.end().catch(() => undefined);
      }
      await stop?.();
      process.stdout.write('handler: stopped\n');
    })();
  });
  const server = await startEmbeddedPostgres({ fast: true });
  connectionString = server.connectionString;
  stop = () => server.stop();
  process.stdout.write(`ready ${server.directory}\n`);
} else {
  process.stderr.write(`unknown mode ${String(mode)}\n`);
  process.exitCode = 2;
}
