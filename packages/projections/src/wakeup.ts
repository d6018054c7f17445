/** A sleep that `wake()` cuts short; a wake while nobody sleeps makes the next sleep return at once. */
export class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;

  wake(): void {
    const resolve = this.#resolve;
    if (resolve === undefined) {
      this.#pending = true;
      return;
    }
    this.#resolve = undefined;
    resolve();
  }

  /** Resolves after `ms`, or earlier on `wake()`: `true` when woken. */
  wait(ms: number): Promise<boolean> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#resolve = undefined;
        resolve(false);
      }, ms);
      this.#resolve = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}

/**
 * Soonest a NOTIFY wakes a tenant's projections again after the last wake one caused, ms. Any
 * role that can connect can NOTIFY the runner's channel (no grant is needed): the reads
 * notifications cause are bounded by this, not by how fast notifications arrive.
 */
export const NOTIFY_WAKE_MS_MIN = 100;

/**
 * A NOTIFY wake is the first of a burst when no wake was passed on for this long, ms: only then
 * does an empty read after it start the quick re-reads (5 ms, then doubling) that find an event
 * still above the read horizon soon; within a burst they start at {@link NOTIFY_WAKE_MS_MIN}.
 */
export const NOTIFY_QUIET_MS = 1_000;

/**
 * Passes wakes on at most once per `intervalMs`: the first after an interval without one at
 * once, those that arrive within the interval after it coalesced into one, passed on when the
 * interval ends. Each wake passed on says whether it is part of a burst: coalesced, given as one
 * (passed on by another gate), or within `quietMs` of the wake passed on before it.
 */
export class WakeGate {
  readonly #intervalMs: number;
  readonly #quietMs: number;
  readonly #pass: (burst: boolean) => void;
  /** When a wake was last passed on (`performance.now()`), or `-Infinity`. */
  #passedAtMs = -Infinity;
  /** Set while a coalesced wake waits for the interval to end. */
  #timer: NodeJS.Timeout | undefined;

  /** @param pass called with each wake passed on, and whether it is part of a burst. */
  constructor(intervalMs: number, quietMs: number, pass: (burst: boolean) => void) {
    this.#intervalMs = intervalMs;
    this.#quietMs = quietMs;
    this.#pass = pass;
  }

  /** @param burst that the wake is part of a burst already (another gate passed it on as such). */
  wake(burst = false): void {
    if (this.#timer !== undefined) return;
    const nowMs = performance.now();
    const dueMs = this.#passedAtMs + this.#intervalMs;
    if (nowMs >= dueMs) {
      const inBurst = burst || nowMs - this.#passedAtMs < this.#quietMs;
      this.#passedAtMs = nowMs;
      this.#pass(inBurst);
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#passedAtMs = performance.now();
      this.#pass(true);
    }, dueMs - nowMs);
    // Nothing is left to wake once everything else is done.
    this.#timer.unref();
  }

  /**
   * Lets the next wake through at once, and a coalesced one waiting now: what a wake woke found
   * events to apply, so the notifications came with real appends (a forged one never makes a read
   * find anything). Genuine traffic then wakes its projections as soon as it is heard; a flood
   * still costs at most one read per interval beyond the reads that found work.
   */
  reset(): void {
    this.#passedAtMs = -Infinity;
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pass(false);
  }

  /** Drops a coalesced wake still waiting. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
