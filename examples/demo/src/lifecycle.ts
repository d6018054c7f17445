/**
 * The demo's life around its steps: SIGINT and SIGTERM from its first moment on. See the comment
 * of `main.ts` for what a signal does and the exit codes. (`startEmbeddedPostgres` leaves the
 * signals to the demo, and its server's `stop()` also ends after Ctrl-C stopped the server.)
 */

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
