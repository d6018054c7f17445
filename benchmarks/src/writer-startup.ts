/**
 * Writer start-up with a long history: how long `LedgerWriter.open` takes on a ledger of
 * 1,000,000 events (CI: 100,000) whose latest snapshot lies a tail of events behind its end — the
 * state a writer with default snapshot settings leaves behind on average.
 *
 * The history is built fast and untimed: transfers decided and encoded as the writer does
 * (hash-chained by `EventCodec.encode`) and appended directly with `store.append` in large
 * pre-encoded batches, the next batch encoded while the previous one commits. The snapshot is the
 * writer's own: one writer opens the ledger before the tail is appended — folding the whole
 * history from the first event, which is reported as the cold start — and saves it.
 */
import { initialState, LedgerWriter, type StoredEvent } from '@ledgerkit/ledger-core';
import type { PostgresEventStore } from '@ledgerkit/store-postgres';
import { ChainEncoder } from './chain-encoder.js';
import { fixtureAccountIds, fixtureCommands, transferStream } from './ledger-fixture.js';
import { loadAverage1m, newLatencyHistogram, recordNs, summariseMs, type Measurement } from './measurement.js';
import { BENCH_TENANT_ID } from './raw-insert.js';

export const WRITER_STARTUP = 'writer-startup-1m';

/** Events per pre-encoded append while building the history (the store takes up to 50,000). */
const BUILD_APPEND_EVENTS = 10_000;

/** How the start-up is measured. */
export interface WriterStartupOptions {
  readonly store: PostgresEventStore;
  /** Events in the ledger when the timed opens run. */
  readonly historyEvents: number;
  /** Events after the snapshot. */
  readonly tailEvents: number;
  /** Timed opens. */
  readonly opens: number;
  /** Accounts in the ledger; even. */
  readonly accounts: number;
  readonly seed: number;
  /** Progress lines: building takes a while. */
  readonly onMessage: (message: string) => void;
}

const collectGarbage: (() => void) | undefined = typeof globalThis.gc === 'function' ? globalThis.gc : undefined;

/** Builds the history and the snapshot, then times `opens` start-ups of a writer on it. */
export async function measureWriterStartup(options: WriterStartupOptions): Promise<Measurement> {
  const { store, historyEvents, tailEvents } = options;
  if (!Number.isInteger(tailEvents) || tailEvents < 0 || tailEvents >= historyEvents) throw new RangeError(`tailEvents must be in 0..historyEvents - 1, got ${tailEvents}`);
  const ledgerId = `startup-${historyEvents}`;
  const history = new HistoryBuilder(store, ledgerId, options.accounts, options.seed);
  const snapshotAt = historyEvents - tailEvents;

  const buildStart = process.hrtime.bigint();
  await history.appendUntil(snapshotAt);
  const buildSeconds = Number(process.hrtime.bigint() - buildStart) / 1e9;
  options.onMessage(`  ${WRITER_STARTUP}: appended ${snapshotAt.toLocaleString('en-US')} events in ${buildSeconds.toFixed(1)} s; opening a writer with no snapshot (cold start)`);

  collectGarbage?.();
  const coldStart = process.hrtime.bigint();
  const cold = await LedgerWriter.open({ store, tenantId: BENCH_TENANT_ID, ledgerId });
  const coldOpenMs = Number(process.hrtime.bigint() - coldStart) / 1e6;
  try {
    if (cold.version !== snapshotAt || cold.lastHash !== history.lastHash) throw new Error(`cold writer at version ${cold.version}, expected ${snapshotAt}`);
    await cold.saveSnapshot();
  } finally {
    await cold.close();
  }
  options.onMessage(`  ${WRITER_STARTUP}: cold start ${(coldOpenMs / 1000).toFixed(2)} s; snapshot saved at version ${snapshotAt.toLocaleString('en-US')}; appending a tail of ${tailEvents.toLocaleString('en-US')}`);
  await history.appendUntil(historyEvents);

  const histogram = newLatencyHistogram();
  try {
    const samples: number[] = [];
    let cpuUs = 0;
    let wallNs = 0;
    const loadAtStart = loadAverage1m();
    for (let open = 0; open < options.opens; open += 1) {
      collectGarbage?.();
      const cpuStart = process.cpuUsage();
      const start = process.hrtime.bigint();
      const writer = await LedgerWriter.open({ store, tenantId: BENCH_TENANT_ID, ledgerId });
      const elapsedNs = Number(process.hrtime.bigint() - start);
      const cpu = process.cpuUsage(cpuStart);
      try {
        if (writer.version !== historyEvents || writer.lastHash !== history.lastHash) {
          throw new Error(`writer opened at version ${writer.version} (hash ${writer.lastHash}), expected ${historyEvents} (${history.lastHash})`);
        }
      } finally {
        await writer.close();
      }
      recordNs(histogram, elapsedNs);
      samples.push(1e9 / elapsedNs);
      cpuUs += cpu.user + cpu.system;
      wallNs += elapsedNs;
      options.onMessage(`  ${WRITER_STARTUP}: open ${open + 1} took ${(elapsedNs / 1e6).toFixed(0)} ms`);
    }
    return {
      name: WRITER_STARTUP,
      description: `LedgerWriter.open on a ledger of ${historyEvents.toLocaleString('en-US')} events (${options.accounts.toLocaleString('en-US')} accounts, simple transfers): load the latest snapshot, check its hash against the stream, fold the ${tailEvents.toLocaleString('en-US')} events after it`,
      // Judged only on the history the target names (the full run); a CI run's smaller history says nothing about it.
      target: { latencyP50MsMax: 2_000, historyEvents: 1_000_000, statement: 'writer start-up with 1,000,000 events of history: at most 2 s (median of the opens), thanks to snapshots' },
      latencyOf: 'writer start-up',
      opsPerSecSamples: samples,
      sampleOf: 'open',
      opsPerSecOverall: options.opens / (Math.max(wallNs, 1) / 1e9),
      latencyMs: summariseMs(histogram),
      batchLatencyMs: null,
      latencySamples: histogram.totalCount,
      ops: options.opens,
      errors: 0,
      cpuPerWall: cpuUs / (Math.max(wallNs, 1) / 1_000),
      loadAverage1m: { start: loadAtStart, end: loadAverage1m() },
      peers: {},
      series: null,
      details: {
        historyEvents,
        snapshotAtVersion: snapshotAt,
        tailEvents,
        coldOpenMsNoSnapshot: Math.round(coldOpenMs),
        coldOpenEvents: snapshotAt,
        historyBuildSeconds: Math.round(buildSeconds * 10) / 10,
        historyAppendEventsPerSec: Math.round(snapshotAt / buildSeconds),
      },
    };
  } finally {
    histogram.destroy();
  }
}

/** Appends the fixture's opening commands, then seeded transfers, as pre-encoded batches. */
class HistoryBuilder {
  readonly #store: PostgresEventStore;
  readonly #ledgerId: string;
  readonly #encoder: ChainEncoder;
  readonly #state = initialState();
  readonly #opening;
  readonly #next;
  #seq = 0;
  #appended = 0;

  constructor(store: PostgresEventStore, ledgerId: string, accounts: number, seed: number) {
    this.#store = store;
    this.#ledgerId = ledgerId;
    this.#encoder = new ChainEncoder({ ledgerId, state: this.#state });
    this.#opening = fixtureCommands(accounts);
    this.#next = transferStream(fixtureAccountIds(accounts), seed, 'h-');
  }

  get lastHash(): string {
    return this.#encoder.lastHash;
  }

  /** Appends until the stream holds `version` events; the next batch is encoded while the previous one commits. */
  async appendUntil(version: number): Promise<void> {
    let pending: Promise<unknown> | undefined;
    while (this.#encoder.streamVersion < version) {
      const batch = this.#encodeBatch(Math.min(BUILD_APPEND_EVENTS, version - this.#encoder.streamVersion));
      await pending;
      pending = this.#append(batch);
    }
    await pending;
    if (this.#appended !== version) throw new Error(`history holds ${this.#appended} events, expected ${version}`);
  }

  #encodeBatch(count: number): StoredEvent[] {
    const events: StoredEvent[] = [];
    while (events.length < count) {
      const opening = this.#opening[this.#seq];
      const command = opening ?? this.#next(this.#seq - this.#opening.length);
      this.#seq += 1;
      this.#encoder.encode(command, events);
    }
    // Only the writer's idempotency needs the transfer records, and every id here is new: keep
    // the fixture's memory flat over a million transfers.
    const transfers = this.#state.transfers;
    if (transfers instanceof Map) transfers.clear();
    return events;
  }

  async #append(events: StoredEvent[]): Promise<void> {
    const expectedVersion = this.#appended;
    await this.#store.append({ tenantId: BENCH_TENANT_ID, ledgerId: this.#ledgerId, expectedVersion, events });
    this.#appended += events.length;
  }
}
