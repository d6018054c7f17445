import { describe, expect, it } from 'vitest';
import { CachedCheck } from '../src/cached-check.js';

/** A check that counts its runs and settles when the test says, on a clock the test moves. */
function counted<T>(ttlMs = 1_000): {
  cached: CachedCheck<T>;
  runs(): number;
  settle(value: T): void;
  fail(error: Error): void;
  advance(ms: number): void;
} {
  let nowMs = 5_000;
  let runs = 0;
  const pending: { resolve(value: T): void; reject(error: Error): void }[] = [];
  const cached = new CachedCheck<T>({
    ttlMs,
    clockMs: () => nowMs,
    check: () => {
      runs += 1;
      return new Promise<T>((resolve, reject) => pending.push({ resolve, reject }));
    },
  });
  return {
    cached,
    runs: () => runs,
    settle: (value) => pending.shift()?.resolve(value),
    fail: (error) => pending.shift()?.reject(error),
    advance: (ms) => {
      nowMs += ms;
    },
  };
}

describe('CachedCheck', () => {
  it('calls while the check runs share it, and calls within the window after it settled get its result without running it', async () => {
    const c = counted<boolean>();
    const concurrent = Array.from({ length: 50 }, () => c.cached.get());
    expect(c.runs()).toBe(1);
    c.settle(true);
    expect(await Promise.all(concurrent)).toEqual(Array.from({ length: 50 }, () => true));
    for (let n = 0; n < 50; n += 1) expect(await c.cached.get()).toBe(true);
    c.advance(999);
    expect(await c.cached.get()).toBe(true);
    expect(c.runs()).toBe(1);
  });

  it('runs the check again once the window is over, and keeps a failed result for its window only', async () => {
    const c = counted<boolean>();
    const first = c.cached.get();
    c.settle(true);
    await first;
    c.advance(1_000);
    const second = c.cached.get();
    expect(c.runs()).toBe(2);
    c.settle(false);
    expect(await second).toBe(false);
    c.advance(999);
    expect(await c.cached.get()).toBe(false);
    c.advance(1);
    const third = c.cached.get();
    expect(c.runs()).toBe(3);
    c.settle(true);
    expect(await third).toBe(true);
  });

  it('a check that throws is not kept: its waiters get the error, the next call runs it again', async () => {
    const c = counted<boolean>();
    const waiting = [c.cached.get(), c.cached.get()];
    c.fail(new Error('boom'));
    for (const call of waiting) await expect(call).rejects.toThrow('boom');
    const again = c.cached.get();
    expect(c.runs()).toBe(2);
    c.settle(true);
    expect(await again).toBe(true);
  });

  it('a check that throws before it returns a promise is not kept either', async () => {
    let runs = 0;
    const cached = new CachedCheck<boolean>({
      ttlMs: 1_000,
      check: () => {
        runs += 1;
        if (runs === 1) throw new Error('at once');
        return Promise.resolve(true);
      },
    });
    await expect(cached.get()).rejects.toThrow('at once');
    expect(await cached.get()).toBe(true);
    expect(runs).toBe(2);
  });

  it('refuses a window outside 1..60,000 ms', () => {
    const check = async (): Promise<boolean> => true;
    for (const ttlMs of [0, -1, 1.5, 60_001, Number.NaN]) expect(() => new CachedCheck({ check, ttlMs }), String(ttlMs)).toThrow(RangeError);
    expect(() => new CachedCheck({ check, ttlMs: 60_000 })).not.toThrow();
  });
});
