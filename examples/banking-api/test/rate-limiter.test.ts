import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/rate-limiter.js';

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

  it('peek answers as take would without spending a token, creating a bucket or making one more recent', () => {
    const { limiter: rl, advance } = limiter({ ratePerSecond: 1, burst: 2, clientsMax: 2 });
    expect(rl.peek('new')).toEqual({ allowed: true });
    expect(rl.size).toBe(0);
    rl.take('a');
    expect(rl.peek('a')).toEqual({ allowed: true });
    expect(rl.peek('a')).toEqual({ allowed: true });
    rl.take('a');
    expect(rl.peek('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(rl.take('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    advance(1_000);
    expect(rl.peek('a')).toEqual({ allowed: true });
    expect(rl.take('a').allowed).toBe(true);
    expect(rl.take('a').allowed).toBe(false);
    // 'a' is the least recently used of two buckets; peeking it does not keep it when a third comes.
    rl.take('b');
    rl.peek('a');
    rl.take('c');
    expect(rl.size).toBe(2);
    expect(rl.peek('a')).toEqual({ allowed: true });
    expect(rl.peek('b')).toEqual({ allowed: true });
  });
});
