import { InMemoryEventStore, type AppendRequest, type EventStore, type GlobalEvent, type ReadAllRequest } from '@ledgerkit/ledger-core';
import { describeEventStoreConformance } from '@ledgerkit/ledger-core/testing';

/** How long an append's events stay out of `readAll` after the append resolved. */
const LAG_MS = 40;

/**
 * A store whose global log shows an append's events only some time after the append resolved, as
 * `PostgresEventStore` does with `horizonWaitMs: 0` while another transaction is open: it hides a
 * suffix of the log, never an event behind one it shows, so a reader that resumes misses nothing.
 */
class LaggingLogStore implements EventStore {
  readonly #inner = new InMemoryEventStore();
  /** When each appended event may show in the global log, by event id. */
  readonly #visibleAtMs = new Map<string, number>();

  async append(request: AppendRequest): Promise<{ readonly ledgerVersion: number }> {
    const result = await this.#inner.append(request);
    const visibleAtMs = Date.now() + LAG_MS;
    for (const event of request.events) this.#visibleAtMs.set(event.eventId, visibleAtMs);
    return result;
  }

  async readAll(request: ReadAllRequest): Promise<GlobalEvent[]> {
    const page = await this.#inner.readAll(request);
    const now = Date.now();
    const hidden = page.findIndex((entry) => (this.#visibleAtMs.get(entry.event.eventId) ?? Infinity) > now);
    return hidden === -1 ? page : page.slice(0, hidden);
  }

  readStream: EventStore['readStream'] = (request) => this.#inner.readStream(request);
  findByIndexKeys: EventStore['findByIndexKeys'] = (request) => this.#inner.findByIndexKeys(request);
  saveSnapshot: EventStore['saveSnapshot'] = (snapshot) => this.#inner.saveSnapshot(snapshot);
  loadSnapshot: EventStore['loadSnapshot'] = (request) => this.#inner.loadSnapshot(request);
}

// The suite reads the global log right after appending; told how long the store may lag, it
// keeps reading (resuming from its last position) for that long before it counts an event missing.
describeEventStoreConformance('InMemoryEventStore behind a lagging global log', async () => ({ store: new LaggingLogStore() }), { globalLogLagMs: LAG_MS * 50 });
