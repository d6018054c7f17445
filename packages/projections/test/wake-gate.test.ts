import { describe, expect, it } from 'vitest';
import { WakeGate } from '../src/wakeup.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('WakeGate (what bounds the wakes NOTIFYs cause)', () => {
  it('passes the first wake at once, coalesces the rest of a burst into one at the interval end, and says which wakes belong to a burst', async () => {
    const passed: boolean[] = [];
    const gate = new WakeGate(50, 1_000, (burst) => passed.push(burst));
    gate.wake();
    // At once, and the first after a quiet spell.
    expect(passed).toEqual([false]);
    for (let n = 0; n < 1_000; n += 1) gate.wake();
    expect(passed).toEqual([false]);
    await sleep(120);
    // A thousand wakes within the interval: one, at its end.
    expect(passed).toEqual([false, true]);
    // Past the interval but within the quiet spell: at once, still part of the burst. (A sleep
    // begun after the coalesced wake was passed on: on a loaded machine the timer above may have
    // fired late, in the same turn as the sleep.)
    await sleep(60);
    gate.wake();
    expect(passed).toEqual([false, true, true]);
    await sleep(1_100);
    gate.wake();
    expect(passed).toEqual([false, true, true, false]);
    // Given as part of a burst (by another gate), it is one whatever the spell.
    await sleep(1_100);
    gate.wake(true);
    expect(passed).toEqual([false, true, true, false, true]);
    // A cancelled gate drops its coalesced wake.
    gate.wake();
    gate.cancel();
    await sleep(120);
    expect(passed).toHaveLength(5);
  });

  it('reset (the woken read found events): a coalesced wake passes at once, and so does the next', () => {
    const passed: boolean[] = [];
    const gate = new WakeGate(10_000, 60_000, (burst) => passed.push(burst));
    gate.wake();
    gate.wake();
    // Coalesced: within the interval, nothing more passes on its own for 10 s.
    expect(passed).toEqual([false]);
    gate.reset();
    expect(passed).toEqual([false, false]);
    gate.wake();
    expect(passed).toEqual([false, false, false]);
    // Without a reset the gate closes again.
    gate.wake();
    expect(passed).toHaveLength(3);
    gate.cancel();
  });
});
