import type { ProjectionEvent } from './projection.js';

/** One tenant's run of consecutive events, as read from its global log. */
interface Tail {
  /** The position just before the first event kept (`null`: the start of the log). */
  after: string | null;
  /** Sequence number of `events[0]`; a position's sequence number never changes while it is kept. */
  base: number;
  events: ProjectionEvent[];
  /**
   * Sequence number of some kept events' positions: the last event of each run appended and of
   * each page taken, which are where a projection's next read starts (its checkpoint after it
   * applied that page). Other positions are found by a scan (see `#startOf`). Not every event's:
   * a map entry per event cost about 0.3 µs an event to add and drop, and kept 20,000 entries
   * for the garbage collector to walk.
   */
  readonly ends: Map<string, number>;
}

/**
 * The most recently read stretch of each tenant's log, decoded, shared by the runner's
 * projections: a projection that follows another through the same events (the history behind
 * the balances, say) takes them from here instead of reading and decoding them again. Sound
 * because the log after a position never changes, it only grows: events read after a position
 * are the next events of the log, for every reader, forever.
 *
 * Bounded: at most `eventsMax` events over all tenants; the least recently extended tenant loses
 * its oldest events first.
 */
export class LogTails {
  readonly #eventsMax: number;
  readonly #tails = new Map<string, Tail>();
  #events = 0;

  /** @param eventsMax most decoded events kept, over all tenants. */
  constructor(eventsMax: number) {
    this.#eventsMax = eventsMax;
  }

  /**
   * Up to `limit` of the events right after `after`, as many as are kept (possibly none); or
   * `undefined` when `after` is not in the kept run (read the log). Fewer than `limit` means the
   * run ends there, not the log: the caller reads on from the last one returned.
   */
  take(tenantId: string, after: string | null, limit: number): ProjectionEvent[] | undefined {
    const tail = this.#tails.get(tenantId);
    if (tail === undefined) return undefined;
    const start = this.#startOf(tail, after);
    if (start === undefined) return undefined;
    const from = start - tail.base;
    const taken = tail.events.slice(from, from + limit);
    const last = taken[taken.length - 1];
    if (last !== undefined) tail.ends.set(last.position, start + taken.length - 1);
    return taken;
  }

  /** Records that the log after `after` begins with `events` (all of them decoded, in order). */
  remember(tenantId: string, after: string | null, events: readonly ProjectionEvent[]): void {
    if (events.length === 0) return;
    const tail = this.#tails.get(tenantId);
    const start = tail === undefined ? undefined : this.#startOf(tail, after);
    if (tail === undefined || start === undefined) {
      // Not next to what is kept: this run replaces it.
      if (tail !== undefined) this.#events -= tail.events.length;
      const fresh: Tail = { after, base: 0, events: [], ends: new Map() };
      this.#tails.delete(tenantId);
      this.#tails.set(tenantId, fresh);
      this.#append(fresh, events);
    } else {
      // Overlapping or adjacent: only what lies beyond the kept end is new.
      const kept = tail.base + tail.events.length - start;
      this.#append(tail, events.slice(kept));
      // Where the caller reads on from, even when none of its events was new.
      tail.ends.set((events[events.length - 1] as ProjectionEvent).position, start + events.length - 1);
      this.#tails.delete(tenantId);
      this.#tails.set(tenantId, tail);
    }
    this.#trim();
  }

  /** Forgets a tenant's events. */
  forget(tenantId: string): void {
    const tail = this.#tails.get(tenantId);
    if (tail === undefined) return;
    this.#events -= tail.events.length;
    this.#tails.delete(tenantId);
  }

  /** Sequence number of the first event after `after`, when `after` is the kept run's start or one of its events. */
  #startOf(tail: Tail, after: string | null): number | undefined {
    if (after === tail.after) return tail.base;
    if (after === null) return undefined;
    const seq = tail.ends.get(after);
    if (seq !== undefined) return seq + 1;
    // Not the end of a page handed out (a projection that went one event at a time, say): the
    // newest events first, where a projection that follows another mostly is.
    for (let i = tail.events.length - 1; i >= 0; i -= 1) {
      if ((tail.events[i] as ProjectionEvent).position === after) return tail.base + i + 1;
    }
    return undefined;
  }

  #append(tail: Tail, events: readonly ProjectionEvent[]): void {
    for (const event of events) tail.events.push(event);
    const last = events[events.length - 1];
    if (last !== undefined) tail.ends.set(last.position, tail.base + tail.events.length - 1);
    this.#events += events.length;
  }

  /** Drops the oldest events of the least recently extended tenants until the bound holds. */
  #trim(): void {
    for (const [tenantId, tail] of this.#tails) {
      if (this.#events <= this.#eventsMax) return;
      const drop = Math.min(tail.events.length, this.#events - this.#eventsMax);
      const dropped = tail.events.splice(0, drop);
      const last = dropped[dropped.length - 1];
      if (last !== undefined) tail.after = last.position;
      tail.base += drop;
      // Whichever is shorter: the entries (a few per page kept), or the dropped events.
      if (tail.ends.size <= drop) {
        for (const [position, seq] of tail.ends) if (seq < tail.base) tail.ends.delete(position);
      } else {
        for (const event of dropped) tail.ends.delete(event.position);
      }
      this.#events -= drop;
      if (tail.events.length === 0) this.#tails.delete(tenantId);
    }
  }
}
