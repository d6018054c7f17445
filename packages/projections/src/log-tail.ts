import type { ProjectionEvent } from './projection.js';

/** Estimated bytes of a kept event apart from what grows with it: its envelope (ids, hashes, times) read and decoded. */
const EVENT_BYTES = 1_000;
/** Estimated bytes of one posting, as stored and decoded, apart from its account id (counted twice). */
const POSTING_BYTES = 200;
/** Estimated bytes of one metadata entry apart from its key and value (each counted twice). */
const METADATA_ENTRY_BYTES = 100;

/**
 * An event's memory while kept, estimated from what grows with it (postings, account ids,
 * metadata, as stored and as decoded): a transfer of 32 postings with 4 KB of metadata weighs
 * about 30 times a plain one.
 */
export function eventBytes(event: ProjectionEvent): number {
  let bytes = EVENT_BYTES;
  const data = event.stored.data as Record<string, unknown>;
  const postings = data['postings'];
  if (Array.isArray(postings)) {
    for (const posting of postings as { readonly accountId?: unknown }[]) {
      bytes += POSTING_BYTES + 2 * (typeof posting?.accountId === 'string' ? posting.accountId.length : 0);
    }
  }
  for (const metadata of [data['metadata'], event.stored.metadata]) {
    if (typeof metadata !== 'object' || metadata === null) continue;
    for (const key in metadata) {
      const value = (metadata as Record<string, unknown>)[key];
      bytes += METADATA_ENTRY_BYTES + 2 * (key.length + (typeof value === 'string' ? value.length : 0));
    }
  }
  const reference = data['reference'];
  if (typeof reference === 'string') bytes += 2 * reference.length;
  return bytes;
}

/** One tenant's run of consecutive events, as read from its global log. */
interface Tail {
  /** The position just before the first event kept (`null`: the start of the log). */
  after: string | null;
  /** Sequence number of `events[0]`; a position's sequence number never changes while it is kept. */
  base: number;
  events: ProjectionEvent[];
  /** {@link eventBytes} of each kept event, `events`' order. */
  weights: number[];
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
 * Bounded: at most `eventsMax` events over all tenants, and at most `bytesMax` of their estimated
 * memory ({@link eventBytes}); the least recently extended tenant loses its oldest events first.
 */
export class LogTails {
  readonly #eventsMax: number;
  readonly #bytesMax: number;
  readonly #tails = new Map<string, Tail>();
  #events = 0;
  #bytes = 0;

  /**
   * @param eventsMax most decoded events kept, over all tenants.
   * @param bytesMax most of their estimated memory kept, over all tenants.
   */
  constructor(eventsMax: number, bytesMax: number) {
    this.#eventsMax = eventsMax;
    this.#bytesMax = bytesMax;
  }

  /** Events kept, and their estimated bytes, over all tenants. */
  get size(): { readonly events: number; readonly bytes: number } {
    return { events: this.#events, bytes: this.#bytes };
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
      if (tail !== undefined) this.#drop(tail);
      const fresh: Tail = { after, base: 0, events: [], weights: [], ends: new Map() };
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
    this.#drop(tail);
    this.#tails.delete(tenantId);
  }

  /** Takes a whole tail's events out of the totals. */
  #drop(tail: Tail): void {
    this.#events -= tail.events.length;
    for (const weight of tail.weights) this.#bytes -= weight;
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
    for (const event of events) {
      const weight = eventBytes(event);
      tail.events.push(event);
      tail.weights.push(weight);
      this.#bytes += weight;
    }
    const last = events[events.length - 1];
    if (last !== undefined) tail.ends.set(last.position, tail.base + tail.events.length - 1);
    this.#events += events.length;
  }

  /** Drops the oldest events of the least recently extended tenants until both bounds hold. */
  #trim(): void {
    for (const [tenantId, tail] of this.#tails) {
      if (this.#events <= this.#eventsMax && this.#bytes <= this.#bytesMax) return;
      // Enough of this tail's oldest events for the count, then more while the bytes are over.
      let drop = Math.min(tail.events.length, Math.max(0, this.#events - this.#eventsMax));
      let bytes = 0;
      for (let i = 0; i < drop; i += 1) bytes += tail.weights[i] as number;
      while (drop < tail.events.length && this.#bytes - bytes > this.#bytesMax) {
        bytes += tail.weights[drop] as number;
        drop += 1;
      }
      tail.weights.splice(0, drop);
      this.#bytes -= bytes;
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
