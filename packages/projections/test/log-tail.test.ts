import { describe, expect, it } from 'vitest';
import { LogTails } from '../src/log-tail.js';
import type { ProjectionEvent } from '../src/projection.js';

/** Stand-ins for decoded events: only their positions matter to the tails. */
const events = (from: number, count: number): ProjectionEvent[] => Array.from({ length: count }, (_, i) => ({ position: `p${from + i}` }) as unknown as ProjectionEvent);
const positions = (list: readonly ProjectionEvent[] | undefined): string[] | undefined => list?.map((event) => event.position);

describe('LogTails', () => {
  it('serves what was read after a position, as much of a page as it keeps, and nothing after a position it never saw', () => {
    const tails = new LogTails(100);
    tails.remember('t', null, events(1, 10));
    expect(positions(tails.take('t', null, 4))).toEqual(['p1', 'p2', 'p3', 'p4']);
    expect(positions(tails.take('t', 'p3', 100))).toEqual(['p4', 'p5', 'p6', 'p7', 'p8', 'p9', 'p10']);
    // At the end of the run: an empty page (the caller reads on from p10), not undefined.
    expect(tails.take('t', 'p10', 5)).toEqual([]);
    expect(tails.take('t', 'p99', 5)).toBeUndefined();
    expect(tails.take('other', null, 5)).toBeUndefined();
  });

  it('a read that continues the run extends it; one elsewhere starts a new run', () => {
    const tails = new LogTails(100);
    tails.remember('t', null, events(1, 5));
    // Overlapping the kept run: only the new events are added.
    tails.remember('t', 'p3', events(4, 5));
    expect(positions(tails.take('t', null, 100))).toEqual(['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);
    tails.remember('t', 'p50', events(51, 2));
    expect(tails.take('t', null, 100)).toBeUndefined();
    expect(positions(tails.take('t', 'p50', 100))).toEqual(['p51', 'p52']);
  });

  it('keeps at most eventsMax events, dropping the oldest of the least recently extended tenant first', () => {
    const tails = new LogTails(10);
    tails.remember('a', null, events(1, 6));
    tails.remember('b', null, events(1, 6));
    expect(tails.take('a', null, 1)).toBeUndefined();
    expect(positions(tails.take('a', 'p2', 10))).toEqual(['p3', 'p4', 'p5', 'p6']);
    expect(positions(tails.take('b', null, 10))).toHaveLength(6);
    tails.forget('b');
    expect(tails.take('b', null, 10)).toBeUndefined();
  });
});
