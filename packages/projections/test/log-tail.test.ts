import { describe, expect, it } from 'vitest';
import { eventBytes, LogTails } from '../src/log-tail.js';
import type { ProjectionEvent } from '../src/projection.js';

/** Stand-ins for decoded events: only their positions matter to the tails (and their content to its estimate, the least an event weighs here). */
const events = (from: number, count: number): ProjectionEvent[] =>
  Array.from({ length: count }, (_, i) => ({ position: `p${from + i}`, stored: { data: {}, metadata: {} } }) as unknown as ProjectionEvent);
/** No bound on the bytes: only the count bounds the tails. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;
const positions = (list: readonly ProjectionEvent[] | undefined): string[] | undefined => list?.map((event) => event.position);

describe('LogTails', () => {
  it('serves what was read after a position, as much of a page as it keeps, and nothing after a position it never saw', () => {
    const tails = new LogTails(100, UNBOUNDED);
    tails.remember('t', null, events(1, 10));
    expect(positions(tails.take('t', null, 4))).toEqual(['p1', 'p2', 'p3', 'p4']);
    expect(positions(tails.take('t', 'p3', 100))).toEqual(['p4', 'p5', 'p6', 'p7', 'p8', 'p9', 'p10']);
    // At the end of the run: an empty page (the caller reads on from p10), not undefined.
    expect(tails.take('t', 'p10', 5)).toEqual([]);
    expect(tails.take('t', 'p99', 5)).toBeUndefined();
    expect(tails.take('other', null, 5)).toBeUndefined();
  });

  it('a read that continues the run extends it; one elsewhere starts a new run', () => {
    const tails = new LogTails(100, UNBOUNDED);
    tails.remember('t', null, events(1, 5));
    // Overlapping the kept run: only the new events are added.
    tails.remember('t', 'p3', events(4, 5));
    expect(positions(tails.take('t', null, 100))).toEqual(['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);
    tails.remember('t', 'p50', events(51, 2));
    expect(tails.take('t', null, 100)).toBeUndefined();
    expect(positions(tails.take('t', 'p50', 100))).toEqual(['p51', 'p52']);
  });

  it('keeps at most eventsMax events, dropping the oldest of the least recently extended tenant first', () => {
    const tails = new LogTails(10, UNBOUNDED);
    tails.remember('a', null, events(1, 6));
    tails.remember('b', null, events(1, 6));
    expect(tails.take('a', null, 1)).toBeUndefined();
    expect(positions(tails.take('a', 'p2', 10))).toEqual(['p3', 'p4', 'p5', 'p6']);
    expect(positions(tails.take('b', null, 10))).toHaveLength(6);
    tails.forget('b');
    expect(tails.take('b', null, 10)).toBeUndefined();
  });
});

/**
 * The tails as they were specified before they indexed only the ends of pages: every kept event's
 * position found by a map entry of its own. The class must answer every call as this does.
 */
class ReferenceTails {
  readonly #max: number;
  readonly #tails = new Map<string, { after: string | null; events: ProjectionEvent[] }>();
  constructor(max: number) {
    this.#max = max;
  }
  #start(tail: { after: string | null; events: ProjectionEvent[] }, after: string | null): number | undefined {
    if (after === tail.after) return 0;
    if (after === null) return undefined;
    const index = tail.events.findIndex((event) => event.position === after);
    return index === -1 ? undefined : index + 1;
  }
  take(tenantId: string, after: string | null, limit: number): ProjectionEvent[] | undefined {
    const tail = this.#tails.get(tenantId);
    const start = tail === undefined ? undefined : this.#start(tail, after);
    return tail === undefined || start === undefined ? undefined : tail.events.slice(start, start + limit);
  }
  remember(tenantId: string, after: string | null, events: ProjectionEvent[]): void {
    if (events.length === 0) return;
    const tail = this.#tails.get(tenantId);
    const start = tail === undefined ? undefined : this.#start(tail, after);
    this.#tails.delete(tenantId);
    if (tail === undefined || start === undefined) this.#tails.set(tenantId, { after, events: [...events] });
    else {
      tail.events.push(...events.slice(tail.events.length - start));
      this.#tails.set(tenantId, tail);
    }
    let total = [...this.#tails.values()].reduce((sum, one) => sum + one.events.length, 0);
    for (const [id, one] of this.#tails) {
      if (total <= this.#max) break;
      const drop = Math.min(one.events.length, total - this.#max);
      const dropped = one.events.splice(0, drop);
      if (dropped.length > 0) one.after = (dropped[dropped.length - 1] as ProjectionEvent).position;
      total -= drop;
      if (one.events.length === 0) this.#tails.delete(id);
    }
  }
}

describe('LogTails bounded by bytes', () => {
  /** A transfer-like stand-in of `postings` postings between long account ids and `metadataChars` of metadata. */
  const large = (position: string, postings: number, metadataChars: number): ProjectionEvent =>
    ({
      position,
      stored: {
        data: { postings: Array.from({ length: postings }, (_, i) => ({ accountId: `account-${i}-`.padEnd(128, 'x') })), metadata: { note: 'n'.repeat(metadataChars) } },
        metadata: {},
      },
    }) as unknown as ProjectionEvent;

  it('weighs an event by what grows with it: 32 postings and 4 KB of metadata weigh many times a plain event', () => {
    const plain = eventBytes(events(1, 1)[0] as ProjectionEvent);
    const heavy = eventBytes(large('p1', 32, 4_000));
    expect(heavy).toBeGreaterThan(2 * (32 * 128 + 4_000));
    expect(heavy).toBeGreaterThan(10 * plain);
  });

  it('keeps at most bytesMax of estimated memory, dropping the oldest events first, however few they are', () => {
    const heavy = eventBytes(large('p1', 32, 4_000));
    // Room for three heavy events by their weight, and for 100 by their count.
    const tails = new LogTails(100, 3 * heavy);
    tails.remember('t', null, Array.from({ length: 5 }, (_, i) => large(`p${i + 1}`, 32, 4_000)));
    expect(tails.size).toEqual({ events: 3, bytes: 3 * heavy });
    expect(tails.take('t', null, 10)).toBeUndefined();
    expect(positions(tails.take('t', 'p2', 10))).toEqual(['p3', 'p4', 'p5']);
    tails.forget('t');
    expect(tails.size).toEqual({ events: 0, bytes: 0 });
    // Nothing kept at all with a bound of 0.
    const none = new LogTails(100, 0);
    none.remember('t', null, events(1, 3));
    expect(none.size).toEqual({ events: 0, bytes: 0 });
  });
});

describe('LogTails against its reference', () => {
  it('property: any sequence of reads remembered and pages taken gets the answers of a map of every position', async () => {
    const fc = (await import('fast-check')).default;
    const opArb = fc.oneof(
      fc.record({ kind: fc.constant('remember' as const), tenant: fc.constantFrom('a', 'b'), after: fc.option(fc.nat(60), { nil: null }), count: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ kind: fc.constant('take' as const), tenant: fc.constantFrom('a', 'b'), after: fc.option(fc.nat(60), { nil: null }), limit: fc.integer({ min: 1, max: 12 }) }),
    );
    fc.assert(
      // Every stand-in weighs the same (eventBytes of one), so a bound on bytes is a bound on events.
      fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 40 }), fc.array(opArb, { maxLength: 40 }), (max, weighed, ops) => {
        const unit = eventBytes(events(1, 1)[0] as ProjectionEvent);
        const tails = new LogTails(max, weighed * unit);
        const reference = new ReferenceTails(Math.min(max, weighed));
        for (const op of ops) {
          const after = op.after === null ? null : `p${op.after}`;
          if (op.kind === 'remember') {
            // The log is p1, p2, …: the events after p<n> are p<n+1>, ….
            const list = events((op.after ?? 0) + 1, op.count);
            tails.remember(op.tenant, after, list);
            reference.remember(op.tenant, after, list);
          } else {
            expect(positions(tails.take(op.tenant, after, op.limit))).toEqual(positions(reference.take(op.tenant, after, op.limit)));
          }
        }
      }),
      { numRuns: 3_000 },
    );
  });
});
