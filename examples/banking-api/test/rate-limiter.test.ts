import { describe, expect, it } from 'vitest';
import { ADDRESS_KEY_LENGTH_MAX, RateLimiter, rateLimitAddress } from '../src/rate-limiter.js';

/** A limiter on a clock the test moves. */
function limiter(options: { ratePerSecond: number; burst: number; clientsMax?: number }): { limiter: RateLimiter; advance(ms: number): void } {
  let nowMs = 1_000;
  return {
    limiter: new RateLimiter({ clientsMax: 100, ...options, clock: () => nowMs }),
    advance: (ms) => {
      nowMs += ms;
    },
  };
}

describe('RateLimiter', () => {
  it('take spends a burst, then refuses with the whole seconds until the next token, which comes at the refill rate', () => {
    const { limiter: rl, advance } = limiter({ ratePerSecond: 2, burst: 3 });
    expect([rl.take('a'), rl.take('a'), rl.take('a')].every((decision) => decision.allowed)).toBe(true);
    expect(rl.take('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    advance(499);
    expect(rl.take('a').allowed).toBe(false);
    advance(1);
    expect(rl.take('a').allowed).toBe(true);
    expect(rl.take('b').allowed).toBe(true);
  });

  it('refund gives back a token take took, never beyond the burst, and creates no bucket', () => {
    const { limiter: rl, advance } = limiter({ ratePerSecond: 1, burst: 2 });
    // A bucket emptied, one token given back: one request passes, the next does not.
    rl.take('a');
    rl.take('a');
    expect(rl.take('a').allowed).toBe(false);
    rl.refund('a');
    expect(rl.take('a').allowed).toBe(true);
    expect(rl.take('a').allowed).toBe(false);
    // Refunds on a full bucket (and refills meanwhile) never lift it over the burst.
    advance(5_000);
    rl.refund('a');
    rl.refund('a');
    expect([rl.take('a').allowed, rl.take('a').allowed, rl.take('a').allowed]).toEqual([true, true, false]);
    // Half a token refilled plus one given back: one whole token, not two.
    advance(500);
    rl.refund('a');
    expect([rl.take('a').allowed, rl.take('a').allowed]).toEqual([true, false]);
    // A bucket that is not kept is not created by a refund.
    rl.refund('never-taken');
    expect(rl.size).toBe(1);
  });
});

describe('rateLimitAddress', () => {
  it('keys an IPv6 address by its /64, however it is written: full, compressed, upper case, with a zone id', () => {
    const network = '2001:db8:1:2::/64';
    for (const address of ['2001:db8:1:2:3:4:5:6', '2001:0DB8:0001:0002:0000:0000:0000:0001', '2001:db8:1:2::1', '2001:db8:1:2::', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::1%eth0', '2001:db8:1:2:0:0:192.0.2.1']) {
      expect(rateLimitAddress(address), address).toBe(network);
    }
    expect(rateLimitAddress('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(rateLimitAddress('2001:db8::1')).toBe('2001:db8::/64');
    expect(rateLimitAddress('1:2:3:4:5:6:7:8')).toBe('1:2:3:4::/64');
    expect(rateLimitAddress('::1')).toBe('::/64');
    expect(rateLimitAddress('::')).toBe('::/64');
    expect(rateLimitAddress('fe80::1%1')).toBe('fe80::/64');
    expect(rateLimitAddress('fe80::abcd%eth0')).toBe('fe80::/64');
    // Embedded IPv4 that is not a mapped address: an IPv6 network like any other (NAT64 here).
    expect(rateLimitAddress('64:ff9b::192.0.2.1')).toBe('64:ff9b::/64');
  });

  it('keeps IPv4 per address, written as IPv4 or as an IPv4-mapped IPv6 address (a dual-stack socket\'s IPv4 client)', () => {
    for (const address of ['192.0.2.1', '::ffff:192.0.2.1', '::FFFF:192.0.2.1', '::ffff:c000:201', '0:0:0:0:0:ffff:192.0.2.1']) {
      expect(rateLimitAddress(address), address).toBe('192.0.2.1');
    }
    expect(rateLimitAddress('192.0.2.2')).toBe('192.0.2.2');
    expect(rateLimitAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
  });

  it('keeps text that is no IP address as it is, cut to its bound', () => {
    expect(rateLimitAddress('unknown')).toBe('unknown');
    expect(rateLimitAddress('2001:db8::1::2')).toBe('2001:db8::1::2');
    expect(rateLimitAddress('x'.repeat(1_000))).toBe('x'.repeat(ADDRESS_KEY_LENGTH_MAX));
  });
});
