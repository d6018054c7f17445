/**
 * A token bucket per client, in process memory. Each client's bucket holds up to `burst`
 * tokens and refills at `ratePerSecond`; a request takes one token or is refused with the time
 * until the next one. Buckets are created on demand and bounded in number: when full, the
 * bucket used least recently is dropped (a dropped client simply starts with a full bucket).
 *
 * Per process: N processes behind a load balancer let a client through at up to N × the rate.
 * A deployment that needs a global limit puts it in the gateway (as the seed's platform does).
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Options of {@link RateLimiter}. */
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
   * Gives back one token that {@link take} took from `clientKey`'s bucket for a request that turned
   * out not to count against it (a token charged to its address while being verified, which
   * verified). Never beyond the burst, so refunds cannot lift a bucket over its bound; a bucket
   * dropped meanwhile is not created again (a new one starts full anyway), nor made more recent.
   */
  refund(clientKey: string): void {
    const bucket = this.#buckets.get(clientKey);
    if (bucket === undefined) return;
    const nowMs = this.#clock();
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (nowMs - bucket.updatedAtMs) * this.#ratePerMs + 1);
    bucket.updatedAtMs = nowMs;
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

/** Longest address text {@link rateLimitAddress} keeps of something that is not an IP address. */
export const ADDRESS_KEY_LENGTH_MAX = 64;

/** Bits of an IPv6 address that one client is taken to control: a /64 is one subscriber's network (RFC 6177). */
export const IPV6_CLIENT_PREFIX_BITS = 64;

/** IPv6 groups (16 bits each) in {@link IPV6_CLIENT_PREFIX_BITS}. */
const PREFIX_GROUPS = IPV6_CLIENT_PREFIX_BITS / 16;

/**
 * The address a client's requests without a valid token are limited by. An IPv4 address is
 * its own; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a dual-stack socket reports an
 * IPv4 client) is its IPv4 address; any other IPv6 address is its /64 network
 * (`2001:db8:1:2::/64`), zone id dropped: a client holds a whole /64 and could otherwise take a
 * fresh bucket with each of its addresses. Text that is no IP address (a trusted proxy's odd
 * `X-Forwarded-For`) is kept as it is, cut to {@link ADDRESS_KEY_LENGTH_MAX} characters.
 */
export function rateLimitAddress(address: string): string {
  if (isIPv4(address)) return address;
  const withoutZone = address.split('%', 1)[0] ?? '';
  if (!isIPv6(withoutZone)) return address.slice(0, ADDRESS_KEY_LENGTH_MAX);
  const groups = ipv6Groups(withoutZone);
  if (isIPv4Mapped(groups)) return ipv4Text(groups[6] ?? 0, groups[7] ?? 0);
  const network = groups.map((group, index) => (index < PREFIX_GROUPS ? group : 0));
  return `${canonicalIPv6(network.map((group) => group.toString(16)).join(':'))}/${IPV6_CLIENT_PREFIX_BITS}`;
}

/**
 * The eight 16-bit groups of a valid IPv6 address (without zone id). The URL parser (WHATWG)
 * reads it, `::` and embedded IPv4 included, and writes its canonical form: hex groups only, at
 * most one `::`, which is then only filled in with zeros.
 */
function ipv6Groups(address: string): number[] {
  const [head = '', tail] = canonicalIPv6(address).split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const front = parse(head);
  if (tail === undefined) return front;
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

/** The canonical text (RFC 5952) of a valid IPv6 address, without brackets. */
function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** Whether the groups are `::ffff:0:0/96`, an IPv4 address written as IPv6. */
function isIPv4Mapped(groups: readonly number[]): boolean {
  return groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
}

function ipv4Text(high: number, low: number): string {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}
