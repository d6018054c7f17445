/**
 * A token bucket per client, in process memory. Each client's bucket holds up to `burst`
 * tokens and refills at `ratePerSecond`; a request takes one token or is refused with the time
 * until the next one. Buckets are created on demand and bounded in number: when full, the
 * bucket used least recently is dropped (a dropped client simply starts with a full bucket).
 *
 * Per process: N processes behind a load balancer let a client through at up to N × the rate.
 * A deployment that needs a global limit puts it in the gateway (as the seed's platform does).
 */
export interface RateLimiterOptions {
  /** Refill rate, tokens per second; > 0. */
  readonly ratePerSecond: number;
  /** Bucket size; ≥ 1. */
  readonly burst: number;
  /** Most buckets kept. */
  readonly clientsMax: number;
  /** Monotonic clock in ms; default `performance.now`. */
  readonly clock?: (() => number) | undefined;
}

/** The answer for one request. */
export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

const ALLOWED: RateDecision = { allowed: true };

/** Per-client token buckets; see the module comment. */
export class RateLimiter {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #clientsMax: number;
  readonly #clock: () => number;
  /** Insertion order is recency order: a touched bucket is moved to the end. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    if (!(options.ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive');
    if (!(options.burst >= 1)) throw new RangeError('burst must be at least 1');
    if (!Number.isInteger(options.clientsMax) || options.clientsMax < 1) throw new RangeError('clientsMax must be a positive integer');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw new TypeError('clock must be a function');
    this.#ratePerMs = options.ratePerSecond / 1_000;
    this.#burst = options.burst;
    this.#clientsMax = options.clientsMax;
    this.#clock = options.clock ?? (() => performance.now());
  }

  /** Takes a token from `clientKey`'s bucket, or says how long until one is there. */
  take(clientKey: string): RateDecision {
    const nowMs = this.#clock();
    let bucket = this.#buckets.get(clientKey);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#clientsMax) this.#buckets.delete(this.#buckets.keys().next().value as string);
      bucket = { tokens: this.#burst, updatedAtMs: nowMs };
    } else {
      this.#buckets.delete(clientKey);
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (nowMs - bucket.updatedAtMs) * this.#ratePerMs);
      bucket.updatedAtMs = nowMs;
    }
    this.#buckets.set(clientKey, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return ALLOWED;
    }
    return refusal(bucket.tokens, this.#ratePerMs);
  }

  /**
   * Whether `clientKey` could take a token now, without taking it (its bucket is neither created
   * nor made more recent): an empty bucket is refused with the time until its next token.
   */
  peek(clientKey: string): RateDecision {
    const bucket = this.#buckets.get(clientKey);
    if (bucket === undefined) return ALLOWED;
    const tokens = Math.min(this.#burst, bucket.tokens + (this.#clock() - bucket.updatedAtMs) * this.#ratePerMs);
    return tokens >= 1 ? ALLOWED : refusal(tokens, this.#ratePerMs);
  }

  /** Buckets currently kept. */
  get size(): number {
    return this.#buckets.size;
  }
}

/** The refusal of a bucket holding `tokens` (< 1), refilled at `ratePerMs`: whole seconds, at least 1. */
function refusal(tokens: number, ratePerMs: number): RateDecision {
  const waitMs = (1 - tokens) / ratePerMs;
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1_000)) };
}
