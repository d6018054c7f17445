/**
 * A check (a database round trip, say) whose result is reused for a short while, so that a
 * public endpoint asking for it costs at most one run per window however often it is called.
 */

/** Options of {@link CachedCheck}. */
export interface CachedCheckOptions<T> {
  /** The check. It should settle within a bound of its own: callers wait for it while it runs. */
  readonly check: () => Promise<T>;
  /** How long a result answers calls after the check settled, ms: 1..60,000. */
  readonly ttlMs: number;
  /** Monotonic clock in ms; default `performance.now`. */
  readonly clockMs?: (() => number) | undefined;
}

/** The range of {@link CachedCheckOptions.ttlMs}. */
export const CACHED_CHECK_TTL_RANGE_MS = { min: 1, max: 60_000 } as const;

/**
 * A check run at most once per `ttlMs`: its result, whatever it says, answers every call until
 * `ttlMs` after the check settled, and calls made while it runs share that run (single flight).
 * A check that throws is not kept: every call waiting on it gets the error, and the next call
 * runs it again.
 */
export class CachedCheck<T> {
  readonly #check: () => Promise<T>;
  readonly #ttlMs: number;
  readonly #clockMs: () => number;
  #result: { readonly value: T; readonly expiresAtMs: number } | undefined;
  #inFlight: Promise<T> | undefined;

  constructor(options: CachedCheckOptions<T>) {
    const { min, max } = CACHED_CHECK_TTL_RANGE_MS;
    if (!Number.isInteger(options.ttlMs) || options.ttlMs < min || options.ttlMs > max) throw new RangeError(`ttlMs must be an integer in ${min}..${max}`);
    if (options.clockMs !== undefined && typeof options.clockMs !== 'function') throw new TypeError('clockMs must be a function');
    this.#check = options.check;
    this.#ttlMs = options.ttlMs;
    this.#clockMs = options.clockMs ?? (() => performance.now());
  }

  /** The result of the last run while it is fresh, else of the run in flight, else of a new run. */
  get(): Promise<T> {
    const result = this.#result;
    if (result !== undefined && this.#clockMs() < result.expiresAtMs) return Promise.resolve(result.value);
    if (this.#inFlight !== undefined) return this.#inFlight;
    const flight = this.#run();
    this.#inFlight = flight;
    const landed = (): void => {
      if (this.#inFlight === flight) this.#inFlight = undefined;
    };
    flight.then(landed, landed);
    return flight;
  }

  async #run(): Promise<T> {
    const value = await this.#check();
    this.#result = { value, expiresAtMs: this.#clockMs() + this.#ttlMs };
    return value;
  }
}
